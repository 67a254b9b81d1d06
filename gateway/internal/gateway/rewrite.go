package gateway

import (
	"context"
	"net/http"
	"net/url"
	"strings"
)

// Routes the mux cannot express on its own, settled before it sees the
// request:
//
//   - GET /messages without an `id` query parameter is seed 004's list of
//     recent lobby messages (ChatService.ListRecentMessages, bound at
//     recentMessagesPath); with `id` it stays seed 000's long poll (Receive).
//     grpc-gateway routes on the path alone.
//   - GET /v1/direct-messages:subscribe and GET /v1/direct-messages/events
//     are ChatService.Subscribe and ChatService.Poll with
//     direct_messages=true, which the HTTP rule cannot set.
//   - GET /room/{roomId}/subscribe answers 202 once the stream is in place,
//     the success code seed 003 lists.
const (
	recentMessagesPath       = "/v1/lobby/recent-messages"
	directMessagesStreamPath = "/v1/direct-messages:subscribe"
	directMessagesPollPath   = "/v1/direct-messages/events"
)

// rewriteRoutes wraps the mux: it rewrites the requests above, notes the
// request's external origin (forwarded.go) for absolute Location headers
// and the WebSocket origin check, and gives every response a statusWriter.
func rewriteRoutes(next http.Handler, trusted TrustedProxies) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w}
		r = withURL(r.WithContext(withOrigin(r.Context(), externalOrigin(r, trusted))))
		if r.Method == http.MethodGet {
			switch path := r.URL.Path; {
			case path == "/messages" && !hasQueryKey(r.URL.RawQuery, "id"):
				r.URL.Path, r.URL.RawPath = recentMessagesPath, ""
			case path == directMessagesStreamPath, path == directMessagesPollPath:
				setDirectMessages(r.URL)
			case isRoomSubscribeAnswering202(path):
				sw.implicitStatus = http.StatusAccepted
			}
		}
		next.ServeHTTP(sw, r)
		if !sw.wroteHeader && sw.implicitStatus != 0 {
			// The stream ended cleanly before its first write.
			sw.WriteHeader(sw.implicitStatus)
		}
	})
}

// withURL gives r (a shallow copy) its own URL, so that rewriting it leaves
// the original request, which the access log reports, as it was.
func withURL(r *http.Request) *http.Request {
	u := *r.URL
	r.URL = &u
	return r
}

// setDirectMessages sets direct_messages=true in u's query, in place of
// any value the client gave it under either of its names.
func setDirectMessages(u *url.URL) {
	q := u.Query() // checkInput has refused a malformed query
	q.Del("directMessages")
	q.Set("direct_messages", "true")
	u.RawQuery = q.Encode()
}

// hasQueryKey reports whether the raw query names key, even with no value.
// A malformed query has been refused by checkInput already.
func hasQueryKey(rawQuery, key string) bool {
	values, _ := url.ParseQuery(rawQuery)
	_, ok := values[key]
	return ok
}

// isRoomSubscribeAnswering202 matches /room/{roomId}/subscribe.
func isRoomSubscribeAnswering202(path string) bool {
	rest, ok := strings.CutPrefix(path, "/room/")
	if !ok {
		return false
	}
	room, ok := strings.CutSuffix(rest, "/subscribe")
	return ok && room != "" && !strings.Contains(room, "/")
}

// statusWriter is the ResponseWriter the mux writes to. It answers
// implicitStatus instead of the implicit 200 of a first Write (seed 003's
// 202), challenges a 401 with WWW-Authenticate (stream errors are written by
// grpc-gateway, not by errorHandler), and remembers whether the header went
// out, so that a status from the server is set only once.
type statusWriter struct {
	http.ResponseWriter
	implicitStatus int // 0: 200
	wroteHeader    bool
}

func (w *statusWriter) WriteHeader(code int) {
	if w.wroteHeader {
		return // superfluous; the client already has a status
	}
	w.wroteHeader = true
	if code == http.StatusUnauthorized && w.Header().Get("WWW-Authenticate") == "" {
		w.Header().Set("WWW-Authenticate", "Bearer")
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) implicitHeader() {
	if !w.wroteHeader {
		code := http.StatusOK
		if w.implicitStatus != 0 {
			code = w.implicitStatus
		}
		w.WriteHeader(code)
	}
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.implicitHeader()
	return w.ResponseWriter.Write(b)
}

// FlushError serves http.ResponseController, which grpc-gateway flushes each
// stream line through.
func (w *statusWriter) FlushError() error {
	w.implicitHeader()
	return http.NewResponseController(w.ResponseWriter).Flush()
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// absoluteURL resolves the server's location (a path such as
// /v1/rooms/<uuid>) against the request's external origin.
func absoluteURL(ctx context.Context, location string) string {
	if u, err := url.Parse(location); err == nil && u.IsAbs() {
		return location
	}
	origin := originFrom(ctx).String()
	if origin == "" {
		return location
	}
	if !strings.HasPrefix(location, "/") {
		location = "/" + location
	}
	return origin + location
}
