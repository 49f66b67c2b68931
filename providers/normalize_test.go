package providers

import (
	"slices"
	"strings"
	"testing"
)

func TestNormalizeMAC(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
		ok   bool
	}{
		{"colon lower", "74:1d:3e:23:e0:fe", "741d3e23e0fe", true},
		{"colon upper", "74:1D:3E:23:E0:FE", "741d3e23e0fe", true},
		{"dash upper", "74-1D-3E-23-E0-FF", "741d3e23e0ff", true},
		{"cisco dotted", "741d.3e23.e0fe", "741d3e23e0fe", true},
		{"bare hex", "741D3E23E0FE", "741d3e23e0fe", true},
		{"surrounding spaces", "  74:1d:3e:23:e0:fe  ", "741d3e23e0fe", true},
		{"tab separated", "74\t1d\t3e\t23\te0\tfe", "741d3e23e0fe", true},
		{"mixed separators", "74:1d-3e.23 e0:fe", "741d3e23e0fe", true},
		{"multicast is still a MAC", "01:00:5e:00:00:01", "01005e000001", true},
		{"empty", "", "", false},
		{"only separators", ":::::", "", false},
		{"all zero", "00:00:00:00:00:00", "", false},
		{"all zero bare", "000000000000", "", false},
		{"broadcast", "ff:ff:ff:ff:ff:ff", "", false},
		{"broadcast upper dashed", "FF-FF-FF-FF-FF-FF", "", false},
		{"too short", "74:1d:3e:23:e0", "", false},
		{"one digit short", "741d3e23e0f", "", false},
		{"too long", "74:1d:3e:23:e0:fe:01", "", false},
		{"EUI-64", "74:1d:3e:ff:fe:23:e0:fe", "", false},
		{"non hex letter", "74:1d:3e:23:e0:fg", "", false},
		{"0x prefix", "0x741d3e23e0fe", "", false},
		{"newline", "74:1d:3e:23:e0:fe\n", "", false},
		{"unicode", "74:1d:3e:23:e0:fé", "", false},
		{"underscore", "74_1d_3e_23_e0_fe", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := NormalizeMAC(tc.in)
			if got != tc.want || ok != tc.ok {
				t.Fatalf("NormalizeMAC(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
			}
			if ok {
				again, ok2 := NormalizeMAC(got)
				if again != got || !ok2 {
					t.Fatalf("not idempotent: NormalizeMAC(%q) = %q, %v", got, again, ok2)
				}
			}
		})
	}
}

func TestNormalizeSerial(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
		ok   bool
	}{
		{"plain", "C02XK1ZZJGH5", "C02XK1ZZJGH5", true},
		{"lower is upper-cased", "c02xk1zzjgh5", "C02XK1ZZJGH5", true},
		{"trimmed", "  c02xk1zzjgh5\t\n", "C02XK1ZZJGH5", true},
		{"inner space kept", "ab 12", "AB 12", true},
		{"vmware style", "VMware-56 4d 1a", "VMWARE-56 4D 1A", true},
		{"zero then letters", "0A", "0A", true},
		{"one", "1", "1", true},
		// Design doc placeholder list.
		{"empty", "", "", false},
		{"blank", "   \t", "", false},
		{"zero", "0", "", false},
		{"None", "None", "", false},
		{"NONE", "NONE", "", false},
		{"Default string", "Default string", "", false},
		{"To be filled by O.E.M.", "To be filled by O.E.M.", "", false},
		{"to be filled collapsed spaces", "  to  be   filled by\to.e.m. ", "", false},
		{"To be filled by OEM", "To Be Filled By OEM", "", false},
		{"System Serial Number", "System Serial Number", "", false},
		{"Not Specified", "Not Specified", "", false},
		{"123456789", "123456789", "", false},
		{"0123456789", "0123456789", "", false},
		{"all zero", "00000000", "", false},
		{"all zero uuid", "00000000-0000-0000-0000-000000000000", "", false},
		{"all zero dotted", "0.0.0", "", false},
		{"all zero colon", "00:00", "", false},
		{"all zero spaced", "0 0 0", "", false},
		// Other placeholders the implementation lists.
		{"null", "null", "", false},
		{"n/a", "N/A", "", false},
		{"unknown", "Unknown", "", false},
		{"chassis", "Chassis Serial Number", "", false},
		{"invalid", "INVALID", "", false},
		{"oem", "OEM", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := NormalizeSerial(tc.in)
			if got != tc.want || ok != tc.ok {
				t.Fatalf("NormalizeSerial(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
			}
			if ok {
				again, ok2 := NormalizeSerial(got)
				if again != got || !ok2 {
					t.Fatalf("not idempotent: NormalizeSerial(%q) = %q, %v", got, again, ok2)
				}
			}
		})
	}
}

