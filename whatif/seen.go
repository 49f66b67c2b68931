package whatif

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/postured/postured/aggregate"
	"github.com/postured/postured/server"
)

// Seen remembers the identifiers of every device a batch carried, and
// when, so `postured whatif` can score the devices of the last polling
// cycle again. It is bounded: at Max devices, a new device id first drops
// the least recently seen tenth.
type Seen struct {
	max int
	now func() time.Time

	mu sync.Mutex
	m  map[string]seenDevice
}

type seenDevice struct {
	d  aggregate.Device
	at time.Time
}

// SeenConfig configures a Seen.
type SeenConfig struct {
	// Max bounds the device ids remembered (they come from Cloudflare).
	Max int
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// NewSeen builds an empty Seen.
func NewSeen(cfg SeenConfig) *Seen {
	if cfg.Max <= 0 {
		cfg.Max = 1_000_000
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Seen{max: cfg.Max, now: cfg.Now, m: make(map[string]seenDevice)}
}

// ObserveBatch remembers the batch's devices.
func (s *Seen) ObserveBatch(_ context.Context, b server.Batch) {
	at := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range b.Devices {
		if _, known := s.m[d.ID]; !known && len(s.m) >= s.max {
			s.evictOldest()
		}
		// Clone: the batch's strings point into the request body's decode
		// buffers; a remembered device must not pin them.
		s.m[strings.Clone(d.ID)] = seenDevice{d: cloneDevice(d), at: at}
	}
}

// evictOldest drops the least recently seen tenth of the devices: one
// O(n log n) pass per n/10 new ids, so a full Seen costs O(log n) per
// insert rather than a scan each.
func (s *Seen) evictOldest() {
	ats := make([]time.Time, 0, len(s.m))
	for _, e := range s.m {
		ats = append(ats, e.at)
	}
	slices.SortFunc(ats, time.Time.Compare)
	cutoff := ats[max(len(ats)/10, 1)-1]
	for id, e := range s.m {
		if !e.at.After(cutoff) {
			delete(s.m, id)
		}
	}
}

// Since returns the devices seen at or after t, ordered by device id.
func (s *Seen) Since(t time.Time) []aggregate.Device {
	s.mu.Lock()
	out := make([]aggregate.Device, 0, len(s.m))
	for _, e := range s.m {
		if !e.at.Before(t) {
			out = append(out, e.d)
		}
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b aggregate.Device) int { return strings.Compare(a.ID, b.ID) })
	return out
}

func cloneDevice(d aggregate.Device) aggregate.Device {
	return aggregate.Device{ID: strings.Clone(d.ID), Serial: strings.Clone(d.Serial), MAC: strings.Clone(d.MAC),
		Hostname: strings.Clone(d.Hostname), Email: strings.Clone(d.Email)}
}
