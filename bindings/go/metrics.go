package turn

/*
#include <stdint.h>
#include <stdlib.h>
#include "turn.h"

// The locker's metrics text into a buffer of len bytes (see
// turn_locker_metrics); *needed the size it takes.
static turn_result go_metrics(uintptr_t l, char *buf, size_t len, size_t *needed) {
	return turn_locker_metrics((const turn_locker *)l, buf, len, needed);
}
*/
import "C"

import (
	"bufio"
	"runtime"
	"strconv"
	"strings"
	"time"
	"unsafe"
)

// Metrics is what a locker counted of its own work (Locker.Metrics): the
// values, and Text, the same in the Prometheus text format (0.0.4), every
// name turn_..., no label naming a resource, for a /metrics endpoint.
type Metrics struct {
	// Acquires granted by their draw, and after waiting.
	AcquiredAtOnce, AcquiredAfterWaiting uint64
	// Acquires that ended without a lock: timed out, canceled, a try
	// that found the lock taken, any other error.
	Timeouts, Cancels, WouldBlock, Failed uint64
	// Held locks lost.
	Lost uint64
	// Waits ended by the release of the ticket before them.
	Handoffs uint64
	// Heartbeat beats, and those longer than a third of the shortest
	// lease among their tickets.
	Beats, SlowBeats uint64
	// Connections that broke.
	Reconnections uint64
	// Wait is the histogram of the time from an acquire's start to its
	// grant; Hold, from a grant to the release.
	Wait, Hold Histogram
	// Text is all of the above in the Prometheus text format.
	Text string
}

// Histogram is a histogram of durations.
type Histogram struct {
	// Buckets ascending, each counting the durations up to its bound
	// (cumulative); Count counts them all (the +Inf bucket).
	Buckets []Bucket
	Count   uint64
	Sum     time.Duration
}

// Bucket is one bucket of a Histogram.
type Bucket struct {
	UpperBound time.Duration
	Count      uint64
}

// Metrics reads what this locker counted of its own work (no round trip).
func (l *Locker) Metrics() (*Metrics, error) {
	h, err := l.use()
	if err != nil {
		return nil, err
	}
	defer runtime.KeepAlive(l)
	var needed C.size_t
	if err := call(func() C.turn_result { return C.go_metrics(h, nil, 0, &needed) }); err != nil {
		return nil, err
	}
	for {
		// Room for counters that grow a digit between the two calls.
		size := needed + 64
		buf := (*C.char)(C.malloc(size))
		err := call(func() C.turn_result { return C.go_metrics(h, buf, size, &needed) })
		text := ""
		if err == nil {
			text = C.GoString(buf)
		}
		C.free(unsafe.Pointer(buf))
		if err == nil {
			return parseMetrics(text), nil
		}
		if needed <= size {
			return nil, err
		}
	}
}

// parseMetrics reads the values out of the library's metrics text (its
// own, fixed layout: one sample a line, `name{labels} value`).
func parseMetrics(text string) *Metrics {
	m := &Metrics{Text: text}
	counters := map[string]*uint64{
		`turn_acquires_total{granted="at_once"}`:            &m.AcquiredAtOnce,
		`turn_acquires_total{granted="after_waiting"}`:      &m.AcquiredAfterWaiting,
		`turn_acquire_failures_total{reason="timeout"}`:     &m.Timeouts,
		`turn_acquire_failures_total{reason="canceled"}`:    &m.Cancels,
		`turn_acquire_failures_total{reason="would_block"}`: &m.WouldBlock,
		`turn_acquire_failures_total{reason="error"}`:       &m.Failed,
		`turn_locks_lost_total`:                             &m.Lost,
		`turn_handoffs_total`:                               &m.Handoffs,
		`turn_heartbeat_beats_total`:                        &m.Beats,
		`turn_heartbeat_slow_beats_total`:                   &m.SlowBeats,
		`turn_reconnections_total`:                          &m.Reconnections,
	}
	histograms := map[string]*Histogram{"turn_wait_seconds": &m.Wait, "turn_hold_seconds": &m.Hold}
	lines := bufio.NewScanner(strings.NewReader(text))
	for lines.Scan() {
		line := lines.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		sp := strings.LastIndexByte(line, ' ')
		if sp < 0 {
			continue
		}
		name, value := line[:sp], line[sp+1:]
		if c, ok := counters[name]; ok {
			*c, _ = strconv.ParseUint(value, 10, 64)
			continue
		}
		for prefix, h := range histograms {
			switch {
			case name == prefix+"_count":
				h.Count, _ = strconv.ParseUint(value, 10, 64)
			case name == prefix+"_sum":
				s, _ := strconv.ParseFloat(value, 64)
				h.Sum = time.Duration(s * float64(time.Second))
			case strings.HasPrefix(name, prefix+`_bucket{le="`) && !strings.Contains(name, "+Inf"):
				bound := strings.TrimSuffix(strings.TrimPrefix(name, prefix+`_bucket{le="`), `"}`)
				le, err := strconv.ParseFloat(bound, 64)
				if err != nil {
					continue
				}
				n, _ := strconv.ParseUint(value, 10, 64)
				h.Buckets = append(h.Buckets, Bucket{time.Duration(le * float64(time.Second)), n})
			}
		}
	}
	return m
}
