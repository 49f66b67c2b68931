package aggregate

import "github.com/postured/postured/providers"

// Index answers lookups from an in-memory set of records: what a Syncer
// serves between crawls. It is immutable once built, so readers need no
// lock; a refresh builds a new Index.
//
// It is laid out for a fleet of 100k devices in little memory: one slice
// of records, their identifiers in one shared backing array, repeated
// strings (emails, reasons) stored once, and every key mapping to an int32
// position rather than to a slice of pointers.
type Index struct {
	records []providers.Record
	// by maps a normalised value of each kind to the record carrying it:
	// i >= 0 is records[i]; i < 0 is multi[^i], the records (in crawl
	// order) when several carry the value.
	by    [len(providers.Kinds)]map[string]int32
	multi [][]int32
}

// NewIndex normalises recs and indexes them by every identifier. It takes
// ownership of recs.
func NewIndex(recs []providers.Record) *Index {
	ix := &Index{records: recs}
	in := make(interner)
	total := 0
	for i := range recs {
		r := recs[i].Normalize()
		for _, k := range providers.Kinds {
			total += len(r.Identifiers(k))
		}
	}
	// One backing array for every identifier slice: 100k records hold
	// 100k-400k small slices otherwise, each its own allocation.
	arena := make([]string, 0, total)
	keep := func(vs []string) []string {
		if len(vs) == 0 {
			return nil
		}
		start := len(arena)
		for _, v := range vs {
			arena = append(arena, in.intern(v))
		}
		return arena[start:len(arena):len(arena)]
	}
	for k := range ix.by {
		ix.by[k] = make(map[string]int32)
	}
	for i := range recs {
		r := &recs[i]
		r.Serials, r.MACs, r.Hostnames, r.Emails = keep(r.Serials), keep(r.MACs), keep(r.Hostnames), keep(r.Emails)
		r.Reason = in.intern(r.Reason)
		for _, k := range providers.Kinds {
			for _, v := range r.Identifiers(k) {
				ix.add(k, v, int32(i))
			}
		}
	}
	return ix
}

// add indexes record i under value v of kind k.
func (ix *Index) add(k providers.Kind, v string, i int32) {
	at, ok := ix.by[k][v]
	switch {
	case !ok:
		ix.by[k][v] = i
	case at >= 0:
		if at != i { // a record listing one value twice is indexed once
			ix.by[k][v] = ^int32(len(ix.multi))
			ix.multi = append(ix.multi, []int32{at, i})
		}
	default:
		if m := ix.multi[^at]; m[len(m)-1] != i {
			ix.multi[^at] = append(m, i)
		}
	}
}

// interner stores each distinct string once.
type interner map[string]string

func (in interner) intern(s string) string {
	if s == "" {
		return ""
	}
	if c, ok := in[s]; ok {
		return c
	}
	in[s] = s
	return s
}

// Len is the number of records indexed.
func (ix *Index) Len() int { return len(ix.records) }

// Find returns the records carrying the normalised value v as a kind k
// identifier. They are the index's own: the caller must not modify them.
// A value carried by one record, nearly all of them, costs no allocation.
func (ix *Index) Find(k providers.Kind, v string) []providers.Record {
	at, ok := ix.position(k, v)
	switch {
	case !ok:
		return nil
	case at >= 0:
		return ix.records[at : at+1 : at+1]
	}
	m := ix.multi[^at]
	out := make([]providers.Record, len(m))
	for j, i := range m {
		out[j] = ix.records[i]
	}
	return out
}

// position is where value v of kind k points in by.
func (ix *Index) position(k providers.Kind, v string) (int32, bool) {
	if int(k) >= len(ix.by) {
		return 0, false
	}
	at, ok := ix.by[k][v]
	return at, ok
}

// Lookup returns every record carrying any of q.Values, each once, as
// copies the caller may modify.
func (ix *Index) Lookup(q providers.Query) []providers.Record {
	var out []providers.Record
	var seen map[int32]bool
	for _, v := range q.Values {
		at, ok := ix.position(q.Kind, v)
		if !ok {
			continue
		}
		positions := []int32{at}
		if at < 0 {
			positions = ix.multi[^at]
		}
		for _, i := range positions {
			if seen == nil {
				seen = make(map[int32]bool)
			}
			if !seen[i] {
				seen[i] = true
				out = append(out, ix.records[i].Clone())
			}
		}
	}
	return out
}
