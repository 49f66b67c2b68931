package aggregate

import (
	"fmt"
	"hash/maphash"
	"math"
	"math/bits"
	"time"

	"github.com/postured/postured/providers"
)

// Index answers lookups from an in-memory set of records: what a Syncer
// serves between crawls. It is immutable once built, so readers need no
// lock; a refresh builds a new Index while the old one serves.
//
// It is laid out for a fleet of 100k devices and more in little memory:
// records are 40-byte entries of offsets and small numbers, every
// identifier of every record sits in one slice (ids), and each kind's keys
// are an open-addressing table of int32 positions in ids, probed by hash
// and compared against ids itself: no string is stored twice, no map of
// strings is kept. The ids and identifiers are cut from one string (blob);
// repeated ones (emails, reasons, zones) are stored once.
type Index struct {
	records []entry
	// blob holds every record's id and identifiers; entries and ids are
	// cuts of it.
	blob string
	// ids holds every normalised identifier, record by record and, within
	// a record, kind by kind (records[i].first ascends with i). They stay
	// strings, not offsets: Find hands out slices of them, allocating
	// nothing.
	ids []string
	// reasons holds each distinct Reason once, "" first.
	reasons []string
	// zones holds each distinct zone a LastSeen was in, UTC first.
	zones []*time.Location
	// wide keeps, by record, what an entry cannot hold exactly: a score
	// out of 0..wideScore-1, a LastSeen out of UnixNano's range or in a
	// zone too many. No provider produces any of these, so it is nil but
	// for hand-made records.
	wide map[int32]wideFields
	// tables has a table per kind, two thirds full at most; a slot holds
	// 1 + a position in ids, 0 when empty. Linear probing keeps the
	// records carrying one value in crawl order along the probe sequence.
	tables [len(providers.Kinds)][]uint32
	seed   maphash.Seed
}

// entry is one record but for its identifiers, in 40 bytes: with the
// field types of a providers.Record it took 80.
type entry struct {
	// lastSeen is LastSeen in Unix nanoseconds, noLastSeen if it is zero
	// (the zero time's UnixNano is undefined), wideLastSeen if it is kept
	// in Index.wide.
	lastSeen int64
	// id and idLen cut the record's ID from Index.blob.
	id, idLen uint32
	first     int32                        // its identifiers start at ids[first]
	reason    uint32                       // Reason is reasons[reason]
	counts    [len(providers.Kinds)]uint16 // how many of each kind, in Kinds order
	zone      uint16                       // LastSeen's zone is zones[zone]
	score     uint8                        // wideScore: the score is in Index.wide
	// contained: the vendor's host is network-contained.
	contained bool
}

// wideFields are a record's fields too wide for its entry.
type wideFields struct {
	score    int
	lastSeen time.Time
}

const (
	// maxPerKind bounds the identifiers of one kind a record keeps: counts
	// are uint16, and no real device has more than a handful.
	maxPerKind = 1<<16 - 1
	// maxBlob bounds the bytes of ids and identifiers an Index holds: the
	// offsets are uint32.
	maxBlob = math.MaxUint32
	// wideScore marks an entry whose score is in Index.wide: providers
	// score 0..100, but a Record may carry any int, and it comes back as
	// it went in.
	wideScore = math.MaxUint8
	// noLastSeen and wideLastSeen are entry.lastSeen's sentinels: unknown,
	// and kept in Index.wide. The two instants they stand for (in 1677)
	// are kept in Index.wide too.
	noLastSeen   = math.MinInt64
	wideLastSeen = math.MinInt64 + 1
)

