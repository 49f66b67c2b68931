package adjust

import (
	"fmt"
	"strings"
	"time"

	"github.com/postured/postured/aggregate"
	"github.com/postured/postured/internal/conf"
)

// HysteresisConfig is posture.hysteresis: a device whose score falls below
// Threshold keeps its last good score until the fall has lasted
// HoldEvaluations consecutive /posture evaluations or HoldFor, whichever
// comes first when both are set. Recoveries, and hosts an EDR reports
// contained, apply at once.
type HysteresisConfig struct {
	Threshold       int           `yaml:"threshold"`
	HoldEvaluations int           `yaml:"hold_evaluations,omitempty"`
	HoldFor         conf.Duration `yaml:"hold_for,omitempty"`
}

// Problems checks the section; Field names the key.
func (c HysteresisConfig) Problems() []Problem {
	var probs []Problem
	if c.Threshold < 1 || c.Threshold > 100 {
		probs = append(probs, Problem{"threshold", fmt.Sprintf("must be 1..100, got %d", c.Threshold)})
	}
	if c.HoldEvaluations < 0 || c.HoldEvaluations == 1 {
		probs = append(probs, Problem{"hold_evaluations", fmt.Sprintf("must be >= 2 (1 would hold nothing), or 0 to hold by hold_for alone, got %d", c.HoldEvaluations)})
	}
	if c.HoldFor < 0 {
		probs = append(probs, Problem{"hold_for", fmt.Sprintf("must be > 0, got %s", c.HoldFor)})
	}
	if c.HoldEvaluations == 0 && c.HoldFor == 0 {
		probs = append(probs, Problem{"", "needs hold_evaluations, hold_for or both"})
	}
	return probs
}

// stateTTL is how long a device's hysteresis state outlives its last
// evaluation. Cloudflare polls every device every few minutes; a device
// unseen for a day starts afresh, so its first low score applies at once.
const stateTTL = 24 * time.Hour

// State is one device's hysteresis state, kept in the cache backend
// between batches (shared by replicas with Redis).
type State struct {
	// Good is the last score at or above the threshold the device was
	// answered; 0 when there is none to hold.
	Good int `json:"g,omitempty"`
	// Low counts the consecutive low evaluations held so far, and
	// LowSince is when the first of them happened.
	Low      int       `json:"n,omitempty"`
	LowSince time.Time `json:"s,omitzero"`
}

// hysteresis is the state machine of HysteresisConfig.
type hysteresis struct {
	threshold int
	holdN     int
	holdFor   time.Duration
}

// step is one evaluation of a device whose folded score is score:
// the state to keep, and the adjustment to apply (nil: none). containedBy
// names the provider that reports the host contained, if any.
func (h *hysteresis) step(st State, score int, containedBy string, now time.Time) (State, *aggregate.Adjustment) {
	switch {
	case score >= h.threshold:
		return State{Good: score}, nil
	case st.Good == 0:
		return State{}, nil
	case containedBy != "":
		return State{}, &aggregate.Adjustment{Kind: KindHysteresis, From: score, To: score,
			Note: fmt.Sprintf("bypassed: %s reports the host contained; the drop from %d applies at once", containedBy, st.Good)}
	}
	n, since := st.Low+1, st.LowSince
	if since.IsZero() {
		since = now
	}
	if h.holdN > 0 && n >= h.holdN {
		return State{}, &aggregate.Adjustment{Kind: KindHysteresis, From: score, To: score,
			Note: fmt.Sprintf("released: %d consecutive low evaluations reached hold_evaluations %d", n, h.holdN)}
	}
	if low := now.Sub(since); h.holdFor > 0 && low >= h.holdFor {
		return State{}, &aggregate.Adjustment{Kind: KindHysteresis, From: score, To: score,
			Note: fmt.Sprintf("released: below threshold for %s, reached hold_for %s", low.Truncate(time.Second), h.holdFor)}
	}
	var until []string
	if h.holdN > 0 {
		until = append(until, fmt.Sprintf("low evaluation %d of hold_evaluations %d", n, h.holdN))
	}
	if h.holdFor > 0 {
		until = append(until, fmt.Sprintf("low since %s, hold_for %s", since.UTC().Format(time.RFC3339), h.holdFor))
	}
	return State{Good: st.Good, Low: n, LowSince: since}, &aggregate.Adjustment{Kind: KindHysteresis, From: score, To: st.Good,
		Note: fmt.Sprintf("held at the last good score %d: %d is below threshold %d (%s)", st.Good, score, h.threshold, strings.Join(until, "; "))}
}

// containedBy names the first provider whose matched record is a
// contained host, or "".
func containedBy(r *aggregate.Result) string {
	for _, p := range r.Providers {
		if p.Contained && (p.Outcome == aggregate.OutcomeMatched || p.Outcome == aggregate.OutcomeStale) {
			return p.Provider
		}
	}
	return ""
}
