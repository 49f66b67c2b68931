package aggregate

import (
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/postured/postured/providers"
)

func testRecords() []providers.Record {
	return []providers.Record{
		{
			ID:        "a",
			Serials:   []string{" c02xk1zzjgh5 "},
			MACs:      []string{"74:1d:3e:23:e0:fe", "74-1D-3E-23-E0-FE", "741d.3e23.e0ff"},
			Hostnames: []string{"MBP-42.corp.example"},
			Emails:    []string{"JDoe@Example.com"},
			Score:     90,
		},
		{
			ID:        "b",
			Serials:   []string{"To be filled by O.E.M."},
			MACs:      []string{"aa:bb:cc:dd:ee:01"},
			Hostnames: []string{"desk-1"},
			Emails:    []string{"jdoe@example.com"},
			Score:     40,
		},
		{
			ID:       "c-reenrolled",
			Serials:  []string{"C02XK1ZZJGH5"},
			Emails:   []string{"other@example.com"},
			LastSeen: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		},
		{ID: "d-no-identifiers", Serials: []string{"0000"}, MACs: []string{"ff:ff:ff:ff:ff:ff"}},
	}
}

func recordIDs(recs []providers.Record) []string {
	var out []string
	for _, r := range recs {
		out = append(out, r.ID)
	}
	return out
}

func TestIndexLookup(t *testing.T) {
	ix := NewIndex(testRecords())
	if ix.Len() != 4 {
		t.Fatalf("Len() = %d, want 4", ix.Len())
	}
	tests := []struct {
		name string
		q    providers.Query
		want []string
	}{
		{"serial shared by two records", providers.Query{Kind: providers.KindSerial, Values: []string{"C02XK1ZZJGH5"}}, []string{"a", "c-reenrolled"}},
		{"serial not normalised finds nothing", providers.Query{Kind: providers.KindSerial, Values: []string{"c02xk1zzjgh5"}}, nil},
		{"placeholder serial is not indexed", providers.Query{Kind: providers.KindSerial, Values: []string{"TO BE FILLED BY O.E.M."}}, nil},
		{"all-zero serial is not indexed", providers.Query{Kind: providers.KindSerial, Values: []string{"0000"}}, nil},
		{"mac", providers.Query{Kind: providers.KindMAC, Values: []string{"741d3e23e0fe"}}, []string{"a"}},
		{"second mac", providers.Query{Kind: providers.KindMAC, Values: []string{"741d3e23e0ff"}}, []string{"a"}},
		{"broadcast mac not indexed", providers.Query{Kind: providers.KindMAC, Values: []string{"ffffffffffff"}}, nil},
		{"two macs of one record dedupe", providers.Query{Kind: providers.KindMAC, Values: []string{"741d3e23e0fe", "741d3e23e0ff"}}, []string{"a"}},
		{"macs of two records in value order", providers.Query{Kind: providers.KindMAC, Values: []string{"aabbccddee01", "741d3e23e0fe"}}, []string{"b", "a"}},
		{"hostname without domain", providers.Query{Kind: providers.KindHostname, Values: []string{"mbp-42"}}, []string{"a"}},
		{"email shared", providers.Query{Kind: providers.KindEmail, Values: []string{"jdoe@example.com"}}, []string{"a", "b"}},
		{"email repeated value dedupes", providers.Query{Kind: providers.KindEmail, Values: []string{"jdoe@example.com", "jdoe@example.com"}}, []string{"a", "b"}},
		{"kind isolation: serial value as hostname", providers.Query{Kind: providers.KindHostname, Values: []string{"C02XK1ZZJGH5"}}, nil},
		{"kind isolation: email as serial", providers.Query{Kind: providers.KindSerial, Values: []string{"jdoe@example.com"}}, nil},
		{"no values", providers.Query{Kind: providers.KindSerial, Values: nil}, nil},
		{"miss", providers.Query{Kind: providers.KindMAC, Values: []string{"010203040506"}}, nil},
		{"unknown kind", providers.Query{Kind: providers.Kind(7), Values: []string{"C02XK1ZZJGH5"}}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := ix.Lookup(tc.q)
			if g := recordIDs(got); !slices.Equal(g, tc.want) {
				t.Fatalf("Lookup(%v %v) = %v, want %v", tc.q.Kind, tc.q.Values, g, tc.want)
			}
			for _, r := range got {
				if !slices.ContainsFunc(tc.q.Values, func(v string) bool { return r.Has(tc.q.Kind, v) }) {
					t.Errorf("record %s returned but carries none of %v", r.ID, tc.q.Values)
				}
			}
		})
	}

	t.Run("records come back normalised with their data", func(t *testing.T) {
		got := ix.Lookup(providers.Query{Kind: providers.KindHostname, Values: []string{"mbp-42"}})
		if len(got) != 1 {
			t.Fatalf("got %d records", len(got))
		}
		r := got[0]
		if !slices.Equal(r.Serials, []string{"C02XK1ZZJGH5"}) || !slices.Equal(r.MACs, []string{"741d3e23e0fe", "741d3e23e0ff"}) ||
			!slices.Equal(r.Hostnames, []string{"mbp-42"}) || !slices.Equal(r.Emails, []string{"jdoe@example.com"}) || r.Score != 90 {
			t.Fatalf("record = %+v", r)
		}
		c := ix.Lookup(providers.Query{Kind: providers.KindEmail, Values: []string{"other@example.com"}})
		if len(c) != 1 || !c[0].LastSeen.Equal(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)) {
			t.Fatalf("LastSeen lost: %+v", c)
		}
	})

	t.Run("empty index", func(t *testing.T) {
		e := NewIndex(nil)
		if e.Len() != 0 || e.Lookup(providers.Query{Kind: providers.KindSerial, Values: []string{"X"}}) != nil {
			t.Fatal("empty index answered")
		}
	})
}

