package fleet

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/postured/postured/providers"
	"github.com/postured/postured/providers/crowdstrike"
	"github.com/postured/postured/providers/crowdstrike/crowdstrikemock"
)

func TestFalconViewDeterministic(t *testing.T) {
	now := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	a, _ := json.Marshal(Generate(500, 7, now).FalconHosts())
	b, _ := json.Marshal(Generate(500, 7, now).FalconHosts())
	if string(a) != string(b) {
		t.Fatal("FalconHosts differs between two generations from the same seed")
	}
	za, _ := json.Marshal(Generate(500, 7, now).FalconAssessments())
	zb, _ := json.Marshal(Generate(500, 7, now).FalconAssessments())
	if string(za) != string(zb) {
		t.Fatal("FalconAssessments differs between two generations from the same seed")
	}
}

func TestFalconViewShape(t *testing.T) {
	f := Generate(2000, 42, time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC))
	hosts, zta := f.FalconHosts(), f.FalconAssessments()

	want := 0
	for _, d := range f.Devices {
		if d.InFalcon {
			want++
			if d.Reenrolled {
				want++
			}
		}
	}
	if len(hosts) != want {
		t.Fatalf("hosts = %d, want %d (one per Falcon device plus re-enrolment duplicates)", len(hosts), want)
	}
	aid := regexp.MustCompile(`^[0-9a-f]{32}$`)
	mac := regexp.MustCompile(`^[0-9a-f]{2}(-[0-9a-f]{2}){5}$`)
	ids := map[string]bool{}
	counts := map[string]int{}
	serials := map[string]int{}
	for _, h := range hosts {
		if !aid.MatchString(h.DeviceID) || !aid.MatchString(h.CID) {
			t.Fatalf("bad ids in %+v", h)
		}
		if ids[h.DeviceID] {
			t.Fatalf("duplicate AID %s", h.DeviceID)
		}
		ids[h.DeviceID] = true
		if !mac.MatchString(h.MACAddress) || !mac.MatchString(h.ConnectionMACAddress) {
			t.Fatalf("MACs not in Falcon form: %q %q", h.MACAddress, h.ConnectionMACAddress)
		}
		if _, err := time.Parse(time.RFC3339, h.LastSeen); err != nil || strings.Contains(h.LastSeen, ".") {
			t.Fatalf("last_seen %q is not RFC 3339 without fractions", h.LastSeen)
		}
		if h.MACAddress != h.ConnectionMACAddress {
			counts["two MACs"]++
		}
		if strings.Contains(h.Hostname, ".") {
			counts["fqdn"]++
		}
		if h.Hostname != strings.ToLower(h.Hostname) {
			counts["upper-case hostname"]++
		}
		if strings.HasPrefix(h.SerialNumber, "ec2") {
			counts["uuid serial"]++
		}
		if h.Status != "normal" {
			counts["contained"]++
		}
		if h.ReducedFunctionalityMode == "yes" {
			counts["rfm"]++
		}
		if s, ok := providers.NormalizeSerial(h.SerialNumber); ok {
			serials[s]++
		}
	}
	for _, n := range serials {
		if n > 1 {
			counts["duplicate serials"]++
		}
	}
	assessed := 0
	for _, a := range zta {
		if !ids[a.AID] {
			t.Fatalf("assessment for unknown AID %s", a.AID)
		}
		if a.Assessment.Overall < 1 || a.Assessment.Overall > 100 {
			t.Fatalf("overall %d out of 1..100", a.Assessment.Overall)
		}
		assessed++
	}
	counts["unassessed"] = len(hosts) - assessed
	for _, k := range []string{"two MACs", "fqdn", "upper-case hostname", "uuid serial", "contained", "rfm", "duplicate serials", "unassessed"} {
		if counts[k] == 0 {
			t.Errorf("no host with %s in a 2000-device fleet; counts %v", k, counts)
		}
	}
	if counts["unassessed"] > len(hosts)/3 {
		t.Errorf("%d of %d hosts unassessed: implausibly many", counts["unassessed"], len(hosts))
	}
}

// TestFalconViewThroughProvider looks the whole Cloudflare batch up through
// the real provider against the mock serving this view: every device in
// Falcon must be found by each key Cloudflare sends for it, and contained
// hosts must score 0.
func TestFalconViewThroughProvider(t *testing.T) {
	f := Generate(400, 11, time.Now())
	mock := crowdstrikemock.New(crowdstrikemock.Options{Devices: f.FalconHosts(), Assessments: f.FalconAssessments()})
	srv := httptest.NewServer(mock)
	defer srv.Close()
	cfg := &crowdstrike.Config{
		Common:       providers.Common{Name: "falcon", Type: "crowdstrike", Weight: 1},
		HTTPConfig:   providers.HTTPConfig{RequestsPerSecond: 1000, Burst: 1000},
		BaseURL:      srv.URL,
		ClientID:     "falcon-client",
		ClientSecret: "falcon-secret",
	}
	cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	p, err := crowdstrike.New(cfg, providers.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	batch := f.Batch()
	for _, kind := range []providers.Kind{providers.KindSerial, providers.KindMAC, providers.KindHostname} {
		t.Run(kind.String(), func(t *testing.T) {
			want := map[string]*Device{}
			var values []string
			for i, cd := range batch {
				raw := map[providers.Kind]string{providers.KindSerial: cd.SerialNumber, providers.KindMAC: cd.MACAddress, providers.KindHostname: cd.Hostname}[kind]
				v, ok := providers.Normalize(kind, raw)
				if !ok {
					continue
				}
				values = append(values, v)
				if f.Devices[i].InFalcon {
					want[v] = &f.Devices[i]
				}
			}
			recs, err := p.Lookup(context.Background(), providers.Query{Kind: kind, Values: slices.Compact(slices.Sorted(slices.Values(values)))})
			if err != nil {
				t.Fatal(err)
			}
			for v, d := range want {
				found := false
				for _, r := range recs {
					if r.Has(kind, v) {
						found = true
						if d.Contained && r.LastSeen.Equal(d.LastSeen) && r.Score != 0 {
							t.Errorf("contained device %d scored %d (%s)", d.Index, r.Score, r.Reason)
						}
					}
				}
				if !found {
					t.Errorf("device %d (%s %q) in Falcon but not found", d.Index, kind, v)
				}
			}
		})
	}
}
