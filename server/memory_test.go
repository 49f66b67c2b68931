package server

import (
	"bytes"
	"context"
	"fmt"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/postured/postured/aggregate"
	"github.com/postured/postured/providers"
)

// scoringEngine scores a device by its serial and counts devices asked.
type scoringEngine struct {
	asked []aggregate.Device
}

func (e *scoringEngine) Evaluate(_ context.Context, devices []aggregate.Device) ([]aggregate.Result, aggregate.Stats) {
	e.asked = append(e.asked, devices...)
	out := make([]aggregate.Result, len(devices))
	for i, d := range devices {
		out[i] = result(d.ID, 77)
	}
	return out, aggregate.Stats{Devices: len(devices)}
}

func result(id string, score int) aggregate.Result {
	return aggregate.Result{DeviceID: id, S2SID: "s2s-" + id, Score: score, Providers: []aggregate.ProviderResult{
		{Provider: "intune", Outcome: aggregate.OutcomeMatched, Score: score, Counted: true, RecordID: "r-" + id},
		{Provider: "jamf", Outcome: aggregate.OutcomeError, Score: 0, Counted: false},
		{Provider: "crowdstrike", Outcome: aggregate.OutcomeStale, Score: 100, Counted: true},
	}}
}

func devicesAndResults(n, score int) ([]aggregate.Device, []aggregate.Result) {
	devices := make([]aggregate.Device, n)
	results := make([]aggregate.Result, n)
	for i := range n {
		id := fmt.Sprintf("dev-%d", i)
		devices[i] = aggregate.Device{ID: id, Serial: "SER" + id, Email: id + "@example.com"}
		results[i] = result(id, score)
	}
	return devices, results
}

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func newMemory(max int) (*PostureMemory, *scoringEngine, *clock) {
	eng := &scoringEngine{}
	clk := &clock{t: time.Date(2026, 12, 1, 4, 0, 0, 0, time.UTC)}
	return NewPostureMemory(PostureMemoryConfig{Engine: eng, Fresh: 5 * time.Minute, Retain: time.Hour,
		Deadline: time.Second, MaxDevices: max, Now: clk.now}), eng, clk
}

func TestPostureMemory(t *testing.T) {
	t.Run("remembers what External Evaluation reads", func(t *testing.T) {
		m, eng, _ := newMemory(10)
		devices, results := devicesAndResults(3, 42)
		m.Record(devices, results)
		got, ok := m.DevicePosture(t.Context(), "dev-1")
		want := toPosture(results[1], got.At)
		if !ok || !reflect.DeepEqual(got, want) || got.At.IsZero() {
			t.Fatalf("got %+v, %v\nwant %+v", got, ok, want)
		}
		if len(eng.asked) != 0 {
			t.Fatalf("a fresh posture was recomputed: %v", eng.asked)
		}
	})
	t.Run("unknown device", func(t *testing.T) {
		m, _, _ := newMemory(10)
		if _, ok := m.DevicePosture(t.Context(), "nobody"); ok {
			t.Fatal("an unknown device has a posture")
		}
	})
	t.Run("stale posture is recomputed from the remembered identifiers", func(t *testing.T) {
		m, eng, clk := newMemory(10)
		devices, results := devicesAndResults(2, 42)
		m.Record(devices, results)
		clk.t = clk.t.Add(6 * time.Minute)
		got, ok := m.DevicePosture(t.Context(), "dev-0")
		if !ok || got.Score != 77 || len(eng.asked) != 1 || eng.asked[0] != devices[0] {
			t.Fatalf("got %+v %v, engine asked %+v", got, ok, eng.asked)
		}
		if again, _ := m.DevicePosture(t.Context(), "dev-0"); again.Score != 77 || len(eng.asked) != 1 {
			t.Fatalf("the recomputed posture was not remembered: %+v, %d evaluations", again, len(eng.asked))
		}
	})
	t.Run("the last batch's identifiers are the ones recomputed from", func(t *testing.T) {
		m, eng, clk := newMemory(10)
		devices, results := devicesAndResults(1, 42)
		m.Record(devices, results)
		moved := devices[0]
		moved.Serial, moved.MAC, moved.Email = "NEWSERIAL", "aa:bb:cc:dd:ee:ff", ""
		m.Record([]aggregate.Device{moved}, results)
		clk.t = clk.t.Add(6 * time.Minute)
		if _, ok := m.DevicePosture(t.Context(), "dev-0"); !ok || len(eng.asked) != 1 || eng.asked[0] != moved {
			t.Fatalf("recomputed from %+v, want %+v", eng.asked, moved)
		}
		if m.Len() != 1 {
			t.Fatalf("holds %d devices, want 1", m.Len())
		}
	})
	t.Run("identifiers no normaliser accepts are not kept", func(t *testing.T) {
		m, eng, clk := newMemory(10)
		devices, results := devicesAndResults(1, 42)
		devices[0].Hostname = strings.Repeat("h", providers.MaxIdentifierLen+1)
		devices[0].MAC = "  " + strings.Repeat("a", providers.MaxIdentifierLen) + "  " // usable once trimmed
		m.Record(devices, results)
		clk.t = clk.t.Add(6 * time.Minute)
		want := devices[0]
		want.Hostname = ""
		if _, ok := m.DevicePosture(t.Context(), "dev-0"); !ok || len(eng.asked) != 1 || eng.asked[0] != want {
			t.Fatalf("recomputed from %+v, want %+v", eng.asked, want)
		}
	})
	t.Run("forgotten after retain", func(t *testing.T) {
		m, _, clk := newMemory(10)
		m.Record(devicesAndResults(1, 42))
		clk.t = clk.t.Add(time.Hour)
		if _, ok := m.DevicePosture(t.Context(), "dev-0"); ok {
			t.Fatal("a device was remembered past retain")
		}
	})
	t.Run("a device without an id is not remembered", func(t *testing.T) {
		m, _, _ := newMemory(10)
		m.Record([]aggregate.Device{{}}, []aggregate.Result{result("", 42)})
		if m.Len() != 0 || len(m.Since(time.Time{})) != 0 {
			t.Fatalf("remembered %d devices without an id", m.Len())
		}
	})
	t.Run("a result that is not the device's is not remembered", func(t *testing.T) {
		m, _, _ := newMemory(10)
		devices, results := devicesAndResults(2, 42)
		results[0], results[1] = results[1], results[0]
		m.Record(devices, results)
		if m.Len() != 0 {
			t.Fatalf("remembered %d devices from mismatched results", m.Len())
		}
	})
}

