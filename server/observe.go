package server

import (
	"context"
	"time"

	"github.com/postured/postured/aggregate"
)

// Batch is one answered /posture request, as observers see it.
type Batch struct {
	RequestID string
	// At is when the batch was answered.
	At      time.Time
	Devices []aggregate.Device
	// Results are in the order of Devices: what Cloudflare is told.
	Results []aggregate.Result
	Stats   aggregate.Stats
}

// BatchObserver is told about every answered batch: the posture memory
// for External Evaluation, and whatever else keeps a record of answers.
// Observers run in order on the request's goroutine before the answer is
// written, so a record of an answer exists before Cloudflare acts on it;
// they must be quick and must not keep Batch's slices past the call
// (copy what they keep). The context is the request's.
type BatchObserver interface {
	ObserveBatch(ctx context.Context, b Batch)
}
