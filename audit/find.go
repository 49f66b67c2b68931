package audit

import (
	"context"
	"fmt"
	"time"
)

// Find returns the record in force for deviceID at time at: the last answer
// given at or before at (the later line wins a tie). It reads the files in
// the order given and does not verify the chain; run Verify first when the
// log's integrity matters. Break lines and partial lines (no newline) are
// skipped; any other line that is not a record is an error naming it.
func Find(ctx context.Context, paths []string, deviceID string, at time.Time) (Record, bool, error) {
	it := &lines{paths: paths}
	defer it.close()
	var best Record
	found := false
	for {
		if err := ctx.Err(); err != nil {
			return Record{}, false, fmt.Errorf("audit: find: %w", err)
		}
		cur, err := it.next()
		if err != nil {
			return Record{}, false, fmt.Errorf("audit: find: %w", err)
		}
		if cur == nil {
			return best, found, nil
		}
		if !cur.complete {
			continue
		}
		if cur.err != nil {
			return Record{}, false, fmt.Errorf("audit: find: %w", cur.problem("not an audit record: "+cur.err.Error()))
		}
		r := cur.e.Record
		if cur.e.Break != nil || r.DeviceID != deviceID || r.Time.After(at) {
			continue
		}
		if !found || !r.Time.Before(best.Time) {
			best, found = r, true
		}
	}
}
