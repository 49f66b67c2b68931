package jamf

import (
	"strings"

	"github.com/postured/postured/providers"
)

// Filter limits. Jamf documents no cap on RSQL clauses; about 20 OR-joined
// comparisons per call is what Jamf integrations send (e.g. slopscale), and
// the length cap keeps the query string far below the 8 KB request-line
// limits of Jamf's Tomcat and of proxies in front of on-prem servers.
// https://developer.jamf.com/jamf-pro/docs/filtering-with-rsql
const (
	maxFilterClauses = 20
	maxFilterLen     = 4000
)

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

var rsqlEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`)

// clauses are the RSQL comparisons that find value (already normalised) in
// field. Jamf compares strings case-insensitively, so normalised lower-case
// values match whatever case the record holds.
func clauses(k providers.Kind, field, v string) []string {
	eq := func(s string) string { return field + `=="` + rsqlEscaper.Replace(s) + `"` }
	switch k {
	case providers.KindMAC:
		// Jamf stores MACs in colon form.
		var b strings.Builder
		for i := 0; i < len(v); i += 2 {
			if i > 0 {
				b.WriteByte(':')
			}
			b.WriteString(v[i:min(i+2, len(v))])
		}
		return []string{eq(b.String())}
	case providers.KindHostname:
		// The record may carry an FQDN (general.name "mbp-42.corp.example").
		return []string{eq(v), eq(v + ".*")}
	}
	return []string{eq(v)}
}

// filters OR-joins the clauses for values into as few filters as the
// limits allow, in value order. Values containing the RSQL wildcard * are
// left out: as a pattern they could pull in the whole inventory, and Jamf
// documents no escape for it (sync mode still matches them).
func filters(k providers.Kind, field string, values []string) []string {
	var out []string
	var cur []string
	curLen := 0
	for _, v := range values {
		if v == "" || strings.Contains(v, "*") {
			continue
		}
		cs := clauses(k, field, v)
		n := 0
		for _, c := range cs {
			n += len(c) + 1
		}
		if len(cur) > 0 && (len(cur)+len(cs) > maxFilterClauses || curLen+n > maxFilterLen) {
			out = append(out, strings.Join(cur, ","))
			cur, curLen = nil, 0
		}
		cur = append(cur, cs...)
		curLen += n
	}
	if len(cur) > 0 {
		out = append(out, strings.Join(cur, ","))
	}
	return out
}
