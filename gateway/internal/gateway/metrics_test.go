package gateway

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	parleyv1 "parley/gateway/gen/parley/v1"
)

// fakeStats answers GetStats with stats, or fails with err.
type fakeStats struct {
	parleyv1.UnimplementedStatsServiceServer
	stats *parleyv1.GetStatsResponse
	err   error
}

func (f *fakeStats) GetStats(context.Context, *parleyv1.GetStatsRequest) (*parleyv1.GetStatsResponse, error) {
	return f.stats, f.err
}

// statsClient serves fake on a free port and returns a client of it.
func statsClient(t *testing.T, fake *fakeStats) parleyv1.StatsServiceClient {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	parleyv1.RegisterStatsServiceServer(srv, fake)
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient(ln.Addr().String(), DialOptions(defaultMaxRecvMsgBytes)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return parleyv1.NewStatsServiceClient(conn)
}

// exposition is what /metrics would answer for reg, as lines.
func exposition(t *testing.T, reg *prometheus.Registry) []string {
	t.Helper()
	rec := httptest.NewRecorder()
	promhttp.HandlerFor(reg, promhttp.HandlerOpts{}).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("/metrics: %d %s", rec.Code, rec.Body)
	}
	return linesOf(rec.Body.String())
}

func linesOf(text string) []string {
	var lines []string
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		if l := sc.Text(); l != "" && !strings.HasPrefix(l, "#") {
			lines = append(lines, l)
		}
	}
	return lines
}

// wantLines fails unless every one of want is a line of got.
func wantLines(t *testing.T, got []string, want ...string) {
	t.Helper()
	have := map[string]bool{}
	for _, l := range got {
		have[l] = true
	}
	for _, w := range want {
		if !have[w] {
			t.Errorf("no line %q in:\n%s", w, strings.Join(got, "\n"))
		}
	}
}

func sampleStats() *parleyv1.GetStatsResponse {
	return &parleyv1.GetStatsResponse{
		Process: &parleyv1.ProcessStats{
			StartTime:               timestamppb.New(time.Unix(1700000000, 500000000)),
			UptimeSeconds:           12.5,
			CpuSeconds:              3,
			CpuUserSeconds:          2,
			CpuSystemSeconds:        1,
			CpuPercent:              150,
			ResidentMemoryBytes:     4096,
			PeakResidentMemoryBytes: 8192,
			Threads:                 7,
		},
		Chat: &parleyv1.ChatStats{
			LobbySessions: 2, OpenStreams: 3, StreamsTotal: 9, DeliveriesTotal: 40, ChannelOverflowsTotal: 5,
			DeliveryLagBucketCounts: []uint64{30, 4, 1, 0}, DeliveryLagSecondsSum: 0.125,
		},
		Store: &parleyv1.StoreStats{
			CommitsTotal: 10, WritesTotal: 25, LargestBatch: 6, CommitSecondsTotal: 0.25, CommitSecondsAverage: 0.025,
			CommitSecondsMax: 0.125, CheckpointsTotal: 3, CheckpointSecondsTotal: 0.0625, CheckpointRestartsTotal: 1,
			WriteWaitBucketCounts: []uint64{20, 3, 0, 2}, WriteWaitSecondsSum: 0.5, WriteWaitSecondsMax: 0.25,
		},
		ResponseTime: &parleyv1.WindowStats{WindowSeconds: 300, Requests: 4, AverageSeconds: 0.002, PeakSeconds: 0.004},
		Methods: []*parleyv1.MethodStats{
			{
				Method: "/parley.v1.ChatService/Send", RequestsTotal: 4, ErrorsTotal: 1, InFlight: 1,
				Window:              &parleyv1.WindowStats{WindowSeconds: 300, Requests: 4, AverageSeconds: 0.002, PeakSeconds: 0.004},
				LatencyBucketCounts: []uint64{1, 2, 0, 1},
				LatencySecondsSum:   0.008,
			},
			{
				Method: "/parley.v1.ChatService/Subscribe", Streaming: true, RequestsTotal: 2, InFlight: 3,
				Window: &parleyv1.WindowStats{WindowSeconds: 300, Requests: 2},
			},
		},
		LatencyBucketBounds: []float64{0.001, 0.005, 0.01},
	}
}

