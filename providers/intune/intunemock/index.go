package intunemock

import (
	"slices"
	"sort"
	"strings"
)

// indexedProps are the properties clients look devices up by; the mock
// indexes them so a 1000-clause lookup against a large fleet stays cheap.
var indexedProps = []string{"id", "serialNumber", "deviceName", "userPrincipalName"}

// strIndex is one property's values, lower-cased and sorted, for eq and
// startswith lookups.
type strIndex struct {
	keys []string
	pos  []int // device index, parallel to keys
}

func buildIndex(devs []ManagedDevice, p *prop) *strIndex {
	ix := &strIndex{keys: make([]string, len(devs)), pos: make([]int, len(devs))}
	order := make([]int, len(devs))
	for i := range devs {
		order[i] = i
	}
	lower := make([]string, len(devs))
	for i := range devs {
		lower[i] = strings.ToLower(p.get(&devs[i]).(string))
	}
	sort.SliceStable(order, func(a, b int) bool { return lower[order[a]] < lower[order[b]] })
	for i, o := range order {
		ix.keys[i], ix.pos[i] = lower[o], o
	}
	return ix
}

// lookup returns the devices whose value equals (or, prefix, starts with)
// v case-insensitively, in fixture order: a superset of the case-sensitive
// matches, which the filter then re-checks.
func (ix *strIndex) lookup(v string, prefix bool) []int {
	v = strings.ToLower(v)
	i := sort.SearchStrings(ix.keys, v)
	var out []int
	for ; i < len(ix.keys); i++ {
		k := ix.keys[i]
		if k != v && !(prefix && strings.HasPrefix(k, v)) {
			break
		}
		out = append(out, ix.pos[i])
	}
	slices.Sort(out)
	return out
}

// candidates narrows the devices a filter can match through an index when
// the filter is a single indexed eq/startswith clause; nil means scan all.
func (s *Server) candidates(f *parsedFilter) []int {
	if f == nil || f.ignored {
		return nil
	}
	n, ok := f.root.(cmpNode)
	if !ok || n.p == nil || n.nul || (n.op != "eq" && n.op != "startswith") {
		return nil
	}
	ix := s.index[n.p.name]
	if ix == nil {
		return nil
	}
	out := ix.lookup(n.str, n.op == "startswith")
	if out == nil {
		out = []int{}
	}
	return out
}
