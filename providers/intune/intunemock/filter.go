package intunemock

import (
	"fmt"
	"strings"
	"time"
)

// OrMode is how the mock treats "or" in $filter. Graph documents "or" only
// for a few enum properties, and it was reported to act like "and" when
// mixing properties (microsoft/Intune-PowerShell-SDK#109).
type OrMode int

const (
	// OrSupported evaluates "or" as a logical or.
	OrSupported OrMode = iota
	// OrLikeAnd evaluates "or" as "and", the reported bug.
	OrLikeAnd
	// OrError rejects "or" with 400.
	OrError
)

// UnsupportedMode is how the mock treats a filter on a property Graph does
// not filter on (e.g. wiFiMacAddress, emailAddress).
type UnsupportedMode int

const (
	// UnsupportedIgnore drops the whole filter and returns every device,
	// which is what Graph does for e.g. skuFamily
	// (microsoft-graph-docs-contrib#2416).
	UnsupportedIgnore UnsupportedMode = iota
	// UnsupportedError answers 400.
	UnsupportedError
)

// filterError is a $filter the mock rejects with 400 BadRequest.
type filterError struct{ msg string }

func (e *filterError) Error() string { return e.msg }

func errf(format string, args ...any) error {
	return &filterError{msg: fmt.Sprintf(format, args...)}
}

// node is a parsed $filter expression.
type node interface {
	eval(d *ManagedDevice, caseSensitive bool) bool
}

type andNode struct{ l, r node }
type orNode struct{ l, r node }
type notNode struct{ x node }

// cmpNode is "prop op literal" or "func(prop, literal)".
type cmpNode struct {
	p   *prop
	op  string
	str string
	tm  time.Time
	b   bool
	nul bool
}

func (n andNode) eval(d *ManagedDevice, cs bool) bool { return n.l.eval(d, cs) && n.r.eval(d, cs) }
func (n orNode) eval(d *ManagedDevice, cs bool) bool  { return n.l.eval(d, cs) || n.r.eval(d, cs) }
func (n notNode) eval(d *ManagedDevice, cs bool) bool { return !n.x.eval(d, cs) }

func (n cmpNode) eval(d *ManagedDevice, cs bool) bool {
	if n.p == nil { // an ignored clause; the whole filter is dropped anyway
		return true
	}
	v := n.p.get(d)
	switch n.p.kind {
	case kindTime:
		t := v.(time.Time)
		switch n.op {
		case "gt":
			return t.After(n.tm)
		case "ge":
			return !t.Before(n.tm)
		case "lt":
			return t.Before(n.tm)
		case "le":
			return !t.After(n.tm)
		}
	case kindBool:
		eq := v.(bool) == n.b
		return eq == (n.op == "eq")
	case kindString:
		s, lit := v.(string), n.str
		if n.nul {
			return (s == "") == (n.op == "eq")
		}
		equal := func(a, b string) bool { return a == b || (!cs && strings.EqualFold(a, b)) }
		switch n.op {
		case "eq":
			return equal(s, lit)
		case "ne":
			if n.p.neAsEq {
				return equal(s, lit)
			}
			return !equal(s, lit)
		case "startswith":
			return len(s) >= len(lit) && equal(s[:len(lit)], lit)
		}
		if !cs {
			s, lit = strings.ToLower(s), strings.ToLower(lit)
		}
		switch n.op {
		case "endswith":
			return strings.HasSuffix(s, lit)
		case "contains":
			return strings.Contains(s, lit)
		}
	}
	return false
}

// filterRules are the server quirks the parser applies.
type filterRules struct {
	or          OrMode
	unsupported UnsupportedMode
	// notFilterable removes properties (lower-cased) from the filterable set.
	notFilterable map[string]bool
	// startsWithContains evaluates startswith as contains (see
	// Options.StartsWithContains).
	startsWithContains bool
	// maxLiteral, when positive, is the longest string literal accepted
	// (see Options.MaxFilterLiteral).
	maxLiteral int
}

// parsedFilter is a filter ready to evaluate; ignored means Graph would
// have silently dropped it (every device matches).
type parsedFilter struct {
	root    node
	ignored bool
}

func (f *parsedFilter) match(d *ManagedDevice, caseSensitive bool) bool {
	if f == nil || f.ignored || f.root == nil {
		return true
	}
	return f.root.eval(d, caseSensitive)
}

// parseFilter parses the OData $filter subset Graph accepts on
// managedDevices: comparisons (eq ne gt ge lt le) of a property with a
// literal, startswith/endswith/contains, and/or/not and parentheses.
// String literals are single-quoted, a doubled quote standing for one;
// DateTimeOffset literals are unquoted.
func parseFilter(src string, rules filterRules) (*parsedFilter, error) {
	toks, err := lex(src)
	if err != nil {
		return nil, err
	}
	if rules.maxLiteral > 0 {
		for _, t := range toks {
			// Graph's message names neither the value nor the limit.
			if t.kind == tString && len(t.val) > rules.maxLiteral {
				return nil, errf("Unsupported or invalid query filter clause specified for the literal at position %d.", t.pos)
			}
		}
	}
	p := &parser{toks: toks, src: src, rules: rules}
	root, err := p.expr()
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != tEOF {
		return nil, errf("Invalid filter clause: syntax error at position %d in '%s'.", t.pos, src)
	}
	return &parsedFilter{root: root, ignored: p.ignored}, nil
}

