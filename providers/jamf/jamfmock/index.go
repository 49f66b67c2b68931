package jamfmock

import (
	"slices"
	"strings"
	"sync"

	"github.com/postured/postured/internal/mockkit"
)

// Indexed selectors: the string fields postured looks records up by.
var (
	computerIndexed = []string{"hardware.serialNumber", "hardware.macAddress", "general.name", "userAndLocation.email"}
	mobileIndexed   = []string{"serialNumber", "wifiMacAddress", "displayName", "emailAddress"}
)

// inventoryIndex finds the records a filter can match without evaluating
// it against every record. Each listing's field index is built on first
// use and dropped whenever the records change (drift), so it never answers
// for records it has not seen.
type inventoryIndex struct {
	mu     sync.Mutex
	fields map[string]*mockkit.FoldIndex // by listing and selector
}

// reset drops the index; the next filtered listing rebuilds what it uses.
func (x *inventoryIndex) reset() {
	x.mu.Lock()
	x.fields = nil
	x.mu.Unlock()
}

// fieldIndex is the index of selector over items, nil when sel is not indexed.
func fieldIndex[T any](x *inventoryIndex, items []T, spec listSpec[T], sel string) *mockkit.FoldIndex {
	if !slices.Contains(spec.indexed, sel) {
		return nil
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	key := spec.name + " " + sel
	if fi, ok := x.fields[key]; ok {
		return fi
	}
	if x.fields == nil {
		x.fields = map[string]*mockkit.FoldIndex{}
	}
	fi := mockkit.NewFoldIndex(len(items), func(i int) []string {
		v, ok := spec.get(&items[i])(sel)
		if !ok {
			return nil // a null field matches no value
		}
		return []string{v.s}
	})
	x.fields[key] = fi
	return fi
}

// matching returns the records filter matches, in inventory order.
func matching[T any](x *inventoryIndex, items []T, spec listSpec[T], filter expr) []*T {
	var match []*T
	if filter != nil {
		if set, ok := candidates(filter, func(sel string) *mockkit.FoldIndex { return fieldIndex(x, items, spec, sel) }); ok {
			for _, i := range mockkit.Sorted(set) {
				if filter.eval(spec.get(&items[i])) {
					match = append(match, &items[i])
				}
			}
			return match
		}
	}
	for i := range items {
		if filter == nil || filter.eval(spec.get(&items[i])) {
			match = append(match, &items[i])
		}
	}
	return match
}

// candidates is a superset of the records e matches, false when the index
// cannot narrow e: the shapes postured sends (== and =in= on an indexed
// field, with values compared case-insensitively and hostnames' "name.*"
// prefix patterns, OR-ed) narrow; anything else (negations, comparisons,
// null, other wildcards, unindexed fields) scans. An AND narrows by any of
// its parts.
func candidates(e expr, index func(sel string) *mockkit.FoldIndex) (map[int]struct{}, bool) {
	switch e := e.(type) {
	case *comparison:
		return comparisonCandidates(e, index)
	case orExpr:
		out := map[int]struct{}{}
		for _, c := range e {
			set, ok := candidates(c, index)
			if !ok {
				return nil, false
			}
			for i := range set {
				out[i] = struct{}{}
			}
		}
		return out, true
	case andExpr:
		var best map[int]struct{}
		for _, c := range e {
			if set, ok := candidates(c, index); ok && (best == nil || len(set) < len(best)) {
				best = set
			}
		}
		return best, best != nil
	}
	return nil, false
}

func comparisonCandidates(c *comparison, index func(sel string) *mockkit.FoldIndex) (map[int]struct{}, bool) {
	if c.op != "==" && c.op != "=in=" {
		return nil, false
	}
	fi := index(c.selector)
	if fi == nil {
		return nil, false
	}
	out := map[int]struct{}{}
	for _, a := range c.args {
		if a.isNull() {
			return nil, false
		}
		star := strings.IndexByte(a.s, '*')
		var ok bool
		switch {
		case star < 0:
			ok = fi.Equal(a.s, out)
		case star == len(a.s)-1:
			ok = fi.Prefix(a.s[:star], out)
		}
		if !ok {
			return nil, false
		}
	}
	return out, true
}
