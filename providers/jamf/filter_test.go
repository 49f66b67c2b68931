package jamf

import (
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/postured/postured/providers"
)

func TestFilterFor(t *testing.T) {
	tests := []struct {
		name   string
		kind   providers.Kind
		field  string
		values []string
		want   string
	}{
		{"one serial", providers.KindSerial, "hardware.serialNumber", []string{"C02A"}, `hardware.serialNumber==C02A`},
		{"serials in a list", providers.KindSerial, "hardware.serialNumber", []string{"C02A", "C02B"},
			`hardware.serialNumber=in=(C02A,C02B)`},
		{"serial with spaces quoted", providers.KindSerial, "serialNumber", []string{"VMWARE-56 4D", "C02B"},
			`serialNumber=in=("VMWARE-56 4D",C02B)`},
		{"macs in colon form", providers.KindMAC, "hardware.macAddress", []string{"6a2c4bb765b5", "aabbccddee01"},
			`hardware.macAddress=in=(6a:2c:4b:b7:65:b5,aa:bb:cc:dd:ee:01)`},
		{"hostname exact and fqdn", providers.KindHostname, "general.name", []string{"mbp-42"},
			`general.name==mbp-42,general.name=="mbp-42.*"`},
		{"hostnames in a list, each with its fqdn", providers.KindHostname, "displayName", []string{"a", "b"},
			`displayName=in=(a,b),displayName=="a.*",displayName=="b.*"`},
		{"quotes and backslashes escaped", providers.KindEmail, "emailAddress", []string{`o"brien\x@example.com`, "a@b.c"},
			`emailAddress=in=("o\"brien\\x@example.com",a@b.c)`},
		{"reserved characters quoted", providers.KindSerial, "serialNumber", []string{"A(1)", "B;C", "D,E", "F=G", "H|I", "NULL"},
			`serialNumber=in=("A(1)","B;C","D,E","F=G","H|I","NULL")`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := filterFor(tc.kind, tc.field, tc.values); got != tc.want {
				t.Fatalf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}

func TestFilterable(t *testing.T) {
	got := filterable([]string{"*@*", "", "a@b.c", "x*"})
	if strings.Join(got, ",") != "a@b.c" {
		t.Fatalf("got %q", got)
	}
}

func TestBatches(t *testing.T) {
	many := func(n int, f string) []string {
		var out []string
		for i := range n {
			out = append(out, fmt.Sprintf(f, i))
		}
		return out
	}
	const budget = maxRequestURI - uriOverhead
	tests := []struct {
		name   string
		kind   providers.Kind
		field  string
		values []string
		count  int
	}{
		{"one", providers.KindSerial, "hardware.serialNumber", []string{"C02A"}, 1},
		{"1000 serials", providers.KindSerial, "hardware.serialNumber", many(1000, "C02X%08d"), 3},
		{"1000 macs", providers.KindMAC, "hardware.macAddress", many(1000, "02005e%06x"), 6},
		{"1000 hostnames", providers.KindHostname, "general.name", many(1000, "mbp-%06d"), 10},
		{"1000 emails", providers.KindEmail, "userAndLocation.email", many(1000, "user%05d@example.com"), 5},
		{"values too long for any filter get one each", providers.KindSerial, "serialNumber", many(3, strings.Repeat("S", 6000)+"%d"), 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := batches(tc.kind, tc.field, tc.values, budget)
			if len(got) != tc.count {
				t.Errorf("%d calls, want %d", len(got), tc.count)
			}
			var all []string
			for _, b := range got {
				all = append(all, b...)
				if n := len(url.QueryEscape(filterFor(tc.kind, tc.field, b))); n > budget && len(b) > 1 {
					t.Errorf("a filter of %d values takes %d encoded bytes, budget %d", len(b), n, budget)
				}
			}
			if strings.Join(all, ",") != strings.Join(tc.values, ",") {
				t.Error("values lost, repeated or reordered")
			}
		})
	}
}
