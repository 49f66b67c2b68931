package server

import (
	"encoding/json"
	"testing"

	"github.com/postured/postured/aggregate"
)

// resultEntry is one device's answer as the handler marshalled it.
type resultEntry struct {
	S2SID string `json:"s2s_id"`
	Score int    `json:"score"`
}

// TestAppendResultsMatchesMarshal pins the wire format to what the handler
// sent before it streamed: json.Marshal of a map keyed by device id.
func TestAppendResultsMatchesMarshal(t *testing.T) {
	for _, tc := range []struct {
		name    string
		results []aggregate.Result
	}{
		{"empty", nil},
		{"one", []aggregate.Result{{DeviceID: "d1", S2SID: "s1", Score: 80}}},
		{"unsorted", []aggregate.Result{{DeviceID: "z", Score: 1}, {DeviceID: "a", S2SID: "x", Score: 100}, {DeviceID: "m"}}},
		{"repeated id: last wins", []aggregate.Result{{DeviceID: "d", Score: 1}, {DeviceID: "e", Score: 5}, {DeviceID: "d", Score: 2}}},
		{"escapes", []aggregate.Result{
			{DeviceID: `q"uote\back`, S2SID: "<script>&amp;", Score: 3},
			{DeviceID: "ctl\x01\n\t", S2SID: "ünï\u2028code", Score: 4},
			{DeviceID: "bad\xffutf8", S2SID: "\u00e9", Score: 0},
		}},
		{"negative score", []aggregate.Result{{DeviceID: "n", Score: -1}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := make(map[string]resultEntry, len(tc.results))
			for _, r := range tc.results {
				m[r.DeviceID] = resultEntry{S2SID: r.S2SID, Score: r.Score}
			}
			want, err := json.Marshal(struct {
				Result map[string]resultEntry `json:"result"`
			}{m})
			if err != nil {
				t.Fatal(err)
			}
			if got := AppendResults(nil, tc.results); string(got) != string(want) {
				t.Errorf("got  %s\nwant %s", got, want)
			}
		})
	}
}
