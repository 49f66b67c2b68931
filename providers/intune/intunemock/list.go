package intunemock

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// queryOptions are the OData system query options the mock understands on
// managedDevices; any other $option is rejected as Graph does.
var queryOptions = map[string]bool{"$filter": true, "$select": true, "$top": true, "$skiptoken": true, "$count": true, "$orderby": true}

// serveList answers GET deviceManagement/managedDevices.
func (s *Server) serveList(w http.ResponseWriter, r *http.Request, version string) {
	q := r.URL.Query()
	for k := range q {
		if strings.HasPrefix(k, "$") && !queryOptions[strings.ToLower(k)] {
			s.graphError(w, r, http.StatusBadRequest, "BadRequest", fmt.Sprintf("Query option '%s' is not allowed. To allow it, set the 'AllowedQueryOptions' property on EnableQueryAttribute or QueryValidationSettings.", k))
			return
		}
	}
	sel, selText, err := parseSelect(q.Get("$select"))
	if err != nil {
		s.graphError(w, r, http.StatusBadRequest, "BadRequest", err.Error())
		return
	}
	var filter *parsedFilter
	if f := q.Get("$filter"); f != "" {
		if filter, err = parseFilter(f, s.rules); err != nil {
			s.graphError(w, r, http.StatusBadRequest, "BadRequest", err.Error())
			return
		}
	}
	size := s.opts.PageSize
	if t := q.Get("$top"); t != "" {
		n, err := strconv.Atoi(t)
		if err != nil || n < 1 {
			s.graphError(w, r, http.StatusBadRequest, "BadRequest", fmt.Sprintf("Invalid value '%s' for $top query option found. The $top query option requires a non-negative integer value.", t))
			return
		}
		// $top only lowers the page size: Graph pages server-side at its
		// own maximum whatever a client asks for.
		size = min(n, s.opts.PageSize)
	}
	off, emptyPage := 0, s.opts.EmptyFirstPage
	if tok := q.Get("$skiptoken"); tok != "" {
		if off, err = decodeSkipToken(tok); err != nil {
			s.graphError(w, r, http.StatusBadRequest, "BadRequest", "The provided $skiptoken is invalid.")
			return
		}
		emptyPage = false
	}

	var matched []*ManagedDevice
	if cand := s.candidates(filter); cand != nil {
		for _, i := range cand {
			if filter.match(&s.devices[i], s.opts.CaseSensitive) {
				matched = append(matched, &s.devices[i])
			}
		}
	} else {
		for i := range s.devices {
			if filter.match(&s.devices[i], s.opts.CaseSensitive) {
				matched = append(matched, &s.devices[i])
			}
		}
	}
	off = min(off, len(matched))
	end := min(off+size, len(matched))
	next := -1
	if emptyPage {
		end, next = off, off
	} else if end < len(matched) {
		next = end
	}

	base := s.baseURL(r, version)
	var b strings.Builder
	ctx := base + "/$metadata#deviceManagement/managedDevices"
	if selText != "" {
		ctx += "(" + selText + ")"
	}
	b.WriteString(`{"@odata.context":`)
	writeString(&b, ctx)
	if version == "beta" {
		fmt.Fprintf(&b, `,"@odata.count":%d`, len(matched))
	}
	if next >= 0 {
		b.WriteString(`,"@odata.nextLink":`)
		writeString(&b, base+"/deviceManagement/managedDevices?"+withSkipToken(r.URL.RawQuery, encodeSkipToken(next)))
	}
	b.WriteString(`,"value":[`)
	for i, d := range matched[off:end] {
		if i > 0 {
			b.WriteByte(',')
		}
		renderDevice(&b, d, sel, true)
	}
	b.WriteString("]}")
	s.requestID(w, r)
	w.Header().Set("Content-Type", contentType)
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte(b.String()))
}