type tokKind int

const (
	tEOF tokKind = iota
	tIdent
	tString
	tBare // unquoted literal: number, date, true/false/null
	tLParen
	tRParen
	tComma
)

type token struct {
	kind tokKind
	val  string
	pos  int
}

func lex(src string) ([]token, error) {
	var out []token
	i := 0
	for i < len(src) {
		c := src[i]
		switch {
		case c == ' ' || c == '\t':
			i++
		case c == '(':
			out = append(out, token{tLParen, "(", i})
			i++
		case c == ')':
			out = append(out, token{tRParen, ")", i})
			i++
		case c == ',':
			out = append(out, token{tComma, ",", i})
			i++
		case c == '\'':
			start := i
			var b strings.Builder
			i++
			closed := false
			for i < len(src) {
				if src[i] == '\'' {
					if i+1 < len(src) && src[i+1] == '\'' {
						b.WriteByte('\'')
						i += 2
						continue
					}
					i++
					closed = true
					break
				}
				b.WriteByte(src[i])
				i++
			}
			if !closed {
				return nil, errf("Invalid filter clause: unterminated string literal at position %d in '%s'.", start, src)
			}
			out = append(out, token{tString, b.String(), start})
		case isIdentStart(c):
			start := i
			for i < len(src) && isIdentPart(src[i]) {
				i++
			}
			out = append(out, token{tIdent, src[start:i], start})
		case c >= '0' && c <= '9' || c == '-':
			start := i
			for i < len(src) && (isIdentPart(src[i]) || src[i] == ':' || src[i] == '-' || src[i] == '+' || src[i] == '.') {
				i++
			}
			out = append(out, token{tBare, src[start:i], start})
		default:
			return nil, errf("Invalid filter clause: syntax error at position %d in '%s'.", i, src)
		}
	}
	return append(out, token{tEOF, "", len(src)}), nil
}

func isIdentStart(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_'
}

func isIdentPart(c byte) bool { return isIdentStart(c) || c >= '0' && c <= '9' }

type parser struct {
	toks    []token
	i       int
	src     string
	rules   filterRules
	ignored bool
}

func (p *parser) peek() token { return p.toks[p.i] }
func (p *parser) next() token {
	t := p.toks[p.i]
	if t.kind != tEOF {
		p.i++
	}
	return t
}

func (p *parser) keyword(kw string) bool {
	t := p.peek()
	if t.kind == tIdent && strings.EqualFold(t.val, kw) {
		p.i++
		return true
	}
	return false
}

func (p *parser) syntax(t token) error {
	return errf("Invalid filter clause: syntax error at position %d in '%s'.", t.pos, p.src)
}

func (p *parser) expr() (node, error) {
	l, err := p.and()
	if err != nil {
		return nil, err
	}
	for {
		t := p.peek()
		if !p.keyword("or") {
			return l, nil
		}
		if p.rules.or == OrError {
			return nil, errf("Invalid filter clause: the 'or' operator is not supported at position %d in '%s'.", t.pos, p.src)
		}
		r, err := p.and()
		if err != nil {
			return nil, err
		}
		if p.rules.or == OrLikeAnd {
			l = andNode{l, r}
		} else {
			l = orNode{l, r}
		}
	}
}

func (p *parser) and() (node, error) {
	l, err := p.unary()
	if err != nil {
		return nil, err
	}
	for p.keyword("and") {
		r, err := p.unary()
		if err != nil {
			return nil, err
		}
		l = andNode{l, r}
	}
	return l, nil
}

func (p *parser) unary() (node, error) {
	if p.keyword("not") {
		x, err := p.unary()
		if err != nil {
			return nil, err
		}
		return notNode{x}, nil
	}
	t := p.peek()
	if t.kind == tLParen {
		p.next()
		x, err := p.expr()
		if err != nil {
			return nil, err
		}
		if c := p.next(); c.kind != tRParen {
			return nil, p.syntax(c)
		}
		return x, nil
	}
	if t.kind != tIdent {
		return nil, p.syntax(t)
	}
	p.next()
	if p.peek().kind == tLParen {
		return p.call(t)
	}
	return p.comparison(t)
}

var functions = map[string]bool{"startswith": true, "endswith": true, "contains": true}

