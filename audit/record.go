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

// Record is one answered device. The caller fills everything but Seq and
// Prev, which the Writer sets; a zero Time becomes the Writer's clock.
type Record struct {
	Seq  uint64    `json:"seq"`
	Time time.Time `json:"time"` // written in UTC, RFC 3339 with nanoseconds
	// RequestID ties the record to the request and its log lines.
	RequestID string `json:"request_id"`
	// ConfigHash is the hex SHA-256 of the effective config that answered.
	ConfigHash  string      `json:"config_hash"`
	DeviceID    string      `json:"device_id"`
	Identifiers Identifiers `json:"identifiers"`
	S2SID       string      `json:"s2s_id"`
	Score       int         `json:"score"`
	Providers   []Provider  `json:"providers"`
	Prev        string      `json:"prev"`
}

// Identifiers are the device's normalised identifiers as Cloudflare sent
// them.
type Identifiers struct {
	Serial   string `json:"serial,omitempty"`
	MAC      string `json:"mac,omitempty"`
	Hostname string `json:"hostname,omitempty"`
	Email    string `json:"email,omitempty"`
}

// Provider is one provider's part in the answer: the fields that decided it,
// as in aggregate.ProviderDetail.
type Provider struct {
	Name         string    `json:"name"`
	Weight       float64   `json:"weight"`
	Outcome      string    `json:"outcome"`
	MatchedOn    string    `json:"matched_on,omitempty"`
	MatchedValue string    `json:"matched_value,omitempty"`
	RecordID     string    `json:"record_id,omitempty"`
	Score        int       `json:"score"`
	Counted      bool      `json:"counted"`
	LastSeen     time.Time `json:"last_seen,omitzero"`
	Reason       string    `json:"reason,omitempty"`
	Error        string    `json:"error,omitempty"`
	Note         string    `json:"note,omitempty"`
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
