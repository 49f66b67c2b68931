package validate

// deploy/grafana/postured.json against a live postured: the demo
// configuration served in-process against the mock vendors (as
// `mockvendors demo` runs it), one Cloudflare poll cycle through it, then
// every metric every panel and variable queries must be in its /metrics.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/postured/postured/internal/app"
	"github.com/postured/postured/internal/cfpoll"
	"github.com/postured/postured/internal/mockset"
)

const dashboardFile = "deploy/grafana/postured.json"

// dashboard is the part of a Grafana dashboard the queries live in.
type dashboard struct {
	Title      string                   `json:"title"`
	UID        string                   `json:"uid"`
	Panels     []grafPanel              `json:"panels"`
	Templating struct{ List []grafVar } `json:"templating"`
}

type grafPanel struct {
	ID         int                      `json:"id"`
	Type       string                   `json:"type"`
	Title      string                   `json:"title"`
	GridPos    struct{ H, W, X, Y int } `json:"gridPos"`
	Datasource json.RawMessage          `json:"datasource"`
	Targets    []struct {
		RefID      string          `json:"refId"`
		Expr       string          `json:"expr"`
		Datasource json.RawMessage `json:"datasource"`
	} `json:"targets"`
	Panels []grafPanel `json:"panels"` // a collapsed row's
}

type grafVar struct {
	Name  string `json:"name"`
	Type  string `json:"type"`
	Query any    `json:"query"` // a string, or {query: ...}
}

// query is one PromQL expression of the dashboard and where it is.
type query struct{ where, expr string }

var labelValues = regexp.MustCompile(`^\s*label_values\(\s*(.*),\s*[A-Za-z_][A-Za-z0-9_]*\s*\)\s*$`)

// dashboardQueries is every panel query and every query variable's
// metric selector; a panel without one, or on another data source than
// the dashboard's $datasource variable, fails.
func dashboardQueries(t *testing.T) []query {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(composeRepoRoot(t), dashboardFile))
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	if d.UID == "" || d.Title == "" {
		t.Errorf("%s: uid %q, title %q: want both (the uid keeps links stable across imports)", dashboardFile, d.UID, d.Title)
	}
	var qs []query
	checkDS := func(where string, raw json.RawMessage) {
		var ds struct{ UID string }
		if len(raw) > 0 && (json.Unmarshal(raw, &ds) != nil || ds.UID != "${datasource}") {
			t.Errorf("%s: data source %s, want the ${datasource} variable (a fixed uid breaks on import)", where, raw)
		}
	}
	ids := map[int]string{}
	var placed []grafPanel
	var walk func(ps []grafPanel)
	walk = func(ps []grafPanel) {
		for _, p := range ps {
			if prev, dup := ids[p.ID]; dup {
				t.Errorf("panels %q and %q share id %d", prev, p.Title, p.ID)
			}
			ids[p.ID] = p.Title
			g := p.GridPos
			if g.W <= 0 || g.H <= 0 || g.X < 0 || g.X+g.W > 24 {
				t.Errorf("panel %q: gridPos %+v is off the 24-column grid", p.Title, g)
			}
			for _, q := range placed {
				o := q.GridPos
				if g.X < o.X+o.W && o.X < g.X+g.W && g.Y < o.Y+o.H && o.Y < g.Y+g.H {
					t.Errorf("panels %q and %q overlap", q.Title, p.Title)
				}
			}
			placed = append(placed, p)
			if p.Type == "row" {
				walk(p.Panels)
				continue
			}
			where := fmt.Sprintf("panel %q", p.Title)
			checkDS(where, p.Datasource)
			if len(p.Targets) == 0 {
				t.Errorf("%s has no query", where)
			}
			for _, tg := range p.Targets {
				checkDS(where, tg.Datasource)
				if strings.TrimSpace(tg.Expr) == "" {
					t.Errorf("%s query %s is empty", where, tg.RefID)
				}
				qs = append(qs, query{where + " query " + tg.RefID, tg.Expr})
			}
		}
	}
	walk(d.Panels)
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		q, _ := v.Query.(string)
		if m, ok := v.Query.(map[string]any); ok {
			q, _ = m["query"].(string)
		}
		m := labelValues.FindStringSubmatch(q)
		if m == nil {
			t.Errorf("variable %s: query %q, want label_values(selector, label)", v.Name, q)
			continue
		}
		qs = append(qs, query{"variable " + v.Name, m[1]})
	}
	return qs
}

