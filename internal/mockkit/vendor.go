package mockkit

import (
	"net/http"
	"time"

	"github.com/postured/postured/internal/fleet"
	"github.com/postured/postured/providers"
)

// Vendor is everything a vendor's mock package offers the rest of the
// tree: internal/mockset serves, configures and counts it from this alone,
// and the end-to-end tests score the fleet against Expected. Each mock
// package builds one over a fleet with its Vendor function.
type Vendor struct {
	// Name is the postured provider type, the provider's name in the demo
	// configuration and the mock's path prefix (/<Name>).
	Name string
	// Handler serves the vendor's API as if mounted at its base URL.
	Handler http.Handler
	// Faults are injected into the vendor API requests (not token
	// requests); Calls counts every request the mock served.
	Faults *Faults
	Calls  *Counter
	// ExpireTokens makes every token the mock issued so far expired.
	ExpireTokens func()
	// Config is the vendor's provider entry in the demo configuration, for
	// a mock whose Handler is served at root.
	Config func(root string) ProviderConfig
	// Expected is the vendor's answer for each fleet device it holds, by
	// fleet.Device.Index.
	Expected map[int]Expected
	// BatchCalls is the most vendor calls one 1000-device batch may cost
	// in query mode with a cold cache (the README's per-vendor numbers).
	BatchCalls int
	// Drift applies a drift tick's changes to the vendor's records, safely
	// while Handler serves. Expected keeps describing the generated fleet;
	// Current describes the records as they are now, what postured must
	// answer once its cache and syncs catch up.
	Drift   func([]fleet.Change)
	Current func() map[int]Expected
}

// ProviderConfig is a vendor's provider entry in the demo configuration,
// apart from what every entry shares (name, type, demo-wide policies).
type ProviderConfig struct {
	Weight int
	Mode   providers.Mode
	// Settings are the vendor's own keys (base_url, credentials), in the
	// order they are written.
	Settings []Setting
}

// Setting is one key of a provider entry.
type Setting struct {
	Key, Value string
	// Secret values must never appear in postured's logs.
	Secret bool
}

// Expected is what postured must answer for one device from one vendor,
// worked out from the vendor's own record fields by design.md's scoring
// table, never by the provider's code.
type Expected struct {
	// ID is the id of the device's most recently seen record: the s2s_id
	// when this vendor decides it.
	ID string
	// Score is that record's score before max_last_seen applies, and
	// LastSeen what max_last_seen is checked against.
	Score    int
	LastSeen time.Time
	// Older are the ids of the device's superseded (re-enrolment) records.
	Older []string
}

// Latest folds a vendor's records, each scored and attributed to the fleet
// device it describes (owner), into Expected: per device, the most recently
// seen record decides, as postured's matching does, and the others are
// Older.
func Latest(records []Scored) map[int]Expected {
	out := make(map[int]Expected)
	for _, r := range records {
		cur, ok := out[r.Owner]
		switch {
		case !ok:
			out[r.Owner] = Expected{ID: r.ID, Score: r.Score, LastSeen: r.LastSeen}
		case r.LastSeen.After(cur.LastSeen):
			cur.Older = append(cur.Older, cur.ID)
			cur.ID, cur.Score, cur.LastSeen = r.ID, r.Score, r.LastSeen
			out[r.Owner] = cur
		default:
			cur.Older = append(cur.Older, r.ID)
			out[r.Owner] = cur
		}
	}
	return out
}

// Scored is one vendor record as Latest reads it.
type Scored struct {
	Owner    int
	ID       string
	Score    int
	LastSeen time.Time
}
