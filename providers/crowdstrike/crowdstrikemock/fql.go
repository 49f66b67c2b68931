package crowdstrikemock

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// This file is a parser and evaluator for the subset of the Falcon Query
// Language (FQL) the Hosts and Zero Trust Assessment APIs accept, written from
// https://falconpy.io/Usage/Falcon-Query-Language.html, the PSFalcon wiki
// "Filtering-Results" and falcon-mcp's hosts FQL guide:
//
//	statement := or
//	or        := and (',' and)*
//	and       := unary ('+' unary)*
//	unary     := '!' unary | '(' or ')' | term
//	term      := property ':' operator? value
//	operator  := '!'? ('*' | '~') | '!' | '>' | '>=' | '<' | '<=' | '=' | '=<' | '=>'
//	value     := 'quoted' | ['quoted', ...] | number | true | false | null
//
// String matching follows what Falcon does rather than what one would guess:
//
//   - A bracket list prop:['a','B'] matches exactly, case included: "Using
//     square brackets will restrict results to exact matches (including
//     case)" (PSFalcon wiki "Filtering-Results"); "the second form (the OR)
//     is case sensitive" (CrowdStrike/Falcon-Toolkit#192).
//   - A single quoted value prop:'x' is case-insensitive ("a single check
//     ... is case insensitive", Falcon-Toolkit#192) and partial: "Many
//     filters will automatically return partial matches" (PSFalcon wiki);
//     hostname:'Asset1' also returns Asset10..Asset14 (psfalcon#425), the
//     API appends the '*' itself (psfalcon#428, #509). The mock matches a
//     prefix by default and any substring with Options.SubstringTerms, so a
//     client must post-filter either way.
//   - '*' wildcards in a single value (prefix, suffix or both) and the '*'
//     operator are globs, case-insensitive like every single value.
//   - '~' compares case-insensitively, ignoring spaces and punctuation.
//
// Comparisons are only for timestamps and numbers. Whitespace outside quotes
// is ignored, so a '+' that a client forgot to URL-encode (and that arrives
// as a space) is a syntax error, as it is for the real API.

// maxProperties is FQL's documented cap: "A FQL statement can have a maximum
// of 20 properties defined" (falconpy.io FQL page). A bracket list is one;
// every OR-ed single term is one (falconpy samples/hosts/
// bulk_add_falcon_tag.py ORs at most 20 serial_number:'x' terms, "Maximum
// number of FQL query terms allowed").
const maxProperties = 20

type fieldType int

const (
	typeString fieldType = iota
	typeTimestamp
	typeNumber
)

// schema tells the parser which properties an endpoint filters on.
type schema func(prop string) (fieldType, bool)

// record yields a property's values for one resource (several for arrays).
type record func(prop string) []string

type node interface {
	eval(r record, substr bool) bool
}

type (
	andNode []node
	orNode  []node
	notNode struct{ n node }
)

func (a andNode) eval(r record, substr bool) bool {
	for _, n := range a {
		if !n.eval(r, substr) {
			return false
		}
	}
	return true
}

func (o orNode) eval(r record, substr bool) bool {
	for _, n := range o {
		if n.eval(r, substr) {
			return true
		}
	}
	return false
}

func (n notNode) eval(r record, substr bool) bool { return !n.n.eval(r, substr) }

type literalKind int

const (
	litString literalKind = iota
	litNumber
	litBool
	litNull
)

type term struct {
	prop    string
	typ     fieldType
	negate  bool   // '!' operator
	op      string // "", "*", "~", ">", ">=", "<", "<="
	bracket bool
	kind    literalKind
	values  []string
	times   []time.Time
	nums    []float64
}

func (t *term) eval(r record, substr bool) bool {
	vals := r(t.prop)
	if len(vals) == 0 {
		vals = []string{""}
	}
	hit := false
	for _, v := range vals {
		if t.match(v, substr) {
			hit = true
			break
		}
	}
	return hit != t.negate
}

func (t *term) match(v string, substr bool) bool {
	if t.kind == litNull {
		return v == ""
	}
	switch t.typ {
	case typeTimestamp:
		tv, err := parseTime(v)
		if err != nil {
			return false
		}
		for _, want := range t.times {
			if compare(t.op, tv.Compare(want)) {
				return true
			}
		}
		return false
	case typeNumber:
		nv, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return false
		}
		for _, want := range t.nums {
			c := 0
			if nv < want {
				c = -1
			} else if nv > want {
				c = 1
			}
			if compare(t.op, c) {
				return true
			}
		}
		return false
	}
	if t.bracket {
		return slices.Contains(t.values, v)
	}
	want := t.values[0]
	if t.op == "~" {
		return glob(textFold(want), textFold(v))
	}
	// A single value: case-insensitive, and partial unless it spells out
	// its own wildcards.
	if t.op != "*" && !substr && !strings.Contains(want, "*") && isASCII(want) && isASCII(v) {
		// The usual lookup term, a prefix. A statement the index cannot
		// narrow is checked against every host, where lowering copies of
		// each host's value would make the mock, not postured, the cost of
		// a 100k-device load test; for ASCII, EqualFold is the same
		// comparison without them.
		return len(v) >= len(want) && strings.EqualFold(v[:len(want)], want)
	}
	want, v = strings.ToLower(want), strings.ToLower(v)
	switch {
	case t.op == "*" && !strings.Contains(want, "*"), substr && !strings.Contains(want, "*"):
		return strings.Contains(v, want)
	case strings.Contains(want, "*"):
		return glob(want, v)
	default:
		return strings.HasPrefix(v, want)
	}
}

