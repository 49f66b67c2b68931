package crowdstrikemock

import (
	"slices"
	"strings"
	"sync"

	"github.com/postured/postured/internal/mockkit"
)

// indexedProperties are the host properties postured looks hosts up by.
var indexedProperties = []string{"serial_number", "mac_address", "connection_mac_address", "hostname", "email"}

// hostIndex finds the hosts a filter can match without evaluating it
// against every host. It is built on first use and dropped whenever the
// hosts change (drift), so it never answers for records it has not seen.
type hostIndex struct {
	mu    sync.Mutex
	props map[string]*mockkit.FoldIndex
}

// reset drops the index; the next filtered query rebuilds it.
func (x *hostIndex) reset() {
	x.mu.Lock()
	x.props = nil
	x.mu.Unlock()
}

func (x *hostIndex) get(hosts []Host) map[string]*mockkit.FoldIndex {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.props == nil {
		x.props = make(map[string]*mockkit.FoldIndex, len(indexedProperties))
		for _, p := range indexedProperties {
			x.props[p] = mockkit.NewFoldIndex(len(hosts), func(i int) []string {
				if v := hosts[i].field(p); len(v) > 0 {
					return v
				}
				return []string{""} // term.eval's reading of an absent value
			})
		}
	}
	return x.props
}

// matching returns, in ascending order, the hosts f matches.
func (s *Server) matching(f *filter) []int {
	var idx []int
	if f != nil && !s.opts.SubstringTerms {
		if set, ok := candidates(f.root, s.index.get(s.hosts)); ok {
			idx = mockkit.Sorted(set)
			idx = slices.DeleteFunc(idx, func(i int) bool { return !f.match(s.hosts[i].field, false) })
			return idx
		}
	}
	idx = make([]int, 0, len(s.hosts))
	for i := range s.hosts {
		if f.match(s.hosts[i].field, s.opts.SubstringTerms) {
			idx = append(idx, i)
		}
	}
	return idx
}

// candidates is a superset of the hosts n matches, false when the index
// cannot narrow n: the shapes postured sends (a single term, matched as a
// case-insensitive prefix; a bracket list, exact; OR-ed terms) narrow,
// anything else (negation, globs, '~', '*', comparisons, unindexed
// properties) scans. An AND narrows by any of its parts.
func candidates(n node, ix map[string]*mockkit.FoldIndex) (map[int]struct{}, bool) {
	switch n := n.(type) {
	case *term:
		return termCandidates(n, ix)
	case orNode:
		out := map[int]struct{}{}
		for _, c := range n {
			set, ok := candidates(c, ix)
			if !ok {
				return nil, false
			}
			for i := range set {
				out[i] = struct{}{}
			}
		}
		return out, true
	case andNode:
		var best map[int]struct{}
		for _, c := range n {
			if set, ok := candidates(c, ix); ok && (best == nil || len(set) < len(best)) {
				best = set
			}
		}
		return best, best != nil
	}
	return nil, false
}

func termCandidates(t *term, ix map[string]*mockkit.FoldIndex) (map[int]struct{}, bool) {
	pi, ok := ix[t.prop]
	if !ok || t.typ != typeString || t.kind != litString || t.negate || t.op != "" {
		return nil, false
	}
	out := map[int]struct{}{}
	if t.bracket {
		for _, v := range t.values {
			if !pi.Equal(v, out) {
				return nil, false
			}
		}
		return out, true
	}
	if strings.Contains(t.values[0], "*") {
		return nil, false
	}
	return out, pi.Prefix(t.values[0], out)
}
