package crowdstrikemock

import (
	"cmp"
	"net/http"
	"slices"
	"strconv"
	"strings"
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
// after token and sort score|asc or score|desc.
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
	var all []scoreEntry
	for _, a := range s.opts.Assessments {
		score := strconv.Itoa(a.Assessment.Overall)
		if f.match(func(string) []string { return []string{score} }, false) {
			all = append(all, scoreEntry{AID: a.AID, Score: a.Assessment.Overall})
		}
	}
	switch q.Get("sort") {
	case "", "score|asc", "score.asc":
		slices.SortStableFunc(all, func(a, b scoreEntry) int { return cmp.Compare(a.Score, b.Score) })
	case "score|desc", "score.desc":
		slices.SortStableFunc(all, func(a, b scoreEntry) int { return cmp.Compare(b.Score, a.Score) })
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
