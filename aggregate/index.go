package aggregate

import (
	"hash/maphash"
	"time"

	"github.com/postured/postured/providers"
)

// Index answers lookups from an in-memory set of records: what a Syncer
// serves between crawls. It is immutable once built, so readers need no
// lock; a refresh builds a new Index while the old one serves.
//
// It is laid out for a fleet of 100k devices and more in little memory:
// records are compact entries, every identifier of every record sits in
// one slice (ids), and each kind's keys are an open-addressing table of
// int32 positions in ids, probed by hash and compared against ids itself:
// no string is stored twice, no map of strings is kept. Repeated strings
// (emails, reasons) are stored once.
type Index struct {
	records []entry
	// ids holds every normalised identifier, record by record and, within
	// a record, kind by kind; owner[i] is the record ids[i] belongs to.
	ids   []string
	owner []int32
	// tables has a power-of-two table per kind; a slot holds 1 + a
	// position in ids, 0 when empty. Linear probing keeps the records
	// carrying one value in crawl order along the probe sequence.
	tables [len(providers.Kinds)][]uint32
	seed   maphash.Seed
}

// entry is one record: a providers.Record without its four slice headers.
type entry struct {
	id       string
	reason   string
	lastSeen time.Time
	score    int
	first    int32                        // its identifiers start at ids[first]
	counts   [len(providers.Kinds)]uint16 // how many of each kind, in Kinds order
}

// maxPerKind bounds the identifiers of one kind a record keeps: counts
// are uint16, and no real device has more than a handful.
const maxPerKind = 1<<16 - 1

// NewIndex normalises recs and indexes them by every identifier. It takes
// ownership of recs.
func NewIndex(recs []providers.Record) *Index {
	ix := &Index{records: make([]entry, len(recs)), seed: maphash.MakeSeed()}
	in := make(interner)
	var perKind [len(providers.Kinds)]int
	for i := range recs {
		r := recs[i].Normalize()
		for _, k := range providers.Kinds {
			perKind[k] += min(len(r.Identifiers(k)), maxPerKind)
		}
	}
	total := 0
	for _, n := range perKind {
		total += n
	}
	ix.ids = make([]string, 0, total)
	ix.owner = make([]int32, 0, total)
	for i := range recs {
		r := &recs[i]
		e := entry{id: r.ID, reason: in.intern(r.Reason), lastSeen: r.LastSeen, score: r.Score, first: int32(len(ix.ids))}
		for _, k := range providers.Kinds {
			vs := r.Identifiers(k)
			vs = vs[:min(len(vs), maxPerKind)]
			e.counts[k] = uint16(len(vs))
			for _, v := range vs {
				if k == providers.KindEmail {
					v = in.intern(v) // a user's devices share it
				}
				ix.ids = append(ix.ids, v)
				ix.owner = append(ix.owner, int32(i))
			}
		}
		ix.records[i] = e
		recs[i] = providers.Record{} // let the crawl's copies go as the index grows
	}
	for _, k := range providers.Kinds {
		ix.tables[k] = make([]uint32, tableSize(perKind[k]))
	}
	for p := range ix.ids {
		k := ix.kindAt(p)
		t := ix.tables[k]
		mask := uint64(len(t) - 1)
		i := maphash.String(ix.seed, ix.ids[p]) & mask
		for t[i] != 0 {
			i = (i + 1) & mask
		}
		t[i] = uint32(p + 1)
	}
	return ix
}

// tableSize is a power of two at least twice n: probe sequences stay
// short, misses included.
func tableSize(n int) int {
	size := 8
	for size < 2*n {
		size *= 2
	}
	return size
}

// kindAt is the kind of the identifier at ids[p].
func (ix *Index) kindAt(p int) providers.Kind {
	e := &ix.records[ix.owner[p]]
	off := p - int(e.first)
	for _, k := range providers.Kinds {
		if off < int(e.counts[k]) {
			return k
		}
		off -= int(e.counts[k])
	}
	panic("aggregate: index identifier beyond its record")
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

// Find appends to dst the records carrying the normalised value v as a
// kind k identifier, in crawl order. Their identifier slices are the
// index's own: the caller must not modify them. Nothing is allocated
// beyond dst's growth.
func (ix *Index) Find(k providers.Kind, v string, dst []providers.Record) []providers.Record {
	ix.each(k, v, func(r int32) { dst = append(dst, ix.record(r)) })
	return dst
}

// each calls fn with every record carrying value v of kind k, in crawl
// order.
func (ix *Index) each(k providers.Kind, v string, fn func(r int32)) {
	if int(k) >= len(ix.tables) || len(ix.tables[k]) == 0 {
		return
	}
	t := ix.tables[k]
	mask := uint64(len(t) - 1)
	for i := maphash.String(ix.seed, v) & mask; t[i] != 0; i = (i + 1) & mask {
		if p := t[i] - 1; ix.ids[p] == v {
			fn(ix.owner[p])
		}
	}
}

// record is records[r] as a providers.Record, sharing the index's
// identifiers (capacity clipped, so an append cannot write into them).
func (ix *Index) record(r int32) providers.Record {
	e := &ix.records[r]
	out := providers.Record{ID: e.id, LastSeen: e.lastSeen, Score: e.score, Reason: e.reason}
	at := int(e.first)
	for _, k := range providers.Kinds {
		n := int(e.counts[k])
		var vs []string
		if n > 0 {
			vs = ix.ids[at : at+n : at+n]
		}
		switch k {
		case providers.KindSerial:
			out.Serials = vs
		case providers.KindMAC:
			out.MACs = vs
		case providers.KindHostname:
			out.Hostnames = vs
		case providers.KindEmail:
			out.Emails = vs
		}
		at += n
	}
	return out
}

// Lookup returns every record carrying any of q.Values, each once, as
// copies the caller may modify.
func (ix *Index) Lookup(q providers.Query) []providers.Record {
	var out []providers.Record
	seen := make(map[int32]bool)
	for _, v := range q.Values {
		ix.each(q.Kind, v, func(r int32) {
			if !seen[r] {
				seen[r] = true
				rec := ix.record(r)
				out = append(out, rec.Clone())
			}
		})
	}
	return out
}
