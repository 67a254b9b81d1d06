package main

import (
	"testing"
	"time"
)

func TestDeliveriesFindsEveryTimestampInAFrame(t *testing.T) {
	sent := time.Unix(1700000000, 123456789)
	text := messageText(sent, 100)
	if len(text) != 100 {
		t.Fatalf("messageText is %d bytes, want 100", len(text))
	}
	// Two Centrifugo pushes in one frame, as JSON lines.
	frame := []byte(`{"push":{"pub":{"data":{"text":"` + text + `"}}}}` + "\n" +
		`{"push":{"pub":{"data":{"text":"` + text + `"}}}}`)
	phase.Store(phaseMeasuring)
	defer phase.Store(phaseWarmup)
	var r recorder
	r.deliveries(frame, sent.Add(3*time.Millisecond))
	if got := r.received.Load(); got != 2 {
		t.Fatalf("received %d deliveries, want 2", got)
	}
	ps, n := latencyPercentiles([]*recorder{&r}, []float64{0.5})
	if n != 2 || ps[0] != 3 {
		t.Fatalf("latency p50 %v ms over %d samples, want 3 ms over 2", ps[0], n)
	}
}

func TestDeliveriesOutsideTheWindowAreCountedNotTimed(t *testing.T) {
	phase.Store(phaseDraining)
	defer phase.Store(phaseWarmup)
	var r recorder
	r.deliveryText(messageText(time.Now(), 100), time.Now())
	if r.received.Load() != 1 || len(r.latUs) != 0 {
		t.Fatalf("received %d, timed %d; want 1 and 0", r.received.Load(), len(r.latUs))
	}
}

func TestShellCommandQuotesWhatTheShellWouldSplit(t *testing.T) {
	got := shellCommand([]string{"peerload", "--tags=a=b c,d", "--mode=grpc", "it's"})
	want := `peerload '--tags=a=b c,d' --mode=grpc 'it'\''s'`
	if got != want {
		t.Fatalf("shellCommand = %s, want %s", got, want)
	}
}
