package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"parley/gateway/internal/apierror"
)

// healthCheckTimeout bounds one upstream health check.
const healthCheckTimeout = 3 * time.Second

// reasonNoServerServing is the code of /healthz's error when no server
// serves.
const reasonNoServerServing = "NO_SERVER_SERVING"

type healthBody struct {
	Status string          `json:"status"`
	Error  *apierror.Error `json:"error,omitempty"`
	// Servers is each server's own answer.
	Servers []serverHealthBody `json:"servers"`
}

// serverHealthBody is one server's line of /healthz.
type serverHealthBody struct {
	Address string          `json:"address"`
	Status  string          `json:"status"`
	Error   *apierror.Error `json:"error,omitempty"`
}

// healthHandler answers /healthz from the servers' grpc.health.v1 status,
// each server checked on its own: 200 with status SERVING while at least
// one of them serves, else 503 with NOT_SERVING (every server said so) or
// UNKNOWN and an error. "servers" lists each server's address and status,
// and the error when it could not be asked, so that a gateway with a server
// down says which. Each change of a server's state is logged with its
// address and what the dial or the check answered, so an unhealthy gateway
// says why in its own log.
func healthHandler(targets *upstreamHealth, log *slog.Logger) runtime.HandlerFunc {
	var mu sync.Mutex
	last := map[string]string{}
	report := func(address, state string, err error) {
		mu.Lock()
		defer mu.Unlock()
		if last[address] == state {
			return
		}
		last[address] = state
		if err != nil {
			log.Warn("upstream server not reachable", "grpc_server", address, "err", err.Error())
		} else {
			log.Info("upstream server health", "grpc_server", address, "status", state)
		}
	}
	return func(w http.ResponseWriter, r *http.Request, _ map[string]string) {
		ctx, cancel := context.WithTimeout(r.Context(), healthCheckTimeout)
		defer cancel()
		servers, lookupErr := targets.servers(ctx)
		body := healthBody{Servers: make([]serverHealthBody, len(servers))}
		var wg sync.WaitGroup
		for i, s := range servers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				line, err := checkServer(ctx, s)
				body.Servers[i] = line
				if r.Context().Err() == nil {
					report(s.address, line.Status+errorMessage(err), err)
				}
			}()
		}
		wg.Wait()
		if lookupErr != nil {
			e := apierror.Make(status.Convert(lookupErr), "", "")
			e.Status = http.StatusServiceUnavailable
			body.Servers = append(body.Servers, serverHealthBody{
				Address: targets.lookupName(), Status: healthpb.HealthCheckResponse_UNKNOWN.String(), Error: &e})
			if r.Context().Err() == nil {
				report(targets.lookupName(), "lookup "+lookupErr.Error(), lookupErr)
			}
		}
		code := http.StatusServiceUnavailable
		body.Status, body.Error = combineHealth(body.Servers)
		if body.Status == healthpb.HealthCheckResponse_SERVING.String() {
			code = http.StatusOK
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(body)
	}
}

// checkServer asks one server for its health.
func checkServer(ctx context.Context, s checkedServer) (serverHealthBody, error) {
	line := serverHealthBody{Address: s.address, Status: healthpb.HealthCheckResponse_UNKNOWN.String()}
	resp, err := s.client.Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		e := apierror.Make(status.Convert(err), "", "")
		e.Status = http.StatusServiceUnavailable
		line.Error = &e
		return line, err
	}
	line.Status = resp.GetStatus().String()
	return line, nil
}

func errorMessage(err error) string {
	if err == nil {
		return ""
	}
	return " " + status.Convert(err).Message()
}

// combineHealth is the gateway's status from its servers': SERVING when
// one serves; else NOT_SERVING when every server said so, UNKNOWN when one
// could not be asked, with the error: a single server's own, or
// NO_SERVER_SERVING.
func combineHealth(servers []serverHealthBody) (string, *apierror.Error) {
	serving, notServing := healthpb.HealthCheckResponse_SERVING.String(), healthpb.HealthCheckResponse_NOT_SERVING.String()
	all := len(servers) > 0
	for _, s := range servers {
		if s.Status == serving {
			return serving, nil
		}
		all = all && s.Status == notServing
	}
	state := healthpb.HealthCheckResponse_UNKNOWN.String()
	if all {
		state = notServing
	}
	if len(servers) == 1 {
		return servers[0].Status, servers[0].Error
	}
	e := apierror.New(http.StatusServiceUnavailable, codes.Unavailable, reasonNoServerServing, "",
		fmt.Sprintf("none of the %d servers is serving; see servers", len(servers)))
	return state, &e
}

// upstreamHealth is what /healthz checks: each server of a list on a
// connection of its own, each address of a dns name the same way (looked
// up at every check), or, for one address or a target with any other
// scheme, the gateway's own connection.
type upstreamHealth struct {
	addresses              []string
	lookupHost, lookupPort string
	// shared is the gateway's own connection, when it is what is checked.
	shared *grpc.ClientConn

	mu    sync.Mutex
	conns map[string]*grpc.ClientConn // by address
}

// checkedServer is one server and the health client that asks it.
type checkedServer struct {
	address string
	client  healthpb.HealthClient
}

// newUpstreamHealth checks the servers u names; with u nil, what conn
// dials.
func newUpstreamHealth(u *upstream, conn *grpc.ClientConn) *upstreamHealth {
	h := &upstreamHealth{shared: conn, conns: map[string]*grpc.ClientConn{}}
	switch {
	case u == nil:
	case len(u.addresses) > 1:
		h.addresses, h.shared = u.addresses, nil
	case u.lookupHost != "":
		h.lookupHost, h.lookupPort, h.shared = u.lookupHost, u.lookupPort, nil
	}
	return h
}

// servers lists the servers to check now.
func (h *upstreamHealth) servers(ctx context.Context) ([]checkedServer, error) {
	if h.shared != nil {
		return []checkedServer{{address: h.shared.Target(), client: healthpb.NewHealthClient(h.shared)}}, nil
	}
	addresses := h.addresses
	var lookupErr error
	if h.lookupHost != "" {
		ips, err := net.DefaultResolver.LookupHost(ctx, h.lookupHost)
		if err != nil {
			lookupErr = status.Errorf(codes.Unavailable, "looking up %s: %v", h.lookupHost, err)
		}
		addresses = make([]string, len(ips))
		for i, ip := range ips {
			addresses[i] = net.JoinHostPort(ip, h.lookupPort)
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]checkedServer, 0, len(addresses))
	wanted := map[string]bool{}
	for _, addr := range addresses {
		wanted[addr] = true
		conn, ok := h.conns[addr]
		if !ok {
			var err error
			conn, err = grpc.NewClient("passthrough:///"+addr,
				grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithConnectParams(reconnectParams))
			if err != nil {
				return nil, status.Errorf(codes.Internal, "health connection to %s: %v", addr, err)
			}
			h.conns[addr] = conn
		}
		out = append(out, checkedServer{address: addr, client: healthpb.NewHealthClient(conn)})
	}
	// An address a name no longer has is not checked again.
	for addr, conn := range h.conns {
		if !wanted[addr] && lookupErr == nil {
			conn.Close()
			delete(h.conns, addr)
		}
	}
	return out, lookupErr
}

// lookupName is the dns name and port checked, for a failed lookup.
func (h *upstreamHealth) lookupName() string { return net.JoinHostPort(h.lookupHost, h.lookupPort) }

// Close closes the connections of the checks.
func (h *upstreamHealth) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for addr, conn := range h.conns {
		conn.Close()
		delete(h.conns, addr)
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
