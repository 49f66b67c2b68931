package jamfmock

import (
	"fmt"
	"strconv"
	"strings"
)

// The filter language of the Jamf Pro API: RSQL as described at
// https://developer.jamf.com/jamf-pro/docs/filtering-with-rsql.
//
//	or         = and { ("," | " or ") and }
//	and        = constraint { (";" | " and ") constraint }
//	constraint = "(" or ")" | selector op argument
//	op         = "==" | "!=" | "<" | "=lt=" | "<=" | "=le=" | ">" | "=gt=" | ">=" | "=ge=" | "=in=" | "=out="
//	argument   = value | "(" value { ("," | "|") value } ")"   (the list form only for =in= and =out=)
//	value      = '"' ... '"' | "'" ... "'" | unreserved characters
//
// AND binds tighter than OR. Quoted values take backslash escapes. String
// comparisons are case-insensitive for every operator (Jamf: "New York will
// evaluate the same as new york for all operators"), and * in an == / !=
// value is a wildcard.

// expr is a parsed filter.
type expr interface {
	eval(get getter) bool
	selectors(add func(string))
}

// getter returns the value of a field, and false when the field is null.
type getter func(selector string) (value, bool)

// value is a field value and how it compares.
type value struct {
	s    string
	kind fieldKind
}

type fieldKind uint8

const (
	kindString fieldKind = iota
	kindBool
	kindNumber
	kindTime
)

type andExpr []expr
type orExpr []expr

func (a andExpr) eval(get getter) bool {
	for _, e := range a {
		if !e.eval(get) {
			return false
		}
	}
	return true
}

func (a andExpr) selectors(add func(string)) {
	for _, e := range a {
		e.selectors(add)
	}
}

func (o orExpr) eval(get getter) bool {
	for _, e := range o {
		if e.eval(get) {
			return true
		}
	}
	return false
}

func (o orExpr) selectors(add func(string)) {
	for _, e := range o {
		e.selectors(add)
	}
}

// arg is one comparison argument; an unquoted null compares with null.
type arg struct {
	s      string
	quoted bool
}

func (a arg) isNull() bool { return !a.quoted && a.s == "null" }

type comparison struct {
	selector string
	op       string // canonical: == != < <= > >= =in= =out=
	args     []arg
}

func (c *comparison) selectors(add func(string)) { add(c.selector) }

func (c *comparison) eval(get getter) bool {
	v, present := get(c.selector)
	switch c.op {
	case "==":
		return matches(v, present, c.args[0])
	case "!=":
		return !matches(v, present, c.args[0])
	case "=in=":
		for _, a := range c.args {
			if matches(v, present, a) {
				return true
			}
		}
		return false
	case "=out=":
		for _, a := range c.args {
			if matches(v, present, a) {
				return false
			}
		}
		return true
	}
	if !present || c.args[0].isNull() {
		return false
	}
	cmp, ok := compare(v, c.args[0].s)
	if !ok {
		return false
	}
	switch c.op {
	case "<":
		return cmp < 0
	case "<=":
		return cmp <= 0
	case ">":
		return cmp > 0
	default: // ">="
		return cmp >= 0
	}
}

// matches is RSQL equality: case-insensitive, * as a wildcard for strings,
// numeric for numbers, by instant for dates, and null only equal to null.
func matches(v value, present bool, a arg) bool {
	if a.isNull() {
		return !present || v.s == ""
	}
	if !present {
		return false
	}
	switch v.kind {
	case kindNumber, kindTime:
		if c, ok := compare(v, a.s); ok {
			return c == 0
		}
	case kindString:
		if strings.Contains(a.s, "*") {
			return wildcard(strings.ToLower(a.s), strings.ToLower(v.s))
		}
	}
	return strings.EqualFold(v.s, a.s)
}

// compare orders a field value against an argument of the field's kind.
func compare(v value, a string) (int, bool) {
	switch v.kind {
	case kindNumber:
		x, err1 := strconv.ParseFloat(v.s, 64)
		y, err2 := strconv.ParseFloat(a, 64)
		if err1 != nil || err2 != nil {
			return 0, false
		}
		return cmpOrdered(x, y), true
	case kindTime:
		x, ok1 := parseTime(v.s)
		y, ok2 := parseTime(a)
		if !ok1 || !ok2 {
			return 0, false
		}
		return x.Compare(y), true
	}
	return strings.Compare(strings.ToLower(v.s), strings.ToLower(a)), true
}

