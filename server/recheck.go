package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/postured/postured/aggregate"
)

// Rechecker scores one device with every provider asked again, past the
// cache: the help desk's "the user fixed their laptop, look again".
type Rechecker interface {
	Recheck(ctx context.Context, d aggregate.Device) aggregate.Explanation
}

// maxRecheckBody bounds a recheck body: one device entry is ~250 bytes.
const maxRecheckBody = 16 << 10

// recheckDevice is one Cloudflare device entry; unknown fields are refused
// (unlike a batch, whose schema Cloudflare owns, this body is an
// operator's, and a misspelt identifier must not silently recheck less).
type recheckDevice struct {
	DeviceID     string `json:"device_id"`
	SerialNumber string `json:"serial_number"`
	MACAddress   string `json:"mac_address"`
	Hostname     string `json:"hostname"`
	Email        string `json:"email"`
	VirtualIPv4  string `json:"virtual_ipv4"`
}

// recheck answers POST /v1/recheck with the device's new explanation, in
// the JSON of /v1/explain. The answer is not posture Cloudflare was told:
// it feeds neither the history nor External Evaluation, but the refreshed
// lookups are cached for the batches that follow.
func (s *Server) recheck(c *gin.Context) {
	d, err := decodeRecheck(http.MaxBytesReader(c.Writer, c.Request.Body, maxRecheckBody))
	if err != nil {
		var re *requestError
		if !errors.As(err, &re) {
			re = badRequest("%v", err)
		}
		fail(c, re.status, re.msg)
		return
	}
	ex := s.cfg.Rechecker.Recheck(c.Request.Context(), d)
	loggerFrom(c).Info("recheck", "score", ex.Score, "s2s_id", ex.S2SID)
	var b bytes.Buffer
	if err := WriteExplanation(&b, ex); err != nil {
		fail(c, http.StatusInternalServerError, "encode response")
		return
	}
	c.Data(http.StatusOK, "application/json", b.Bytes())
}

// decodeRecheck reads one device entry, strictly.
func decodeRecheck(body io.Reader) (aggregate.Device, error) {
	data, err := io.ReadAll(body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return aggregate.Device{}, &requestError{status: http.StatusRequestEntityTooLarge,
				msg: fmt.Sprintf("request body larger than %d bytes", mbe.Limit)}
		}
		return aggregate.Device{}, badRequest("read request body: %v", err)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return aggregate.Device{}, badRequest("request body is empty: want one device entry")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var in *recheckDevice
	if err := dec.Decode(&in); err != nil {
		if f, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			return aggregate.Device{}, badRequest("unknown field %s", f)
		}
		return aggregate.Device{}, describeJSONError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return aggregate.Device{}, badRequest("invalid JSON: unexpected data after the top-level object")
	}
	if in == nil {
		return aggregate.Device{}, badRequest("request body: must be an object, got null")
	}
	d := aggregate.Device{ID: strings.TrimSpace(in.DeviceID), Serial: in.SerialNumber, MAC: in.MACAddress, Hostname: in.Hostname, Email: in.Email}
	for _, f := range []struct{ name, v string }{
		{"device_id", d.ID}, {"serial_number", d.Serial}, {"mac_address", d.MAC}, {"hostname", d.Hostname}, {"email", d.Email},
	} {
		if len(f.v) > maxIdentifierBytes {
			return aggregate.Device{}, badRequest("%s: longer than %d bytes", f.name, maxIdentifierBytes)
		}
	}
	if strings.TrimSpace(d.Serial+d.MAC+d.Hostname+d.Email) == "" {
		return aggregate.Device{}, badRequest("give at least one of serial_number, mac_address, hostname, email")
	}
	if d.ID == "" {
		d.ID = "recheck"
	}
	return d, nil
}
