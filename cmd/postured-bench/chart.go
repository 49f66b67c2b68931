package main

import (
	"errors"
	"fmt"
	"image/color"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"
)

// series is one line of a chart panel: a percentile of one phase.
type series struct {
	name   string
	phase  string
	value  func(row) float64
	colour color.Color
	dashed bool
}

var chartSeries = []series{
	{"cold p50", "cold", func(r row) float64 { return r.P50MS }, color.RGBA{R: 200, G: 60, B: 40, A: 255}, false},
	{"cold p99", "cold", func(r row) float64 { return r.P99MS }, color.RGBA{R: 200, G: 60, B: 40, A: 255}, true},
	{"warm p50", "warm", func(r row) float64 { return r.P50MS }, color.RGBA{R: 40, G: 90, B: 200, A: 255}, false},
	{"warm p99", "warm", func(r row) float64 { return r.P99MS }, color.RGBA{R: 40, G: 90, B: 200, A: 255}, true},
}

// drawChart draws two panels of query-mode batch latency (no injected
// fault, budgets lifted): against batches in flight with instant vendors,
// and against vendor latency at 4 in flight. The file's extension picks
// SVG or PNG.
func drawChart(path string, rep *report) error {
	var plain []row
	for _, s := range rep.Scenarios {
		for _, r := range s.Rows {
			if r.Mode == modeQuery && r.Fault == "" && !r.Budgets {
				plain = append(plain, r)
			}
		}
	}
	byConc, err := panel(plain, "batch latency vs batches in flight (vendors instant)", "batches in flight",
		func(r row) (float64, bool) { return float64(r.Concurrency), r.VendorLatencyMS == 0 })
	if err != nil {
		return err
	}
	byLat, err := panel(plain, "batch latency vs vendor latency (4 batches in flight)", "vendor latency per call (ms)",
		func(r row) (float64, bool) { return float64(r.VendorLatencyMS), r.Concurrency == 4 })
	if err != nil {
		return err
	}
	const w, h = 26 * vg.Centimeter, 11 * vg.Centimeter
	var c interface {
		vg.CanvasSizer
		io.WriterTo
	}
	switch strings.ToLower(filepath.Ext(path)) {
	case ".svg":
		c = vgsvg.New(w, h)
	case ".png":
		c = vgimg.PngCanvas{Canvas: vgimg.New(w, h)}
	default:
		return fmt.Errorf("chart: %s: want a .svg or .png file", path)
	}
	dc := draw.New(c)
	tiles := draw.Tiles{Rows: 1, Cols: 2, PadX: vg.Centimeter, PadTop: vg.Millimeter * 3, PadBottom: vg.Millimeter * 3, PadLeft: vg.Millimeter * 3, PadRight: vg.Millimeter * 3}
	plots := [][]*plot.Plot{{byConc, byLat}}
	canvases := plot.Align(plots, tiles, dc)
	for i, p := range plots[0] {
		p.Draw(canvases[0][i])
	}
	f, err := os.Create(path) // #nosec G304 -- the operator's -chart output path
	if err != nil {
		return fmt.Errorf("chart: %w", err)
	}
	if _, err := c.WriteTo(f); err != nil {
		_ = f.Close()
		return fmt.Errorf("chart: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("chart: %w", err)
	}
	return nil
}

// panel plots the rows x accepts, one line per series, latency on a log
// axis (cold and warm differ by orders of magnitude).
func panel(rows []row, title, xLabel string, x func(row) (float64, bool)) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = xLabel
	p.Y.Label.Text = "batch latency (ms, log)"
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	p.Legend.Top = true
	p.Legend.Left = true
	drawn := 0
	var ticks []plot.Tick
	for _, s := range chartSeries {
		var pts plotter.XYs
		for _, r := range rows {
			xv, ok := x(r)
			if !ok || r.Phase != s.phase || s.value(r) <= 0 {
				continue
			}
			pts = append(pts, plotter.XY{X: xv, Y: s.value(r)})
			if !slices.ContainsFunc(ticks, func(t plot.Tick) bool { return t.Value == xv }) {
				ticks = append(ticks, plot.Tick{Value: xv, Label: fmt.Sprint(xv)})
			}
		}
		if len(pts) == 0 {
			continue
		}
		slices.SortFunc(pts, func(a, b plotter.XY) int {
			switch {
			case a.X < b.X:
				return -1
			case a.X > b.X:
				return 1
			}
			return 0
		})
		line, points, err := plotter.NewLinePoints(pts)
		if err != nil {
			return nil, fmt.Errorf("chart: %w", err)
		}
		line.Color, points.Color = s.colour, s.colour
		if s.dashed {
			line.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		}
		p.Add(line, points)
		p.Legend.Add(s.name, line, points)
		drawn++
	}
	if drawn == 0 {
		return nil, errors.New("chart: no query-mode scenario to draw: run query, query-c1, query-c16 or query-50ms/-200ms")
	}
	p.X.Tick.Marker = plot.ConstantTicks(ticks)
	p.Y.Max *= 20 // headroom above the lines for the legend
	return p, nil
}
