package main

import (
	"bytes"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// A message's text is timestampMarker, the scheduled publish time in unix
// nanoseconds as timestampDigits digits, ':' and padding to --msg_bytes.
// A receiver finds the marker in whatever frame carries the text (a JSON
// WebSocket frame, an SSE data line, a protobuf field), so every system is
// timed the same way, publish→receive on one clock.
const (
	timestampMarker = "pl:"
	timestampDigits = 19
)

func messageText(scheduled time.Time, size int) string {
	head := fmt.Sprintf("%s%0*d:", timestampMarker, timestampDigits, scheduled.UnixNano())
	if len(head) >= size {
		return head
	}
	return head + strings.Repeat("x", size-len(head))
}

// Phases of a run: deliveries are timed only while measuring.
const (
	phaseWarmup int32 = iota
	phaseMeasuring
	phaseDraining
)

var phase atomic.Int32

// recorder is one subscriber's: every delivery it got, and the latencies
// of those received while measuring.
type recorder struct {
	received atomic.Int64
	mu       sync.Mutex
	latUs    []uint32
}

// deliveries records every message whose marker is in b, received at now.
func (r *recorder) deliveries(b []byte, now time.Time) {
	measuring := phase.Load() == phaseMeasuring
	for {
		i := bytes.Index(b, []byte(timestampMarker))
		if i < 0 {
			return
		}
		b = b[i+len(timestampMarker):]
		if len(b) < timestampDigits {
			return
		}
		ns, err := strconv.ParseInt(string(b[:timestampDigits]), 10, 64)
		if err != nil {
			continue
		}
		b = b[timestampDigits:]
		r.delivery(ns, now, measuring)
	}
}

// deliveryText records one message given its text.
func (r *recorder) deliveryText(text string, now time.Time) {
	r.deliveries([]byte(text), now)
}

func (r *recorder) delivery(sentNs int64, now time.Time, measuring bool) {
	r.received.Add(1)
	if !measuring {
		return
	}
	us := (now.UnixNano() - sentNs) / 1000
	if us < 0 {
		us = 0
	}
	if us > 1<<32-1 {
		us = 1<<32 - 1
	}
	r.mu.Lock()
	r.latUs = append(r.latUs, uint32(us))
	r.mu.Unlock()
}

// percentiles of every recorder's latencies, in ms, and their count.
func latencyPercentiles(recs []*recorder, ps []float64) ([]float64, int) {
	var all []uint32
	for _, r := range recs {
		r.mu.Lock()
		all = append(all, r.latUs...)
		r.mu.Unlock()
	}
	out := make([]float64, len(ps))
	if len(all) == 0 {
		return out, 0
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	for i, p := range ps {
		k := int(p * float64(len(all)-1))
		out[i] = float64(all[k]) / 1000
	}
	return out, len(all)
}

// procSample is the summed CPU seconds (utime+stime) and RSS of processes.
type procSample struct {
	cpuSeconds float64
	rssKB      int64
}

// clockTicks is USER_HZ, 100 on every Linux the suite runs on.
const clockTicks = 100

func sampleProcs(pids []int) (procSample, error) {
	var s procSample
	for _, pid := range pids {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return s, err
		}
		// Fields after the command, which is in parentheses and may hold
		// spaces: state is field 3, utime 14, stime 15.
		rest := string(stat[bytes.LastIndexByte(stat, ')')+2:])
		f := strings.Fields(rest)
		utime, _ := strconv.ParseInt(f[11], 10, 64)
		stime, _ := strconv.ParseInt(f[12], 10, 64)
		s.cpuSeconds += float64(utime+stime) / clockTicks
		status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			return s, err
		}
		for _, line := range strings.Split(string(status), "\n") {
			if strings.HasPrefix(line, "VmRSS:") {
				kb, _ := strconv.ParseInt(strings.Fields(line)[1], 10, 64)
				s.rssKB += kb
			}
		}
	}
	return s, nil
}

// selfCPUSeconds is this process's CPU time so far.
func selfCPUSeconds() float64 {
	s, err := sampleProcs([]int{os.Getpid()})
	if err != nil {
		return 0
	}
	return s.cpuSeconds
}
