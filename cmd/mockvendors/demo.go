package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/postured/postured/internal/app"
	"github.com/postured/postured/internal/cfpoll"
	"github.com/postured/postured/internal/conf"
	"github.com/postured/postured/internal/fleet"
	"github.com/postured/postured/internal/mockset"
)

// cmdDemo starts the mocks, then postured in-process against them with the
// generated demo configuration, prints how to call it, and plays Cloudflare
// polling it while the fleet drifts, a line per poll cycle on stdout. It
// lives here, not in cmd/postured, so the service binary links no mock.
func cmdDemo(ctx context.Context, args []string, stdout, stderr io.Writer, tick ticker) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:8080", "address postured listens on")
	adminListen := fs.String("admin-listen", "127.0.0.1:8081", "postured's admin listener (status page, metrics); empty: none")
	devices := fs.Int("devices", 5000, "devices in the mock fleet")
	seed := fs.Uint64("seed", 1, "fleet seed")
	dir := fs.String("dir", "", "where to write the demo batch and token (default: a new temp dir)")
	pollInterval := fs.Duration("poll-interval", 20*time.Second, "time between Cloudflare poll cycles")
	drift := fs.Float64("drift", 2, "percent of the devices that change in their vendors every --drift-interval")
	driftInterval := fs.Duration("drift-interval", 30*time.Second, "how often the fleet drifts")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *pollInterval <= 0 {
		return errors.New("demo: --poll-interval must be > 0")
	}
	if err := checkDrift(*drift, *driftInterval); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	set, err := mockset.New(*devices, *seed, time.Now())
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("demo: mocks: %w", err)
	}
	mocks := &http.Server{Handler: set.Handler(), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = mocks.Serve(ln) }()
	defer mocks.Close()
	mocksURL := "http://" + ln.Addr().String()

	if *dir == "" {
		*dir, err = os.MkdirTemp("", "postured-demo-")
	} else {
		err = os.MkdirAll(*dir, 0o755)
	}
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	// The demo runs the very file it tells the user to explain with.
	cfgFile := filepath.Join(*dir, "postured.yaml")
	env := map[string]string{"MOCKVENDORS_URL": mocksURL, "POSTURED_LISTEN": *listen}
	auditFile := filepath.Join(*dir, "audit", "audit.jsonl")
	if err := writeDemoConfig(cfgFile, env, *adminListen, auditFile); err != nil {
		return err
	}
	cfg, err := app.Load(cfgFile, app.Registry(), func(string) (string, bool) { return "", false })
	if err != nil {
		return fmt.Errorf("demo: generated config: %w", err)
	}
	demoDev, err := demoDevice(set.Fleet)
	if err != nil {
		return err
	}
	serial := demoDev.Serial
	batchFile := filepath.Join(*dir, "batch.json")
	if _, err := emitDemoFiles(set, batchFile); err != nil {
		return err
	}
	tokenFile := filepath.Join(*dir, "token.jwt")
	tok, err := set.Access.AppToken(mockset.AccessAudience, 24*time.Hour)
	if err != nil {
		return err
	}
	if err := os.WriteFile(tokenFile, []byte(tok), 0o600); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stdout = &lockedWriter{w: stdout} // the poller and the drift print side by side
	var polling sync.WaitGroup
	var pollErr error
	err = app.ServeAddrs(ctx, cfg, app.Registry(), stderr, "demo", func(addrs app.Addrs) {
		addr := addrs.Public
		fmt.Fprintf(stdout, "\npostured demo is running on http://%s against %d mock devices (mocks at %s).\n", addr, *devices, mocksURL)
		if addrs.Admin != "" {
			fmt.Fprintf(stdout, `
Status page, in a browser: http://%[1]s/status
(providers, last batches, score chart, device search). It is on the admin
listener (admin_listen, with /metrics), which asks no token: keep that address
private. The token below is for the public listener (/posture, /v1/explain).
`, addrs.Admin)
		}
		fmt.Fprintf(stdout, `
Score the first 1000 devices, as Cloudflare would:

  curl -s -H "Cf-Access-Jwt-Assertion: $(cat %[2]s)" --data @%[3]s http://%[1]s/posture

Explain one device (from the repository root, while the demo runs):

  go run ./cmd/postured explain -c %[7]s --serial %[8]s

or ask the running postured the same:

  curl -s -H "Cf-Access-Jwt-Assertion: $(cat %[2]s)" "http://%[1]s/v1/explain?serial=%[8]s"

Why was a device blocked? Its score changes and their causes (once drift
has changed it), and the answers it got, recomputed from the audit log:

  curl -s -H "Cf-Access-Jwt-Assertion: $(cat %[2]s)" "http://%[1]s/v1/history?device_id=%[9]s"
  go run ./cmd/postured replay -c %[7]s --device-id %[9]s
  go run ./cmd/postured audit verify %[10]s

Readiness:            curl -s http://%[1]s/readyz
Stop with Ctrl-C.

Playing Cloudflare: the whole fleet is polled every %[4]s, a "poll cycle" line each;
%[5]v%% of the devices drift in their vendors every %[6]s, so scores move between polls.

`, addr, tokenFile, batchFile, *pollInterval, *drift, *driftInterval, cfgFile, serial, demoDev.CloudflareID, auditFile)
		p, err := cfpoll.New(cfpoll.Config{
			Target: "http://" + addr + "/posture",
			Tokens: cfpoll.TokenFunc(func(context.Context) (string, error) {
				return set.Access.AppToken(mockset.AccessAudience, *pollInterval+time.Minute)
			}),
			Devices: set.Fleet.Batch(),
		})
		if err != nil {
			pollErr = fmt.Errorf("demo: %w", err)
			cancel()
			return
		}
		polling.Go(func() {
			// Cloudflare would not wait, but a first cycle before Intune's
			// first sync would show every Intune device changing next time.
			if waitReady(ctx, "http://"+addr+"/readyz", tick) != nil {
				return // stopped
			}
			if err := pollLoop(ctx, p, *pollInterval, 0, tick, stdout); err != nil {
				pollErr = fmt.Errorf("demo: %w", err)
				cancel()
			}
		})
		if *drift > 0 {
			polling.Go(func() {
				driftLoop(ctx, set, *drift, *driftInterval, tick, func(tick uint64, changes []fleet.Change) {
					fmt.Fprintf(stdout, "drift tick %d: %d devices changed in their vendors (%d re-enrolled)\n", tick, len(changes), reenrolled(changes))
				})
			})
		}
	})
	cancel()
	polling.Wait()
	return errors.Join(pollErr, err)
}

