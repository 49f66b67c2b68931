package crowdstrikemock

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// queryPaging is meta.pagination of QueryDevicesByFilter: offset is the
// offset of the next page (falconpy samples/hosts/offset_vs_token.py loops
// on it), total the number of matches.
type queryPaging struct {
	Offset int `json:"offset"`
	Limit  int `json:"limit"`
	Total  int `json:"total"`
}

// scrollPaging is meta.pagination of the token-paged endpoints; Offset is
// empty on the last page.
type scrollPaging struct {
	Offset    string `json:"offset"`
	Limit     int    `json:"limit"`
	Total     int    `json:"total"`
	ExpiresAt int64  `json:"expires_at"`
	Next      string `json:"next,omitempty"`
}

// scrollState is one position in a scroll; every page issues a new token
// and the old ones stay valid until they idle out, so a retried page gives
// the same answer.
type scrollState struct {
	ids      []string
	pos      int
	endpoint string
	lastUsed time.Time
}

func (s *Server) badRequest(c *call, format string, args ...any) {
	s.fail(c, http.StatusBadRequest, fmt.Sprintf(format, args...))
}

func intParam(q url.Values, name string, def, lo, hi int) (int, error) {
	v := q.Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, fmt.Errorf("%s must be an integer between %d and %d, got %q", name, lo, hi, v)
	}
	return n, nil
}

// matchHosts filters and sorts the hosts; it returns their AIDs.
func (s *Server) matchHosts(c *call, q url.Values, defaultSort string) ([]string, bool) {
	f, err := parseFilter(q.Get("filter"), hostProperty)
	if err != nil {
		s.badRequest(c, "Invalid filter: %v", err)
		return nil, false
	}
	idx := s.matching(f)
	sortSpec := q.Get("sort")
	if sortSpec == "" {
		sortSpec = defaultSort
	}
	if sortSpec != "" {
		prop, dir, _ := strings.Cut(strings.ReplaceAll(sortSpec, "|", "."), ".")
		if !sortable(prop) || (dir != "" && dir != "asc" && dir != "desc") {
			s.badRequest(c, "Invalid sort: %q", sortSpec)
			return nil, false
		}
		slices.SortStableFunc(idx, func(a, b int) int {
			ka, kb := s.hosts[a].field(prop)[0], s.hosts[b].field(prop)[0]
			if dir == "desc" {
				return cmp.Compare(kb, ka)
			}
			return cmp.Compare(ka, kb)
		})
	}
	ids := make([]string, len(idx))
	for i, j := range idx {
		ids[i] = s.hosts[j].DeviceID
	}
	return ids, true
}

// queryDevices serves GET /devices/queries/devices/v1.
func (s *Server) queryDevices(c *call) {
	c.powered = "device-api"
	q := c.r.URL.Query()
	limit, err := intParam(q, "limit", defaultLimit, 1, maxQueryLimit)
	if err != nil {
		s.badRequest(c, "%v", err)
		return
	}
	offset, err := intParam(q, "offset", 0, 0, 1<<31-1)
	if err != nil {
		s.badRequest(c, "%v", err)
		return
	}
	if offset+limit > maxOffsetWindow {
		s.badRequest(c, "offset + limit must not exceed %d; use /devices/queries/devices-scroll/v1 for larger result sets", maxOffsetWindow)
		return
	}
	ids, ok := s.matchHosts(c, q, "")
	if !ok {
		return
	}
	page := ids[min(offset, len(ids)):min(offset+limit, len(ids))]
	s.reply(c, http.StatusOK, queryPaging{Offset: offset + len(page), Limit: limit, Total: len(ids)}, page, nil)
}

// scrollDevices serves GET /devices/queries/devices-scroll/v1.
func (s *Server) scrollDevices(c *call) {
	c.powered = "device-api"
	ids, paging, ok := s.scrollPage(c, "scrollDevices", maxScrollLimit, "")
	if !ok {
		return
	}
	s.reply(c, http.StatusOK, paging, ids, nil)
}

// combinedDevices serves GET /devices/combined/devices/v1: host records in
// one step, token-paged, with an optional fields projection.
func (s *Server) combinedDevices(c *call) {
	c.powered = "device-api"
	ids, paging, ok := s.scrollPage(c, "combinedDevices", maxScrollLimit, "device_id.asc")
	if !ok {
		return
	}
	paging.Next = paging.Offset
	hosts := make([]Host, len(ids))
	for i, id := range ids {
		hosts[i] = s.hosts[s.byID[id]]
	}
	fields := c.r.URL.Query().Get("fields")
	if fields == "" {
		s.reply(c, http.StatusOK, paging, hosts, nil)
		return
	}
	keep := strings.Split(fields, ",")
	out := make([]map[string]json.RawMessage, len(hosts))
	for i := range hosts {
		b, _ := json.Marshal(&hosts[i])
		var all map[string]json.RawMessage
		_ = json.Unmarshal(b, &all)
		out[i] = make(map[string]json.RawMessage, len(keep))
		for _, k := range keep {
			if v, ok := all[strings.TrimSpace(k)]; ok {
				out[i][strings.TrimSpace(k)] = v
			}
		}
	}
	s.reply(c, http.StatusOK, paging, out, nil)
}

