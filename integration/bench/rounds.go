package main

import (
	"reflect"
	"time"
)

// A full run measures everything in Rounds rounds, each against a
// redis-server of its own started afresh (or REDIS_ADDR), one after the
// other, and reports each figure over the values of all rounds. A figure
// taken minutes apart on a fresh server is one a reader can get again; the
// repetitions of one round, seconds apart on one server, share whatever
// that server and the machine were doing then (issue 14: a rerun minutes
// later did not reproduce a single-invocation report).

// Round records when a round ran.
type Round struct {
	Started time.Time
	Elapsed time.Duration
	PING    float64 // the round's own PING rate (median of its repetitions)
}

// mergeRound adds the figures of one round's report to the run's report.
// Rows are created in the same order in every round (the configuration is
// the same), so they match by position.
func (r *Report) mergeRound(round *Report) {
	for _, name := range []string{"Refs", "W1", "W2", "W3", "W4", "W6Ping", "W6Rooms", "W6Backlog", "W7"} {
		mergeValue(reflect.ValueOf(r).Elem().FieldByName(name), reflect.ValueOf(round).Elem().FieldByName(name))
	}
}

var figureType = reflect.TypeOf(Figure{})

// mergeValue appends src's measured values to dst's: a Figure's values and
// a sample list are appended, rows and map entries merged by position and
// key, and everything else (the row's identity: mode, S, rooms) kept.
func mergeValue(dst, src reflect.Value) {
	switch dst.Kind() {
	case reflect.Pointer:
		if src.IsNil() {
			return
		}
		if dst.IsNil() {
			dst.Set(src)
			return
		}
		mergeValue(dst.Elem(), src.Elem())
	case reflect.Struct:
		if dst.Type() == figureType {
			f := dst.Addr().Interface().(*Figure)
			f.Values = append(f.Values, src.Interface().(Figure).Values...)
			return
		}
		for i := 0; i < dst.NumField(); i++ {
			if dst.Type().Field(i).IsExported() {
				mergeValue(dst.Field(i), src.Field(i))
			}
		}
	case reflect.Slice:
		if k := dst.Type().Elem().Kind(); k == reflect.Pointer || k == reflect.Struct {
			for i := 0; i < src.Len(); i++ {
				if i < dst.Len() {
					mergeValue(dst.Index(i), src.Index(i))
				} else {
					dst.Set(reflect.Append(dst, src.Index(i)))
				}
			}
			return
		}
		dst.Set(reflect.AppendSlice(dst, src)) // samples
	case reflect.Map:
		if src.IsNil() {
			return
		}
		if dst.IsNil() {
			dst.Set(reflect.MakeMap(dst.Type()))
		}
		it := src.MapRange()
		for it.Next() {
			if d := dst.MapIndex(it.Key()); d.IsValid() && d.Kind() == reflect.Pointer {
				mergeValue(d, it.Value())
			} else if !d.IsValid() {
				dst.SetMapIndex(it.Key(), it.Value())
			}
		}
	case reflect.String:
		if dst.String() == "" {
			dst.SetString(src.String())
		}
	}
}

// originalRef is the original library (redis-sync-fanout-queue-go at its
// latest commit, its best configuration: one worker and synchronous acks
// for W1, 4 or 8 workers with concurrent acks for W2) measured side by
// side with this one on the same redis-server, interleaved: each rate
// divided by the PING rate of one connection measured in the same run
// (issue 14's run, PING 22,075/s). A rerun on 2026-12-06 (5 repetitions,
// messages sent up front, on a machine at load average ~25) gave medians
// of 0.19, 0.058, 0.0105 and 0.98 x PING; the last swung with a PING rate
// that varied 30x within minutes, so the quieter run's ratios are used.
var originalRef = struct {
	Measured                string
	W1S1, W1S10, W1S100, W2 float64
}{
	Measured: "issue 14's run: 4,441, 1,536, 212 and 8,934 msgs/s at 22,075 PINGs/s",
	W1S1:     4441.0 / 22075, W1S10: 1536.0 / 22075, W1S100: 212.0 / 22075, W2: 8934.0 / 22075,
}
