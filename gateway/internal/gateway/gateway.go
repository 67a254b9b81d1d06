// Package gateway is Parley's REST gateway: the grpc-gateway mux generated
// from proto/ and gateway/http_rules.yaml for every parley.v1 service, wrapped
// with input checks, the routes the mux cannot express (rewrite.go), HTTP
// statuses and Location headers from the server (created.go), one JSON error
// shape, Server-Sent Events and WebSockets over the same Subscribe streams
// (realtime.go, sse.go, websocket.go), the reproduced APIs' routes and
// sockets (internal/compat), /healthz, /openapi.json and Prometheus /metrics
// (metrics.go), served over HTTP/1.1.
//
// Run owns the process lifetime; NewHandler builds the http.Handler around a
// caller-owned gRPC connection, which must outlive the handler.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/textproto"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protojson"

	"parley/gateway/gen/openapi"
	parleyv1 "parley/gateway/gen/parley/v1"
	"parley/gateway/internal/apierror"
	"parley/gateway/internal/compat"
	"parley/gateway/internal/compat/chitchat"
	"parley/gateway/internal/compat/messagingapi"
	"parley/gateway/internal/web"
)

// Options configures Run. The zero value of every field but GRPCServer and
// HTTPAddr picks a sane default.
type Options struct {
	// HTTPAddr is the listen address, e.g. "127.0.0.1:8080"; port 0 picks a
	// free port.
	HTTPAddr string
	// GRPCServer names the Parley gRPC servers: one host:port, a
	// comma-separated list of them, or one target with a scheme such as
	// dns:///name:port. Calls are spread over the servers that are up.
	GRPCServer string
	// PortFile, if set, receives the bound HTTP port once the listener is open.
	PortFile string
	// ShutdownGrace is how long open requests (long polls, streams) may run on
	// after ctx is done before they are cancelled. Default 5s.
	ShutdownGrace time.Duration
	// MaxRecvMsgBytes caps one gRPC response from the server. Default 16 MiB.
	MaxRecvMsgBytes int
	// Logger receives structured logs. Default slog.Default().
	Logger *slog.Logger
	// SSEKeepalive is the interval of the `: keepalive` comment on a
	// Server-Sent Events stream. Default 15s.
	SSEKeepalive time.Duration
	// SSERetry is the reconnection delay an SSE stream announces with
	// `retry:`. Default 2s.
	SSERetry time.Duration
	// WSPingInterval is the interval of WebSocket pings; a peer that does
	// not answer one within the interval is disconnected. Default 30s.
	WSPingInterval time.Duration
	// WSOrigins are the foreign origins (host patterns in path.Match syntax,
	// e.g. "*.example.com", or "https://app.example.com") whose pages may
	// open WebSockets. The gateway's own host is always allowed, and so are
	// clients that send no Origin.
	WSOrigins []string
	// TrustedProxies are the peers whose Forwarded, X-Forwarded-Host and
	// X-Forwarded-Proto headers name the request's external scheme and
	// host (absolute Location headers, the WebSocket origin check). Empty:
	// nobody's; the request's own Host and scheme count.
	TrustedProxies TrustedProxies
	// MaxConnsPerAddress caps the connections one client address (IPv6: its
	// /64) holds open; past it a connection is answered 429 and closed.
	// The trusted proxies are not counted. 0: no cap.
	MaxConnsPerAddress int
	// StreamResumeTimeout is how long a room or inbox stream whose server
	// went away is retried on the servers that are up before it ends.
	// Default 10s; negative turns resuming off.
	StreamResumeTimeout time.Duration
	// EdgeSecret is the servers' --edge_secret. Set, the gateway holds one
	// stream per room and per inbox for all of its SSE and WebSocket
	// clients of it and fans the events out itself (fanout.go,
	// docs/fanout.md); empty, each client has a stream of its own.
	EdgeSecret string
	// FanoutQueueEvents bounds the events one fan-out client may have
	// waiting; past it they become one gap event. Default 1024.
	FanoutQueueEvents int
}

func (o Options) handlerConfig() handlerConfig {
	return handlerConfig{
		realtime: realtimeConfig{
			sseKeepalive:        o.SSEKeepalive,
			sseRetry:            o.SSERetry,
			wsPingInterval:      o.WSPingInterval,
			wsOrigins:           o.WSOrigins,
			edgeSecret:          o.EdgeSecret,
			fanoutQueueEvents:   o.FanoutQueueEvents,
			streamResumeTimeout: o.StreamResumeTimeout,
		},
		trustedProxies: o.TrustedProxies,
	}
}

