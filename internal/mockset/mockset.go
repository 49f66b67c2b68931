// Package mockset assembles every vendor mock over one generated fleet and
// serves them under path prefixes, together with a stand-in for the
// Cloudflare side of the demo: an Access certs endpoint and token minter,
// and the posture batch Cloudflare would send for the same fleet. It is
// what cmd/mockvendors serves and what `mockvendors demo` runs in-process,
// and it generates the demo configuration from the same vendor list.
package mockset

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"text/template"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/postured/postured/internal/fleet"
	"github.com/postured/postured/internal/localaccess"
	"github.com/postured/postured/internal/mockkit"
	"github.com/postured/postured/providers"
	"github.com/postured/postured/providers/crowdstrike/crowdstrikemock"
	"github.com/postured/postured/providers/intune/intunemock"
	"github.com/postured/postured/providers/jamf/jamfmock"
)

// vendors is the one list of vendor mocks: adding a vendor is adding its
// line here (and its provider to internal/app's Registry). The order is
// the demo configuration's s2s_id_from.
func vendors(f *fleet.Fleet) []mockkit.Vendor {
	return []mockkit.Vendor{
		crowdstrikemock.Vendor(f),
		intunemock.Vendor(f),
		jamfmock.Vendor(f),
	}
}

// The Access team and audience of the tokens the stand-in mints; the demo
// configuration accepts exactly these.
const (
	AccessTeam     = "demo.cloudflareaccess.com"
	AccessAudience = "demo-posture-app-aud"
)

// PrefixAccess is the Access stand-in's path prefix on the shared port;
// each vendor mock is under /<name>.
const PrefixAccess = "/access"

// Policies every provider of the demo configuration shares.
const (
	demoMaxLastSeen  = "30d"
	demoSyncInterval = "1m"
)

//go:embed demo.yaml.tmpl
var demoTemplate string

// Names are the vendor mocks' names, in list order.
func Names() []string {
	var out []string
	for _, v := range vendors(&fleet.Fleet{}) {
		out = append(out, v.Name)
	}
	return out
}

// DemoEnv is the environment DemoConfig reads: the mocks at mocksURL,
// postured listening on listen.
func DemoEnv(mocksURL, listen string) func(string) (string, bool) {
	env := map[string]string{"MOCKVENDORS_URL": mocksURL, "POSTURED_LISTEN": listen}
	return func(k string) (string, bool) { v, ok := env[k]; return v, ok }
}

// Serve serves the set's mocks on a loopback httptest server, closed when
// t's test ends (t is a *testing.T or *testing.B), and returns its URL.
func (s *Set) Serve(t interface{ Cleanup(func()) }) string {
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return srv.URL
}

// DemoConfig is the postured configuration for this mock set: the
// demo.yaml.tmpl template with one provider entry per vendor mock, each
// pointing at ${MOCKVENDORS_URL}/<name>. The demo runs it, compose mounts
// it (as the committed demo.yaml), and the end-to-end tests start from it.
// ${MOCKVENDORS_URL} and ${POSTURED_LISTEN} are left for the caller.
func DemoConfig() ([]byte, error) {
	tmpl, err := template.New("demo.yaml.tmpl").Option("missingkey=error").Parse(demoTemplate)
	if err != nil {
		return nil, fmt.Errorf("demo config: %w", err)
	}
	var names []string
	var entries strings.Builder
	for _, v := range vendors(&fleet.Fleet{}) {
		entry, err := providerEntry(v)
		if err != nil {
			return nil, fmt.Errorf("demo config: %w", err)
		}
		names = append(names, v.Name)
		entries.WriteString(entry)
	}
	var out bytes.Buffer
	err = tmpl.Execute(&out, map[string]string{
		"AccessTeam":     AccessTeam,
		"AccessAudience": AccessAudience,
		"AccessPrefix":   PrefixAccess,
		"S2SIDFrom":      strings.Join(names, ", "),
		"Providers":      entries.String(),
	})
	if err != nil {
		return nil, fmt.Errorf("demo config: %w", err)
	}
	return out.Bytes(), nil
}

// providerEntry is v's item of the providers: list, indented for it.
func providerEntry(v mockkit.Vendor) (string, error) {
	pc := v.Config("${MOCKVENDORS_URL}/" + v.Name)
	name, err := scalar(v.Name)
	if err != nil {
		return "", fmt.Errorf("provider %s: name: %w", v.Name, err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "  - name: %s\n    type: %s\n    weight: %d\n", name, name, pc.Weight)
	settings := []mockkit.Setting{{Key: "mode", Value: string(pc.Mode)}}
	if pc.Mode == providers.ModeSync {
		settings = append(settings, mockkit.Setting{Key: "sync_interval", Value: demoSyncInterval})
	}
	settings = append(settings, mockkit.Setting{Key: "max_last_seen", Value: demoMaxLastSeen})
	for _, s := range append(settings, pc.Settings...) {
		value, err := scalar(s.Value)
		if err != nil {
			return "", fmt.Errorf("provider %s: %s: %w", v.Name, s.Key, err)
		}
		fmt.Fprintf(&b, "    %s: %s\n", s.Key, value)
	}
	return b.String(), nil
}

// scalar renders v as a YAML string: double-quoted when it carries a
// ${VAR}, for the reader's eye, otherwise quoted only where YAML needs it.
func scalar(v string) (string, error) {
	n := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: v}
	if strings.Contains(v, "${") {
		n.Style = yaml.DoubleQuotedStyle
	}
	out, err := yaml.Marshal(n)
	return strings.TrimSuffix(string(out), "\n"), err
}

