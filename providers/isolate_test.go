package providers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
)

func TestIsolate(t *testing.T) {
	outage := &StatusError{Status: 503}
	tests := []struct {
		name       string
		values     []string
		refuse     func(vals []string) error // the vendor's answer to one request
		wantIDs    []string
		wantFailed []string
		wantErr    error
		maxCalls   int
	}{
		{
			name: "nothing refused: one call", values: []string{"A", "B", "C"},
			refuse:  func([]string) error { return nil },
			wantIDs: []string{"A", "B", "C"}, maxCalls: 1,
		},
		{
			name: "one refused value fails alone", values: strings.Split("A B C D E F G H I J K L M N O P Q R S T", " "),
			refuse: func(vals []string) error {
				if slices.Contains(vals, "K") {
					return &StatusError{Status: 400, Body: "invalid filter"}
				}
				return nil
			},
			wantIDs:    strings.Split("A B C D E F G H I J L M N O P Q R S T", " "),
			wantFailed: []string{"K"}, maxCalls: 1 + 2*5,
		},
		{
			name: "over-long request is split until it fits", values: []string{"A", "B", "C", "D"},
			refuse: func(vals []string) error {
				if len(vals) > 1 {
					return &StatusError{Status: 414}
				}
				return nil
			},
			wantIDs: []string{"A", "B", "C", "D"}, maxCalls: 7,
		},
		{
			name: "two refused values", values: []string{"A", "B", "C", "D"},
			refuse: func(vals []string) error {
				if slices.Contains(vals, "A") || slices.Contains(vals, "D") {
					return &StatusError{Status: 422}
				}
				return nil
			},
			wantIDs: []string{"B", "C"}, wantFailed: []string{"A", "D"}, maxCalls: 7,
		},
		{
			name: "an outage is not split", values: []string{"A", "B", "C", "D"},
			refuse:  func([]string) error { return outage },
			wantErr: outage, maxCalls: 1,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			recs, err := Isolate(context.Background(), tc.values, func(_ context.Context, vals []string) ([]Record, error) {
				calls++
				if err := tc.refuse(vals); err != nil {
					return nil, fmt.Errorf("vendor: lookup: %w", err)
				}
				var out []Record
				for _, v := range vals {
					out = append(out, Record{ID: v})
				}
				return out, nil
			})
			if calls > tc.maxCalls {
				t.Errorf("%d calls, want at most %d", calls, tc.maxCalls)
			}
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) || recs != nil {
					t.Fatalf("got %v, %v; want only %v", recs, err, tc.wantErr)
				}
				return
			}
			var ids []string
			for _, r := range recs {
				ids = append(ids, r.ID)
			}
			slices.Sort(ids)
			if !slices.Equal(ids, tc.wantIDs) {
				t.Errorf("records %v, want %v", ids, tc.wantIDs)
			}
			var pe *PartialError
			switch {
			case tc.wantFailed == nil && err != nil:
				t.Errorf("err = %v, want nil", err)
			case tc.wantFailed != nil && !errors.As(err, &pe):
				t.Errorf("err = %v, want a *PartialError", err)
			case tc.wantFailed != nil && !slices.Equal(pe.Values, tc.wantFailed):
				t.Errorf("failed %v, want %v", pe.Values, tc.wantFailed)
			}
		})
	}
}

func TestJoinPartial(t *testing.T) {
	outage := errors.New("down")
	p1 := &PartialError{Values: []string{"A"}, Err: errors.New("refused")}
	p2 := fmt.Errorf("wrapped: %w", &PartialError{Values: []string{"B", "C"}, Err: errors.New("refused")})
	if err := JoinPartial(nil, nil); err != nil {
		t.Errorf("nil, nil = %v", err)
	}
	if err := JoinPartial(p1, outage, p2); !errors.Is(err, outage) {
		t.Errorf("an outage must win, got %v", err)
	}
	var pe *PartialError
	if err := JoinPartial(p1, nil, p2); !errors.As(err, &pe) || !slices.Equal(pe.Values, []string{"A", "B", "C"}) {
		t.Errorf("got %v, want one PartialError for A, B, C", err)
	}
}
