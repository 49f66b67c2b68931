// Command postured is a self-hosted device posture service for Cloudflare
// Zero Trust: a custom device posture integration that scores devices from
// the MDM/EDR backends it is configured with, and an External Evaluation
// endpoint for Access policies.
//
//	postured demo
//	postured serve -c postured.yaml
//	postured check-config -c postured.yaml
//	postured explain -c postured.yaml --serial C02XK1ZZJGH5 [--json]
//	postured --version
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
	_ "time/tzdata" // time zones in External Evaluation rules work in scratch/distroless images

	"go.yaml.in/yaml/v3"

	"github.com/postured/postured/aggregate"
	"github.com/postured/postured/providers"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

const usage = `usage: postured <command> [flags]

commands:
  demo          [--listen ADDR]      run postured against in-process mock vendors (no cloud account needed)
  serve         -c FILE              run the service
  check-config  -c FILE              validate FILE and print the effective config (secrets redacted)
  explain       -c FILE --serial S | --mac M | --hostname H | --email E [--json]
                                     score one device with the real providers and say why
  healthcheck   URL                  exit 0 if URL answers 200 (container health checks; the image has no shell)
  version                            print the version (also --version)
`

// run is main without the process: it returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "serve":
		err = cmdServe(ctx, args[1:], stderr)
	case "demo":
		err = cmdDemo(ctx, args[1:], stdout, stderr)
	case "check-config":
		err = cmdCheckConfig(args[1:], stdout)
	case "explain":
		err = cmdExplain(ctx, args[1:], stdout)
	case "healthcheck":
		err = cmdHealthcheck(args[1:])
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, "postured", version())
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "postured: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 2
		}
		fmt.Fprintln(stderr, "postured:", err)
		return 1
	}
	return 0
}

func cmdHealthcheck(args []string) error {
	if len(args) != 1 {
		return errors.New("healthcheck: want exactly one URL")
	}
	c := &http.Client{Timeout: 3 * time.Second}
	resp, err := c.Get(args[0])
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthcheck: %s answered %d", args[0], resp.StatusCode)
	}
	return nil
}

func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

func newFlags(name string) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	file := fs.String("c", "", "config file")
	return fs, file
}

func loadConfig(fs *flag.FlagSet, file string) (*Config, error) {
	if file == "" {
		return nil, errors.New(fs.Name() + ": -c FILE is required")
	}
	return Load(file, registry(), os.LookupEnv)
}

func cmdCheckConfig(args []string, stdout io.Writer) error {
	fs, file := newFlags("check-config")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := loadConfig(fs, *file)
	if err != nil {
		return err
	}
	enc := yaml.NewEncoder(stdout)
	enc.SetIndent(2)
	if err := enc.Encode(cfg); err != nil {
		return fmt.Errorf("check-config: print: %w", err)
	}
	return enc.Close()
}

func cmdServe(ctx context.Context, args []string, stderr io.Writer) error {
	fs, file := newFlags("serve")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := loadConfig(fs, *file)
	if err != nil {
		return err
	}
	return serve(ctx, cfg, registry(), stderr, nil)
}

// serve runs postured until ctx ends. ready, if set, receives the listen
// address once the server accepts connections.
func serve(ctx context.Context, cfg *Config, reg providers.Registry[aggregate.Provider], logw io.Writer, ready func(addr string)) error {
	logger := newLogger(cfg.Log, logw)
	a, err := build(cfg, reg, logger)
	if err != nil {
		return err
	}
	srv, err := a.newServer()
	if err != nil {
		return err
	}
	if cfg.Access.InsecureSkipVerify {
		logger.Warn("ACCESS TOKEN VERIFICATION IS DISABLED (access.insecure_skip_verify): anyone who can reach " +
			cfg.Listen + " can read device posture. Never run this way in production.")
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	a.start(ctx)
	logger.Info("postured listening", "addr", ln.Addr().String(), "version", version(),
		"providers", len(cfg.Providers.Configs))
	if ready != nil {
		ready(ln.Addr().String())
	}
	return srv.Run(ctx, ln)
}

func cmdExplain(ctx context.Context, args []string, stdout io.Writer) error {
	fs, file := newFlags("explain")
	var d aggregate.Device
	fs.StringVar(&d.Serial, "serial", "", "serial number")
	fs.StringVar(&d.MAC, "mac", "", "MAC address")
	fs.StringVar(&d.Hostname, "hostname", "", "hostname")
	fs.StringVar(&d.Email, "email", "", "user email")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if d.Serial == "" && d.MAC == "" && d.Hostname == "" && d.Email == "" {
		return errors.New("explain: give at least one of --serial, --mac, --hostname, --email")
	}
	cfg, err := loadConfig(fs, *file)
	if err != nil {
		return err
	}
	a, err := build(cfg, registry(), newLogger(LogConfig{Level: "error", Format: "text"}, os.Stderr))
	if err != nil {
		return err
	}
	a.syncNow(ctx)
	d.ID = "explain"
	res, _ := a.engine.Evaluate(ctx, []aggregate.Device{d})
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(res[0].Explanation)
	}
	return printExplanation(stdout, res[0].Explanation)
}

func printExplanation(w io.Writer, ex aggregate.Explanation) error {
	fmt.Fprintf(w, "score:    %d\ns2s_id:   %q", ex.Score, ex.S2SID)
	if ex.S2SIDFrom != "" {
		fmt.Fprintf(w, " (from %s)", ex.S2SIDFrom)
	}
	fmt.Fprintf(w, "\ndecision: %s\n\n", ex.Decision)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PROVIDER\tWEIGHT\tOUTCOME\tMATCHED ON\tRECORD\tSCORE\tCOUNTED\tREASON\tNOTE")
	for _, p := range ex.Providers {
		on := p.MatchedOn
		if on != "" {
			on += "=" + p.MatchedValue
		}
		note := p.Note
		if p.Error != "" {
			note = strings.TrimSpace(note + " error: " + p.Error)
		}
		fmt.Fprintf(tw, "%s\t%g\t%s\t%s\t%s\t%d\t%t\t%s\t%s\n",
			p.Provider, p.Weight, p.Outcome, dash(on), dash(p.RecordID), p.Score, p.Counted, dash(p.Reason), dash(note))
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
