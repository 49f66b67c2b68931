package mockkit

import (
	"reflect"
	"testing"
	"time"
)

func TestLatest(t *testing.T) {
	t0 := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		records []Scored
		want    map[int]Expected
	}{
		{"none", nil, map[int]Expected{}},
		{"one record per device", []Scored{
			{Owner: 1, ID: "a", Score: 100, LastSeen: t0},
			{Owner: 2, ID: "b", Score: 50, LastSeen: t0},
		}, map[int]Expected{
			1: {ID: "a", Score: 100, LastSeen: t0},
			2: {ID: "b", Score: 50, LastSeen: t0},
		}},
		{"newest wins, listed first", []Scored{
			{Owner: 1, ID: "new", Score: 0, LastSeen: t0},
			{Owner: 1, ID: "old", Score: 100, LastSeen: t0.Add(-time.Hour)},
		}, map[int]Expected{1: {ID: "new", Score: 0, LastSeen: t0, Older: []string{"old"}}}},
		{"newest wins, listed last", []Scored{
			{Owner: 1, ID: "old", Score: 100, LastSeen: t0.Add(-time.Hour)},
			{Owner: 1, ID: "older", Score: 90, LastSeen: t0.Add(-2 * time.Hour)},
			{Owner: 1, ID: "new", Score: 0, LastSeen: t0},
		}, map[int]Expected{1: {ID: "new", Score: 0, LastSeen: t0, Older: []string{"older", "old"}}}},
		{"a tie keeps the first", []Scored{
			{Owner: 3, ID: "first", Score: 10, LastSeen: t0},
			{Owner: 3, ID: "second", Score: 20, LastSeen: t0},
		}, map[int]Expected{3: {ID: "first", Score: 10, LastSeen: t0, Older: []string{"second"}}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Latest(tc.records); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Latest = %+v, want %+v", got, tc.want)
			}
		})
	}
}
