package server

import (
	"context"
	"sync"
	"time"

	gocache "github.com/patrickmn/go-cache"

	"github.com/postured/postured/aggregate"
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
type PostureMemory struct {
	engine   Evaluator
	fresh    time.Duration
	deadline time.Duration
	now      func() time.Time

	c  *gocache.Cache
	mu sync.Mutex // serialises the bound check with the insert
	// max bounds the device ids remembered (they come from Cloudflare).
	max int
}

type memoryEntry struct {
	device  aggregate.Device
	posture DevicePosture
}

// PostureMemoryConfig configures a PostureMemory.
type PostureMemoryConfig struct {
	Engine Evaluator
	// Fresh is how old a remembered score may be before it is recomputed.
	Fresh time.Duration
	// Retain is how long a device id is remembered after its last batch.
	Retain time.Duration
	// Deadline bounds a recomputation.
	Deadline   time.Duration
	MaxDevices int
}

// NewPostureMemory builds an empty memory.
func NewPostureMemory(cfg PostureMemoryConfig) *PostureMemory {
	if cfg.MaxDevices <= 0 {
		cfg.MaxDevices = 1_000_000
	}
	return &PostureMemory{engine: cfg.Engine, fresh: cfg.Fresh, deadline: cfg.Deadline, now: time.Now,
		c: gocache.New(cfg.Retain, time.Minute), max: cfg.MaxDevices}
}

// ObserveBatch remembers a batch's results.
func (m *PostureMemory) ObserveBatch(_ context.Context, b Batch) { m.Record(b.Devices, b.Results) }

// Record stores a batch's results.
func (m *PostureMemory) Record(devices []aggregate.Device, results []aggregate.Result) {
	byID := make(map[string]aggregate.Device, len(devices))
	for _, d := range devices {
		byID[d.ID] = d
	}
	at := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, r := range results {
		if _, known := m.c.Get(r.DeviceID); !known && m.c.ItemCount() >= m.max {
			m.c.DeleteExpired()
			if m.c.ItemCount() >= m.max {
				return
			}
		}
		m.c.SetDefault(r.DeviceID, memoryEntry{device: byID[r.DeviceID], posture: toPosture(r, at)})
	}
}

// DevicePosture returns the posture of deviceID: remembered if fresh,
// recomputed from the remembered identifiers otherwise. ok is false when
// no batch ever carried deviceID.
func (m *PostureMemory) DevicePosture(ctx context.Context, deviceID string) (DevicePosture, bool) {
	v, found := m.c.Get(deviceID)
	if !found {
		return DevicePosture{}, false
	}
	e := v.(memoryEntry)
	if m.now().Sub(e.posture.At) < m.fresh {
		return e.posture, true
	}
	ctx, cancel := context.WithTimeout(ctx, m.deadline)
	defer cancel()
	res, _ := m.engine.Evaluate(ctx, []aggregate.Device{e.device})
	m.Record([]aggregate.Device{e.device}, res)
	return toPosture(res[0], m.now()), true
}

func toPosture(r aggregate.Result, at time.Time) DevicePosture {
	p := DevicePosture{DeviceID: r.DeviceID, Score: r.Score, S2SID: r.S2SID, At: at,
		Providers: make(map[string]ProviderPosture, len(r.Providers))}
	for _, d := range r.Providers {
		p.Providers[d.Provider] = ProviderPosture{Score: d.Score, Outcome: d.Outcome, Counted: d.Counted}
	}
	return p
}
