package intunemock

import (
	"strings"
	"testing"
	"time"
)

func filterFixture() []ManagedDevice {
	t0 := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	return []ManagedDevice{
		{ID: "a", DeviceName: "DESKTOP-00001", SerialNumber: "PF00000001", UserPrincipalName: "alice@example.com", ComplianceState: "compliant", ManagedDeviceOwnerType: "company", LastSyncDateTime: t0, IsEncrypted: true},
		{ID: "b", DeviceName: "mbp-00002.corp.example", SerialNumber: "C020000002A", UserPrincipalName: "Bob@example.com", ComplianceState: "noncompliant", ManagedDeviceOwnerType: "personal", LastSyncDateTime: t0.Add(-48 * time.Hour)},
		{ID: "c", DeviceName: "o'brien-pc", SerialNumber: "", UserPrincipalName: "o'brien@example.com", ComplianceState: "inGracePeriod", ManagedDeviceOwnerType: "company", LastSyncDateTime: t0.Add(-time.Hour), WiFiMacAddress: "847B575635FB"},
	}
}

func TestParseFilter(t *testing.T) {
	devs := filterFixture()
	tests := []struct {
		name   string
		filter string
		rules  filterRules
		cs     bool
		want   string // ids matched, in order
		err    string // substring of the 400 message
	}{
		{name: "serial eq", filter: "serialNumber eq 'PF00000001'", want: "a"},
		{name: "serial eq case-insensitive", filter: "serialNumber eq 'pf00000001'", want: "a"},
		{name: "serial eq case-sensitive", filter: "serialNumber eq 'pf00000001'", cs: true, want: ""},
		{name: "keywords case-insensitive", filter: "serialNumber EQ 'PF00000001'", want: "a"},
		{name: "property names case-insensitive", filter: "SerialNumber eq 'PF00000001'", want: "a"},
		{name: "no match", filter: "serialNumber eq 'NOPE'", want: ""},
		{name: "quote escaping", filter: "userPrincipalName eq 'o''brien@example.com'", want: "c"},
		{name: "upn case", filter: "userPrincipalName eq 'bob@example.com'", want: "b"},
		{name: "deviceName startswith", filter: "startswith(deviceName,'mbp-00002')", want: "b"},
		{name: "startswith case-insensitive", filter: "startswith(deviceName,'desktop')", want: "a"},
		{name: "contains", filter: "contains(deviceName,'corp')", want: "b"},
		{name: "compliance eq", filter: "complianceState eq 'inGracePeriod'", want: "c"},
		{name: "and", filter: "complianceState eq 'compliant' and serialNumber eq 'PF00000001'", want: "a"},
		{name: "or supported", filter: "serialNumber eq 'PF00000001' or serialNumber eq 'C020000002A'", want: "ab"},
		{name: "or like and", filter: "serialNumber eq 'PF00000001' or serialNumber eq 'C020000002A'", rules: filterRules{or: OrLikeAnd}, want: ""},
		{name: "or rejected", filter: "serialNumber eq 'PF00000001' or serialNumber eq 'C020000002A'", rules: filterRules{or: OrError}, err: "'or' operator is not supported"},
		{name: "parentheses and not", filter: "not (complianceState eq 'compliant')", want: "bc"},
		{name: "lastSync gt", filter: "lastSyncDateTime gt 2026-11-20T08:00:00Z", want: "ac"},
		{name: "lastSync lt with fraction", filter: "lastSyncDateTime lt 2026-11-19T00:00:00.0000000Z", want: "b"},
		{name: "ne as eq quirk", filter: "managedDeviceOwnerType ne 'company'", want: "ac"},
		{name: "ne", filter: "complianceState ne 'compliant'", want: "bc"},
		{name: "null", filter: "serialNumber eq null", want: "c"},
		{name: "unsupported property ignored", filter: "wiFiMacAddress eq '847B575635FB'", want: "abc"},
		{name: "unsupported property rejected", filter: "wiFiMacAddress eq '847B575635FB'", rules: filterRules{unsupported: UnsupportedError}, err: "not supported"},
		{name: "ignored poisons whole filter", filter: "serialNumber eq 'PF00000001' and emailAddress eq 'x'", want: "abc"},
		{name: "tenant makes deviceName unfilterable", filter: "startswith(deviceName,'mbp')", rules: filterRules{notFilterable: map[string]bool{"devicename": true}}, want: "abc"},
		{name: "startswith is a prefix", filter: "startswith(deviceName,'00002')", want: ""},
		{name: "startswith acting like contains", filter: "startswith(deviceName,'00002')", rules: filterRules{startsWithContains: true}, want: "b"},
		{name: "startswith like contains keeps case rules", filter: "startswith(deviceName,'CORP')", rules: filterRules{startsWithContains: true}, cs: true, want: ""},
		{name: "literal at the length limit", filter: "serialNumber eq 'PF00000001'", rules: filterRules{maxLiteral: 10}, want: "a"},
		{name: "literal over the length limit", filter: "serialNumber eq 'PF00000001'", rules: filterRules{maxLiteral: 9}, err: "Unsupported or invalid query filter clause"},
		{name: "unknown property", filter: "fooBar eq 'x'", err: "Could not find a property named 'fooBar'"},
		{name: "unquoted string", filter: "serialNumber eq PF00000001", err: "Could not find a property named 'PF00000001'"},
		{name: "string vs date", filter: "lastSyncDateTime gt '2026-01-01T00:00:00Z'", err: "incompatible types"},
		{name: "bad date", filter: "lastSyncDateTime gt 2026-13-01", err: "DateTimeOffset"},
		{name: "wrong operator", filter: "serialNumber gt 'A'", err: "operator 'gt' is not supported"},
		{name: "date eq unsupported", filter: "lastSyncDateTime eq 2026-11-20T10:00:00Z", err: "operator 'eq' is not supported"},
		{name: "in rejected", filter: "serialNumber in ('A','B')", err: "'in' operator"},
		{name: "unterminated", filter: "serialNumber eq 'abc", err: "unterminated"},
		{name: "trailing garbage", filter: "serialNumber eq 'a' 'b'", err: "syntax error"},
		{name: "missing operand", filter: "serialNumber eq", err: "syntax error"},
		{name: "unbalanced", filter: "(serialNumber eq 'a'", err: "syntax error"},
		{name: "unknown function", filter: "substringof('a',deviceName)", err: "unknown function"},
		{name: "function on date", filter: "startswith(lastSyncDateTime,'2')", err: "operator 'startswith' is not supported"},
		{name: "bad character", filter: "serialNumber == 'a'", err: "syntax error"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := parseFilter(tc.filter, tc.rules)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("parseFilter(%q) error = %v, want containing %q", tc.filter, err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseFilter(%q): %v", tc.filter, err)
			}
			var got strings.Builder
			for i := range devs {
				if f.match(&devs[i], tc.cs) {
					got.WriteString(devs[i].ID)
				}
			}
			if got.String() != tc.want {
				t.Errorf("parseFilter(%q) matched %q, want %q", tc.filter, got.String(), tc.want)
			}
		})
	}
}

