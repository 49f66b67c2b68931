package crowdstrike

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/postured/postured/internal/fleet"
	"github.com/postured/postured/providers"
	"github.com/postured/postured/providers/crowdstrike/crowdstrikemock"
)

// byID sorts records so that two crawls compare entry by entry.
func byID(recs []providers.Record) []providers.Record {
	slices.SortFunc(recs, func(a, b providers.Record) int { return strings.Compare(a.ID, b.ID) })
	return recs
}

// TestListMatchesPerIDPath: List, with the scores from the by-score
// listing, returns exactly the records the per-id assessments give the same
// hosts, in far fewer calls: one listing page per 1000 assessments, and by
// id only the hosts the listing lacks.
func TestListMatchesPerIDPath(t *testing.T) {
	generated := func(n int) crowdstrikemock.Options {
		f := fleet.Generate(n, 7, time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC))
		return crowdstrikemock.Options{Devices: crowdstrikemock.FleetHosts(f), Assessments: crowdstrikemock.FleetAssessments(f)}
	}
	allAssessed := func(n int) crowdstrikemock.Options {
		opts, _ := bulkOpts(n)
		for i := 1; i < n; i += 2 {
			opts.Assessments = append(opts.Assessments, crowdstrikemock.Assessment{AID: aid(i), Assessment: crowdstrikemock.Scores{Overall: 1 + i%100}})
		}
		return opts
	}
	tests := []struct {
		name string
		opts func() crowdstrikemock.Options
	}{
		{"sample tenant", sampleOpts},
		{"sample tenant, ZTA omits unassessed", func() crowdstrikemock.Options {
			o := sampleOpts()
			o.ZTAOmitMissing = true
			return o
		}},
		{"assessments of hosts not crawled are ignored", func() crowdstrikemock.Options {
			o := sampleOpts()
			o.Assessments = append(o.Assessments, crowdstrikemock.Assessment{AID: aid(99), Assessment: crowdstrikemock.Scores{Overall: 12}})
			return o
		}},
		{"generated fleet", func() crowdstrikemock.Options { return generated(3000) }},
		{"generated fleet, some hosts skipped by the listing", func() crowdstrikemock.Options {
			o := generated(3000)
			for _, a := range o.Assessments[:150] {
				o.ZTAListingSkips = append(o.ZTAListingSkips, a.AID)
			}
			return o
		}},
		// Were List to ask for every host's assessment again, this one
		// would make 25 calls by id instead of none.
		{"every host assessed", func() crowdstrikemock.Options { return allAssessed(2500) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			opts := tc.opts()
			e := newEnv(t, opts, nil)
			ctx := t.Context()
			hosts, err := e.p.combined(ctx, "list devices", "")
			if err != nil {
				t.Fatal(err)
			}
			want, err := e.p.records(ctx, hosts)
			if err != nil {
				t.Fatal(err)
			}

			e.mock.ResetRequests()
			got, err := e.p.List(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(want) {
				t.Fatalf("%d records, per-id path %d", len(got), len(want))
			}
			want, got = byID(want), byID(got)
			for i := range want {
				if !reflect.DeepEqual(got[i], want[i]) {
					t.Errorf("record %d:\n got %+v\nwant %+v", i, got[i], want[i])
				}
			}

			listed := map[string]bool{}
			for _, a := range opts.Assessments {
				listed[a.AID] = !slices.Contains(opts.ZTAListingSkips, a.AID)
			}
			unlisted := map[string]bool{}
			for _, h := range opts.Devices {
				if !listed[h.DeviceID] {
					unlisted[h.DeviceID] = true
				}
			}
			ceil := func(a, b int) int { return (a + b - 1) / b }
			wantCalls := map[string]int{
				"ztaQueries":     max(1, ceil(len(opts.Assessments)-len(opts.ZTAListingSkips), maxScoresLimit)),
				"ztaAssessments": ceil(len(unlisted), maxZTAIDs),
			}
			for k, n := range wantCalls {
				if got := e.mock.Calls.Get(k); got != n {
					t.Errorf("%s calls = %d, want %d", k, got, n)
				}
			}
			asked := 0
			for _, r := range e.mock.Requests() {
				if r.Endpoint == "ztaAssessments" {
					asked += r.IDs
				}
			}
			if asked != len(unlisted) {
				t.Errorf("assessments asked for %d hosts by id, want the %d the listing lacks", asked, len(unlisted))
			}
		})
	}
}