func cmpOrdered[T int | float64 | string](x, y T) int {
	switch {
	case x < y:
		return -1
	case x > y:
		return 1
	}
	return 0
}

// wildcard matches s against pattern p where * is any run of characters.
func wildcard(p, s string) bool {
	star, mark := -1, 0
	i, j := 0, 0
	for j < len(s) {
		switch {
		case i < len(p) && p[i] == '*':
			star, mark = i, j
			i++
		case i < len(p) && p[i] == s[j]:
			i++
			j++
		case star >= 0:
			i = star + 1
			mark++
			j = mark
		default:
			return false
		}
	}
	for i < len(p) && p[i] == '*' {
		i++
	}
	return i == len(p)
}

// syntaxError is a filter the RSQL parser rejects.
type syntaxError struct {
	pos int
	msg string
}

func (e *syntaxError) Error() string { return fmt.Sprintf("%s at position %d", e.msg, e.pos) }

// parseFilter parses an RSQL filter.
func parseFilter(s string) (expr, error) {
	p := &parser{s: s}
	e, err := p.or()
	if err != nil {
		return nil, err
	}
	p.space()
	if p.i < len(p.s) {
		return nil, p.errf("unexpected %q", p.s[p.i])
	}
	return e, nil
}

type parser struct {
	s     string
	i     int
	depth int
}

// maxDepth bounds parenthesis nesting so a hostile filter cannot exhaust
// the stack.
const maxDepth = 64

func (p *parser) errf(format string, a ...any) error {
	return &syntaxError{pos: p.i, msg: fmt.Sprintf(format, a...)}
}

