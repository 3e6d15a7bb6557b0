package main

import (
	"bufio"
	"fmt"
	"math"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Machine describes where the figures were measured.
type Machine struct {
	CPUs      int
	CPUModel  string
	MemoryGiB float64
	OS        string
	Go        string
}

func machineInfo() Machine {
	m := Machine{CPUs: runtime.NumCPU(), OS: runtime.GOOS + "/" + runtime.GOARCH, Go: runtime.Version(), CPUModel: "unknown"}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
		_ = f.Close()
	}
	if f, err := os.Open("/proc/meminfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
				kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
				m.MemoryGiB = kb / (1 << 20)
				break
			}
		}
		_ = f.Close()
	}
	return m
}

// Figure is one measured quantity over the repetitions.
type Figure struct {
	Values []float64
}

func (f *Figure) Add(v float64) { f.Values = append(f.Values, v) }

// OK reports whether the figure has at least one finite value.
func (f Figure) OK() bool {
	for _, v := range f.Values {
		if !math.IsNaN(v) && !math.IsInf(v, 0) {
			return true
		}
	}
	return false
}

func (f Figure) sorted() []float64 {
	s := make([]float64, 0, len(f.Values))
	for _, v := range f.Values {
		if !math.IsNaN(v) && !math.IsInf(v, 0) {
			s = append(s, v)
		}
	}
	slices.Sort(s)
	return s
}

// Median returns the median repetition (NaN without any).
func (f Figure) Median() float64 {
	s := f.sorted()
	if len(s) == 0 {
		return math.NaN()
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func (f Figure) Min() float64 {
	s := f.sorted()
	if len(s) == 0 {
		return math.NaN()
	}
	return s[0]
}

func (f Figure) Max() float64 {
	s := f.sorted()
	if len(s) == 0 {
		return math.NaN()
	}
	return s[len(s)-1]
}

// Fmt prints "median (min-max)" with the given formatter.
func (f Figure) Fmt(one func(float64) string) string {
	if !f.OK() {
		return "n/a"
	}
	if len(f.sorted()) == 1 {
		return one(f.Median())
	}
	return fmt.Sprintf("%s (%s-%s)", one(f.Median()), one(f.Min()), one(f.Max()))
}

// Latencies collects durations.
type Latencies []time.Duration

// Quantile returns the q-quantile (nearest rank), 0 when empty.
func (l Latencies) Quantile(q float64) time.Duration {
	if len(l) == 0 {
		return 0
	}
	s := slices.Clone(l)
	slices.Sort(s)
	i := int(math.Ceil(q*float64(len(s)))) - 1
	i = max(0, min(i, len(s)-1))
	return s[i]
}

func micros(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// Number formats for the tables.

func fInt(v float64) string {
	s := strconv.FormatFloat(math.Round(v), 'f', 0, 64)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func f1(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }
func f2(v float64) string { return strconv.FormatFloat(v, 'f', 2, 64) }

// fMicros prints a duration given in µs with a unit that keeps it short.
func fMicros(v float64) string {
	switch {
	case v >= 10000:
		return f1(v/1000) + " ms"
	case v >= 100:
		return fInt(v) + " µs"
	}
	return f1(v) + " µs"
}
