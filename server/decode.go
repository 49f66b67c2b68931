package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/postured/postured/aggregate"
)

// postureRequest is Cloudflare's batch. encoding/json matches keys
// case-insensitively, so the "Devices" of Cloudflare's own example decodes
// too. Unknown fields are ignored: Cloudflare owns this schema and may add
// to it.
type postureRequest struct {
	Devices []*postureDevice `json:"devices"`
}

type postureDevice struct {
	DeviceID     string `json:"device_id"`
	SerialNumber string `json:"serial_number"`
	MACAddress   string `json:"mac_address"`
	Hostname     string `json:"hostname"`
	Email        string `json:"email"`
	VirtualIPv4  string `json:"virtual_ipv4"`
}

// requestError is a client mistake with the status to answer.
type requestError struct {
	status int
	msg    string
}

func (e *requestError) Error() string { return e.msg }

func badRequest(format string, args ...any) *requestError {
	return &requestError{status: http.StatusBadRequest, msg: fmt.Sprintf(format, args...)}
}

// decodeBatch reads a posture batch. An empty body, null, {} and an empty
// list are all an empty batch (Cloudflare's "Test" button may send any of
// them). Duplicate device ids collapse to the first occurrence.
func decodeBatch(body io.Reader, maxDevices int) ([]aggregate.Device, error) {
	data, err := io.ReadAll(body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, &requestError{status: http.StatusRequestEntityTooLarge,
				msg: fmt.Sprintf("request body larger than %d bytes", mbe.Limit)}
		}
		return nil, badRequest("read request body: %v", err)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	var req postureRequest
	if err := dec.Decode(&req); err != nil {
		return nil, describeJSONError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, badRequest("invalid JSON: unexpected data after the top-level object")
	}
	if len(req.Devices) > maxDevices {
		return nil, &requestError{status: http.StatusRequestEntityTooLarge,
			msg: fmt.Sprintf("%d devices in one request, at most %d allowed", len(req.Devices), maxDevices)}
	}
	out := make([]aggregate.Device, 0, len(req.Devices))
	seen := make(map[string]bool, len(req.Devices))
	for i, d := range req.Devices {
		if d == nil {
			return nil, badRequest("devices[%d]: must be an object, got null", i)
		}
		id := strings.TrimSpace(d.DeviceID)
		if id == "" {
			return nil, badRequest("devices[%d]: device_id is required", i)
		}
		if seen[id] {
			continue
		}
		seen[id] = true
		out = append(out, aggregate.Device{ID: id, Serial: d.SerialNumber, MAC: d.MACAddress, Hostname: d.Hostname, Email: d.Email})
	}
	return out, nil
}

// describeJSONError turns a decoder error into a message that says where
// the body is wrong, without echoing the body.
func describeJSONError(err error) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return badRequest("invalid JSON at byte %d: %v", se.Offset, se)
	case errors.As(err, &te):
		field := te.Field
		if field == "" {
			field = "request body"
		}
		return badRequest("%s: expected %s, got JSON %s", field, jsonKind(te.Type.Kind().String()), te.Value)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return badRequest("invalid JSON: body ends unexpectedly")
	default:
		return badRequest("invalid JSON: %v", err)
	}
}

func jsonKind(goKind string) string {
	switch goKind {
	case "slice":
		return "an array"
	case "struct", "ptr":
		return "an object"
	case "string":
		return "a string"
	}
	return goKind
}
