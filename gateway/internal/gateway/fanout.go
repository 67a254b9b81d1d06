package gateway

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	parleyedge "parley/gateway/gen/parley/edge"
	parleyv1 "parley/gateway/gen/parley/v1"
	"parley/gateway/internal/compat"
)

// Fan-out at the edge (docs/fanout.md). With --edge_secret, the room and
// inbox streams of Server-Sent Events and of Parley's own WebSockets do not
// each open a ChatService.Subscribe: the gateway holds one
// EdgeService.Follow stream per log (a room, or one user's inbox) for all
// of its clients of it, encodes each event once (its JSON, SSE message and
// WebSocket frame) and hands the same bytes to every client's queue. The
// server still decides who reads: each client is attached to the log's
// stream with its own token, which the server checks as Subscribe would and
// then holds as a registration that counts as present and is closed as the
// client's own stream would be; the server sends that end back on the
// log's stream, and the client's stream ends with its status.
//
// Each client keeps what a server channel promises: a bounded queue (at the
// bound, one gap event that widens), its own resume point (history read
// with its own token, then the shared stream, without gap or duplicate by
// sequence), and one write in flight: what queues meanwhile goes into the
// next write. A slow client only fills its own queue.
//
// A log's stream whose server goes away (UNAVAILABLE) is opened again on
// another server after the last sequence it forwarded, and every client is
// attached again (so admitted again), within --stream_resume_timeout, as
// resume.go does for a client's own stream.

const (
	// edgeSecretMetadata carries --edge_secret on every EdgeService call.
	edgeSecretMetadata = "x-parley-edge-secret"
	// defaultFanoutQueueEvents is --fanout_queue_events' default, the
	// server's --channel_capacity default.
	defaultFanoutQueueEvents = 1024
	// historyPageEvents is the largest page of a resuming client's history
	// (ChatService.Poll's max_events; the server caps it too).
	historyPageEvents = 256
)

// sharedEvent is one event as every transport writes it, encoded once for
// all the gateway's clients of its log. The slices are shared: read only.
type sharedEvent struct {
	event *parleyv1.Event
	// json is the event alone (docs/api.md, "Events").
	json []byte
	// sse is its whole Server-Sent Events message.
	sse []byte
	// socket is its frame on Parley's WebSocket, as JSON.
	socket []byte
	// wsFrame is that frame whole, header and all, as a live client's
	// socket writes it (edgeconn.go).
	wsFrame []byte
}

func newSharedEvent(e *parleyv1.Event) *sharedEvent {
	j := encodedEvents.marshal(e)
	frame, err := json.Marshal(socketFrame{Type: "event", Event: j})
	if err != nil {
		frame = []byte(`{"type":"event","event":{}}`)
	}
	return &sharedEvent{event: e, json: j, sse: appendSSEMessage(nil, e, j), socket: frame, wsFrame: textFrame(frame)}
}

// appendSSEMessage appends the SSE message of event e, whose JSON is j.
func appendSSEMessage(buf []byte, e *parleyv1.Event, j []byte) []byte {
	if hasCursor(e) {
		buf = append(buf, "id: "...)
		buf = strconv.AppendUint(buf, e.GetSequence(), 10)
		buf = append(buf, '\n')
	}
	buf = append(buf, "event: "...)
	buf = append(buf, compat.EventName(e.GetKind())...)
	buf = append(buf, "\ndata: "...)
	buf = append(buf, j...)
	return append(buf, "\n\n"...)
}

// sequenceRange is the log positions an event stands for: a stored
// event's own, a gap's range; ok false for a live-only event.
func sequenceRange(e *parleyv1.Event) (first, last uint64, ok bool) {
	if e.GetKind() == parleyv1.EventKind_EVENT_KIND_GAP {
		return e.GetGapFirstSequence(), e.GetGapLastSequence(), true
	}
	if e.GetSequence() == 0 {
		return 0, 0, false
	}
	return e.GetSequence(), e.GetSequence(), true
}

// queueEntry is a shared event, or (shared nil) a gap marker of this
// client's own, or (raw set) bytes of a live client's own to write.
type queueEntry struct {
	shared            *sharedEvent
	gapFirst, gapLast uint64
	raw               []byte
}

