package providers

import (
	"net/netip"
	"strings"
)

// MaxIdentifierLen bounds every identifier, in bytes after trimming. Real
// serials, MACs, hostnames (253) and emails (254) fit; a longer value (a
// custom SMBIOS serial in a VM, a hostile client) is not a key: it would
// never match, and sent to a vendor it can fail the whole query (a 10 KB
// serial makes Falcon answer 414 for every device of the batch).
const MaxIdentifierLen = 256

// trimmed trims s and reports whether it is short enough to be a key.
func trimmed(s string) (string, bool) {
	s = strings.TrimSpace(s)
	return s, len(s) <= MaxIdentifierLen
}

// placeholderSerials are values OEMs and hypervisors put in the SMBIOS serial
// field when there is no real serial. Matching on them would tie unrelated
// devices together, so they are never keys. Compared lower-cased, with runs of
// whitespace collapsed.
var placeholderSerials = map[string]bool{
	"none":                     true,
	"null":                     true,
	"n/a":                      true,
	"na":                       true,
	"unknown":                  true,
	"default string":           true,
	"to be filled by o.e.m.":   true,
	"to be filled by oem":      true,
	"system serial number":     true,
	"chassis serial number":    true,
	"not specified":            true,
	"not applicable":           true,
	"not available":            true,
	"invalid":                  true,
	"0123456789":               true,
	"123456789":                true,
	"1234567890":               true,
	"serial number":            true,
	"oem":                      true,
	"empty":                    true,
	"undefined":                true,
	"system product name":      true,
	"base board serial number": true,
}

// NormalizeSerial trims and upper-cases a serial number. It reports false for
// blanks and placeholders ("To be filled by O.E.M.", all zeros, ...).
func NormalizeSerial(s string) (string, bool) {
	s, ok := trimmed(s)
	if !ok || s == "" {
		return "", false
	}
	up := strings.ToUpper(s)
	if len(up) > MaxIdentifierLen {
		// Case mapping can grow a value (invalid UTF-8 becomes U+FFFD):
		// the cap holds for the key too, so normalising is idempotent.
		return "", false
	}
	// Check the value returned, not the input: case mapping of some runes
	// ("ı", "ſ") turns a non-placeholder into one.
	if isPlaceholderSerial(up) || allZero(up) {
		return "", false
	}
	return up, true
}

// isPlaceholderSerial reports whether s, lower-cased with runs of
// whitespace collapsed, is a placeholder. Every serial of a batch passes
// here, so ASCII values, nearly all of them, are folded on the stack.
func isPlaceholderSerial(s string) bool {
	var buf [32]byte // longer than any placeholder
	n := 0
	space := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 0x80:
			return placeholderSerials[strings.ToLower(strings.Join(strings.Fields(s), " "))]
		case c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r':
			space = n > 0
			continue
		case c >= 'A' && c <= 'Z':
			c += 'a' - 'A'
		}
		if space {
			if n == len(buf) {
				return false
			}
			buf[n] = ' '
			n++
			space = false
		}
		if n == len(buf) {
			return false
		}
		buf[n] = c
		n++
	}
	return placeholderSerials[string(buf[:n])]
}

// allZero reports whether every letter or digit in s is '0' (e.g. "0",
// "000000", "00000000-0000-0000-0000-000000000000").
func allZero(s string) bool {
	for _, c := range s {
		if c == '0' || c == '-' || c == ' ' || c == ':' || c == '.' {
			continue
		}
		return false
	}
	return true
}

// NormalizeMAC turns any common MAC notation (aa:bb:cc:dd:ee:ff,
// AA-BB-CC-DD-EE-FF, aabb.ccdd.eeff, AABBCCDDEEFF) into 12 lower-case hex
// digits. It reports false for anything that is not exactly 48 bits, and for
// the all-zero and broadcast addresses.
func NormalizeMAC(s string) (string, bool) {
	if _, ok := trimmed(s); !ok {
		return "", false
	}
	var buf [12]byte
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9', c >= 'a' && c <= 'f':
		case c >= 'A' && c <= 'F':
			c += 'a' - 'A'
		case c == ':' || c == '-' || c == '.' || c == ' ' || c == '\t':
			continue
		default:
			return "", false
		}
		if n == len(buf) {
			return "", false
		}
		buf[n] = c
		n++
	}
	if n != len(buf) {
		return "", false
	}
	if string(buf[:]) == "000000000000" || string(buf[:]) == "ffffffffffff" {
		return "", false
	}
	if s == string(buf[:]) {
		return s, true // already normalised: no copy
	}
	return string(buf[:]), true
}

// NullMAC reports whether s is the all-zero or broadcast address in any
// notation: what MDM exports hold for a disabled NIC. Such a value is no
// key, but it is not malformed data either, so inventories ignore it.
func NullMAC(s string) bool {
	var digits []byte
	for i := 0; i < len(s) && len(digits) <= 12; i++ {
		switch c := s[i]; c {
		case ':', '-', '.', ' ', '\t':
		default:
			digits = append(digits, c|0x20)
		}
	}
	d := string(digits)
	return d == "000000000000" || d == "ffffffffffff"
}

// NormalizeHostname lower-cases a hostname and strips any domain suffix, so
// "MBP-42.corp.example." and "mbp-42" are the same key. IP addresses and
// "localhost" are not hostnames a device can be told apart by.
func NormalizeHostname(s string) (string, bool) {
	s, ok := trimmed(s)
	if !ok {
		return "", false
	}
	if s = strings.ToLower(s); len(s) > MaxIdentifierLen {
		return "", false // see NormalizeSerial: case mapping can grow s
	}
	s = strings.TrimSuffix(s, ".")
	if s == "" {
		return "", false
	}
	if mayBeIP(s) {
		if _, err := netip.ParseAddr(s); err == nil {
			return "", false
		}
	}
	if i := strings.IndexByte(s, '.'); i >= 0 {
		s = s[:i]
	}
	if s == "" || s == "localhost" || strings.ContainsAny(s, " \t\r\n:") {
		return "", false
	}
	return s, true
}

// mayBeIP reports whether s could be an IP address: an IPv6 address has a
// colon, an IPv4 address only digits and dots. It spares hostnames the
// error ParseAddr allocates.
func mayBeIP(s string) bool {
	if strings.IndexByte(s, ':') >= 0 {
		return true
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c != '.' && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// NormalizeEmail trims and lower-cases an email address; it reports false
// unless there is something on both sides of a single '@'.
func NormalizeEmail(s string) (string, bool) {
	s, ok := trimmed(s)
	if !ok {
		return "", false
	}
	if s = strings.ToLower(s); len(s) > MaxIdentifierLen {
		return "", false // see NormalizeSerial: case mapping can grow s
	}
	local, domain, ok := strings.Cut(s, "@")
	if !ok || local == "" || domain == "" || strings.Contains(domain, "@") || strings.ContainsAny(s, " \t\r\n") {
		return "", false
	}
	return s, true
}
