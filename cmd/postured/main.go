// Command postured is a self-hosted device posture service for Cloudflare
// Zero Trust: a custom device posture integration that scores devices from
// the MDM/EDR backends it is configured with, and an External Evaluation
// endpoint for Access policies.
//
//	postured serve -c postured.yaml
//	postured check-config -c postured.yaml
//	postured explain -c postured.yaml --serial C02XK1ZZJGH5 [--json]
//	postured history -c postured.yaml --device-id ID [--json]
//	postured replay -c postured.yaml --device-id ID --at 2026-12-01T09:14:00Z
//	postured --version
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
	_ "time/tzdata" // time zones in External Evaluation rules work in scratch/distroless images

	"github.com/KimMachineGun/automemlimit/memlimit"
	"go.yaml.in/yaml/v3"

	"github.com/postured/postured/aggregate"
	"github.com/postured/postured/internal/app"
	"github.com/postured/postured/internal/healthcheck"
	"github.com/postured/postured/server"
	"github.com/postured/postured/server/evaluate/keyring"
	"github.com/postured/postured/server/evaluate/policy"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

const usage = `usage: postured <command> [flags]

commands:
  serve         -c FILE              run the service
  check-config  -c FILE              validate FILE and print the effective config (secrets redacted);
                                     warnings (valid, but probably a mistake) go to stderr
  explain       -c FILE --serial S | --mac M | --hostname H | --email E [--device-id ID] [--json]
                                     score one device with the real providers, overrides and hysteresis, and say why
  explain       -c FILE --identity IDENTITY.json [device flags] [--json]
                                     which External Evaluation rule decides for this identity, and why;
                                     device flags supply the posture of its device
  history       -c FILE --device-id ID [--json]
                                     the device's recent score changes and their causes, read from
                                     Redis (cache.backend: redis); with the memory backend, use
                                     GET /v1/history?device_id=ID on the server
  keys init     -c FILE              create the External Evaluation key ring (required with key_store: redis)
  keys rotate   -c FILE              publish a new External Evaluation signing key (signs after rotation_overlap)
  keys list     -c FILE [--json]     the signing keys and their state
  whatif        -c FILE --proposed NEW.yaml [--thresholds 50,70,80] [--window 1h] [--json]
                                     how many devices of the last polling cycle NEW.yaml would move across
                                     each threshold, asked of the running postured (admin_listen); no vendor calls
  override add  -c FILE --serial S | --device-id ID | --email E --score N --until TIME --reason TEXT
                                     a time-boxed exception to a device's score, kept in Redis (cache.backend: redis;
                                     with memory, use overrides: in the config file)
  override list -c FILE [--json]     the config file's and Redis's overrides, expired ones marked
  override remove -c FILE --serial S | --device-id ID | --email E
                                     delete an override added with override add
  audit verify  [--head HASH] FILE...
                                     check the audit log's hash chain across FILEs, oldest first
  replay        -c FILE | --dir DIR [--device-id ID] [--at TIME] [--json]
                                     recompute answers from the audit log and compare them with what was
                                     answered (one device, or every device answered by TIME); exit 1 on a difference
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
	case "check-config":
		err = cmdCheckConfig(args[1:], stdout, stderr)
	case "explain":
		err = cmdExplain(ctx, args[1:], stdout)
	case "history":
		err = cmdHistory(ctx, args[1:], stdout)
	case "keys":
		err = cmdKeys(ctx, args[1:], stdout)
	case "whatif":
		err = cmdWhatIf(ctx, args[1:], stdout)
	case "audit":
		err = cmdAudit(ctx, args[1:], stdout)
	case "override":
		err = cmdOverride(ctx, args[1:], stdout, time.Now)
	case "replay":
		err = cmdReplay(ctx, args[1:], stdout)
	case "healthcheck":
		err = cmdHealthcheck(ctx, args[1:])
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

func cmdHealthcheck(ctx context.Context, args []string) error {
	if len(args) != 1 {
		return errors.New("healthcheck: want exactly one URL")
	}
	return healthcheck.Check(ctx, args[0])
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

func loadConfig(fs *flag.FlagSet, file string) (*app.Config, error) {
	if file == "" {
		return nil, errors.New(fs.Name() + ": -c FILE is required")
	}
	return app.Load(file, app.Registry(), os.LookupEnv)
}

func cmdCheckConfig(args []string, stdout, stderr io.Writer) error {
	fs, file := newFlags("check-config")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := loadConfig(fs, *file)
	if err != nil {
		return err
	}
	for _, w := range cfg.Warnings() {
		fmt.Fprintln(stderr, "postured: warning:", w)
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
	setMemoryLimit(app.NewLogger(cfg.Log, stderr), memlimit.FromCgroup)
	return app.Serve(ctx, cfg, app.Registry(), stderr, version(), nil)
}

func cmdExplain(ctx context.Context, args []string, stdout io.Writer) error {
	fs, file := newFlags("explain")
	var d aggregate.Device
	fs.StringVar(&d.Serial, "serial", "", "serial number")
	fs.StringVar(&d.MAC, "mac", "", "MAC address")
	fs.StringVar(&d.Hostname, "hostname", "", "hostname")
	fs.StringVar(&d.Email, "email", "", "user email")
	fs.StringVar(&d.ID, "device-id", "", "Cloudflare device_id: read its hysteresis state and device_id overrides (optional)")
	identity := fs.String("identity", "", "External Evaluation: the identity JSON (get-identity or a token payload)")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	hasDevice := d.Serial != "" || d.MAC != "" || d.Hostname != "" || d.Email != ""
	if !hasDevice && *identity == "" {
		return errors.New("explain: give at least one of --serial, --mac, --hostname, --email, or --identity")
	}
	cfg, err := loadConfig(fs, *file)
	if err != nil {
		return err
	}
	a, err := app.Build(cfg, app.Registry(), app.NewLogger(app.LogConfig{Level: "error", Format: "text"}, os.Stderr))
	if err != nil {
		return err
	}
	a.SyncNow(ctx)
	if *identity != "" {
		return explainIdentity(ctx, a, *identity, d, hasDevice, *asJSON, stdout)
	}
	ex := a.Explain(ctx, d)
	if *asJSON {
		return server.WriteExplanation(stdout, ex)
	}
	return printExplanation(stdout, ex)
}

// explainIdentity runs the External Evaluation rules for an identity. The
// identity's device_id is given the posture of the device flags, if any,
// scored now with the real providers; without them the device has no
// posture data, as for a device no batch has carried yet.
func explainIdentity(ctx context.Context, a *app.App, path string, d aggregate.Device, hasDevice, asJSON bool, stdout io.Writer) error {
	data, err := os.ReadFile(path) // #nosec G304 -- the operator's --identity file
	if err != nil {
		return fmt.Errorf("explain: %w", err)
	}
	var source policy.PostureSource
	if hasDevice {
		ex := a.Explain(ctx, d)
		p := policy.Posture{Score: ex.Score, Providers: map[string]int{}, At: time.Now()}
		for _, pd := range ex.Providers {
			if pd.Counted {
				p.Providers[pd.Provider] = pd.Score
			}
		}
		source = fixedPosture(p)
	}
	dec, err := policy.Explain(ctx, a.Config().ExternalEvaluation.Policy, source, time.Now(), data)
	if err != nil {
		return fmt.Errorf("explain: %w", err)
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(dec)
	}
	return dec.WriteText(stdout)
}

// fixedPosture answers for whatever device_id the identity carries with the
// posture computed from the command-line device flags.
type fixedPosture policy.Posture

func (f fixedPosture) DevicePosture(context.Context, string) (policy.Posture, bool) {
	return policy.Posture(f), true
}

func cmdHistory(ctx context.Context, args []string, stdout io.Writer) error {
	fs, file := newFlags("history")
	id := fs.String("device-id", "", "the Cloudflare device_id")
	asJSON := fs.Bool("json", false, "print JSON (as GET /v1/history answers)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *id == "" {
		return errors.New("history: --device-id is required")
	}
	cfg, err := loadConfig(fs, *file)
	if err != nil {
		return err
	}
	d, ok, err := app.ReadHistory(ctx, cfg, *id)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("history: device %s not seen in any batch (or forgotten after history.retention)", *id)
	}
	if *asJSON {
		return server.WriteHistory(stdout, d)
	}
	fmt.Fprintf(stdout, "device: %s\nscore:  %d (last answered %s)\n\n", d.DeviceID, d.Score, stamp(d.SeenAt))
	if len(d.Changes) == 0 {
		fmt.Fprintln(stdout, "no score change recorded")
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "AT\tOLD\tNEW\tCAUSES")
	for _, c := range d.Changes {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\n", stamp(c.At), c.OldScore, c.NewScore, strings.Join(c.Causes, "; "))
	}
	return tw.Flush()
}

func cmdKeys(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) == 0 || (args[0] != "init" && args[0] != "rotate" && args[0] != "list") {
		return errors.New("keys: want `keys init -c FILE`, `keys rotate -c FILE` or `keys list -c FILE [--json]`")
	}
	fs, file := newFlags("keys " + args[0])
	asJSON := fs.Bool("json", false, "print JSON (list)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	cfg, err := loadConfig(fs, *file)
	if err != nil {
		return err
	}
	kc := cfg.ExternalEvaluation.Keyring
	store, err := keyring.Open(kc)
	if err != nil {
		return fmt.Errorf("keys: %w", err)
	}
	defer store.Close()
	now := time.Now()
	var ring keyring.Ring
	switch args[0] {
	case "init":
		ring, err = keyring.Init(ctx, store, now)
	case "rotate":
		ring, err = keyring.Rotate(ctx, store, now, time.Duration(kc.RotationOverlap), time.Duration(kc.RotationGrace))
	default:
		ring, err = store.Load(ctx)
	}
	if err != nil {
		return fmt.Errorf("keys %s: %w", args[0], err)
	}
	keys := ring.Describe(now, time.Duration(kc.RotationGrace))
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(keys)
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "KID\tSTATE\tBITS\tPUBLISHED\tSIGNS FROM\tRETIRED\tLEAVES /keys")
	for _, k := range keys {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\n", k.ID, k.State, k.Bits, stamp(k.PublishedAt), stamp(k.SignsFrom), stamp(k.RetiredAt), stamp(k.DropAt))
	}
	return tw.Flush()
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func printExplanation(w io.Writer, ex aggregate.Explanation) error {
	fmt.Fprintf(w, "score:    %d\ns2s_id:   %q", ex.Score, ex.S2SID)
	if ex.S2SIDFrom != "" {
		fmt.Fprintf(w, " (from %s)", ex.S2SIDFrom)
	}
	fmt.Fprintf(w, "\ndecision: %s\n", ex.Decision)
	for _, a := range ex.Adjustments {
		fmt.Fprintf(w, "adjusted: %s %d -> %d: %s\n", a.Kind, a.From, a.To, a.Note)
	}
	fmt.Fprintln(w)
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
