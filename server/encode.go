package server

import (
	"encoding/json"
	"slices"
	"strconv"
	"strings"

	"github.com/postured/postured/aggregate"
)

// AppendResults appends the posture endpoint's answer for results to dst:
// {"result":{"<device_id>":{"s2s_id":"…","score":N},…}}. The bytes are
// exactly what json.Marshal gave for the map of results it replaces (keys
// sorted, HTML-safe escaping, the last result of a repeated device id),
// written without building the map or boxing every entry.
func AppendResults(dst []byte, results []aggregate.Result) []byte {
	order := make([]int32, len(results))
	for i := range order {
		order[i] = int32(i)
	}
	// Stable, so that of repeated ids the last one sorts last and wins, as
	// it did in the map.
	slices.SortStableFunc(order, func(a, b int32) int {
		return strings.Compare(results[a].DeviceID, results[b].DeviceID)
	})
	dst = append(dst, `{"result":{`...)
	first := true
	for n, i := range order {
		r := &results[i]
		if n+1 < len(order) && results[order[n+1]].DeviceID == r.DeviceID {
			continue
		}
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = appendJSONString(dst, r.DeviceID)
		dst = append(dst, `:{"s2s_id":`...)
		dst = appendJSONString(dst, r.S2SID)
		dst = append(dst, `,"score":`...)
		dst = strconv.AppendInt(dst, int64(r.Score), 10)
		dst = append(dst, '}')
	}
	return append(dst, "}}"...)
}

// appendJSONString appends s as encoding/json writes it. Ids and serials
// are plain ASCII and are copied as they are; anything json.Marshal would
// escape (quotes, controls, <>&, non-ASCII) goes through json.Marshal.
func appendJSONString(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < 0x20, c >= 0x80, c == '"', c == '\\', c == '<', c == '>', c == '&':
			b, _ := json.Marshal(s) // a string always marshals
			return append(dst, b...)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}
