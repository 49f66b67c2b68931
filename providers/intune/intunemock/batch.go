package intunemock

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
)

// batchBaseKey carries, on a $batch item's request, the absolute URL of the
// API version the batch was sent to.
type batchBaseKey struct{}

type batchRequest struct {
	Requests []batchItem `json:"requests"`
}

type batchItem struct {
	ID        string            `json:"id"`
	Method    string            `json:"method"`
	URL       string            `json:"url"`
	Headers   map[string]string `json:"headers,omitempty"`
	Body      json.RawMessage   `json:"body,omitempty"`
	DependsOn []string          `json:"dependsOn,omitempty"`
}

type batchAnswer struct {
	ID      string            `json:"id"`
	Status  int               `json:"status"`
	Headers map[string]string `json:"headers,omitempty"`
	Body    json.RawMessage   `json:"body,omitempty"`
}

// maxBatchBody bounds a $batch payload the mock reads.
const maxBatchBody = 4 << 20

// serveBatch answers POST /{version}/$batch
// (https://learn.microsoft.com/graph/json-batching): at most 20 requests
// with unique ids (case-insensitive), relative URLs without the version,
// answers in any order, each with its own status, headers and body.
func (s *Server) serveBatch(w http.ResponseWriter, r *http.Request, version string) {
	s.Calls.Inc("$batch")
	if r.Method != http.MethodPost {
		s.graphError(w, r, http.StatusMethodNotAllowed, "BadRequest", "Specified HTTP method is not allowed for the request target.")
		return
	}
	fault, ra := s.Faults.Next(false)
	if s.renderFault(w, r, fault, ra, `{"responses":[{"id":"1","status":200,`) {
		return
	}
	body, ok := s.readBatchBody(w, r)
	if !ok {
		return
	}
	var req batchRequest
	if err := json.Unmarshal(body, &req); err != nil {
		s.graphError(w, r, http.StatusBadRequest, "BadRequest", "Invalid batch payload format.")
		return
	}
	if msg := validateBatch(req.Requests); msg != "" {
		s.graphError(w, r, http.StatusBadRequest, "BadRequest", msg)
		return
	}

	base := s.baseURL(r, version)
	status := map[string]int{}
	answers := make([]batchAnswer, 0, len(req.Requests))
	for _, it := range req.Requests {
		a := batchAnswer{ID: it.ID}
		failedDep := false
		for _, dep := range it.DependsOn {
			if st := status[strings.ToLower(dep)]; st < 200 || st > 299 {
				failedDep = true
			}
		}
		if failedDep {
			a.Status = http.StatusFailedDependency
			a.Body = marshal(map[string]any{"error": map[string]any{"code": "FailedDependency", "message": "The request failed because a request it depends on failed."}})
		} else {
			a = s.runItem(r, version, base, it)
		}
		status[strings.ToLower(it.ID)] = a.Status
		answers = append(answers, a)
	}
	if !s.opts.BatchInOrder {
		h := fnv.New64a()
		_, _ = h.Write(body)
		rng := rand.New(rand.NewPCG(h.Sum64(), 0x1badb002)) // #nosec G404 -- seeded from the request so the mock answers alike every run; nothing secret
		rng.Shuffle(len(answers), func(i, j int) { answers[i], answers[j] = answers[j], answers[i] })
	}
	s.requestID(w, r)
	w.Header().Set("Content-Type", contentType)
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(marshal(map[string]any{"responses": answers}))
}

// readBatchBody reads a $batch payload, decompressing it when the client
// sent Content-Encoding: gzip, as msgraph-sdk-go does for every request body
// (kiota-http-go v1.5.4 compression_handler.go) and Graph accepts. An
// encoding the mock cannot decode answers 415: that is the status on which
// the SDK resends the body uncompressed, where a 400 would fail the call.
// It reports false when it has written an error.
func (s *Server) readBatchBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	const undecodable = "The request body could not be decompressed with the declared Content-Encoding 'gzip'."
	var src io.Reader = r.Body
	gzipped := false
	switch enc := strings.TrimSpace(r.Header.Get("Content-Encoding")); {
	case enc == "" || strings.EqualFold(enc, "identity"):
	case strings.EqualFold(enc, "gzip"):
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			s.graphError(w, r, http.StatusUnsupportedMediaType, "UnsupportedMediaType", undecodable)
			return nil, false
		}
		defer zr.Close()
		src, gzipped = zr, true
	default:
		s.graphError(w, r, http.StatusUnsupportedMediaType, "UnsupportedMediaType", fmt.Sprintf("The Content-Encoding '%s' is not supported.", enc))
		return nil, false
	}
	body, err := io.ReadAll(io.LimitReader(src, maxBatchBody))
	switch {
	case err != nil && gzipped:
		s.graphError(w, r, http.StatusUnsupportedMediaType, "UnsupportedMediaType", undecodable)
		return nil, false
	case err != nil:
		s.graphError(w, r, http.StatusBadRequest, "BadRequest", "Unable to read the batch request body.")
		return nil, false
	}
	return body, true
}