// TestNormalizeSerialUnicodeCaseFolding: placeholders are recognised on the
// lower-cased input but the output is upper-cased, and for a few runes
// lower(upper(r)) != lower(r). The output can then be a placeholder and a
// second normalisation rejects what the first accepted.
func TestNormalizeSerialUnicodeCaseFolding(t *testing.T) {
	tests := []struct{ name, in string }{
		{"dotless i", "ınvalıd"},                          // -> "INVALID"
		{"long s", "ſerial number"},                       // -> "SERIAL NUMBER"
		{"dotless i in not applicable", "not applıcable"}, // -> "NOT APPLICABLE"
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := NormalizeSerial(tc.in)
			if !ok {
				return // rejecting it is fine
			}
			if again, ok2 := NormalizeSerial(got); !ok2 || again != got {
				t.Fatalf("NormalizeSerial(%q) = %q, but NormalizeSerial(%q) = %q, %v", tc.in, got, got, again, ok2)
			}
		})
	}
}

func TestNormalizeHostname(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
		ok   bool
	}{
		{"plain", "mbp-42", "mbp-42", true},
		{"upper", "MBP-42", "mbp-42", true},
		{"fqdn", "mbp-42.corp.example", "mbp-42", true},
		{"fqdn upper trailing dot", "MBP-42.corp.example.", "mbp-42", true},
		{"trimmed", "  MBP-42  ", "mbp-42", true},
		{"digits", "1host", "1host", true},
		{"empty", "", "", false},
		{"blank", "  ", "", false},
		{"only dot", ".", "", false},
		{"leading dot", ".corp.example", "", false},
		{"ipv4", "10.0.0.1", "", false},
		{"ipv4 trailing dot", "10.0.0.1.", "", false},
		{"ipv6", "fe80::1", "", false},
		{"ipv6 loopback", "::1", "", false},
		{"localhost", "localhost", "", false},
		{"localhost upper fqdn", "LOCALHOST.localdomain", "", false},
		{"inner space", "my host", "", false},
		{"inner tab", "my\thost.corp", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := NormalizeHostname(tc.in)
			if got != tc.want || ok != tc.ok {
				t.Fatalf("NormalizeHostname(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
			}
			if ok {
				again, ok2 := NormalizeHostname(got)
				if again != got || !ok2 {
					t.Fatalf("not idempotent: NormalizeHostname(%q) = %q, %v", got, again, ok2)
				}
			}
		})
	}
}