// TestListHostSkippedByListing: a host the listing leaves out although it
// is assessed, as one whose score moved across the cursor mid-crawl, is
// scored from its assessment; only the entities endpoint makes a host
// unassessed.
func TestListHostSkippedByListing(t *testing.T) {
	for _, omit := range []bool{false, true} {
		t.Run(fmt.Sprintf("ZTAOmitMissing=%v", omit), func(t *testing.T) {
			opts := sampleOpts()
			opts.ZTAOmitMissing = omit
			opts.ZTAListingSkips = []string{aid(0), aid(5)}
			e := newEnv(t, opts, nil)
			recs, err := e.p.List(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]string{}
			for _, r := range recs {
				got[r.ID] = fmt.Sprintf("%d %s", r.Score, r.Reason)
			}
			for id, want := range map[string]string{
				aid(0): "83 status=normal zta.overall=83",
				aid(5): "64 status=normal zta.overall=64",
				aid(3): "50 status=normal zta=unassessed",
				aid(4): "95 status=normal zta.overall=95",
			} {
				if got[id] != want {
					t.Errorf("%s: %q, want %q", id, got[id], want)
				}
			}
			// aid(0) and aid(5), skipped; aid(3), aid(8) and aid(9),
			// unassessed: one call by id.
			var asked []int
			for _, r := range e.mock.Requests() {
				if r.Endpoint == "ztaAssessments" {
					asked = append(asked, r.IDs)
				}
			}
			if !slices.Equal(asked, []int{5}) {
				t.Errorf("calls by id carried %v hosts, want [5]", asked)
			}
		})
	}
}

// scorePage is one answer of a scripted by-score listing.
type scorePage struct {
	scores []listedScore
	paging tokenPaging
}

// newScriptedEnv is newEnv over sampleOpts with the by-score listing
// answered by page(n) for its n-th call instead of the mock. From the 50th
// call on it answers a last page, so a client that does not stop paging
// ends with a wrong result rather than a hang.
func newScriptedEnv(t *testing.T, page func(n int) scorePage, logs *bytes.Buffer) *env {
	t.Helper()
	opts := sampleOpts()
	opts.ClientID, opts.ClientSecret = "falcon-client", testSecret
	e := &env{mock: crowdstrikemock.New(opts)}
	var served atomic.Int64 // one request at a time, but on the server's goroutines
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != scoresPath {
			e.mock.ServeHTTP(w, r)
			return
		}
		n := int(served.Add(1)) - 1
		pg := page(n)
		if n >= 50 {
			pg = scorePage{paging: tokenPaging{Limit: 1000, Total: 1}}
		}
		body, err := json.Marshal(map[string]any{
			"meta":      map[string]any{"trace_id": "scripted", "pagination": pg.paging},
			"resources": pg.scores,
			"errors":    []any{},
		})
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	}))
	t.Cleanup(e.srv.Close)
	cfg := testConfig(e.srv.URL)
	cfg.Defaults()
	p, err := New(cfg, providers.Deps{Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	e.p = p
	return e
}

func score(id string, n int) listedScore { return listedScore{AID: id, Score: &n} }

func TestListScoresPaging(t *testing.T) {
	tests := []struct {
		name    string
		page    func(n int) scorePage
		wantErr string
		// want is the record of aid(0) when the crawl succeeds; log a
		// line the debug log must carry.
		want string
		log  string
	}{
		{
			name: "same token twice",
			page: func(int) scorePage {
				return scorePage{scores: []listedScore{score(aid(0), 83)}, paging: tokenPaging{After: "t1", Limit: 1000, Total: 1_000_000}}
			},
			wantErr: "falcon: list zta scores: paging does not advance",
		},
		{
			name: "more pages than the total allows",
			page: func(n int) scorePage {
				return scorePage{scores: []listedScore{score(aid(0), 83)}, paging: tokenPaging{After: fmt.Sprint("t", n), Limit: 1000, Total: 1}}
			},
			wantErr: "falcon: list zta scores: paging does not advance",
		},
		{
			name: "a host listed twice",
			page: func(n int) scorePage {
				if n == 0 {
					return scorePage{scores: []listedScore{score(aid(0), 83)}, paging: tokenPaging{After: "t1", Limit: 1000, Total: 2}}
				}
				return scorePage{scores: []listedScore{score(aid(0), 85)}, paging: tokenPaging{Limit: 1000, Total: 2}}
			},
			want: "85 status=normal zta.overall=85",
			log:  "duplicates=1",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var logs bytes.Buffer
			e := newScriptedEnv(t, tc.page, &logs)
			recs, err := e.p.List(t.Context())
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for _, r := range recs {
				if r.ID == aid(0) {
					n++
					if got := fmt.Sprintf("%d %s", r.Score, r.Reason); got != tc.want {
						t.Errorf("aid(0): %q, want %q", got, tc.want)
					}
				}
			}
			if n != 1 {
				t.Errorf("%d records of aid(0), want 1", n)
			}
			if !strings.Contains(logs.String(), tc.log) {
				t.Errorf("debug log lacks %q:\n%s", tc.log, logs.String())
			}
		})
	}
	t.Run("no zta scope", func(t *testing.T) {
		opts := sampleOpts()
		opts.NoZTAScope = true
		e := newEnv(t, opts, nil)
		_, err := e.p.List(context.Background())
		if err == nil || !strings.Contains(err.Error(), "falcon: list zta scores") || !strings.Contains(err.Error(), "403") {
			t.Fatalf("err = %v, want the listing's 403", err)
		}
	})
}
