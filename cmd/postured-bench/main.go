// Command postured-bench is postured's load tool. It generates a mock
// fleet, serves the vendor mocks, and for each scenario starts a fresh
// postured in-process against them and plays Cloudflare: whole polling
// cycles in 1000-device batches with signed Access tokens. Per scenario it
// prints a table and writes JSON (-out) with batch latency percentiles,
// throughput, vendor calls per batch, cache hit ratio, memory and
// allocations, next to two baselines measured in the same run: the JSON
// floor and a naive one-call-per-device integration. -chart draws latency
// against concurrency and vendor latency; -soak runs a long polling soak
// with random vendor faults instead. BENCHMARKS.md records its results.
//
// It lives apart from cmd/postured so the service binary links no mock and
// no plotting library.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "postured-bench:", err)
		stop()
		os.Exit(1)
	}
}

// options are the command line.
type options struct {
	devices     int
	seed        uint64
	quick       bool
	scenarios   []string
	out         string
	chart       string
	naiveSample int
	soak        time.Duration
	sample      time.Duration
	cpuProfile  string
	memProfile  string
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("postured-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&o.devices, "devices", 100_000, "devices in the generated fleet")
	fs.Uint64Var(&o.seed, "seed", 1, "fleet seed")
	fs.BoolVar(&o.quick, "quick", false, "run only the quick scenarios (no 16-batch concurrency, no 200 ms vendor latency)")
	only := fs.String("scenarios", "", "comma-separated scenario names to run (default: all, or the quick ones with -quick); -list shows them")
	list := fs.Bool("list", false, "list the scenarios and exit")
	fs.StringVar(&o.out, "out", "", "write the results as JSON to this file")
	fs.StringVar(&o.chart, "chart", "", "draw latency against concurrency and vendor latency to this .svg or .png file")
	fs.IntVar(&o.naiveSample, "naive-sample", 20, "devices the naive baseline times when vendors have latency (at 0 ms it times a whole batch)")
	fs.DurationVar(&o.soak, "soak", 0, "instead of the scenarios, poll for this long with random vendor faults, sampling memory and goroutines")
	fs.DurationVar(&o.sample, "sample", 10*time.Second, "soak: time between samples")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the scenarios (mocks included) to this file")
	fs.StringVar(&o.memProfile, "memprofile", "", "soak: write heap profiles (mocks included) to this file at the end and to FILE.base at the baseline sample; compare with go tool pprof -base")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if *list {
		for _, sc := range plan() {
			fmt.Fprintf(stderr, "%-12s mode %-13s vendor latency %-6s %2d batches in flight  quick: %v\n",
				sc.Name, sc.Mode, sc.Latency, sc.Concurrency, sc.Quick)
		}
		return o, flag.ErrHelp
	}
	switch {
	case fs.NArg() > 0:
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	case o.devices < 1:
		return o, errors.New("-devices must be >= 1")
	case o.naiveSample < 1:
		return o, errors.New("-naive-sample must be >= 1")
	case o.soak < 0 || (o.soak > 0 && o.sample <= 0):
		return o, errors.New("-soak must be >= 0 and -sample > 0")
	}
	known := map[string]bool{}
	for _, sc := range plan() {
		known[sc.Name] = true
	}
	if *only != "" {
		for n := range strings.SplitSeq(*only, ",") {
			n = strings.TrimSpace(n)
			if !known[n] {
				return o, fmt.Errorf("-scenarios: no scenario %q (-list shows them)", n)
			}
			o.scenarios = append(o.scenarios, n)
		}
	}
	return o, nil
}

// selected are the scenarios o asks for, in plan order.
func (o options) selected() []scenario {
	var out []scenario
	for _, sc := range plan() {
		switch {
		case len(o.scenarios) > 0:
			if slices.Contains(o.scenarios, sc.Name) {
				out = append(out, sc)
			}
		case !o.quick || sc.Quick:
			out = append(out, sc)
		}
	}
	return out
}

// report is the JSON -out writes.
type report struct {
	Date      time.Time `json:"date"`
	Args      []string  `json:"args"`
	GoVersion string    `json:"go_version"`
	Platform  string    `json:"platform"`
	CPUs      int       `json:"cpus"`
	Devices   int       `json:"devices"`
	Seed      uint64    `json:"seed"`
	// FleetSeconds is the time to generate the fleet and its mocks, and
	// BedHeapMB their live heap: in every RSS and heap figure below.
	FleetSeconds float64          `json:"fleet_seconds"`
	BedHeapMB    float64          `json:"bed_heap_mb"`
	Floor        floorResult      `json:"floor"`
	Naive        []naiveResult    `json:"naive"`
	Scenarios    []scenarioResult `json:"scenarios"`
	Soak         *soakReport      `json:"soak,omitempty"`
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	rep := &report{Date: time.Now().UTC(), Args: args, GoVersion: runtime.Version(),
		Platform: runtime.GOOS + "/" + runtime.GOARCH, CPUs: runtime.NumCPU(), Devices: o.devices, Seed: o.seed}
	fmt.Fprintf(stderr, "generating a %d-device fleet and its vendor mocks...\n", o.devices)
	t0 := time.Now()
	b, err := newBed(o.devices, o.seed)
	if err != nil {
		return err
	}
	defer b.close()
	rep.FleetSeconds = time.Since(t0).Seconds()
	bedHeap := liveHeap()
	rep.BedHeapMB = mb(bedHeap)

	if o.soak > 0 {
		s, err := b.soak(ctx, o.soak, o.sample, o.memProfile, stdout)
		if err != nil {
			return err
		}
		rep.Soak = s
		printSoak(stdout, s)
		return writeJSON(o.out, rep)
	}

	scenarios := o.selected()
	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	bodies, err := b.batchBodies()
	if err != nil {
		return err
	}
	fmt.Fprintln(stderr, "baseline: JSON floor...")
	if rep.Floor, err = measureFloor(bodies); err != nil {
		return err
	}
	var latencies []time.Duration
	for _, sc := range scenarios {
		if !slices.Contains(latencies, sc.Latency) {
			latencies = append(latencies, sc.Latency)
		}
	}
	for _, l := range latencies {
		n := 1000
		if l > 0 {
			n = o.naiveSample
		}
		fmt.Fprintf(stderr, "baseline: naive integration at %s vendor latency...\n", l)
		nr, err := b.measureNaive(ctx, l, n)
		if err != nil {
			return err
		}
		rep.Naive = append(rep.Naive, nr)
	}
	for _, sc := range scenarios {
		fmt.Fprintf(stderr, "scenario %s...\n", sc.Name)
		res, err := b.runScenario(ctx, sc, bedHeap)
		if err != nil {
			return err
		}
		for i := range res.Rows {
			rep.ratios(&res.Rows[i])
		}
		rep.Scenarios = append(rep.Scenarios, res)
		// A long run keeps what it has measured if it is stopped.
		if err := writeJSON(o.out, rep); err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	printReport(stdout, rep)
	if o.chart != "" {
		if err := drawChart(o.chart, rep); err != nil {
			return err
		}
	}
	return writeJSON(o.out, rep)
}

// ratios sets r's p50 against the floor and the naive integration at the
// same vendor latency.
func (rep *report) ratios(r *row) {
	if rep.Floor.P50MS > 0 {
		r.FloorRatio = r.P50MS / rep.Floor.P50MS
	}
	for _, n := range rep.Naive {
		if n.VendorLatencyMS == r.VendorLatencyMS && n.BatchMS > 0 {
			ratio := r.P50MS / n.BatchMS
			r.NaiveRatio = &ratio
		}
	}
}

func writeJSON(path string, rep *report) error {
	if path == "" {
		return nil
	}
	data, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	if err := os.WriteFile(path, append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	return nil
}
