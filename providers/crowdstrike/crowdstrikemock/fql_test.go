package crowdstrikemock

import (
	"strings"
	"testing"
)

func TestParseFilter(t *testing.T) {
	hosts := []Host{
		{DeviceID: "a1", Hostname: "mbp-42", SerialNumber: "C02AAA", MACAddress: "aa-bb-cc-dd-ee-01", PlatformName: "Mac",
			LastSeen: "2026-11-20T10:00:00Z", Status: "normal", Tags: []string{"FalconGroupingTags/vip"}},
		{DeviceID: "b2", Hostname: "mbp-42.corp.example", SerialNumber: "C02BBB", MACAddress: "aa-bb-cc-dd-ee-02", PlatformName: "Mac",
			LastSeen: "2026-10-01T00:00:00Z", Status: "contained"},
		{DeviceID: "c3", Hostname: "DESKTOP-7", SerialNumber: "PF000007", MACAddress: "AA-BB-CC-DD-EE-03", PlatformName: "Windows",
			LastSeen: "2026-11-19T00:00:00Z", Status: "normal", ConnectionMACAddress: "aa-bb-cc-dd-ee-04"},
		{DeviceID: "d4", Hostname: "ws-1", SerialNumber: "ec2a1b2c-0000-1111-2222-333344445555", PlatformName: "Linux",
			LastSeen: "2026-11-20T09:00:00Z", Status: "containment_pending"},
		{DeviceID: "e5", Hostname: "Oskars-Mac-mini-29", SerialNumber: "VMware-56 4d 9e 3a", PlatformName: "Mac",
			LastSeen: "2026-11-20T09:00:00Z", Status: "lift_containment_pending", Email: "Oskar.Berg@Example.com"},
	}
	tests := []struct {
		name    string
		filter  string
		substr  bool
		want    string // matching device ids, comma-joined
		wantErr string
	}{
		{name: "empty matches all", filter: "", want: "a1,b2,c3,d4,e5"},
		// Falcon-Toolkit#192, psfalcon#425: a single value is
		// case-insensitive and matches a prefix.
		{name: "single value matches a prefix", filter: "hostname:'mbp-42'", want: "a1,b2"},
		{name: "single value ignores case", filter: "hostname:'MBP-42.CORP'", want: "b2"},
		{name: "single value mixed case stored", filter: "hostname:'oskars-mac-mini-29'", want: "e5"},
		{name: "single value mixed case serial", filter: "serial_number:'VMWARE-56 4D 9E 3A'", want: "e5"},
		{name: "single value mixed case email", filter: "email:'oskar.berg@example.com'", want: "e5"},
		{name: "single value is no substring by default", filter: "hostname:'mac-mini'", want: ""},
		{name: "substring mode", filter: "hostname:'mac-mini'", substr: true, want: "e5"},
		// PSFalcon wiki: brackets are exact, case included.
		{name: "bracket exact list", filter: "serial_number:['C02AAA','PF000007','nope']", want: "a1,c3"},
		{name: "bracket is case sensitive", filter: "serial_number:['c02aaa']", want: ""},
		{name: "bracket mixed case needs the stored case", filter: "hostname:['oskars-mac-mini-29','OSKARS-MAC-MINI-29']", want: ""},
		{name: "bracket no prefix", filter: "hostname:['mbp-42']", want: "a1"},
		{name: "bracket exact even in substring mode", filter: "hostname:['mbp-42']", substr: true, want: "a1"},
		{name: "prefix wildcard operator", filter: "hostname:*'mbp-42.*'", want: "b2"},
		{name: "prefix wildcard plain", filter: "hostname:'mbp*'", want: "a1,b2"},
		{name: "wildcard ignores case", filter: "hostname:'OSKARS*'", want: "e5"},
		{name: "suffix wildcard", filter: "hostname:'*-7'", want: "c3"},
		{name: "star operator without wildcard is contains", filter: "hostname:*'corp'", want: "b2"},
		{name: "text match ignores case and punctuation", filter: "hostname:~'desktop7'", want: "c3"},
		{name: "or", filter: "mac_address:['aa-bb-cc-dd-ee-01'],connection_mac_address:['aa-bb-cc-dd-ee-04']", want: "a1,c3"},
		{name: "or of single values", filter: "hostname:'desktop-7',hostname:'oskars-mac-mini-29'", want: "c3,e5"},
		{name: "and", filter: "platform_name:'Mac'+status:'contained'", want: "b2"},
		{name: "and binds tighter than or", filter: "platform_name:'Linux',platform_name:'Mac'+status:'normal'", want: "a1,d4"},
		{name: "parentheses", filter: "(platform_name:'Linux',platform_name:'Mac')+status:'normal'", want: "a1"},
		{name: "negated property", filter: "!platform_name:'Mac'", want: "c3,d4"},
		{name: "negated value", filter: "status:!'normal'", want: "b2,d4,e5"},
		{name: "negated list", filter: "status:!['normal','contained']", want: "d4,e5"},
		{name: "lift pending status", filter: "status:['lift_containment_pending']", want: "e5"},
		{name: "timestamp after", filter: "last_seen:>'2026-11-19T12:00:00Z'", want: "a1,d4,e5"},
		{name: "timestamp on or before date", filter: "last_seen:<='2026-11-19'", want: "b2,c3"},
		{name: "timestamp range", filter: "last_seen:>='2026-11-01'+last_seen:<'2026-11-20T09:30:00Z'", want: "c3,d4,e5"},
		{name: "array property", filter: "tags:'FalconGroupingTags/vip'", want: "a1"},
		{name: "null", filter: "connection_mac_address:null", want: "a1,b2,d4,e5"},
		{name: "spaces around operators", filter: "platform_name:'Mac' , platform_name:'Linux'", want: "a1,b2,d4,e5"},
		{name: "quote escape", filter: `hostname:'it\'s'`, want: ""},

		{name: "unknown property", filter: "colour:'red'", wantErr: `invalid filter property "colour"`},
		{name: "missing colon", filter: "hostname'x'", wantErr: "expected ':'"},
		{name: "unterminated string", filter: "hostname:'abc", wantErr: "unterminated"},
		{name: "unquoted string", filter: "hostname:abc", wantErr: "must be quoted"},
		{name: "unclosed list", filter: "hostname:['a','b'", wantErr: "expected ',' or ']'"},
		{name: "unclosed paren", filter: "(hostname:'a'", wantErr: "missing ')'"},
		{name: "trailing junk", filter: "hostname:'a')", wantErr: "unexpected"},
		{name: "dangling and", filter: "hostname:'a'+", wantErr: "unexpected end"},
		{name: "unencoded plus arrives as space", filter: "hostname:'a' platform_name:'Mac'", wantErr: "unexpected"},
		{name: "comparison on string", filter: "hostname:>'a'", wantErr: "only applies to timestamps"},
		{name: "bad timestamp", filter: "last_seen:>'yesterday'", wantErr: "invalid timestamp"},
		{name: "operator on list", filter: "hostname:*['a*']", wantErr: "cannot be used with a value list"},
		{name: "21 properties", filter: strings.Repeat("hostname:'x',", 20) + "hostname:'y'", wantErr: "21 properties, the maximum is 20"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := parseFilter(tc.filter, hostProperty)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for i := range hosts {
				if f.match(hosts[i].field, tc.substr) {
					got = append(got, hosts[i].DeviceID)
				}
			}
			if g := strings.Join(got, ","); g != tc.want {
				t.Errorf("matched %q, want %q", g, tc.want)
			}
		})
	}
}

