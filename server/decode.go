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

// decodeBatch reads a posture batch from body; see DecodeBatch.
func decodeBatch(body io.Reader, maxDevices int) ([]aggregate.Device, error) {
	var buf bytes.Buffer
	if err := readBody(&buf, body); err != nil {
		return nil, err
	}
	return DecodeBatch(buf.Bytes(), maxDevices)
}

// readBody reads body into buf, answering 413 for a body over the
// http.MaxBytesReader limit.
func readBody(buf *bytes.Buffer, body io.Reader) error {
	if _, err := buf.ReadFrom(body); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return &requestError{status: http.StatusRequestEntityTooLarge,
				msg: fmt.Sprintf("request body larger than %d bytes", mbe.Limit)}
		}
		return badRequest("read request body: %v", err)
	}
	return nil
}

// DecodeBatch parses a posture batch as the posture endpoint does (the
// load tool and the JSON floor benchmark measure it). An empty body, null,
// {} and an empty list are all an empty batch (Cloudflare's "Test" button
// may send any of them). Duplicate device ids collapse to the first
// occurrence. The devices do not alias data.
func DecodeBatch(data []byte, maxDevices int) ([]aggregate.Device, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, nil
	}
	var req postureRequest
	// Unmarshal accepts exactly what Decode followed by io.EOF accepts,
	// without the Decoder's copy of the body; a bad body is decoded again
	// for the Decoder's more precise errors.
	if err := json.Unmarshal(data, &req); err != nil {
		return nil, explainBadBody(data)
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

// explainBadBody is the client's error for a body json.Unmarshal refused,
// in the words of the streaming Decoder, which says where it went wrong.
func explainBadBody(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	var req postureRequest
	if err := dec.Decode(&req); err != nil {
		return describeJSONError(err)
	}
	return badRequest("invalid JSON: unexpected data after the top-level object")
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
