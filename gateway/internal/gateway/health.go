package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"parley/gateway/internal/apierror"
	"strings"
	"time"

	"log/slog"
	"sync"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// healthCheckTimeout bounds one upstream health check.
const healthCheckTimeout = 3 * time.Second

type healthBody struct {
	Status string          `json:"status"`
	Error  *apierror.Error `json:"error,omitempty"`
}

// healthHandler answers /healthz from the server's grpc.health.v1 status:
// 200 {"status":"SERVING"}, else 503 with the status, or UNKNOWN and the
// error when the server cannot be asked. Each change of the upstream's
// state is logged with the address dialled (target) and what the dial or
// the check answered, so an unhealthy gateway says why in its own log.
func healthHandler(client healthpb.HealthClient, target string, log *slog.Logger) runtime.HandlerFunc {
	var mu sync.Mutex
	last := ""
	report := func(state string, err error) {
		mu.Lock()
		defer mu.Unlock()
		if state == last {
			return
		}
		last = state
		if err != nil {
			log.Warn("upstream server not reachable", "grpc_server", target, "err", err.Error())
		} else {
			log.Info("upstream server health", "grpc_server", target, "status", state)
		}
	}
	return func(w http.ResponseWriter, r *http.Request, _ map[string]string) {
		ctx, cancel := context.WithTimeout(r.Context(), healthCheckTimeout)
		defer cancel()
		body := healthBody{Status: healthpb.HealthCheckResponse_UNKNOWN.String()}
		code := http.StatusServiceUnavailable
		resp, err := client.Check(ctx, &healthpb.HealthCheckRequest{})
		switch {
		case err != nil:
			e := apierror.Make(status.Convert(err), "", "")
			e.Status = code
			body.Error = &e
			if r.Context().Err() == nil {
				report(status.Convert(err).Message(), err)
			}
		case resp.GetStatus() == healthpb.HealthCheckResponse_SERVING:
			body.Status, code = resp.GetStatus().String(), http.StatusOK
			report(body.Status, nil)
		default:
			body.Status = resp.GetStatus().String()
			report(body.Status, nil)
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(body)
	}
}

// openAPIHandler serves the OpenAPI v2 document generated from the proto and
// the HTTP rules.
func openAPIHandler(doc []byte) runtime.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request, _ map[string]string) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(doc)
	}
}

// Probe asks the gateway that Run serves with opts for its /healthz and
// returns nil when it answers 200. It serves container health checks, where
// the image has no HTTP client: `parley-gateway --healthcheck`.
func Probe(ctx context.Context, opts Options) error {
	host, port, err := net.SplitHostPort(opts.HTTPAddr)
	if err != nil {
		return fmt.Errorf("http address %q: %w", opts.HTTPAddr, err)
	}
	if opts.PortFile != "" {
		b, err := os.ReadFile(opts.PortFile)
		if err != nil {
			return fmt.Errorf("port file: %w", err)
		}
		port = strings.TrimSpace(string(b))
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	ctx, cancel := context.WithTimeout(ctx, healthCheckTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+net.JoinHostPort(host, port)+"/healthz", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("/healthz: %s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}
