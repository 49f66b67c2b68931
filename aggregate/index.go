package aggregate

import (
	"hash/maphash"
	"math/bits"
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
// no string is stored twice, no map of strings is kept. The ids and
// identifiers are cut from one string; repeated ones (emails, reasons)
// are stored once.
type Index struct {
	records []entry
	// ids holds every normalised identifier, record by record and, within
	// a record, kind by kind (records[i].first ascends with i).
	ids []string
	// tables has a table per kind, two thirds full at most; a slot holds
	// 1 + a position in ids, 0 when empty. Linear probing keeps the
	// records carrying one value in crawl order along the probe sequence.
	tables [len(providers.Kinds)][]uint32
	seed   maphash.Seed
}

// entry is one record: a providers.Record without its four slice headers.
type entry struct {
	id       string
	reason   string
	lastSeen time.Time
	score    int
	// contained: the vendor's host is network-contained.
	contained bool
	first     int32                        // its identifiers start at ids[first]
	counts    [len(providers.Kinds)]uint16 // how many of each kind, in Kinds order
}

// maxPerKind bounds the identifiers of one kind a record keeps: counts
// are uint16, and no real device has more than a handful.
const maxPerKind = 1<<16 - 1

// NewIndex normalises recs and indexes them by every identifier. It takes
// ownership of recs.
func NewIndex(recs []providers.Record) *Index {
	ix := &Index{records: make([]entry, len(recs)), seed: maphash.MakeSeed()}
	var perKind [len(providers.Kinds)]int
	size := 0 // bytes of the records' ids and identifiers
	for i := range recs {
		r := recs[i].Normalize()
		size += len(r.ID)
		for _, k := range providers.Kinds {
			vs := r.Identifiers(k)
			perKind[k] += min(len(vs), maxPerKind)
			for _, v := range vs[:min(len(vs), maxPerKind)] {
				size += len(v)
			}
		}
	}
	total := 0
	for _, n := range perKind {
		total += n
	}
	// The ids and identifiers are copied into one string (blob) and cut
	// from it: 170k records hold some 800k small strings otherwise, each
	// its own allocation for the collector to track.
	p := packer{buf: make([]byte, 0, size), emails: make(map[string]span)}
	idSpans := make([]span, len(recs))
	spans := make([]span, 0, total)
	kinds := make([]providers.Kind, 0, total) // of ids, while building
	reasons := make(interner)
	for i := range recs {
		r := &recs[i]
		idSpans[i] = p.add(r.ID)
		// #nosec G115 -- 2^31 identifiers would be 32 GB of string headers alone
		e := entry{reason: reasons.intern(r.Reason), lastSeen: r.LastSeen, score: r.Score, contained: r.Contained, first: int32(len(spans))}
		for _, k := range providers.Kinds {
			vs := r.Identifiers(k)
			vs = vs[:min(len(vs), maxPerKind)]
			e.counts[k] = uint16(len(vs)) // #nosec G115 -- clipped to maxPerKind above
			for _, v := range vs {
				if k == providers.KindEmail {
					spans = append(spans, p.addShared(v)) // a user's devices share it
				} else {
					spans = append(spans, p.add(v))
				}
				kinds = append(kinds, k)
			}
		}
		ix.records[i] = e
		recs[i] = providers.Record{} // let the crawl's copies go as the index grows
	}
	blob := string(p.buf)
	p = packer{} // the buffer is copied: let it go
	for i := range ix.records {
		ix.records[i].id = idSpans[i].in(blob)
	}
	ix.ids = make([]string, len(spans))
	for i, sp := range spans {
		ix.ids[i] = sp.in(blob)
	}
	for _, k := range providers.Kinds {
		ix.tables[k] = make([]uint32, tableSize(perKind[k]))
	}
	for pos, k := range kinds {
		t := ix.tables[k]
		i := ix.home(t, ix.ids[pos])
		for t[i] != 0 {
			i = next(t, i)
		}
		t[i] = uint32(pos + 1) // #nosec G115 -- pos < len(ids), itself under 2^31 (see first)
	}
	return ix
}

// span is where a string sits in a packer's buffer.
type span struct{ off, len int }

func (s span) in(blob string) string { return blob[s.off : s.off+s.len] }

// packer lays strings one after the other in one buffer, emails once.
type packer struct {
	buf    []byte
	emails map[string]span
}

func (p *packer) add(s string) span {
	sp := span{off: len(p.buf), len: len(s)}
	p.buf = append(p.buf, s...)
	return sp
}

func (p *packer) addShared(s string) span {
	if sp, ok := p.emails[s]; ok {
		return sp
	}
	sp := p.add(s)
	p.emails[s] = sp
	return sp
}

// tableSize leaves a third of a table empty: probe sequences stay short,
// misses included.
func tableSize(n int) int {
	return max(8, n+n/2)
}

// home is where v's probe sequence starts in t: the hash scaled to the
// table's size (no power-of-two rounding, so no table is twice too big).
func (ix *Index) home(t []uint32, v string) int {
	hi, _ := bits.Mul64(maphash.String(ix.seed, v), uint64(len(t)))
	return int(hi) // #nosec G115 -- the high word of h*len(t) is below len(t)
}

// next is the slot after i in t's probe sequence.
func next(t []uint32, i int) int {
	if i++; i == len(t) {
		return 0
	}
	return i
}

// owner is the record the identifier ids[p] belongs to: the last record
// whose identifiers start at or before p.
func (ix *Index) owner(p int) int32 {
	lo, hi := 0, len(ix.records) // records[lo-1].first <= p < records[hi].first
	for lo < hi {
		if m := int(uint(lo+hi) >> 1); int(ix.records[m].first) <= p {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return int32(lo - 1)
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
	for i := ix.home(t, v); t[i] != 0; i = next(t, i) {
		if p := int(t[i] - 1); ix.ids[p] == v {
			fn(ix.owner(p))
		}
	}
}

// record is records[r] as a providers.Record, sharing the index's
// identifiers (capacity clipped, so an append cannot write into them).
func (ix *Index) record(r int32) providers.Record {
	e := &ix.records[r]
	out := providers.Record{ID: e.id, LastSeen: e.lastSeen, Score: e.score, Reason: e.reason, Contained: e.contained}
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
