package server

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/postured/postured/aggregate"
	"github.com/postured/postured/providers"
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

// FuzzDecodeHugeIdentifiers feeds batches whose identifiers run from empty
// to far past providers.MaxIdentifierLen (a 10 KB SMBIOS serial, a padded
// MAC): decoding never panics or fails for a size a body limit allows, and
// no identifier over the cap survives normalisation as a match key, so none
// can reach a vendor query.
func FuzzDecodeHugeIdentifiers(f *testing.F) {
	f.Add(uint8(0), uint16(10<<10), "VMware-56 4d ")
	f.Add(uint8(1), uint16(300), ":")
	f.Add(uint8(2), uint16(257), "h")
	f.Add(uint8(3), uint16(256), "u")
	f.Add(uint8(0), uint16(0), "")
	fields := []struct {
		json string
		kind providers.Kind
		get  func(aggregate.Device) string
	}{
		{"serial_number", providers.KindSerial, func(d aggregate.Device) string { return d.Serial }},
		{"mac_address", providers.KindMAC, func(d aggregate.Device) string { return d.MAC }},
		{"hostname", providers.KindHostname, func(d aggregate.Device) string { return d.Hostname }},
		{"email", providers.KindEmail, func(d aggregate.Device) string { return d.Email }},
	}
	f.Fuzz(func(t *testing.T, field uint8, n uint16, fill string) {
		fd := fields[int(field)%len(fields)]
		value := strings.Repeat(fill, int(n)%(32<<10)/max(len(fill), 1))
		body, err := json.Marshal(map[string]any{"devices": []map[string]string{
			{"device_id": "huge", fd.json: value},
			{"device_id": "plain", "serial_number": "C02XK1ZZJGH5"},
		}})
		if err != nil {
			t.Skip() // invalid UTF-8 fill: not a batch Cloudflare can send
		}
		out, err := decodeBatch(strings.NewReader(string(body)), 1000)
		if err != nil {
			t.Fatalf("a %d-byte identifier failed the batch: %v", len(value), err)
		}
		if len(out) != 2 {
			t.Fatalf("decoded %d devices, want 2", len(out))
		}
		got := fd.get(out[0])
		if key, ok := providers.Normalize(fd.kind, got); ok && len(strings.TrimSpace(got)) > providers.MaxIdentifierLen {
			t.Fatalf("%d-byte %s became match key %q", len(got), fd.kind, key)
		}
	})
}
