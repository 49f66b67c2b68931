// Package adjust changes a device's folded score before anyone sees it:
// time-boxed, reasoned overrides (from the config file, or added at run
// time and kept in Redis) and hysteresis, which holds a device's last good
// score through a short fall below a threshold so one vendor blip does not
// lock a user out. Both are applied in one place, an Engine wrapping the
// aggregate engine, so /posture, External Evaluation's posture memory,
// `explain` and /v1/explain all see the same final score, and every change
// is recorded in the explanation's adjustments.
package adjust

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/postured/postured/aggregate"
	"github.com/postured/postured/cache"
	"github.com/postured/postured/internal/logging"
)

// Adjustment kinds in aggregate.Explanation.Adjustments.
const (
	KindOverride   = "override"
	KindHysteresis = "hysteresis"
)

// OverrideLister reads the overrides added at run time.
type OverrideLister interface {
	List(ctx context.Context) ([]Override, error)
}

// batchStore is a Store that reads and writes many keys in one round trip
// (cache.Redis): a batch's states cost two round trips, not two per device.
type batchStore interface {
	GetMulti(ctx context.Context, keys []string) ([]cache.Entry[State], []bool, error)
	SetMulti(ctx context.Context, entries map[string]cache.Entry[State], ttl time.Duration) error
}

