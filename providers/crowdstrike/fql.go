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

// plan is how one kind of identifier is asked for: optionally an exact
// stage first, then the stage every value the exact one did not find goes
// through.
type plan struct {
	exact *stage
	rest  stage
}

// stage is one way of asking for values: how many values one FQL
// statement takes, and the statement for a set of values.
type stage struct {
	per    int
	filter func(values []string) string
}

// planFor is the plan for kind k, false when Falcon cannot be asked by it.
//
// Serials, hostnames and emails end in single-value terms OR-ed,
// prop:'a',prop:'b': FQL matches a single value case-insensitively, where
// a bracket list is exact including case (Falcon-Toolkit#192, PSFalcon wiki
// "Filtering-Results"), and Falcon keeps these as the device reports them:
// Oskars-Mac-mini-29, VMware-56 4d ..., Jane.Doe@Example.com. A single
// value also matches partially (hostname:'mbp-42' returns mbp-420 and
// mbp-42.corp.example, psfalcon#425), which finds hosts stored with a
// domain; Lookup keeps only exact matches. Each term is one of the 20
// properties a statement may have: 50 statements for 1000 serials.
//
// Serials are first asked as they are normalised, upper-case, in bracket
// lists of maxFQLValues (falconpy's samples/hosts/serial_search.py asks 250
// serials a statement so), and only those no host carries exactly go on to
// the single terms. Hardware serials are upper-case in the firmware of
// nearly every computer that runs a sensor (Apple, Dell service tags,
// Lenovo, HP), so for a batch of devices most are found ten times cheaper,
// and the single terms are left to serials Falcon does not have at all and
// to those it stores in another case (VMware's "VMware-56 4d ...", an EC2
// instance's lower-case UUID). Asking the lower-case form as well would
// halve the values a bracket statement carries for the few serials stored
// so. A serial found exactly is not asked again: a second host carrying it
// in another case would be missed, which only a device whose firmware
// changed the case of its serial between enrolments can be.
//
// Hostnames and emails get no exact stage. The aggregator asks for a
// hostname only for the devices their serial did not settle, mostly devices
// Falcon does not have, and for an email only for devices that sent no
// hardware identifier at all: of the 352 hostnames a 1000-device batch of
// the mock fleet asks for, 28 are stored lower- or upper-case, far below
// the one in five at which a list carrying both forms saves the single
// terms it costs. And a host found exactly would hide another stored with a
// domain or in another case, where for a hostname the most recently seen
// record decides, and for an email a second record makes the match
// ambiguous.
//
// MACs, which Falcon stores in one form (lower-case dash), go into bracket
// lists on mac_address and connection_mac_address: 100 MACs a statement.
func planFor(k providers.Kind) (plan, bool) {
	switch k {
	case providers.KindSerial:
		return plan{
			exact: &stage{maxFQLValues, brackets(asNormalised, "serial_number")},
			rest:  stage{maxFQLProperties, terms("serial_number")},
		}, true
	case providers.KindMAC:
		return plan{rest: stage{maxFQLValues / 2, brackets(falconMAC, "mac_address", "connection_mac_address")}}, true
	case providers.KindHostname:
		return plan{rest: stage{maxFQLProperties, terms("hostname")}}, true
	case providers.KindEmail:
		return plan{rest: stage{maxFQLProperties, terms("email")}}, true
	}
	return plan{}, false
}

// pack groups values into statements of at most st.per values and
// maxFilterBytes once URL-encoded; a value too long for any statement gets
// one of its own (and if Falcon refuses it, it fails alone).
func (st stage) pack(values []string) [][]string {
	var out [][]string
	var cur []string
	for _, v := range values {
		next := append(cur[:len(cur):len(cur)], v)
		if len(cur) > 0 && (len(cur) == st.per || st.tooLong(next)) {
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

// tooLong reports whether the statement for values is over maxFilterBytes
// once URL-encoded.
func (st stage) tooLong(values []string) bool {
	return len(url.QueryEscape(st.filter(values))) > maxFilterBytes
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

// asNormalised is the form of a value Falcon is asked for as it was
// normalised.
func asNormalised(v string) string { return v }

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
