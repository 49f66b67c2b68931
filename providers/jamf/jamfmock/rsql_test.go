package jamfmock

import (
	"strings"
	"testing"
)

func TestParseFilter(t *testing.T) {
	valid := []string{
		`hardware.serialNumber=="C02X"`,
		`hardware.serialNumber=="A",hardware.serialNumber=="B"`,
		`a==x;b==y`,
		`a==x and b==y`,
		`a==x AND b==y`,
		`a==x or b==y`,
		`(a==x,b==y);c==z`,
		`(a==x or b==y) and (c==z)`,
		`a=in=(x,y)`,
		`a=in=(x | y)`,
		`a=in=( "x" , 'y' )`,
		`a=out=("x","y")`,
		`a=lt=5`, `a<5`, `a=le=5`, `a<=5`, `a=gt=5`, `a>5`, `a=ge=5`, `a>=5`,
		`a!='x y'`,
		`a=="q\"uote"`,
		`a==null`,
		` a == x `,
		`general.name=="mbp*"`,
		`orderId==1 or android==2`,
	}
	for _, f := range valid {
		t.Run("valid "+f, func(t *testing.T) {
			if _, err := parseFilter(f); err != nil {
				t.Fatalf("parseFilter(%q): %v", f, err)
			}
		})
	}
	invalid := []struct{ filter, want string }{
		{``, "unexpected end"},
		{`a`, "comparison operator"},
		{`a==`, "expected a value"},
		{`a=="x`, "unterminated"},
		{`a=="x'`, "unterminated"},
		{`(a==x`, "missing )"},
		{`a==x)`, "unexpected"},
		{`a=foo=x`, "unknown operator"},
		{`a=in=x`, "expected ("},
		{`a=in=(x,y`, "missing )"},
		{`a==(x)`, "expected a value"},
		{`a==x,`, "unexpected end"},
		{`;a==x`, "expected a field name"},
		{`a==x and`, "unexpected"},
		{`==x`, "expected a field name"},
		{strings.Repeat("(", 70) + "a==x" + strings.Repeat(")", 70), "nesting"},
	}
	for _, tc := range invalid {
		t.Run("invalid "+tc.filter, func(t *testing.T) {
			_, err := parseFilter(tc.filter)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("parseFilter(%q) = %v, want error containing %q", tc.filter, err, tc.want)
			}
		})
	}
}

func TestEvalFilter(t *testing.T) {
	contact := "2026-11-20T10:00:00.123Z"
	c := &Computer{
		ID: "10",
		General: &General{
			Name: "MBP-00042.corp.example", LastContactTime: &contact,
			RemoteManagement: RemoteManagement{Managed: true},
		},
		Hardware:        &Hardware{SerialNumber: "C02XK1ZZJGH5", MacAddress: "6A:2C:4B:B7:65:B5"},
		OperatingSystem: &OperatingSystem{FileVault2Status: FileVaultAllEncrypted},
		UserAndLocation: &UserAndLocation{Email: "Alice@Example.com"},
	}
	get := computerGetter(c, false)
	tests := []struct {
		filter string
		want   bool
	}{
		{`hardware.serialNumber=="C02XK1ZZJGH5"`, true},
		{`hardware.serialNumber=="c02xk1zzjgh5"`, true}, // case-insensitive
		{`hardware.serialNumber=="OTHER"`, false},
		{`hardware.serialNumber!="OTHER"`, true},
		{`hardware.macAddress=="6a:2c:4b:b7:65:b5"`, true},
		{`general.name=="mbp-00042"`, false},
		{`general.name=="mbp-00042.*"`, true}, // wildcard
		{`general.name=="*.CORP.example"`, true},
		{`general.name=="mbp*42*"`, true},
		{`general.name=="mbp?"`, false},
		{`userAndLocation.email=="alice@example.com"`, true},
		{`userAndLocation.email=in=(bob@example.com,ALICE@example.com)`, true},
		{`userAndLocation.email=out=(bob@example.com,ALICE@example.com)`, false},
		{`userAndLocation.email=out=(bob@example.com)`, true},
		{`general.remoteManagement.managed==true`, true},
		{`general.remoteManagement.managed==false`, false},
		{`operatingSystem.fileVault2Status==ALL_ENCRYPTED`, true},
		{`id>9`, true}, // numeric, not "10" < "9"
		{`id=lt=9`, false},
		{`id==10.0`, true},
		{`general.lastContactTime>2026-11-20`, true},
		{`general.lastContactTime<"2026-11-20T10:00:00Z"`, false},
		{`general.lastContactTime=ge="2026-11-20T10:00:00.123Z"`, true},
		{`general.assetTag==null`, true},
		{`hardware.serialNumber==null`, false},
		{`general.assetTag=="x"`, false},
		{`general.assetTag!="x"`, true},
		// AND binds tighter than OR.
		{`hardware.serialNumber=="X",hardware.serialNumber=="C02XK1ZZJGH5";id==10`, true},
		{`hardware.serialNumber=="X",hardware.serialNumber=="C02XK1ZZJGH5";id==11`, false},
		{`(hardware.serialNumber=="X",hardware.serialNumber=="C02XK1ZZJGH5");id==10`, true},
		{`hardware.serialNumber=="X" or id==10 and general.remoteManagement.managed==true`, true},
		{`(hardware.serialNumber=="X" or id==10) and general.remoteManagement.managed==false`, false},
	}
	for _, tc := range tests {
		t.Run(tc.filter, func(t *testing.T) {
			e, err := parseFilter(tc.filter)
			if err != nil {
				t.Fatal(err)
			}
			if got := e.eval(get); got != tc.want {
				t.Fatalf("eval(%q) = %v, want %v", tc.filter, got, tc.want)
			}
		})
	}
}

func TestEvalNullSections(t *testing.T) {
	c := &Computer{ID: "1"} // every section null
	for _, f := range []string{`hardware.serialNumber=="X"`, `userAndLocation.email=="a@b.c"`, `general.name=="*"`} {
		e, err := parseFilter(f)
		if err != nil {
			t.Fatal(err)
		}
		if e.eval(computerGetter(c, false)) {
			t.Errorf("%s matched a record without that section", f)
		}
	}
}

func TestWildcard(t *testing.T) {
	tests := []struct {
		p, s string
		want bool
	}{
		{"*", "", true},
		{"a*", "abc", true},
		{"*c", "abc", true},
		{"a*c", "abbbc", true},
		{"a*c", "abcd", false},
		{"a**b", "ab", true},
		{"abc", "abc", true},
		{"ab", "abc", false},
	}
	for _, tc := range tests {
		if got := wildcard(tc.p, tc.s); got != tc.want {
			t.Errorf("wildcard(%q, %q) = %v, want %v", tc.p, tc.s, got, tc.want)
		}
	}
}
