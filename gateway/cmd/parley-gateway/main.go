// Command parley-gateway serves Parley's REST API: HTTP/JSON in front of the
// parley.v1 gRPC services. It only parses flags; gateway.Run does the work.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"parley/gateway/internal/gateway"
)

func main() {
	fs := flag.NewFlagSet("parley-gateway", flag.ExitOnError)
	httpAddr := fs.String("http_addr", envOr("PARLEY_HTTP_ADDR", "127.0.0.1:8080"),
		"address the HTTP server listens on; port 0 picks a free port (env PARLEY_HTTP_ADDR)")
	grpcServer := fs.String("grpc_server", envOr("PARLEY_GRPC_SERVER", "127.0.0.1:50051"),
		"the Parley gRPC servers: host:port, a comma-separated list of host:port, or dns:///name:port for every "+
			"address of a name; calls are spread over the servers that are up (env PARLEY_GRPC_SERVER)")
	portFile := fs.String("port_file", envOr("PARLEY_GATEWAY_PORT_FILE", ""),
		"if set, the bound HTTP port is written to this file once listening (env PARLEY_GATEWAY_PORT_FILE)")
	logLevel := fs.String("log_level", envOr("PARLEY_LOG_LEVEL", "info"),
		"debug, info, warn (or warning) or error (env PARLEY_LOG_LEVEL)")
	logFormat := fs.String("log_format", envOr("PARLEY_LOG_FORMAT", "json"),
		"json (one object per line) or text (env PARLEY_LOG_FORMAT)")
	shutdownGrace := fs.Duration("shutdown_grace", 5*time.Second,
		"how long open requests may run on after SIGTERM before they are cancelled")
	sseKeepalive := fs.Duration("sse_keepalive", 15*time.Second,
		"interval of the `: keepalive` comment on a Server-Sent Events stream")
	sseRetry := fs.Duration("sse_retry", 2*time.Second,
		"reconnection delay a Server-Sent Events stream announces (`retry:`)")
	wsPingInterval := fs.Duration("ws_ping_interval", 30*time.Second,
		"interval of WebSocket pings; a peer that does not answer within it is disconnected")
	wsOrigins := fs.String("ws_origins", envOr("PARLEY_WS_ORIGINS", ""),
		"comma-separated origins, besides the gateway's own host, whose pages may open WebSockets: host patterns "+
			"such as *.example.com, or scheme://host patterns (env PARLEY_WS_ORIGINS)")
	trustedProxies := fs.String("trusted_proxies", envOr("PARLEY_TRUSTED_PROXIES", ""),
		"comma-separated IP addresses and CIDR prefixes of the reverse proxies whose Forwarded, X-Forwarded-Host "+
			"and X-Forwarded-Proto headers name the scheme and host clients use (absolute Location headers, the "+
			"WebSocket origin check); from other peers those headers are ignored. Empty trusts nobody "+
			"(env PARLEY_TRUSTED_PROXIES)")
	maxConns := fs.Int("max_conns_per_address", envInt("PARLEY_MAX_CONNS_PER_ADDRESS", 256),
		"connections one client address (IPv6: its /64) may hold open at once; past it a connection is answered "+
			"429 and closed. Peers in --trusted_proxies are not counted. 0: no cap (env PARLEY_MAX_CONNS_PER_ADDRESS)")
	gcPercent := fs.Int("gc_percent", defaultGCPercent,
		"garbage collection target percentage, as GOGC: the heap may grow this much over the live heap before "+
			"a collection. The gateway's live heap is a few MB and every request allocates, so Go's default of 100 "+
			"collects dozens of times a second; a larger value trades memory for CPU. Negative turns collection "+
			"off. When unset and GOGC is set in the environment, GOGC is kept")
	gcHeadroomMiB := fs.Int("gc_headroom_mib", defaultGCHeadroomMiB,
		"as the live heap grows, the collection target falls from --gc_percent (to Go's default of 100 at the "+
			"least) so that garbage may take about this many MiB over the live heap: thousands of idle streams "+
			"then do not multiply the gateway's memory. 0: --gc_percent throughout")
	streamResumeTimeout := fs.Duration("stream_resume_timeout", 10*time.Second,
		"how long a room or inbox stream whose server went away is retried on the other servers, resuming after "+
			"the last event it delivered, before it ends; 0 turns resuming off")
	edgeSecret := fs.String("edge_secret", envOr("PARLEY_EDGE_SECRET", ""),
		"the servers' --edge_secret: set, the gateway holds one stream per room and per inbox for all of its SSE and "+
			"WebSocket clients of it and fans the events out itself (docs/fanout.md); empty, every client has a "+
			"stream of its own. Prefer the environment to the command line, which others can read (env PARLEY_EDGE_SECRET)")
	edgeSecretFile := fs.String("edge_secret_file", envOr("PARLEY_EDGE_SECRET_FILE", ""),
		"instead of --edge_secret (not both): the file holding the servers' edge secret, without the white space "+
			"around it, as the servers' --edge_secret_file creates it; the gateway waits for it up to "+
			"--edge_secret_wait (env PARLEY_EDGE_SECRET_FILE)")
	edgeSecretWait := fs.Duration("edge_secret_wait", 30*time.Second,
		"with --edge_secret_file, how long the gateway waits at start for the file to appear (the servers create "+
			"it as they start) before it exits with an error; 0: it must be there")
	fanoutQueueEvents := fs.Int("fanout_queue_events", envInt("PARLEY_FANOUT_QUEUE_EVENTS", 1024),
		"with --edge_secret, the events one SSE or WebSocket client may have waiting to be written; past it they "+
			"become one gap event, which the client reads from history (env PARLEY_FANOUT_QUEUE_EVENTS)")
	pprofAddr := fs.String("pprof_addr", envOr("PARLEY_PPROF_ADDR", ""),
		"if set, Go's profiles are served at /debug/pprof/ on this address (keep it on loopback: they show what "+
			"the gateway holds); empty: not served (env PARLEY_PPROF_ADDR)")
	healthcheck := fs.Bool("healthcheck", false,
		"instead of serving, probe the /healthz of the gateway at --http_addr (or --port_file) and exit 0 if it is serving, else 1")
	_ = fs.Parse(os.Args[1:])
	if flagSet(fs, "gc_percent") || os.Getenv("GOGC") == "" {
		debug.SetGCPercent(*gcPercent)
		if *gcHeadroomMiB > 0 && *gcPercent > 0 {
			go tuneGC(uint64(*gcHeadroomMiB)<<20, *gcPercent)
		}
	}

	var level slog.Level
	// The server spells it "warning"; PARLEY_LOG_LEVEL may serve both.
	if strings.EqualFold(*logLevel, "warning") {
		*logLevel = "warn"
	}
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintf(os.Stderr, "parley-gateway: --log_level: %v\n", err)
		os.Exit(2)
	}
	handlerOpts := &slog.HandlerOptions{Level: level}
	var handler slog.Handler
	switch strings.ToLower(*logFormat) {
	case "json":
		handler = slog.NewJSONHandler(os.Stderr, handlerOpts)
	case "text":
		handler = slog.NewTextHandler(os.Stderr, handlerOpts)
	default:
		fmt.Fprintf(os.Stderr, "parley-gateway: --log_format must be json or text, not %q\n", *logFormat)
		os.Exit(2)
	}
	logger := slog.New(handler)
	proxies, err := gateway.ParseTrustedProxies(splitList(*trustedProxies))
	if err != nil {
		fmt.Fprintf(os.Stderr, "parley-gateway: --trusted_proxies: %v\n", err)
		os.Exit(2)
	}

	opts := gateway.Options{
		HTTPAddr:           *httpAddr,
		GRPCServer:         *grpcServer,
		PortFile:           *portFile,
		ShutdownGrace:      *shutdownGrace,
		Logger:             logger,
		SSEKeepalive:       *sseKeepalive,
		SSERetry:           *sseRetry,
		WSPingInterval:     *wsPingInterval,
		WSOrigins:          splitList(*wsOrigins),
		TrustedProxies:     proxies,
		MaxConnsPerAddress: *maxConns,
		// Options' zero is the default; the flag's zero is off.
		StreamResumeTimeout: *streamResumeTimeout,
		EdgeSecret:          *edgeSecret,
		FanoutQueueEvents:   *fanoutQueueEvents,
	}
	if *fanoutQueueEvents < 1 {
		fmt.Fprintf(os.Stderr, "parley-gateway: --fanout_queue_events must be at least 1, not %d\n", *fanoutQueueEvents)
		os.Exit(2)
	}
	if *edgeSecret != "" && *edgeSecretFile != "" {
		fmt.Fprintf(os.Stderr, "parley-gateway: give --edge_secret or --edge_secret_file, not both\n")
		os.Exit(2)
	}
	if *edgeSecretWait < 0 {
		fmt.Fprintf(os.Stderr, "parley-gateway: --edge_secret_wait must not be negative, not %s\n", *edgeSecretWait)
		os.Exit(2)
	}
	if opts.StreamResumeTimeout == 0 {
		opts.StreamResumeTimeout = -1
	}
	if *healthcheck {
		if err := gateway.Probe(context.Background(), opts); err != nil {
			fmt.Fprintf(os.Stderr, "parley-gateway: unhealthy: %v\n", err)
			os.Exit(1)
		}
		return
	}

	if *pprofAddr != "" {
		if err := servePprof(*pprofAddr, logger); err != nil {
			fmt.Fprintf(os.Stderr, "parley-gateway: --pprof_addr: %v\n", err)
			os.Exit(2)
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	if *edgeSecretFile != "" {
		waiting := false
		secret, err := readEdgeSecretFile(ctx, *edgeSecretFile, *edgeSecretWait, edgeSecretPoll, func() {
			if !waiting {
				waiting = true
				logger.Info("waiting for the edge secret file", "path", *edgeSecretFile, "up_to", edgeSecretWait.String())
			}
		})
		if err != nil {
			fmt.Fprintf(os.Stderr, "parley-gateway: %v\n", err)
			os.Exit(1)
		}
		opts.EdgeSecret = secret
	}

	if err := gateway.Run(ctx, opts); err != nil {
		logger.Error("gateway failed", "err", err)
		os.Exit(1)
	}
}

// defaultGCPercent is --gc_percent's default. Under the REST benchmark the
// live heap is ~3 MB and Go's default of 100 collected ~30 times a second,
// a tenth of the gateway's CPU; 400 (a heap goal of ~15 MB) cut that to
// ~2.5% and the gateway's CPU per request by about a sixth, and 800 gained
// nothing more.
const defaultGCPercent = 400

// flagSet reports whether the command line gave the flag name.
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) {
		if f.Name == name {
			set = true
		}
	})
	return set
}

func envOr(name, fallback string) string {
	if v, ok := os.LookupEnv(name); ok && v != "" {
		return v
	}
	return fallback
}

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(v string) []string {
	var out []string
	for _, item := range strings.Split(v, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// envInt is the integer in environment variable name, or fallback when it
// is unset; a value that is not an integer stops the gateway.
func envInt(name string, fallback int) int {
	v, ok := os.LookupEnv(name)
	if !ok || v == "" {
		return fallback
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		fmt.Fprintf(os.Stderr, "parley-gateway: %s: %q is not an integer\n", name, v)
		os.Exit(2)
	}
	return n
}
