package cache

import (
	"context"
	"strconv"
	"testing"
	"time"
)

// BenchmarkMemorySetFull inserts new keys into a Memory at MaxEntries, the
// steady state of a cache that callers flood with unknown identifiers.
func BenchmarkMemorySetFull(b *testing.B) {
	const full = 300_000
	m := newTestMemory[int](b, MemoryConfig{MaxEntries: full, Cleanup: time.Minute})
	ctx := context.Background()
	e := Entry[int]{Value: 1, Found: true}
	for i := range full {
		if err := m.Set(ctx, "full-"+strconv.Itoa(i), e, time.Hour); err != nil {
			b.Fatal(err)
		}
	}
	i := 0
	for b.Loop() {
		if err := m.Set(ctx, "new-"+strconv.Itoa(i), e, time.Hour); err != nil {
			b.Fatal(err)
		}
		i++
	}
	if m.Len() != full {
		b.Fatalf("len %d, want %d", m.Len(), full)
	}
}
