package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/postured/postured/internal/app"
	"github.com/postured/postured/internal/mockset"
	"github.com/postured/postured/whatif"
)

// proposeDemoChange is the policy change the what-if test proposes:
// CrowdStrike counts far less (scores move both ways), and Jamf becomes
// required (devices it does not know score 0).
func proposeDemoChange(t *testing.T, cfgText string) string {
	t.Helper()
	out := strings.Replace(cfgText, "    weight: 5\n", "    weight: 1\n", 1)
	out = strings.Replace(out, "    type: jamf\n", "    type: jamf\n    required: true\n", 1)
	if strings.Count(out, "required: true") != 1 || strings.Count(out, "weight: 1\n") != 1 {
		t.Fatal("demo config changed shape; update proposeDemoChange")
	}
	return out
}

// TestWhatIfAgainstTheFixture runs a polling cycle, then asks `postured
// whatif` what the proposed change would do, and checks the answer device
// by device against the fixture's independent computation under both
// configs; it costs no vendor call. The same change as a shadow policy
// counts the same devices up and down.
func TestWhatIfAgainstTheFixture(t *testing.T) {
	if testing.Short() {
		t.Skip("2000-device fleet")
	}
	set, err := mockset.New(2000, 4, fleetNow)
	if err != nil {
		t.Fatal(err)
	}
	token, err := set.Access.AppToken(mockset.AccessAudience, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	withAdmin := func(s string) string {
		return strings.Replace(s, "listen: \"${POSTURED_LISTEN}\"\n", "listen: \"${POSTURED_LISTEN}\"\nadmin_listen: \"127.0.0.1:0\"\n", 1)
	}
	withShadow := func(s string) string {
		return s + "shadow_policies:\n  - name: proposed\n    providers:\n      crowdstrike: {weight: 1}\n      jamf: {required: true}\n"
	}
	in, cfg := startDemo(t, set, "", "info", withAdmin, withShadow)
	waitReady(t, in)
	m := regexp.MustCompile(`"admin_addr":"([^"]+)"`).FindStringSubmatch(in.logs.String())
	if m == nil {
		t.Fatal("no admin_addr in the start log line")
	}
	adminURL := "http://" + m[1]

	// The proposed config, as the operator would write it: the running one
	// with the change, every ${VAR} written out.
	demo, err := mockset.DemoConfig()
	if err != nil {
		t.Fatal(err)
	}
	mocksURL := strings.TrimSuffix(cfg.Access.CertsURL, "/access/cdn-cgi/access/certs")
	env := mockset.DemoEnv(mocksURL, "127.0.0.1:0")
	proposedText := os.Expand(strings.Replace(proposeDemoChange(t, string(demo)), "  deadline: 4s\n", "  deadline: 60s\n", 1),
		func(k string) string { v, _ := env(k); return v })
	proposedCfg, err := app.Parse([]byte(proposedText), app.Registry(), env)
	if err != nil {
		t.Fatal(err)
	}
	proposedFile := t.TempDir() + "/proposed.yaml"
	if err := os.WriteFile(proposedFile, []byte(proposedText), 0o600); err != nil {
		t.Fatal(err)
	}
	current, next := expectedScores(t, set, cfg), expectedScores(t, set, proposedCfg)

	// One polling cycle. Each batch's shadow scoring is waited for, so
	// none is skipped for the next.
	live := map[string]int{}
	exact := map[string]bool{} // devices the answer agrees with the fixture on
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	for bi, b := range set.Batches(1000) {
		r := postBatch(t, in.url, token, b)
		for _, d := range b {
			got, w := r.Result[d.DeviceID], current[d.DeviceID]
			live[d.DeviceID] = got.Score
			exact[d.DeviceID] = got.Score == w.score && got.S2SID == w.s2sID
		}
		if err := in.logs.waitFor(ctx, `"msg":"shadow policy"`, bi+1); err != nil {
			t.Fatalf("shadow policy did not score batch %d: %v", bi+1, err)
		}
	}

	before := set.Calls()
	var out, errOut bytes.Buffer
	if code := run(t.Context(), []string{"whatif", "--admin-url", adminURL, "--proposed", proposedFile, "--thresholds", "50,70,80", "--json"}, &out, &errOut); code != 0 {
		t.Fatalf("whatif exit %d: %s", code, errOut.String())
	}
	if calls := diffCalls(set.Calls(), before); slices.ContainsFunc(slicesOf(calls), func(n int) bool { return n != 0 }) {
		t.Errorf("what-if made vendor calls: %v", calls)
	}
	var rep whatif.Report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("decode %s: %v", out.String(), err)
	}
	if rep.Devices != len(live) {
		t.Errorf("what-if scored %d devices, the cycle had %d", rep.Devices, len(live))
	}
	crossings := 0
	for _, c := range rep.Thresholds {
		var wantDown, wantUp, gotDown, gotUp []string
		for id := range live {
			if !exact[id] {
				continue
			}
			cur, nxt := current[id].score, next[id].score
			if cur >= c.Threshold && nxt < c.Threshold {
				wantDown = append(wantDown, id)
			}
			if cur < c.Threshold && nxt >= c.Threshold {
				wantUp = append(wantUp, id)
			}
		}
		for _, set := range []struct {
			chs []whatif.Change
			ids *[]string
		}{{c.Down, &gotDown}, {c.Up, &gotUp}} {
			for _, ch := range set.chs {
				if ch.From != live[ch.DeviceID] {
					t.Errorf("threshold %d: %s from %d, but the batch answered %d", c.Threshold, ch.DeviceID, ch.From, live[ch.DeviceID])
				}
				if exact[ch.DeviceID] {
					*set.ids = append(*set.ids, ch.DeviceID)
				}
			}
		}
		for _, s := range [][]string{wantDown, wantUp, gotDown, gotUp} {
			slices.Sort(s)
		}
		if !slices.Equal(gotDown, wantDown) || !slices.Equal(gotUp, wantUp) {
			t.Errorf("threshold %d: down %d up %d devices, the fixture says down %d up %d\ngot down %v\nwant down %v",
				c.Threshold, len(gotDown), len(gotUp), len(wantDown), len(wantUp), head(gotDown), head(wantDown))
		}
		crossings += len(wantDown) + len(wantUp)
		t.Logf("threshold %d: %d fall below, %d rise", c.Threshold, len(c.Down), len(c.Up))
	}
	if crossings == 0 {
		t.Fatal("the proposed change moves no device across any threshold: the test proves nothing")
	}

	// The shadow policy is the same change: the same devices went up and down.
	metrics := scrape(t, adminURL+"/metrics")
	for dir, want := range map[string]int{"up": rep.Raised, "down": rep.Lowered} {
		if got := metrics[`postured_shadow_delta_total{direction="`+dir+`",policy="proposed"}`]; int(got) != want {
			t.Errorf("shadow %s: %v devices, what-if says %d", dir, got, want)
		}
	}

	out.Reset()
	if code := run(t.Context(), []string{"whatif", "--admin-url", adminURL, "--proposed", proposedFile, "--thresholds", "70"}, &out, &errOut); code != 0 {
		t.Fatalf("whatif exit %d: %s", code, errOut.String())
	}
	t.Logf("whatif output:\n%s", out.String())
	if want := fmt.Sprintf("threshold 70: %d fall below, %d rise to or above", len(rep.Thresholds[1].Down), len(rep.Thresholds[1].Up)); !strings.Contains(out.String(), want) {
		t.Errorf("text output lacks %q:\n%s", want, out.String())
	}
}