// scrollPage runs one page of a token-paged host listing.
func (s *Server) scrollPage(c *call, endpoint string, maxLimit int, defaultSort string) ([]string, scrollPaging, bool) {
	q := c.r.URL.Query()
	limit, err := intParam(q, "limit", defaultLimit, 1, maxLimit)
	if err != nil {
		s.badRequest(c, "%v", err)
		return nil, scrollPaging{}, false
	}
	now := s.opts.Now()
	var st scrollState
	if tok := q.Get("offset"); tok != "" {
		s.mu.Lock()
		s.expireScrolls(now)
		cur, ok := s.scrolls[tok]
		if ok {
			cur.lastUsed = now
			st = *cur
		}
		s.mu.Unlock()
		if !ok || st.endpoint != endpoint {
			s.badRequest(c, "invalid or expired offset token")
			return nil, scrollPaging{}, false
		}
	} else {
		ids, ok := s.matchHosts(c, q, defaultSort)
		if !ok {
			return nil, scrollPaging{}, false
		}
		st = scrollState{ids: ids, endpoint: endpoint}
	}
	end := min(st.pos+limit, len(st.ids))
	page := st.ids[st.pos:end]
	paging := scrollPaging{Limit: limit, Total: len(st.ids), ExpiresAt: now.Add(s.opts.ScrollTTL).UnixNano()}
	if end < len(st.ids) {
		next := newToken()
		s.mu.Lock()
		s.expireScrolls(now)
		s.scrolls[next] = &scrollState{ids: st.ids, pos: end, endpoint: endpoint, lastUsed: now}
		s.mu.Unlock()
		paging.Offset = next
	}
	return page, paging, true
}

func (s *Server) expireScrolls(now time.Time) {
	for k, v := range s.scrolls {
		if now.Sub(v.lastUsed) > s.opts.ScrollTTL {
			delete(s.scrolls, k)
		}
	}
}

// requestIDs reads ids from repeated or comma-joined query parameters.
func requestIDs(q url.Values) []string {
	var ids []string
	for _, v := range q["ids"] {
		for id := range strings.SplitSeq(v, ",") {
			if id = strings.TrimSpace(id); id != "" {
				ids = append(ids, id)
			}
		}
	}
	return ids
}

// deviceEntities serves GET (ids in the query, at most 100) and POST (JSON
// body {"ids": [...]}, at most 5000) /devices/entities/devices/v2.
func (s *Server) deviceEntities(c *call) {
	c.powered = "device-api"
	var ids []string
	max := maxGetIDs
	if c.r.Method == http.MethodPost {
		max = maxPostIDs
		var body struct {
			IDs []string `json:"ids"`
		}
		b, err := io.ReadAll(io.LimitReader(c.r.Body, 1<<20))
		if err != nil || json.Unmarshal(b, &body) != nil {
			s.badRequest(c, "invalid request body, expected {\"ids\": [...]}")
			return
		}
		ids = body.IDs
	} else {
		ids = requestIDs(c.r.URL.Query())
	}
	c.entry.IDs = len(ids)
	switch {
	case len(ids) == 0:
		s.badRequest(c, "ids is required")
		return
	case len(ids) > max:
		s.badRequest(c, "too many ids: %d requested, the maximum is %d", len(ids), max)
		return
	}
	found := make([]Host, 0, len(ids))
	var missing []apiError
	seen := make(map[string]bool, len(ids))
	for _, id := range ids {
		if seen[id] {
			continue
		}
		seen[id] = true
		if i, ok := s.byID[id]; ok {
			found = append(found, s.hosts[i])
		} else {
			missing = append(missing, apiError{Code: http.StatusNotFound, Message: "Device not found", ID: id})
		}
	}
	if len(missing) > 0 && s.opts.HostsMissing == MissingNotFound {
		s.reply(c, http.StatusNotFound, nil, found, missing)
		return
	}
	s.reply(c, http.StatusOK, nil, found, nil)
}

type onlineState struct {
	ID       string `json:"id"`
	CID      string `json:"cid"`
	State    string `json:"state"`
	LastSeen string `json:"last_seen,omitempty"`
}

// onlineState serves GET /devices/entities/online-state/v1.
func (s *Server) onlineState(c *call) {
	c.powered = "device-api"
	ids := requestIDs(c.r.URL.Query())
	c.entry.IDs = len(ids)
	if len(ids) == 0 || len(ids) > maxGetIDs {
		s.badRequest(c, "between 1 and %d ids are required, got %d", maxGetIDs, len(ids))
		return
	}
	now := s.opts.Now()
	out := make([]onlineState, 0, len(ids))
	for _, id := range ids {
		i, ok := s.byID[id]
		if !ok {
			continue
		}
		h := &s.hosts[i]
		st := onlineState{ID: id, CID: h.CID, State: "unknown", LastSeen: h.LastSeen}
		if t, err := parseTime(h.LastSeen); err == nil {
			st.State = "offline"
			if now.Sub(t) < 10*time.Minute {
				st.State = "online"
			}
		}
		out = append(out, st)
	}
	s.reply(c, http.StatusOK, nil, out, nil)
}
