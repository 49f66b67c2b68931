package jamf

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/postured/postured/providers"
	"github.com/postured/postured/providers/jamf/jamfmock"
)

// TestComputerInventoryVersions runs the provider against each Jamf Pro
// release: it must use the newest computer inventory version the server
// has, find it once (a newer version is asked exactly once, even by
// concurrent statements), and read the version's fields (v4's lastCheckIn).
func TestComputerInventoryVersions(t *testing.T) {
	tests := []struct {
		name    string
		release jamfmock.Release
		want    string
	}{
		{"10.x: v1 only", jamfmock.ReleaseV1Only, "v1"},
		{"11.23 to 11.29: v1 to v3", jamfmock.ReleaseV3, "v3"},
		{"11.30+: v3 and v4", jamfmock.ReleaseV4, "v4"},
		{"v3 removed", jamfmock.ReleaseV4Only, "v4"},
	}
	lastSeen := time.Date(2026, 11, 20, 10, 0, 0, 123e6, time.UTC)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			opts := smallFleet()
			opts.Release = tc.release
			var serials []string
			for i := range 1000 {
				c := mockComputer(fmt.Sprint(100+i), fmt.Sprintf("bulk-%d", i), fmt.Sprintf("BULK%06d", i), "", "", jamfmock.FileVaultAllEncrypted, true)
				opts.Computers = append(opts.Computers, c)
				serials = append(serials, c.Hardware.SerialNumber)
			}
			e := newEnv(t, opts)
			p := newProv(t, e.config())

			// Several statements at once while the version is unknown.
			recs, err := p.Lookup(context.Background(), providers.Query{Kind: providers.KindSerial, Values: serials})
			if err != nil || len(recs) != 1000 {
				t.Fatalf("%d records, %v", len(recs), err)
			}
			recs, err = p.Lookup(context.Background(), providers.Query{Kind: providers.KindSerial, Values: []string{"C02BOB"}})
			if err != nil || ids(recs) != "12" {
				t.Fatalf("got %q, %v", ids(recs), err)
			}
			if !recs[0].LastSeen.Equal(lastSeen) {
				t.Errorf("last seen %v, want %v from the %s record", recs[0].LastSeen, lastSeen, tc.want)
			}
			list, err := p.List(context.Background())
			if err != nil || len(list) != 1003 {
				t.Fatalf("list: %d records, %v", len(list), err)
			}

			newer := true
			for _, v := range computerInventoryVersions {
				n := len(e.rec.paths(computersInventoryPath(v)))
				switch {
				case v == tc.want:
					newer = false
					if n < 3 {
						t.Errorf("%s asked %d times, want every call", v, n)
					}
				case newer && n != 1:
					t.Errorf("newer %s asked %d times, want once", v, n)
				case !newer && n != 0:
					t.Errorf("older %s asked %d times, want never", v, n)
				}
			}
		})
	}
}

func TestComputerInventoryVersionErrors(t *testing.T) {
	t.Run("no computer inventory at all", func(t *testing.T) {
		opts := smallFleet()
		opts.Release = jamfmock.Release{Version: "10.38.1-t1652000000", ComputerInventory: []string{}}
		e := newEnv(t, opts)
		p := newProv(t, e.config())
		for range 2 {
			_, err := p.Lookup(context.Background(), providers.Query{Kind: providers.KindSerial, Values: []string{"C02BOB"}})
			if err == nil || !strings.Contains(err.Error(), "jamf: find the computer inventory API: the server answers 404 for v4, v3, v2, v1") {
				t.Fatalf("got %v", err)
			}
		}
		if n := len(e.rec.paths(computersInventoryPath("v4"))); n != 2 {
			t.Errorf("v4 asked %d times: a server answering 404 everywhere settles nothing", n)
		}
	})
	t.Run("a failure does not settle the version", func(t *testing.T) {
		opts := smallFleet()
		opts.Release = jamfmock.ReleaseV3
		e := newEnv(t, opts)
		p := newProv(t, e.config())
		e.mock.Faults.FailServer(1 + defaultHTTP.RetryMax) // every attempt of the first call

		q := providers.Query{Kind: providers.KindSerial, Values: []string{"C02BOB"}}
		if _, err := p.Lookup(context.Background(), q); err == nil || !strings.Contains(err.Error(), "status 500") {
			t.Fatalf("got %v", err)
		}
		if recs, err := p.Lookup(context.Background(), q); err != nil || ids(recs) != "12" {
			t.Fatalf("got %q, %v", ids(recs), err)
		}
		if v4, v3 := len(e.rec.paths(computersInventoryPath("v4"))), len(e.rec.paths(computersInventoryPath("v3"))); v4 != 2 || v3 != 2+defaultHTTP.RetryMax {
			t.Errorf("v4 asked %d times, v3 %d; want 2 and %d", v4, v3, 2+defaultHTTP.RetryMax)
		}
	})
	t.Run("a token failure is not a missing version", func(t *testing.T) {
		opts := smallFleet()
		opts.OAuthV1 = jamfmock.MissingNotFound
		e := newEnv(t, opts)
		p := newProv(t, e.config(func(c *Config) { c.TokenPath = oauthTokenPath }))
		_, err := p.Lookup(context.Background(), providers.Query{Kind: providers.KindSerial, Values: []string{"C02BOB"}})
		if err == nil || !strings.Contains(err.Error(), "fetch token: /api/v1/oauth/token: status 404") {
			t.Fatalf("got %v", err)
		}
	})
}
