package gateway

import (
	"context"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	parleyv1 "parley/gateway/gen/parley/v1"
)

// Prometheus metrics at GET /metrics, with no token: the gateway's own HTTP
// figures (parley_gateway_*), the Go runtime's (go_*) and the process's
// (process_*), and the server's (parley_server_*), which serverCollector
// fetches from StatsService.GetStats at each scrape. docs/decisions.md
// ("Observability") says what each figure means.

const (
	metricsPath = "/metrics"
	// statsTimeout bounds the GetStats call of one scrape.
	statsTimeout = 5 * time.Second
	// unmatchedRoute labels requests that matched no route (404, 405).
	unmatchedRoute = "unmatched"
)

// httpMetrics are the gateway's own figures, by route pattern (e.g.
// /v1/rooms/{room}/messages), never by raw path, so that their number stays
// bounded.
type httpMetrics struct {
	requests  *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	streams   *prometheus.GaugeVec
	opened    *prometheus.CounterVec
	longPolls prometheus.Gauge
}

func newHTTPMetrics() *httpMetrics {
	return &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_gateway_http_requests_total",
			Help: "HTTP requests answered, by route pattern, method and status code.",
		}, []string{"route", "method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "parley_gateway_http_request_duration_seconds",
			Help: "Time from a request's arrival to the end of its response, by route pattern and method; streams are left out.",
			Buckets: []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
				0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"route", "method"}),
		streams: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "parley_gateway_open_streams",
			Help: "Streams open now (NDJSON and Server-Sent Events subscriptions, WebSockets), by route pattern.",
		}, []string{"route"}),
		opened: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "parley_gateway_streams_opened_total",
			Help: "Streams opened, by route pattern and transport (ndjson, sse, websocket).",
		}, []string{"route", "transport"}),
		longPolls: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "parley_gateway_open_long_polls",
			Help: "Long polls waiting now: seed 000's GET /messages?id= and the Poll routes (/v1/rooms/{room}/events, /v1/direct-messages/events).",
		}),
	}
}

// newRegistry holds everything /metrics exports.
func newRegistry(m *httpMetrics, stats parleyv1.StatsServiceClient, log *slog.Logger) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		m.requests, m.duration, m.streams, m.opened, m.longPolls,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		newServerCollector(stats, statsTimeout, log),
	)
	return reg
}

// metricsHandler serves reg in the Prometheus text (or negotiated) format.
func metricsHandler(reg *prometheus.Registry, log *slog.Logger) runtime.HandlerFunc {
	h := promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		ErrorHandling: promhttp.ContinueOnError,
	})
	return func(w http.ResponseWriter, r *http.Request, _ map[string]string) {
		h.ServeHTTP(w, r)
	}
}

// route is the pattern the mux matched, as the HTTP rules write it.
type routeKey struct{}

type routeNote struct{ pattern string }

// routePattern turns grpc-gateway's "/v1/rooms/{room=*}" into the rules'
// "/v1/rooms/{room}".
func routePattern(r *http.Request) string {
	p, ok := runtime.HTTPPattern(r.Context())
	if !ok {
		return ""
	}
	return strings.ReplaceAll(p.String(), "=*}", "}")
}

// routeOf caches routePattern for one handler of the mux. The mux wraps
// each route's handler in the middlewares on its own (runtime.ServeMux.Handle),
// so every request through one wrapped handler has the same pattern, and
// the middlewares work it out once rather than on every request.
type routeOf struct {
	pattern atomic.Pointer[string]
}

func (c *routeOf) get(r *http.Request) string {
	if p := c.pattern.Load(); p != nil {
		return *p
	}
	route := routePattern(r)
	if route != "" {
		c.pattern.Store(&route)
	}
	return route
}

func isStreamRoute(method, route string) bool {
	return method == http.MethodGet && (isSubscribeRoute(route) || isWebSocketRoute(route))
}

func isLongPollRoute(method, route string) bool {
	return method == http.MethodGet && (route == "/messages" || isPollRoute(route))
}

// streamTransport names how a stream request is served.
func streamTransport(r *http.Request, route string) string {
	switch {
	case isWebSocketRoute(route):
		return "websocket"
	case acceptsEventStream(r):
		return "sse"
	}
	return "ndjson"
}