// Config configures an Adjuster.
type Config struct {
	// Overrides are the config file's, already parsed.
	Overrides []Override
	// Runtime, if set, holds the overrides `postured override add` wrote;
	// it is read once per evaluation.
	Runtime OverrideLister
	// Hysteresis, if set, turns hysteresis on; States then keeps its
	// per-device state (bounded memory, or Redis so replicas agree).
	Hysteresis *HysteresisConfig
	States     cache.Store[State]
	Logger     *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Adjuster applies overrides and hysteresis to folded results.
type Adjuster struct {
	overrides []Override
	runtime   OverrideLister
	hyst      *hysteresis
	states    cache.Store[State]
	logger    *slog.Logger
	now       func() time.Time
}

// New builds an Adjuster.
func New(cfg Config) (*Adjuster, error) {
	a := &Adjuster{runtime: cfg.Runtime, states: cfg.States, logger: logging.OrDiscard(cfg.Logger), now: cfg.Now}
	if a.now == nil {
		a.now = time.Now
	}
	for _, o := range cfg.Overrides {
		o.Source = SourceConfig
		a.overrides = append(a.overrides, o)
	}
	if h := cfg.Hysteresis; h != nil {
		if probs := h.Problems(); len(probs) > 0 {
			return nil, fmt.Errorf("adjust: hysteresis: %s %s", probs[0].Field, probs[0].Msg)
		}
		if cfg.States == nil {
			return nil, errors.New("adjust: hysteresis needs a state store")
		}
		a.hyst = &hysteresis{threshold: h.Threshold, holdN: h.HoldEvaluations, holdFor: time.Duration(h.HoldFor)}
	}
	return a, nil
}

// Evaluator scores a batch of devices (an *aggregate.Engine).
type Evaluator interface {
	Evaluate(ctx context.Context, devices []aggregate.Device) ([]aggregate.Result, aggregate.Stats)
}

// Engine is an Evaluator whose results are adjusted.
type Engine struct {
	inner   Evaluator
	adj     *Adjuster
	advance bool
}

// Engine wraps inner. advance says whether its evaluations move the
// hysteresis state on: true only for the /posture endpoint, whose answers
// Cloudflare acts on; explanations and External Evaluation's
// recomputations read the state and leave it as it was.
func (a *Adjuster) Engine(inner Evaluator, advance bool) *Engine {
	return &Engine{inner: inner, adj: a, advance: advance}
}

// Evaluate implements Evaluator.
func (e *Engine) Evaluate(ctx context.Context, devices []aggregate.Device) ([]aggregate.Result, aggregate.Stats) {
	res, stats := e.inner.Evaluate(ctx, devices)
	e.adj.Apply(ctx, devices, res, e.advance)
	return res, stats
}

// Apply adjusts results (in the order of devices) in place. An override
// wins over hysteresis; hysteresis still tracks the folded score under an
// override, so the device's state is true when the override ends. A
// device without an id (an explanation asked by serial alone) has no
// hysteresis state; a note says so when a /posture batch might hold it.
// Backend failures are logged and fail towards the folded score: runtime
// overrides and held scores are then not applied.
func (a *Adjuster) Apply(ctx context.Context, devices []aggregate.Device, results []aggregate.Result, advance bool) {
	if len(a.overrides) == 0 && a.runtime == nil && a.hyst == nil {
		return
	}
	now := a.now()
	inForce := a.inForce(ctx, now)
	var states map[string]State
	var next map[string]cache.Entry[State]
	if a.hyst != nil {
		states = a.readStates(ctx, results)
		if advance && states != nil {
			next = make(map[string]cache.Entry[State], len(results))
		}
	}
	for i := range results {
		r := &results[i]
		folded := r.Score
		var held *aggregate.Adjustment
		if a.hyst != nil {
			held = a.hysteresis(r, states, next, now)
		}
		if o, ok := inForce.match(devices[i]); ok {
			r.Adjust(aggregate.Adjustment{Kind: KindOverride, From: folded, To: o.Score,
				Note: fmt.Sprintf("%s override on %s until %s: %s", o.Source, o.Kind, o.Until.Format(time.RFC3339), o.Reason)})
			a.logger.Info("override applied", "device_id", r.DeviceID, "from", folded, "to", o.Score,
				"selector", o.Kind, "source", o.Source, "until", o.Until, "reason", o.Reason, "posture", advance)
			continue
		}
		if held != nil {
			r.Adjust(*held)
		}
	}
	if len(next) > 0 {
		if err := a.writeStates(ctx, next); err != nil {
			a.logger.Warn("hysteresis state not saved: the next batch starts from the previous state", "error", err)
		}
	}
}

// hysteresis steps one device's state: it returns the adjustment, if any,
// and records the next state in next (nil: read only).
func (a *Adjuster) hysteresis(r *aggregate.Result, states map[string]State, next map[string]cache.Entry[State], now time.Time) *aggregate.Adjustment {
	if r.DeviceID == "" {
		if r.Score >= a.hyst.threshold {
			return nil
		}
		return &aggregate.Adjustment{Kind: KindHysteresis, From: r.Score, To: r.Score,
			Note: "not applied: no device_id given, so no state was read; a /posture batch may still hold this device's last good score"}
	}
	if states == nil {
		return nil // the state could not be read: the folded score stands
	}
	st, adj := a.hyst.step(states[r.DeviceID], r.Score, containedBy(r), now)
	if next != nil {
		next[r.DeviceID] = cache.Entry[State]{Value: st, Found: true, Stored: now}
	}
	return adj
}

// inForce is every override that applies at now.
func (a *Adjuster) inForce(ctx context.Context, now time.Time) overrideSet {
	set := overrideSet{}
	for _, o := range a.overrides {
		if !o.Expired(now) {
			set.add(o)
		}
	}
	if a.runtime == nil {
		return set
	}
	rt, err := a.runtime.List(ctx)
	if err != nil {
		a.logger.Warn("runtime overrides not read: only the config file's apply", "error", err)
		return set
	}
	for _, o := range rt {
		if !o.Expired(now) {
			o.Source = SourceRuntime
			set.add(o)
		}
	}
	return set
}

// readStates is the hysteresis state of every result's device; nil when
// the store failed.
func (a *Adjuster) readStates(ctx context.Context, results []aggregate.Result) map[string]State {
	keys := make([]string, 0, len(results))
	for _, r := range results {
		if r.DeviceID != "" {
			keys = append(keys, r.DeviceID)
		}
	}
	out := make(map[string]State, len(keys))
	if len(keys) == 0 {
		return out
	}
	if bs, ok := a.states.(batchStore); ok {
		es, oks, err := bs.GetMulti(ctx, keys)
		if err != nil {
			a.logger.Warn("hysteresis state not read: folded scores apply as they are", "error", err)
			return nil
		}
		for i, k := range keys {
			if oks[i] {
				out[k] = es[i].Value
			}
		}
		return out
	}
	for _, k := range keys {
		e, ok, err := a.states.Get(ctx, k)
		if err != nil {
			a.logger.Warn("hysteresis state not read: folded scores apply as they are", "error", err)
			return nil
		}
		if ok {
			out[k] = e.Value
		}
	}
	return out
}

func (a *Adjuster) writeStates(ctx context.Context, next map[string]cache.Entry[State]) error {
	if bs, ok := a.states.(batchStore); ok {
		return bs.SetMulti(ctx, next, stateTTL)
	}
	for k, e := range next {
		if err := a.states.Set(ctx, k, e, stateTTL); err != nil {
			return fmt.Errorf("hysteresis: save state: %w", err)
		}
	}
	return nil
}