// handlerConfig holds the settings of the handler; zero fields take the
// defaults.
type handlerConfig struct {
	realtime       realtimeConfig
	trustedProxies TrustedProxies
	// servers are what /healthz checks; nil: what the connection dials.
	servers *upstreamHealth
}

const (
	defaultShutdownGrace   = 5 * time.Second
	defaultMaxRecvMsgBytes = 16 << 20
	// readHeaderTimeout bounds slow clients. There is deliberately no
	// WriteTimeout or ReadTimeout: long polls wait up to the server's
	// --receive_max_timeout and streams are open-ended, and either timeout
	// would cut them.
	readHeaderTimeout = 10 * time.Second
	idleTimeout       = 2 * time.Minute
)

// Run serves the gateway until ctx is done, then shuts down gracefully: it
// stops accepting, lets open requests finish within ShutdownGrace, then
// cancels the rest (which cancels their upstream calls).
func Run(ctx context.Context, opts Options) error {
	if opts.ShutdownGrace <= 0 {
		opts.ShutdownGrace = defaultShutdownGrace
	}
	if opts.MaxRecvMsgBytes <= 0 {
		opts.MaxRecvMsgBytes = defaultMaxRecvMsgBytes
	}
	if opts.StreamResumeTimeout == 0 {
		opts.StreamResumeTimeout = defaultStreamResumeTimeout
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}

	conn, health, err := dialUpstream(opts, log, ctx.Done())
	if err != nil {
		return err
	}
	defer conn.Close()
	defer health.Close()

	cfg := opts.handlerConfig()
	cfg.servers = health
	handler, err := newHandler(ctx, conn, log, cfg)
	if err != nil {
		return err
	}

	ln, err := net.Listen("tcp", opts.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", opts.HTTPAddr, err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	if opts.PortFile != "" {
		if err := writePortFile(opts.PortFile, port); err != nil {
			ln.Close()
			return err
		}
	}

	// Requests run under their own context so that shutdown can end the
	// ones still open after the grace period.
	reqCtx, cancelRequests := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelRequests()
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: readHeaderTimeout,
		IdleTimeout:       idleTimeout,
		BaseContext:       func(net.Listener) context.Context { return reqCtx },
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}

	serveErr := make(chan error, 1)
	served := newConnLimitListener(jsonParseErrorsListener{ln}, opts.MaxConnsPerAddress, opts.TrustedProxies)
	go func() { serveErr <- srv.Serve(served) }()
	log.Info("gateway listening", "addr", ln.Addr().String(), "port", port, "grpc_server", opts.GRPCServer)

	select {
	case err := <-serveErr:
		return fmt.Errorf("http server: %w", err)
	case <-ctx.Done():
	}

	log.Info("gateway shutting down", "grace", opts.ShutdownGrace.String())
	graceCtx, cancelGrace := context.WithTimeout(context.Background(), opts.ShutdownGrace)
	defer cancelGrace()
	if err := srv.Shutdown(graceCtx); err != nil {
		log.Info("grace period over, cancelling open requests")
		cancelRequests()
		// The cancelled handlers answer and return promptly; give them a
		// moment to write before the connections are closed under them.
		finalCtx, cancelFinal := context.WithTimeout(context.Background(), time.Second)
		defer cancelFinal()
		if err := srv.Shutdown(finalCtx); err != nil {
			srv.Close()
		}
	}
	// Shutdown does not wait for WebSockets (hijacked connections); they
	// close themselves with 4503 once ctx is done.
	sockCtx, cancelSock := context.WithTimeout(context.Background(), opts.ShutdownGrace)
	defer cancelSock()
	if err := handler.rt.wait(sockCtx); err != nil {
		log.Warn("websockets still open after the grace period", "err", err)
	}
	log.Info("gateway stopped")
	return nil
}

// dialUpstream opens the gateway's connection to the servers opts names,
// with round_robin over them and Subscribe streams that resume on another
// server until stopping is closed, and the health checks of each server.
func dialUpstream(opts Options, log *slog.Logger, stopping <-chan struct{}) (*grpc.ClientConn, *upstreamHealth, error) {
	servers, err := parseUpstream(opts.GRPCServer)
	if err != nil {
		return nil, nil, fmt.Errorf("--grpc_server: %w", err)
	}
	dialOpts := append(DialOptions(opts.MaxRecvMsgBytes), servers.dialOptions()...)
	if opts.StreamResumeTimeout > 0 {
		resumer := &streamResumer{timeout: opts.StreamResumeTimeout, stopping: stopping, log: log}
		dialOpts = append(dialOpts, grpc.WithChainStreamInterceptor(resumer.intercept))
	}
	conn, err := grpc.NewClient(servers.target, dialOpts...)
	if err != nil {
		return nil, nil, fmt.Errorf("grpc client for %s: %w", opts.GRPCServer, err)
	}
	return conn, newUpstreamHealth(servers, conn), nil
}