func TestPropertyCount(t *testing.T) {
	bracket := "serial_number:['" + strings.Repeat("x','", 199) + "y']"
	for _, tc := range []struct {
		name, filter string
		want         int
	}{
		{"20 single terms", strings.TrimSuffix(strings.Repeat("hostname:*'x.*',", 20), ","), 20},
		{"a 200-value bracket list is one", bracket, 1},
		{"two bracket lists and single terms", bracket + "," + bracket + "," + strings.TrimSuffix(strings.Repeat("email:'a',", 18), ","), 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := parseFilter(tc.filter, hostProperty)
			if err != nil {
				t.Fatal(err)
			}
			if f.props != tc.want {
				t.Fatalf("%d properties, want %d", f.props, tc.want)
			}
		})
	}
}

func TestGlob(t *testing.T) {
	for _, tc := range []struct {
		p, s string
		want bool
	}{
		{"abc", "abc", true}, {"abc", "abcd", false}, {"ab*", "abcd", true}, {"*cd", "abcd", true},
		{"*bc*", "abcd", true}, {"a*d", "abcd", true}, {"a*c*d", "abcd", true}, {"a*b*b", "ab", false}, {"*", "", true},
	} {
		if got := glob(tc.p, tc.s); got != tc.want {
			t.Errorf("glob(%q, %q) = %v, want %v", tc.p, tc.s, got, tc.want)
		}
	}
}