// serveGet answers GET deviceManagement/managedDevices/{id}, the only call
// that returns non-default properties.
func (s *Server) serveGet(w http.ResponseWriter, r *http.Request, version, id string) {
	i, ok := s.byID[strings.ToLower(id)]
	if !ok {
		s.graphError(w, r, http.StatusNotFound, "ResourceNotFound", fmt.Sprintf(`{"_version":3,"Message":"Resource not found - Operation ID (for customer support): 00000000-0000-0000-0000-000000000000 - Activity ID: %s - Url: https://fef.msua09.manage.microsoft.com/DeviceFE/StatelessDeviceFEService/deviceManagement/managedDevices('%s')","CustomApiErrorPhrase":"","RetryAfter":null,"ErrorSourceService":"","HttpHeaders":"{}"}`, newGUID(), id))
		return
	}
	sel, selText, err := parseSelect(r.URL.Query().Get("$select"))
	if err != nil {
		s.graphError(w, r, http.StatusBadRequest, "BadRequest", err.Error())
		return
	}
	ctx := s.baseURL(r, version) + "/$metadata#deviceManagement/managedDevices"
	if selText != "" {
		ctx += "(" + selText + ")"
	}
	ctx += "/$entity"
	var obj strings.Builder
	renderDevice(&obj, &s.devices[i], sel, false)
	var b strings.Builder
	b.WriteString(`{"@odata.context":`)
	writeString(&b, ctx)
	if rest := obj.String()[1:]; rest != "}" {
		b.WriteByte(',')
		b.WriteString(rest)
	} else {
		b.WriteByte('}')
	}
	s.requestID(w, r)
	w.Header().Set("Content-Type", contentType)
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte(b.String()))
}

// parseSelect resolves a $select list; properties come back in schema
// order whatever order they were asked in.
func parseSelect(v string) ([]*prop, string, error) {
	if strings.TrimSpace(v) == "" {
		return nil, "", nil
	}
	want := map[string]bool{}
	var names []string
	for _, f := range strings.Split(v, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		p := lookupProp(f)
		if p == nil {
			return nil, "", errf("Could not find a property named '%s' on type 'microsoft.graph.managedDevice'.", f)
		}
		if !want[p.name] {
			want[p.name] = true
			names = append(names, p.name)
		}
	}
	var out []*prop
	for i := range properties {
		if want[properties[i].name] {
			out = append(out, &properties[i])
		}
	}
	return out, strings.Join(names, ","), nil
}

// The skip token is opaque to clients; inside it is just an offset.
const skipTokenPrefix = "MockIntuneSkip:" // #nosec G101 -- a paging token prefix, not a credential

func encodeSkipToken(off int) string {
	return base64.RawURLEncoding.EncodeToString([]byte(skipTokenPrefix + strconv.Itoa(off)))
}

func decodeSkipToken(tok string) (int, error) {
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		return 0, err
	}
	n, ok := strings.CutPrefix(string(b), skipTokenPrefix)
	if !ok {
		return 0, fmt.Errorf("bad skip token")
	}
	off, err := strconv.Atoi(n)
	if err != nil || off < 0 {
		return 0, fmt.Errorf("bad skip token")
	}
	return off, nil
}

// withSkipToken keeps every original query parameter verbatim and sets
// $skiptoken, as Graph's nextLink does.
func withSkipToken(rawQuery, tok string) string {
	var parts []string
	for _, p := range strings.Split(rawQuery, "&") {
		if p == "" {
			continue
		}
		k, _, _ := strings.Cut(p, "=")
		if uk, err := url.QueryUnescape(k); err == nil && strings.EqualFold(uk, "$skiptoken") {
			continue
		}
		parts = append(parts, p)
	}
	return strings.Join(append(parts, "$skiptoken="+tok), "&")
}

func writeString(b *strings.Builder, s string) {
	b.Write(marshal(s))
}

// marshal encodes v as Graph does: no HTML escaping of & < >, which would
// make nextLinks unreadable.
func marshal(v any) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
	return bytes.TrimRight(b.Bytes(), "\n")
}