// fanoutClient is one SSE or WebSocket client of a shared log: its bounded
// queue, filled by the log's stream. Its handler writes the history; the
// queue then passes to the client's live writer (edgeconn.go, goLive),
// the only writer to its connection.
type fanoutClient struct {
	id            uint64
	log           *sharedLog
	authorization string
	// address is the server's key of the client's address
	// (ResolveResponse.address), for its per-address stream limit.
	address  string
	capacity int
	// decided is closed once the server admitted the client, or it ended.
	decided chan struct{}

	mu     sync.Mutex
	queue  []queueEntry
	queued int // shared events in queue, not gap markers
	// dropped counts events that met the bound.
	dropped  uint64
	admitted bool
	// floor is the log's position when the client was admitted: the queue
	// holds every event after it.
	floor uint64
	// end is how the client's stream ends: io.EOF for OK, else its status
	// error; nil while it runs.
	end error
	// out writes the client's stream once it is live (edgeconn.go); nil
	// while its handler does.
	out *edgeOut
}

// push queues e, or at the bound widens (or starts) the gap marker at the
// queue's end; a live-only event that does not fit is dropped.
func (c *fanoutClient) push(e *sharedEvent) {
	c.mu.Lock()
	if c.end != nil {
		c.mu.Unlock()
		return
	}
	o := c.out
	if o != nil && !o.writing && len(c.queue) == 0 {
		// Live, and nothing of the client's waits: written now.
		if o.closed || !o.cursor.fresh(e.event) {
			c.mu.Unlock()
			return
		}
		o.writing = true
		c.mu.Unlock()
		o.writeDirect(o.frame(e))
		return
	}
	if c.queued < c.capacity {
		c.queue = append(c.queue, queueEntry{shared: e})
		c.queued++
	} else if first, last, ok := sequenceRange(e.event); ok {
		c.dropped++
		c.log.f.overflowed.Add(1)
		if n := len(c.queue); n > 0 && c.queue[n-1].shared == nil {
			c.queue[n-1].gapLast = max(c.queue[n-1].gapLast, last)
		} else {
			c.queue = append(c.queue, queueEntry{gapFirst: first, gapLast: last})
		}
	} else {
		c.dropped++
		c.log.f.overflowed.Add(1)
	}
	// Before goLive the queue waits for it; live, the write in flight
	// takes what queued.
	c.mu.Unlock()
}

// admit records the server's admission at log position floor.
func (c *fanoutClient) admit(floor uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.admitted || c.end != nil {
		return
	}
	c.admitted, c.floor = true, floor
	close(c.decided)
}

// finish ends the client's stream with err (io.EOF: OK): what is queued is
// dropped, as a closed server channel drops it. The first end wins: false
// when the stream had ended already.
func (c *fanoutClient) finish(err error) bool {
	c.mu.Lock()
	if c.end != nil {
		c.mu.Unlock()
		return false
	}
	c.end = err
	c.queue, c.queued = nil, 0
	if !c.admitted {
		close(c.decided)
	}
	o := c.out
	drain := o != nil && !o.writing && !o.closed
	if drain {
		o.writing = true
	}
	c.mu.Unlock()
	if drain {
		go o.drain() // writes the end
	}
	return true
}

// admission waits for the server's decision: nil once admitted, else how
// the client ended.
func (c *fanoutClient) admission(ctx context.Context) error {
	select {
	case <-c.decided:
	case <-ctx.Done():
		return ctx.Err()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.admitted {
		return nil
	}
	return c.end
}

// floorPoint is the position from which the queue holds the live events.
func (c *fanoutClient) floorPoint() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.floor
}

// materialize turns a queue entry into the event to write: the shared one,
// or this client's gap marker, encoded for it alone.
func (e queueEntry) materialize() *sharedEvent {
	if e.shared != nil {
		return e.shared
	}
	return newSharedEvent(&parleyv1.Event{
		Kind:             parleyv1.EventKind_EVENT_KIND_GAP,
		GapFirstSequence: e.gapFirst,
		GapLastSequence:  e.gapLast,
	})
}

// clientCursor is a client's resume point: the stored events and gaps at
// or before it are not written again.
type clientCursor struct {
	at    uint64
	known bool
}

// fresh reports whether e is new to the client, and moves the cursor past
// it.
func (k *clientCursor) fresh(e *parleyv1.Event) bool {
	_, last, ok := sequenceRange(e)
	if !ok {
		return true
	}
	if k.known && last <= k.at {
		return false
	}
	k.at, k.known = last, true
	return true
}

