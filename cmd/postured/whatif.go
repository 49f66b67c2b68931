package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/postured/postured/whatif"
)

// whatIfSample is how many devices per direction the text output names.
const whatIfSample = 5

// cmdWhatIf asks the running postured (its admin listener: it holds the
// cache, the indexes and the devices of the last polling cycle) what
// --proposed would change, without a vendor call.
func cmdWhatIf(ctx context.Context, args []string, stdout io.Writer) error {
	fs, file := newFlags("whatif")
	proposedFile := fs.String("proposed", "", "the proposed config file")
	thresholds := fs.String("thresholds", "50,70,80", "comma-separated scores to report crossings of")
	window := fs.Duration("window", time.Hour, "score the devices batches carried this long ago or since")
	adminURL := fs.String("admin-url", "", "the running postured's admin listener (default: from admin_listen in -c)")
	asJSON := fs.Bool("json", false, "print the whole report as JSON, every device")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *proposedFile == "" {
		return errors.New("whatif: --proposed FILE is required")
	}
	base := *adminURL
	if base == "" {
		cfg, err := loadConfig(fs, *file)
		if err != nil {
			return err
		}
		if base, err = adminBase(cfg.AdminListen); err != nil {
			return err
		}
	}
	proposed, err := os.ReadFile(*proposedFile) // #nosec G304 -- the operator's proposed config file
	if err != nil {
		return fmt.Errorf("whatif: %w", err)
	}
	q := url.Values{"thresholds": {*thresholds}, "window": {window.String()}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/whatif?"+q.Encode(), bytes.NewReader(proposed))
	if err != nil {
		return fmt.Errorf("whatif: %w", err)
	}
	req.Header.Set("Content-Type", "application/yaml")
	resp, err := (&http.Client{Timeout: 5 * time.Minute}).Do(req)
	if err != nil {
		return fmt.Errorf("whatif: ask the running postured: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("whatif: read the answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct{ Error string }
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			return fmt.Errorf("whatif: %s", e.Error)
		}
		return fmt.Errorf("whatif: %s answered %s", base, resp.Status)
	}
	if *asJSON {
		_, err := stdout.Write(body)
		return err
	}
	var r whatif.Report
	if err := json.Unmarshal(body, &r); err != nil {
		return fmt.Errorf("whatif: decode the answer: %w", err)
	}
	return printWhatIf(stdout, r, *window)
}

// adminBase is the URL to reach an admin_listen address from this host.
func adminBase(listen string) (string, error) {
	if listen == "" {
		return "", errors.New("whatif: the config sets no admin_listen: what-if runs in the serving postured, on its admin listener (or give --admin-url)")
	}
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "", fmt.Errorf("whatif: admin_listen %q: %w", listen, err)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port), nil
}

func printWhatIf(w io.Writer, r whatif.Report, window time.Duration) error {
	var b bytes.Buffer
	fmt.Fprintf(&b, "what-if over %d devices seen in the last %s, scored from the cache and indexes (no vendor calls)\n", r.Devices, window)
	fmt.Fprintf(&b, "%d devices would get another score: %d higher, %d lower\n", r.Changed, r.Raised, r.Lowered)
	for _, c := range r.Thresholds {
		fmt.Fprintf(&b, "\nthreshold %d: %d fall below, %d rise to or above\n", c.Threshold, len(c.Down), len(c.Up))
		for _, set := range []struct {
			dir string
			chs []whatif.Change
		}{{"down", c.Down}, {"up", c.Up}} {
			for i, ch := range set.chs {
				if i == whatIfSample {
					fmt.Fprintf(&b, "  %s: %d more (--json lists every device)\n", set.dir, len(set.chs)-whatIfSample)
					break
				}
				fmt.Fprintf(&b, "  %-4s %s %d -> %d: %s\n", set.dir, ch.DeviceID, ch.From, ch.To, ch.Reason)
			}
		}
	}
	if len(r.Warnings) > 0 {
		b.WriteString("\nwarnings:\n")
		for _, wn := range r.Warnings {
			fmt.Fprintf(&b, "  %s\n", wn)
		}
	}
	_, err := w.Write(b.Bytes())
	return err
}