// DialOptions are the options of the gateway's one shared connection to the
// gRPC servers, besides those dialUpstream adds for several servers.
func DialOptions(maxRecvMsgBytes int) []grpc.DialOption {
	return []grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxRecvMsgBytes)),
		grpc.WithChainUnaryInterceptor(metadataUnaryInterceptor, utf8UnaryInterceptor),
		grpc.WithChainStreamInterceptor(metadataStreamInterceptor, utf8StreamInterceptor),
	}
}

// NewHandler returns the gateway's HTTP handler, forwarding to conn, with
// the default stream settings. When ctx is done, its SSE and WebSocket
// streams end with a resumable error (the gateway is shutting down).
func NewHandler(ctx context.Context, conn *grpc.ClientConn, log *slog.Logger) (http.Handler, error) {
	h, err := newHandler(ctx, conn, log, handlerConfig{})
	if err != nil {
		return nil, err
	}
	return h, nil
}

// handler is the gateway's HTTP handler and the realtime part Run waits
// for at shutdown.
type handler struct {
	http.Handler
	rt *realtime
}

func newHandler(ctx context.Context, conn *grpc.ClientConn, log *slog.Logger, cfg handlerConfig) (*handler, error) {
	if log == nil {
		log = slog.Default()
	}
	health := cfg.servers
	if health == nil {
		health = newUpstreamHealth(nil, conn)
	}
	metrics := newHTTPMetrics()
	marshaler := newJSONMarshaler()
	rt := newRealtime(ctx, conn, log, marshaler, cfg.realtime)
	apis := []compat.API{chitchat.New(rt.clients), messagingapi.New(rt.clients)}
	rf := newRefusals(apis)
	mux := runtime.NewServeMux(
		runtime.WithMiddlewares(metrics.middleware, rt.middleware),
		runtime.WithMarshalerOption(runtime.MIMEWildcard, marshaler),
		runtime.WithIncomingHeaderMatcher(incomingHeader),
		runtime.WithErrorHandler(errorHandler(log)),
		runtime.WithRoutingErrorHandler(rf.routingError),
		runtime.WithOutgoingHeaderMatcher(outgoingMetadata(runtime.MetadataHeaderPrefix)),
		runtime.WithOutgoingTrailerMatcher(outgoingMetadata(runtime.MetadataTrailerPrefix)),
		runtime.WithForwardResponseOption(forwardStatusAndLocation),
	)
	// The mux tries the routes registered last first. ChatService goes last:
	// its /v1/rooms/{room}:subscribe and /v1/direct-messages:subscribe must
	// be tried before GetRoom's /v1/rooms/{room}, which would otherwise take
	// "x:subscribe" for a room name.
	for _, svc := range []struct {
		name     string
		register func(context.Context, *runtime.ServeMux, *grpc.ClientConn) error
	}{
		{"AuthService", parleyv1.RegisterAuthServiceHandler},
		{"UserService", parleyv1.RegisterUserServiceHandler},
		{"RoomService", parleyv1.RegisterRoomServiceHandler},
		{"MessageService", parleyv1.RegisterMessageServiceHandler},
		{"StatsService", parleyv1.RegisterStatsServiceHandler},
		{"PresenceService", parleyv1.RegisterPresenceServiceHandler},
		{"ChatService", parleyv1.RegisterChatServiceHandler},
	} {
		if err := svc.register(ctx, mux, conn); err != nil {
			return nil, fmt.Errorf("register %s routes: %w", svc.name, err)
		}
	}
	rt.mux = mux
	// Registered after the services, so tried before GetRoom's
	// /v1/rooms/{room}.
	sockets := []compat.Socket{
		parleySocket{pattern: roomSocketRoute, clients: rt.clients, encoding: encodedEvents},
		parleySocket{pattern: directSocketRoute, clients: rt.clients, encoding: encodedEvents, inbox: true},
	}
	for _, api := range apis {
		if err := registerRoutes(mux, api); err != nil {
			return nil, err
		}
		sockets = append(sockets, api.Sockets()...)
	}
	for _, ws := range sockets {
		if !isWebSocketRoute(ws.Pattern()) {
			return nil, fmt.Errorf("WebSocket route %s must end in :ws or /ws", ws.Pattern())
		}
		if err := mux.HandlePath(http.MethodGet, ws.Pattern(), rt.serveWebSocket(ws)); err != nil {
			return nil, fmt.Errorf("register %s: %w", ws.Pattern(), err)
		}
	}
	if err := mux.HandlePath(http.MethodGet, "/healthz", healthHandler(health, log)); err != nil {
		return nil, err
	}
	if err := mux.HandlePath(http.MethodGet, "/openapi.json", openAPIHandler(openapi.JSON)); err != nil {
		return nil, err
	}
	registry := newRegistry(metrics, parleyv1.NewStatsServiceClient(conn), log)
	if rt.fanout != nil {
		registry.MustRegister(rt.fanout.collectors()...)
	}
	if err := mux.HandlePath(http.MethodGet, metricsPath, metricsHandler(registry, log)); err != nil {
		return nil, err
	}
	return &handler{Handler: accessLog(log, metrics.observe(routePage(checkInput(rewriteRoutes(mux, cfg.trustedProxies), rf)))), rt: rt}, nil
}

