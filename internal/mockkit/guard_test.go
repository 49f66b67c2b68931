package mockkit

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestGuard: a request holds the guard for its whole duration, so no
// update can run under it, and an update excludes every request. (The
// lock state is checked directly: goroutines blocked on a mutex are not
// durably blocked for testing/synctest.)
func TestGuard(t *testing.T) {
	entered, release, done := make(chan struct{}), make(chan struct{}), make(chan struct{})
	g := NewGuard(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		close(entered)
		<-release
	}))
	go func() {
		g.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))
		close(done)
	}()
	<-entered
	if g.mu.TryLock() {
		t.Fatal("an update could run during a request")
	}
	close(release)
	<-done
	ran := false
	g.Update(func() {
		ran = true
		if g.mu.TryRLock() {
			t.Error("a request could run during an update")
		}
	})
	if !ran {
		t.Error("update did not run")
	}
	if !g.mu.TryLock() {
		t.Error("guard still held after the update")
	}
}