// NewIndex normalises recs and indexes them by every identifier. It takes
// ownership of recs. It panics if the records' ids and identifiers exceed
// 4 GiB, which no fleet's inventory comes near.
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
	if uint64(size) > maxBlob {
		panic(fmt.Sprintf("aggregate: index of %d records: %d bytes of ids and identifiers, over the 4 GiB an index holds", len(recs), size))
	}
	total := 0
	for _, n := range perKind {
		total += n
	}
	// The ids and identifiers are copied into one string (blob) and cut
	// from it: 170k records hold some 800k small strings otherwise, each
	// its own allocation for the collector to track.
	p := packer{buf: make([]byte, 0, size), emails: make(map[string]span)}
	spans := make([]span, 0, total)
	kinds := make([]providers.Kind, 0, total) // of ids, while building
	reasons := interner{at: make(map[string]uint32)}
	reasons.intern("")
	zones := zoneTable{all: []*time.Location{time.UTC}, at: make(map[zoneKey]uint16)}
	for i := range recs {
		r := &recs[i]
		idSpan := p.add(r.ID)
		// #nosec G115 -- 2^31 identifiers would be 32 GB of string headers alone
		e := entry{id: idSpan.off, idLen: idSpan.len, reason: reasons.intern(r.Reason), contained: r.Contained, first: int32(len(spans))}
		ix.pack(&e, int32(i), r.Score, r.LastSeen, &zones) // #nosec G115 -- as first
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
	ix.blob = string(p.buf)
	p = packer{} // the buffer is copied: let it go
	ix.reasons = reasons.all
	ix.zones = zones.all
	ix.ids = make([]string, len(spans))
	for i, sp := range spans {
		ix.ids[i] = sp.in(ix.blob)
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

// pack sets record r's score and lastSeen in e, in Index.wide where e
// cannot hold them exactly.
func (ix *Index) pack(e *entry, r int32, score int, lastSeen time.Time, zones *zoneTable) {
	w := wideFields{score: score, lastSeen: lastSeen}
	isWide := false
	if score >= 0 && score < wideScore {
		e.score = uint8(score) // #nosec G115 -- in range, checked above
	} else {
		e.score, isWide = wideScore, true
	}
	if ns, zone, ok := packTime(lastSeen, zones); ok {
		e.lastSeen, e.zone = ns, zone
	} else {
		e.lastSeen, isWide = wideLastSeen, true
	}
	if isWide {
		if ix.wide == nil {
			ix.wide = make(map[int32]wideFields)
		}
		ix.wide[r] = w
	}
}

// packTime is t as Unix nanoseconds and a zone in zones, or false if they
// would not give t back: an instant outside 1677..2262 (or one of the two
// sentinels), or a zone past the 65536th.
func packTime(t time.Time, zones *zoneTable) (ns int64, zone uint16, ok bool) {
	if t.IsZero() {
		return noLastSeen, 0, true
	}
	ns = t.UnixNano()
	if ns <= wideLastSeen || !time.Unix(0, ns).Equal(t) {
		return 0, 0, false
	}
	zone, ok = zones.intern(t)
	return ns, zone, ok
}

// unpackTime is the LastSeen packTime was given.
func (ix *Index) unpackTime(e *entry, r int32) time.Time {
	switch e.lastSeen {
	case noLastSeen:
		return time.Time{}
	case wideLastSeen:
		return ix.wide[r].lastSeen
	}
	return time.Unix(0, e.lastSeen).In(ix.zones[e.zone])
}

// zoneKey is a zone as a time in it prints: its abbreviation and offset.
type zoneKey struct {
	name   string
	offset int
}

// zoneTable stores each zone times were in once. A zone is kept as the
// fixed zone a time was in, not as its Location: a time restored in it
// prints as the original did (RFC 3339 shows the offset, Format's MST the
// abbreviation), and vendors' times, parsed with their own fixed offsets,
// do not each add a Location.
type zoneTable struct {
	all []*time.Location
	at  map[zoneKey]uint16
}

func (z *zoneTable) intern(t time.Time) (uint16, bool) {
	if t.Location() == time.UTC {
		return 0, true // most vendors' times, and no lookup
	}
	name, offset := t.Zone()
	k := zoneKey{name, offset}
	if i, ok := z.at[k]; ok {
		return i, true
	}
	if len(z.all) > math.MaxUint16 {
		return 0, false
	}
	i := uint16(len(z.all)) // #nosec G115 -- bounded just above
	z.all = append(z.all, time.FixedZone(name, offset))
	z.at[k] = i
	return i, true
}

// span is where a string sits in a packer's buffer, under maxBlob.
type span struct{ off, len uint32 }

func (s span) in(blob string) string { return blob[s.off : int(s.off)+int(s.len)] }

// packer lays strings one after the other in one buffer, emails once.
type packer struct {
	buf    []byte
	emails map[string]span
}

func (p *packer) add(s string) span {
	sp := span{off: uint32(len(p.buf)), len: uint32(len(s))} // #nosec G115 -- NewIndex checked the buffer's size against maxBlob
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

// interner stores each distinct string once, numbered in order.
type interner struct {
	all []string
	at  map[string]uint32
}

func (in *interner) intern(s string) uint32 {
	if i, ok := in.at[s]; ok {
		return i
	}
	i := uint32(len(in.all)) // #nosec G115 -- one a record at most, and records are under 2^31 (see first)
	in.all = append(in.all, s)
	in.at[s] = i
	return i
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
	out := providers.Record{
		ID:        ix.blob[e.id : int(e.id)+int(e.idLen)],
		LastSeen:  ix.unpackTime(e, r),
		Score:     int(e.score),
		Reason:    ix.reasons[e.reason],
		Contained: e.contained,
	}
	if e.score == wideScore {
		out.Score = ix.wide[r].score
	}
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
