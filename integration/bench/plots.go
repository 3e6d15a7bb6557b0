package main

import (
	"fmt"
	"image/color"
	"math"
	"path/filepath"
	"slices"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// plots draws the report's figures as SVG files in dir and returns them
// with paths relative to the report.
func (r *Report) plots(dir string) ([]Plot, error) {
	var out []Plot
	for _, mk := range []func(string) (Plot, bool, error){
		r.plotThroughput, r.plotRelease, r.plotClients, r.plotRooms, r.plotBacklog, r.plotPolicies,
	} {
		pl, ok, err := mk(dir)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, pl)
		}
	}
	return out, nil
}

func newPlot(title, x, y string, logX, logY bool) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = x
	p.Y.Label.Text = y
	if logX {
		p.X.Scale = plot.LogScale{}
		p.X.Tick.Marker = plot.LogTicks{Prec: -1}
	}
	if logY {
		p.Y.Scale = plot.LogScale{}
		p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	}
	p.Legend.Top = true
	p.Add(plotter.NewGrid())
	return p
}

// addSeries adds a line with points; points with a non-positive or NaN
// coordinate are left out (log scales).
func addSeries(p *plot.Plot, i int, name string, xs, ys []float64) error {
	return addStyledSeries(p, i, name, xs, ys, false)
}

// addStyledSeries is addSeries with a dashed line when dashed is set (a
// variant of the series of the same colour).
func addStyledSeries(p *plot.Plot, i int, name string, xs, ys []float64, dashed bool) error {
	var pts plotter.XYs
	for k := range xs {
		if xs[k] > 0 && ys[k] > 0 && !math.IsNaN(ys[k]) && !math.IsInf(ys[k], 0) {
			pts = append(pts, plotter.XY{X: xs[k], Y: ys[k]})
		}
	}
	if len(pts) == 0 {
		return nil
	}
	l, s, err := plotter.NewLinePoints(pts)
	if err != nil {
		return err
	}
	l.Color = plotutil.Color(i)
	l.Dashes = plotutil.Dashes(0)
	if dashed {
		l.Dashes = []vg.Length{vg.Points(5), vg.Points(3)}
	}
	s.Color = plotutil.Color(i)
	s.Shape = plotutil.Shape(i)
	p.Add(l, s)
	p.Legend.Add(name, l, s)
	return nil
}

// addLine adds a line without point markers (dense series: CDFs).
func addLine(p *plot.Plot, i int, name string, xs, ys []float64) error {
	var pts plotter.XYs
	for k := range xs {
		if xs[k] > 0 && !math.IsNaN(ys[k]) {
			pts = append(pts, plotter.XY{X: xs[k], Y: ys[k]})
		}
	}
	if len(pts) == 0 {
		return nil
	}
	l, err := plotter.NewLine(pts)
	if err != nil {
		return err
	}
	l.Color = plotutil.Color(i)
	l.Dashes = plotutil.Dashes(i % 3)
	l.Width = vg.Points(1.5)
	p.Add(l)
	p.Legend.Add(name, l)
	return nil
}

// addHLine draws a dashed horizontal reference line across xs.
func addHLine(p *plot.Plot, i int, name string, lo, hi, y float64) error {
	if !(y > 0) || !(hi > lo) {
		return nil
	}
	l, err := plotter.NewLine(plotter.XYs{{X: lo, Y: y}, {X: hi, Y: y}})
	if err != nil {
		return err
	}
	l.Color = plotutil.Color(i)
	l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
	p.Add(l)
	p.Legend.Add(name, l)
	return nil
}

func save(p *plot.Plot, dir, name, caption string) (Plot, bool, error) {
	path := filepath.Join(dir, name)
	if err := p.Save(7*vg.Inch, 4.5*vg.Inch, path); err != nil {
		return Plot{}, false, err
	}
	return Plot{File: "docs/bench/" + name, Caption: caption}, true, nil
}

