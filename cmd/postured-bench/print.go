package main

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
)

// printReport writes the baselines and one table line per cycle.
func printReport(w io.Writer, rep *report) {
	fmt.Fprintf(w, "\n%d devices, %d CPUs, %s; fleet and mocks: %.1f s to generate, %.0f MB live heap\n",
		rep.Devices, rep.CPUs, rep.GoVersion, rep.FleetSeconds, rep.BedHeapMB)
	fmt.Fprintf(w, "JSON floor (decode + encode, %d batches x %d): p50 %.2f ms, p90 %.2f ms, p99 %.2f ms\n",
		rep.Floor.Batches, floorRounds, rep.Floor.P50MS, rep.Floor.P90MS, rep.Floor.P99MS)
	for _, n := range rep.Naive {
		note := ""
		if n.Devices != 1000 {
			note = fmt.Sprintf(" (timed on %d devices, scaled to 1000)", n.Devices)
		}
		fmt.Fprintf(w, "naive integration at %d ms vendor latency: %.0f ms per 1000-device batch, calls %s%s\n",
			n.VendorLatencyMS, n.BatchMS, callList(n.VendorCallsPerBatch), note)
	}
	for _, s := range rep.Scenarios {
		if s.CrawlCalls != nil {
			fmt.Fprintf(w, "%s: start-up crawl %.2f s, calls %s\n", s.Name, s.CrawlSeconds, intCalls(s.CrawlCalls))
		}
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\tcycle\tvendor ms\tin flight\tp50 ms\tp90 ms\tp99 ms\tbatches/s\tvendor calls/batch\tmock ms/batch\tcache hits\tdevice errors\tpeak RSS MB\tpeak heap MB\tallocs/batch\tx floor\tx naive\t")
	for _, s := range rep.Scenarios {
		for _, r := range s.Rows {
			hit := "-"
			if r.CacheHitRatio != nil {
				hit = fmt.Sprintf("%.1f%%", *r.CacheHitRatio*100)
			}
			naive := "-"
			if r.NaiveRatio != nil {
				naive = fmt.Sprintf("%.3f", *r.NaiveRatio)
			}
			errs := 0
			for _, n := range r.DeviceErrors {
				errs += n
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%.1f\t%.1f\t%.1f\t%.1f\t%s\t%s\t%s\t%d\t%.0f\t%.0f\t%.0f\t%.1f\t%s\t\n",
				r.Scenario, r.Phase, r.VendorLatencyMS, r.Concurrency, r.P50MS, r.P90MS, r.P99MS, r.BatchesPerSec,
				callList(r.VendorCallsPerBatch), callList(r.MockMSPerBatch), hit, errs, r.PeakRSSMB, r.PeakHeapMB, r.AllocsPerBatch, r.FloorRatio, naive)
		}
	}
	_ = tw.Flush()
}

// callList renders per-vendor calls as "crowdstrike 12.0 / intune 0.0 / ...".
func callList(m map[string]float64) string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = fmt.Sprintf("%s %.1f", abbrev(n), m[n])
	}
	return strings.Join(parts, " / ")
}

func intCalls(m map[string]int) string {
	f := make(map[string]float64, len(m))
	for k, v := range m {
		f[k] = float64(v)
	}
	return strings.ReplaceAll(callList(f), ".0", "")
}

// abbrev shortens a vendor name for the table: cs, in, jamf.
func abbrev(name string) string {
	switch name {
	case "crowdstrike":
		return "cs"
	case "intune":
		return "in"
	}
	return name
}
