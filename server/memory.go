package server

import (
	"context"
	"hash/maphash"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/postured/postured/aggregate"
	"github.com/postured/postured/providers"
)

// DevicePosture is what postured last computed for one Cloudflare device.
type DevicePosture struct {
	DeviceID string
	Score    int
	S2SID    string
	// Providers maps provider name to its contribution.
	Providers map[string]ProviderPosture
	// At is when the score was computed.
	At time.Time
}

// ProviderPosture is one provider's part in a DevicePosture.
type ProviderPosture struct {
	Score   int
	Outcome aggregate.Outcome
	Counted bool
}

// PostureMemory remembers, per Cloudflare device_id, the identifiers the
// last batch carried and the result, so External Evaluation can ask "how
// healthy is the device this user logs in from?" by device_id alone. A
// result older than Fresh is recomputed from the remembered identifiers.
//
// It holds a whole fleet (100k devices and more), so an entry is only what
// External Evaluation reads, packed: the identifiers, the score and s2s_id,
// and three bytes per provider in one slab shared by every entry. Provider
// names are stored once. It is bounded: at MaxDevices, a device not yet
// known is remembered only once an expired one has made room.
type PostureMemory struct {
	engine   Evaluator
	fresh    time.Duration
	retain   time.Duration
	deadline time.Duration
	now      func() time.Time
	max      int

	mu sync.RWMutex
	// table finds a device id's entry (memtable.go); live is how many
	// entries hold a device. entries[i]'s providers are
	// slab[i*len(names):(i+1)*len(names)].
	table   []uint32
	seed    maphash.Seed
	live    int
	entries []memoryEntry
	slab    []packedProvider
	free    []int32  // slots of forgotten devices
	names   []string // provider names, in the engine's order
	// nextSweep is when a full memory may next look for expired entries:
	// a sweep is O(entries), so not at every insert.
	nextSweep time.Time
}

// memoryEntry is one remembered device.
type memoryEntry struct {
	// ids is the device's id, serial, MAC, hostname and email, then the
	// s2s_id answered for it, one after the other in one allocation; lens
	// are the last five's lengths. The s2s_id is copied, not shared with
	// the index it came from: a shared one would keep that index's whole
	// string of identifiers alive after the next crawl replaced it, for as
	// long as the device is remembered (a day), crawl after crawl.
	ids   string
	lens  [5]uint32
	at    int64 // unix nanoseconds of the score
	score int8
}

// id is the device's Cloudflare device_id; "" for a free entry.
func (e *memoryEntry) id() string {
	return e.ids[:len(e.ids)-int(e.lens[0]+e.lens[1]+e.lens[2]+e.lens[3]+e.lens[4])]
}

// device unpacks the identifiers to recompute from.
func (e *memoryEntry) device() aggregate.Device {
	d := aggregate.Device{ID: e.id()}
	n := len(d.ID)
	for i, f := range []*string{&d.Serial, &d.MAC, &d.Hostname, &d.Email} {
		*f = e.ids[n : n+int(e.lens[i])]
		n += int(e.lens[i])
	}
	return d
}

// s2sID is the s2s_id last answered for the device.
func (e *memoryEntry) s2sID() string { return e.ids[len(e.ids)-int(e.lens[4]):] }

// holds reports whether e holds d's identifiers and s2sID.
func (e *memoryEntry) holds(d *aggregate.Device, s2sID string) bool {
	return e.ids != "" && e.s2sID() == s2sID && e.device() == keyed(*d)
}

// keyed is d without the identifiers that can never be match keys (longer
// than providers.MaxIdentifierLen once trimmed, which every normaliser
// refuses): recomputing without them gives the same score, and a batch
// may carry kilobytes of them.
func keyed(d aggregate.Device) aggregate.Device {
	for _, f := range []*string{&d.Serial, &d.MAC, &d.Hostname, &d.Email} {
		if len(*f) > providers.MaxIdentifierLen && len(strings.TrimSpace(*f)) > providers.MaxIdentifierLen {
			*f = ""
		}
	}
	return d
}

// pack stores d's usable identifiers and s2sID in e, in one allocation.
func (e *memoryEntry) pack(d *aggregate.Device, s2sID string) {
	k := keyed(*d)
	d = &k
	e.ids = d.ID + d.Serial + d.MAC + d.Hostname + d.Email + s2sID
	// #nosec G115 -- the identifiers come from a request body of a few MB at most
	e.lens = [5]uint32{uint32(len(d.Serial)), uint32(len(d.MAC)), uint32(len(d.Hostname)), uint32(len(d.Email)), uint32(len(s2sID))}
}

