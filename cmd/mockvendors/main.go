// Command mockvendors serves faithful mocks of every vendor API postured
// speaks (internal/mockset's list: CrowdStrike Falcon, Intune via Graph,
// Jamf Pro) over one generated fleet, plus a stand-in for Cloudflare Access,
// so postured can be tried and tested without a cloud account.
//
//	mockvendors --listen :9000 --devices 5000 --seed 1 [--drift 2] [--emit-batch batch.json]
//	mockvendors --write-config demo.yaml          the postured config for these mocks
//	mockvendors poll --target URL [--interval 5m] [--cycles N]   play Cloudflare polling postured
//	mockvendors demo [--listen 127.0.0.1:8080]   the mocks, postured and the poller, in one process
//
// Everything is on one port, each vendor under /<vendor> and Access under
// /access; --<vendor>-listen also serves one vendor at the root of its own
// port. --drift P changes P percent of the devices in their vendors every
// --drift-interval, so scores move between polls.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/postured/postured/internal/fleet"
	"github.com/postured/postured/internal/healthcheck"
	"github.com/postured/postured/internal/mockset"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr, realTicker)
	stop()
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "mockvendors:", err)
		}
		os.Exit(1)
	}
}

// ticker starts a ticker of period d and returns its channel and stop.
// Polling and drift take their pace from one, so tests can drive them.
type ticker func(d time.Duration) (<-chan time.Time, func())

func realTicker(d time.Duration) (<-chan time.Time, func()) {
	t := time.NewTicker(d)
	return t.C, t.Stop
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer, tick ticker) error {
	if len(args) > 0 {
		switch args[0] {
		case "demo":
			return cmdDemo(ctx, args[1:], stdout, stderr, tick)
		case "poll":
			return cmdPoll(ctx, args[1:], stdout, stderr, tick)
		}
	}
	fs := flag.NewFlagSet("mockvendors", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", ":9000", "address serving every mock under a path prefix")
	devices := fs.Int("devices", 5000, "devices in the generated fleet")
	seed := fs.Uint64("seed", 1, "fleet generator seed (same seed, same fleet)")
	emit := fs.String("emit-batch", "", "write the Cloudflare posture batch(es) for the fleet to this file and exit")
	latency := fs.Duration("latency", 0, "added latency on every vendor API call")
	health := fs.String("healthcheck", "", "GET this URL, exit 0 if it answers 200 (for container health checks)")
	writeConfig := fs.String("write-config", "", "write the postured configuration for these mocks to this file and exit")
	drift := fs.Float64("drift", 0, "percent of the devices that change in their vendors every --drift-interval (0: a static fleet)")
	driftInterval := fs.Duration("drift-interval", time.Minute, "how often the fleet drifts")
	perVendor := map[string]*string{}
	for _, name := range mockset.Names() {
		perVendor[name] = fs.String(name+"-listen", "", "also serve the "+name+" mock at the root of this address")
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *health != "" {
		return healthcheck.Check(ctx, *health)
	}
	if *writeConfig != "" {
		cfg, err := mockset.DemoConfig()
		if err != nil {
			return err
		}
		if err := os.WriteFile(*writeConfig, cfg, 0o644); err != nil {
			return fmt.Errorf("write config: %w", err)
		}
		return nil
	}
	if *devices < 1 {
		return errors.New("--devices must be >= 1")
	}
	if err := checkDrift(*drift, *driftInterval); err != nil {
		return err
	}
	set, err := mockset.New(*devices, *seed, time.Now())
	if err != nil {
		return err
	}
	if *emit != "" {
		files, err := emitBatches(set, *emit)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "wrote %d devices to %s\n", *devices, strings.Join(files, ", "))
		return nil
	}
	set.SetLatency(*latency)

	logger := slog.New(slog.NewJSONHandler(stderr, nil))
	servers := map[string]http.Handler{*listen: set.Handler()}
	for _, v := range set.Vendors {
		if addr := *perVendor[v.Name]; addr != "" {
			servers[addr] = v.Handler
		}
	}
	errc := make(chan error, len(servers))
	var running []*http.Server
	for addr, h := range servers {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return fmt.Errorf("listen %s: %w", addr, err)
		}
		srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
		running = append(running, srv)
		logger.Info("mockvendors listening", "addr", ln.Addr().String(), "devices", *devices, "seed", *seed)
		go func() { errc <- srv.Serve(ln) }()
	}
	if *drift > 0 {
		go driftLoop(ctx, set, *drift, *driftInterval, tick, func(tick uint64, changes []fleet.Change) {
			logger.Info("fleet drifted", "tick", tick, "devices", len(changes), "reenrolled", reenrolled(changes))
		})
	}
	select {
	case <-ctx.Done():
	case err := <-errc:
		return err
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, s := range running {
		_ = s.Shutdown(sctx)
	}
	return nil
}

// emitBatches writes the fleet as Cloudflare would send it: batches of at
// most 1000 devices, the first to path, the next to path-2, path-3...
func emitBatches(set *mockset.Set, path string) ([]string, error) {
	ext := filepath.Ext(path)
	stem := strings.TrimSuffix(path, ext)
	var files []string
	for i, b := range set.Batches(1000) {
		name := path
		if i > 0 {
			name = fmt.Sprintf("%s-%d%s", stem, i+1, ext)
		}
		data, err := json.MarshalIndent(map[string]any{"devices": b}, "", "  ")
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(name, append(data, '\n'), 0o644); err != nil {
			return nil, fmt.Errorf("emit batch: %w", err)
		}
		files = append(files, name)
	}
	return files, nil
}