// fanout is the gateway's table of shared logs.
type fanout struct {
	edge          parleyedge.EdgeServiceClient
	chat          parleyv1.ChatServiceClient
	secret        string
	queueCapacity int
	resumeTimeout time.Duration
	stopping      <-chan struct{}
	log           *slog.Logger

	mu         sync.Mutex
	logs       map[string]*sharedLog
	nextClient uint64
	// overflowed counts the events that met a client's bound (became part
	// of its gap, or were dropped if live-only).
	overflowed atomic.Uint64
	warnOnce   sync.Once
}

// collectors are the fan-out's /metrics series.
func (f *fanout) collectors() []prometheus.Collector {
	return []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "parley_gateway_fanout_log_streams",
			Help: "Shared log streams (EdgeService.Follow) open now: one per room or inbox with clients here.",
		}, func() float64 { return float64(f.upstreams()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "parley_gateway_fanout_clients",
			Help: "SSE and WebSocket clients of the shared log streams now.",
		}, func() float64 { return float64(f.clients()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "parley_gateway_fanout_overflowed_events_total",
			Help: "Events that met a client's --fanout_queue_events bound: part of its gap event, or dropped if live-only.",
		}, func() float64 { return float64(f.overflowed.Load()) }),
	}
}

// clients is how many clients the shared logs have.
func (f *fanout) clients() int {
	f.mu.Lock()
	logs := make([]*sharedLog, 0, len(f.logs))
	for _, l := range f.logs {
		logs = append(logs, l)
	}
	f.mu.Unlock()
	n := 0
	for _, l := range logs {
		l.mu.Lock()
		n += len(l.clients)
		l.mu.Unlock()
	}
	return n
}

// notServed reports whether err says the servers serve no fan-out (no
// --edge_secret there, or a server without EdgeService): the client then
// gets a stream of its own. Logged once, as a warning: the gateway's and
// the servers' --edge_secret should be set together.
func (f *fanout) notServed(err error) bool {
	if status.Code(err) != codes.Unimplemented {
		return false
	}
	f.warnOnce.Do(func() {
		f.log.Warn("fanout: the servers serve no fan-out (give them the gateway's --edge_secret); "+
			"clients get streams of their own", "err", err)
	})
	return true
}

// withSecret adds the edge secret to ctx's outgoing metadata.
func (f *fanout) withSecret(ctx context.Context) context.Context {
	return metadata.AppendToOutgoingContext(ctx, edgeSecretMetadata, f.secret)
}

// join resolves req's log with the client's own token (callCtx carries it,
// and authorization is its Authorization value), registers the client on
// the log's shared stream, and waits for the server's admission. The client
// is registered before it is admitted: an end the server sends meanwhile
// applies to it. On success the caller must call leave.
func (f *fanout) join(ctx, callCtx context.Context, req *parleyv1.SubscribeRequest, authorization string) (*fanoutClient, error) {
	resolved, err := f.edge.Resolve(f.withSecret(callCtx), &parleyedge.ResolveRequest{
		Room: req.GetRoom(), DirectMessages: req.GetDirectMessages(),
	})
	if err != nil {
		return nil, err
	}
	c, link := f.register(resolved.GetLog(), authorization, resolved.GetAddress())
	link.send(attachRequest(c))
	if err := c.admission(ctx); err != nil {
		f.leave(c)
		return nil, err
	}
	return c, nil
}

func attachRequest(c *fanoutClient) *parleyedge.FollowRequest {
	return &parleyedge.FollowRequest{Kind: &parleyedge.FollowRequest_Attach{
		Attach: &parleyedge.FollowAttach{Client: c.id, Authorization: c.authorization, Address: c.address},
	}}
}

// register adds a client to log key's shared stream, starting the stream
// if the log has none; it returns the client and the stream link to attach
// it on.
func (f *fanout) register(key, authorization, address string) (*fanoutClient, *followLink) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nextClient++
	l := f.logs[key]
	if l == nil {
		l = newSharedLog(f, key)
		f.logs[key] = l
		l.current = l.newLinkLocked()
		go l.run()
	}
	c := &fanoutClient{
		id: f.nextClient, log: l, authorization: authorization, address: address, capacity: f.queueCapacity,
		decided: make(chan struct{}),
	}
	l.mu.Lock()
	l.clients[c.id] = c
	link := l.current
	l.mu.Unlock()
	return c, link
}