// packedProvider is a ProviderPosture in three bytes.
type packedProvider struct {
	score   int8
	outcome uint8 // index in outcomes
	counted bool
}

// outcomes are the aggregate.Outcomes a packedProvider can hold; index 0
// stands for any other.
var outcomes = [...]aggregate.Outcome{"", aggregate.OutcomeMatched, aggregate.OutcomeStale, aggregate.OutcomeUnmatched, aggregate.OutcomeError}

func packOutcome(o aggregate.Outcome) uint8 {
	for i, x := range outcomes {
		if x == o {
			return uint8(i)
		}
	}
	return 0
}

// sweepEvery bounds how often a full memory looks for expired entries.
const sweepEvery = time.Minute

// PostureMemoryConfig configures a PostureMemory.
type PostureMemoryConfig struct {
	Engine Evaluator
	// Fresh is how old a remembered score may be before it is recomputed.
	Fresh time.Duration
	// Retain is how long a device id is remembered after its last batch.
	Retain time.Duration
	// Deadline bounds a recomputation.
	Deadline time.Duration
	// MaxDevices bounds the device ids remembered (they come from
	// Cloudflare); 0 means 1,000,000.
	MaxDevices int
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// NewPostureMemory builds an empty memory.
func NewPostureMemory(cfg PostureMemoryConfig) *PostureMemory {
	if cfg.MaxDevices <= 0 {
		cfg.MaxDevices = 1_000_000
	}
	cfg.MaxDevices = min(cfg.MaxDevices, math.MaxInt32) // slots are int32
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &PostureMemory{engine: cfg.Engine, fresh: cfg.Fresh, retain: cfg.Retain, deadline: cfg.Deadline,
		now: cfg.Now, max: cfg.MaxDevices, seed: maphash.MakeSeed()}
}

// ObserveBatch remembers a batch's results.
func (m *PostureMemory) ObserveBatch(_ context.Context, b Batch) { m.Record(b.Devices, b.Results) }

// Record stores a batch's results; results[i] is the result of devices[i],
// as Evaluate returns them.
func (m *PostureMemory) Record(devices []aggregate.Device, results []aggregate.Result) {
	at := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := range results {
		r := &results[i]
		if i >= len(devices) || devices[i].ID != r.DeviceID || r.DeviceID == "" { // #nosec G602 -- i < len(devices) is checked first
			continue // not Evaluate's answer for this batch (or no id: an empty entry is a free one)
		}
		if !m.sameProviders(r.Providers) {
			m.reset(r.Providers)
		}
		s, known := m.find(r.DeviceID)
		if !known {
			var ok bool
			if s, ok = m.allocate(at); !ok {
				return // full of live devices
			}
		}
		e := &m.entries[s]
		if d := &devices[i]; !e.holds(d, r.S2SID) { // #nosec G602 -- i < len(devices), checked above
			e.pack(d, r.S2SID) // the id is unchanged if known: the table stays right
		}
		if !known {
			m.index(s)
		}
		e.at, e.score = at.UnixNano(), score8(r.Score)
		provs := m.slab[int(s)*len(m.names) : int(s+1)*len(m.names)]
		for j, p := range r.Providers {
			provs[j] = packedProvider{score: score8(p.Score), outcome: packOutcome(p.Outcome), counted: p.Counted}
		}
	}
}

// score8 packs a score: every score is 0..100.
func score8(score int) int8 {
	return int8(providers.Clamp(score)) // #nosec G115 -- clamped to 0..100
}

// sameProviders reports whether ps are the providers the memory packs.
func (m *PostureMemory) sameProviders(ps []aggregate.ProviderResult) bool {
	if len(ps) != len(m.names) {
		return false
	}
	for i := range ps {
		if ps[i].Provider != m.names[i] {
			return false
		}
	}
	return true
}

// reset forgets everything and packs the providers of ps from now on. The
// providers are the engine's, so this happens once, at the first batch.
func (m *PostureMemory) reset(ps []aggregate.ProviderResult) {
	m.names = make([]string, len(ps))
	for i := range ps {
		m.names[i] = ps[i].Provider
	}
	m.table, m.live = nil, 0
	m.entries, m.slab, m.free = nil, nil, nil
}

// allocate finds a slot for a new device: a free one, a new one under the
// bound, or one an expired device held.
func (m *PostureMemory) allocate(now time.Time) (int32, bool) {
	if len(m.free) == 0 && len(m.entries) >= m.max && !now.Before(m.nextSweep) {
		m.nextSweep = now.Add(sweepEvery)
		m.sweep(now)
	}
	if n := len(m.free); n > 0 {
		s := m.free[n-1]
		m.free = m.free[:n-1]
		return s, true
	}
	if len(m.entries) >= m.max {
		return 0, false
	}
	m.entries = append(m.entries, memoryEntry{})
	m.slab = slices.Grow(m.slab, len(m.names))[:len(m.slab)+len(m.names)] // Record fills it
	// #nosec G115 -- under max, itself at most math.MaxInt32
	return int32(len(m.entries) - 1), true
}

// sweep frees the slots of devices no batch has carried for Retain.
func (m *PostureMemory) sweep(now time.Time) {
	freed := false
	for s := range m.entries {
		if e := &m.entries[s]; e.ids != "" && m.expired(e, now) {
			*e = memoryEntry{}
			m.free = append(m.free, int32(s)) // #nosec G115 -- entries are at most max, itself an int32
			freed = true
		}
	}
	if freed {
		m.rehash(len(m.table), -1)
	}
}

func (m *PostureMemory) expired(e *memoryEntry, now time.Time) bool {
	return now.Sub(time.Unix(0, e.at)) >= m.retain
}

// Len is the number of devices remembered, expired ones included until
// their slot is reused.
func (m *PostureMemory) Len() int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.live
}

