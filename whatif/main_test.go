package whatif

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine outlives them: a
// leaked lookup, retry or server goroutine is a leak in production too.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
