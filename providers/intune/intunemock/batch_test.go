package intunemock

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

func gzipped(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestBatchContentEncoding covers the request bodies msgraph-sdk-go sends:
// gzip-compressed, and plain again after a 415.
func TestBatchContentEncoding(t *testing.T) {
	devs := fixture(3)
	payload, _ := json.Marshal(batchItems(3, func(i int) string {
		return "/deviceManagement/managedDevices/" + devs[i-1].ID + "?$select=id,serialNumber"
	}))
	zipped := gzipped(t, payload)
	tests := []struct {
		name     string
		encoding string
		body     []byte
		status   int
		code     string
	}{
		{name: "plain", body: payload, status: http.StatusOK},
		{name: "identity", encoding: "identity", body: payload, status: http.StatusOK},
		{name: "gzip", encoding: "gzip", body: zipped, status: http.StatusOK},
		{name: "gzip in upper case", encoding: "GZIP", body: zipped, status: http.StatusOK},
		{name: "unsupported encoding", encoding: "br", body: payload, status: http.StatusUnsupportedMediaType, code: "UnsupportedMediaType"},
		{name: "gzip header on a plain body", encoding: "gzip", body: payload, status: http.StatusUnsupportedMediaType, code: "UnsupportedMediaType"},
		{name: "truncated gzip", encoding: "gzip", body: zipped[:len(zipped)-10], status: http.StatusUnsupportedMediaType, code: "UnsupportedMediaType"},
	}
	h := newHarness(t, Options{Devices: devs, BatchInOrder: true})
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, h.ts.URL+"/v1.0/$batch", bytes.NewReader(tc.body))
			req.Header.Set("Authorization", "Bearer "+h.tok)
			req.Header.Set("Content-Type", "application/json")
			if tc.encoding != "" {
				req.Header.Set("Content-Encoding", tc.encoding)
			}
			status, body, _ := h.do(req)
			if status != tc.status {
				t.Fatalf("status %d, want %d: %s", status, tc.status, body)
			}
			if tc.code != "" {
				if code, _ := graphCode(t, body); code != tc.code {
					t.Errorf("code %s, want %s", code, tc.code)
				}
				return
			}
			var r batchResp
			if err := json.Unmarshal(body, &r); err != nil {
				t.Fatal(err)
			}
			if len(r.Responses) != 3 {
				t.Fatalf("%d responses: %s", len(r.Responses), body)
			}
			for i, a := range r.Responses {
				if a.Status != http.StatusOK || !strings.Contains(string(a.Body), devs[i].SerialNumber) {
					t.Errorf("item %s: %d %s", a.ID, a.Status, a.Body)
				}
			}
		})
	}
}

// TestBatchItemBody checks that "body": null, which msgraph-sdk-go-core puts
// on every GET item, is no body, while a real body still needs a
// Content-Type.
func TestBatchItemBody(t *testing.T) {
	devs := fixture(2)
	item := func(body any, headers map[string]string) map[string]any {
		it := map[string]any{"id": "1", "method": "GET", "url": "/deviceManagement/managedDevices/" + devs[1].ID, "body": body}
		if headers != nil {
			it["headers"] = headers
		}
		return map[string]any{"requests": []any{it}}
	}
	tests := []struct {
		name    string
		payload any
		status  int // of the batch
		msg     string
	}{
		{name: "null body", payload: item(nil, nil), status: http.StatusOK},
		{name: "null body with headers", payload: item(nil, map[string]string{"Accept": "application/json"}), status: http.StatusOK},
		{name: "body without Content-Type", payload: item(map[string]any{"a": 1}, nil), status: http.StatusBadRequest, msg: "has a body but no Content-Type"},
		{name: "body with Content-Type", payload: item(map[string]any{"a": 1}, map[string]string{"Content-Type": "application/json"}), status: http.StatusOK},
	}
	h := newHarness(t, Options{Devices: devs})
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, body, _ := h.post(h.ts.URL+"/v1.0/$batch", tc.payload)
			if status != tc.status {
				t.Fatalf("status %d, want %d: %s", status, tc.status, body)
			}
			if tc.msg != "" {
				if code, msg := graphCode(t, body); code != "BadRequest" || !strings.Contains(msg, tc.msg) {
					t.Errorf("%s %q", code, msg)
				}
				return
			}
			var r batchResp
			if err := json.Unmarshal(body, &r); err != nil {
				t.Fatal(err)
			}
			if len(r.Responses) != 1 || r.Responses[0].Status != http.StatusOK || !strings.Contains(string(r.Responses[0].Body), devs[1].SerialNumber) {
				t.Errorf("answer %s", body)
			}
		})
	}
}
