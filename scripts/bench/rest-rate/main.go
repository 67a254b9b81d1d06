// rest-rate sends one REST call through the gateway open loop, at a fixed
// rate, with vegeta's attacker (github.com/tsenart/vegeta/v12/lib, pinned in
// go.mod), and prints one JSON result line. It is the REST half of the
// fixed-rate comparison in scripts/bench/run.sh's `rest` part; the gRPC half is
// `parley_loadgen --scenario=unary --call_rate=R`, and the two measure the
// same way:
//
//   - Latency counts from each call's *scheduled* send time, not from when it
//     went out, so a sender that falls behind shows up as latency (no
//     coordinated omission). vegeta's constant pacer schedules call seq at
//     begin + (seq+1)/rate; its own latency is from the actual send, so the
//     scheduled time is recomputed here from the sequence number.
//   - Latencies and calls_per_s are of the calls scheduled inside the
//     measured window (after -warmup, for -duration); errors count over the
//     whole run, warm-up included, as the loadgen's do.
//   - At most -max_inflight calls are pending: a call due while that many are
//     pending is not sent but counted as an error (skipped_sends), as the
//     loadgen's --max_inflight does. vegeta itself would instead start more
//     workers without bound (or, bounded, delay the call), so the bound is a
//     RoundTripper in front of the HTTP transport rather than vegeta's
//     MaxWorkers.
//   - Every call scheduled before the end is sent, however late, as the
//     loadgen's pacer does: vegeta's own stop is by elapsed time, which drops
//     the calls still due when a late sender reaches the end, so the attack
//     here is stopped by count (countedPacer). Calls that were due but never
//     sent would count as errors (unsent).
//
// HTTP/1.1 with keep-alive, one connection per call in flight, as wrk's
// closed-loop side uses.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

var errSkipped = errors.New("rest-rate: skipped, max_inflight calls pending")

// bounded lets at most max requests be pending at once (from the send until
// the response body is closed) and fails the others at once, unsent.
type bounded struct {
	next     http.RoundTripper
	max      int64
	inflight atomic.Int64
	peak     atomic.Int64
	skipped  atomic.Int64
}

func (b *bounded) RoundTrip(req *http.Request) (*http.Response, error) {
	n := b.inflight.Add(1)
	if n > b.max {
		b.inflight.Add(-1)
		b.skipped.Add(1)
		return nil, errSkipped
	}
	for p := b.peak.Load(); n > p && !b.peak.CompareAndSwap(p, n); p = b.peak.Load() {
	}
	resp, err := b.next.RoundTrip(req)
	if err != nil {
		b.inflight.Add(-1)
		return nil, err
	}
	resp.Body = &doneBody{ReadCloser: resp.Body, done: func() { b.inflight.Add(-1) }}
	return resp, nil
}

type doneBody struct {
	io.ReadCloser
	once sync.Once
	done func()
}

func (d *doneBody) Close() error {
	err := d.ReadCloser.Close()
	d.once.Do(d.done)
	return err
}

// countedPacer is vegeta's constant pacer, stopped after n calls instead of
// after a duration.
type countedPacer struct {
	vegeta.ConstantPacer
	n uint64
}

func (p countedPacer) Pace(elapsed time.Duration, hits uint64) (time.Duration, bool) {
	if hits >= p.n {
		return 0, true
	}
	return p.ConstantPacer.Pace(elapsed, hits)
}

// percentile is the value at rank ceil(q*n) of sorted, in milliseconds.
func percentile(sorted []time.Duration, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	i = max(0, min(i, len(sorted)-1))
	return ms(sorted[i])
}

func ms(d time.Duration) float64 { return math.Round(float64(d)/1e3) / 1e3 }

// selfCPU is this process's user + system CPU seconds so far.
func selfCPU() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

func vegetaVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "github.com/tsenart/vegeta/v12" {
				return d.Version
			}
		}
	}
	return "unknown"
}

