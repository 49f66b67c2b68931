package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/postured/postured/aggregate"
)

// Explainer scores one device and says why, as `postured explain` does.
type Explainer interface {
	Explain(ctx context.Context, d aggregate.Device) aggregate.Explanation
}

// maxIdentifierBytes bounds each explain parameter; real serials, MACs,
// hostnames and emails are far shorter, and the value reaches every
// provider's lookup.
const maxIdentifierBytes = 256

// WriteExplanation writes ex as `postured explain --json` prints it and
// GET /v1/explain answers it: indented JSON and a newline.
func WriteExplanation(w io.Writer, ex aggregate.Explanation) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(ex); err != nil {
		return fmt.Errorf("write explanation: %w", err)
	}
	return nil
}

// explain answers GET /v1/explain?serial=&mac=&hostname=&email=: the help
// desk's "why was this laptop blocked?" without a shell on the host. It
// scores live and never feeds the posture memory: an explanation is not
// posture Cloudflare reported. device_id= (optional) reads the device's
// hysteresis state and device_id overrides, without advancing the state.
func (s *Server) explain(c *gin.Context) {
	q := c.Request.URL.Query()
	var d aggregate.Device
	for _, p := range []struct {
		name string
		dst  *string
	}{{"serial", &d.Serial}, {"mac", &d.MAC}, {"hostname", &d.Hostname}, {"email", &d.Email}, {"device_id", &d.ID}} {
		v := q.Get(p.name)
		if len(v) > maxIdentifierBytes {
			fail(c, http.StatusBadRequest, fmt.Sprintf("%s: longer than %d bytes", p.name, maxIdentifierBytes))
			return
		}
		*p.dst = v
	}
	if d.Serial == "" && d.MAC == "" && d.Hostname == "" && d.Email == "" {
		fail(c, http.StatusBadRequest, "give at least one of serial, mac, hostname, email")
		return
	}
	var b bytes.Buffer
	if err := WriteExplanation(&b, s.cfg.Explainer.Explain(c.Request.Context(), d)); err != nil {
		fail(c, http.StatusInternalServerError, "encode response")
		return
	}
	c.Data(http.StatusOK, "application/json", b.Bytes())
}