func TestIndexLookupResultsDoNotAliasIndex(t *testing.T) {
	ix := NewIndex(testRecords())
	q := providers.Query{Kind: providers.KindHostname, Values: []string{"mbp-42"}}
	got := ix.Lookup(q)
	got[0].Hostnames[0] = "tampered"
	got[0].Serials[0] = "TAMPERED"
	again := ix.Lookup(q)
	if len(again) != 1 || again[0].Hostnames[0] != "mbp-42" || again[0].Serials[0] != "C02XK1ZZJGH5" {
		t.Fatalf("mutating a Lookup result changed the index: %+v", again)
	}
	if r := ix.Lookup(providers.Query{Kind: providers.KindSerial, Values: []string{"C02XK1ZZJGH5"}}); len(r) != 2 || r[0].Serials[0] != "C02XK1ZZJGH5" {
		t.Fatalf("index corrupted: %+v", r)
	}
}

// TestIndexConcurrentLookups has readers share one Index, as batches do,
// and checks every answer: under the race detector a shared slice mutated by
// normalisation or cloning shows up as a race, and a torn read as a wrong
// answer.
func TestIndexConcurrentLookups(t *testing.T) {
	ix := NewIndex(testRecords())
	values := []string{"C02XK1ZZJGH5", "741d3e23e0fe", "mbp-42", "jdoe@example.com"}
	want := make(map[providers.Kind][]string)
	for _, k := range providers.Kinds {
		want[k] = recordIDs(ix.Lookup(providers.Query{Kind: k, Values: values}))
	}
	if !slices.Equal(want[providers.KindSerial], []string{"a", "c-reenrolled"}) || !slices.Equal(want[providers.KindEmail], []string{"a", "b"}) {
		t.Fatalf("sequential answers are wrong: %v", want)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 200 {
				for _, k := range providers.Kinds {
					got := ix.Lookup(providers.Query{Kind: k, Values: values})
					if ids := recordIDs(got); !slices.Equal(ids, want[k]) {
						t.Errorf("concurrent Lookup(%s) = %v, want %v", k, ids, want[k])
						return
					}
					// Callers own what they get: another reader's edit must
					// not show through.
					for i := range got {
						if !slices.ContainsFunc(values, func(v string) bool { return got[i].Has(k, v) }) {
							t.Errorf("record %s carries none of %v as %s: %+v", got[i].ID, values, k, got[i])
							return
						}
						got[i].Serials = append(got[i].Serials[:0], "EDITED")
						got[i].Emails = append(got[i].Emails[:0], "edited@example.com")
					}
				}
			}
		})
	}
	wg.Wait()
}

