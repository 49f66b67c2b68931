package intunemock

import (
	"sync"
	"time"
)

// window is Graph's per-app, per-tenant sliding-window request budget
// (Intune: 2000 requests per 20 seconds,
// https://learn.microsoft.com/graph/throttling-limits#intune-service-limits).
type window struct {
	mu    sync.Mutex
	limit int
	span  time.Duration
	times []time.Time // admitted requests, oldest first
}

// take admits one request at now, or reports how long until one would be.
func (w *window) take(now time.Time) (bool, time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	cut := now.Add(-w.span)
	i := 0
	for i < len(w.times) && !w.times[i].After(cut) {
		i++
	}
	w.times = w.times[i:]
	if len(w.times) >= w.limit {
		return false, w.times[0].Add(w.span).Sub(now)
	}
	w.times = append(w.times, now)
	return true, 0
}
