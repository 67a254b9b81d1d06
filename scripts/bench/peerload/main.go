// peerload is the peers benchmark's load generator (docs/benchmarks.md, section 9;
// scripts/bench/peers.sh): one program, one run shape, against Parley
// (WebSocket and SSE through the gateway, gRPC), Centrifugo v6 (WebSocket)
// and the naive gRPC fan-out server (scripts/bench/naive).
//
// A run: rooms of --room_size subscribers, --subscribers in all, connected
// and then left idle for --settle (the servers' RSS before and after gives
// the memory per idle subscriber); then --publishers send --msg_bytes
// messages at --rate in all, open loop (each at its scheduled time,
// whatever is still pending, at most --max_inflight), round robin over the
// rooms. Each message carries its scheduled send time, so a delivery's
// latency is receive time minus that, queueing included. After --warmup,
// --duration is measured: deliveries, their latencies and the CPU of the
// --pids (utime+stime). Then publishing stops and the loadgen waits up to
// --drain for what is still on its way, and counts what never came.
//
// Output: a summary on stderr and one JSON line on stdout (also appended
// to --json_out) with the figures, the tags and the exact command. Exit
// code 1 on any error: a failed setup, subscription, stream or publish, a
// send skipped at --max_inflight, or a lost delivery; with --strict=false
// (a rate sweep, where overload is a result) only when there is no result.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

type config struct {
	mode             string
	subscribers      int
	roomSize         int
	users            int
	publishers       int
	rate             float64
	msgBytes         int
	warmup           time.Duration
	duration         time.Duration
	settle           time.Duration
	drain            time.Duration
	connectWorkers   int
	maxInflight      int
	publishTimeout   time.Duration
	grpcTarget       string
	grpcChannels     int
	httpBase         string
	centrifugoSecret string
	centrifugoAPIKey string
	pids             []int
	prefix           string
	tags             map[string]string
	jsonOut          string
	strict           bool
	sourceAddrs      int
}

func (c *config) rooms() int { return (c.subscribers + c.roomSize - 1) / c.roomSize }

// system is one mode's way to set up, subscribe and publish.
type system interface {
	setup(ctx context.Context) error
	// subscribe opens subscriber i's stream on room and returns once the
	// subscription is in place; the stream is read in a goroutine until
	// ctx ends, and an earlier end goes to fail.
	subscribe(ctx context.Context, i, room int, rec *recorder, fail func(error)) error
	// publish sends message k to room.
	publish(ctx context.Context, k, room int, text string) error
	close()
}

