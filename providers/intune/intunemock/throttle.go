package intunemock

import (
	"sync"
	"time"
)

// throttle is Graph's Intune request budget over a sliding window: so many
// requests per app per tenant, and so many for all apps of the tenant
// together (https://learn.microsoft.com/graph/throttling-limits#intune-service-limits).
// The first limit reached throttles.
type throttle struct {
	mu     sync.Mutex
	span   time.Duration
	app    window
	tenant window // limit <= 0: none
	apps   map[string]*window
}

func newThrottle(perApp, perTenant int, span time.Duration) *throttle {
	return &throttle{span: span, app: window{limit: perApp}, tenant: window{limit: perTenant}, apps: map[string]*window{}}
}

// take admits one request of app at now, or reports how long until one
// would be.
func (t *throttle) take(app string, now time.Time) (bool, time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	w := t.apps[app]
	if w == nil {
		w = &window{limit: t.app.limit}
		t.apps[app] = w
	}
	cut := now.Add(-t.span)
	wait := max(w.full(cut, t.span, now), t.tenant.full(cut, t.span, now))
	if wait > 0 {
		return false, wait
	}
	w.times = append(w.times, now)
	if t.tenant.limit > 0 {
		t.tenant.times = append(t.tenant.times, now)
	}
	return true, 0
}

// window is the admitted requests of one scope, oldest first.
type window struct {
	limit int
	times []time.Time
}

// full forgets requests at or before cut and returns how long until the
// window has room again, 0 if it has now.
func (w *window) full(cut time.Time, span time.Duration, now time.Time) time.Duration {
	if w.limit <= 0 {
		return 0
	}
	i := 0
	for i < len(w.times) && !w.times[i].After(cut) {
		i++
	}
	w.times = w.times[i:]
	if len(w.times) < w.limit {
		return 0
	}
	return w.times[len(w.times)-w.limit].Add(span).Sub(now)
}
