package jamf

import (
	"fmt"
	"strings"
	"testing"

	"github.com/postured/postured/providers"
)

func TestFilters(t *testing.T) {
	many := func(n int, f string) []string {
		var out []string
		for i := range n {
			out = append(out, fmt.Sprintf(f, i))
		}
		return out
	}
	tests := []struct {
		name   string
		kind   providers.Kind
		field  string
		values []string
		want   []string // when set, the exact filters
		count  int
	}{
		{"serials", providers.KindSerial, "hardware.serialNumber", []string{"C02A", "C02B"},
			[]string{`hardware.serialNumber=="C02A",hardware.serialNumber=="C02B"`}, 1},
		{"mac in colon form", providers.KindMAC, "hardware.macAddress", []string{"6a2c4bb765b5"},
			[]string{`hardware.macAddress=="6a:2c:4b:b7:65:b5"`}, 1},
		{"hostname exact and fqdn", providers.KindHostname, "general.name", []string{"mbp-42"},
			[]string{`general.name=="mbp-42",general.name=="mbp-42.*"`}, 1},
		{"quotes and backslashes escaped", providers.KindEmail, "emailAddress", []string{`o"brien\x@example.com`},
			[]string{`emailAddress=="o\"brien\\x@example.com"`}, 1},
		{"wildcards and blanks skipped", providers.KindEmail, "emailAddress", []string{"*@*", "", "a@b.c"},
			[]string{`emailAddress=="a@b.c"`}, 1},
		{"only wildcards", providers.KindSerial, "serialNumber", []string{"*"}, nil, 0},
		{"20 per filter", providers.KindSerial, "serialNumber", many(1000, "S%04d"), nil, 50},
		{"21 makes two", providers.KindSerial, "serialNumber", many(21, "S%04d"), nil, 2},
		{"hostnames 10 per filter", providers.KindHostname, "general.name", many(1000, "host-%04d"), nil, 100},
		{"long values split by length", providers.KindEmail, "userAndLocation.email", many(20, strings.Repeat("x", 240)+"%02d@example.com"), nil, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := filters(tc.kind, tc.field, tc.values)
			if len(got) != tc.count {
				t.Fatalf("%d filters, want %d", len(got), tc.count)
			}
			if tc.want != nil && strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
			for _, f := range got {
				if len(f) > maxFilterLen || strings.Count(f, `=="`) > maxFilterClauses {
					t.Fatalf("filter over limits (%d chars, %d clauses)", len(f), strings.Count(f, `=="`))
				}
			}
		})
	}
}
