package crowdstrikemock

import (
	"cmp"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// ztaAssessments serves GET /zero-trust-assessment/entities/assessments/v1
// with repeated (or comma-joined) ids. The API documents no id cap; the
// request-URI limit (414) is what stops absurd requests.
func (s *Server) ztaAssessments(c *call) {
	c.powered = "zero-trust-assessment"
	if s.opts.NoZTAScope {
		s.fail(c, http.StatusForbidden, "access denied, authorization failed")
		return
	}
	ids := requestIDs(c.r.URL.Query())
	c.entry.IDs = len(ids)
	if len(ids) == 0 {
		s.badRequest(c, "ids is required")
		return
	}
	found := make([]*Assessment, 0, len(ids))
	var missing []apiError
	seen := make(map[string]bool, len(ids))
	for _, id := range ids {
		if seen[id] {
			continue
		}
		seen[id] = true
		if a, ok := s.zta[id]; ok {
			found = append(found, a)
		} else {
			missing = append(missing, apiError{Code: http.StatusNotFound, Message: "No assessment found for aid " + id, ID: id})
		}
	}
	if len(missing) > 0 && !s.opts.ZTAOmitMissing {
		s.reply(c, http.StatusNotFound, nil, found, missing)
		return
	}
	s.reply(c, http.StatusOK, nil, found, nil)
}

type scoreEntry struct {
	AID   string `json:"aid"`
	Score int    `json:"score"`
}

type afterPaging struct {
	After string `json:"after,omitempty"`
	Limit int    `json:"limit"`
	Total int    `json:"total"`
}

// ztaProperty is the one property getAssessmentsByScoreV1 filters on.
func ztaProperty(prop string) (fieldType, bool) {
	return typeNumber, prop == "score"
}

// ztaQueries serves GET /zero-trust-assessment/queries/assessments/v1: a
// required FQL filter on score, limit 1..1000 (default 100), an opaque
// after token and sort score|asc or score|desc. It lists the assessments as
// they are now and its after token is a position in that order, so, as in
// Falcon, paging by score is no snapshot: a score that drifts between two
// pages can move its host across the cursor, skipped or listed twice.
func (s *Server) ztaQueries(c *call) {
	c.powered = "zero-trust-assessment"
	if s.opts.NoZTAScope {
		s.fail(c, http.StatusForbidden, "access denied, authorization failed")
		return
	}
	q := c.r.URL.Query()
	if q.Get("filter") == "" {
		s.badRequest(c, "filter is required")
		return
	}
	f, err := parseFilter(q.Get("filter"), ztaProperty)
	if err != nil {
		s.badRequest(c, "Invalid filter: %v", err)
		return
	}
	limit, err := intParam(q, "limit", defaultLimit, 1, maxZTAQueryLimit)
	if err != nil {
		s.badRequest(c, "%v", err)
		return
	}
	start := 0
	if after := q.Get("after"); after != "" {
		n, err := strconv.ParseInt(strings.TrimPrefix(after, "a"), 36, 64)
		if err != nil || !strings.HasPrefix(after, "a") || n < 0 {
			s.badRequest(c, "invalid after token")
			return
		}
		start = int(n)
	}
	listed := s.listing.get(s.zta)
	all := make([]scoreEntry, 0, len(listed))
	for _, e := range listed {
		score := strconv.Itoa(e.Score)
		if !slices.Contains(s.opts.ZTAListingSkips, e.AID) && f.match(func(string) []string { return []string{score} }, false) {
			all = append(all, e)
		}
	}
	switch q.Get("sort") {
	case "", "score|asc", "score.asc":
	case "score|desc", "score.desc":
		slices.Reverse(all)
	default:
		s.badRequest(c, "Invalid sort: %q", q.Get("sort"))
		return
	}
	end := min(start+limit, len(all))
	page := all[min(start, len(all)):end]
	paging := afterPaging{Limit: limit, Total: len(all)}
	if end < len(all) {
		paging.After = "a" + strconv.FormatInt(int64(end), 36)
	}
	s.reply(c, http.StatusOK, paging, page, nil)
}

// scoreListing is every assessment's overall score in listing order, score
// then AID ascending. It is built on first use and dropped whenever the
// assessments change (drift), as hostIndex is, so that a crawl of a large
// tenant does not sort every assessment again for each page.
type scoreListing struct {
	mu      sync.Mutex
	entries []scoreEntry
}

// reset drops the listing; the next page rebuilds it.
func (x *scoreListing) reset() {
	x.mu.Lock()
	x.entries = nil
	x.mu.Unlock()
}

func (x *scoreListing) get(zta map[string]*Assessment) []scoreEntry {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.entries == nil {
		x.entries = make([]scoreEntry, 0, len(zta))
		for _, a := range zta {
			x.entries = append(x.entries, scoreEntry{AID: a.AID, Score: a.Assessment.Overall})
		}
		slices.SortFunc(x.entries, func(a, b scoreEntry) int {
			return cmp.Or(cmp.Compare(a.Score, b.Score), strings.Compare(a.AID, b.AID))
		})
	}
	return x.entries
}