// middleware runs inside the mux, once a route matched: it notes the route
// for observe and counts open streams and long polls.
func (m *httpMetrics) middleware(next runtime.HandlerFunc) runtime.HandlerFunc {
	var routes routeOf
	return func(w http.ResponseWriter, r *http.Request, params map[string]string) {
		route := routes.get(r)
		if note, ok := r.Context().Value(routeKey{}).(*routeNote); ok {
			note.pattern = route
		}
		switch {
		case isStreamRoute(r.Method, route):
			m.opened.WithLabelValues(route, streamTransport(r, route)).Inc()
			g := m.streams.WithLabelValues(route)
			g.Inc()
			hold := &streamHold{release: g.Dec}
			r = r.WithContext(context.WithValue(r.Context(), streamHoldKey{}, hold))
			defer hold.handlerDone()
		case isLongPollRoute(r.Method, route):
			m.longPolls.Inc()
			defer m.longPolls.Dec()
		}
		next(w, r, params)
	}
}

// observe counts every request, by the route the middleware noted, once it
// is answered.
func (m *httpMetrics) observe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		note := &routeNote{}
		// Under accessLog, w is its recorder already: one recorder serves
		// both rather than a second layer on every write.
		rec, ok := w.(*recorder)
		if !ok {
			rec = &recorder{ResponseWriter: w, status: http.StatusOK}
		}
		next.ServeHTTP(rec, r.WithContext(context.WithValue(r.Context(), routeKey{}, note)))
		route := note.pattern
		if route == "" {
			route = unmatchedRoute
		}
		m.requests.WithLabelValues(route, r.Method, strconv.Itoa(rec.status)).Inc()
		if !isStreamRoute(r.Method, route) {
			m.duration.WithLabelValues(route, r.Method).Observe(time.Since(start).Seconds())
		}
	})
}

// serverCollector exports the server's StatsService figures as constant
// metrics, fetched once per scrape. When the server cannot be asked, only
// parley_server_up (0) is exported.
type serverCollector struct {
	client  parleyv1.StatsServiceClient
	timeout time.Duration
	log     *slog.Logger
}

func newServerCollector(client parleyv1.StatsServiceClient, timeout time.Duration, log *slog.Logger) *serverCollector {
	return &serverCollector{client: client, timeout: timeout, log: log}
}

func serverDesc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("parley_server_"+name, help, labels, nil)
}