func (p *parser) space() {
	for p.i < len(p.s) && isSpace(p.s[p.i]) {
		p.i++
	}
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// keyword consumes " and " / " or " at p.i (any case; whitespace before,
// whitespace or "(" after) and reports whether it was there. The leading
// whitespace is required so a selector such as "orderId" is never a keyword.
func (p *parser) keyword(kw string) bool {
	j := p.i
	if j >= len(p.s) || !isSpace(p.s[j]) {
		return false
	}
	for j < len(p.s) && isSpace(p.s[j]) {
		j++
	}
	if len(p.s)-j < len(kw) || !strings.EqualFold(p.s[j:j+len(kw)], kw) {
		return false
	}
	k := j + len(kw)
	if k >= len(p.s) || !(isSpace(p.s[k]) || p.s[k] == '(') {
		return false
	}
	p.i = k
	return true
}

func (p *parser) or() (expr, error) {
	first, err := p.and()
	if err != nil {
		return nil, err
	}
	terms := orExpr{first}
	for {
		save := p.i
		p.space()
		switch {
		case p.i < len(p.s) && p.s[p.i] == ',':
			p.i++
		case p.keywordAt(save, "or"):
		default:
			p.i = save
			if len(terms) == 1 {
				return first, nil
			}
			return terms, nil
		}
		next, err := p.and()
		if err != nil {
			return nil, err
		}
		terms = append(terms, next)
	}
}

func (p *parser) and() (expr, error) {
	first, err := p.constraint()
	if err != nil {
		return nil, err
	}
	terms := andExpr{first}
	for {
		save := p.i
		p.space()
		switch {
		case p.i < len(p.s) && p.s[p.i] == ';':
			p.i++
		case p.keywordAt(save, "and"):
		default:
			p.i = save
			if len(terms) == 1 {
				return first, nil
			}
			return terms, nil
		}
		next, err := p.constraint()
		if err != nil {
			return nil, err
		}
		terms = append(terms, next)
	}
}

// keywordAt rewinds to pos and tries kw there.
func (p *parser) keywordAt(pos int, kw string) bool {
	p.i = pos
	return p.keyword(kw)
}

func (p *parser) constraint() (expr, error) {
	p.space()
	if p.i >= len(p.s) {
		return nil, p.errf("unexpected end of filter")
	}
	if p.s[p.i] == '(' {
		p.depth++
		if p.depth > maxDepth {
			return nil, p.errf("nesting deeper than %d", maxDepth)
		}
		p.i++
		e, err := p.or()
		if err != nil {
			return nil, err
		}
		p.space()
		if p.i >= len(p.s) || p.s[p.i] != ')' {
			return nil, p.errf("missing )")
		}
		p.i++
		p.depth--
		return e, nil
	}
	return p.comparison()
}

func (p *parser) comparison() (expr, error) {
	start := p.i
	for p.i < len(p.s) && !isReserved(p.s[p.i]) && !isSpace(p.s[p.i]) {
		p.i++
	}
	sel := p.s[start:p.i]
	if sel == "" {
		return nil, p.errf("expected a field name")
	}
	p.space()
	op, err := p.operator()
	if err != nil {
		return nil, err
	}
	p.space()
	c := &comparison{selector: sel, op: op}
	if op == "=in=" || op == "=out=" {
		c.args, err = p.list()
	} else {
		var a arg
		a, err = p.value()
		c.args = []arg{a}
	}
	if err != nil {
		return nil, err
	}
	return c, nil
}

var operators = []struct{ token, canon string }{
	{"==", "=="}, {"!=", "!="},
	{"=lt=", "<"}, {"=le=", "<="}, {"=gt=", ">"}, {"=ge=", ">="},
	{"=in=", "=in="}, {"=out=", "=out="},
	{"<=", "<="}, {">=", ">="}, {"<", "<"}, {">", ">"},
}

func (p *parser) operator() (string, error) {
	rest := p.s[p.i:]
	for _, o := range operators {
		if strings.HasPrefix(rest, o.token) {
			p.i += len(o.token)
			return o.canon, nil
		}
	}
	if strings.HasPrefix(rest, "=") {
		if end := strings.IndexByte(rest[1:], '='); end >= 0 {
			return "", p.errf("unknown operator %q", rest[:end+2])
		}
	}
	return "", p.errf("expected a comparison operator")
}

func (p *parser) list() ([]arg, error) {
	if p.i >= len(p.s) || p.s[p.i] != '(' {
		return nil, p.errf("expected ( after =in= or =out=")
	}
	p.i++
	var out []arg
	for {
		p.space()
		a, err := p.value()
		if err != nil {
			return nil, err
		}
		out = append(out, a)
		p.space()
		if p.i >= len(p.s) {
			return nil, p.errf("missing ) in value list")
		}
		switch p.s[p.i] {
		case ')':
			p.i++
			return out, nil
		case ',', '|': // Jamf's docs show both (ValueA , ValueB) and (ValueA | ValueB)
			p.i++
		default:
			return nil, p.errf("unexpected %q in value list", p.s[p.i])
		}
	}
}

func (p *parser) value() (arg, error) {
	if p.i >= len(p.s) {
		return arg{}, p.errf("expected a value")
	}
	if q := p.s[p.i]; q == '"' || q == '\'' {
		var b strings.Builder
		for p.i++; p.i < len(p.s); p.i++ {
			c := p.s[p.i]
			switch {
			case c == '\\' && p.i+1 < len(p.s):
				p.i++
				b.WriteByte(p.s[p.i])
			case c == q:
				p.i++
				return arg{s: b.String(), quoted: true}, nil
			default:
				b.WriteByte(c)
			}
		}
		return arg{}, p.errf("unterminated quoted value")
	}
	start := p.i
	for p.i < len(p.s) && !isReserved(p.s[p.i]) && !isSpace(p.s[p.i]) && p.s[p.i] != '|' {
		p.i++
	}
	if p.i == start {
		return arg{}, p.errf("expected a value")
	}
	return arg{s: p.s[start:p.i]}, nil
}

// isReserved reports RSQL's reserved characters, which end an unquoted
// selector or value.
func isReserved(c byte) bool {
	switch c {
	case '"', '\'', '(', ')', ';', ',', '=', '!', '~', '<', '>':
		return true
	}
	return false
}