func compare(op string, c int) bool {
	switch op {
	case ">":
		return c > 0
	case ">=":
		return c >= 0
	case "<":
		return c < 0
	case "<=":
		return c <= 0
	}
	return c == 0
}

// glob matches s against a pattern whose only metacharacter is '*'.
func glob(pattern, s string) bool {
	parts := strings.Split(pattern, "*")
	if len(parts) == 1 {
		return pattern == s
	}
	if !strings.HasPrefix(s, parts[0]) {
		return false
	}
	s = s[len(parts[0]):]
	last := parts[len(parts)-1]
	for _, p := range parts[1 : len(parts)-1] {
		i := strings.Index(s, p)
		if i < 0 {
			return false
		}
		s = s[i+len(p):]
	}
	return len(s) >= len(last) && strings.HasSuffix(s, last)
}

// textFold is what '~' compares: lower case, letters, digits and '*' only.
// isASCII reports whether s is all ASCII.
func isASCII(s string) bool {
	for i := range len(s) {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

func textFold(s string) string {
	var b strings.Builder
	for _, c := range strings.ToLower(s) {
		if c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '*' || c > 127 {
			b.WriteRune(c)
		}
	}
	return b.String()
}

func parseTime(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("invalid timestamp %q", s)
}

// filter is a parsed FQL statement.
type filter struct {
	root  node
	props int
}

func (f *filter) match(r record, substr bool) bool {
	return f == nil || f.root.eval(r, substr)
}

// parseFilter parses an FQL statement against an endpoint's schema. An empty
// statement matches everything.
func parseFilter(s string, sc schema) (*filter, error) {
	p := &parser{src: s, schema: sc}
	p.skipSpace()
	if p.pos == len(p.src) {
		return nil, nil
	}
	root, err := p.parseOr()
	if err != nil {
		return nil, err
	}
	p.skipSpace()
	if p.pos != len(p.src) {
		return nil, p.errorf("unexpected %q", p.src[p.pos:min(len(p.src), p.pos+10)])
	}
	if p.props > maxProperties {
		return nil, fmt.Errorf("filter has %d properties, the maximum is %d", p.props, maxProperties)
	}
	return &filter{root: root, props: p.props}, nil
}

type parser struct {
	src    string
	pos    int
	schema schema
	props  int
	depth  int
}

func (p *parser) errorf(format string, args ...any) error {
	return fmt.Errorf("at offset %d: %s", p.pos, fmt.Sprintf(format, args...))
}

func (p *parser) skipSpace() {
	for p.pos < len(p.src) && (p.src[p.pos] == ' ' || p.src[p.pos] == '\t' || p.src[p.pos] == '\n') {
		p.pos++
	}
}

func (p *parser) peek() byte {
	p.skipSpace()
	if p.pos < len(p.src) {
		return p.src[p.pos]
	}
	return 0
}

func (p *parser) parseOr() (node, error) {
	var out orNode
	for {
		n, err := p.parseAnd()
		if err != nil {
			return nil, err
		}
		out = append(out, n)
		if p.peek() != ',' {
			break
		}
		p.pos++
	}
	if len(out) == 1 {
		return out[0], nil
	}
	return out, nil
}

func (p *parser) parseAnd() (node, error) {
	var out andNode
	for {
		n, err := p.parseUnary()
		if err != nil {
			return nil, err
		}
		out = append(out, n)
		if p.peek() != '+' {
			break
		}
		p.pos++
	}
	if len(out) == 1 {
		return out[0], nil
	}
	return out, nil
}

func (p *parser) parseUnary() (node, error) {
	switch p.peek() {
	case '!':
		p.pos++
		n, err := p.parseUnary()
		if err != nil {
			return nil, err
		}
		return notNode{n}, nil
	case '(':
		p.depth++
		if p.depth > 32 {
			return nil, p.errorf("parentheses nested too deep")
		}
		p.pos++
		n, err := p.parseOr()
		if err != nil {
			return nil, err
		}
		if p.peek() != ')' {
			return nil, p.errorf("missing ')'")
		}
		p.pos++
		p.depth--
		return n, nil
	case 0:
		return nil, p.errorf("unexpected end of filter")
	}
	return p.parseTerm()
}

func (p *parser) parseTerm() (node, error) {
	start := p.pos
	for p.pos < len(p.src) {
		c := p.src[p.pos]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' {
			p.pos++
			continue
		}
		break
	}
	prop := p.src[start:p.pos]
	if prop == "" {
		return nil, p.errorf("expected a property name")
	}
	typ, ok := p.schema(prop)
	if !ok {
		return nil, fmt.Errorf("invalid filter property %q", prop)
	}
	if p.pos >= len(p.src) || p.src[p.pos] != ':' {
		return nil, p.errorf("expected ':' after %q", prop)
	}
	p.pos++
	p.props++
	t := &term{prop: prop, typ: typ}
	p.parseOperator(t)
	if err := p.parseValue(t); err != nil {
		return nil, err
	}
	if err := t.check(); err != nil {
		return nil, fmt.Errorf("property %q: %w", prop, err)
	}
	return t, nil
}

func (p *parser) parseOperator(t *term) {
	if strings.HasPrefix(p.src[p.pos:], "!") {
		t.negate = true
		p.pos++
	}
	for _, op := range []string{">=", "<=", "=>", "=<", ">", "<", "*", "~", "="} {
		if strings.HasPrefix(p.src[p.pos:], op) {
			p.pos += len(op)
			switch op {
			case "=>":
				op = ">="
			case "=<":
				op = "<="
			case "=":
				op = ""
			}
			t.op = op
			return
		}
	}
}

func (p *parser) parseValue(t *term) error {
	switch c := p.peekRaw(); {
	case c == '\'':
		s, err := p.parseQuoted()
		if err != nil {
			return err
		}
		t.values = []string{s}
	case c == '[':
		t.bracket = true
		p.pos++
	list:
		for {
			if p.peek() != '\'' {
				return p.errorf("expected a quoted value in the list")
			}
			s, err := p.parseQuoted()
			if err != nil {
				return err
			}
			t.values = append(t.values, s)
			switch p.peek() {
			case ',':
				p.pos++
			case ']':
				p.pos++
				break list
			default:
				return p.errorf("expected ',' or ']' in the list")
			}
		}
	default:
		start := p.pos
		for p.pos < len(p.src) && strings.IndexByte("+,()! \t", p.src[p.pos]) < 0 {
			p.pos++
		}
		word := p.src[start:p.pos]
		switch word {
		case "":
			return p.errorf("expected a value")
		case "null":
			t.kind = litNull
		case "true", "false":
			t.kind = litBool
		default:
			if _, err := strconv.ParseFloat(word, 64); err != nil {
				return fmt.Errorf("invalid value %q: strings must be quoted", word)
			}
			t.kind = litNumber
		}
		t.values = []string{word}
	}
	return nil
}

// peekRaw looks at the next byte without skipping spaces: the value follows
// the operator directly.
func (p *parser) peekRaw() byte {
	if p.pos < len(p.src) {
		return p.src[p.pos]
	}
	return 0
}

func (p *parser) parseQuoted() (string, error) {
	p.pos++ // opening quote
	var b strings.Builder
	for p.pos < len(p.src) {
		c := p.src[p.pos]
		switch c {
		case '\\':
			if p.pos+1 >= len(p.src) {
				return "", p.errorf("dangling escape")
			}
			b.WriteByte(p.src[p.pos+1])
			p.pos += 2
			continue
		case '\'':
			p.pos++
			return b.String(), nil
		}
		b.WriteByte(c)
		p.pos++
	}
	return "", p.errorf("unterminated string")
}

// check validates the operator against the property type and pre-parses
// comparison operands.
func (t *term) check() error {
	switch t.op {
	case ">", ">=", "<", "<=":
		if t.typ == typeString {
			return fmt.Errorf("operator %q only applies to timestamps and numbers", t.op)
		}
	}
	if t.bracket && t.op != "" {
		return fmt.Errorf("operator %q cannot be used with a value list", t.op)
	}
	if t.kind == litNull {
		return nil
	}
	switch t.typ {
	case typeTimestamp:
		if t.kind != litString {
			return fmt.Errorf("timestamps must be quoted")
		}
		for _, v := range t.values {
			tv, err := parseTime(v)
			if err != nil {
				return err
			}
			t.times = append(t.times, tv)
		}
	case typeNumber:
		for _, v := range t.values {
			n, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return fmt.Errorf("invalid number %q", v)
			}
			t.nums = append(t.nums, n)
		}
	default:
		if t.kind == litNumber {
			return fmt.Errorf("string values must be quoted")
		}
	}
	return nil
}
