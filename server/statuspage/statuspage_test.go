package statuspage

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/postured/postured/aggregate"
)

// xss is an identifier a vendor or a caller could send.
const xss = `<script>alert("pwned")</script>`

// fakeExplainer explains every device the same way, echoing its hostname
// where vendors' data would appear.
type fakeExplainer struct {
	calls atomic.Int64
	last  atomic.Pointer[aggregate.Device]
}

func (f *fakeExplainer) Explain(_ context.Context, d aggregate.Device) aggregate.Explanation {
	f.calls.Add(1)
	f.last.Store(&d)
	return aggregate.Explanation{DeviceID: "explain", Score: 73, S2SID: "rec-" + d.Hostname, S2SIDFrom: "intune", Decision: "weighted mean of 1 provider",
		Providers: []aggregate.ProviderDetail{{Provider: "intune", Weight: 2, Outcome: aggregate.OutcomeMatched, MatchedOn: "hostname",
			MatchedValue: d.Hostname, RecordID: "rec-" + d.Hostname, Score: 73, Counted: true, Reason: "compliant"}}}
}

type fixedStatus aggregate.Status

func (s fixedStatus) Status() aggregate.Status { return aggregate.Status(s) }

func newPage(t *testing.T, ex *fakeExplainer) (*Page, *Recorder) {
	t.Helper()
	clk := &clock{t: t0}
	rec := newRecorder(t, RecorderConfig{Now: clk.Now})
	p, err := New(Config{
		Providers: []ProviderInfo{{Name: "intune", Type: "intune", Mode: "sync"}, {Name: "crowdstrike", Type: "crowdstrike", Mode: "query"}},
		Statuses: map[string]aggregate.StatusReporter{
			"intune": fixedStatus{Ready: true, LastSuccess: t0.Add(-90 * time.Second), Records: 4321, LastError: "graph: " + xss},
		},
		Recorder: rec, Explainer: ex, Now: clk.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	return p, rec
}

func get(p *Page, query string) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	p.ServeHTTP(w, httptest.NewRequest("GET", "/status?"+query, nil))
	return w
}

func TestPageContent(t *testing.T) {
	p, rec := newPage(t, &fakeExplainer{})
	stats := aggregate.Stats{Duration: 1234 * time.Millisecond, Matched: map[string]int{"intune": 2},
		Errors: map[string]int{"crowdstrike": 3}}
	b := batch(t0.Add(-time.Minute), stats, scored{"a", 95, "serial"}, scored{"b", 42, "mac"}, scored{"c", 3, ""})
	for i := range b.Results { // both providers were asked
		b.Results[i].Providers = append(b.Results[i].Providers, aggregate.ProviderResult{Provider: "crowdstrike", Outcome: aggregate.OutcomeUnmatched})
	}
	rec.ObserveBatch(t.Context(), b)
	rec.ObserveResponse("crowdstrike", 429)
	rec.ObserveResponse("crowdstrike", 200)
	w := get(p, "")
	if w.Code != 200 {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	body := w.Body.String()
	for _, want := range []string{
		// intune: type, mode, records, last sync, age, devices, errors, 429s, by serial, mac, hostname, email
		`<td>intune</td><td>intune</td><td>sync</td>
<td class="num">4321</td><td class="time">2026-12-01 09:28:30Z</td><td>1m30s`,
		`<td class="num">3</td><td class="num">0</td><td class="num">0</td>
<td class="num">33.3% (1)</td><td class="num">33.3% (1)</td><td class="num">0.0% (0)</td><td class="num">0.0% (0)</td>`,
		// crowdstrike: no freshness to report; its errors and 429s
		`<td>crowdstrike</td><td>crowdstrike</td><td>query</td>
<td class="num">-</td><td class="time">-</td><td>-</td>`,
		`<td class="num">3</td><td class="num bad">3</td><td class="num bad">1</td>`,
		// the batch
		`<tr class="batch"><td class="time">2026-12-01 09:29:00Z</td><td class="num">3</td><td class="num">1.234s</td>
<td>intune 2</td></tr>`,
		// the chart: one device each in 0-9, 40-49, 90-100
		`(3 devices)`,
		`<th>Errors (1h)</th>`,
		`data-decile="90-100"`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks\n%s\n---\n%s", want, body)
		}
	}
	if n := len(regexp.MustCompile(`<rect class="bar" `).FindAllString(body, -1)); n != 10 {
		t.Errorf("%d bars, want one per decile", n)
	}
	for h, want := range map[string]string{
		"Content-Type":            "text/html; charset=utf-8",
		"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
		"Cache-Control":           "no-store",
		"Referrer-Policy":         "no-referrer",
	} {
		if got := w.Header().Get(h); got != want {
			t.Errorf("%s: %q, want %q", h, got, want)
		}
	}
}

func TestPageSearch(t *testing.T) {
	long := strings.Repeat("a", 257)
	tests := []struct {
		name       string
		query      string
		wantStatus int
		wantText   string // in the page, escaped as html/template does
		want       *aggregate.Device
	}{
		{"no search", "", 200, "", nil},
		{"empty form", "serial=&mac=&hostname=&email=", 400, "give at least one of serial, mac, hostname, email", nil},
		{"too long", "hostname=" + long, 400, "hostname: longer than 256 bytes", nil},
		{"too long beside a good serial", "serial=S1&email=" + long, 400, "email: longer than 256 bytes", nil},
		{"device_id alone", "device_id=x", 400, "give at least one of serial, mac, hostname, email", nil},
		{"device_id too long", "serial=S1&device_id=" + long, 400, "device_id: longer than 256 bytes", nil},
		{"device_id reaches the explainer", "serial=S1&device_id=dev-1", 200, `value="dev-1"`, &aggregate.Device{ID: "dev-1", Serial: "S1"}},
		{"hostname", "hostname=mbp-7", 200, `<span class="score" id="device-score">73</span>`, &aggregate.Device{Hostname: "mbp-7"}},
		{"every key", "serial=C02X&mac=" + url.QueryEscape("aa:bb:cc:dd:ee:ff") + "&hostname=h&email=" + url.QueryEscape("j@example.com"), 200,
			`<td>intune</td><td class="num">2</td><td>matched</td>`,
			&aggregate.Device{Serial: "C02X", MAC: "aa:bb:cc:dd:ee:ff", Hostname: "h", Email: "j@example.com"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ex := &fakeExplainer{}
			p, _ := newPage(t, ex)
			w := get(p, tc.query)
			if w.Code != tc.wantStatus {
				t.Fatalf("status %d, want %d", w.Code, tc.wantStatus)
			}
			if !strings.Contains(w.Body.String(), tc.wantText) {
				t.Errorf("page lacks %q:\n%s", tc.wantText, w.Body)
			}
			if tc.wantStatus == 400 && !strings.Contains(w.Body.String(), `<p class="error" id="search-error">`+tc.wantText+`</p>`) {
				t.Errorf("error not shown as the search's error:\n%s", w.Body)
			}
			if tc.want == nil {
				if n := ex.calls.Load(); n != 0 {
					t.Errorf("explainer called %d times", n)
				}
				if strings.Contains(w.Body.String(), `id="device"`) {
					t.Error("device view without a search")
				}
				return
			}
			if got := *ex.last.Load(); got != *tc.want {
				t.Errorf("explained %+v, want %+v", got, *tc.want)
			}
		})
	}
}

// Identifiers come from vendors and callers: none may become markup,
// wherever the page shows it (search box, explanation, sync errors).
func TestPageEscapes(t *testing.T) {
	p, rec := newPage(t, &fakeExplainer{})
	rec.ObserveBatch(t.Context(), batch(t0, aggregate.Stats{Matched: map[string]int{xss: 1}}, scored{xss, 50, "hostname"}))
	for _, query := range []string{"hostname=" + url.QueryEscape(xss), "hostname=" + url.QueryEscape(xss) + "&serial=" + strings.Repeat("x", 300)} {
		w := get(p, query)
		body := w.Body.String()
		if strings.Contains(body, "<script") {
			t.Fatalf("%s: markup injected:\n%s", query, body)
		}
		if !strings.Contains(body, "&lt;script&gt;alert(&#34;pwned&#34;)&lt;/script&gt;") {
			t.Errorf("%s: the identifier is not shown escaped:\n%s", query, body)
		}
	}
}

func TestNewRefuses(t *testing.T) {
	rec := newRecorder(t, RecorderConfig{})
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{Explainer: &fakeExplainer{}}, "status page: no recorder"},
		{Config{Recorder: rec}, "status page: no explainer"},
	} {
		t.Run(tc.want, func(t *testing.T) {
			if _, err := New(tc.cfg); err == nil || err.Error() != tc.want {
				t.Errorf("err = %v, want %s", err, tc.want)
			}
		})
	}
}

var _ http.Handler = (*Page)(nil)