// leave removes c from its log; the last client's leave closes the log's
// stream.
func (f *fanout) leave(c *fanoutClient) {
	l := c.log
	f.mu.Lock()
	l.mu.Lock()
	_, present := l.clients[c.id]
	delete(l.clients, c.id)
	link := l.current
	last := len(l.clients) == 0 && !l.closed
	if last {
		l.closed = true
		if f.logs[l.key] == l {
			delete(f.logs, l.key)
		}
	}
	l.mu.Unlock()
	f.mu.Unlock()
	c.finish(io.EOF)
	switch {
	case last:
		l.cancel()
	case present:
		link.send(&parleyedge.FollowRequest{Kind: &parleyedge.FollowRequest_Detach{
			Detach: &parleyedge.FollowDetach{Client: c.id},
		}})
	}
}

// upstreams is how many shared log streams are open.
func (f *fanout) upstreams() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.logs)
}

// history writes a resuming client's events after `after`, read with its
// own token (callCtx) page by page, until the point from which its queue
// holds the live events; it returns the cursor reached.
func (f *fanout) history(callCtx context.Context, req *parleyv1.SubscribeRequest, c *fanoutClient, after uint64, write func([]*parleyv1.Event) error) (uint64, error) {
	cursor := after
	floor := c.floorPoint()
	for cursor < floor {
		resp, err := f.chat.Poll(callCtx, &parleyv1.PollRequest{
			Room: req.GetRoom(), DirectMessages: req.GetDirectMessages(),
			AfterSequence: &cursor, Timeout: logEndProbeWait, MaxEvents: historyPageEvents,
		})
		if err != nil {
			return cursor, err
		}
		var page []*parleyv1.Event
		for _, e := range resp.GetEvents() {
			if e.GetSequence() > cursor {
				page = append(page, e)
				cursor = e.GetSequence()
			}
		}
		if len(page) == 0 {
			break // purged, or not committed: the live events follow
		}
		if err := write(page); err != nil {
			return cursor, err
		}
	}
	return cursor, nil
}

// sharedLog is one log's shared stream and its clients.
type sharedLog struct {
	f      *fanout
	key    string
	ctx    context.Context
	cancel context.CancelFunc

	mu      sync.Mutex
	clients map[uint64]*fanoutClient
	// current is the stream attachments go to; replaced at each reopening.
	current *followLink
	// cursor is the last log position forwarded; known once the stream
	// told its start.
	cursor      uint64
	cursorKnown bool
	// closed is set when the last client left or the stream ended for good.
	closed bool
	// scratch holds deliver's copy of the clients between responses (the
	// receive loop is its only user).
	scratch []*fanoutClient
}

func newSharedLog(f *fanout, key string) *sharedLog {
	ctx, cancel := context.WithCancel(context.Background())
	return &sharedLog{f: f, key: key, ctx: ctx, cancel: cancel, clients: map[uint64]*fanoutClient{}}
}

// newLinkLocked is a link whose first messages are the start (after the
// cursor when known) and an attachment of every client.
func (l *sharedLog) newLinkLocked() *followLink {
	start := &parleyedge.FollowStart{Log: l.key}
	if l.cursorKnown {
		after := l.cursor
		start.AfterSequence = &after
	}
	link := &followLink{backlog: []*parleyedge.FollowRequest{{
		Kind: &parleyedge.FollowRequest_Start{Start: start},
	}}}
	for _, c := range l.clients {
		link.backlog = append(link.backlog, attachRequest(c))
	}
	return link
}

// run holds the log's stream until the last client leaves, reopening it on
// another server when its server goes away.
func (l *sharedLog) run() {
	defer l.cancel()
	var (
		lostAt time.Time
		delay  time.Duration
		opened bool // a stream answered once
	)
	for {
		l.mu.Lock()
		link := l.current
		l.mu.Unlock()
		stream, err := l.f.edge.Follow(l.f.withSecret(l.ctx))
		if err == nil {
			link.open(stream)
			err = l.receive(stream, func() {
				opened, lostAt, delay = true, time.Time{}, 0
			})
		}
		if l.ctx.Err() != nil {
			return // the last client left
		}
		if lostAt.IsZero() {
			lostAt = time.Now()
		}
		if !l.resumable(err, opened, lostAt) {
			l.endAll(err)
			return
		}
		l.f.log.Debug("fanout: log stream lost; opening it again", "log", l.key, "err", err)
		delay = min(max(2*delay, firstResumeDelay), maxResumeDelay)
		timer := time.NewTimer(delay)
		select {
		case <-timer.C:
		case <-l.ctx.Done():
			timer.Stop()
			return
		case <-l.f.stopping:
			timer.Stop()
			l.endAll(err)
			return
		}
		l.mu.Lock()
		l.current = l.newLinkLocked()
		l.mu.Unlock()
	}
}