// DevicePosture returns the posture of deviceID: remembered if fresh,
// recomputed from the remembered identifiers otherwise. ok is false when
// no batch carried deviceID within Retain.
func (m *PostureMemory) DevicePosture(ctx context.Context, deviceID string) (DevicePosture, bool) {
	now := m.now()
	m.mu.RLock()
	s, found := m.find(deviceID)
	var e memoryEntry
	var p DevicePosture
	if found {
		e = m.entries[s]
		found = !m.expired(&e, now)
		p = m.unpack(&e, s)
	}
	m.mu.RUnlock()
	if !found {
		return DevicePosture{}, false
	}
	if now.Sub(p.At) < m.fresh {
		return p, true
	}
	ctx, cancel := context.WithTimeout(ctx, m.deadline)
	defer cancel()
	d := e.device()
	res, _ := m.engine.Evaluate(ctx, []aggregate.Device{d})
	m.Record([]aggregate.Device{d}, res)
	return toPosture(res[0], m.now()), true
}

// unpack is entry s as a DevicePosture; m.mu is held.
func (m *PostureMemory) unpack(e *memoryEntry, s int32) DevicePosture {
	p := DevicePosture{DeviceID: e.device().ID, Score: int(e.score), S2SID: e.s2sID(), At: time.Unix(0, e.at),
		Providers: make(map[string]ProviderPosture, len(m.names))}
	for j, pp := range m.slab[int(s)*len(m.names) : int(s+1)*len(m.names)] {
		p.Providers[m.names[j]] = ProviderPosture{Score: int(pp.score), Outcome: outcomes[pp.outcome], Counted: pp.counted}
	}
	return p
}

func toPosture(r aggregate.Result, at time.Time) DevicePosture {
	p := DevicePosture{DeviceID: r.DeviceID, Score: r.Score, S2SID: r.S2SID, At: at,
		Providers: make(map[string]ProviderPosture, len(r.Providers))}
	for _, d := range r.Providers {
		p.Providers[d.Provider] = ProviderPosture{Score: d.Score, Outcome: d.Outcome, Counted: d.Counted}
	}
	return p
}

// Since returns the devices a batch (or a recomputation) carried at or
// after t, ordered by device id: what-if re-scores them.
func (m *PostureMemory) Since(t time.Time) []aggregate.Device {
	after := int64(math.MinInt64) // the zero time: every device
	if !t.IsZero() {
		after = t.UnixNano()
	}
	m.mu.RLock()
	out := make([]aggregate.Device, 0, m.live)
	for s := range m.entries {
		if e := &m.entries[s]; e.ids != "" && e.at >= after {
			out = append(out, e.device())
		}
	}
	m.mu.RUnlock()
	slices.SortFunc(out, func(a, b aggregate.Device) int { return strings.Compare(a.ID, b.ID) })
	return out
}
