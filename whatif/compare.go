package whatif

import (
	"fmt"
	"strings"

	"github.com/postured/postured/aggregate"
)

// Report is what a policy change would do to a set of devices.
type Report struct {
	// Devices is how many devices were scored under both policies.
	Devices int `json:"devices"`
	// Changed is how many of them would get another score: Raised a
	// higher one, Lowered a lower one.
	Changed    int        `json:"changed"`
	Raised     int        `json:"raised"`
	Lowered    int        `json:"lowered"`
	Thresholds []Crossing `json:"thresholds"`
	// Warnings are the limits of this answer (a provider the running
	// config lacks, scoring settings what-if cannot apply).
	Warnings []string `json:"warnings"`
}

// Crossing is every device a change moves across one threshold.
type Crossing struct {
	Threshold int `json:"threshold"`
	// Down were at or above the threshold and would fall below it; Up the
	// reverse.
	Down []Change `json:"down"`
	Up   []Change `json:"up"`
}

// Change is one device's score under both policies, and why it differs.
type Change struct {
	DeviceID string `json:"device_id"`
	From     int    `json:"from"`
	To       int    `json:"to"`
	Reason   string `json:"reason"`
}

// Compare lines up the same devices scored under two policies, results in
// the same order, and reports who crosses each threshold.
func Compare(current, proposed []aggregate.Result, thresholds []int) (Report, error) {
	if len(current) != len(proposed) {
		return Report{}, fmt.Errorf("whatif: compare: %d current results, %d proposed", len(current), len(proposed))
	}
	r := Report{Devices: len(current), Warnings: []string{}}
	for _, t := range thresholds {
		r.Thresholds = append(r.Thresholds, Crossing{Threshold: t, Down: []Change{}, Up: []Change{}})
	}
	for i := range current {
		cur, next := &current[i], &proposed[i]
		if cur.DeviceID != next.DeviceID {
			return Report{}, fmt.Errorf("whatif: compare: result %d is %q under one policy and %q under the other", i, cur.DeviceID, next.DeviceID)
		}
		if cur.Score == next.Score {
			continue
		}
		r.Changed++
		if next.Score > cur.Score {
			r.Raised++
		} else {
			r.Lowered++
		}
		var ch *Change
		for j := range r.Thresholds {
			c := &r.Thresholds[j]
			down := cur.Score >= c.Threshold && next.Score < c.Threshold
			up := cur.Score < c.Threshold && next.Score >= c.Threshold
			if !down && !up {
				continue
			}
			if ch == nil {
				ch = &Change{DeviceID: cur.DeviceID, From: cur.Score, To: next.Score, Reason: Reason(cur.Explain(), next.Explain())}
			}
			if down {
				c.Down = append(c.Down, *ch)
			} else {
				c.Up = append(c.Up, *ch)
			}
		}
	}
	return r, nil
}

// Reason says what differs between two explanations of one device: each
// provider whose part changed, and the decision when that changed.
func Reason(from, to aggregate.Explanation) string {
	var parts []string
	for _, d := range to.Providers {
		old, ok := providerDetail(from, d.Provider)
		switch {
		case !ok:
			parts = append(parts, fmt.Sprintf("%s: new provider, %s", d.Provider, part(d)))
		case old.Score != d.Score || old.Counted != d.Counted || old.Outcome != d.Outcome || old.Note != d.Note ||
			(d.Counted && old.Weight != d.Weight): // a weight matters only to a counted score
			parts = append(parts, fmt.Sprintf("%s: %s -> %s", d.Provider, part(old), part(d)))
		}
	}
	for _, d := range from.Providers {
		if _, ok := providerDetail(to, d.Provider); !ok {
			parts = append(parts, fmt.Sprintf("%s: removed (was %s)", d.Provider, part(d)))
		}
	}
	switch {
	case from.Decision != to.Decision:
		parts = append(parts, "decision: "+to.Decision)
	case len(parts) == 0: // the policy around the providers changed (unmatched_score)
		parts = append(parts, "providers unchanged; "+to.Decision)
	}
	return strings.Join(parts, "; ")
}

func providerDetail(ex aggregate.Explanation, name string) (aggregate.ProviderDetail, bool) {
	for _, d := range ex.Providers {
		if d.Provider == name {
			return d, true
		}
	}
	return aggregate.ProviderDetail{}, false
}

// part is one provider's contribution in a few words: "80 x3" counted,
// "0 (not counted)", with its note when it has one.
func part(d aggregate.ProviderDetail) string {
	s := fmt.Sprintf("%d x%g", d.Score, d.Weight)
	if !d.Counted {
		s = fmt.Sprintf("%s, not counted", d.Outcome)
	}
	if d.Note != "" {
		s += " (" + d.Note + ")"
	}
	return s
}