// newJSONMarshaler is the marshaler of every request body and response.
func newJSONMarshaler() *jsonMarshaler {
	return &jsonMarshaler{JSONPb: &runtime.JSONPb{
		MarshalOptions: jsonOptions,
		// Unknown fields in a body are refused (400, field named), not
		// silently dropped.
		UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: false},
	}}
}

// routePage sends the browser page (GET / and its assets under
// web.Prefix) to the embedded files and everything else to `api`.
func routePage(api http.Handler) http.Handler {
	page := web.Handler()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if (r.Method == http.MethodGet || r.Method == http.MethodHead) &&
			(r.URL.Path == "/" || r.URL.Path == "/index.html" || strings.HasPrefix(r.URL.Path, web.Prefix)) {
			page.ServeHTTP(w, r)
			return
		}
		api.ServeHTTP(w, r)
	})
}

// idempotencyKeyHeader is the HTTP header of a send's idempotency key; the
// server reads it from the metadata key of the same name.
const idempotencyKeyHeader = "Idempotency-Key"

// incomingHeader forwards only what the server reads: Idempotency-Key as
// the metadata idempotency-key. Authorization reaches it as authorization
// without the matcher (grpc-gateway always passes it). Nothing else does:
// not grpc-gateway's Grpc-Metadata-* pass-through, which would let a
// Grpc-Metadata-Authorization stand beside Authorization as a second token,
// nor the other headers it would forward as grpcgateway-*.
func incomingHeader(key string) (string, bool) {
	if textproto.CanonicalMIMEHeaderKey(key) == idempotencyKeyHeader {
		return "idempotency-key", true
	}
	return "", false
}

// outgoingMetadata forwards the server's response metadata under prefix
// (Grpc-Metadata- for headers, Grpc-Trailer- for trailers), less what only
// describes the gRPC transport and what forwardStatusAndLocation turns into
// the status and Location.
func outgoingMetadata(prefix string) runtime.HeaderMatcherFunc {
	return func(key string) (string, bool) {
		switch key {
		case "content-type", "grpc-accept-encoding", "grpc-encoding", httpCodeKey, locationKey:
			return "", false
		}
		return prefix + key, true
	}
}

// writePortFile writes port atomically, so that a reader polling for the
// file never sees it half-written.
func writePortFile(path string, port int) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("port file: %w", err)
	}
	_, werr := tmp.WriteString(strconv.Itoa(port) + "\n")
	merr := tmp.Chmod(0o644)
	cerr := tmp.Close()
	if err := errors.Join(werr, merr, cerr); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("port file: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("port file: %w", err)
	}
	return nil
}

// registerRoutes mounts a reproduced API's REST routes: each runs with the
// caller's metadata, as a generated handler's call would.
func registerRoutes(mux *runtime.ServeMux, api compat.API) error {
	for _, route := range api.Routes() {
		serve := route.Serve
		pattern := route.Pattern
		err := mux.HandlePath(route.Method, pattern, func(w http.ResponseWriter, r *http.Request, params map[string]string) {
			ctx, err := runtime.AnnotateContext(r.Context(), mux, r, pattern, runtime.WithHTTPPathPattern(pattern))
			if err != nil {
				api.WriteError(w, apierror.FromError(err))
				return
			}
			serve(ctx, w, r, params)
		})
		if err != nil {
			return fmt.Errorf("register %s %s: %w", route.Method, pattern, err)
		}
	}
	return nil
}