// resumable reports whether a stream that failed with err is to be opened
// again: its server went away, it had answered before, and the resume
// timeout since the loss has not run out.
func (l *sharedLog) resumable(err error, opened bool, lostAt time.Time) bool {
	if !opened || l.f.resumeTimeout <= 0 || !isServerGone(err) || time.Since(lostAt) >= l.f.resumeTimeout {
		return false
	}
	select {
	case <-l.f.stopping:
		return false
	default:
		return true
	}
}

// receive hands the stream's responses on until it fails.
func (l *sharedLog) receive(stream parleyedge.EdgeService_FollowClient, answered func()) error {
	first := true
	for {
		resp, err := stream.Recv()
		if err != nil {
			return err
		}
		if first {
			first = false
			answered()
		}
		l.deliver(resp)
	}
}

// deliver forwards one response: events to every client (encoded once),
// admissions and ends to their clients.
func (l *sharedLog) deliver(resp *parleyedge.FollowResponse) {
	var events []*sharedEvent
	l.mu.Lock()
	for _, e := range resp.GetEvents() {
		if _, last, stored := sequenceRange(e); stored {
			if l.cursorKnown && last <= l.cursor {
				continue // sent before the stream was reopened
			}
			l.cursor, l.cursorKnown = last, true
		}
		events = append(events, newSharedEvent(e))
	}
	// The position covers the response's events (history replayed on a
	// reopening comes with it): applied after them.
	if p := resp.GetPosition(); p > l.cursor || !l.cursorKnown {
		l.cursor, l.cursorKnown = max(l.cursor, p), true
	}
	clients := l.scratch[:0]
	for _, c := range l.clients {
		clients = append(clients, c)
	}
	var ended []*fanoutClient
	var endErrs []error
	for _, end := range resp.GetEnded() {
		if c := l.clients[end.GetClient()]; c != nil {
			delete(l.clients, end.GetClient())
			ended = append(ended, c)
			endErrs = append(endErrs, clientEndError(end.GetStatus()))
		}
	}
	cursor := l.cursor
	l.mu.Unlock()

	for _, c := range clients {
		for _, e := range events {
			c.push(e)
		}
	}
	clear(clients)
	l.scratch = clients[:0]
	for _, id := range resp.GetAdmitted() {
		l.mu.Lock()
		c := l.clients[id]
		l.mu.Unlock()
		if c != nil {
			c.admit(cursor)
		}
	}
	for i, c := range ended {
		c.finish(endErrs[i])
	}
}

// clientEndError is the error a client's stream ends with for the status
// the server sent: io.EOF for OK.
func clientEndError(st *rpcstatus.Status) error {
	if st.GetCode() == int32(codes.OK) {
		return io.EOF
	}
	return status.ErrorProto(st)
}

// endAll ends every client with err (the stream's end) and forgets the log.
func (l *sharedLog) endAll(err error) {
	if err == nil || status.Code(err) == codes.OK {
		err = io.EOF
	}
	l.f.mu.Lock()
	l.mu.Lock()
	l.closed = true
	if l.f.logs[l.key] == l {
		delete(l.f.logs, l.key)
	}
	clients := l.clients
	l.clients = map[uint64]*fanoutClient{}
	l.mu.Unlock()
	l.f.mu.Unlock()
	for _, c := range clients {
		c.finish(err)
	}
}

// followLink is one Follow call of a log: what is sent before it is open
// waits in backlog, in order.
type followLink struct {
	mu      sync.Mutex
	stream  parleyedge.EdgeService_FollowClient
	backlog []*parleyedge.FollowRequest
	broken  bool
}

func (k *followLink) send(req *parleyedge.FollowRequest) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.broken {
		return // the next link attaches everyone again
	}
	if k.stream == nil {
		k.backlog = append(k.backlog, req)
		return
	}
	if err := k.stream.Send(req); err != nil {
		k.broken = true
	}
}

func (k *followLink) open(stream parleyedge.EdgeService_FollowClient) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.stream = stream
	for _, req := range k.backlog {
		if err := stream.Send(req); err != nil {
			k.broken = true
			break
		}
	}
	k.backlog = nil
}