var (
	descUp = serverDesc("up", "1 when the last GetStats of the gateway's server succeeded, else 0.")
	// The process.
	descStartTime = serverDesc("start_time_seconds", "When the server process started, in seconds since the Unix epoch.")
	descUptime    = serverDesc("uptime_seconds", "How long the server process has run.")
	descCPU       = serverDesc("cpu_seconds_total", "CPU time the server process used, by mode (user, system).", "mode")
	descCPUUsage  = serverDesc("cpu_usage_ratio", "CPU seconds the server used per second over the stats window (or the uptime while shorter): 1 is one core busy.")
	descRSS       = serverDesc("resident_memory_bytes", "Resident set size of the server process.")
	descPeakRSS   = serverDesc("resident_memory_peak_bytes", "Largest resident set size the server process has had.")
	descThreads   = serverDesc("threads", "Threads of the server process.")
	// The chat layer.
	descSessions  = serverDesc("lobby_sessions", "Seed-000 lobby clients joined now.")
	descStreams   = serverDesc("open_streams", "Subscribe streams open now (lobby, room and direct messages).")
	descStreamsN  = serverDesc("streams_total", "Subscribe streams started.")
	descDeliver   = serverDesc("deliveries_total", "Events queued to a reader's channel, one per event and reader.")
	descOverflows = serverDesc("channel_overflows_total", "Events a full reader channel could not take (the reader gets a gap marker instead).")
	descDelivLag  = serverDesc("delivery_lag_seconds", "The server's part of a delivery: from the hub queueing a log event for its commit to a Subscribe stream taking it for a write.")
	// The store.
	descCommits      = serverDesc("store_commits_total", "Transactions committed by the store's writer, one per batch of writes.")
	descWrites       = serverDesc("store_writes_total", "Writes run in the store's transactions.")
	descLargestBatch = serverDesc("store_largest_batch", "Most writes committed in one transaction so far.")
	descCommitTime   = serverDesc("store_commit_seconds_total", "Time from BEGIN to the end of COMMIT, summed over the store's transactions.")
	descCommitMax    = serverDesc("store_commit_seconds_max", "The store's longest transaction so far, BEGIN to the end of COMMIT.")
	descCheckpoints  = serverDesc("store_checkpoints_total", "WAL checkpoints run by the store's checkpoint thread.")
	descCheckpointT  = serverDesc("store_checkpoint_seconds_total", "Time of the store's WAL checkpoints, summed.")
	descCkptRestarts = serverDesc("store_checkpoint_restarts_total", "RESTART checkpoints the store's writer ran so that the WAL starts again.")
	descWriteWait    = serverDesc("store_write_wait_seconds", "What group commit adds to a write: from its arrival at the store's writer queue to the end of the COMMIT of the transaction it ran in.")
	descWriteWaitMax = serverDesc("store_write_wait_seconds_max", "The longest wait of a write for its commit so far.")
	// gRPC calls.
	descRequests = serverDesc("grpc_requests_total", "gRPC calls that ended, by service, method and type (unary, stream).", "service", "method", "type")
	descErrors   = serverDesc("grpc_errors_total", "gRPC calls that ended with a status other than OK.", "service", "method")
	descInFlight = serverDesc("grpc_in_flight", "gRPC calls started and not ended (for a stream method: open streams).", "service", "method")
	descLatency  = serverDesc("grpc_request_duration_seconds", "Response time of unary gRPC calls, from the call's arrival to its status.", "service", "method")
	descMAvg     = serverDesc("grpc_window_average_seconds", "Average response time of a unary method's calls over the stats window.", "service", "method")
	descMPeak    = serverDesc("grpc_window_peak_seconds", "Peak response time of a unary method's calls over the stats window.", "service", "method")
	descAvg      = serverDesc("response_time_window_average_seconds", "Seed 004's average response time: every unary call but long polls over the stats window.")
	descPeak     = serverDesc("response_time_window_peak_seconds", "Seed 004's peak response time: every unary call but long polls over the stats window.")
	descWindow   = serverDesc("stats_window_seconds", "The sliding window of the window figures (the server's --stats_window).")

	serverDescs = []*prometheus.Desc{
		descUp, descStartTime, descUptime, descCPU, descCPUUsage, descRSS, descPeakRSS, descThreads,
		descSessions, descStreams, descStreamsN, descDeliver, descOverflows, descDelivLag,
		descCommits, descWrites, descLargestBatch, descCommitTime, descCommitMax, descCheckpoints, descCheckpointT, descCkptRestarts, descWriteWait, descWriteWaitMax,
		descRequests, descErrors, descInFlight, descLatency, descMAvg, descMPeak, descAvg, descPeak, descWindow,
	}
)

func (c *serverCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range serverDescs {
		ch <- d
	}
}