func (r *Report) plotThroughput(dir string) (Plot, bool, error) {
	if len(r.W1) == 0 {
		return Plot{}, false, nil
	}
	p := newPlot("W1 lock-step: throughput vs subscribers", "subscribers in the room", "messages/s acked by all", true, true)
	var xs []float64
	modes := []string{ModeGateway, ModeSeparate, ModeProcess}
	i := len(modes) // the references' colours come after the modes'
	for _, batched := range []bool{false, true} {
		// A mode keeps its colour; the batching producer's line is dashed.
		for m, mode := range modes {
			var mx, my []float64
			var producer string
			for _, row := range r.W1 {
				if row.Mode == mode && (row.Batch > 1) == batched && row.Rate.OK() {
					mx = append(mx, float64(row.S))
					my = append(my, row.Rate.Median())
					producer = row.Producer()
				}
			}
			if len(mx) > 0 {
				if err := addStyledSeries(p, m, "syncfanout, "+mode+", "+producer, mx, my, batched); err != nil {
					return Plot{}, false, err
				}
				xs = append(xs, mx...)
			}
		}
	}
	var fx, fy []float64
	for _, s := range r.Config.FanoutS {
		if f := r.Refs.Fanout[s]; f != nil && f.OK() {
			fx = append(fx, float64(s))
			fy = append(fy, f.Median())
		}
	}
	if err := addSeries(p, i, "reference: Streams fanout, no barrier", fx, fy); err != nil {
		return Plot{}, false, err
	}
	xs = append(xs, fx...)
	// Room above the highest line for the legend.
	p.Y.Max = 6 * r.Refs.PingRate.Median()
	if len(xs) > 0 {
		if err := addHLine(p, i+1, "reference: PING rate, one connection", slices.Min(xs), slices.Max(xs), r.Refs.PingRate.Median()); err != nil {
			return Plot{}, false, err
		}
	}
	return save(p, dir, "w1_throughput.svg", "W1 throughput vs subscribers")
}

func (r *Report) plotRelease(dir string) (Plot, bool, error) {
	p := newPlot("W1 release latency (last ack -> next message delivered)", "latency (µs)", "fraction of deliveries ≤ x", true, false)
	i, any := 0, false
	var hi float64
	for _, row := range r.W1 {
		if len(row.Samples) == 0 || row.Mode == ModeProcess || row.Batch > 1 {
			continue
		}
		s := slices.Clone(row.Samples)
		slices.Sort(s)
		// A CDF with at most 200 points keeps the SVG small.
		step := max(1, len(s)/200)
		var xs, ys []float64
		for k := 0; k < len(s); k += step {
			xs = append(xs, micros(s[k]))
			ys = append(ys, float64(k+1)/float64(len(s)))
		}
		xs = append(xs, micros(s[len(s)-1]))
		ys = append(ys, 1)
		hi = math.Max(hi, micros(s[len(s)-1]))
		if err := addLine(p, i, fmt.Sprintf("%s S=%d", row.Mode, row.S), xs, ys); err != nil {
			return Plot{}, false, err
		}
		i++
		any = true
	}
	if !any {
		return Plot{}, false, nil
	}
	if rtt := r.Refs.RTTMicros(); rtt > 0 {
		l, err := plotter.NewLine(plotter.XYs{{X: 1.5 * rtt, Y: 0}, {X: 1.5 * rtt, Y: 1}})
		if err != nil {
			return Plot{}, false, err
		}
		l.Color = color.Black
		l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		p.Add(l)
		p.Legend.Add("1.5 PING round trips", l)
	}
	p.Legend.Top = false
	return save(p, dir, "w1_release_latency.svg", "W1 release latency distribution")
}

func (r *Report) plotClients(dir string) (Plot, bool, error) {
	if len(r.W6Ping) == 0 {
		return Plot{}, false, nil
	}
	p := newPlot("W6 Ping cost vs clients in the system", "clients in the system", "Redis CPU per Ping (µs)", true, false)
	var xs, ys, ls []float64
	for _, row := range r.W6Ping {
		xs = append(xs, float64(row.Clients))
		ys = append(ys, row.CPU.Median())
		ls = append(ls, row.P50.Median())
	}
	if err := addSeries(p, 0, "Redis CPU per Ping", xs, ys); err != nil {
		return Plot{}, false, err
	}
	if err := addSeries(p, 1, "Ping latency p50 (µs)", xs, ls); err != nil {
		return Plot{}, false, err
	}
	if len(ys) > 0 {
		if err := addHLine(p, 2, "target: 1.2x the CPU with the fewest clients", xs[0], xs[len(xs)-1], 1.2*ys[0]); err != nil {
			return Plot{}, false, err
		}
		p.Y.Max = 1.3 * max(slices.Max(ls), 1.2*ys[0])
	}
	p.Y.Min = 0
	p.Legend.Top = false
	return save(p, dir, "w6_clients.svg", "W6 cost vs clients in the system")
}

