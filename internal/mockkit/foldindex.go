package mockkit

import (
	"cmp"
	"slices"
	"strings"
)

// FoldIndex narrows a filter on one string field to the records that can
// match it, so a mock holding 100k records does not compare every filter
// with every record. It answers for ASCII-case-insensitive equality and
// prefixes, the comparisons vendors document for identifier lookups.
//
// Its answers are candidates, a superset of the matches: a record whose
// value is not all ASCII is a candidate for every lookup, because Unicode
// case rules (EqualFold's folding, ToLower's one-way mappings) do not
// reduce to one key, and the caller checks every candidate with its full
// filter. Case-sensitive comparisons use it too: equal values fold equal.
type FoldIndex struct {
	entries []foldEntry // ASCII values, lower-cased, sorted by key then record
	other   []int       // records with a non-ASCII value, ascending
}

type foldEntry struct {
	key string
	rec int
}

// NewFoldIndex indexes records 0..n-1; values returns a record's values of
// the field (none when the field is absent: such a record is never a
// candidate).
func NewFoldIndex(n int, values func(rec int) []string) *FoldIndex {
	x := &FoldIndex{entries: make([]foldEntry, 0, n)}
	for rec := range n {
		ascii := true
		for _, v := range values(rec) {
			if !IsASCII(v) {
				ascii = false
				continue
			}
			x.entries = append(x.entries, foldEntry{asciiLower(v), rec})
		}
		if !ascii {
			x.other = append(x.other, rec)
		}
	}
	slices.SortFunc(x.entries, func(a, b foldEntry) int {
		return cmp.Or(strings.Compare(a.key, b.key), cmp.Compare(a.rec, b.rec))
	})
	return x
}

// Equal adds to out the records whose value equals q ignoring ASCII case,
// and the non-ASCII ones. It reports false, adding nothing, when q is not
// ASCII: the caller must then check every record.
func (x *FoldIndex) Equal(q string, out map[int]struct{}) bool {
	return x.lookup(q, false, out)
}

// Prefix is Equal for the values that start with q.
func (x *FoldIndex) Prefix(q string, out map[int]struct{}) bool {
	return x.lookup(q, true, out)
}

func (x *FoldIndex) lookup(q string, prefix bool, out map[int]struct{}) bool {
	if !IsASCII(q) {
		return false
	}
	q = asciiLower(q)
	i, _ := slices.BinarySearchFunc(x.entries, q, func(e foldEntry, q string) int {
		return strings.Compare(e.key, q)
	})
	for ; i < len(x.entries); i++ {
		k := x.entries[i].key
		if k != q && !(prefix && strings.HasPrefix(k, q)) {
			break
		}
		out[x.entries[i].rec] = struct{}{}
	}
	for _, rec := range x.other {
		out[rec] = struct{}{}
	}
	return true
}

// Sorted returns the records of a candidate set in ascending order, the
// order a full scan visits them in.
func Sorted(set map[int]struct{}) []int {
	out := make([]int, 0, len(set))
	for rec := range set {
		out = append(out, rec)
	}
	slices.Sort(out)
	return out
}

// IsASCII reports whether s is all ASCII.
func IsASCII(s string) bool {
	for i := range len(s) {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// asciiLower lower-cases the ASCII letters of s, which for an ASCII string
// is what strings.ToLower and strings.EqualFold both compare.
func asciiLower(s string) string {
	for i := range len(s) {
		if c := s[i]; 'A' <= c && c <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if 'A' <= b[j] && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}
