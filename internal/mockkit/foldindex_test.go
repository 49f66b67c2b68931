package mockkit

import (
	"slices"
	"testing"
)

func TestFoldIndex(t *testing.T) {
	values := [][]string{
		{"C02ABC"},         // 0
		{"c02abd"},         // 1
		{"C02"},            // 2
		{"\u212Aiosk"},     // 3: non-ASCII, a candidate of every lookup
		nil,                // 4: absent, never a candidate
		{"mbp-1", "MBP-2"}, // 5: two values
		{""},               // 6
	}
	x := NewFoldIndex(len(values), func(i int) []string { return values[i] })
	tests := []struct {
		name   string
		prefix bool
		q      string
		want   []int
		ok     bool
	}{
		{"equal, other case", false, "c02abc", []int{0, 3}, true},
		{"equal, no prefix matches", false, "C02", []int{2, 3}, true},
		{"prefix", true, "C02AB", []int{0, 1, 3}, true},
		{"prefix of everything", true, "", []int{0, 1, 2, 3, 5, 6}, true},
		{"second value", false, "mbp-2", []int{3, 5}, true},
		{"empty value", false, "", []int{3, 6}, true},
		{"no match", true, "zzz", []int{3}, true},
		{"non-ASCII query", false, "KİOSK", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set := map[int]struct{}{}
			lookup := x.Equal
			if tt.prefix {
				lookup = x.Prefix
			}
			ok := lookup(tt.q, set)
			if got := Sorted(set); ok != tt.ok || !slices.Equal(got, tt.want) {
				t.Fatalf("got %v (ok %v), want %v (ok %v)", got, ok, tt.want, tt.ok)
			}
		})
	}
}