func TestServerCollectorExportsTheServersFigures(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(newServerCollector(statsClient(t, &fakeStats{stats: sampleStats()}), time.Second, slog.New(slog.NewTextHandler(io.Discard, nil))))
	wantLines(t, exposition(t, reg),
		`parley_server_up 1`,
		`parley_server_start_time_seconds 1.7000000005e+09`,
		`parley_server_uptime_seconds 12.5`,
		`parley_server_cpu_seconds_total{mode="user"} 2`,
		`parley_server_cpu_seconds_total{mode="system"} 1`,
		`parley_server_cpu_usage_ratio 1.5`,
		`parley_server_resident_memory_bytes 4096`,
		`parley_server_resident_memory_peak_bytes 8192`,
		`parley_server_threads 7`,
		`parley_server_lobby_sessions 2`,
		`parley_server_open_streams 3`,
		`parley_server_streams_total 9`,
		`parley_server_deliveries_total 40`,
		`parley_server_channel_overflows_total 5`,
		`parley_server_store_commits_total 10`,
		`parley_server_store_writes_total 25`,
		`parley_server_store_largest_batch 6`,
		`parley_server_store_commit_seconds_total 0.25`,
		`parley_server_store_commit_seconds_max 0.125`,
		`parley_server_store_checkpoints_total 3`,
		`parley_server_store_checkpoint_seconds_total 0.0625`,
		`parley_server_store_checkpoint_restarts_total 1`,
		// Per-bucket counts 20, 3, 0 and 2 above the last bound, cumulated.
		`parley_server_delivery_lag_seconds_bucket{le="0.001"} 30`,
		`parley_server_delivery_lag_seconds_bucket{le="0.005"} 34`,
		`parley_server_delivery_lag_seconds_bucket{le="0.01"} 35`,
		`parley_server_delivery_lag_seconds_bucket{le="+Inf"} 35`,
		`parley_server_delivery_lag_seconds_sum 0.125`,
		`parley_server_delivery_lag_seconds_count 35`,
		`parley_server_store_write_wait_seconds_bucket{le="0.001"} 20`,
		`parley_server_store_write_wait_seconds_bucket{le="0.005"} 23`,
		`parley_server_store_write_wait_seconds_bucket{le="0.01"} 23`,
		`parley_server_store_write_wait_seconds_bucket{le="+Inf"} 25`,
		`parley_server_store_write_wait_seconds_sum 0.5`,
		`parley_server_store_write_wait_seconds_count 25`,
		`parley_server_store_write_wait_seconds_max 0.25`,
		`parley_server_grpc_requests_total{method="Send",service="parley.v1.ChatService",type="unary"} 4`,
		`parley_server_grpc_requests_total{method="Subscribe",service="parley.v1.ChatService",type="stream"} 2`,
		`parley_server_grpc_errors_total{method="Send",service="parley.v1.ChatService"} 1`,
		`parley_server_grpc_in_flight{method="Subscribe",service="parley.v1.ChatService"} 3`,
		`parley_server_grpc_window_average_seconds{method="Send",service="parley.v1.ChatService"} 0.002`,
		`parley_server_grpc_window_peak_seconds{method="Send",service="parley.v1.ChatService"} 0.004`,
		// Per-bucket counts 1, 2, 0 and 1 above the last bound, cumulated.
		`parley_server_grpc_request_duration_seconds_bucket{method="Send",service="parley.v1.ChatService",le="0.001"} 1`,
		`parley_server_grpc_request_duration_seconds_bucket{method="Send",service="parley.v1.ChatService",le="0.005"} 3`,
		`parley_server_grpc_request_duration_seconds_bucket{method="Send",service="parley.v1.ChatService",le="0.01"} 3`,
		`parley_server_grpc_request_duration_seconds_bucket{method="Send",service="parley.v1.ChatService",le="+Inf"} 4`,
		`parley_server_grpc_request_duration_seconds_sum{method="Send",service="parley.v1.ChatService"} 0.008`,
		`parley_server_grpc_request_duration_seconds_count{method="Send",service="parley.v1.ChatService"} 4`,
		`parley_server_response_time_window_average_seconds 0.002`,
		`parley_server_response_time_window_peak_seconds 0.004`,
		`parley_server_stats_window_seconds 300`,
	)
	// Streams have no response time.
	for _, l := range exposition(t, reg) {
		if strings.Contains(l, `method="Subscribe"`) && (strings.Contains(l, "duration") || strings.Contains(l, "window")) {
			t.Errorf("a stream is timed: %s", l)
		}
	}
}

