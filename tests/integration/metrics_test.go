package integration

import (
	"bufio"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// Observability (S4.6, B.8): GET /v1/stats answers the server's figures
// without a token, and the gateway's /metrics exports its own and the
// server's, which move with traffic.

// statsReply is the part of GET /v1/stats the test reads. 64-bit counters
// arrive as JSON strings.
type statsReply struct {
	Process struct {
		StartTime           string  `json:"startTime"`
		UptimeSeconds       float64 `json:"uptimeSeconds"`
		CPUSeconds          float64 `json:"cpuSeconds"`
		CPUPercent          float64 `json:"cpuPercent"`
		ResidentMemoryBytes string  `json:"residentMemoryBytes"`
	} `json:"process"`
	Chat struct {
		LobbySessions   string `json:"lobbySessions"`
		DeliveriesTotal string `json:"deliveriesTotal"`
	} `json:"chat"`
	Store struct {
		CommitsTotal string `json:"commitsTotal"`
	} `json:"store"`
	ResponseTime struct {
		WindowSeconds  float64 `json:"windowSeconds"`
		Requests       string  `json:"requests"`
		AverageSeconds float64 `json:"averageSeconds"`
		PeakSeconds    float64 `json:"peakSeconds"`
	} `json:"responseTime"`
	Methods []struct {
		Method        string `json:"method"`
		RequestsTotal string `json:"requestsTotal"`
	} `json:"methods"`
}

func num(t *testing.T, s string) uint64 {
	t.Helper()
	if s == "" {
		return 0
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		t.Fatalf("not a count: %q", s)
	}
	return n
}

// metricsSample is one series of /metrics: "name{labels}" -> value.
func (s *stack) scrape(t *testing.T) map[string]float64 {
	t.Helper()
	r := s.get(t, "/metrics")
	if r.status != http.StatusOK {
		t.Fatalf("/metrics: %v", r)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("/metrics Content-Type %q", ct)
	}
	series := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(string(r.body)))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("/metrics line %q: %v", line, err)
		}
		series[line[:i]] = v
	}
	return series
}

func mustSeries(t *testing.T, series map[string]float64, name string) float64 {
	t.Helper()
	v, ok := series[name]
	if !ok {
		t.Fatalf("/metrics has no %s", name)
	}
	return v
}

