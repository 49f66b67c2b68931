package audit

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Find returns the record in force for deviceID at time at: the last answer
// given at or before at (the later line wins a tie). It reads the files in
// the order given and does not verify the chain; run Verify first when the
// log's integrity matters. Break lines and partial lines (no newline) are
// skipped; any other line that is not a record is an error naming it.
func Find(ctx context.Context, paths []string, deviceID string, at time.Time) (Record, bool, error) {
	var best Record
	found := false
	err := scan(ctx, paths, func(r *Record) {
		if r.DeviceID != deviceID || r.Time.After(at) {
			return
		}
		if !found || !r.Time.Before(best.Time) {
			best, found = *r, true
		}
	})
	if err != nil {
		return Record{}, false, fmt.Errorf("audit: find: %w", err)
	}
	return best, found, nil
}

// FindAll is Find for every device the log answered for by time at: one
// record per device, sorted by device id.
func FindAll(ctx context.Context, paths []string, at time.Time) ([]Record, error) {
	best := make(map[string]Record)
	err := scan(ctx, paths, func(r *Record) {
		if r.Time.After(at) {
			return
		}
		if b, ok := best[r.DeviceID]; !ok || !r.Time.Before(b.Time) {
			best[r.DeviceID] = *r
		}
	})
	if err != nil {
		return nil, fmt.Errorf("audit: find all: %w", err)
	}
	out := make([]Record, 0, len(best))
	for _, r := range best {
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b Record) int { return strings.Compare(a.DeviceID, b.DeviceID) })
	return out, nil
}

// scan calls fn with every record of the files, in order, skipping break
// lines and partial lines.
func scan(ctx context.Context, paths []string, fn func(*Record)) error {
	it := &lines{paths: paths}
	defer it.close()
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		cur, err := it.next()
		if err != nil {
			return err
		}
		if cur == nil {
			return nil
		}
		if !cur.complete {
			continue
		}
		if cur.err != nil {
			return cur.problem("not an audit record: " + cur.err.Error())
		}
		if cur.e.Break == nil {
			fn(&cur.e.Record)
		}
	}
}
