package mockkit

import (
	"net/http"
	"sync"
)

// Guard lets a mock's records change while it serves: each request holds
// a read lock for its whole duration and an update holds the write lock,
// so a request, a paged listing's page or a $batch, sees the records
// either before or after an update, never half of one. Mocks keep their
// records in plain slices and maps; Guard is what makes drifting them
// safe without locking inside every handler.
type Guard struct {
	mu   sync.RWMutex
	next http.Handler
}

// NewGuard guards next.
func NewGuard(next http.Handler) *Guard { return &Guard{next: next} }

// ServeHTTP serves the request under the read lock.
func (g *Guard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	g.mu.RLock()
	defer g.mu.RUnlock()
	g.next.ServeHTTP(w, r)
}

// Read runs read with no update in flight.
func (g *Guard) Read(read func()) {
	g.mu.RLock()
	defer g.mu.RUnlock()
	read()
}

// Update runs change with no request in flight.
func (g *Guard) Update(change func()) {
	g.mu.Lock()
	defer g.mu.Unlock()
	change()
}