func slicesOf(m map[string]int) []int {
	var out []int
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

func head(s []string) []string { return s[:min(len(s), 5)] }

// scrape reads a Prometheus text endpoint into "name{labels}" -> value,
// labels sorted by name as the exposition format writes them.
func scrape(t *testing.T, url string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for name, f := range families {
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			slices.Sort(labels)
			key := name
			if len(labels) > 0 {
				key += "{" + strings.Join(labels, ",") + "}"
			}
			switch {
			case m.GetCounter() != nil:
				out[key] = m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				out[key] = m.GetGauge().GetValue()
			}
		}
	}
	return out
}

func TestWhatIfCommandErrors(t *testing.T) {
	dir := t.TempDir()
	inv := writeFile(t, dir, "inv.yaml", minimalInventory)
	noAdmin := writeFile(t, dir, "postured.yaml", "access: {team_domain: t.cloudflareaccess.com, audience: [aud]}\nproviders:\n  - {name: inv, type: static, weight: 1, file: "+inv+"}\n")
	proposed := writeFile(t, dir, "proposed.yaml", "access: {team_domain: t.cloudflareaccess.com, audience: [aud]}\n")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no proposed", []string{"-c", noAdmin}, "postured: whatif: --proposed FILE is required\n"},
		{"no config", []string{"--proposed", proposed}, "postured: whatif: -c FILE is required\n"},
		{"no admin_listen", []string{"-c", noAdmin, "--proposed", proposed},
			"postured: whatif: the config sets no admin_listen: what-if runs in the serving postured, on its admin listener (or give --admin-url)\n"},
		{"proposed file missing", []string{"--admin-url", "http://127.0.0.1:1", "--proposed", dir + "/nope.yaml"}, "postured: whatif: open " + dir + "/nope.yaml: no such file or directory\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			if code := run(t.Context(), append([]string{"whatif"}, tc.args...), &out, &errOut); code != 1 || errOut.String() != tc.want {
				t.Errorf("exit %d, stderr %q; want 1, %q", code, errOut.String(), tc.want)
			}
		})
	}
}

func TestAdminBase(t *testing.T) {
	for listen, want := range map[string]string{
		":9090":          "http://127.0.0.1:9090",
		"0.0.0.0:9090":   "http://127.0.0.1:9090",
		"[::]:9090":      "http://127.0.0.1:9090",
		"10.0.0.7:9090":  "http://10.0.0.7:9090",
		"localhost:9090": "http://localhost:9090",
		"[::1]:9090":     "http://[::1]:9090",
	} {
		if got, err := adminBase(listen); err != nil || got != want {
			t.Errorf("adminBase(%q) = %q, %v; want %q", listen, got, err, want)
		}
	}
}
