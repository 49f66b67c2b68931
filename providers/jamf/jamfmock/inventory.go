package jamfmock

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// listSpec describes one paged, filterable inventory listing.
type listSpec[T any] struct {
	name         string   // the listing, naming its index
	indexed      []string // the selectors its index covers
	sections     []section
	defaultSort  string
	filterFields []string
	sortFields   []string
	get          func(*T) getter
	render       func(*T, map[string]bool) object
}

func (s *Server) computersInventory(w http.ResponseWriter, r *http.Request) {
	v4, ok := s.computerVersion(r.PathValue("version"))
	if !ok {
		s.notFound(w)
		return
	}
	s.Calls.Inc("computersInventory")
	if _, ok := s.authorize(w, r); !ok {
		return
	}
	spec := listSpec[Computer]{
		name:         "computers",
		indexed:      computerIndexed,
		sections:     computerSections,
		defaultSort:  "general.name:asc",
		filterFields: computerFilterFields,
		sortFields:   computerSortFields,
		get:          func(c *Computer) getter { return computerGetter(c, v4) },
		render:       func(c *Computer, secs map[string]bool) object { return renderComputer(c, secs, v4) },
	}
	if v4 {
		spec.filterFields, spec.sortFields = v4Fields(computerFilterFields), v4Fields(computerSortFields)
	}
	serveList(s, w, r, s.opts.Computers, spec)
}

func (s *Server) mobileDevicesDetail(w http.ResponseWriter, r *http.Request) {
	s.Calls.Inc("mobileDevicesDetail")
	if _, ok := s.authorize(w, r); !ok {
		return
	}
	if s.opts.NoMobilePrivilege {
		forbidden(w)
		return
	}
	serveList(s, w, r, s.opts.MobileDevices, listSpec[MobileDevice]{
		name:         "mobiles",
		indexed:      mobileIndexed,
		sections:     mobileSections,
		defaultSort:  "displayName:asc",
		filterFields: mobileFilterFields,
		sortFields:   mobileSortFields,
		get:          mobileGetter,
		render:       renderMobile,
	})
}

// serveList answers a listing: parameters, filter, fault, sort, page.
func serveList[T any](s *Server, w http.ResponseWriter, r *http.Request, items []T, spec listSpec[T]) {
	q := r.URL.Query()
	page, size, err := s.paging(q)
	if err != nil {
		badRequest(w, err.Error(), "")
		return
	}
	secs, err := parseSections(q["section"], spec.sections)
	if err != nil {
		badRequest(w, err.Error(), "section")
		return
	}
	keys, err := parseSort(q["sort"], spec.defaultSort, spec.sortFields)
	if err != nil {
		badRequest(w, err.Error(), "sort")
		return
	}
	var filter expr
	if f := q.Get("filter"); f != "" {
		if filter, err = parseFilter(f); err != nil {
			if s.opts.SyntaxError500 {
				writeError(w, http.StatusInternalServerError)
				return
			}
			badRequest(w, "Invalid RSQL filter: "+err.Error(), "filter")
			return
		}
		if bad := unknownSelector(filter, spec.filterFields); bad != "" {
			badRequest(w, fmt.Sprintf("Cannot filter by field [%s]. Fields that can be used in filtering results of this endpoint: [%s]",
				bad, strings.Join(spec.filterFields, ", ")), "")
			return
		}
	}
	if s.fault(w, page > 0) {
		return
	}
	match := matching(&s.index, items, spec, filter)
	slices.SortStableFunc(match, func(a, b *T) int {
		ga, gb := spec.get(a), spec.get(b)
		for _, k := range keys {
			va, aok := ga(k.field)
			vb, bok := gb(k.field)
			if c := compareValues(va, aok, vb, bok); c != 0 {
				if k.desc {
					return -c
				}
				return c
			}
		}
		return 0
	})
	results := []any{}
	if page <= len(match)/size {
		for _, it := range match[min(page*size, len(match)):min(page*size+size, len(match))] {
			results = append(results, spec.render(it, secs))
		}
	}
	writeJSON(w, http.StatusOK, object{{"totalCount", len(match)}, {"results", results}})
}