func main() {
	url := flag.String("url", "", "the full URL, e.g. http://127.0.0.1:8080/v1/rooms/benchrest/messages")
	method := flag.String("method", "GET", "GET, or POST with a JSON body {\"text\":\"xxx...\"}")
	token := flag.String("token", "", "user token (Authorization: Bearer ...)")
	rate := flag.Int("rate", 100, "calls per second (open loop)")
	warmup := flag.Duration("warmup", time.Second, "sent but not measured, before the window")
	duration := flag.Duration("duration", 10*time.Second, "the measured window")
	maxInflight := flag.Int("max_inflight", 20000, "a call due while this many are pending is skipped and counted as an error")
	messageBytes := flag.Int("message_bytes", 100, "POST: length of the message text (wrk.lua sends 100)")
	timeout := flag.Duration("timeout", 30*time.Second, "per call")
	flag.Parse()
	if *url == "" || *rate <= 0 || *maxInflight <= 0 {
		fmt.Fprintln(os.Stderr, "rest-rate: needs -url, -rate > 0 and -max_inflight > 0")
		os.Exit(2)
	}

	target := vegeta.Target{Method: *method, URL: *url, Header: http.Header{}}
	target.Header.Set("Authorization", "Bearer "+*token)
	if *method == "POST" {
		target.Header.Set("Content-Type", "application/json")
		target.Body = []byte(`{"text":"` + strings.Repeat("x", *messageBytes) + `"}`)
	}
	bound := &bounded{max: int64(*maxInflight), next: &http.Transport{
		DialContext:         (&net.Dialer{KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConnsPerHost: *maxInflight, // keep every connection for reuse
		DisableCompression:  true,         // wrk asks for no gzip either
		ForceAttemptHTTP2:   false,
	}}
	attacker := vegeta.NewAttacker(
		vegeta.Client(&http.Client{Transport: bound, Timeout: *timeout}),
		vegeta.MaxBody(0), // read and discard the body, keep none of it
	)

	// vegeta's ConstantPacer{Freq: rate, Per: 1s} puts call seq at
	// begin + (seq+1)*interval with this integer interval; begin is taken
	// inside Attack, a few microseconds after `start` (so latencies are
	// overstated by that much at most, never understated).
	interval := time.Duration(int64(time.Second) / int64(*rate))
	total := *warmup + *duration
	// The calls scheduled before the end: seq+1 intervals < total.
	due := int64((total - 1) / interval)
	// This process's CPU over the window, as the loadgen reports its own:
	// client and server share the machine's cores.
	var self0, self1 float64
	var selfDone sync.WaitGroup
	selfDone.Add(2)
	time.AfterFunc(*warmup, func() { self0 = selfCPU(); selfDone.Done() })
	time.AfterFunc(total, func() { self1 = selfCPU(); selfDone.Done() })
	start := time.Now()
	results := attacker.Attack(vegeta.NewStaticTargeter(target),
		countedPacer{vegeta.ConstantPacer{Freq: *rate, Per: time.Second}, uint64(due)}, 0, "")

	var (
		latencies                       []time.Duration
		sent, inWindow                  int64
		errStatus, errTransport, errOut int64
		codes                           = map[string]int64{}
		firstError                      string
	)
	latencies = make([]time.Duration, 0, int(float64(*rate)*duration.Seconds())+16)
	for res := range results {
		sent++
		scheduled := time.Duration(res.Seq+1) * interval
		if res.Code != 0 {
			codes[fmt.Sprint(res.Code)]++
		}
		if res.Error != "" {
			switch {
			case strings.HasSuffix(res.Error, errSkipped.Error()):
				// counted by bound.skipped (http.Client prefixes the URL)
			case res.Code != 0:
				errStatus++
			default:
				errTransport++
			}
			if firstError == "" && !strings.HasSuffix(res.Error, errSkipped.Error()) {
				firstError = res.Error
			}
			continue
		}
		if scheduled >= *warmup && scheduled < total {
			inWindow++
			latencies = append(latencies, res.Timestamp.Add(res.Latency).Sub(start.Add(scheduled)))
		}
	}
	selfDone.Wait()
	// Calls due before the end that never went out.
	if sent < due {
		errOut = due - sent
	}
	skipped := bound.skipped.Load()
	errorsAll := errStatus + errTransport + skipped + errOut

	sort.Slice(latencies, func(i, j int) bool { return latencies[i] < latencies[j] })
	var sum time.Duration
	for _, l := range latencies {
		sum += l
	}
	mean := time.Duration(0)
	if len(latencies) > 0 {
		mean = sum / time.Duration(len(latencies))
	}
	out := struct {
		Client       string           `json:"client"`
		Method       string           `json:"method"`
		OfferedRate  int              `json:"offered_rate"`
		WarmupS      float64          `json:"warmup_s"`
		DurationS    float64          `json:"duration_s"`
		Sent         int64            `json:"sent"` // calls sent or skipped, warm-up included
		CallsPerS    float64          `json:"calls_per_s"`
		LatencyFrom  string           `json:"latency_from"`
		Samples      int              `json:"latency_samples"`
		P50          float64          `json:"latency_p50_ms"`
		P90          float64          `json:"latency_p90_ms"`
		P99          float64          `json:"latency_p99_ms"`
		P999         float64          `json:"latency_p999_ms"`
		Max          float64          `json:"latency_max_ms"`
		Mean         float64          `json:"latency_mean_ms"`
		ClientCPU    float64          `json:"loadgen_cpu_cores"`
		Inflight     int64            `json:"inflight"`
		MaxInflight  int              `json:"max_inflight"`
		Skipped      int64            `json:"skipped_sends"`
		Unsent       int64            `json:"unsent"`
		ErrStatus    int64            `json:"errors_status"`
		ErrTransport int64            `json:"errors_transport"`
		Errors       int64            `json:"errors"`
		StatusCodes  map[string]int64 `json:"status_codes"`
		FirstError   string           `json:"first_error,omitempty"`
	}{
		Client:       "vegeta " + vegetaVersion() + " (library)",
		Method:       *method,
		OfferedRate:  *rate,
		WarmupS:      warmup.Seconds(),
		DurationS:    duration.Seconds(),
		Sent:         sent,
		CallsPerS:    math.Round(float64(inWindow)/duration.Seconds()*10) / 10,
		LatencyFrom:  "scheduled",
		Samples:      len(latencies),
		P50:          percentile(latencies, 0.50),
		P90:          percentile(latencies, 0.90),
		P99:          percentile(latencies, 0.99),
		P999:         percentile(latencies, 0.999),
		Mean:         ms(mean),
		ClientCPU:    math.Round((self1-self0)/duration.Seconds()*1000) / 1000,
		Inflight:     bound.peak.Load(),
		MaxInflight:  *maxInflight,
		Skipped:      skipped,
		Unsent:       errOut,
		ErrStatus:    errStatus,
		ErrTransport: errTransport,
		Errors:       errorsAll,
		StatusCodes:  codes,
		FirstError:   firstError,
	}
	if n := len(latencies); n > 0 {
		out.Max = ms(latencies[n-1])
	}
	fmt.Fprintf(os.Stderr, "rest-rate: %s at %d/s: %d in the window, p50 %.3f ms, p99 %.3f ms, %d errors\n",
		*method, *rate, inWindow, out.P50, out.P99, errorsAll)
	line, _ := json.Marshal(out)
	fmt.Println(string(line))
	if errorsAll > 0 || inWindow == 0 {
		os.Exit(1)
	}
}
