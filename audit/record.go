package audit

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Genesis is the prev of the first line of a chain: the hex SHA-256 of no
// bytes.
const Genesis = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

// MaxLineBytes bounds one line. Append refuses a larger record, so Verify
// and Find can refuse longer lines instead of buffering a damaged file
// whole.
const MaxLineBytes = 1 << 20

// Record is one answered device: the answer, and everything the score was
// folded from, so that it can be recomputed (replayed). The caller fills
// everything but Seq and Prev, which the Writer sets; a zero Time becomes
// the Writer's clock.
type Record struct {
	Seq uint64 `json:"seq"`
	// Time is when the score was computed; max_last_seen was judged
	// against it. Written in UTC, RFC 3339 with nanoseconds.
	Time time.Time `json:"time"`
	// RequestID ties the record to the request and its log lines.
	RequestID string `json:"request_id"`
	// ConfigHash is the hex SHA-256 of the effective config that answered
	// (secrets excluded).
	ConfigHash  string      `json:"config_hash"`
	DeviceID    string      `json:"device_id"`
	Identifiers Identifiers `json:"identifiers"`
	// S2SID and Score are the answer Cloudflare was given: Score is the
	// final score, after Adjustments.
	S2SID string `json:"s2s_id"`
	Score int    `json:"score"`
	// S2SIDFrom is the provider whose record id is the s2s_id, and
	// Decision how the score was reached, as in the explanation.
	S2SIDFrom string `json:"s2s_id_from,omitempty"`
	Decision  string `json:"decision,omitempty"`
	// Policy is the posture policy the score was folded under.
	Policy    Policy     `json:"policy"`
	Providers []Provider `json:"providers"`
	// Adjustments changed the folded score afterwards (an override,
	// hysteresis), in the order applied, as in the explanation.
	Adjustments []Adjustment `json:"adjustments,omitempty"`
	Prev        string       `json:"prev"`
}

// Adjustment is one change to the folded score, or a note on why one did
// not apply (From == To).
type Adjustment struct {
	Kind string `json:"kind"`
	From int    `json:"from"`
	To   int    `json:"to"`
	Note string `json:"note,omitempty"`
}

// Policy is the part of the posture policy the fold applies beyond each
// provider's own.
type Policy struct {
	UnmatchedScore int `json:"unmatched_score"`
	// S2SIDFrom is posture.s2s_id_from as configured.
	S2SIDFrom []string `json:"s2s_id_from,omitempty"`
}

// Identifiers are the device's identifiers as Cloudflare sent them,
// normalised as matching normalises them; an unusable one is left out.
type Identifiers struct {
	Serial   string `json:"serial,omitempty"`
	MAC      string `json:"mac,omitempty"`
	Hostname string `json:"hostname,omitempty"`
	Email    string `json:"email,omitempty"`
}

// Provider is one provider's part in the answer: its policies and the
// fields that decided it, as in aggregate.ProviderDetail.
type Provider struct {
	Name     string  `json:"name"`
	Weight   float64 `json:"weight"`
	Required bool    `json:"required,omitempty"`
	OnError  string  `json:"on_error,omitempty"`
	// MaxLastSeen is a Go duration ("720h0m0s"); empty means no limit.
	MaxLastSeen  string `json:"max_last_seen,omitempty"`
	Outcome      string `json:"outcome"`
	MatchedOn    string `json:"matched_on,omitempty"`
	MatchedValue string `json:"matched_value,omitempty"`
	RecordID     string `json:"record_id,omitempty"`
	// RecordScore is the matched record's own score; Score is what the
	// provider contributed: RecordScore, or 0 past max_last_seen.
	RecordScore int       `json:"record_score,omitempty"`
	Score       int       `json:"score"`
	Counted     bool      `json:"counted"`
	LastSeen    time.Time `json:"last_seen,omitzero"`
	Reason      string    `json:"reason,omitempty"`
	Error       string    `json:"error,omitempty"`
	Note        string    `json:"note,omitempty"`
	// Contained: the matched record is a network-contained host (which
	// hysteresis does not hold).
	Contained bool `json:"contained,omitempty"`
}

// Break is what a break line records: a partial line left by a crash
// mid-write, which the chain skips. The break line chains to the last
// complete line before the partial one.
type Break struct {
	File  string `json:"file"`  // base name of the file holding the partial line
	Line  int    `json:"line"`  // its line number there
	Bytes int    `json:"bytes"` // its length
}

// breakLine is the wire form of a break line.
type breakLine struct {
	Seq   uint64    `json:"seq"`
	Time  time.Time `json:"time"`
	Break *Break    `json:"break"`
	Prev  string    `json:"prev"`
}

// entry is any line: a record, or a break line when Break is set.
type entry struct {
	Record
	Break *Break `json:"break,omitempty"`
}

func parseEntry(b []byte) (entry, error) {
	var e entry
	if err := json.Unmarshal(b, &e); err != nil {
		return entry{}, err
	}
	if e.Seq == 0 {
		return entry{}, errors.New("no seq")
	}
	if len(e.Prev) != sha256.Size*2 {
		return entry{}, fmt.Errorf("prev %q is not a hex SHA-256", e.Prev)
	}
	if _, err := hex.DecodeString(e.Prev); err != nil {
		return entry{}, fmt.Errorf("prev %q is not a hex SHA-256", e.Prev)
	}
	return e, nil
}

func lineHash(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