func (r *Report) plotRooms(dir string) (Plot, bool, error) {
	if len(r.W6Rooms) == 0 {
		return Plot{}, false, nil
	}
	p := newPlot("W6 cost vs rooms followed by one reader", "rooms followed", "Redis CPU per delivery (µs)", true, false)
	var xs, ys []float64
	for _, row := range r.W6Rooms {
		xs = append(xs, float64(row.Rooms))
		ys = append(ys, row.CPU.Median())
	}
	if err := addSeries(p, 0, "Redis CPU per delivery (send + delivery + ack)", xs, ys); err != nil {
		return Plot{}, false, err
	}
	if len(ys) > 0 {
		if err := addHLine(p, 1, "target: 2x the cost with 1 room", xs[0], xs[len(xs)-1], 2*ys[0]); err != nil {
			return Plot{}, false, err
		}
		p.Y.Max = max(2.5*ys[0], 1.1*slices.Max(ys))
	}
	p.Y.Min = 0
	p.Legend.Top = false
	return save(p, dir, "w6_rooms.svg", "W6 cost vs rooms followed")
}

func (r *Report) plotBacklog(dir string) (Plot, bool, error) {
	if len(r.W6Backlog) == 0 {
		return Plot{}, false, nil
	}
	p := newPlot("W6 release latency vs backlog", "messages in the backlog", "release latency (µs)", true, false)
	var xs, p50, p99 []float64
	for _, row := range r.W6Backlog {
		xs = append(xs, float64(row.Backlog))
		p50 = append(p50, row.P50.Median())
		p99 = append(p99, row.P99.Median())
	}
	if err := addSeries(p, 0, "p50", xs, p50); err != nil {
		return Plot{}, false, err
	}
	if err := addSeries(p, 1, "p99", xs, p99); err != nil {
		return Plot{}, false, err
	}
	p.Y.Min = 0
	p.Legend.Top = true
	return save(p, dir, "w6_backlog.svg", "W6 release latency vs backlog")
}

// plotPolicies draws W7: throughput against the window for each mode and
// room size, and the slow-member rows on the same axes (lock-step and
// window=16 as a dashed line, quorum 2 of 3 as a point at W=1, where it
// runs), so that the quorum's gain reads against the lock-step point below.
func (r *Report) plotPolicies(dir string) (Plot, bool, error) {
	if len(r.W7) == 0 {
		return Plot{}, false, nil
	}
	p := newPlot("W7 barrier policies: throughput vs window", "window W (messages in flight)", "messages/s complete", true, true)
	p.X.Tick.Marker = plot.ConstantTicks{{Value: 1, Label: "1"}, {Value: 4, Label: "4"}, {Value: 16, Label: "16"}}
	window := func(row *W7Row) float64 { return float64(max(row.Policy.Window, 1)) }
	// One series per (mode, S, slow members), in the rows' order; quorum
	// rows form their own series.
	type key struct {
		mode    string
		s, slow int
		quorum  bool
	}
	var keys []key
	series := map[key][2][]float64{}
	for _, row := range r.W7 {
		if !row.Rate.OK() {
			continue
		}
		k := key{row.Mode, row.S, row.Slow, row.Policy.Quorum > 0 || row.Policy.QuorumFraction > 0}
		if _, ok := series[k]; !ok {
			keys = append(keys, k)
		}
		xy := series[k]
		xy[0] = append(xy[0], window(row))
		xy[1] = append(xy[1], row.Rate.Median())
		series[k] = xy
	}
	if len(keys) == 0 {
		return Plot{}, false, nil
	}
	i := 0
	for _, k := range keys {
		name := fmt.Sprintf("%s S=%d", k.mode, k.s)
		if k.slow > 0 {
			name += fmt.Sprintf(", %d slow", k.slow)
			if k.quorum {
				name += ", quorum 2 of 3"
			} else {
				name += ", every member acks"
			}
		}
		if err := addStyledSeries(p, i, name, series[k][0], series[k][1], k.slow > 0); err != nil {
			return Plot{}, false, err
		}
		i++
	}
	if ping := r.Refs.PingRate.Median(); ping > 0 {
		// Black: the seven palette colours are taken by the series.
		l, err := plotter.NewLine(plotter.XYs{{X: 1, Y: ping}, {X: 16, Y: ping}})
		if err != nil {
			return Plot{}, false, err
		}
		l.Color = color.Black
		l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		p.Add(l)
		p.Legend.Add("reference: PING rate, one connection", l)
		// Room above the PING line for the legend.
		p.Y.Max = 6 * ping
	}
	p.X.Min, p.X.Max = 0.8, 20
	return save(p, dir, "w7_policies.svg", "W7 throughput vs window, and quorum with one slow member")
}