// computer serves GET /api/vN/computers-inventory/{id} (requested sections)
// and /computers-inventory-detail/{id} (every section).
func (s *Server) computer(w http.ResponseWriter, r *http.Request) {
	v4, ok := s.computerVersion(r.PathValue("version"))
	if !ok {
		s.notFound(w)
		return
	}
	s.Calls.Inc("computer")
	if _, ok := s.authorize(w, r); !ok {
		return
	}
	secs := allSections(computerSections)
	if !strings.Contains(r.URL.Path, "-detail/") {
		var err error
		if secs, err = parseSections(r.URL.Query()["section"], computerSections); err != nil {
			badRequest(w, err.Error(), "section")
			return
		}
	}
	if s.fault(w, false) {
		return
	}
	id := r.PathValue("id")
	for i := range s.opts.Computers {
		if c := &s.opts.Computers[i]; c.ID == id {
			writeJSON(w, http.StatusOK, renderComputer(c, secs, v4))
			return
		}
	}
	notFound(w, "Computer", id)
}

func (s *Server) mobileDevice(w http.ResponseWriter, r *http.Request) {
	s.Calls.Inc("mobileDevice")
	if _, ok := s.authorize(w, r); !ok {
		return
	}
	if s.opts.NoMobilePrivilege {
		forbidden(w)
		return
	}
	if s.fault(w, false) {
		return
	}
	id := r.PathValue("id")
	for i := range s.opts.MobileDevices {
		if m := &s.opts.MobileDevices[i]; m.MobileDeviceID == id {
			writeJSON(w, http.StatusOK, renderMobile(m, allSections(mobileSections)))
			return
		}
	}
	notFound(w, "Mobile device", id)
}

// computerVersion accepts the computer inventory API versions the release
// serves, out of those Jamf has had: v1, v2 and v3 (one shape) and v4
// (which renames lastContactTime).
func (s *Server) computerVersion(v string) (v4, ok bool) {
	if !s.opts.Release.serves(v) {
		return false, false
	}
	switch v {
	case "v1", "v2", "v3":
		return false, true
	case "v4":
		return true, true
	}
	return false, false
}

func (s *Server) paging(q url.Values) (page, size int, err error) {
	size = s.opts.DefaultPageSize
	if v := q.Get("page"); v != "" {
		if page, err = strconv.Atoi(v); err != nil || page < 0 {
			return 0, 0, fmt.Errorf("page must be a non-negative integer, got %q", v)
		}
	}
	if v := q.Get("page-size"); v != "" {
		if size, err = strconv.Atoi(v); err != nil || size < 1 {
			return 0, 0, fmt.Errorf("page-size must be a positive integer, got %q", v)
		}
	}
	return page, min(size, s.opts.MaxPageSize), nil
}

// parseSections reads repeated (or comma-separated, as Spring binds them)
// section parameters; none means GENERAL.
func parseSections(vals []string, known []section) (map[string]bool, error) {
	out := map[string]bool{}
	for _, v := range vals {
		for name := range strings.SplitSeq(v, ",") {
			name = strings.TrimSpace(name)
			if !slices.ContainsFunc(known, func(s section) bool { return s.name == name }) {
				return nil, paramError(fmt.Sprintf("Unknown section [%s]", name))
			}
			out[name] = true
		}
	}
	if len(out) == 0 {
		out["GENERAL"] = true
	}
	return out, nil
}

func allSections(known []section) map[string]bool {
	out := make(map[string]bool, len(known))
	for _, s := range known {
		out[s.name] = true
	}
	return out
}

type sortKey struct {
	field string
	desc  bool
}

