package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/postured/postured/internal/cfpoll"
	"github.com/postured/postured/internal/fleet"
	"github.com/postured/postured/internal/mockset"
)

// cmdPoll plays Cloudflare's device posture service against --target
// until stopped, or for --cycles cycles. Each cycle's token comes from the
// mockvendors Access stand-in (--token-url): Access, not the posture
// service, mints the application token in Cloudflare too, and postured
// verifies it against the certs that same stand-in publishes, so the
// poller needs no key of its own.
func cmdPoll(ctx context.Context, args []string, stdout, stderr io.Writer, tick ticker) error {
	fs := flag.NewFlagSet("poll", flag.ContinueOnError)
	fs.SetOutput(stderr)
	target := fs.String("target", "", "posture endpoint URL to POST the batches to (required), e.g. http://localhost:8080/posture")
	tokenURL := fs.String("token-url", "http://localhost:9000"+mockset.PrefixAccess+"/token", "mockvendors Access stand-in URL that mints each cycle's token")
	interval := fs.Duration("interval", 5*time.Minute, "time between cycle starts, Cloudflare's polling frequency")
	cycles := fs.Int("cycles", 0, "exit after this many cycles (0: poll until stopped)")
	batch := fs.Int("batch", cfpoll.MaxBatch, "devices per request (at most 1000)")
	concurrency := fs.Int("concurrency", 1, "requests of a cycle in flight at once")
	devices := fs.Int("devices", 5000, "devices in the fleet (as mockvendors --devices)")
	seed := fs.Uint64("seed", 1, "fleet seed (as mockvendors --seed)")
	ready := fs.String("ready", "", "wait until this URL answers 200 before the first cycle, e.g. postured's /readyz, so the first cycle sees every vendor synced")
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch {
	case *target == "":
		return errors.New("poll: --target is required")
	case *interval <= 0:
		return errors.New("poll: --interval must be > 0")
	case *cycles < 0:
		return errors.New("poll: --cycles must be >= 0")
	case *devices < 1:
		return errors.New("poll: --devices must be >= 1")
	}
	p, err := cfpoll.New(cfpoll.Config{
		Target:      *target,
		Tokens:      cfpoll.URLToken(*tokenURL, &http.Client{Timeout: 10 * time.Second}),
		Devices:     fleet.Generate(*devices, *seed, time.Now()).Batch(),
		BatchSize:   *batch,
		Concurrency: *concurrency,
	})
	if err != nil {
		return fmt.Errorf("poll: %w", err)
	}
	if *ready != "" {
		if err := waitReady(ctx, *ready, tick); err != nil {
			return fmt.Errorf("poll: %w", err)
		}
	}
	return pollLoop(ctx, p, *interval, *cycles, tick, stdout)
}

// readyPoll is how often waitReady asks.
const readyPoll = time.Second

// waitReady returns once url answers 200, or with ctx's error.
func waitReady(ctx context.Context, url string, tick ticker) error {
	ticks, stop := tick(readyPoll)
	defer stop()
	client := &http.Client{Timeout: 5 * time.Second}
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return fmt.Errorf("ready: %w", err)
		}
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("ready: %s: %w", url, ctx.Err())
		case <-ticks:
		}
	}
}

// pollLoop runs a cycle now and then one per tick, printing a line for
// each. An answer Cloudflare would reject ends it with that error; failed
// requests do not, as Cloudflare just polls again, but after a bounded
// run (cycles > 0) they make it fail. It returns nil once ctx ends.
func pollLoop(ctx context.Context, p *cfpoll.Poller, interval time.Duration, cycles int, tick ticker, out io.Writer) error {
	ticks, stop := tick(interval)
	defer stop()
	failed := 0
	for {
		c := p.Poll(ctx)
		if ctx.Err() != nil {
			return nil // stopped mid-cycle: its errors are the stop's
		}
		fmt.Fprintln(out, cycleLine(&c))
		var invalid *cfpoll.InvalidAnswerError
		if err := c.Err(); errors.As(err, &invalid) {
			return fmt.Errorf("poll cycle %d: %w", c.N, err)
		}
		failed += len(c.Errors)
		if cycles > 0 && c.N >= cycles {
			if failed > 0 {
				return fmt.Errorf("poll: %d requests failed in %d cycles", failed, c.N)
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-ticks:
		}
	}
}

// shownChanged is how many changed device ids a cycle line names.
const shownChanged = 3

// cycleLine is a cycle on one line:
//
//	poll cycle 2: devices=5000 batches=5 duration=1.2s slowest_batch=310ms scores=[0-9:1203 … 90-100:2510] changed=37 (id id id +34 more) errors=0
func cycleLine(c *cfpoll.Cycle) string {
	var b strings.Builder
	slowest := time.Duration(0)
	if len(c.Latencies) > 0 {
		slowest = slices.Max(c.Latencies)
	}
	fmt.Fprintf(&b, "poll cycle %d: devices=%d batches=%d duration=%s slowest_batch=%s scores=[",
		c.N, c.Devices, c.Batches, c.Duration.Round(time.Millisecond), slowest.Round(time.Millisecond))
	for k, n := range c.Histogram {
		if k > 0 {
			b.WriteByte(' ')
		}
		hi := 10*k + 9
		if k == len(c.Histogram)-1 {
			hi = 100
		}
		fmt.Fprintf(&b, "%d-%d:%d", 10*k, hi, n)
	}
	fmt.Fprintf(&b, "] changed=%d", len(c.Changed))
	if len(c.Changed) > 0 {
		shown := c.Changed[:min(len(c.Changed), shownChanged)]
		fmt.Fprintf(&b, " (%s", strings.Join(shown, " "))
		if more := len(c.Changed) - len(shown); more > 0 {
			fmt.Fprintf(&b, " +%d more", more)
		}
		b.WriteByte(')')
	}
	fmt.Fprintf(&b, " errors=%d", len(c.Errors))
	if len(c.Errors) > 0 {
		fmt.Fprintf(&b, " (first: %v)", c.Errors[0])
	}
	return b.String()
}

// checkDrift validates the drift flags.
func checkDrift(percent float64, interval time.Duration) error {
	if percent < 0 || percent > 100 {
		return fmt.Errorf("--drift %v: must be a percentage, 0..100", percent)
	}
	if percent > 0 && interval <= 0 {
		return errors.New("--drift-interval must be > 0")
	}
	return nil
}

// driftLoop drifts the fleet on every tick until ctx ends, reporting each
// tick's changes.
func driftLoop(ctx context.Context, set *mockset.Set, percent float64, interval time.Duration, tick ticker, report func(tick uint64, changes []fleet.Change)) {
	ticks, stop := tick(interval)
	defer stop()
	for n := uint64(1); ; n++ {
		select {
		case <-ctx.Done():
			return
		case at := <-ticks:
			report(n, set.Drift(percent, at))
		}
	}
}

// reenrolled counts the re-enrolments among changes.
func reenrolled(changes []fleet.Change) int {
	n := 0
	for _, c := range changes {
		if c.Reenrolled {
			n++
		}
	}
	return n
}