func (c *serverCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	s, err := c.client.GetStats(ctx, &parleyv1.GetStatsRequest{})
	if err != nil {
		c.log.Warn("metrics: GetStats failed", "err", err)
		ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, 0)
		return
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	gauge(descUp, 1)

	p := s.GetProcess()
	gauge(descStartTime, float64(p.GetStartTime().AsTime().UnixNano())/1e9)
	gauge(descUptime, p.GetUptimeSeconds())
	counter(descCPU, p.GetCpuUserSeconds(), "user")
	counter(descCPU, p.GetCpuSystemSeconds(), "system")
	gauge(descCPUUsage, p.GetCpuPercent()/100)
	gauge(descRSS, float64(p.GetResidentMemoryBytes()))
	gauge(descPeakRSS, float64(p.GetPeakResidentMemoryBytes()))
	gauge(descThreads, float64(p.GetThreads()))

	chat := s.GetChat()
	gauge(descSessions, float64(chat.GetLobbySessions()))
	gauge(descStreams, float64(chat.GetOpenStreams()))
	counter(descStreamsN, float64(chat.GetStreamsTotal()))
	counter(descDeliver, float64(chat.GetDeliveriesTotal()))
	counter(descOverflows, float64(chat.GetChannelOverflowsTotal()))

	st := s.GetStore()
	counter(descCommits, float64(st.GetCommitsTotal()))
	counter(descWrites, float64(st.GetWritesTotal()))
	gauge(descLargestBatch, float64(st.GetLargestBatch()))
	counter(descCommitTime, st.GetCommitSecondsTotal())
	gauge(descCommitMax, st.GetCommitSecondsMax())
	counter(descCheckpoints, float64(st.GetCheckpointsTotal()))
	counter(descCheckpointT, st.GetCheckpointSecondsTotal())
	counter(descCkptRestarts, float64(st.GetCheckpointRestartsTotal()))

	bounds := s.GetLatencyBucketBounds()
	if h, ok := histogram(bounds, chat.GetDeliveryLagBucketCounts(), chat.GetDeliveryLagSecondsSum(), descDelivLag); ok {
		ch <- h
	}
	if h, ok := histogram(bounds, st.GetWriteWaitBucketCounts(), st.GetWriteWaitSecondsSum(), descWriteWait); ok {
		ch <- h
	}
	gauge(descWriteWaitMax, st.GetWriteWaitSecondsMax())
	for _, m := range s.GetMethods() {
		service, method := splitMethod(m.GetMethod())
		kind := "unary"
		if m.GetStreaming() {
			kind = "stream"
		}
		counter(descRequests, float64(m.GetRequestsTotal()), service, method, kind)
		counter(descErrors, float64(m.GetErrorsTotal()), service, method)
		gauge(descInFlight, float64(m.GetInFlight()), service, method)
		if m.GetStreaming() {
			continue
		}
		gauge(descMAvg, m.GetWindow().GetAverageSeconds(), service, method)
		gauge(descMPeak, m.GetWindow().GetPeakSeconds(), service, method)
		if h, ok := histogram(bounds, m.GetLatencyBucketCounts(), m.GetLatencySecondsSum(), descLatency, service, method); ok {
			ch <- h
		}
	}
	rt := s.GetResponseTime()
	gauge(descAvg, rt.GetAverageSeconds())
	gauge(descPeak, rt.GetPeakSeconds())
	gauge(descWindow, rt.GetWindowSeconds())
}

// histogram makes a Prometheus histogram of the server's per-bucket counts
// (one per bound, then the +Inf bucket); false when the counts do not match
// the bounds (a server that reports none).
func histogram(bounds []float64, counts []uint64, sum float64, desc *prometheus.Desc, labels ...string) (prometheus.Metric, bool) {
	if len(counts) != len(bounds)+1 {
		return nil, false
	}
	buckets := make(map[float64]uint64, len(bounds))
	var cumulative uint64
	for i, bound := range bounds {
		cumulative += counts[i]
		buckets[bound] = cumulative
	}
	total := cumulative + counts[len(bounds)]
	return prometheus.MustNewConstHistogram(desc, total, sum, buckets, labels...), true
}

// splitMethod turns "/parley.v1.ChatService/Send" into its service and
// method; a name of another shape is all method.
func splitMethod(full string) (service, method string) {
	if s, m, ok := strings.Cut(strings.TrimPrefix(full, "/"), "/"); ok && strings.HasPrefix(full, "/") {
		return s, m
	}
	return "", full
}

// streamHold lets a stream outlive its handler (a live fan-out client,
// edgeconn.go): its open-stream gauge goes down when the stream ends, not
// when the handler returns.
type streamHold struct {
	mu      sync.Mutex
	kept    bool
	release func()
}

type streamHoldKey struct{}

func (h *streamHold) handlerDone() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.kept {
		h.release()
	}
}

// keepStream keeps r's stream counted past its handler; the returned
// function, called once, stops counting it.
func keepStream(r *http.Request) func() {
	h, ok := r.Context().Value(streamHoldKey{}).(*streamHold)
	if !ok {
		return func() {}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.kept = true
	return sync.OnceFunc(h.release)
}