func main() {
	cfg := &config{}
	var pids, tags string
	flag.StringVar(&cfg.mode, "mode", "", "centrifugo-ws, naive-ws, parley-ws, parley-sse, grpc, naive or naive-thread (the naive server run with --write_thread)")
	flag.IntVar(&cfg.subscribers, "subscribers", 2000, "subscribers in all")
	flag.IntVar(&cfg.roomSize, "room_size", 100, "subscribers per room")
	flag.IntVar(&cfg.users, "users", 100, "distinct users the subscribers sign in as (subscriber i is user i % users)")
	flag.IntVar(&cfg.publishers, "publishers", 4, "publishing goroutines (and, for Parley, publishing users)")
	flag.Float64Var(&cfg.rate, "rate", 100, "messages per second in all, spread over the rooms")
	flag.IntVar(&cfg.msgBytes, "msg_bytes", 100, "bytes of each message's text")
	flag.DurationVar(&cfg.warmup, "warmup", 2*time.Second, "publishing before the measured window")
	flag.DurationVar(&cfg.duration, "duration", 10*time.Second, "the measured window")
	flag.DurationVar(&cfg.settle, "settle", 2*time.Second, "idle time between the last subscription and the RSS sample")
	flag.DurationVar(&cfg.drain, "drain", 3*time.Second, "longest wait for deliveries after publishing stops")
	flag.IntVar(&cfg.connectWorkers, "connect_workers", 64, "subscriptions being opened at once")
	flag.IntVar(&cfg.maxInflight, "max_inflight", 1000, "publishes pending at once; a send due past it is skipped (an error)")
	flag.DurationVar(&cfg.publishTimeout, "publish_timeout", 10*time.Second, "deadline of one publish")
	flag.StringVar(&cfg.grpcTarget, "grpc", "", "gRPC address (Parley's server, or the naive server)")
	flag.IntVar(&cfg.grpcChannels, "grpc_channels", 16, "gRPC connections the subscribers are spread over")
	flag.StringVar(&cfg.httpBase, "http", "", "base URL of Parley's gateway or of Centrifugo, http://host:port")
	flag.StringVar(&cfg.centrifugoSecret, "centrifugo_secret", "", "Centrifugo's client.token.hmac_secret_key")
	flag.StringVar(&cfg.centrifugoAPIKey, "centrifugo_api_key", "", "Centrifugo's http_api.key")
	flag.StringVar(&pids, "pids", "", "comma-separated pids of every server process (CPU and RSS are their sum)")
	flag.StringVar(&cfg.prefix, "prefix", "", "prefix of user and room names (default: random)")
	flag.StringVar(&tags, "tags", "", "k=v,... added to the JSON line")
	flag.StringVar(&cfg.jsonOut, "json_out", "", "append the JSON line to this file")
	flag.IntVar(&cfg.sourceAddrs, "source_addrs", 8, "WebSocket and SSE connections come from this many loopback addresses, 127.0.0.2 on (0: the kernel's choice)")
	flag.BoolVar(&cfg.strict, "strict", true, "exit 1 on errors during the run (false: only when there is no result)")
	flag.Parse()

	for _, s := range strings.Split(pids, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		pid, err := strconv.Atoi(s)
		if err != nil {
			die(fmt.Errorf("--pids: %w", err))
		}
		cfg.pids = append(cfg.pids, pid)
	}
	cfg.tags = map[string]string{}
	for _, kv := range strings.Split(tags, ",") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			cfg.tags[k] = v
		}
	}
	if cfg.prefix == "" {
		cfg.prefix = fmt.Sprintf("pl%06x", time.Now().UnixNano()&0xffffff)
	}
	if cfg.subscribers < 1 || cfg.roomSize < 1 || cfg.users < 1 || cfg.publishers < 1 || cfg.rate <= 0 {
		die(errors.New("--subscribers, --room_size, --users, --publishers and --rate must be positive"))
	}
	if cfg.subscribers%cfg.roomSize != 0 {
		die(errors.New("--subscribers must be a multiple of --room_size"))
	}

	if err := checkSourceAddrs(cfg.sourceAddrs); err != nil {
		die(err)
	}

	var sys system
	switch cfg.mode {
	case "centrifugo-ws", "naive-ws":
		// naive-ws (naivews/) speaks the part of Centrifugo's protocol used.
		sys = &centrifugo{cfg: cfg}
	case "parley-ws":
		sys = &parley{cfg: cfg, transport: "ws"}
	case "parley-sse":
		sys = &parley{cfg: cfg, transport: "sse"}
	case "grpc":
		sys = &parley{cfg: cfg, transport: "grpc"}
	case "naive", "naive-thread":
		sys = &naive{cfg: cfg}
	default:
		die(fmt.Errorf("--mode %q: want centrifugo-ws, naive-ws, parley-ws, parley-sse, grpc, naive or naive-thread", cfg.mode))
	}
	result, err := run(cfg, sys)
	if result != nil {
		result["command"] = shellCommand(os.Args)
		line, _ := json.Marshal(result)
		fmt.Println(string(line))
		if cfg.jsonOut != "" {
			f, ferr := os.OpenFile(cfg.jsonOut, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
			if ferr == nil {
				_, ferr = f.Write(append(line, '\n'))
				f.Close()
			}
			if ferr != nil && err == nil {
				err = ferr
			}
		}
	}
	if err != nil && (result == nil || cfg.strict) {
		die(err)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "peerload: (not strict)", err)
	}
}

