package aggregate

import "github.com/postured/postured/providers"

// Index answers lookups from an in-memory set of records: what a Syncer
// serves between crawls. It is immutable once built, so readers need no
// lock; a refresh builds a new Index.
type Index struct {
	by      [len(providers.Kinds)]map[string][]*providers.Record
	records []providers.Record
}

// NewIndex normalises recs and indexes them by every identifier.
func NewIndex(recs []providers.Record) *Index {
	ix := &Index{records: recs}
	for k := range ix.by {
		ix.by[k] = make(map[string][]*providers.Record)
	}
	for i := range ix.records {
		r := ix.records[i].Normalize()
		for _, k := range providers.Kinds {
			for _, v := range r.Identifiers(k) {
				ix.by[k][v] = append(ix.by[k][v], r)
			}
		}
	}
	return ix
}

// Len is the number of records indexed.
func (ix *Index) Len() int { return len(ix.records) }

// Lookup returns every record carrying any of q.Values, each once.
func (ix *Index) Lookup(q providers.Query) []providers.Record {
	if int(q.Kind) >= len(ix.by) {
		return nil
	}
	var out []providers.Record
	var seen map[*providers.Record]bool
	for _, v := range q.Values {
		for _, r := range ix.by[q.Kind][v] {
			if seen == nil {
				seen = make(map[*providers.Record]bool)
			}
			if !seen[r] {
				seen[r] = true
				out = append(out, r.Clone())
			}
		}
	}
	return out
}
