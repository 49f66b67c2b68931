package jamf

import (
	"net/url"
	"strings"

	"github.com/postured/postured/providers"
)

// maxRequestURI bounds the encoded path and query of one inventory call.
// Jamf documents =in= lists but no cap on a filter
// (https://developer.jamf.com/jamf-pro/docs/filtering-with-rsql); what
// binds is the request size: Jamf Pro runs on Tomcat, whose
// maxHttpHeaderSize (8 KB by default) covers the request line and every
// header together, and proxies in front of on-premises servers often hold
// the same. A bearer token (a JWT of up to about 1 KB) and the other
// headers fit in the 2 KB left. One call then carries about 390 serials,
// 200 MACs or emails, or 100 hostnames.
const maxRequestURI = 6144

// Filterable fields by kind. The computer inventory cannot filter on
// hardware.altMacAddress (it is not in the endpoint's list of filterable
// fields), so in query mode a Mac is found by its primary MAC only.
var (
	computerFilterField = map[providers.Kind]string{
		providers.KindSerial:   "hardware.serialNumber",
		providers.KindMAC:      "hardware.macAddress",
		providers.KindHostname: "general.name",
		providers.KindEmail:    "userAndLocation.email",
	}
	mobileFilterField = map[providers.Kind]string{
		providers.KindSerial:   "serialNumber",
		providers.KindMAC:      "wifiMacAddress",
		providers.KindHostname: "displayName",
		providers.KindEmail:    "emailAddress",
	}
)

// filterable drops the values no filter should carry: blanks, and values
// containing the RSQL wildcard *, which as a pattern could pull in the
// whole inventory and which Jamf documents no escape for (sync mode still
// matches them).
func filterable(values []string) []string {
	out := make([]string, 0, len(values))
	for _, v := range values {
		if v != "" && !strings.Contains(v, "*") {
			out = append(out, v)
		}
	}
	return out
}

// wireValue is a normalised value as Jamf stores it: MACs in colon form.
// Jamf compares strings case-insensitively for every operator, so
// normalised values match whatever case the record holds
// ("Oskars-Mac-mini-29", "VMware-56 4d ...").
func wireValue(k providers.Kind, v string) string {
	if k != providers.KindMAC {
		return v
	}
	var b strings.Builder
	for i := 0; i < len(v); i += 2 {
		if i > 0 {
			b.WriteByte(':')
		}
		b.WriteString(v[i:min(i+2, len(v))])
	}
	return b.String()
}

var rsqlEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`)

// argument is v as an RSQL argument: bare when RSQL allows it, which
// saves the six bytes of encoded quotes per value, else double-quoted with
// backslash escapes. A bare null would compare with null.
func argument(v string) string {
	if v == "" || strings.EqualFold(v, "null") || strings.ContainsAny(v, "\"'();,=!~<>|\\* \t\r\n") {
		return `"` + rsqlEscaper.Replace(v) + `"`
	}
	return v
}

// fqdnPattern finds a record whose name is v qualified with a domain
// (general.name "mbp-42.corp.example" for the short name mbp-42). Jamf
// documents the * wildcard for == only, not inside =in= lists, so each
// hostname costs one such comparison besides its list entry.
func fqdnPattern(field, v string) string {
	return field + `=="` + rsqlEscaper.Replace(v) + `.*"`
}

// filterFor is the RSQL filter that finds values (normalised, filterable)
// in field: one value compares with ==, several go in one =in= list, and
// hostnames add their FQDN pattern.
func filterFor(k providers.Kind, field string, values []string) string {
	var b strings.Builder
	if len(values) == 1 {
		b.WriteString(field + "==" + argument(wireValue(k, values[0])))
	} else {
		b.WriteString(field + "=in=(")
		for i, v := range values {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(argument(wireValue(k, v)))
		}
		b.WriteByte(')')
	}
	if k == providers.KindHostname {
		for _, v := range values {
			b.WriteString("," + fqdnPattern(field, v))
		}
	}
	return b.String()
}

// encodedLen is the length of s in a URL query.
func encodedLen(s string) int { return len(url.QueryEscape(s)) }

// batches splits values into groups whose filter, URL-encoded, takes at
// most budget bytes, keeping value order. The estimate is the list form's
// length, which the single-value form never exceeds. A value too long for
// any filter gets a group of its own: the server's refusal then fails only
// that value.
func batches(k providers.Kind, field string, values []string, budget int) [][]string {
	fixed := encodedLen(field + "=in=()")
	var (
		out  [][]string
		cur  []string
		size = fixed
	)
	for _, v := range values {
		n := encodedLen(argument(wireValue(k, v))) + encodedLen(",")
		if k == providers.KindHostname {
			n += encodedLen("," + fqdnPattern(field, v))
		}
		if len(cur) > 0 && size+n > budget {
			out = append(out, cur)
			cur, size = nil, fixed
		}
		cur = append(cur, v)
		size += n
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}
