package gateway

import (
	"context"
	"log/slog"
	"net/http"
	"net/url"
	"parley/gateway/internal/compat"
	"strings"
	"sync"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"

	parleyedge "parley/gateway/gen/parley/edge"
	parleyv1 "parley/gateway/gen/parley/v1"
)

// realtime serves what the generated mux cannot: Server-Sent Events on the
// Subscribe routes (sse.go), the WebSocket routes (websocket.go) and the
// `after` alias of the resume point on the stream and long-poll routes.
// Shutdown (the ctx given to NewHandler ending) ends its streams with a
// resumable error.
type realtime struct {
	clients   *compat.Clients
	mux       *runtime.ServeMux // set once built; the mux's middleware is ours
	marshaler runtime.Marshaler
	onError   runtime.ErrorHandlerFunc
	log       *slog.Logger
	cfg       realtimeConfig
	// stopping is closed when the gateway starts shutting down.
	stopping <-chan struct{}
	// sockets counts open WebSocket handlers: http.Server.Shutdown does not
	// wait for hijacked connections, Run does.
	sockets handlerCount
	// fanout holds the shared log streams; nil without --edge_secret.
	fanout *fanout
	// live are the fan-out clients written without a handler
	// (edgeconn.go), for shutdown to end them.
	liveMu sync.Mutex
	live   map[*edgeOut]struct{}
}

// realtimeConfig holds the flags of the streams; zero fields take the
// defaults.
type realtimeConfig struct {
	sseKeepalive   time.Duration
	sseRetry       time.Duration
	wsPingInterval time.Duration
	wsOrigins      []string
	// edgeSecret, when set, turns fan-out at the edge on (fanout.go), with
	// a queue of fanoutQueueEvents per client and the log streams resumed
	// for streamResumeTimeout (0 or less: not resumed).
	edgeSecret          string
	fanoutQueueEvents   int
	streamResumeTimeout time.Duration
}

const (
	defaultSSEKeepalive   = 15 * time.Second
	defaultSSERetry       = 2 * time.Second
	defaultWSPingInterval = 30 * time.Second
)

func (c realtimeConfig) withDefaults() realtimeConfig {
	if c.sseKeepalive <= 0 {
		c.sseKeepalive = defaultSSEKeepalive
	}
	if c.sseRetry <= 0 {
		c.sseRetry = defaultSSERetry
	}
	if c.wsPingInterval <= 0 {
		c.wsPingInterval = defaultWSPingInterval
	}
	if c.fanoutQueueEvents <= 0 {
		c.fanoutQueueEvents = defaultFanoutQueueEvents
	}
	return c
}

func newRealtime(ctx context.Context, conn *grpc.ClientConn, log *slog.Logger, marshaler runtime.Marshaler, cfg realtimeConfig) *realtime {
	g := &realtime{
		clients:   compat.NewClients(conn),
		marshaler: marshaler,
		onError:   errorHandler(log),
		log:       log,
		cfg:       cfg.withDefaults(),
		stopping:  ctx.Done(),
	}
	if g.cfg.edgeSecret != "" {
		g.fanout = &fanout{
			edge:          parleyedge.NewEdgeServiceClient(conn),
			chat:          parleyv1.NewChatServiceClient(conn),
			secret:        g.cfg.edgeSecret,
			queueCapacity: g.cfg.fanoutQueueEvents,
			resumeTimeout: g.cfg.streamResumeTimeout,
			stopping:      ctx.Done(),
			log:           log,
			logs:          map[string]*sharedLog{},
		}
		g.live = map[*edgeOut]struct{}{}
		go g.endLive()
	}
	return g
}

// sharedStream reports whether req's stream goes through the gateway's
// fan-out: a room or an inbox (not a lobby session's, which lives on one
// server), when fan-out is on.
func (g *realtime) sharedStream(req *parleyv1.SubscribeRequest) bool {
	return g.fanout != nil && req != nil && req.GetId() == "" && (req.GetRoom() != "") != req.GetDirectMessages()
}

// The route patterns, as routePattern writes them.
const (
	roomEventsRoute   = "/v1/rooms/{room}/events"
	directEventsRoute = "/v1/direct-messages/events"
	roomSocketRoute   = "/v1/rooms/{room}:ws"
	directSocketRoute = "/v1/direct-messages:ws"
)

// isSubscribeRoute matches the ChatService.Subscribe routes.
func isSubscribeRoute(route string) bool {
	switch route {
	case "/subscribe", "/v1/rooms/{room}:subscribe", "/v1/direct-messages:subscribe", "/room/{room}/subscribe":
		return true
	}
	return false
}

// isWebSocketRoute matches the WebSocket routes, whose patterns all end in
// ":ws" or "/ws" (registerSocket checks it).
func isWebSocketRoute(route string) bool {
	return strings.HasSuffix(route, ":ws") || strings.HasSuffix(route, "/ws")
}

// isPollRoute matches the ChatService.Poll routes.
func isPollRoute(route string) bool {
	return route == roomEventsRoute || route == directEventsRoute
}

// middleware runs inside the mux once a route matched, after the metrics
// middleware: it applies the `after` alias, and answers SSE on the
// Subscribe routes.
func (g *realtime) middleware(next runtime.HandlerFunc) runtime.HandlerFunc {
	var routes routeOf
	return func(w http.ResponseWriter, r *http.Request, params map[string]string) {
		route := routes.get(r)
		if r.Method == http.MethodGet && (isSubscribeRoute(route) || isPollRoute(route)) {
			aliasAfter(r.URL)
		}
		if r.Method == http.MethodGet && isSubscribeRoute(route) && acceptsEventStream(r) {
			g.serveSSE(w, r, route, params)
			return
		}
		next(w, r, params)
	}
}

// aliasAfter turns `after=N` into `after_sequence=N`, unless the query sets
// after_sequence (or afterSequence) itself, which then wins.
func aliasAfter(u *url.URL) {
	q := u.Query() // checkInput has refused a malformed query
	v, ok := q[afterAlias]
	if !ok {
		return
	}
	delete(q, afterAlias)
	if !hasAfterSequence(q) {
		q[afterSequenceParam] = v
	}
	u.RawQuery = q.Encode()
}

// wait blocks until every WebSocket handler has returned, or ctx ends.
func (g *realtime) wait(ctx context.Context) error { return g.sockets.wait(ctx) }

// handlerCount counts running handlers. Unlike a sync.WaitGroup, it may be
// waited on while handlers still start.
type handlerCount struct {
	mu      sync.Mutex
	n       int
	changed chan struct{} // closed and replaced at every Done
}

func (c *handlerCount) Add() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n++
}

func (c *handlerCount) Done() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n--
	if c.changed != nil {
		close(c.changed)
		c.changed = nil
	}
}

// wait returns once the count is zero, or ctx's error when it ends first.
func (c *handlerCount) wait(ctx context.Context) error {
	for {
		c.mu.Lock()
		if c.n == 0 {
			c.mu.Unlock()
			return nil
		}
		if c.changed == nil {
			c.changed = make(chan struct{})
		}
		changed := c.changed
		c.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