// hasBody reports whether a batch item carries a body. msgraph-sdk-go-core
// v1.4.0 serialises every item with "body": null when there is none
// (batch_requests.go toBatchItem, batch_item_model.go Serialize), and Graph
// reads null as no body; only a real body needs a Content-Type.
func (it batchItem) hasBody() bool {
	b := bytes.TrimSpace(it.Body)
	return len(b) > 0 && !bytes.Equal(b, []byte("null"))
}

// validateBatch returns Graph's 400 message for a malformed batch, or "".
func validateBatch(reqs []batchItem) string {
	switch {
	case len(reqs) == 0:
		return "Invalid batch payload format: the batch must contain at least one request."
	case len(reqs) > MaxBatchRequests:
		return fmt.Sprintf("Invalid batch payload format: the number of requests in the batch (%d) exceeds the limit of %d.", len(reqs), MaxBatchRequests)
	}
	seen := map[string]bool{}
	for _, it := range reqs {
		id := strings.ToLower(it.ID)
		switch {
		case it.ID == "":
			return "Invalid batch payload format: every request must have an id."
		case seen[id]:
			return fmt.Sprintf("Invalid batch payload format: request id '%s' is duplicated; ids must be unique within a batch.", it.ID)
		case it.Method == "" || it.URL == "":
			return fmt.Sprintf("Invalid batch payload format: request '%s' must have a method and a url.", it.ID)
		case it.hasBody() && it.Headers["Content-Type"] == "" && it.Headers["content-type"] == "":
			return fmt.Sprintf("Invalid batch payload format: request '%s' has a body but no Content-Type header.", it.ID)
		}
		for _, dep := range it.DependsOn {
			if !seen[strings.ToLower(dep)] {
				return fmt.Sprintf("Invalid batch payload format: request '%s' depends on unknown or later request '%s'.", it.ID, dep)
			}
		}
		seen[id] = true
	}
	return ""
}

// runItem serves one batch item through the ordinary Graph handler.
func (s *Server) runItem(outer *http.Request, version, base string, it batchItem) batchAnswer {
	rel := it.URL
	if u, err := url.Parse(rel); err != nil || u.IsAbs() || u.Host != "" {
		return itemError(it.ID, http.StatusBadRequest, "BadRequest", "Invalid request URL: batch request urls must be relative to the API version, e.g. /users.")
	}
	rel = strings.TrimPrefix(rel, "/")
	if seg, _, _ := strings.Cut(rel, "/"); seg == "v1.0" || seg == "beta" {
		return itemError(it.ID, http.StatusBadRequest, "BadRequest", fmt.Sprintf("Resource not found for the segment '%s'.", seg))
	}
	u, err := url.Parse("/" + version + "/" + rel)
	if err != nil {
		return itemError(it.ID, http.StatusBadRequest, "BadRequest", "Invalid request URL.")
	}
	var body []byte
	if it.hasBody() {
		body = it.Body
	}
	ctx := context.WithValue(outer.Context(), batchBaseKey{}, base)
	req := (&http.Request{
		Method:     strings.ToUpper(it.Method),
		URL:        u,
		RequestURI: u.RequestURI(),
		Proto:      outer.Proto,
		ProtoMajor: outer.ProtoMajor,
		ProtoMinor: outer.ProtoMinor,
		Header:     http.Header{},
		Host:       outer.Host,
		Body:       io.NopCloser(bytes.NewReader(body)),
	}).WithContext(ctx)
	for k, v := range it.Headers {
		req.Header.Set(k, v)
	}
	req.Header.Set("Authorization", outer.Header.Get("Authorization"))
	rec := &recorder{header: http.Header{}}
	s.serveGraph(rec, req, true)

	a := batchAnswer{ID: it.ID, Status: rec.status(), Headers: map[string]string{}}
	for k, v := range rec.header {
		if len(v) > 0 {
			a.Headers[k] = v[0]
		}
	}
	if json.Valid(rec.body.Bytes()) {
		a.Body = rec.body.Bytes()
	} else {
		// Graph base64-encodes bodies that are not JSON.
		a.Body = marshal(base64.StdEncoding.EncodeToString(rec.body.Bytes()))
	}
	return a
}

func itemError(id string, status int, code, msg string) batchAnswer {
	return batchAnswer{
		ID:      id,
		Status:  status,
		Headers: map[string]string{"Content-Type": contentType},
		Body:    marshal(map[string]any{"error": map[string]any{"code": code, "message": msg, "innerError": map[string]any{"request-id": newGUID()}}}),
	}
}

// recorder captures a batch item's answer.
type recorder struct {
	header http.Header
	code   int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) WriteHeader(code int) {
	if r.code == 0 {
		r.code = code
	}
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	return r.body.Write(b)
}

func (r *recorder) status() int {
	if r.code == 0 {
		return http.StatusOK
	}
	return r.code
}