// parseSort reads "field:asc,other:desc" (repeated or comma-separated).
func parseSort(vals []string, def string, allowed []string) ([]sortKey, error) {
	if len(vals) == 0 {
		vals = []string{def}
	}
	var keys []sortKey
	for _, v := range vals {
		for term := range strings.SplitSeq(v, ",") {
			f, dir, _ := strings.Cut(strings.TrimSpace(term), ":")
			if !slices.Contains(allowed, f) {
				return nil, paramError(fmt.Sprintf("Cannot sort by field [%s]. Fields that can be used in sorting results of this endpoint: [%s]",
					f, strings.Join(allowed, ", ")))
			}
			switch strings.ToLower(dir) {
			case "", "asc":
				keys = append(keys, sortKey{field: f})
			case "desc":
				keys = append(keys, sortKey{field: f, desc: true})
			default:
				return nil, paramError(fmt.Sprintf("Invalid sort direction [%s]", dir))
			}
		}
	}
	return keys, nil
}

// paramError is a request problem worded the way Jamf words it in the
// description of a 400.
type paramError string

func (e paramError) Error() string { return string(e) }

func unknownSelector(e expr, allowed []string) string {
	bad := ""
	e.selectors(func(sel string) {
		if bad == "" && !slices.Contains(allowed, sel) {
			bad = sel
		}
	})
	return bad
}

func badRequest(w http.ResponseWriter, desc, fieldName string) {
	e := apiError{Description: desc, ID: "0"}
	if fieldName != "" {
		e.Field = &fieldName
	}
	writeError(w, http.StatusBadRequest, e)
}

func notFound(w http.ResponseWriter, what, id string) {
	writeError(w, http.StatusNotFound, apiError{Code: code("INVALID_ID"), Description: what + " not found", ID: id})
}

func forbidden(w http.ResponseWriter) {
	writeError(w, http.StatusForbidden, apiError{Code: code("INVALID_PRIVILEGE"), Description: "Forbidden", ID: "0"})
}

// generalV4 is the v4 GENERAL section: lastContactTime became lastCheckIn.
type generalV4 struct {
	*General
	LastContactTime *struct{} `json:"lastContactTime,omitempty"` // hides the v3 name
	LastCheckIn     *string   `json:"lastCheckIn"`
}

func renderComputer(c *Computer, secs map[string]bool, v4 bool) object {
	o := object{{"id", c.ID}, {"udid", c.UDID}}
	for _, sec := range computerSections {
		var v any
		if secs[sec.name] {
			v = computerSection(c, sec, v4)
		}
		o = append(o, field{sec.key, v})
	}
	return o
}

func computerSection(c *Computer, sec section, v4 bool) any {
	switch sec.name {
	case "GENERAL":
		if c.General == nil {
			return nil
		}
		if v4 {
			return generalV4{General: c.General, LastCheckIn: c.General.LastContactTime}
		}
		return c.General
	case "DISK_ENCRYPTION":
		return nullable(c.DiskEncryption)
	case "USER_AND_LOCATION":
		return nullable(c.UserAndLocation)
	case "HARDWARE":
		return nullable(c.Hardware)
	case "SECURITY":
		return nullable(c.Security)
	case "OPERATING_SYSTEM":
		return nullable(c.OperatingSystem)
	}
	return emptySection(sec)
}

func renderMobile(m *MobileDevice, secs map[string]bool) object {
	o := object{{"mobileDeviceId", m.MobileDeviceID}, {"deviceType", m.DeviceType}}
	for _, sec := range mobileSections {
		var v any
		if secs[sec.name] {
			switch sec.name {
			case "GENERAL":
				v = nullable(m.General)
			case "HARDWARE":
				v = nullable(m.Hardware)
			case "USER_AND_LOCATION":
				v = nullable(m.UserAndLocation)
			case "SECURITY":
				v = nullable(m.Security)
			default:
				v = emptySection(sec)
			}
		}
		o = append(o, field{sec.key, v})
	}
	return o
}

// nullable turns a nil section pointer into an untyped nil (JSON null).
func nullable[T any](p *T) any {
	if p == nil {
		return nil
	}
	return p
}

// emptySection is a requested section the mock does not model.
func emptySection(sec section) any {
	if sec.listSection {
		return []any{}
	}
	return object{}
}
