package mockset

import (
	"bytes"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/postured/postured/internal/app"
	"github.com/postured/postured/internal/fleet"
	"github.com/postured/postured/internal/mockkit"
)

// TestVendorsMatchRegistry keeps the vendor list and postured's provider
// registry in step: every provider type except static (which needs no
// vendor) has a mock in the list, and every mock a provider.
func TestVendorsMatchRegistry(t *testing.T) {
	var types []string
	for typ := range app.Registry() {
		if typ != "static" {
			types = append(types, typ)
		}
	}
	slices.Sort(types)
	if names := slices.Sorted(slices.Values(Names())); !slices.Equal(names, types) {
		t.Errorf("vendor mocks %q, registry provider types (but static) %q: add the missing line to mockset's vendors or app.Registry", names, types)
	}
}

// TestVendors checks what every vendor mock must offer, so a new vendor
// that forgets part of mockkit.Vendor fails here rather than in the
// end-to-end test.
func TestVendors(t *testing.T) {
	f := fleet.Generate(500, 1, time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC))
	seen := map[string]bool{}
	for _, v := range vendors(f) {
		t.Run(v.Name, func(t *testing.T) {
			if v.Name == "" || seen[v.Name] {
				t.Fatalf("name %q empty or used twice", v.Name)
			}
			seen[v.Name] = true
			if v.Handler == nil || v.Faults == nil || v.Calls == nil || v.ExpireTokens == nil || v.Config == nil || v.Drift == nil || v.Current == nil {
				t.Fatalf("incomplete: %+v", v)
			}
			if v.BatchCalls <= 0 {
				t.Errorf("BatchCalls %d", v.BatchCalls)
			}
			pc := v.Config("http://mocks/" + v.Name)
			if pc.Weight <= 0 || pc.Mode == "" || len(pc.Settings) == 0 {
				t.Errorf("provider config %+v", pc)
			}
			if len(v.Expected) == 0 || len(v.Expected) == len(f.Devices) {
				t.Errorf("expectations for %d of %d devices: a vendor holds some of the fleet", len(v.Expected), len(f.Devices))
			}
			for i, e := range v.Expected {
				if i < 0 || i >= len(f.Devices) || f.Devices[i].Unmanaged {
					t.Fatalf("expectation for device %d, which the vendor cannot hold", i)
				}
				if e.ID == "" || e.Score < 0 || e.Score > 100 || e.LastSeen.IsZero() || slices.Contains(e.Older, e.ID) {
					t.Fatalf("device %d: %+v", i, e)
				}
			}
		})
	}
}

// TestDemoConfigFile: compose mounts the committed demo.yaml, so it must be
// what DemoConfig generates.
func TestDemoConfigFile(t *testing.T) {
	want, err := DemoConfig()
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("demo.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("internal/mockset/demo.yaml is not the generated config; regenerate it with\n\tgo run ./cmd/mockvendors --write-config internal/mockset/demo.yaml\ngot:\n%s\nwant:\n%s", got, want)
	}
}

// TestDemoConfig parses the generated config as postured does and checks
// each vendor's entry: list order, the vendor's weight and mode, its
// base_url under the mock's prefix.
func TestDemoConfig(t *testing.T) {
	data, err := DemoConfig()
	if err != nil {
		t.Fatal(err)
	}
	const root = "http://127.0.0.1:9000"
	cfg, err := app.Parse(data, app.Registry(), DemoEnv(root, "127.0.0.1:0"))
	if err != nil {
		t.Fatalf("generated config: %v\n%s", err, data)
	}
	if !slices.Equal(cfg.Posture.S2SIDFrom, Names()) {
		t.Errorf("s2s_id_from %q, vendor list %q", cfg.Posture.S2SIDFrom, Names())
	}
	if cfg.Access.TeamDomain != AccessTeam || !slices.Equal(cfg.Access.Audience, []string{AccessAudience}) ||
		cfg.Access.CertsURL != root+PrefixAccess+"/cdn-cgi/access/certs" {
		t.Errorf("access %+v", cfg.Access)
	}
	vs := vendors(&fleet.Fleet{})
	if len(cfg.Providers.Configs) != len(vs) {
		t.Fatalf("%d providers for %d vendor mocks", len(cfg.Providers.Configs), len(vs))
	}
	for i, v := range vs {
		t.Run(v.Name, func(t *testing.T) {
			c := cfg.Providers.Configs[i].Base()
			want := v.Config(root + "/" + v.Name)
			if c.Name != v.Name || c.Type != v.Name || c.Weight != float64(want.Weight) || c.Mode != want.Mode {
				t.Errorf("entry %d: name %q type %q weight %v mode %q; vendor says weight %d mode %q",
					i, c.Name, c.Type, c.Weight, c.Mode, want.Weight, want.Mode)
			}
			if time.Duration(c.MaxLastSeen) != 30*24*time.Hour {
				t.Errorf("max_last_seen %v", time.Duration(c.MaxLastSeen))
			}
			if !bytes.Contains(data, []byte(fmt.Sprintf("base_url: \"${MOCKVENDORS_URL}/%s\"", v.Name))) {
				t.Errorf("no base_url under /%s in\n%s", v.Name, data)
			}
		})
	}
}

// TestSetLoopsOverVendors serves a Set of stand-in vendors: each gets its
// own prefix stripped, and Calls and SetLatency reach every one.
func TestSetLoopsOverVendors(t *testing.T) {
	paths := map[string]string{}
	var vs []mockkit.Vendor
	for _, name := range []string{"alpha", "beta"} {
		calls := &mockkit.Counter{}
		vs = append(vs, mockkit.Vendor{
			Name:   name,
			Faults: &mockkit.Faults{},
			Calls:  calls,
			Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				calls.Inc("any")
				paths[name] = r.URL.Path
			}),
		})
	}
	s := &Set{Fleet: &fleet.Fleet{}, Vendors: vs}
	h := s.Handler()
	for _, tc := range []struct{ path, vendor, want string }{
		{"/alpha/api/v1/x", "alpha", "/api/v1/x"},
		{"/beta/oauth2/token", "beta", "/oauth2/token"},
	} {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, tc.path, nil))
		if paths[tc.vendor] != tc.want {
			t.Errorf("GET %s: %s saw %q, want %q", tc.path, tc.vendor, paths[tc.vendor], tc.want)
		}
	}
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/alpha/again", nil))
	if got := s.Calls(); !maps.Equal(got, map[string]int{"alpha": 2, "beta": 1}) {
		t.Errorf("Calls() = %v", got)
	}
	// In a synctest bubble the latency Next sleeps is exact fake time.
	synctest.Test(t, func(t *testing.T) {
		s.SetLatency(3 * time.Second)
		for _, v := range vs {
			start := time.Now()
			v.Faults.Next(false)
			if d := time.Since(start); d != 3*time.Second {
				t.Errorf("%s: request delayed %v after SetLatency(3s)", v.Name, d)
			}
		}
	})
}
