package crowdstrike

import (
	"net/url"
	"strings"

	"github.com/postured/postured/providers"
)

// fqlSafe reports whether v can go into an FQL string literal. FQL has no
// documented escape for quotes, and '*' is a wildcard, so identifiers with
// such characters are not sent at all: a crafted serial must never widen a
// query (and an unsent value simply matches nothing).
func fqlSafe(v string) bool {
	if v == "" {
		return false
	}
	for _, c := range v {
		if c < 0x20 || c == 0x7f || strings.ContainsRune(`'"\[]*`, c) {
			return false
		}
	}
	return true
}

// plan is how one kind of identifier is asked for: how many values one FQL
// statement takes, and the statement for a set of values.
type plan struct {
	per    int
	filter func(values []string) string
}

// planFor is the plan for kind k, false when Falcon cannot be asked by it.
//
// Serials, hostnames and emails are single-value terms OR-ed,
// prop:'a',prop:'b': FQL matches a single value case-insensitively, where
// a bracket list is exact including case (Falcon-Toolkit#192, PSFalcon wiki
// "Filtering-Results"), and Falcon keeps these as the device reports them:
// Oskars-Mac-mini-29, VMware-56 4d ..., Jane.Doe@Example.com. A single
// value also matches partially (hostname:'mbp-42' returns mbp-420 and
// mbp-42.corp.example, psfalcon#425), which finds hosts stored with a
// domain; Lookup keeps only exact matches. Each term is one of the 20
// properties a statement may have.
//
// MACs, which Falcon stores in one form (lower-case dash), go into bracket
// lists on mac_address and connection_mac_address: 100 MACs a statement.
func planFor(k providers.Kind) (plan, bool) {
	switch k {
	case providers.KindSerial:
		return plan{maxFQLProperties, terms("serial_number")}, true
	case providers.KindMAC:
		return plan{maxFQLValues / 2, brackets(falconMAC, "mac_address", "connection_mac_address")}, true
	case providers.KindHostname:
		return plan{maxFQLProperties, terms("hostname")}, true
	case providers.KindEmail:
		return plan{maxFQLProperties, terms("email")}, true
	}
	return plan{}, false
}

// pack groups values into statements of at most pl.per values and
// maxFilterBytes once URL-encoded; a value too long for any statement gets
// one of its own (and if Falcon refuses it, it fails alone).
func (pl plan) pack(values []string) [][]string {
	var out [][]string
	var cur []string
	for _, v := range values {
		next := append(cur[:len(cur):len(cur)], v)
		if len(cur) > 0 && (len(cur) == pl.per || len(url.QueryEscape(pl.filter(next))) > maxFilterBytes) {
			out = append(out, cur)
			next = []string{v}
		}
		cur = next
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

// terms renders prop:'a',prop:'b',...
func terms(prop string) func([]string) string {
	return func(values []string) string {
		parts := make([]string, len(values))
		for i, v := range values {
			parts[i] = prop + ":'" + v + "'"
		}
		return strings.Join(parts, ",")
	}
}

// brackets renders prop1:['a','b'],prop2:['a','b'] with each value in the
// form Falcon stores it.
func brackets(form func(string) string, props ...string) func([]string) string {
	return func(values []string) string {
		quoted := make([]string, len(values))
		for i, v := range values {
			quoted[i] = "'" + form(v) + "'"
		}
		list := "[" + strings.Join(quoted, ",") + "]"
		parts := make([]string, len(props))
		for i, p := range props {
			parts[i] = p + ":" + list
		}
		return strings.Join(parts, ",")
	}
}

// falconMAC renders a normalised MAC as Falcon stores it,
// aa-bb-cc-dd-ee-ff (observed in device samples and the form other
// integrations query with).
func falconMAC(v string) string {
	if len(v) != 12 {
		return v
	}
	var b strings.Builder
	for i := 0; i < 12; i += 2 {
		if i > 0 {
			b.WriteByte('-')
		}
		b.WriteString(v[i : i+2])
	}
	return b.String()
}
