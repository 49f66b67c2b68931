// Package statuspage serves GET /status: one server-rendered HTML page,
// no JavaScript, for the operator or help-desk engineer who has a browser
// but no shell or metrics stack. Per provider: mode, records, last sync,
// errors and 429s and match rate by key over the last hour; the last
// batches; the distribution of the devices' latest scores; and a search
// that explains one device with the same Explainer as GET /v1/explain and,
// when the search names a device_id and history is on, shows that device's
// score changes from the same reader as GET /v1/history. Its data comes
// from a Recorder, a server.BatchObserver.
package statuspage

import (
	"bytes"
	"cmp"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/postured/postured/aggregate"
	"github.com/postured/postured/internal/logging"
	"github.com/postured/postured/providers"
	"github.com/postured/postured/server"
)

//go:embed templates/*.html
var templateFS embed.FS

// ProviderInfo is a configured provider, as the page names it.
type ProviderInfo struct {
	Name string
	Type string
	Mode string
}

// Config configures a Page.
type Config struct {
	// Providers are listed in this order.
	Providers []ProviderInfo
	// Statuses are the providers that report data freshness, by name.
	Statuses map[string]aggregate.StatusReporter
	Recorder *Recorder
	// Explainer answers the search.
	Explainer server.Explainer
	// History, if set, is the score history GET /v1/history reads. The
	// device view shows it only for a search that names a device_id: that
	// is Cloudflare's identifier, which no vendor record carries, so a
	// device found by serial, MAC, hostname or email has no device_id the
	// page could look up. Nil means history is disabled and the view says
	// nothing of it.
	History server.HistoryReader
	Logger  *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Page is the /status handler.
type Page struct {
	cfg  Config
	tmpl *template.Template
}

// New builds a Page.
func New(cfg Config) (*Page, error) {
	if cfg.Recorder == nil {
		return nil, errors.New("status page: no recorder")
	}
	if cfg.Explainer == nil {
		return nil, errors.New("status page: no explainer")
	}
	cfg.Logger = logging.OrDiscard(cfg.Logger)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	tmpl, err := template.ParseFS(templateFS, "templates/*.html")
	if err != nil {
		return nil, fmt.Errorf("status page: templates: %w", err)
	}
	return &Page{cfg: cfg, tmpl: tmpl}, nil
}

// The view the templates render. Times and durations are formatted here,
// so the templates only place text; html/template escapes all of it.
type (
	view struct {
		Now       string
		Window    string
		Kinds     []string
		Providers []providerRow
		Batches   []batchRow
		Chart     chart
		Search    search
	}
	providerRow struct {
		Name, Type, Mode string
		Records          string
		LastSync, Age    string
		LastError        string
		Devices          int
		Errors           int
		RateLimited      int
		// MatchRates are "85.0% (850)" per kind, in view.Kinds order.
		MatchRates []string
	}
	batchRow struct {
		At       string
		Devices  int
		Duration string
		Matched  []nameCount
	}
	nameCount struct {
		Name  string
		Count int
	}
	search struct {
		Query  aggregate.Device
		Error  string
		Device *deviceView
	}
	// deviceView is what the device templates render: one field per
	// section.
	deviceView struct {
		Explanation aggregate.Explanation
		// History is nil when history is disabled.
		History *historyView
	}
	historyView struct {
		DeviceID string
		// Unavailable says why the history is not shown: no device_id
		// given, or the store failed.
		Unavailable string
		// Seen is false for a device no batch carried.
		Seen    bool
		Score   int
		SeenAt  string
		Changes []changeRow
	}
	changeRow struct {
		At                 string
		OldScore, NewScore int
		Causes             []string
	}
)

// searchKeys are the query parameters of the search form; any of them
// present means the form was submitted.
var searchKeys = []string{"serial", "mac", "hostname", "email", "device_id"}

// timeLayout is how the page prints instants.
const timeLayout = "2006-01-02 15:04:05Z07:00"

func (p *Page) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	now := p.cfg.Now()
	snap := p.cfg.Recorder.Snapshot()
	v := view{
		Now:       now.UTC().Format(timeLayout),
		Window:    shortDuration(snap.Window),
		Providers: p.providerRows(snap, now),
		Batches:   batchRows(snap.Batches),
		Chart:     newChart(snap.Deciles),
	}
	for _, k := range providers.Kinds {
		v.Kinds = append(v.Kinds, k.String())
	}
	status := http.StatusOK
	q := r.URL.Query()
	if slices.ContainsFunc(searchKeys, q.Has) {
		d, err := server.ExplainQuery(q)
		v.Search.Query = d
		if err != nil {
			// The same message GET /v1/explain answers; the form keeps
			// what was typed so it can be corrected.
			status = http.StatusBadRequest
			v.Search.Error = err.Error()
			v.Search.Query = aggregate.Device{ID: q.Get("device_id"), Serial: q.Get("serial"), MAC: q.Get("mac"), Hostname: q.Get("hostname"), Email: q.Get("email")}
		} else {
			v.Search.Device = &deviceView{Explanation: p.cfg.Explainer.Explain(r.Context(), d), History: p.history(r, d.ID)}
		}
	}
	var b bytes.Buffer
	if err := p.tmpl.ExecuteTemplate(&b, "status", v); err != nil {
		p.cfg.Logger.ErrorContext(r.Context(), "status page: render", "error", err)
		http.Error(w, "render status page", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	// No script runs on this page, ever; identifiers come from vendors.
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	// The URL of a search names a device; the page names many.
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(b.Bytes())
}

// history is the device's score history as the device view shows it; nil
// when history is disabled. A failed read is logged and noted on the page,
// which still renders: the explanation above it is live and still useful.
func (p *Page) history(r *http.Request, deviceID string) *historyView {
	if p.cfg.History == nil {
		return nil
	}
	hv := &historyView{DeviceID: deviceID}
	if deviceID == "" {
		hv.Unavailable = "Give the device_id to see this device's score history."
		return hv
	}
	d, ok, err := p.cfg.History.Device(r.Context(), deviceID)
	if err != nil {
		p.cfg.Logger.ErrorContext(r.Context(), "status page: history read failed", "error", err)
		hv.Unavailable = "Score history unavailable: the history store could not be read (see the log)."
		return hv
	}
	if !ok {
		return hv
	}
	hv.Seen, hv.Score, hv.SeenAt = true, d.Score, d.SeenAt.UTC().Format(timeLayout)
	for _, c := range d.Changes {
		hv.Changes = append(hv.Changes, changeRow{At: c.At.UTC().Format(timeLayout), OldScore: c.OldScore, NewScore: c.NewScore, Causes: c.Causes})
	}
	return hv
}

// shortDuration prints 1h rather than 1h0m0s.
func shortDuration(d time.Duration) string {
	return strings.TrimSuffix(strings.TrimSuffix(d.String(), "0s"), "0m")
}

func (p *Page) providerRows(snap Snapshot, now time.Time) []providerRow {
	rows := make([]providerRow, 0, len(p.cfg.Providers))
	for _, pi := range p.cfg.Providers {
		c := snap.Providers[pi.Name]
		row := providerRow{Name: pi.Name, Type: pi.Type, Mode: pi.Mode, Records: "-", LastSync: "-", Age: "-",
			Devices: c.Devices, Errors: c.Errors, RateLimited: c.RateLimited}
		if sr, ok := p.cfg.Statuses[pi.Name]; ok {
			st := sr.Status()
			row.Records = strconv.Itoa(st.Records)
			row.LastError = st.LastError
			if st.LastSuccess.IsZero() {
				row.LastSync = "never"
			} else {
				row.LastSync = st.LastSuccess.UTC().Format(timeLayout)
				row.Age = now.Sub(st.LastSuccess).Round(time.Second).String()
			}
		}
		for _, k := range providers.Kinds {
			n := c.MatchedBy[k.String()]
			if c.Devices == 0 {
				row.MatchRates = append(row.MatchRates, "-")
				continue
			}
			row.MatchRates = append(row.MatchRates, fmt.Sprintf("%.1f%% (%d)", 100*float64(n)/float64(c.Devices), n))
		}
		rows = append(rows, row)
	}
	return rows
}

func batchRows(bs []BatchSummary) []batchRow {
	rows := make([]batchRow, 0, len(bs))
	for _, b := range bs {
		row := batchRow{At: b.At.UTC().Format(timeLayout), Devices: b.Devices, Duration: b.Duration.Round(time.Millisecond).String()}
		for name, n := range b.Matched {
			row.Matched = append(row.Matched, nameCount{name, n})
		}
		slices.SortFunc(row.Matched, func(a, b nameCount) int { return cmp.Compare(a.Name, b.Name) })
		rows = append(rows, row)
	}
	return rows
}

// chart is the score distribution as an SVG bar chart, laid out here.
type chart struct {
	Width, Height int
	Total         int
	Bars          []bar
}

type bar struct {
	Label                 string
	Count                 int
	X, Y, W, H            int
	TextX, CountY, LabelY int
}

// Chart geometry, in SVG user units.
const (
	chartBarWidth = 44
	chartGap      = 12
	chartPlot     = 160 // tallest bar
	chartTop      = 18  // room for the count over the tallest bar
	chartBottom   = 20  // room for the decile labels
)

func newChart(deciles [10]int) chart {
	c := chart{Width: len(deciles)*(chartBarWidth+chartGap) + chartGap, Height: chartTop + chartPlot + chartBottom}
	most := 0
	for _, n := range deciles {
		c.Total += n
		most = max(most, n)
	}
	base := chartTop + chartPlot
	for i, n := range deciles {
		h := 0
		if most > 0 {
			h = n * chartPlot / most
		}
		label := fmt.Sprintf("%d-%d", i*10, i*10+9)
		if i == 9 {
			label = "90-100"
		}
		x := chartGap + i*(chartBarWidth+chartGap)
		c.Bars = append(c.Bars, bar{
			Label: label, Count: n, X: x, Y: base - h, W: chartBarWidth, H: h,
			TextX: x + chartBarWidth/2, CountY: base - h - 4, LabelY: base + 15,
		})
	}
	return c
}
