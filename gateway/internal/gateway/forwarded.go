package gateway

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
)

// The request's external origin: the scheme and host a client addressed
// the gateway by. Behind a reverse proxy the request the gateway sees names
// the proxy's upstream (Host: gateway:8080, plain HTTP), and the proxy
// reports what the client asked for in Forwarded (RFC 7239) or
// X-Forwarded-Host and X-Forwarded-Proto. Anyone can send those headers, so
// they are believed only from the peers of --trusted_proxies; from anyone
// else, the request's own Host and scheme count. externalOrigin is the one
// place that decides; absolute Location headers and the WebSocket origin
// check both use its answer, which rewriteRoutes puts in the request's
// context.

// TrustedProxies are the peers (single addresses or CIDR prefixes) whose
// forwarded headers the gateway believes. Empty trusts nobody.
type TrustedProxies []netip.Prefix

// ParseTrustedProxies reads --trusted_proxies: each item an IP address
// (10.0.0.7, ::1) or a CIDR prefix (10.0.0.0/8, fd00::/8). A prefix with
// bits set past its length (10.0.0.7/8) is refused rather than widened, as
// it is most likely a typing error in a list that grants trust.
func ParseTrustedProxies(items []string) (TrustedProxies, error) {
	var out TrustedProxies
	for _, item := range items {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		prefix, err := parseTrustedProxy(item)
		if err != nil {
			return nil, err
		}
		out = append(out, prefix)
	}
	return out, nil
}

func parseTrustedProxy(item string) (netip.Prefix, error) {
	if !strings.Contains(item, "/") {
		addr, err := netip.ParseAddr(item)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not an IP address or CIDR prefix", item)
		}
		if addr.Zone() != "" {
			return netip.Prefix{}, fmt.Errorf("%q: an address with a zone cannot be matched; leave out %%%s", item, addr.Zone())
		}
		addr = addr.Unmap()
		return netip.PrefixFrom(addr, addr.BitLen()), nil
	}
	prefix, err := netip.ParsePrefix(item)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not an IP address or CIDR prefix", item)
	}
	if prefix != prefix.Masked() {
		return netip.Prefix{}, fmt.Errorf("%q has bits set past its prefix length: write %s", item, prefix.Masked())
	}
	// An IPv4-mapped IPv6 prefix matches the IPv4 peers it maps.
	if addr := prefix.Addr(); addr.Is4In6() && prefix.Bits() >= 96 {
		return netip.PrefixFrom(addr.Unmap(), prefix.Bits()-96), nil
	}
	return prefix, nil
}

// trusts reports whether the peer at remoteAddr (http.Request.RemoteAddr,
// ip:port) is one of the trusted proxies.
func (t TrustedProxies) trusts(remoteAddr string) bool {
	if len(t) == 0 {
		return false
	}
	peer, err := netip.ParseAddrPort(remoteAddr)
	if err != nil {
		return false
	}
	addr := peer.Addr().Unmap().WithZone("")
	for _, prefix := range t {
		if prefix.Contains(addr) {
			return true
		}
	}
	return false
}

// origin is a request's external scheme ("http" or "https") and host
// (host[:port]); host is empty when the request names none that is valid.
type origin struct {
	scheme, host string
}

// String is scheme://host, or "" without a host.
func (o origin) String() string {
	if o.host == "" {
		return ""
	}
	return o.scheme + "://" + o.host
}

// externalOrigin is the scheme and host the client addressed the gateway
// by. A trusted proxy's Forwarded header (its first element's host and
// proto) wins, then its X-Forwarded-Host and X-Forwarded-Proto (first value
// of each); a value that is not a valid host[:port] or not http/https is
// ignored. From any other peer only the request itself counts: r.Host, and
// https when the connection is TLS.
func externalOrigin(r *http.Request, trusted TrustedProxies) origin {
	o := origin{scheme: "http", host: r.Host}
	if r.TLS != nil {
		o.scheme = "https"
	}
	if trusted.trusts(r.RemoteAddr) {
		fwdHost, fwdProto := forwardedHostAndProto(r.Header.Values("Forwarded"))
		if fwdHost == "" {
			fwdHost = firstListValue(r.Header.Get("X-Forwarded-Host"))
		}
		if fwdProto == "" {
			fwdProto = firstListValue(r.Header.Get("X-Forwarded-Proto"))
		}
		if isHostPort(fwdHost) {
			o.host = fwdHost
		}
		if p := strings.ToLower(fwdProto); p == "http" || p == "https" {
			o.scheme = p
		}
	}
	if !isHostPort(o.host) {
		o.host = ""
	}
	return o
}