func TestPostureMemoryBounded(t *testing.T) {
	m, _, clk := newMemory(3)
	devices, results := devicesAndResults(5, 42)
	m.Record(devices[:4], results[:4])
	if m.Len() != 3 {
		t.Fatalf("holds %d devices, bound 3", m.Len())
	}
	if _, ok := m.DevicePosture(t.Context(), "dev-3"); ok {
		t.Fatal("a device past the bound was remembered")
	}
	// dev-0 expires; the others are refreshed: the new device takes dev-0's
	// slot.
	clk.t = clk.t.Add(30 * time.Minute)
	m.Record(devices[1:3], results[1:3])
	clk.t = clk.t.Add(31 * time.Minute)
	m.Record(devices[4:], results[4:])
	if m.Len() != 3 {
		t.Fatalf("holds %d devices, bound 3", m.Len())
	}
	for id, want := range map[string]bool{"dev-0": false, "dev-1": true, "dev-2": true, "dev-4": true} {
		if _, ok := m.DevicePosture(t.Context(), id); ok != want {
			t.Errorf("%s remembered: %v, want %v", id, ok, want)
		}
	}
}

// TestPostureMemoryRecordAllocs: recording a batch of devices already
// remembered costs no allocation, so a polling cycle does not churn the
// heap in proportion to the fleet.
func TestPostureMemoryRecordAllocs(t *testing.T) {
	m, _, _ := newMemory(2000)
	devices, results := devicesAndResults(1000, 42)
	m.Record(devices, results)
	if n := testing.AllocsPerRun(10, func() { m.Record(devices, results) }); n != 0 {
		t.Fatalf("Record of known devices: %v allocations", n)
	}
}