// writeDemoConfig writes the generated demo configuration to path with
// env's variables expanded, so `postured explain -c path` needs no
// environment. Expansion goes through the same node walk as loading, so
// the file means what the demo runs. It holds the mocks' credentials:
// 0600. adminListen, if set, is added as admin_listen after listen. The
// demo keeps score history (in memory) and an audit log at auditFile, so
// "why was this device blocked?" has answers to show.
func writeDemoConfig(path string, env map[string]string, adminListen, auditFile string) error {
	text, err := mockset.DemoConfig()
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	var root yaml.Node
	if err := yaml.Unmarshal(text, &root); err != nil {
		return fmt.Errorf("demo: generated config: %w", err)
	}
	if err := conf.ExpandEnv(&root, func(k string) (string, bool) { v, ok := env[k]; return v, ok }); err != nil {
		return fmt.Errorf("demo: generated config: %w", err)
	}
	if adminListen != "" {
		if err := insertAfter(&root, "listen", "admin_listen", adminListen); err != nil {
			return fmt.Errorf("demo: generated config: %w", err)
		}
	}
	var extra yaml.Node
	if err := yaml.Unmarshal([]byte("history: {enabled: true}\n"+
		// 5000 devices every 20 s write about 1 MB a second: keep 128 MB.
		"audit: {enabled: true, path: "+strconv.Quote(auditFile)+", max_file_bytes: 16777216, retention: {max_files: 8}}\n"), &extra); err != nil {
		return fmt.Errorf("demo: generated config: %w", err)
	}
	root.Content[0].Content = append(root.Content[0].Content, extra.Content[0].Content...)
	var out bytes.Buffer
	out.WriteString("# Written by `mockvendors demo` with MOCKVENDORS_URL and POSTURED_LISTEN\n# expanded: it works while that demo runs.\n")
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(2)
	if err := enc.Encode(&root); err != nil {
		return fmt.Errorf("demo: write config: %w", err)
	}
	if err := enc.Close(); err != nil {
		return fmt.Errorf("demo: write config: %w", err)
	}
	if err := os.WriteFile(path, out.Bytes(), 0o600); err != nil {
		return fmt.Errorf("demo: write config: %w", err)
	}
	return nil
}

// insertAfter adds key: value to the document's top-level mapping, right
// after the key after.
func insertAfter(doc *yaml.Node, after, key, value string) error {
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return errors.New("not a mapping")
	}
	m := doc.Content[0]
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == after {
			kv := []*yaml.Node{{Kind: yaml.ScalarNode, Value: key}, {Kind: yaml.ScalarNode, Value: value, Style: yaml.DoubleQuotedStyle}}
			m.Content = slices.Insert(m.Content, i+2, kv...)
			return nil
		}
	}
	return fmt.Errorf("no %q key", after)
}

// demoDevice is a device worth explaining: the first with a hardware
// serial that some vendor manages, has seen lately, and holds one record
// of, so its explanation shows matches rather than edge cases.
func demoDevice(f *fleet.Fleet) (fleet.Device, error) {
	for _, d := range f.Devices {
		if d.Serial != "" && !d.Unmanaged && !d.Stale && !d.Reenrolled {
			return d, nil
		}
	}
	return fleet.Device{}, errors.New("demo: no managed device with a serial in the fleet")
}

// emitDemoFiles writes the fleet's first batch (1000 devices) to path.
func emitDemoFiles(set *mockset.Set, path string) (int, error) {
	batches := set.Batches(1000)
	if len(batches) == 0 {
		return 0, errors.New("demo: empty fleet")
	}
	data, err := json.MarshalIndent(map[string]any{"devices": batches[0]}, "", "  ")
	if err != nil {
		return 0, err
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		return 0, fmt.Errorf("demo: write batch: %w", err)
	}
	return len(batches[0]), nil
}

// lockedWriter serialises writes to w.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