func firstListValue(v string) string {
	first, _, _ := strings.Cut(v, ",")
	return strings.TrimSpace(first)
}

// forwardedHostAndProto reads the host and proto parameters of the first
// element of the Forwarded header lines (RFC 7239): the element the proxy
// nearest the client wrote. A first element that does not parse, or names
// a parameter twice, counts as absent.
func forwardedHostAndProto(lines []string) (host, proto string) {
	if len(lines) == 0 {
		return "", ""
	}
	params, ok := parseForwardedElement(lines[0])
	if !ok {
		return "", ""
	}
	return params["host"], params["proto"]
}

// parseForwardedElement parses the first forwarded-element of a Forwarded
// header value, pairs of token=value separated by ";", the value a token
// or a quoted-string, up to the first "," outside a quoted-string. Names
// are folded to lower case.
func parseForwardedElement(v string) (map[string]string, bool) {
	params := map[string]string{}
	i := 0
	for {
		for i < len(v) && (v[i] == ' ' || v[i] == '\t') {
			i++
		}
		start := i
		for i < len(v) && isTokenChar(v[i]) {
			i++
		}
		name := strings.ToLower(v[start:i])
		if name == "" || i >= len(v) || v[i] != '=' {
			return nil, false
		}
		i++ // '='
		var value string
		if i < len(v) && v[i] == '"' {
			var ok bool
			if value, i, ok = readQuotedString(v, i); !ok {
				return nil, false
			}
		} else {
			start = i
			for i < len(v) && isTokenChar(v[i]) {
				i++
			}
			value = v[start:i]
		}
		if _, dup := params[name]; dup {
			return nil, false
		}
		params[name] = value
		for i < len(v) && (v[i] == ' ' || v[i] == '\t') {
			i++
		}
		switch {
		case i == len(v), v[i] == ',':
			return params, true
		case v[i] == ';':
			i++
		default:
			return nil, false
		}
	}
}

// readQuotedString reads the quoted-string starting at v[i] (a '"') and
// returns its unescaped content and the index after its closing quote.
func readQuotedString(v string, i int) (string, int, bool) {
	var b strings.Builder
	for i++; i < len(v); i++ {
		switch c := v[i]; c {
		case '"':
			return b.String(), i + 1, true
		case '\\':
			if i+1 == len(v) {
				return "", 0, false
			}
			i++
			b.WriteByte(v[i])
		default:
			b.WriteByte(c)
		}
	}
	return "", 0, false
}

// isTokenChar reports whether c may appear in an HTTP token (RFC 9110).
func isTokenChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// isHostPort reports whether h is host[:port] as it may stand in a URL
// the gateway builds: a DNS name (labels of letters, digits, "-" and "_"),
// an IPv4 address, or a bracketed IPv6 address without a zone, and an
// optional port from 1 to 65535.
func isHostPort(h string) bool {
	host, port := h, ""
	if strings.HasPrefix(h, "[") {
		end := strings.IndexByte(h, ']')
		if end < 0 {
			return false
		}
		host, port = h[1:end], h[end+1:]
		addr, err := netip.ParseAddr(host)
		if err != nil || !addr.Is6() || addr.Zone() != "" {
			return false
		}
		if port == "" {
			return true
		}
		if port[0] != ':' {
			return false
		}
		return isPort(port[1:])
	}
	if i := strings.LastIndexByte(h, ':'); i >= 0 {
		host, port = h[:i], h[i+1:]
		if !isPort(port) {
			return false
		}
	}
	return isDNSName(host)
}

// isPort reports whether p is a decimal port from 1 to 65535.
func isPort(p string) bool {
	if p == "" || len(p) > 5 {
		return false
	}
	for i := 0; i < len(p); i++ {
		if p[i] < '0' || p[i] > '9' {
			return false
		}
	}
	n, err := strconv.Atoi(p)
	return err == nil && n >= 1 && n <= 65535
}

// isDNSName reports whether name is dot-separated labels of 1 to 63
// letters, digits, "-" and "_" (Docker's service names have it), none
// starting or ending with "-", 253 characters at most. IPv4 addresses are
// such names.
func isDNSName(name string) bool {
	if name == "" || len(name) > 253 {
		return false
	}
	for _, label := range strings.Split(name, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			switch {
			case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_':
			default:
				return false
			}
		}
	}
	return true
}

// The request's external origin, in its context.
type originKey struct{}

func withOrigin(ctx context.Context, o origin) context.Context {
	return context.WithValue(ctx, originKey{}, o)
}

// originFrom is the origin rewriteRoutes found for the request; without
// one (a request that did not pass through it), no host.
func originFrom(ctx context.Context) origin {
	o, _ := ctx.Value(originKey{}).(origin)
	return o
}