// call parses startswith(prop,'x') and friends.
func (p *parser) call(fn token) (node, error) {
	name := strings.ToLower(fn.val)
	if !functions[name] {
		return nil, errf("Invalid filter clause: unknown function '%s' at position %d in '%s'.", fn.val, fn.pos, p.src)
	}
	p.next() // (
	id := p.next()
	if id.kind != tIdent {
		return nil, p.syntax(id)
	}
	if c := p.next(); c.kind != tComma {
		return nil, p.syntax(c)
	}
	lit := p.next()
	if lit.kind != tString {
		return nil, p.syntax(lit)
	}
	if c := p.next(); c.kind != tRParen {
		return nil, p.syntax(c)
	}
	pr, err := p.property(id, name)
	if err != nil || pr == nil {
		return cmpNode{p: pr}, err
	}
	if pr.kind != kindString {
		return nil, errf("Invalid filter clause: function '%s' requires a string property, '%s' is %s.", name, pr.name, kindName(pr.kind))
	}
	if name == "startswith" && p.rules.startsWithContains {
		name = "contains"
	}
	return cmpNode{p: pr, op: name, str: lit.val}, nil
}

var comparisons = map[string]bool{"eq": true, "ne": true, "gt": true, "ge": true, "lt": true, "le": true}

func (p *parser) comparison(id token) (node, error) {
	opTok := p.next()
	op := strings.ToLower(opTok.val)
	if opTok.kind != tIdent || !comparisons[op] {
		if opTok.kind == tIdent && strings.EqualFold(opTok.val, "in") {
			return nil, errf("Invalid filter clause: the 'in' operator is not supported at position %d in '%s'.", opTok.pos, p.src)
		}
		return nil, p.syntax(opTok)
	}
	lit := p.next()
	if lit.kind != tString && lit.kind != tBare && lit.kind != tIdent {
		return nil, p.syntax(lit)
	}
	pr, err := p.property(id, op)
	if err != nil || pr == nil {
		return cmpNode{p: pr}, err
	}
	n := cmpNode{p: pr, op: op}
	litVal := strings.ToLower(lit.val)
	if lit.kind == tIdent && litVal != "null" && litVal != "true" && litVal != "false" {
		return nil, errf("Could not find a property named '%s' on type 'microsoft.graph.managedDevice'.", lit.val)
	}
	switch {
	case lit.kind != tString && litVal == "null":
		if pr.kind != kindString || (op != "eq" && op != "ne") {
			return nil, errf("Invalid filter clause: null is not comparable with operator '%s' on '%s'.", op, pr.name)
		}
		n.nul = true
	case pr.kind == kindString:
		if lit.kind != tString {
			return nil, incompatible(pr, lit, op)
		}
		n.str = lit.val
	case pr.kind == kindBool:
		if lit.kind == tString || (litVal != "true" && litVal != "false") {
			return nil, incompatible(pr, lit, op)
		}
		n.b = litVal == "true"
	case pr.kind == kindTime:
		if lit.kind != tBare {
			return nil, incompatible(pr, lit, op)
		}
		tm, err := time.Parse(time.RFC3339Nano, lit.val)
		if err != nil {
			return nil, errf("Invalid filter clause: the DateTimeOffset text '%s' should be in format 'yyyy-mm-ddThh:mm:ss('.'s+)?(zzzzzz)?'.", lit.val)
		}
		n.tm = tm
	default:
		return nil, incompatible(pr, lit, op)
	}
	return n, nil
}

// property resolves a property for operator op. It returns (nil, nil) when
// the filter is to be silently ignored.
func (p *parser) property(id token, op string) (*prop, error) {
	pr := lookupProp(id.val)
	if pr == nil {
		return nil, errf("Could not find a property named '%s' on type 'microsoft.graph.managedDevice'.", id.val)
	}
	supported := false
	for _, o := range pr.ops {
		if o == op {
			supported = true
		}
	}
	if p.rules.notFilterable[strings.ToLower(pr.name)] {
		supported = false
	}
	if supported {
		return pr, nil
	}
	if len(pr.ops) > 0 && !p.rules.notFilterable[strings.ToLower(pr.name)] {
		// Filterable property, wrong operator: Graph rejects it.
		return nil, errf("Invalid filter clause: operator '%s' is not supported on property '%s'.", op, pr.name)
	}
	if p.rules.unsupported == UnsupportedError {
		return nil, errf("Invalid filter clause: filtering on property '%s' is not supported.", pr.name)
	}
	p.ignored = true
	return nil, nil
}

func incompatible(pr *prop, lit token, op string) error {
	litType := "Edm.String"
	if lit.kind != tString {
		litType = "Edm.DateTimeOffset"
		switch strings.ToLower(lit.val) {
		case "true", "false":
			litType = "Edm.Boolean"
		}
	}
	return errf("A binary operator with incompatible types was detected. Found operand types '%s' and '%s' for operator kind '%s'.",
		kindName(pr.kind), litType, op)
}

func kindName(k propKind) string {
	switch k {
	case kindBool:
		return "Edm.Boolean"
	case kindTime:
		return "Edm.DateTimeOffset"
	case kindInt:
		return "Edm.Int64"
	}
	return "Edm.String"
}
