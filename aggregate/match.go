package aggregate

import (
	"fmt"
	"slices"
	"strings"

	"github.com/postured/postured/providers"
)

// deviceKeys holds a device's normalised identifiers, indexed by Kind; ""
// means the device has no usable value of that kind.
type deviceKeys [len(providers.Kinds)]string

func normalizeDevice(d Device) deviceKeys {
	var k deviceKeys
	k[providers.KindSerial], _ = providers.NormalizeSerial(d.Serial)
	k[providers.KindMAC], _ = providers.NormalizeMAC(d.MAC)
	k[providers.KindHostname], _ = providers.NormalizeHostname(d.Hostname)
	k[providers.KindEmail], _ = providers.NormalizeEmail(d.Email)
	return k
}

// value is the device's key of kind k. Email is a key only for a device
// that sent no hardware identifier: when a device has a serial, MAC or
// hostname and none of them finds a record, the vendor does not know this
// device, and the one record its user has there belongs to another of the
// user's devices (their phone must not vouch for their laptop).
func (k *deviceKeys) value(kind providers.Kind) string {
	if kind == providers.KindEmail && (k[providers.KindSerial] != "" || k[providers.KindMAC] != "" || k[providers.KindHostname] != "") {
		return ""
	}
	return k[kind]
}

// outcome is what one provider knows about one device.
type outcome struct {
	// rec is the matched record, shared with the cache or the index:
	// never modified.
	rec        *providers.Record
	kind       providers.Kind // the key that matched
	value      string
	candidates int // distinct records carrying that key
	// stale: rec came from an expired cache entry because the lookup failed.
	stale bool
	// err: a lookup this device needed failed. With rec set, the device
	// still matched (on stale data or on a lower-priority key).
	err   error
	tried kindSet
	notes []string
}

// kindSet is a set of kinds. Kinds are tried in priority order, so the set
// lists them in the order they were tried.
type kindSet uint8

func (ks *kindSet) add(k providers.Kind) { *ks |= 1 << k }

// String lists the kinds, comma-separated, in priority order.
func (ks kindSet) String() string {
	var b strings.Builder
	for _, k := range providers.Kinds {
		if ks&(1<<k) != 0 {
			if b.Len() > 0 {
				b.WriteByte(',')
			}
			b.WriteString(k.String())
		}
	}
	return b.String()
}

// pick chooses the record for a device among those carrying value v of
// kind. Several records for a serial, MAC or hostname are one device
// enrolled more than once: the most recently seen wins. Several records for
// an email are several devices of one user: ambiguous, so no match.
//
// A MAC, hostname or email is easy to copy; a serial is not. So when the
// device sent a usable serial (devSerial) and the record a weaker key
// selects carries usable serials, none of them that one, the record is
// another machine: the match is refused (a "conflict"), and matching goes
// on with the next key kind. Without this, renaming a laptop after a
// healthy one would borrow that one's score and s2s_id.
//
// requireEmail (require_email_match_for) goes further for a weak key: the
// record must carry the email the device sent, so a device without a
// usable serial cannot borrow another user's machine either.
func pick(o *outcome, kind providers.Kind, v string, recs []providers.Record, dev *deviceKeys, requireEmail bool) {
	var best *providers.Record
	ids := 0
	var seen map[string]bool // only for a long list; nearly always one record
	if len(recs) > 8 {
		seen = make(map[string]bool, len(recs))
	}
	for i := range recs {
		r := &recs[i]
		if seen != nil && seen[r.ID] || seen == nil && listedBefore(recs, i) {
			continue // one record under two of a device's values
		}
		if seen != nil {
			seen[r.ID] = true
		}
		ids++
		if best == nil || newer(r, best) {
			best = r
		}
	}
	if best == nil {
		return
	}
	if kind == providers.KindEmail && ids > 1 {
		o.notes = append(o.notes, fmt.Sprintf("email %s has %d records: ambiguous, not used", v, ids))
		return
	}
	devSerial := dev[providers.KindSerial]
	if kind != providers.KindSerial && devSerial != "" && len(best.Serials) > 0 && !slices.Contains(best.Serials, devSerial) {
		o.notes = append(o.notes, fmt.Sprintf("conflict: %s %s selects record %s with serial %s, but the device sent serial %s: not used",
			kind, v, best.ID, strings.Join(best.Serials, ","), devSerial))
		return
	}
	if requireEmail {
		switch email := dev[providers.KindEmail]; {
		case email == "":
			o.notes = append(o.notes, fmt.Sprintf("%s %s selects record %s, but the device sent no email (require_email_match_for): not used", kind, v, best.ID))
			return
		case !slices.Contains(best.Emails, email):
			o.notes = append(o.notes, fmt.Sprintf("%s %s selects record %s, which does not carry the device's email %s (require_email_match_for): not used", kind, v, best.ID, email))
			return
		}
	}
	o.rec, o.kind, o.value, o.candidates = best, kind, v, ids
}

// listedBefore reports whether a record before recs[i] has its id.
func listedBefore(recs []providers.Record, i int) bool {
	for j := range i {
		if recs[j].ID == recs[i].ID {
			return true
		}
	}
	return false
}

// newer orders records by last seen, then by id so the choice is stable.
func newer(a, b *providers.Record) bool {
	if !a.LastSeen.Equal(b.LastSeen) {
		return a.LastSeen.After(b.LastSeen)
	}
	return a.ID < b.ID
}