func TestFormatTime(t *testing.T) {
	tests := []struct {
		in   time.Time
		want string
	}{
		{time.Time{}, "0001-01-01T00:00:00Z"},
		{time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC), "9999-12-31T23:59:59Z"},
		{time.Date(2024, 3, 23, 19, 21, 27, 715618900, time.UTC), "2024-03-23T19:21:27.7156189Z"},
		{time.Date(2024, 3, 23, 19, 21, 27, 100, time.UTC), "2024-03-23T19:21:27.0000001Z"},
	}
	for _, tc := range tests {
		if got := formatTime(tc.in); got != tc.want {
			t.Errorf("formatTime(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestIndexMatchesScan(t *testing.T) {
	devs := append(filterFixture(), fixture(50)...)
	devs = append(devs, ManagedDevice{ID: "dup", DeviceName: "desktop-00001", SerialNumber: "pf00000001"})
	filters := []string{
		"serialNumber eq 'PF00000001'",
		"serialNumber eq 'pf00000001'",
		"startswith(deviceName,'DESKTOP-0000')",
		"startswith(deviceName,'mbp-00002')",
		"userPrincipalName eq 'BOB@example.com'",
		"id eq 'dup'",
		"serialNumber eq 'NOPE'",
		"serialNumber eq null",
		"serialNumber eq 'PF00000001' and complianceState eq 'compliant'",
	}
	for _, mode := range []struct{ cs, contains bool }{{false, false}, {true, false}, {false, true}} {
		cs := mode.cs
		s := New(Options{Devices: devs, CaseSensitive: cs, StartsWithContains: mode.contains})
		for _, src := range filters {
			f, err := parseFilter(src, s.rules)
			if err != nil {
				t.Fatal(err)
			}
			var scan, indexed []string
			for i := range s.devices {
				if f.match(&s.devices[i], cs) {
					scan = append(scan, s.devices[i].ID)
				}
			}
			cand := s.candidates(f)
			if cand == nil {
				cand = make([]int, len(s.devices))
				for i := range cand {
					cand[i] = i
				}
			}
			for _, i := range cand {
				if f.match(&s.devices[i], cs) {
					indexed = append(indexed, s.devices[i].ID)
				}
			}
			if strings.Join(scan, ",") != strings.Join(indexed, ",") {
				t.Errorf("%+v %q: index %v, scan %v", mode, src, indexed, scan)
			}
		}
	}
}
