package main

import (
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// The collection target follows the live heap. --gc_percent suits a
// gateway whose live heap is a few MB (REST calls: a large percentage
// saves CPU at a cost of a few MB). A gateway holding thousands of idle
// streams has a live heap of tens of MB, where the same percentage would
// let garbage grow to several times that. So the percentage shrinks as
// the live heap grows, keeping the room for garbage near
// --gc_headroom_mib, but never below Go's default of 100.

const (
	defaultGCHeadroomMiB = 16
	minGCPercent         = 100
	gcTuneInterval       = 100 * time.Millisecond
)

// gcPercentFor is the collection target for a live heap of live bytes:
// headroom bytes over it, between minGCPercent and maxPercent.
func gcPercentFor(live, headroom uint64, maxPercent int) int {
	if maxPercent <= minGCPercent {
		return maxPercent
	}
	if live == 0 {
		return maxPercent
	}
	p := headroom * 100 / live
	switch {
	case p >= uint64(maxPercent):
		return maxPercent
	case p <= minGCPercent:
		return minGCPercent
	}
	return int(p)
}

// tuneGC sets the collection target from the live heap every
// gcTuneInterval, for the process's life.
func tuneGC(headroom uint64, maxPercent int) {
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	current := maxPercent
	debug.SetGCPercent(current)
	for range time.Tick(gcTuneInterval) {
		metrics.Read(sample)
		if sample[0].Value.Kind() != metrics.KindUint64 {
			return
		}
		if p := gcPercentFor(sample[0].Value.Uint64(), headroom, maxPercent); p != current {
			debug.SetGCPercent(p)
			current = p
		}
	}
}