// TestIndexAtScale fills the tables enough for long probe sequences and
// wrap-arounds: every key finds exactly its records, in crawl order, and
// near misses find nothing.
func TestIndexAtScale(t *testing.T) {
	const n = 20_000
	recs := make([]providers.Record, n)
	for i := range recs {
		recs[i] = providers.Record{
			ID:        fmt.Sprintf("r%d", i),
			Serials:   []string{fmt.Sprintf("SER%06d", i)},
			MACs:      []string{fmt.Sprintf("02:00:00:%02x:%02x:%02x", i>>16, (i>>8)&0xff, i&0xff)},
			Hostnames: []string{fmt.Sprintf("host-%d", i/2)}, // two records a hostname
			Emails:    []string{fmt.Sprintf("user%d@example.com", i%100)},
			Score:     i % 101,
		}
	}
	ix := NewIndex(recs)
	for i := 0; i < n; i += 37 {
		id := fmt.Sprintf("r%d", i)
		for _, q := range []providers.Query{
			{Kind: providers.KindSerial, Values: []string{fmt.Sprintf("SER%06d", i)}},
			{Kind: providers.KindMAC, Values: []string{fmt.Sprintf("020000%02x%02x%02x", i>>16, (i>>8)&0xff, i&0xff)}},
		} {
			if got := ix.Lookup(q); len(got) != 1 || got[0].ID != id || got[0].Score != i%101 {
				t.Fatalf("Lookup(%v) = %+v, want %s", q, got, id)
			}
		}
		h := ix.Lookup(providers.Query{Kind: providers.KindHostname, Values: []string{fmt.Sprintf("host-%d", i/2)}})
		if want := []string{fmt.Sprintf("r%d", i/2*2), fmt.Sprintf("r%d", i/2*2+1)}; !slices.Equal(recordIDs(h), want) {
			t.Fatalf("hostname host-%d: %v, want %v", i/2, recordIDs(h), want)
		}
		if got := ix.Lookup(providers.Query{Kind: providers.KindSerial, Values: []string{fmt.Sprintf("SER%06dX", i)}}); got != nil {
			t.Fatalf("near miss found %v", recordIDs(got))
		}
	}
	if got := ix.Lookup(providers.Query{Kind: providers.KindEmail, Values: []string{"user7@example.com"}}); len(got) != n/100 || got[0].ID != "r7" || got[1].ID != "r107" {
		t.Fatalf("shared email: %d records starting %v", len(got), recordIDs(got[:min(2, len(got))]))
	}
}

// TestIndexFindAllocs: matching a batch against the index allocates
// nothing per value once the caller's buffer is sized.
func TestIndexFindAllocs(t *testing.T) {
	ix := NewIndex(testRecords())
	buf := make([]providers.Record, 0, 8)
	allocs := testing.AllocsPerRun(100, func() {
		buf = ix.Find(providers.KindSerial, "C02XK1ZZJGH5", buf[:0])
		buf = ix.Find(providers.KindHostname, "mbp-42", buf)
		buf = ix.Find(providers.KindMAC, "010203040506", buf)
	})
	if allocs != 0 || len(buf) != 3 {
		t.Fatalf("%v allocations, %d records; want 0 and 3", allocs, len(buf))
	}
}