// livePosturedMetrics serves the demo configuration against in-process
// mocks, syncs its inventories, plays one Cloudflare poll cycle through it
// and returns the sample names of its /metrics.
func livePosturedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	set, err := mockset.New(300, 1, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	mocksURL := set.Serve(t)
	text, err := mockset.DemoConfig()
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := app.Parse(text, app.Registry(), mockset.DemoEnv(mocksURL, "127.0.0.1:0"))
	if err != nil {
		t.Fatalf("demo config: %v", err)
	}
	a, err := app.Build(cfg, app.Registry(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	// Synchronously, so the sync gauges have a first crawl to report.
	a.SyncNow(ctx)
	srv, closeEval, err := a.NewServer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = closeEval() }()
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- srv.Run(runCtx, ln) }()
	defer func() {
		stop()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("postured: %v", err)
		}
	}()
	base := "http://" + ln.Addr().String()

	p, err := cfpoll.New(cfpoll.Config{
		Target: base + "/posture",
		Tokens: cfpoll.TokenFunc(func(context.Context) (string, error) {
			return set.Access.AppToken(mockset.AccessAudience, time.Hour)
		}),
		Devices:   set.Fleet.Batch(),
		BatchSize: 100,
	})
	if err != nil {
		t.Fatal(err)
	}
	if c := p.Poll(ctx); c.Err() != nil {
		t.Fatalf("poll cycle: %v", c.Err())
	}
	// A batch without a token and a malformed one: the refusal counters
	// get their series.
	tok, err := set.Access.AppToken(mockset.AccessAudience, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for _, token := range []string{"", tok} {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/posture", strings.NewReader(`{"devices":`))
		if err != nil {
			t.Fatal(err)
		}
		if token != "" {
			req.Header.Set("Cf-Access-Jwt-Assertion", token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode < 400 {
			t.Fatalf("a malformed batch (token %t) got %s", token != "", resp.Status)
		}
	}

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %s", resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("/metrics: %v", err)
	}
	names := map[string]bool{}
	for name, f := range families {
		if len(f.GetMetric()) == 0 {
			continue // declared, never observed: a query on it shows nothing
		}
		switch f.GetType() {
		case dto.MetricType_HISTOGRAM:
			names[name+"_bucket"], names[name+"_sum"], names[name+"_count"] = true, true, true
		case dto.MetricType_SUMMARY:
			names[name], names[name+"_sum"], names[name+"_count"] = true, true, true
		default:
			names[name] = true
		}
	}
	return names
}

func TestGrafanaDashboardMetricsExist(t *testing.T) {
	qs := dashboardQueries(t)
	live := livePosturedMetrics(t)
	used := map[string]bool{}
	for _, q := range qs {
		names, err := metricNames(q.expr)
		if err != nil {
			t.Errorf("%s: %v", q.where, err)
			continue
		}
		if len(names) == 0 {
			t.Errorf("%s: %q selects no metric", q.where, q.expr)
		}
		for _, n := range names {
			used[n] = true
			if !live[n] {
				t.Errorf("%s uses %s, which a running postured does not export", q.where, n)
			}
		}
	}
	// The panels the dashboard is for, by the metric behind each.
	for _, want := range []string{
		"postured_batch_duration_seconds_bucket",        // batch latency
		"postured_batch_devices_sum",                    // devices/s
		"postured_provider_devices_total",               // vendor errors, stale answers per provider
		"postured_provider_last_sync_timestamp_seconds", // sync age
		"postured_vendor_responses_total",               // vendor 429s per provider
	} {
		if !used[want] {
			t.Errorf("no panel queries %s", want)
		}
	}
	if t.Failed() {
		t.Logf("live metrics: %q", slices.Sorted(maps.Keys(live)))
	}
}
