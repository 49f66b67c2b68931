package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/postured/postured/history"
)

// HistoryReader is the per-device score history.
type HistoryReader interface {
	Device(ctx context.Context, deviceID string) (history.Device, bool, error)
}

// history answers GET /v1/history?device_id=: the device's last score and
// its recent score changes with their causes. A device some batch carried
// whose score never changed answers 200 with no changes; 404 is for a
// device no batch carried (or one forgotten after history.retention).
func (s *Server) history(c *gin.Context) {
	id := c.Query("device_id")
	switch {
	case id == "":
		fail(c, http.StatusBadRequest, "device_id is required")
		return
	case len(id) > maxIdentifierBytes:
		fail(c, http.StatusBadRequest, fmt.Sprintf("device_id: longer than %d bytes", maxIdentifierBytes))
		return
	}
	d, ok, err := s.cfg.History.Device(c.Request.Context(), id)
	if err != nil {
		loggerFrom(c).Error("history read failed", "error", err)
		fail(c, http.StatusServiceUnavailable, "history unavailable")
		return
	}
	if !ok {
		fail(c, http.StatusNotFound, "device_id not seen in any batch")
		return
	}
	var b bytes.Buffer
	if err := WriteHistory(&b, d); err != nil {
		fail(c, http.StatusInternalServerError, "encode response")
		return
	}
	c.Data(http.StatusOK, "application/json", b.Bytes())
}

// WriteHistory writes d as `postured history --json` prints it and GET
// /v1/history answers it: indented JSON and a newline, causes unescaped
// ("->" stays readable).
func WriteHistory(w io.Writer, d history.Device) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(d); err != nil {
		return fmt.Errorf("write history: %w", err)
	}
	return nil
}
