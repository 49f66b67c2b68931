package crowdstrikemock

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/postured/postured/internal/fleet"
	"github.com/postured/postured/providers"
	"github.com/postured/postured/providers/crowdstrike"
)

var fleetNow = time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)

func TestFleetViewDeterministic(t *testing.T) {
	a, b := newView(fleet.Generate(500, 7, fleetNow)), newView(fleet.Generate(500, 7, fleetNow))
	if len(a.hosts) == 0 || len(a.zta) == 0 || !reflect.DeepEqual(a, b) {
		t.Fatal("the Falcon view differs between two generations from the same seed")
	}
	ha, _ := json.Marshal(FleetHosts(fleet.Generate(500, 7, fleetNow)))
	hb, _ := json.Marshal(FleetHosts(fleet.Generate(500, 8, fleetNow)))
	if string(ha) == string(hb) {
		t.Fatal("different seeds gave the same hosts")
	}
}

func TestFleetViewShape(t *testing.T) {
	f := fleet.Generate(2000, 42, fleetNow)
	v := newView(f)
	hosts, zta := v.hosts, v.zta

	records := map[int]int{}
	for _, o := range v.owners {
		records[o]++
	}
	for o, n := range records {
		d := f.Devices[o]
		if d.Unmanaged || d.Platform == "iOS" {
			t.Fatalf("device %d (%s, unmanaged %v) in Falcon", o, d.Platform, d.Unmanaged)
		}
		if want := map[bool]int{false: 1, true: 2}[d.Reenrolled]; n != want {
			t.Fatalf("device %d (re-enrolled %v) has %d hosts", o, d.Reenrolled, n)
		}
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
		switch h.Hostname {
		case strings.ToLower(h.Hostname):
		case strings.ToUpper(h.Hostname):
			counts["upper-case hostname"]++
		default:
			counts["mixed-case hostname"]++
		}
		if s := h.SerialNumber; s != strings.ToUpper(s) && s != strings.ToLower(s) {
			counts["mixed-case serial"]++
		}
		if h.Status == "lift_containment_pending" {
			counts["lift pending"]++
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
	for _, k := range []string{"two MACs", "fqdn", "upper-case hostname", "mixed-case hostname", "mixed-case serial", "uuid serial", "contained", "lift pending", "rfm", "duplicate serials", "unassessed"} {
		if counts[k] == 0 {
			t.Errorf("no host with %s in a 2000-device fleet; counts %v", k, counts)
		}
	}
	if counts["unassessed"] > len(hosts)/3 {
		t.Errorf("%d of %d hosts unassessed: implausibly many", counts["unassessed"], len(hosts))
	}
}

// TestVendorExpected checks the expected-score view against the tenant the
// mock serves, one case per scoring rule.
func TestVendorExpected(t *testing.T) {
	f := fleet.Generate(3000, 3, fleetNow)
	v := newView(f)
	exp := Vendor(f).Expected
	overall := map[string]int{}
	for _, a := range v.zta {
		overall[a.AID] = a.Assessment.Overall
	}
	rules := map[string]int{}
	for i, h := range v.hosts {
		e := exp[v.owners[i]]
		if e.ID != h.DeviceID {
			if !slices.Contains(e.Older, h.DeviceID) {
				t.Errorf("host %s: neither current (%s) nor older (%v)", h.DeviceID, e.ID, e.Older)
			}
			continue
		}
		score, assessed := overall[h.DeviceID]
		rule := "assessed"
		switch {
		case h.Status != "normal":
			score, rule = 0, "contained"
		case !assessed:
			score, rule = 50, "unassessed"
		}
		rules[rule]++
		if e.Score != score {
			t.Errorf("host %s (%s): expected score %d, want %d", h.DeviceID, rule, e.Score, score)
		}
		if falconTime(e.LastSeen) != h.LastSeen {
			t.Errorf("host %s: last seen %s, last_seen %s", h.DeviceID, e.LastSeen, h.LastSeen)
		}
	}
	for _, r := range []string{"assessed", "contained", "unassessed"} {
		if rules[r] == 0 {
			t.Errorf("no current host exercises %q: %v", r, rules)
		}
	}
}

// TestFleetViewThroughProvider looks the whole Cloudflare batch up through
// the real provider against the mock serving this view: every device in
// Falcon must be found by each key Cloudflare sends for it, whatever the
// case Falcon stores it in, and contained hosts (a lift still pending
// included) must score 0.
func TestFleetViewThroughProvider(t *testing.T) {
	f := fleet.Generate(1000, 11, time.Now())
	v := newView(f)
	srv := httptest.NewServer(New(Options{Devices: v.hosts, Assessments: v.zta}))
	defer srv.Close()
	cfg := &crowdstrike.Config{
		Common:       providers.Common{Name: "falcon", Type: "crowdstrike", Weight: 1},
		HTTPConfig:   providers.HTTPConfig{RequestsPerSecond: 1000, Burst: 1000},
		BaseURL:      srv.URL,
		ClientID:     fleetClientID,
		ClientSecret: fleetClientSecret,
	}
	cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	p, err := crowdstrike.New(cfg, providers.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	// inFalcon: the kinds each device's Falcon hosts carry (email only
	// where Falcon's email field is filled).
	inFalcon := map[int]map[providers.Kind]bool{}
	contained := map[string]bool{} // AID
	lifting := 0
	for i, h := range v.hosts {
		o := v.owners[i]
		if inFalcon[o] == nil {
			inFalcon[o] = map[providers.Kind]bool{providers.KindSerial: true, providers.KindMAC: true, providers.KindHostname: true}
		}
		inFalcon[o][providers.KindEmail] = inFalcon[o][providers.KindEmail] || h.Email != ""
		if h.Status != "normal" {
			contained[h.DeviceID] = true
		}
		if h.Status == "lift_containment_pending" {
			lifting++
		}
	}
	if lifting == 0 {
		t.Fatal("no host with a containment lift pending: the score check would prove less")
	}
	batch := f.Batch()
	for _, kind := range providers.Kinds {
		t.Run(kind.String(), func(t *testing.T) {
			want := map[string]int{} // normalised key -> device index
			var values []string
			for i, cd := range batch {
				raw := map[providers.Kind]string{providers.KindSerial: cd.SerialNumber, providers.KindMAC: cd.MACAddress,
					providers.KindHostname: cd.Hostname, providers.KindEmail: cd.Email}[kind]
				key, ok := providers.Normalize(kind, raw)
				if !ok {
					continue
				}
				values = append(values, key)
				if inFalcon[i][kind] {
					want[key] = i
				}
			}
			recs, err := p.Lookup(context.Background(), providers.Query{Kind: kind, Values: slices.Compact(slices.Sorted(slices.Values(values)))})
			if err != nil {
				t.Fatal(err)
			}
			for key, i := range want {
				found := false
				for _, r := range recs {
					if !r.Has(kind, key) {
						continue
					}
					found = true
					if contained[r.ID] && r.Score != 0 {
						t.Errorf("contained host %s of device %d scored %d (%s)", r.ID, i, r.Score, r.Reason)
					}
				}
				if !found {
					t.Errorf("device %d (%s %q) in Falcon but not found", i, kind, key)
				}
			}
		})
	}
}