func TestStatsAndMetricsMoveWithTraffic(t *testing.T) {
	s := startStack(t)

	var before statsReply
	mustStatus(t, s.get(t, "/v1/stats"), http.StatusOK, &before)
	if before.Process.CPUSeconds <= 0 || num(t, before.Process.ResidentMemoryBytes) == 0 ||
		before.Process.UptimeSeconds <= 0 || before.Process.StartTime == "" {
		t.Errorf("process figures: %+v", before.Process)
	}
	if before.ResponseTime.WindowSeconds != 300 {
		t.Errorf("window %v, want the default 300 s", before.ResponseTime.WindowSeconds)
	}
	m0 := s.scrape(t)
	for _, name := range []string{
		"parley_server_start_time_seconds", "parley_server_uptime_seconds",
		`parley_server_cpu_seconds_total{mode="user"}`, "parley_server_cpu_usage_ratio",
		"parley_server_resident_memory_bytes", "parley_server_resident_memory_peak_bytes",
		"parley_server_lobby_sessions", "parley_server_open_streams",
		"parley_server_channel_overflows_total", "parley_server_store_commits_total",
		"parley_server_store_commit_seconds_total", "parley_server_store_largest_batch",
		"parley_server_store_commit_seconds_max", "parley_server_store_checkpoints_total",
		"parley_server_store_checkpoint_seconds_total", "parley_server_store_checkpoint_restarts_total",
		"parley_server_store_write_wait_seconds_count", "parley_server_store_write_wait_seconds_sum",
		"parley_server_delivery_lag_seconds_count", "parley_server_delivery_lag_seconds_sum",
		"parley_server_response_time_window_peak_seconds",
		"go_goroutines", "process_resident_memory_bytes",
	} {
		mustSeries(t, m0, name)
	}
	if up := mustSeries(t, m0, "parley_server_up"); up != 1 {
		t.Fatalf("parley_server_up %v", up)
	}

	// Traffic: two lobby clients, a message, a stream.
	for _, id := range []string{"mia", "noa"} {
		mustStatus(t, s.get(t, "/join?id="+id), http.StatusOK, nil)
	}
	st := s.subscribe(t, "noa")
	if code := st.waitStatus(t); code != http.StatusOK {
		t.Fatalf("subscribe: %d", code)
	}
	mustStatus(t, s.get(t, "/send?id=mia&message=hello"), http.StatusOK, nil)
	st.collect(t, func(evs []event) bool {
		for _, e := range evs {
			if e.Text == "hello" {
				return true
			}
		}
		return false
	})

	var after statsReply
	mustStatus(t, s.get(t, "/v1/stats"), http.StatusOK, &after)
	if got := num(t, after.Chat.LobbySessions); got != num(t, before.Chat.LobbySessions)+2 {
		t.Errorf("lobby sessions %d, want %d", got, num(t, before.Chat.LobbySessions)+2)
	}
	// mia's and noa's joins reach 1 + 2 channels, the message 2.
	if got, was := num(t, after.Chat.DeliveriesTotal), num(t, before.Chat.DeliveriesTotal); got < was+5 {
		t.Errorf("deliveries %d, want at least %d", got, was+5)
	}
	if num(t, after.Store.CommitsTotal) <= num(t, before.Store.CommitsTotal) {
		t.Errorf("commits did not move: %s -> %s", before.Store.CommitsTotal, after.Store.CommitsTotal)
	}
	if num(t, after.ResponseTime.Requests) < num(t, before.ResponseTime.Requests)+4 ||
		after.ResponseTime.PeakSeconds <= 0 || after.ResponseTime.AverageSeconds <= 0 ||
		after.ResponseTime.AverageSeconds > after.ResponseTime.PeakSeconds {
		t.Errorf("response time %+v after %+v", after.ResponseTime, before.ResponseTime)
	}
	sends := uint64(0)
	for _, m := range after.Methods {
		if m.Method == "/parley.v1.ChatService/Send" {
			sends = num(t, m.RequestsTotal)
		}
	}
	if sends != 1 {
		t.Errorf("Send requests %d, want 1; methods %+v", sends, after.Methods)
	}

	m1 := s.scrape(t)
	const send = `{method="Send",service="parley.v1.ChatService"}`
	if v := mustSeries(t, m1, `parley_server_grpc_requests_total{method="Send",service="parley.v1.ChatService",type="unary"}`); v != 1 {
		t.Errorf("Send requests %v, want 1", v)
	}
	if v := mustSeries(t, m1, `parley_server_grpc_request_duration_seconds_count`+send); v != 1 {
		t.Errorf("Send latency count %v, want 1", v)
	}
	mustSeries(t, m1, `parley_server_grpc_request_duration_seconds_bucket{method="Send",service="parley.v1.ChatService",le="+Inf"}`)
	if v := mustSeries(t, m1, `parley_server_grpc_in_flight{method="Subscribe",service="parley.v1.ChatService"}`); v != 1 {
		t.Errorf("Subscribe in flight %v, want 1", v)
	}
	if v := mustSeries(t, m1, "parley_server_open_streams"); v != m0["parley_server_open_streams"]+1 {
		t.Errorf("open streams %v, want %v", v, m0["parley_server_open_streams"]+1)
	}
	if v := mustSeries(t, m1, `parley_gateway_open_streams{route="/subscribe"}`); v != 1 {
		t.Errorf("gateway open streams %v, want 1", v)
	}
	for _, name := range []string{"parley_server_deliveries_total", "parley_server_store_commits_total", `parley_server_cpu_seconds_total{mode="user"}`} {
		if m1[name] < m0[name] || (name == "parley_server_deliveries_total" && m1[name] < m0[name]+5) {
			t.Errorf("%s %v -> %v", name, m0[name], m1[name])
		}
	}
	// Every write the store ran waited for its commit once (one snapshot).
	if w, n := mustSeries(t, m1, "parley_server_store_write_wait_seconds_count"), mustSeries(t, m1, "parley_server_store_writes_total"); w != n || w <= m0["parley_server_store_write_wait_seconds_count"] {
		t.Errorf("write waits %v (before %v), store writes %v", w, m0["parley_server_store_write_wait_seconds_count"], n)
	}
	// noa's stream took the message for a write: its delivery lag counted.
	if v, was := mustSeries(t, m1, "parley_server_delivery_lag_seconds_count"), m0["parley_server_delivery_lag_seconds_count"]; v < was+1 {
		t.Errorf("delivery lags %v, want at least %v", v, was+1)
	}
	if v := mustSeries(t, m1, `parley_gateway_http_requests_total{code="200",method="GET",route="/send"}`); v != 1 {
		t.Errorf("gateway /send requests %v, want 1", v)
	}
	if v := mustSeries(t, m1, `parley_gateway_http_requests_total{code="200",method="GET",route="/v1/stats"}`); v != 2 {
		t.Errorf("gateway /v1/stats requests %v, want 2", v)
	}

	// The stats are public: a bad token is not even looked at.
	r := s.req(t, http.MethodGet, "/v1/stats", "not-a-token", nil)
	if r.status != http.StatusOK {
		t.Errorf("/v1/stats with a bogus token: %v", r)
	}
	var raw map[string]json.RawMessage
	mustStatus(t, r, http.StatusOK, &raw)
	for _, key := range []string{"process", "chat", "store", "responseTime", "methods", "latencyBucketBounds"} {
		if _, ok := raw[key]; !ok {
			t.Errorf("/v1/stats lacks %q", key)
		}
	}
}