// Set is the fleet and the mocks serving it.
type Set struct {
	Fleet *fleet.Fleet
	// Vendors are the vendor mocks over Fleet, in list order.
	Vendors []mockkit.Vendor
	Access  *localaccess.Issuer

	driftMu sync.Mutex
	drift   *fleet.Drift
}

// New generates a fleet of n devices from seed and builds the mocks.
func New(n int, seed uint64, now time.Time) (*Set, error) {
	f := fleet.Generate(n, seed, now)
	iss, err := localaccess.New("https://" + AccessTeam)
	if err != nil {
		return nil, err
	}
	return &Set{Fleet: f, Vendors: vendors(f), Access: iss, drift: fleet.NewDrift(f)}, nil
}

// Drift advances the fleet one tick at time at: percent of the managed
// devices change (fleet.Drift picks them from the seed and the tick
// number), and every vendor mock applies the changes to the records it
// holds while it keeps serving. It returns the changes.
func (s *Set) Drift(percent float64, at time.Time) []fleet.Change {
	s.driftMu.Lock()
	defer s.driftMu.Unlock()
	changes := s.drift.Next(percent, at)
	for _, v := range s.Vendors {
		v.Drift(changes)
	}
	return changes
}

// Vendor returns the vendor mock called name.
func (s *Set) Vendor(name string) (mockkit.Vendor, bool) {
	for _, v := range s.Vendors {
		if v.Name == name {
			return v, true
		}
	}
	return mockkit.Vendor{}, false
}

// Handler serves every vendor mock under /<name>, plus:
//
//	GET /access/cdn-cgi/access/certs   the stand-in team's certs
//	GET /access/token                  an application token for AccessAudience, valid 1h
//	GET /cloudflare/batch.json         the batch Cloudflare would POST (?offset=&limit=, limit <= 1000)
//	GET /healthz
func (s *Set) Handler() http.Handler {
	mux := http.NewServeMux()
	for _, v := range s.Vendors {
		mux.Handle("/"+v.Name+"/", http.StripPrefix("/"+v.Name, v.Handler))
	}
	mux.Handle("GET "+PrefixAccess+"/cdn-cgi/access/certs", s.Access)
	mux.HandleFunc("GET "+PrefixAccess+"/token", func(w http.ResponseWriter, _ *http.Request) {
		tok, err := s.Access.AppToken(AccessAudience, time.Hour)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/jwt")
		fmt.Fprint(w, tok)
	})
	mux.HandleFunc("GET /cloudflare/batch.json", s.serveBatch)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	return mux
}

func (s *Set) serveBatch(w http.ResponseWriter, r *http.Request) {
	all := s.Fleet.Batch()
	offset, err1 := atoiDefault(r.URL.Query().Get("offset"), 0)
	limit, err2 := atoiDefault(r.URL.Query().Get("limit"), 1000)
	if err1 != nil || err2 != nil || offset < 0 || limit < 1 || limit > 1000 {
		http.Error(w, "offset must be >= 0 and limit 1..1000", http.StatusBadRequest)
		return
	}
	offset = min(offset, len(all))
	end := min(offset+limit, len(all))
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"devices": all[offset:end]})
}

func atoiDefault(s string, def int) (int, error) {
	if s == "" {
		return def, nil
	}
	return strconv.Atoi(s)
}

// Batches splits the fleet's Cloudflare view into batches of at most
// size devices, as Cloudflare does.
func (s *Set) Batches(size int) [][]fleet.CloudflareDevice {
	all := s.Fleet.Batch()
	var out [][]fleet.CloudflareDevice
	for len(all) > 0 {
		n := min(size, len(all))
		out = append(out, all[:n])
		all = all[n:]
	}
	return out
}

// Calls is the total of vendor API calls served so far, per vendor mock.
func (s *Set) Calls() map[string]int {
	out := make(map[string]int, len(s.Vendors))
	for _, v := range s.Vendors {
		out[v.Name] = v.Calls.Requests()
	}
	return out
}

// SetLatency delays every vendor API response by d.
func (s *Set) SetLatency(d time.Duration) {
	for _, v := range s.Vendors {
		v.Faults.SetLatency(d)
	}
}