// TestPostureMemoryMetric: /metrics says how many devices the posture
// memory holds, so an operator sees it reach its bound.
func TestPostureMemoryMetric(t *testing.T) {
	m, _, _ := newMemory(10)
	ts := newInsecure(t, func(c *Config) { c.Observers = []BatchObserver{m} })
	if w := ts.do("POST", "/posture", devicesJSON(3)); w.Code != 200 {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	want := `# HELP postured_posture_memory_devices Devices the posture memory holds (External Evaluation, what-if).
# TYPE postured_posture_memory_devices gauge
postured_posture_memory_devices 3
`
	if err := testutil.GatherAndCompare(ts.reg, strings.NewReader(want), "postured_posture_memory_devices"); err != nil {
		t.Fatal(err)
	}
}

// Since is what-if's list of recent devices: the memory's own, so a fleet
// is held once, whatever reads it.
func TestPostureMemorySince(t *testing.T) {
	m, _, clk := newMemory(10)
	record := func(ids ...string) {
		var devices []aggregate.Device
		var results []aggregate.Result
		for _, id := range ids {
			devices = append(devices, aggregate.Device{ID: id, Serial: "S-" + id, MAC: "m-" + id, Hostname: "h-" + id, Email: id + "@example.com"})
			results = append(results, result(id, 60))
		}
		m.Record(devices, results)
	}
	record("d2", "d1")
	clk.t = clk.t.Add(time.Hour)
	record("d3", "d1")
	tests := []struct {
		name  string
		since time.Time
		want  []string
	}{
		{"the last minute: ordered by id", clk.t.Add(-time.Minute), []string{"d1", "d3"}},
		{"two hours", clk.t.Add(-2 * time.Hour), []string{"d1", "d2", "d3"}},
		{"the zero time: every device", time.Time{}, []string{"d1", "d2", "d3"}},
		{"the future: none", clk.t.Add(time.Second), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := m.Since(tc.since)
			var ids []string
			for _, d := range got {
				ids = append(ids, d.ID)
				want := aggregate.Device{ID: d.ID, Serial: "S-" + d.ID, MAC: "m-" + d.ID, Hostname: "h-" + d.ID, Email: d.ID + "@example.com"}
				if d != want {
					t.Errorf("device %+v, want %+v", d, want)
				}
			}
			if !reflect.DeepEqual(ids, tc.want) {
				t.Errorf("Since = %v, want %v", ids, tc.want)
			}
		})
	}
}

// The memory copies the s2s_id: the one in a result is a slice of the sync
// index's string of every identifier, which a shared copy would keep alive
// after the next crawl replaced the index, for a day, crawl after crawl.
func TestPostureMemoryKeepsNoIndexString(t *testing.T) {
	m, _, _ := newMemory(10)
	devices, results := devicesAndResults(1, 70)
	collected := make(chan struct{})
	func() {
		blob := []byte("the index's identifiers ... rec-42 ... and more")
		runtime.AddCleanup(&blob[0], func(ch chan struct{}) { close(ch) }, collected)
		i := bytes.Index(blob, []byte("rec-42"))
		results[0].S2SID = unsafe.String(&blob[i], len("rec-42"))
		m.Record(devices, results)
		results[0].S2SID = "" // the batch is answered and gone
	}()
	deadline := time.After(10 * time.Second) // a failure bound, not an ordering
	for collected != nil {
		runtime.GC()
		select {
		case <-collected:
			collected = nil
		case <-deadline:
			t.Fatal("the memory still holds the index's string")
		case <-time.After(10 * time.Millisecond):
		}
	}
	got, ok := m.DevicePosture(t.Context(), devices[0].ID)
	if !ok || got.S2SID != "rec-42" {
		t.Fatalf("s2s_id %q (%v), want rec-42", got.S2SID, ok)
	}
	// A new s2s_id for the same identifiers (the vendor re-enrolled the
	// machine) replaces the old one.
	results[0].S2SID = "rec-43"
	m.Record(devices, results)
	if got, _ := m.DevicePosture(t.Context(), devices[0].ID); got.S2SID != "rec-43" {
		t.Fatalf("s2s_id %q after a change, want rec-43", got.S2SID)
	}
}

// The memory's own hash table (memtable.go) finds every device it holds,
// and only those, through growth, sweeps and slot reuse.
func TestPostureMemoryTable(t *testing.T) {
	for _, n := range []int{1, 15, 16, 17, 1000, 5000} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			m, _, clk := newMemory(n)
			devices, results := devicesAndResults(2*n, 50)
			// Half now, half 40 minutes later: at an hour the first half
			// has expired, and the second half needs their slots.
			m.Record(devices[:n/2], results[:n/2])
			clk.t = clk.t.Add(40 * time.Minute)
			m.Record(devices[n/2:n], results[n/2:n])
			clk.t = clk.t.Add(21 * time.Minute)
			m.Record(devices[n:n+n/2], results[n:n+n/2])
			remembered := make(map[string]bool)
			for _, d := range devices[n/2 : n+n/2] {
				remembered[d.ID] = true
			}
			if m.Len() != len(remembered) {
				t.Fatalf("holds %d devices, want %d", m.Len(), len(remembered))
			}
			for _, d := range devices {
				got, ok := m.DevicePosture(t.Context(), d.ID)
				if ok != remembered[d.ID] {
					t.Fatalf("%s remembered: %v, want %v", d.ID, ok, remembered[d.ID])
				}
				if ok && (got.DeviceID != d.ID || got.S2SID != "s2s-"+d.ID) {
					t.Fatalf("%s: found %s (%s)", d.ID, got.DeviceID, got.S2SID)
				}
			}
		})
	}
}