func TestServerCollectorReportsDownWhenTheServerFails(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(newServerCollector(statsClient(t, &fakeStats{err: status.Error(codes.Unavailable, "down")}), time.Second, slog.New(slog.NewTextHandler(io.Discard, nil))))
	got := exposition(t, reg)
	wantLines(t, got, `parley_server_up 0`)
	if len(got) != 1 {
		t.Errorf("want only parley_server_up, got:\n%s", strings.Join(got, "\n"))
	}
}

func TestSplitMethod(t *testing.T) {
	for _, c := range []struct{ full, service, method string }{
		{"/parley.v1.ChatService/Send", "parley.v1.ChatService", "Send"},
		{"(other)", "", "(other)"},
		{"no/slash", "", "no/slash"},
	} {
		if s, m := splitMethod(c.full); s != c.service || m != c.method {
			t.Errorf("splitMethod(%q) = %q, %q; want %q, %q", c.full, s, m, c.service, c.method)
		}
	}
}

func TestMetricsCountRequestsByRouteAndOpenStreams(t *testing.T) {
	f := start(t)
	scrape := func() []string {
		t.Helper()
		r := f.do(t, http.MethodGet, "/metrics", "", "")
		if r.status != http.StatusOK {
			t.Fatalf("/metrics: %d %s", r.status, r.body)
		}
		return linesOf(r.body)
	}
	f.do(t, http.MethodGet, "/healthz", "", "")
	f.do(t, http.MethodGet, "/send?id=ann&message=hi", "", "")
	f.do(t, http.MethodGet, "/no/such/route", "", "")

	// A stream, held open by the fake after its first line.
	req, err := http.NewRequest(http.MethodGet, f.url+"/subscribe?id=ann", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	lines := bufio.NewScanner(resp.Body)
	if !lines.Scan() {
		t.Fatalf("no first stream line: %v", lines.Err())
	}

	got := scrape()
	wantLines(t, got,
		`parley_gateway_http_requests_total{code="200",method="GET",route="/healthz"} 1`,
		`parley_gateway_http_requests_total{code="200",method="GET",route="/send"} 1`,
		`parley_gateway_http_requests_total{code="404",method="GET",route="unmatched"} 1`,
		`parley_gateway_http_request_duration_seconds_count{method="GET",route="/send"} 1`,
		`parley_gateway_open_streams{route="/subscribe"} 1`,
		`parley_gateway_open_long_polls 0`,
		// The fake server has no StatsService.
		`parley_server_up 0`,
	)
	for _, prefix := range []string{"go_goroutines ", "process_cpu_seconds_total ", "process_resident_memory_bytes "} {
		found := false
		for _, l := range got {
			found = found || strings.HasPrefix(l, prefix)
		}
		if !found {
			t.Errorf("no %s series", prefix)
		}
	}

	// Let the fake finish the stream, then read it to its end.
	f.chat.release <- struct{}{}
	f.chat.release <- struct{}{}
	for lines.Scan() {
	}
	got = scrape()
	wantLines(t, got,
		`parley_gateway_open_streams{route="/subscribe"} 0`,
		`parley_gateway_http_requests_total{code="200",method="GET",route="/subscribe"} 1`,
		`parley_gateway_http_requests_total{code="200",method="GET",route="/metrics"} 1`,
	)
	for _, l := range got {
		if strings.HasPrefix(l, "parley_gateway_http_request_duration_seconds") && strings.Contains(l, `route="/subscribe"`) {
			t.Errorf("a stream is timed: %s", l)
		}
	}
}
