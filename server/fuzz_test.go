package server

import (
	"errors"
	"strings"
	"testing"
)

// FuzzDecodeBatch: whatever the body, decodeBatch never panics, answers
// only 400 or 413, and a decoded batch is within limits with unique,
// non-blank device ids.
func FuzzDecodeBatch(f *testing.F) {
	for _, seed := range []string{
		``, `null`, `{}`, `[]`, `{"devices":[]}`, `{"devices":null}`,
		`{"devices":[{"device_id":"9ece5fab-7398-488a-a575-e25a9a3dec07","email":"jdoe@mycompany.com","serial_number":"jdR44P3d","mac_address":"74:1d:3e:23:e0:fe","virtual_ipv4":"100.96.0.10","hostname":"string"}]}`,
		`{"Devices":[{"device_id":"a"},{"device_id":"a"}]}`,
		`{"devices": {[{"device_id":"a"}]}}`,
		`{"devices":[{"device_id":1}]}`,
		`{"devices":[null,{}]}`,
		`{"devices":[{"device_id":"a","serial_number":"\u0000"}]} trailing`,
		`{"devices":[{"device_id":"a"},{"device_id":"b"},{"device_id":"c"},{"device_id":"d"}]}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		const max = 3
		out, err := decodeBatch(strings.NewReader(string(body)), max)
		if err != nil {
			var re *requestError
			if !errors.As(err, &re) || (re.status != 400 && re.status != 413) || re.msg == "" {
				t.Fatalf("error %#v is not a 400/413 request error", err)
			}
			return
		}
		if len(out) > max {
			t.Fatalf("%d devices decoded, max %d", len(out), max)
		}
		seen := map[string]bool{}
		for _, d := range out {
			if strings.TrimSpace(d.ID) == "" || seen[d.ID] {
				t.Fatalf("bad or duplicate id %q", d.ID)
			}
			seen[d.ID] = true
		}
	})
}
