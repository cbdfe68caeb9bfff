package main

import (
	"fmt"
	"image/color"
	"path/filepath"
	"slices"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// The PNG plots of a run, drawn with gonum.org/v1/plot. Each writer draws
// what Results holds and skips (returning "", nil) when it holds nothing.

const plotW, plotH = 18 * vg.Centimeter, 11 * vg.Centimeter

// WritePlots writes every plot Results has data for into dir and returns
// the file names written.
func (r *Results) WritePlots(dir string) ([]string, error) {
	var files []string
	for _, f := range []func(string) (string, error){r.plotLatency, r.plotFlood, r.plotGrants, r.plotMemory} {
		name, err := f(dir)
		if err != nil {
			return files, err
		}
		if name != "" {
			files = append(files, name)
		}
	}
	return files, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// plotLatency: the empirical CDF of each subject's latency, on a log time
// axis (the peers are 10-100x slower than Sesame).
func (r *Results) plotLatency(dir string) (string, error) {
	if len(r.Latency) == 0 {
		return "", nil
	}
	p := plot.New()
	p.Title.Text = "Last knock / SPA packet sent → port reachable"
	p.X.Label.Text = "latency (ms, log scale)"
	p.Y.Label.Text = "fraction of tries"
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = plot.LogTicks{Prec: -1}
	p.Y.Min, p.Y.Max = 0, 1
	p.Legend.Top = false
	p.Legend.Left = false
	var lines []any
	for _, subj := range sortedKeys(r.Latency) {
		s := slices.Clone(r.Latency[subj])
		slices.Sort(s)
		if len(s) == 0 {
			continue
		}
		xys := make(plotter.XYs, len(s))
		for i, v := range s {
			xys[i].X = max(v/1000, 0.001) // ms; a log axis needs > 0
			xys[i].Y = float64(i+1) / float64(len(s))
		}
		lines = append(lines, subj, xys)
	}
	if len(lines) == 0 {
		return "", nil
	}
	if err := plotutil.AddLines(p, lines...); err != nil {
		return "", fmt.Errorf("latency plot: %w", err)
	}
	p.Add(plotter.NewGrid())
	return save(p, dir, "latency-cdf.png")
}

// plotFlood: legitimate tries that opened the port during the flood, per
// subject, as a percentage.
func (r *Results) plotFlood(dir string) (string, error) {
	if len(r.Flood) == 0 {
		return "", nil
	}
	p := plot.New()
	p.Title.Text = "Legitimate opens during the flood"
	p.Y.Label.Text = "success (%)"
	p.Y.Min, p.Y.Max = 0, 100
	vals := make(plotter.Values, len(r.Flood))
	names := make([]string, len(r.Flood))
	for i, f := range r.Flood {
		if f.Tries > 0 {
			vals[i] = 100 * float64(f.OK) / float64(f.Tries)
		}
		names[i] = f.Subject
	}
	bars, err := plotter.NewBarChart(vals, vg.Points(28))
	if err != nil {
		return "", fmt.Errorf("flood plot: %w", err)
	}
	bars.Color = color.RGBA{R: 60, G: 110, B: 180, A: 255}
	p.Add(bars, plotter.NewGrid())
	p.NominalX(names...)
	p.X.Tick.Label.Rotation = 0.35
	p.X.Tick.Label.XAlign = -0.9
	return save(p, dir, "flood-success.png")
}

// plotGrants: connection setup time against live grants, one line per
// backend, p50 solid and p99 dashed.
func (r *Results) plotGrants(dir string) (string, error) {
	if len(r.Grants) == 0 {
		return "", nil
	}
	by := map[string][]GrantPoint{}
	for _, g := range r.Grants {
		by[g.Backend] = append(by[g.Backend], g)
	}
	p := plot.New()
	p.Title.Text = "New TCP connection setup time vs live grants"
	p.X.Label.Text = "live grants"
	p.Y.Label.Text = "connect() time (µs)"
	p.Legend.Top = true
	p.Legend.Left = true
	var lines []any
	for _, be := range sortedKeys(by) {
		pts := by[be]
		slices.SortFunc(pts, func(a, b GrantPoint) int { return a.Grants - b.Grants })
		p50 := make(plotter.XYs, len(pts))
		p99 := make(plotter.XYs, len(pts))
		for i, g := range pts {
			p50[i] = plotter.XY{X: float64(g.Grants), Y: g.P50}
			p99[i] = plotter.XY{X: float64(g.Grants), Y: g.P99}
		}
		lines = append(lines, be+" p50", p50, be+" p99", p99)
	}
	if err := plotutil.AddLinePoints(p, lines...); err != nil {
		return "", fmt.Errorf("grants plot: %w", err)
	}
	p.Add(plotter.NewGrid())
	return save(p, dir, "connect-vs-grants.png")
}

// plotMemory: resident memory against distinct sources, per subject.
func (r *Results) plotMemory(dir string) (string, error) {
	if len(r.Memory) == 0 {
		return "", nil
	}
	p := plot.New()
	p.Title.Text = "Daemon resident memory while distinct spoofed sources knock"
	p.X.Label.Text = "distinct sources (thousands)"
	p.Y.Label.Text = "RSS (MiB)"
	p.Y.Min = 0
	p.Legend.Top = true
	p.Legend.Left = true
	var lines []any
	for _, subj := range sortedKeys(r.Memory) {
		pts := r.Memory[subj]
		xys := make(plotter.XYs, len(pts))
		for i, m := range pts {
			xys[i] = plotter.XY{X: float64(m.Sources) / 1000, Y: m.RSSKiB / 1024}
		}
		lines = append(lines, subj, xys)
	}
	if err := plotutil.AddLines(p, lines...); err != nil {
		return "", fmt.Errorf("memory plot: %w", err)
	}
	limit := plotter.NewFunction(func(float64) float64 { return 64 })
	limit.Dashes = []vg.Length{vg.Points(4), vg.Points(4)}
	limit.Color = color.RGBA{R: 200, A: 255}
	p.Add(limit, plotter.NewGrid())
	p.Legend.Add("goal: 64 MiB", limit)
	return save(p, dir, "memory-vs-sources.png")
}

func save(p *plot.Plot, dir, name string) (string, error) {
	if err := p.Save(plotW, plotH, filepath.Join(dir, name)); err != nil {
		return "", fmt.Errorf("saving %s: %w", name, err)
	}
	return name, nil
}
