package history

import (
	"container/list"
	"context"
	"errors"
	"slices"
	"sync"
	"time"
)

// MemoryConfig bounds a Memory store.
type MemoryConfig struct {
	// MaxDevices and MaxBytes bound what is kept; the devices answered
	// longest ago are forgotten first.
	MaxDevices int
	MaxBytes   int
	// MaxChanges is how many changes are kept per device.
	MaxChanges int
	// Retention forgets a device not answered for this long.
	Retention time.Duration
	// Now is the clock reads check the retention against; nil: time.Now.
	Now func() time.Time
}

// Memory is a Store in this process's memory: one replica's history, lost
// on restart.
type Memory struct {
	cfg MemoryConfig

	mu    sync.Mutex
	order *list.List // of *memEntry, most recently answered first
	byID  map[string]*list.Element
	bytes int
}

type memEntry struct {
	id      string
	state   State
	seen    time.Time
	changes []Change // newest first
	size    int
}

// NewMemory builds an empty Memory store.
func NewMemory(cfg MemoryConfig) (*Memory, error) {
	if cfg.MaxDevices < 1 || cfg.MaxBytes < 1 || cfg.MaxChanges < 1 || cfg.Retention <= 0 {
		return nil, errors.New("history: memory store: max devices, bytes, changes and retention must be > 0")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Memory{cfg: cfg, order: list.New(), byID: make(map[string]*list.Element)}, nil
}

// Apply implements Store.
func (m *Memory) Apply(_ context.Context, at time.Time, updates []Update) error {
	at = at.UTC()
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, u := range updates {
		el, ok := m.byID[u.DeviceID]
		if !ok {
			e := &memEntry{id: u.DeviceID, state: u.State, seen: at}
			e.size = e.measure()
			m.byID[u.DeviceID] = m.order.PushFront(e)
			m.bytes += e.size
			continue
		}
		e := el.Value.(*memEntry)
		if e.state.Score != u.State.Score {
			c := Change{At: at, OldScore: e.state.Score, NewScore: u.State.Score, Causes: Diff(e.state, u.State, at)}
			e.changes = slices.Insert(e.changes, 0, c)
			if len(e.changes) > m.cfg.MaxChanges {
				e.changes = slices.Clip(e.changes[:m.cfg.MaxChanges])
			}
		}
		e.state, e.seen = u.State, at
		m.bytes -= e.size
		e.size = e.measure()
		m.bytes += e.size
		m.order.MoveToFront(el)
	}
	m.evict(at)
	return nil
}

// evict forgets the devices answered longest ago while a bound is
// exceeded, and every device older than the retention.
func (m *Memory) evict(now time.Time) {
	for back := m.order.Back(); back != nil; back = m.order.Back() {
		e := back.Value.(*memEntry)
		if m.order.Len() <= m.cfg.MaxDevices && m.bytes <= m.cfg.MaxBytes && now.Sub(e.seen) <= m.cfg.Retention {
			return
		}
		m.order.Remove(back)
		delete(m.byID, e.id)
		m.bytes -= e.size
	}
}

// Device implements Store.
func (m *Memory) Device(_ context.Context, deviceID string) (Device, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	el, ok := m.byID[deviceID]
	if !ok {
		return Device{}, false, nil
	}
	e := el.Value.(*memEntry)
	if m.cfg.Now().Sub(e.seen) > m.cfg.Retention {
		return Device{}, false, nil
	}
	d := Device{DeviceID: e.id, Score: e.state.Score, SeenAt: e.seen, Changes: make([]Change, len(e.changes))}
	for i, c := range e.changes {
		c.Causes = slices.Clone(c.Causes)
		d.Changes[i] = c
	}
	return d, true, nil
}

// Stats are the devices and approximate bytes held.
func (m *Memory) Stats() (devices, bytes int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.order.Len(), m.bytes
}

// measure approximates the bytes an entry holds, the map and list
// overhead included.
func (e *memEntry) measure() int {
	n := 2*len(e.id) + 160 + e.state.size()
	for _, c := range e.changes {
		n += 64
		for _, s := range c.Causes {
			n += 16 + len(s)
		}
	}
	return n
}
