// Package healthcheck is the container health check postured and
// mockvendors run on themselves: their distroless images have no shell and
// no curl, so `postured healthcheck URL` and `mockvendors --healthcheck URL`
// do the GET.
package healthcheck

import (
	"context"
	"fmt"
	"net/http"
	"time"
)

// Timeout bounds one check; docker-compose.yml gives each check 3s too.
const Timeout = 3 * time.Second

// Check GETs url and returns nil if it answers 200 within Timeout.
func Check(ctx context.Context, url string) error {
	ctx, cancel := context.WithTimeout(ctx, Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	_ = resp.Body.Close() // only the status matters; the body is never read
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthcheck: %s answered %d", url, resp.StatusCode)
	}
	return nil
}