func TestNormalizeEmail(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
		ok   bool
	}{
		{"plain", "jdoe@example.com", "jdoe@example.com", true},
		{"mixed case trimmed", "  JDoe@Example.COM ", "jdoe@example.com", true},
		{"plus tag", "j+x@example.com", "j+x@example.com", true},
		{"empty", "", "", false},
		{"no at", "jdoe", "", false},
		{"no local", "@example.com", "", false},
		{"no domain", "jdoe@", "", false},
		{"two ats", "a@b@c", "", false},
		{"inner space", "j doe@example.com", "", false},
		{"inner newline", "jdoe@exa\nmple.com", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := NormalizeEmail(tc.in)
			if got != tc.want || ok != tc.ok {
				t.Fatalf("NormalizeEmail(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestNormalizeDispatch(t *testing.T) {
	tests := []struct {
		kind Kind
		in   string
		want string
		ok   bool
	}{
		{KindSerial, " c02 ", "C02", true},
		{KindMAC, "AA-BB-CC-DD-EE-01", "aabbccddee01", true},
		{KindHostname, "Host.corp", "host", true},
		{KindEmail, "A@B.C", "a@b.c", true},
		{Kind(42), "anything", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.kind.String(), func(t *testing.T) {
			got, ok := Normalize(tc.kind, tc.in)
			if got != tc.want || ok != tc.ok {
				t.Fatalf("Normalize(%v, %q) = %q, %v; want %q, %v", tc.kind, tc.in, got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestKindString(t *testing.T) {
	tests := []struct {
		kind Kind
		want string
	}{
		{KindSerial, "serial"},
		{KindMAC, "mac"},
		{KindHostname, "hostname"},
		{KindEmail, "email"},
		{Kind(99), "unknown"},
	}
	for _, tc := range tests {
		t.Run(tc.want, func(t *testing.T) {
			if got := tc.kind.String(); got != tc.want {
				t.Fatalf("Kind(%d).String() = %q, want %q", tc.kind, got, tc.want)
			}
		})
	}
	if want := []Kind{KindSerial, KindMAC, KindHostname, KindEmail}; !slices.Equal(Kinds[:], want) {
		t.Fatalf("Kinds = %v, want matching priority %v", Kinds, want)
	}
}

func TestRecordNormalize(t *testing.T) {
	tests := []struct {
		name string
		in   Record
		want Record
	}{
		{
			name: "everything normalised and deduplicated",
			in: Record{
				ID:        "x",
				Serials:   []string{" c02 ", "C02", "To be filled by O.E.M.", "0000"},
				MACs:      []string{"74:1d:3e:23:e0:fe", "74-1D-3E-23-E0-FE", "741d.3e23.e0ff", "00:00:00:00:00:00", "junk"},
				Hostnames: []string{"MBP-42.corp.example", "mbp-42", "localhost", "10.0.0.1"},
				Emails:    []string{"JDoe@Example.com", "jdoe@example.com", "not-an-email"},
			},
			want: Record{
				ID:        "x",
				Serials:   []string{"C02"},
				MACs:      []string{"741d3e23e0fe", "741d3e23e0ff"},
				Hostnames: []string{"mbp-42"},
				Emails:    []string{"jdoe@example.com"},
			},
		},
		{
			name: "nothing usable becomes nil",
			in: Record{
				ID:        "y",
				Serials:   []string{"None", ""},
				MACs:      []string{"ff:ff:ff:ff:ff:ff"},
				Hostnames: []string{"::1"},
				Emails:    []string{"@"},
			},
			want: Record{ID: "y"},
		},
		{
			name: "nil stays nil",
			in:   Record{ID: "z", Score: 7},
			want: Record{ID: "z", Score: 7},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.in
			if got := r.Normalize(); got != &r {
				t.Fatal("Normalize must return its receiver")
			}
			for _, k := range Kinds {
				if got, want := r.Identifiers(k), tc.want.Identifiers(k); !slices.Equal(got, want) || (got == nil) != (want == nil) {
					t.Errorf("%v identifiers = %#v, want %#v", k, got, want)
				}
			}
			if r.ID != tc.want.ID || r.Score != tc.want.Score {
				t.Errorf("non-identifier fields changed: %+v", r)
			}
			// Normalising twice changes nothing.
			before := [len(Kinds)][]string{}
			for _, k := range Kinds {
				before[k] = slices.Clone(r.Identifiers(k))
			}
			r.Normalize()
			for _, k := range Kinds {
				if !slices.Equal(before[k], r.Identifiers(k)) {
					t.Errorf("second Normalize changed %v: %v -> %v", k, before[k], r.Identifiers(k))
				}
			}
		})
	}
}

func TestRecordIdentifiersAndHas(t *testing.T) {
	r := (&Record{
		Serials:   []string{"abc"},
		MACs:      []string{"AA:BB:CC:DD:EE:01"},
		Hostnames: []string{"Host.corp"},
		Emails:    []string{"U@X.io"},
	}).Normalize()
	tests := []struct {
		kind Kind
		v    string
		want bool
	}{
		{KindSerial, "ABC", true},
		{KindSerial, "abc", false}, // Has takes normalised values
		{KindMAC, "aabbccddee01", true},
		{KindMAC, "AA:BB:CC:DD:EE:01", false},
		{KindHostname, "host", true},
		{KindHostname, "host.corp", false},
		{KindEmail, "u@x.io", true},
		{KindEmail, "ABC", false},
		{Kind(9), "ABC", false},
	}
	for _, tc := range tests {
		t.Run(tc.kind.String()+"/"+tc.v, func(t *testing.T) {
			if got := r.Has(tc.kind, tc.v); got != tc.want {
				t.Fatalf("Has(%v, %q) = %v, want %v", tc.kind, tc.v, got, tc.want)
			}
		})
	}
	if r.Identifiers(Kind(9)) != nil {
		t.Fatal("Identifiers(unknown kind) must be nil")
	}
}

func TestClamp(t *testing.T) {
	tests := []struct{ in, want int }{
		{-5, 0}, {0, 0}, {1, 1}, {50, 50}, {100, 100}, {101, 100}, {1 << 40, 100}, {-1 << 40, 0},
	}
	for _, tc := range tests {
		if got := Clamp(tc.in); got != tc.want {
			t.Errorf("Clamp(%d) = %d, want %d", tc.in, got, tc.want)
		}
	}
}

func TestNormalizeHostnameIPv6Prefix(t *testing.T) {
	for _, in := range []string{"fe80::1.corp", "::1.x"} {
		got, ok := NormalizeHostname(in)
		if !ok {
			continue
		}
		if again, ok2 := NormalizeHostname(got); !ok2 || again != got {
			t.Errorf("NormalizeHostname(%q) = %q, but NormalizeHostname(%q) = %q, %v", in, got, got, again, ok2)
		}
	}
}

// An identifier over MaxIdentifierLen bytes is never a key, whatever its
// kind, while one at the limit still is: a 10 KB serial must not reach a
// vendor query.
func TestIdentifierCap(t *testing.T) {
	at := func(n int, fill string) string { return strings.Repeat(fill, n) }
	mac := "74:1d:3e:23:e0:fe"
	tests := []struct {
		name string
		kind Kind
		in   string
		ok   bool
	}{
		{"serial at limit", KindSerial, at(MaxIdentifierLen, "A"), true},
		{"serial over limit", KindSerial, at(MaxIdentifierLen+1, "A"), false},
		{"serial 10 KB", KindSerial, at(10<<10, "VMware-56 4d "), false},
		{"serial padded to limit", KindSerial, "  " + at(MaxIdentifierLen, "B") + "\t", true},
		{"mac padded with separators", KindMAC, mac + at(MaxIdentifierLen, " ") + "x", false},
		{"mac with many inner separators", KindMAC, at(MaxIdentifierLen, ":") + "741d3e23e0fe", false},
		{"hostname at limit", KindHostname, at(MaxIdentifierLen, "h"), true},
		{"hostname over limit", KindHostname, at(MaxIdentifierLen+1, "h"), false},
		{"email over limit", KindEmail, at(MaxIdentifierLen, "u") + "@example.com", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := Normalize(tc.kind, tc.in)
			if ok != tc.ok {
				t.Fatalf("Normalize(%s, %d bytes) ok = %v, want %v", tc.kind, len(tc.in), ok, tc.ok)
			}
			if ok && len(got) > MaxIdentifierLen {
				t.Fatalf("normalised value is %d bytes", len(got))
			}
		})
	}
}
