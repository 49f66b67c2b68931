package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"

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

// ExplainQuery reads the device to explain from
// ?serial=&mac=&hostname=&email=&device_id=, as GET /v1/explain and the
// status page's search take it. Its error is the message the caller
// answers 400 with.
func ExplainQuery(q url.Values) (aggregate.Device, error) {
	var d aggregate.Device
	for _, p := range []struct {
		name string
		dst  *string
	}{{"serial", &d.Serial}, {"mac", &d.MAC}, {"hostname", &d.Hostname}, {"email", &d.Email}, {"device_id", &d.ID}} {
		v := q.Get(p.name)
		if len(v) > maxIdentifierBytes {
			return aggregate.Device{}, fmt.Errorf("%s: longer than %d bytes", p.name, maxIdentifierBytes)
		}
		*p.dst = v
	}
	if d.Serial == "" && d.MAC == "" && d.Hostname == "" && d.Email == "" {
		return aggregate.Device{}, errors.New("give at least one of serial, mac, hostname, email")
	}
	return d, nil
}

// explain answers GET /v1/explain?serial=&mac=&hostname=&email=: the help
// desk's "why was this laptop blocked?" without a shell on the host. It
// scores live and never feeds the posture memory: an explanation is not
// posture Cloudflare reported. device_id= (optional) reads the device's
// hysteresis state and device_id overrides, without advancing the state.
func (s *Server) explain(c *gin.Context) {
	d, err := ExplainQuery(c.Request.URL.Query())
	if err != nil {
		fail(c, http.StatusBadRequest, err.Error())
		return
	}
	var b bytes.Buffer
	if err := WriteExplanation(&b, s.cfg.Explainer.Explain(c.Request.Context(), d)); err != nil {
		fail(c, http.StatusInternalServerError, "encode response")
		return
	}
	c.Data(http.StatusOK, "application/json", b.Bytes())
}
