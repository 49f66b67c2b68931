package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
)

// browserPath finds Debian's chromium. Where there is none the test
// skips, saying how to get one, except under CI=true, where scripts/test
// installs it and its absence is a failure.
func browserPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	browserUnavailable(t, "no chromium on PATH (scripts/test installs Debian's chromium with apt-get when run as root)")
	return ""
}

// browserUnavailable skips the test, or fails it under CI=true.
func browserUnavailable(t *testing.T, why string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("headless browser test cannot run under CI=true: %s", why)
	}
	t.Skipf("SKIP headless browser test: %s", why)
}

// artifactDir is where the test leaves its screenshot: $POSTURED_ARTIFACTS
// (CI keeps it; `POSTURED_ARTIFACTS=$PWD/docs` refreshes the README's
// docs/status.png), else a temporary directory.
func artifactDir(t *testing.T) string {
	t.Helper()
	if d := os.Getenv("POSTURED_ARTIFACTS"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	return t.TempDir()
}

// batchDevice is one device of the demo's batch file.
type batchDevice struct {
	ID       string `json:"device_id"`
	Serial   string `json:"serial_number"`
	MAC      string `json:"mac_address"`
	Hostname string `json:"hostname"`
	Email    string `json:"email"`
}

// TestStatusPageInBrowser opens the running demo's status page in a real
// headless chromium, with JavaScript off: the provider rows carry
// numbers, the chart has one bar per decile, and searching for a device
// with the form shows the score /posture gave it. It saves a screenshot.
func TestStatusPageInBrowser(t *testing.T) {
	browser := browserPath(t)
	ctx, cancel := context.WithCancel(t.Context())
	clock := &manualClock{eager: map[time.Duration]bool{readyPoll: true}}
	stdout, out := lines(t)
	done := make(chan error, 1)
	go func() {
		// No drift, and no poll after the first: scores hold still.
		done <- run(ctx, []string{"demo", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--devices", "1000", "--seed", "7",
			"--dir", t.TempDir(), "--drift", "0"}, stdout, io.Discard, clock.ticker)
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("demo: %v", err)
		}
	})
	expectLine(t, out, `^postured demo is running on `)
	statusURL := expectLine(t, out, `^Status page, in a browser: (http://\S+/status)$`)[1]
	m := expectLine(t, out, `^  curl -s -H "Cf-Access-Jwt-Assertion: \$\(cat (\S+)\)" --data @(\S+) (http://\S+/posture)$`)
	tokenFile, batchFile, postureURL := m[1], m[2], m[3]
	expectLine(t, out, `^poll cycle 1: devices=1000 .* errors=0$`)

	dev, want := postureScore(t, tokenFile, batchFile, postureURL)

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(browser), chromedp.NoSandbox, chromedp.WindowSize(1400, 1000))
	actx, acancel := chromedp.NewExecAllocator(ctx, opts...)
	defer acancel()
	bctx, bcancel := chromedp.NewContext(actx)
	defer bcancel()
	// The first call starts the browser; it gets no deadline of its own.
	if _, err := chromedp.Call(bctx, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: true}); err != nil {
		browserUnavailable(t, "chromium at "+browser+" did not start: "+err.Error())
	}
	bctx, tcancel := context.WithTimeout(bctx, time.Minute)
	defer tcancel()

	if err := chromedp.Do(bctx, chromedp.Navigate(statusURL), chromedp.WaitReady(chromedp.CSS("#providers"))); err != nil {
		t.Fatalf("open %s: %v", statusURL, err)
	}
	rows, err := chromedp.Run(bctx, chromedp.Evaluate[[][]string](
		`[...document.querySelectorAll("#providers tr.provider")].map(r => [...r.cells].map(c => c.textContent.trim()))`))
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 3 {
		t.Fatalf("%d provider rows, want the demo's 3: %q", len(rows), rows)
	}
	rate := regexp.MustCompile(`^\d+\.\d% \(\d+\)$`)
	for _, r := range rows {
		// name type mode records last-sync age devices errors 429s, then
		// the match rate by serial, mac, hostname, email
		if len(r) != 13 {
			t.Fatalf("row %q: %d cells, want 13", r, len(r))
		}
		if n, err := strconv.Atoi(r[6]); err != nil || n < 1000 {
			t.Errorf("%s: devices asked %q, want the cycle's 1000 or more", r[0], r[6])
		}
		for _, c := range append([]string{r[7], r[8]}, r[9:]...) {
			if _, err := strconv.Atoi(c); err != nil && !rate.MatchString(c) {
				t.Errorf("%s: cell %q is not a number", r[0], c)
			}
		}
		if r[2] == "sync" {
			if n, err := strconv.Atoi(r[3]); err != nil || n == 0 {
				t.Errorf("%s (sync): records %q, want a count", r[0], r[3])
			}
		}
	}
	bars, err := chromedp.Run(bctx, chromedp.Nodes(chromedp.CSSAll("svg#distribution rect.bar")))
	if err != nil {
		t.Fatal(err)
	}
	if len(bars) != 10 {
		t.Errorf("%d bars, want one per decile", len(bars))
	}

	fill := []chromedp.Action[chromedp.Void]{}
	// device_id too: /posture's score includes the device's hysteresis
	// state and device_id overrides, which explain reads by it.
	for name, v := range map[string]string{"serial": dev.Serial, "mac": dev.MAC, "hostname": dev.Hostname, "email": dev.Email, "device_id": dev.ID} {
		if v != "" {
			fill = append(fill, chromedp.SendKeys(chromedp.CSS(`input[name="`+name+`"]`), v))
		}
	}
	fill = append(fill, chromedp.Click(chromedp.CSS(`button[type="submit"]`)), chromedp.WaitReady(chromedp.CSS("#device-score")))
	if err := chromedp.Do(bctx, fill...); err != nil {
		t.Fatalf("search: %v", err)
	}
	got, err := chromedp.Run(bctx, chromedp.Text(chromedp.CSS("#device-score")))
	if err != nil {
		t.Fatal(err)
	}
	if got != strconv.Itoa(want) {
		t.Errorf("the page scores %+v %s, /posture gave %d", dev, got, want)
	}

	png, err := chromedp.Run(bctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	shot := filepath.Join(artifactDir(t), "status.png")
	if err := os.WriteFile(shot, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", shot)
}

// postureScore posts the demo's batch file as its printed curl does and
// returns a device that some provider matched, with its score.
func postureScore(t *testing.T, tokenFile, batchFile, url string) (batchDevice, int) {
	t.Helper()
	tok, err := os.ReadFile(tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	body, err := os.ReadFile(batchFile)
	if err != nil {
		t.Fatal(err)
	}
	var batch struct {
		Devices []batchDevice `json:"devices"`
	}
	if err := json.Unmarshal(body, &batch); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, url, bytes.NewReader(body))
	req.Header.Set("Cf-Access-Jwt-Assertion", string(tok))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var reply struct {
		Result map[string]struct {
			S2SID string `json:"s2s_id"`
			Score int    `json:"score"`
		} `json:"result"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&reply); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("posture: %d %v", resp.StatusCode, err)
	}
	for _, d := range batch.Devices {
		// A middling score: neither the unmatched 0 nor a perfect 100.
		if r := reply.Result[d.ID]; r.S2SID != "" && r.Score > 0 && r.Score < 100 {
			return d, r.Score
		}
	}
	t.Fatal("no device of the batch scored between 0 and 100")
	return batchDevice{}, 0
}
