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
// request's origin for absolute Location headers, and gives every response
// a statusWriter.
func rewriteRoutes(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w}
		r = withURL(r.WithContext(withOrigin(r.Context(), requestOrigin(r))))
		if r.Method == http.MethodGet {
			switch path := r.URL.Path; {
			case path == "/messages" && !hasQueryKey(r.URL.RawQuery, "id"):
				r.URL.Path, r.URL.RawPath = recentMessagesPath, ""
			case path == directMessagesStreamPath, path == directMessagesPollPath:
				q := r.URL.Query()
				q.Del("directMessages")
				q.Set("direct_messages", "true")
				r.URL.RawQuery = q.Encode()
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

// The request's origin, scheme://host, as the client addressed the gateway.
type originKey struct{}

func withOrigin(ctx context.Context, origin string) context.Context {
	return context.WithValue(ctx, originKey{}, origin)
}

func originFrom(ctx context.Context) string {
	origin, _ := ctx.Value(originKey{}).(string)
	return origin
}

// requestOrigin is scheme://host of the request, as a proxy in front of the
// gateway reports it in X-Forwarded-Proto and X-Forwarded-Host (first value
// of each; values that are not a plain scheme or host are ignored), else as
// the request itself has it. Empty when the request names no host.
func requestOrigin(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	if p := strings.ToLower(firstListValue(r.Header.Get("X-Forwarded-Proto"))); p == "http" || p == "https" {
		scheme = p
	}
	host := r.Host
	if h := firstListValue(r.Header.Get("X-Forwarded-Host")); h != "" && isPlainHost(h) {
		host = h
	}
	if host == "" || !isPlainHost(host) {
		return ""
	}
	return scheme + "://" + host
}

func firstListValue(v string) string {
	first, _, _ := strings.Cut(v, ",")
	return strings.TrimSpace(first)
}

// isPlainHost accepts host[:port] made of the characters of DNS names, IPv4
// and bracketed IPv6 addresses, and nothing that could change the meaning of
// a URL built around it.
func isPlainHost(h string) bool {
	for _, c := range h {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.ContainsRune(".-:[]_", c):
		default:
			return false
		}
	}
	return h != ""
}

// absoluteURL resolves the server's location (a path such as
// /v1/rooms/<uuid>) against the request's origin.
func absoluteURL(ctx context.Context, location string) string {
	if u, err := url.Parse(location); err == nil && u.IsAbs() {
		return location
	}
	origin := originFrom(ctx)
	if origin == "" {
		return location
	}
	if !strings.HasPrefix(location, "/") {
		location = "/" + location
	}
	return origin + location
}
