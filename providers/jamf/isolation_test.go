package jamf

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/postured/postured/providers"
	"github.com/postured/postured/providers/jamf/jamfmock"
)

// TestRefusedFilters: a value Jamf refuses fails only itself, however Jamf
// refuses it: a 400, or a 500 with an empty errors list as for filters it
// cannot parse (Jamf-Concepts/jamf-cli#246). The other values are answered
// at about two calls per halving.
func TestRefusedFilters(t *testing.T) {
	const n = 200
	opts := smallFleet()
	var serials, hosts []string
	for i := range n {
		c := mockComputer(fmt.Sprint(100+i), fmt.Sprintf("bulk-%03d", i), fmt.Sprintf("BULK%06d", i), "", "", jamfmock.FileVaultAllEncrypted, true)
		opts.Computers = append(opts.Computers, c)
		serials, hosts = append(serials, c.Hardware.SerialNumber), append(hosts, c.General.Name)
	}
	levels := bits.Len(uint(n + 1)) // halvings down to one value
	tests := []struct {
		name     string
		status   int
		body     string
		kind     providers.Kind
		values   []string
		poison   string
		attempts int // per refused call: a 500 is retried first
	}{
		{"400, serials", http.StatusBadRequest, `{"httpStatus":400,"errors":[{"code":null,"description":"Invalid RSQL filter","id":"0","field":"filter"}]}`,
			providers.KindSerial, serials, "POISON42", 1},
		{"500 with empty errors, serials", http.StatusInternalServerError, `{"httpStatus":500,"errors":[]}`,
			providers.KindSerial, serials, "POISON42", 1 + defaultHTTP.RetryMax},
		{"400 from both inventories, hostnames", http.StatusBadRequest, `{"httpStatus":400,"errors":[]}`,
			providers.KindHostname, hosts, "poison-42", 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, opts)
			e.rec.setBefore(func(w http.ResponseWriter, r *http.Request) bool {
				if !strings.Contains(strings.ToLower(r.URL.Query().Get("filter")), strings.ToLower(tc.poison)) {
					return false
				}
				w.Header().Set("Content-Type", "application/json;charset=UTF-8")
				w.WriteHeader(tc.status)
				_, _ = io.WriteString(w, tc.body)
				return true
			})
			p := newProv(t, e.config())
			values := slices.Insert(slices.Clone(tc.values), n/3, tc.poison)
			recs, err := p.Lookup(context.Background(), providers.Query{Kind: tc.kind, Values: values})
			var pe *providers.PartialError
			if !errors.As(err, &pe) || !slices.Equal(pe.Values, []string{tc.poison}) {
				t.Fatalf("err = %v, want a *providers.PartialError for %s only", err, tc.poison)
			}
			if len(recs) != n {
				t.Errorf("%d records, want the %d not refused", len(recs), n)
			}
			calls := len(e.rec.paths(computersInventoryPath("v4")))
			if bound := tc.attempts + levels*(1+tc.attempts); calls > bound {
				t.Errorf("%d computer calls, bound %d", calls, bound)
			}
			t.Logf("%d computer calls, %d mobile calls", calls, len(e.rec.paths(mobileDevicesPath)))
		})
	}
	t.Run("500 on every call is an outage", func(t *testing.T) {
		e := newEnv(t, opts)
		p := newProv(t, e.config())
		e.mock.Faults.FailServer(1000)
		_, err := p.Lookup(context.Background(), providers.Query{Kind: providers.KindSerial, Values: serials})
		var pe *providers.PartialError
		if apiStatus(err) != http.StatusInternalServerError || errors.As(err, &pe) {
			t.Fatalf("err = %v, want the 500 for every value", err)
		}
		// The statement and both halves, each with its retries.
		if calls, bound := len(e.rec.paths(computersInventoryPath("v4"))), 3*(1+defaultHTTP.RetryMax); calls > bound {
			t.Errorf("%d computer calls in an outage, bound %d", calls, bound)
		}
	})
}

// TestRequestsFitTomcat measures what the batching sends: every request
// URI within maxRequestURI, encoded as sent, and no request refused by the
// mock's Tomcat header limit, while calls are filled close to the budget.
func TestRequestsFitTomcat(t *testing.T) {
	opts := smallFleet()
	values := map[providers.Kind][]string{}
	for i := range 1000 {
		c := mockComputer(fmt.Sprint(100+i), fmt.Sprintf("marketing-macbook-pro-%04d", i), fmt.Sprintf("C02%09d", i),
			fmt.Sprintf("02:42:ac:%02x:%02x:%02x", i>>16&0xff, i>>8&0xff, i&0xff), fmt.Sprintf("first.last%04d@marketing.example.com", i),
			jamfmock.FileVaultAllEncrypted, true)
		opts.Computers = append(opts.Computers, c)
		for k, raw := range map[providers.Kind]string{
			providers.KindSerial: c.Hardware.SerialNumber, providers.KindMAC: c.Hardware.MacAddress,
			providers.KindHostname: c.General.Name, providers.KindEmail: c.UserAndLocation.Email,
		} {
			v, _ := providers.Normalize(k, raw)
			values[k] = append(values[k], v)
		}
	}
	e := newEnv(t, opts)
	p := newProv(t, e.config())
	for _, k := range providers.Kinds {
		recs, err := p.Lookup(context.Background(), providers.Query{Kind: k, Values: values[k]})
		if err != nil || len(recs) < 1000 {
			t.Fatalf("%s: %d records, %v", k, len(recs), err)
		}
	}
	longest := 0
	for _, u := range e.rec.paths("/api/") {
		if n := len(u.RequestURI()); n > maxRequestURI {
			t.Errorf("request URI of %d bytes: %.120s...", n, u.RequestURI())
		} else {
			longest = max(longest, n)
		}
	}
	if n := e.mock.Calls.Get("headerTooLarge"); n != 0 {
		t.Errorf("%d requests over Tomcat's header limit", n)
	}
	if longest < maxRequestURI*9/10 {
		t.Errorf("longest request URI %d bytes: calls are not filled to the %d-byte budget", longest, maxRequestURI)
	}
	t.Logf("longest request URI: %d bytes", longest)
}