// shellCommand is args as a shell would take them back: each argument
// with anything but safe characters in single quotes.
func shellCommand(args []string) string {
	quoted := make([]string, len(args))
	for i, a := range args {
		safe := a != ""
		for _, r := range a {
			if !strings.ContainsRune("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_=.,:/@%+", r) {
				safe = false
				break
			}
		}
		if safe {
			quoted[i] = a
		} else {
			quoted[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
	}
	return strings.Join(quoted, " ")
}

func die(err error) {
	fmt.Fprintln(os.Stderr, "peerload:", err)
	os.Exit(1)
}

// errorLog counts errors and keeps the first few.
type errorLog struct {
	n     atomic.Int64
	mu    sync.Mutex
	first []string
}

func (e *errorLog) add(err error) {
	if e.n.Add(1) <= 5 {
		e.mu.Lock()
		e.first = append(e.first, err.Error())
		e.mu.Unlock()
	}
}

func run(cfg *config, sys system) (map[string]any, error) {
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	result := map[string]any{
		"scenario":                 "peers",
		"mode":                     cfg.mode,
		"subscribers":              cfg.subscribers,
		"room_size":                cfg.roomSize,
		"rooms":                    cfg.rooms(),
		"users":                    cfg.users,
		"publishers":               cfg.publishers,
		"offered_msgs_per_s":       cfg.rate,
		"offered_deliveries_per_s": cfg.rate * float64(cfg.roomSize),
		"msg_bytes":                cfg.msgBytes,
		"warmup_s":                 cfg.warmup.Seconds(),
		"duration_s":               cfg.duration.Seconds(),
		"server_processes":         len(cfg.pids),
		"time":                     time.Now().UTC().Format(time.RFC3339),
	}
	for k, v := range cfg.tags {
		result[k] = v
	}
	defer sys.close()
	if err := sys.setup(ctx); err != nil {
		return nil, fmt.Errorf("setup: %w", err)
	}

	// Subscribe everyone, then leave them idle.
	before, err := sampleProcs(cfg.pids)
	if err != nil {
		return nil, err
	}
	streamCtx, stopStreams := context.WithCancel(ctx)
	defer stopStreams()
	var streamErrors errorLog
	recs := make([]*recorder, cfg.subscribers)
	connect0 := time.Now()
	err = parallel(cfg.subscribers, cfg.connectWorkers, func(i int) error {
		recs[i] = &recorder{}
		if err := sys.subscribe(streamCtx, i, i/cfg.roomSize, recs[i], streamErrors.add); err != nil {
			return fmt.Errorf("subscriber %d: %w", i, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	connectSeconds := time.Since(connect0).Seconds()
	fmt.Fprintf(os.Stderr, "peerload: %s: %d subscribers in %d rooms in %.1f s\n",
		cfg.mode, cfg.subscribers, cfg.rooms(), connectSeconds)
	result["connect_s"] = round(connectSeconds, 2)
	time.Sleep(cfg.settle) // a measurement interval, not a wait for anything
	idle, err := sampleProcs(cfg.pids)
	if err != nil {
		return nil, err
	}
	if len(cfg.pids) > 0 {
		result["server_rss_before_kb"] = before.rssKB
		result["server_rss_idle_kb"] = idle.rssKB
		result["idle_bytes_per_subscriber"] = round(float64(idle.rssKB-before.rssKB)*1024/float64(cfg.subscribers), 0)
	}

	// Publish open loop: send k is due at start + k/rate, to room k % rooms.
	var (
		publishErrors errorLog
		skipped       atomic.Int64
		published     atomic.Int64
		wg            sync.WaitGroup
	)
	inflight := make(chan struct{}, cfg.maxInflight)
	start := time.Now().Add(50 * time.Millisecond)
	total := cfg.warmup + cfg.duration
	interval := time.Duration(float64(time.Second) / cfg.rate)
	rooms := cfg.rooms()
	for j := 0; j < cfg.publishers; j++ {
		wg.Add(1)
		go func(j int) {
			defer wg.Done()
			for k := j; ; k += cfg.publishers {
				due := start.Add(time.Duration(k) * interval)
				if due.Sub(start) >= total || ctx.Err() != nil {
					return
				}
				time.Sleep(time.Until(due))
				select {
				case inflight <- struct{}{}:
				default:
					skipped.Add(1)
					continue
				}
				wg.Add(1)
				go func(k int, text string) {
					defer wg.Done()
					defer func() { <-inflight }()
					if err := sys.publish(ctx, k, k%rooms, text); err != nil {
						publishErrors.add(err)
						return
					}
					published.Add(1)
				}(k, messageText(due, cfg.msgBytes))
			}
		}(j)
	}
	time.Sleep(time.Until(start.Add(cfg.warmup)))
	phase.Store(phaseMeasuring)
	cpu0, err := sampleProcs(cfg.pids)
	if err != nil {
		return nil, err
	}
	self0 := selfCPUSeconds()
	received0 := sumReceived(recs)
	t0 := time.Now()
	time.Sleep(time.Until(start.Add(total)))
	phase.Store(phaseDraining)
	cpu1, err := sampleProcs(cfg.pids)
	if err != nil {
		return nil, err
	}
	self1 := selfCPUSeconds()
	received1 := sumReceived(recs)
	window := time.Since(t0).Seconds()
	wg.Wait()

	// Whatever was published and not yet received gets --drain to arrive.
	expected := published.Load() * int64(cfg.roomSize)
	deadline := time.Now().Add(cfg.drain)
	for sumReceived(recs) < expected && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	lost := expected - sumReceived(recs)
	if lost < 0 {
		lost = 0
	}
	stopStreams()

	deliveries := received1 - received0
	ps, timed := latencyPercentiles(recs, []float64{0.5, 0.9, 0.99, 0.999, 1})
	result["published"] = published.Load()
	result["publish_errors"] = publishErrors.n.Load()
	result["skipped_sends"] = skipped.Load()
	result["stream_errors"] = streamErrors.n.Load()
	result["lost_deliveries"] = lost
	result["deliveries"] = deliveries
	result["deliveries_per_s"] = round(float64(deliveries)/window, 1)
	result["delivered_fraction"] = round(float64(deliveries)/window/(cfg.rate*float64(cfg.roomSize)), 4)
	result["latency_samples"] = timed
	for i, name := range []string{"p50", "p90", "p99", "p999", "max"} {
		result["latency_"+name+"_ms"] = round(ps[i], 3)
	}
	if len(cfg.pids) > 0 {
		cpu := cpu1.cpuSeconds - cpu0.cpuSeconds
		result["server_cpu_s"] = round(cpu, 2)
		result["server_cpu_cores"] = round(cpu/window, 3)
		if deliveries > 0 {
			result["server_cpu_us_per_delivery"] = round(cpu/float64(deliveries)*1e6, 3)
		}
		result["server_rss_end_kb"] = cpu1.rssKB
	}
	result["loadgen_cpu_cores"] = round((self1-self0)/window, 3)
	fmt.Fprintf(os.Stderr, "peerload: %s: %.0f msgs/s offered, %.0f deliveries/s (%.1f%%), p50 %.2f ms, p99 %.2f ms, max %.1f ms, server CPU %v us/delivery, idle %v B/subscriber\n",
		cfg.mode, cfg.rate, result["deliveries_per_s"], 100*result["delivered_fraction"].(float64),
		ps[0], ps[2], ps[4], result["server_cpu_us_per_delivery"], result["idle_bytes_per_subscriber"])

	var problems []string
	for _, e := range []struct {
		what string
		log  *errorLog
	}{{"stream", &streamErrors}, {"publish", &publishErrors}} {
		if n := e.log.n.Load(); n > 0 {
			problems = append(problems, fmt.Sprintf("%d %s error(s), first: %s", n, e.what, strings.Join(e.log.first, "; ")))
		}
	}
	if n := skipped.Load(); n > 0 {
		problems = append(problems, fmt.Sprintf("%d send(s) skipped at --max_inflight=%d", n, cfg.maxInflight))
	}
	if lost > 0 {
		problems = append(problems, fmt.Sprintf("%d deliveries lost (not received %v after publishing stopped)", lost, cfg.drain))
	}
	result["ok"] = len(problems) == 0
	if len(problems) > 0 {
		result["errors"] = problems
		return result, errors.New(strings.Join(problems, "; "))
	}
	return result, nil
}

func sumReceived(recs []*recorder) int64 {
	var n int64
	for _, r := range recs {
		n += r.received.Load()
	}
	return n
}

func round(x float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(x*p) / p
}
