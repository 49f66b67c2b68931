package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"time"

	"github.com/postured/postured/aggregate"
	"github.com/postured/postured/internal/app"
	"github.com/postured/postured/internal/fleet"
	"github.com/postured/postured/providers"
)

// batchBodies are the fleet's batches as the poller sends them.
func (b *bed) batchBodies() ([][]byte, error) {
	var out [][]byte
	for _, batch := range b.set.Batches(1000) {
		body, err := json.Marshal(struct {
			Devices []fleet.CloudflareDevice `json:"devices"`
		}{batch})
		if err != nil {
			return nil, err
		}
		out = append(out, body)
	}
	return out, nil
}

// floorDevice and floorEntry mirror postured's wire types (server's
// postureRequest and resultEntry), so the floor decodes and encodes
// exactly what the service does.
type floorDevice struct {
	DeviceID     string `json:"device_id"`
	SerialNumber string `json:"serial_number"`
	MACAddress   string `json:"mac_address"`
	Hostname     string `json:"hostname"`
	Email        string `json:"email"`
	VirtualIPv4  string `json:"virtual_ipv4"`
}

type floorEntry struct {
	S2SID string `json:"s2s_id"`
	Score int    `json:"score"`
}

// floorResult is the JSON floor: decoding each batch and encoding an
// answer for it, nothing else, in the same process and run.
type floorResult struct {
	Batches int     `json:"batches"`
	P50MS   float64 `json:"p50_ms"`
	P90MS   float64 `json:"p90_ms"`
	P99MS   float64 `json:"p99_ms"`
}

// floorRounds is how many times the floor goes over the fleet.
const floorRounds = 3

func measureFloor(bodies [][]byte) (floorResult, error) {
	var lat []time.Duration
	for range floorRounds {
		for _, body := range bodies {
			start := time.Now()
			if _, err := decodeEncode(body, func(floorDevice) floorEntry { return floorEntry{S2SID: "floor", Score: 50} }); err != nil {
				return floorResult{}, err
			}
			lat = append(lat, time.Since(start))
		}
	}
	s := sortedCopy(lat)
	return floorResult{Batches: len(bodies), P50MS: ms(percentile(s, .5)), P90MS: ms(percentile(s, .9)), P99MS: ms(percentile(s, .99))}, nil
}

// decodeEncode decodes a batch as postured does, answers each device with
// score, and encodes the answer.
func decodeEncode(body []byte, score func(floorDevice) floorEntry) ([]byte, error) {
	var req struct {
		Devices []*floorDevice `json:"devices"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&req); err != nil {
		return nil, fmt.Errorf("decode batch: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("decode batch: data after the object")
	}
	out := make(map[string]floorEntry, len(req.Devices))
	for _, d := range req.Devices {
		out[d.DeviceID] = score(*d)
	}
	return json.Marshal(struct {
		Result map[string]floorEntry `json:"result"`
	}{out})
}

// naiveResult is the naive integration at one vendor latency: per device,
// per provider, one vendor lookup, all in sequence, no cache.
type naiveResult struct {
	VendorLatencyMS int `json:"vendor_latency_ms"`
	// Devices is how many devices were timed; BatchMS scales their time to
	// a 1000-device batch (exact when Devices is 1000).
	Devices             int                `json:"devices"`
	BatchMS             float64            `json:"batch_ms"`
	VendorCallsPerBatch map[string]float64 `json:"vendor_calls_per_batch"`
}

// measureNaive runs the naive integration over the first n devices of the
// fleet with every vendor answering after latency.
func (b *bed) measureNaive(ctx context.Context, latency time.Duration, n int) (naiveResult, error) {
	b.set.SetLatency(latency)
	defer b.set.SetLatency(0)
	// Every vendor in query mode, its client budget lifted: the naive
	// integration is timed for its calls, not postured's pacing.
	extra := maps.Clone(liftedBudget)
	extra["mode"] = string(providers.ModeQuery)
	cfg, err := b.config(modeQuery, time.Hour, extra)
	if err != nil {
		return naiveResult{}, err
	}
	type vendor struct {
		name   string
		weight float64
		p      aggregate.Provider
	}
	var vendors []vendor
	for _, pc := range cfg.Providers.Configs {
		c := pc.Base()
		p, err := app.Registry()[c.Type].Open(pc, providers.Deps{Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			return naiveResult{}, fmt.Errorf("bench: naive: open %s: %w", c.Name, err)
		}
		vendors = append(vendors, vendor{c.Name, c.Weight, p})
	}
	devices := b.set.Fleet.Batch()
	devices = devices[:min(n, len(devices), 1000)]
	body, err := json.Marshal(map[string]any{"devices": devices})
	if err != nil {
		return naiveResult{}, err
	}
	// The first call of each provider fetches its OAuth token; a naive
	// integration keeps its tokens too, so that is not timed.
	for _, v := range vendors {
		if _, err := v.p.Lookup(ctx, providers.Query{Kind: providers.KindSerial, Values: []string{"WARMUP"}}); err != nil {
			return naiveResult{}, fmt.Errorf("bench: naive: %s: %w", v.name, err)
		}
	}
	before := b.calls()
	start := time.Now()
	var lookupErr error
	_, err = decodeEncode(body, func(d floorDevice) floorEntry {
		var sum, weights float64
		id := ""
		for _, v := range vendors {
			q, ok := naiveQuery(d)
			if !ok {
				continue
			}
			recs, err := v.p.Lookup(ctx, q)
			if err != nil {
				lookupErr = errors.Join(lookupErr, err)
				continue
			}
			if len(recs) > 0 {
				sum += v.weight * float64(recs[0].Score)
				weights += v.weight
				if id == "" {
					id = recs[0].ID
				}
			}
		}
		if weights == 0 {
			return floorEntry{S2SID: d.DeviceID}
		}
		return floorEntry{S2SID: id, Score: int(sum / weights)}
	})
	elapsed := time.Since(start)
	if err != nil {
		return naiveResult{}, err
	}
	if lookupErr != nil {
		return naiveResult{}, fmt.Errorf("bench: naive: %w", lookupErr)
	}
	scale := 1000 / float64(len(devices))
	res := naiveResult{VendorLatencyMS: int(latency.Milliseconds()), Devices: len(devices),
		BatchMS: ms(elapsed) * scale, VendorCallsPerBatch: map[string]float64{}}
	for i, c := range b.calls() {
		res.VendorCallsPerBatch[b.set.Vendors[i].Name] = float64(c-before[i]) * scale
	}
	return res, nil
}

// naiveQuery is the one lookup a naive integration makes for a device: by
// serial if it has one, else hostname, else email.
func naiveQuery(d floorDevice) (providers.Query, bool) {
	for _, k := range []struct {
		kind providers.Kind
		norm func(string) (string, bool)
		raw  string
	}{
		{providers.KindSerial, providers.NormalizeSerial, d.SerialNumber},
		{providers.KindHostname, providers.NormalizeHostname, d.Hostname},
		{providers.KindEmail, providers.NormalizeEmail, d.Email},
	} {
		if v, ok := k.norm(k.raw); ok {
			return providers.Query{Kind: k.kind, Values: []string{v}}, true
		}
	}
	return providers.Query{}, false
}
