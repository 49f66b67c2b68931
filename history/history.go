// Package history keeps, per Cloudflare device_id, the last score changes
// postured answered and what caused each: which provider's scoring fields
// moved, a re-enrolment, a record that went stale, a provider that stopped
// matching. It keeps a compact per-provider state of every device it has
// seen, diffs it against the next answer, and stores the result in memory
// or in Redis, bounded in devices, changes and bytes.
package history

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/postured/postured/aggregate"
)

// Change is one change of a device's final score.
type Change struct {
	At       time.Time `json:"at"`
	OldScore int       `json:"old_score"`
	NewScore int       `json:"new_score"`
	// Causes say what moved, one line per provider field, e.g.
	// "intune complianceState compliant -> noncompliant".
	Causes []string `json:"causes"`
}

// Device is what the history knows of one device.
type Device struct {
	DeviceID string `json:"device_id"`
	// Score is the last score Cloudflare was told, at SeenAt.
	Score  int       `json:"score"`
	SeenAt time.Time `json:"seen_at"`
	// Changes are the most recent score changes, newest first; empty for a
	// device whose score never changed while it was remembered.
	Changes []Change `json:"changes"`
}

// Update is one answered device, as the stores receive it.
type Update struct {
	DeviceID string
	State    State
}

// Store keeps device states and their changes. Memory and Redis are the
// two implementations.
type Store interface {
	// Apply records one batch's answers, answered at at.
	Apply(ctx context.Context, at time.Time, updates []Update) error
	// Device is the history of one device; ok is false for a device never
	// seen (or forgotten after the retention).
	Device(ctx context.Context, deviceID string) (d Device, ok bool, err error)
}

// Config configures a Recorder.
type Config struct {
	Store Store
	// MaxLastSeen is each provider's max_last_seen, so a record that scores
	// 0 because it is too old is named as stale rather than as a score drop.
	MaxLastSeen map[string]time.Duration
}

// Recorder turns answered batches into history.
type Recorder struct {
	store       Store
	maxLastSeen map[string]time.Duration
}

// New builds a Recorder over cfg.Store.
func New(cfg Config) (*Recorder, error) {
	if cfg.Store == nil {
		return nil, errors.New("history: no store")
	}
	return &Recorder{store: cfg.Store, maxLastSeen: cfg.MaxLastSeen}, nil
}

// Record stores the answers of one batch, answered at at.
func (r *Recorder) Record(ctx context.Context, at time.Time, results []aggregate.Result) error {
	updates := make([]Update, 0, len(results))
	for i := range results {
		if results[i].DeviceID == "" {
			continue
		}
		updates = append(updates, Update{DeviceID: results[i].DeviceID, State: r.state(at, &results[i])})
	}
	if len(updates) == 0 {
		return nil
	}
	if err := r.store.Apply(ctx, at, updates); err != nil {
		return fmt.Errorf("history: record: %w", err)
	}
	return nil
}

// Device is the history of one device; ok is false for a device never seen.
func (r *Recorder) Device(ctx context.Context, deviceID string) (Device, bool, error) {
	d, ok, err := r.store.Device(ctx, deviceID)
	if err != nil {
		return Device{}, false, fmt.Errorf("history: read %s: %w", deviceID, err)
	}
	return d, ok, nil
}

// decision is the fold's decision and what adjusted the folded score (an
// override, hysteresis: package adjust), so that a change no provider
// field explains is put down to them.
func decision(ex *aggregate.Explanation) string {
	d := ex.Decision
	for _, a := range ex.Adjustments {
		d += "; " + a.Kind + ": " + a.Note
	}
	return d
}

// state is the compact form of one result.
func (r *Recorder) state(at time.Time, res *aggregate.Result) State {
	ex := res.Explain()
	st := State{Score: res.Score, Decision: clip(decision(&ex), maxFieldBytes), Providers: make([]ProviderState, len(ex.Providers))}
	for i, p := range ex.Providers {
		ps := ProviderState{
			Name: clip(p.Provider, maxFieldBytes), Outcome: string(p.Outcome), Score: p.Score,
			RecordID: clip(p.RecordID, maxFieldBytes), Reason: clip(p.Reason, maxFieldBytes),
		}
		if !p.LastSeen.IsZero() {
			ps.LastSeen = p.LastSeen.Unix()
		}
		if max := r.maxLastSeen[p.Provider]; max > 0 && p.RecordID != "" && !p.LastSeen.IsZero() && at.Sub(p.LastSeen) > max {
			ps.Expired = true
		}
		st.Providers[i] = ps
	}
	return st
}
