package validate

// metricNames finds the metric names a PromQL expression selects, without
// Prometheus' parser (its package pulls in the TSDB and newer Kubernetes
// modules than Helm's). A name is an identifier that is not a keyword or
// aggregation, not a function (followed by "("), not a label name inside
// {...} or in a by/without/on/ignoring/group_left/group_right list, and
// not inside a string, a [range] or a number; {__name__="x"} names x.
// Grafana's $variables are not names.

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode"
)

// promKeywords are identifiers that are never metric names: operators,
// modifiers, and aggregations, which may be followed by "by (...)" before
// their "(".
var promKeywords = []string{"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring",
	"group_left", "group_right", "inf", "nan", "start", "end", "atan2",
	"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
	"bottomk", "topk", "quantile", "limitk", "limit_ratio"}

// promLabelLists are the keywords followed by a parenthesised label list.
var promLabelLists = []string{"by", "without", "on", "ignoring", "group_left", "group_right"}

func isIdentStart(r rune) bool {
	return r == '_' || r == ':' || unicode.IsLetter(r) && r < unicode.MaxASCII
}
func isIdentPart(r rune) bool { return isIdentStart(r) || r >= '0' && r <= '9' }

func metricNames(expr string) ([]string, error) {
	rs := []rune(expr)
	var names []string
	i := 0
	skipSpace := func(j int) int {
		for j < len(rs) && unicode.IsSpace(rs[j]) {
			j++
		}
		return j
	}
	// str reads the string literal starting at rs[j], returning its value
	// and the index after it.
	str := func(j int) (string, int, error) {
		q := rs[j]
		k := j + 1
		for k < len(rs) && rs[k] != q {
			if rs[k] == '\\' && q != '`' {
				k++
			}
			k++
		}
		if k >= len(rs) {
			return "", 0, fmt.Errorf("unterminated string at %d", j)
		}
		raw := string(rs[j : k+1])
		if q == '`' {
			return raw[1 : len(raw)-1], k + 1, nil
		}
		if q == '\'' {
			raw = `"` + strings.ReplaceAll(strings.ReplaceAll(raw[1:len(raw)-1], `"`, `\"`), `\'`, `'`) + `"`
		}
		v, err := strconv.Unquote(raw)
		return v, k + 1, err
	}
	for i < len(rs) {
		r := rs[i]
		switch {
		case unicode.IsSpace(r):
			i++
		case r == '#':
			for i < len(rs) && rs[i] != '\n' {
				i++
			}
		case r == '"' || r == '\'' || r == '`':
			_, j, err := str(i)
			if err != nil {
				return nil, err
			}
			i = j
		case r == '[':
			j := slices.Index(rs[i:], ']')
			if j < 0 {
				return nil, fmt.Errorf("unterminated [ at %d", i)
			}
			i += j + 1
		case r == '{':
			// Label matchers: names are labels; __name__ matches a metric.
			i++
			for i < len(rs) && rs[i] != '}' {
				switch {
				case rs[i] == '"' || rs[i] == '\'' || rs[i] == '`':
					_, j, err := str(i)
					if err != nil {
						return nil, err
					}
					i = j
				case isIdentStart(rs[i]):
					j := i
					for j < len(rs) && isIdentPart(rs[j]) {
						j++
					}
					label := string(rs[i:j])
					i = skipSpace(j)
					if label == "__name__" && strings.HasPrefix(string(rs[i:]), "=") && !strings.HasPrefix(string(rs[i:]), "=~") {
						k := skipSpace(i + 1)
						if k < len(rs) && strings.ContainsRune("\"'`", rs[k]) {
							v, j, err := str(k)
							if err != nil {
								return nil, err
							}
							names = append(names, v)
							i = j
						}
					}
				default:
					i++
				}
			}
			if i >= len(rs) {
				return nil, fmt.Errorf("unterminated { in %q", expr)
			}
			i++
		case r == '$':
			// A Grafana variable: $name, ${name} or [[name]].
			i++
			if i < len(rs) && rs[i] == '{' {
				j := slices.Index(rs[i:], '}')
				if j < 0 {
					return nil, fmt.Errorf("unterminated ${ at %d", i)
				}
				i += j + 1
				continue
			}
			for i < len(rs) && isIdentPart(rs[i]) {
				i++
			}
		case r >= '0' && r <= '9' || r == '.' && i+1 < len(rs) && rs[i+1] >= '0' && rs[i+1] <= '9':
			// Numbers and durations: 0.95, 1e3, 0x1f, 5m, 1h30m.
			for i < len(rs) && (isIdentPart(rs[i]) || rs[i] == '.' || (rs[i] == '+' || rs[i] == '-') && (rs[i-1] == 'e' || rs[i-1] == 'E')) {
				i++
			}
		case isIdentStart(r):
			j := i
			for j < len(rs) && isIdentPart(rs[j]) {
				j++
			}
			word := string(rs[i:j])
			next := skipSpace(j)
			switch {
			case next < len(rs) && rs[next] == '(' && slices.Contains(promLabelLists, strings.ToLower(word)):
				k := slices.Index(rs[next:], ')')
				if k < 0 {
					return nil, fmt.Errorf("unterminated %s( in %q", word, expr)
				}
				i = next + k + 1
			case next < len(rs) && rs[next] == '(':
				i = j // a function or aggregation
			case slices.Contains(promKeywords, strings.ToLower(word)):
				i = j
			default:
				names = append(names, word)
				i = j
			}
		default:
			i++
		}
	}
	return names, nil
}

func TestMetricNames(t *testing.T) {
	for _, tc := range []struct {
		expr string
		want []string
	}{
		{`up`, []string{"up"}},
		{`sum by (le) (rate(a_bucket{job=~"$job"}[$__rate_interval]))`, []string{"a_bucket"}},
		{`histogram_quantile(0.95, sum without(instance) (rate(x_bucket[5m])))`, []string{"x_bucket"}},
		{`sum(rate(a_total{reason="by (x) foo{}"}[1h30m] offset 5m)) / on(provider) group_left(team) b`, []string{"a_total", "b"}},
		{`time() - last_sync{provider=~"$provider"}`, []string{"last_sync"}},
		{`count(ready == 0) or vector(0)`, []string{"ready"}},
		{`{__name__="ns:metric:rate5m", job='x'} and bool c`, []string{"ns:metric:rate5m", "c"}},
		{`a{l="\"}"} unless ignoring (x, y) b1 > 1e-3`, []string{"a", "b1"}},
		{"rate(m[${__range}]) * ${factor} + max_over_time(n[5m:1m])", []string{"m", "n"}},
		{`sum by (status) (rate(reqs{route=~"/|/posture"}[5m]))`, []string{"reqs"}},
	} {
		t.Run(tc.expr, func(t *testing.T) {
			got, err := metricNames(tc.expr)
			if err != nil || !slices.Equal(got, tc.want) {
				t.Errorf("metricNames = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
	for _, bad := range []string{`a{b="c"`, `rate(a[5m)`, `a{b="c}`} {
		if got, err := metricNames(bad); err == nil {
			t.Errorf("metricNames(%q) = %q, want an error", bad, got)
		}
	}
}
