package crowdstrikemock

import (
	"encoding/json"
	"maps"
	"net/url"
	"testing"

	"github.com/postured/postured/internal/fleet"
	"github.com/postured/postured/internal/mockkit"
)

// listAll pages the by-score listing to its end, as postured's crawl does.
func (h *harness) listAll() map[string]int {
	h.t.Helper()
	out := map[string]int{}
	after := ""
	for range 100 {
		q := url.Values{"filter": {"score:>=0"}, "limit": {"1000"}}
		if after != "" {
			q.Set("after", after)
		}
		resp, env := h.get("/zero-trust-assessment/queries/assessments/v1?" + q.Encode())
		if resp.StatusCode != 200 {
			h.t.Fatalf("listing: %d %v", resp.StatusCode, env.Errors)
		}
		var page []scoreEntry
		var pg afterPaging
		if err := json.Unmarshal(env.Resources, &page); err != nil {
			h.t.Fatal(err)
		}
		if err := json.Unmarshal(env.Meta.Pagination, &pg); err != nil {
			h.t.Fatal(err)
		}
		for _, e := range page {
			out[e.AID] = e.Score
		}
		if after = pg.After; after == "" {
			return out
		}
	}
	h.t.Fatal("listing does not end")
	return nil
}

func TestZTAListingSkips(t *testing.T) {
	hosts, zta := fixture(10)
	skipped := zta[1].AID
	h := newHarness(t, Options{Devices: hosts, Assessments: zta, ZTAListingSkips: []string{skipped}})
	listed := h.listAll()
	if _, ok := listed[skipped]; ok || len(listed) != len(zta)-1 {
		t.Fatalf("listing %v: want every assessment but %s", listed, skipped)
	}
	// The entities endpoint still has it: the host is assessed.
	resp, env := h.get("/zero-trust-assessment/entities/assessments/v1?ids=" + skipped)
	var got []Assessment
	_ = json.Unmarshal(env.Resources, &got)
	if resp.StatusCode != 200 || len(got) != 1 || got[0].Assessment.Overall != zta[1].Assessment.Overall {
		t.Fatalf("entities: %d %+v", resp.StatusCode, got)
	}
}

// TestZTAListingFollowsDrift: the listing is of the assessments as they
// are now, re-scored and re-enrolled hosts included, as the entities
// endpoint answers.
func TestZTAListingFollowsDrift(t *testing.T) {
	f := fleet.Generate(400, 5, fleetNow)
	v := newView(f)
	s := New(Options{Devices: v.hosts, Assessments: v.zta})
	l := &live{fleet: f, s: s, owners: v.owners, guard: mockkit.NewGuard(s)}
	h := serveHarness(t, s, l.guard)
	before := h.listAll() // builds the cached order
	var changes []fleet.Change
	for i := range 40 {
		changes = append(changes, fleet.Change{Index: i, Health: 100 - f.Devices[i].Health, LastSeen: fleetNow, Reenrolled: i%4 == 0, Rand: uint64(i)})
	}
	l.drift(changes)
	now := map[string]int{}
	for id, a := range s.zta {
		now[id] = a.Assessment.Overall
	}
	if maps.Equal(before, now) {
		t.Fatal("the drift changed no assessment: the test shows nothing")
	}
	if got := h.listAll(); !maps.Equal(got, now) {
		t.Errorf("listing after drift has %d scores, %d differ from the assessments' %d", len(got), differ(got, now), len(now))
	}
}

func differ(a, b map[string]int) int {
	n := 0
	for k, v := range b {
		if w, ok := a[k]; !ok || w != v {
			n++
		}
	}
	return n
}