// BenchmarkNewIndex builds the index of a 100k-device fleet's largest
// vendor several times over: 170k records, the three vendors' total in
// TestMemory100k, with a serial, a MAC, a hostname and an email each.
//
//	go test -run '^$' -bench BenchmarkNewIndex -benchmem ./aggregate
func BenchmarkNewIndex(b *testing.B) {
	const n = 170_000
	crawl := func() []providers.Record {
		recs := make([]providers.Record, n)
		for i := range recs {
			recs[i] = providers.Record{
				ID:        fmt.Sprintf("%032x", i),
				Serials:   []string{fmt.Sprintf("C02%09d", i)},
				MACs:      []string{fmt.Sprintf("02:00:00:%02x:%02x:%02x", i>>16, (i>>8)&0xff, i&0xff)},
				Hostnames: []string{fmt.Sprintf("LT-%06d.corp.example.com", i)},
				Emails:    []string{fmt.Sprintf("user%d@example.com", i/2)},
				Score:     i % 101,
				Reason:    "complianceState=compliant",
			}
		}
		return recs
	}
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		recs := crawl()
		b.StartTimer()
		if ix := NewIndex(recs); ix.Len() != n {
			b.Fatalf("indexed %d records", ix.Len())
		}
	}
}

// TestIndexKeepsEveryRecordField: a record comes out of the compact index
// as it went in (normalised). Every field is set, so a field added to
// providers.Record that the index does not keep fails here.
func TestIndexKeepsEveryRecordField(t *testing.T) {
	in := providers.Record{
		ID: "r1", Serials: []string{"S1"}, MACs: []string{"02:00:00:00:00:01"}, Hostnames: []string{"host-1"},
		Emails: []string{"a@example.com"}, LastSeen: time.Date(2026, 11, 30, 9, 0, 0, 0, time.FixedZone("", 3600)),
		Score: 42, Reason: "why", Contained: true,
	}
	v := reflect.ValueOf(in)
	for i := range v.NumField() {
		if v.Field(i).IsZero() {
			t.Fatalf("test record leaves %s unset: set it", v.Type().Field(i).Name)
		}
	}
	want := in.Clone()
	want.Normalize()
	got := NewIndex([]providers.Record{in.Clone()}).Lookup(providers.Query{Kind: providers.KindSerial, Values: []string{"S1"}})
	if len(got) != 1 || !reflect.DeepEqual(got[0], want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
}

// TestIndexEntrySize: an entry is what the index costs a record beyond its
// identifiers (170k records in TestMemory100k); a field added carelessly
// grows it past 40 bytes.
func TestIndexEntrySize(t *testing.T) {
	if n := unsafe.Sizeof(entry{}); n > 40 {
		t.Fatalf("entry is %d bytes, want at most 40", n)
	}
	// What vendors produce (0..100, a zero or a UTC LastSeen) fits the
	// entries: a wide map of many records would cost more than it saves.
	if ix := NewIndex(testRecords()); len(ix.wide) != 0 {
		t.Fatalf("%d of %d vendor-like records kept wide", len(ix.wide), ix.Len())
	}
}

// TestIndexRecordRoundTrip: what a record carries comes back from Find
// exactly, however the compact entry holds it: LastSeen equal, printed the
// same (explanations and the audit log print it as JSON) and zero when
// unknown; scores out of 0..100 and the sentinels' own instants kept, not
// truncated.
func TestIndexRecordRoundTrip(t *testing.T) {
	cet := time.FixedZone("CET", 3600)
	ist := time.FixedZone("", 5*3600+1800)
	base := time.Date(2026, 11, 30, 9, 15, 42, 123456789, time.UTC)
	recs := []providers.Record{
		{ID: "zero-time", Serials: []string{"S0"}},
		{ID: "utc", Serials: []string{"S1"}, MACs: []string{"02:00:00:00:00:01", "02:00:00:00:00:02"}, Hostnames: []string{"h1"},
			Emails: []string{"a@example.com", "b@example.com"}, LastSeen: base, Score: 100, Reason: "complianceState=compliant", Contained: true},
		{ID: "named-zone", Serials: []string{"S2"}, LastSeen: base.In(cet), Score: 0, Reason: "complianceState=compliant"},
		{ID: "unnamed-offset", Serials: []string{"S3"}, LastSeen: base.In(ist), Score: 55, Reason: "inventory score 55"},
		{ID: "local", Serials: []string{"S4"}, LastSeen: base.Local(), Score: 1},
		{ID: "monotonic", Serials: []string{"S5"}, LastSeen: time.Now(), Score: 99},
		{ID: "windows-epoch", Serials: []string{"S6"}, LastSeen: time.Date(1601, 1, 1, 0, 0, 0, 0, time.UTC), Score: 254},
		{ID: "far-future", Serials: []string{"S7"}, LastSeen: time.Date(9999, 12, 31, 23, 59, 59, 999999999, cet), Score: 255},
		{ID: "unknown-sentinel-instant", Serials: []string{"S8"}, LastSeen: time.Unix(0, math.MinInt64).UTC(), Score: -1},
		{ID: "wide-sentinel-instant", Serials: []string{"S9"}, LastSeen: time.Unix(0, math.MinInt64+1).In(cet), Score: math.MaxInt},
		{ID: "epoch", Serials: []string{"S10"}, LastSeen: time.Unix(0, 0).UTC(), Score: math.MinInt},
		{ID: "", Serials: []string{"S11"}, Score: 1 << 40},
	}
	want := make([]providers.Record, len(recs))
	for i := range recs {
		want[i] = recs[i].Clone()
		want[i].Normalize()
	}
	ix := NewIndex(recs)
	for _, w := range want {
		t.Run(w.ID, func(t *testing.T) {
			found := ix.Find(providers.KindSerial, w.Serials[0], nil)
			if len(found) != 1 {
				t.Fatalf("Find(%s) = %d records, want 1", w.Serials[0], len(found))
			}
			got := found[0]
			for _, k := range providers.Kinds {
				if !slices.Equal(got.Identifiers(k), w.Identifiers(k)) {
					t.Errorf("%s identifiers = %v, want %v", k, got.Identifiers(k), w.Identifiers(k))
				}
			}
			if got.ID != w.ID || got.Score != w.Score || got.Reason != w.Reason || got.Contained != w.Contained {
				t.Errorf("got ID %q score %d reason %q contained %v, want %q %d %q %v",
					got.ID, got.Score, got.Reason, got.Contained, w.ID, w.Score, w.Reason, w.Contained)
			}
			if !got.LastSeen.Equal(w.LastSeen) || got.LastSeen.IsZero() != w.LastSeen.IsZero() {
				t.Errorf("LastSeen = %v (zero %v), want %v (zero %v)", got.LastSeen, got.LastSeen.IsZero(), w.LastSeen, w.LastSeen.IsZero())
			}
			gj, gerr := json.Marshal(got.LastSeen)
			wj, werr := json.Marshal(w.LastSeen)
			if string(gj) != string(wj) || (gerr == nil) != (werr == nil) {
				t.Errorf("LastSeen prints %s (%v), want %s (%v)", gj, gerr, wj, werr)
			}
			if g, w := got.LastSeen.Format(time.RFC1123Z+" MST"), w.LastSeen.Format(time.RFC1123Z+" MST"); g != w {
				t.Errorf("LastSeen formats as %q, want %q", g, w)
			}
		})
	}
}

// TestIndexManyZones: past the zones an entry can number, times keep
// their zone all the same.
func TestIndexManyZones(t *testing.T) {
	const n = 1<<16 + 2
	base := time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)
	recs := make([]providers.Record, n)
	for i := range recs {
		recs[i] = providers.Record{ID: fmt.Sprint(i), Serials: []string{fmt.Sprintf("S%d", i)}, LastSeen: base.In(time.FixedZone("", i+1))}
	}
	ix := NewIndex(recs)
	for _, i := range []int{0, 1<<16 - 2, 1<<16 - 1, 1 << 16, n - 1} {
		got := ix.Find(providers.KindSerial, fmt.Sprintf("S%d", i), nil)
		if len(got) != 1 {
			t.Fatalf("record %d: found %d", i, len(got))
		}
		if _, off := got[0].LastSeen.Zone(); off != i+1 || !got[0].LastSeen.Equal(base) {
			t.Errorf("record %d: LastSeen %v, want %v at offset %d", i, got[0].LastSeen, base, i+1)
		}
	}
}
