// Package providers holds what every device-posture backend speaks: the match
// keys a lookup is made of, the normalised records a lookup returns, the
// common per-provider configuration and the registry that turns a config
// section into a running provider. Vendor packages (providers/intune, ...)
// import this package; nothing here imports a vendor.
package providers

import (
	"errors"
	"fmt"
	"slices"
	"time"
)

// Kind is one of the identifiers Cloudflare sends that a device can be
// matched on. The order of the constants is the matching priority.
type Kind uint8

const (
	KindSerial Kind = iota
	KindMAC
	KindHostname
	KindEmail
)

// Kinds lists every kind in matching priority order.
var Kinds = [...]Kind{KindSerial, KindMAC, KindHostname, KindEmail}

func (k Kind) String() string {
	switch k {
	case KindSerial:
		return "serial"
	case KindMAC:
		return "mac"
	case KindHostname:
		return "hostname"
	case KindEmail:
		return "email"
	}
	return "unknown"
}

// Query asks a provider for every record carrying any of Values as an
// identifier of the given Kind. Values are already normalised (see
// NormalizeSerial and friends) and deduplicated; a provider may split them
// into as many vendor calls as its API needs, but never one call per value
// when the API can take several.
type Query struct {
	Kind   Kind
	Values []string
}

// ErrUnsupportedKind is returned (wrapped) by a provider whose vendor API
// cannot look records up by the queried kind, e.g. Intune by MAC in query
// mode. The aggregator records it in the explanation; it is not an outage.
var ErrUnsupportedKind = errors.New("lookup by this key is not supported")

// ErrUnchanged is returned (wrapped or not) by a List whose source has not
// changed since the previous List, e.g. an inventory file with the same
// size and modification time. Whoever serves the listed records keeps what
// it has, and reports nothing new: an edit that broke the file is reported
// once, not at every check.
var ErrUnchanged = errors.New("inventory unchanged since the last list")

// Record is one vendor device, normalised. Identifier slices hold normalised
// values (call Normalize after filling them from vendor data). A provider
// returns every record it found for a query, including records that match
// more loosely than asked (vendors ignore some filters); the aggregator
// re-checks every match against the normalised identifiers.
type Record struct {
	// ID is the vendor's device id, returned to Cloudflare as s2s_id.
	ID        string
	Serials   []string
	MACs      []string
	Hostnames []string
	Emails    []string
	// LastSeen is when the vendor last heard from the device; zero if unknown.
	LastSeen time.Time
	// Score is the provider's 0-100 verdict on this record.
	Score int
	// Reason says what the score was derived from, e.g.
	// "complianceState=compliant". It reaches explanations, never Cloudflare.
	Reason string
	// Contained is set by an EDR whose host is network-contained (a
	// CrowdStrike status of contained or containment pending): the drop of
	// such a device is never delayed by hysteresis.
	Contained bool `json:",omitempty"`
}

// Normalize rewrites the identifiers in place to their normalised form and
// drops the ones that can never be match keys (placeholders, all-zero MACs,
// blanks). It returns r for chaining.
func (r *Record) Normalize() *Record {
	r.Serials = normalizeAll(r.Serials, NormalizeSerial)
	r.MACs = normalizeAll(r.MACs, NormalizeMAC)
	r.Hostnames = normalizeAll(r.Hostnames, NormalizeHostname)
	r.Emails = normalizeAll(r.Emails, NormalizeEmail)
	return r
}

// Clone returns a copy sharing no slices with r, so callers may normalise or
// edit it while other goroutines read r.
func (r *Record) Clone() Record {
	c := *r
	c.Serials = slices.Clone(r.Serials)
	c.MACs = slices.Clone(r.MACs)
	c.Hostnames = slices.Clone(r.Hostnames)
	c.Emails = slices.Clone(r.Emails)
	return c
}

// Identifiers returns the record's normalised identifiers of kind k.
func (r *Record) Identifiers(k Kind) []string {
	switch k {
	case KindSerial:
		return r.Serials
	case KindMAC:
		return r.MACs
	case KindHostname:
		return r.Hostnames
	case KindEmail:
		return r.Emails
	}
	return nil
}

// Has reports whether the record carries the normalised value v as a kind k
// identifier.
func (r *Record) Has(k Kind, v string) bool {
	return slices.Contains(r.Identifiers(k), v)
}

func normalizeAll(in []string, norm func(string) (string, bool)) []string {
	var out []string // never in place: in may be shared
	for _, v := range in {
		n, ok := norm(v)
		if ok && !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// Normalize returns the normalised form of a kind k identifier and whether it
// can be used as a match key at all.
func Normalize(k Kind, v string) (string, bool) {
	switch k {
	case KindSerial:
		return NormalizeSerial(v)
	case KindMAC:
		return NormalizeMAC(v)
	case KindHostname:
		return NormalizeHostname(v)
	case KindEmail:
		return NormalizeEmail(v)
	}
	return "", false
}

// Clamp bounds a score to 0..100.
func Clamp(score int) int {
	return min(max(score, 0), 100)
}

// PartialError is what a Lookup returns, with the records it did find,
// when the vendor rejected only some of the values (a statement it refused
// with 400 or 414, a filter error): Values failed with Err, and the answer
// for every other value is complete. One odd identifier must not fail a
// whole batch.
type PartialError struct {
	// Values are the normalised query values that could not be looked up.
	Values []string
	Err    error
}

func (e *PartialError) Error() string {
	return fmt.Sprintf("%d of the values could not be looked up: %v", len(e.Values), e.Err)
}

func (e *PartialError) Unwrap() error { return e.Err }
