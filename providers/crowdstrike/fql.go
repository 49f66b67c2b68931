package crowdstrike

import (
	"strings"
)

// query is one FQL statement and the normalised values it asks for.
type query struct {
	filter string
	values []string
}

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

// packBrackets groups values into statements of the form
// prop1:['a','A',...],prop2:['a','A',...] (the props OR-ed, each a bracket
// list, exact match including case), with at most maxFQLValues entries per
// statement. forms renders one normalised value in every spelling Falcon
// may store it in.
func packBrackets(values []string, forms func(string) []string, props ...string) []query {
	var out []query
	var cur []string
	var curForms []string
	flush := func() {
		if len(cur) == 0 {
			return
		}
		parts := make([]string, len(props))
		for i, p := range props {
			parts[i] = p + ":[" + strings.Join(curForms, ",") + "]"
		}
		out = append(out, query{filter: strings.Join(parts, ","), values: cur})
		cur, curForms = nil, nil
	}
	for _, v := range values {
		fs := forms(v)
		if (len(curForms)+len(fs))*len(props) > maxFQLValues {
			flush()
		}
		cur = append(cur, v)
		for _, f := range fs {
			curForms = append(curForms, "'"+f+"'")
		}
	}
	flush()
	return out
}

// hostnamePrefixQueries finds hosts whose Falcon hostname is an FQDN
// starting with the short name: hostname:*'mbp-42.*' (the '*' operator,
// prefix wildcard; FQL's 20-property cap allows 10 names per statement in
// both cases).
func hostnamePrefixQueries(values []string) []query {
	var out []query
	var cur, terms []string
	for _, v := range values {
		fs := hostnameForms(v)
		if len(terms)+len(fs) > maxFQLProperties {
			out = append(out, query{filter: strings.Join(terms, ","), values: cur})
			cur, terms = nil, nil
		}
		cur = append(cur, v)
		for _, f := range fs {
			terms = append(terms, "hostname:*'"+f+".*'")
		}
	}
	if len(cur) > 0 {
		out = append(out, query{filter: strings.Join(terms, ","), values: cur})
	}
	return out
}

// serialForms: Falcon reports hardware serials as the firmware does,
// upper case in practice, but an SMBIOS UUID standing in for a serial (EC2
// and other VMs: "ec2c0000-...") in lower case.
func serialForms(v string) []string {
	if lower := strings.ToLower(v); lower != v && uuidLike(v) {
		return []string{v, lower}
	}
	return []string{v}
}

// uuidLike reports whether s is hex digits and dashes only, with at least
// one dash: an SMBIOS UUID rather than a vendor serial.
func uuidLike(s string) bool {
	dash := false
	for _, c := range s {
		switch {
		case c == '-':
			dash = true
		case c >= '0' && c <= '9', c >= 'A' && c <= 'F', c >= 'a' && c <= 'f':
		default:
			return false
		}
	}
	return dash
}

// macForms: Falcon stores MACs in lower-case dash form, aa-bb-cc-dd-ee-ff
// (observed in device samples and the form other integrations query with).
func macForms(v string) []string {
	if len(v) != 12 {
		return []string{v}
	}
	var b strings.Builder
	for i := 0; i < 12; i += 2 {
		if i > 0 {
			b.WriteByte('-')
		}
		b.WriteString(v[i : i+2])
	}
	return []string{b.String()}
}

// hostnameForms: sensors report the computer name as the OS has it, lower
// case on macOS and Linux, upper case on most Windows machines; mixed case
// can only be matched in sync mode.
func hostnameForms(v string) []string {
	if upper := strings.ToUpper(v); upper != v {
		return []string{v, upper}
	}
	return []string{v}
}

func identity(v string) []string { return []string{v} }
