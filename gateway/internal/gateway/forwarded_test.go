package gateway

import (
	"context"
	"crypto/tls"
	"net/http"
	"net/netip"
	"strings"
	"testing"
)

// loopbackProxies trusts the tests' own client, which connects from the
// loopback address.
var loopbackProxies = TrustedProxies{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}

// A client that is not a trusted proxy cannot make the gateway name another
// host: not in a Location, not to pass the WebSocket origin check.
func TestForwardedHeadersOfAnUntrustedPeerAreIgnored(t *testing.T) {
	for _, c := range []struct {
		name    string
		trusted TrustedProxies
	}{
		{"no trusted proxies", nil},
		{"another peer is trusted", TrustedProxies{netip.MustParsePrefix("10.0.0.0/8")}},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := startWith(t, context.Background(), handlerConfig{trustedProxies: c.trusted})
			host := strings.TrimPrefix(f.url, "http://")
			for _, header := range [][]string{
				{"X-Forwarded-Host", "evil.example", "X-Forwarded-Proto", "https"},
				{"Forwarded", "host=evil.example;proto=https"},
			} {
				r := f.do(t, http.MethodPost, "/rooms", "application/json", `{"name":"general"}`,
					append([]string{"Authorization", goodToken}, header...)...)
				if got, want := r.header.Get("Location"), "http://"+host+"/v1/rooms/"+roomID; got != want {
					t.Errorf("%q: Location = %q, want %q", header, got, want)
				}
			}
			for _, header := range []http.Header{
				{"Origin": {"https://evil.example"}, "X-Forwarded-Host": {"evil.example"}},
				{"Origin": {"https://evil.example"}, "Forwarded": {"host=evil.example"}},
			} {
				_, resp, err := dialWS(t, f, "/v1/rooms/rt-hold:ws", header, "good")
				if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
					t.Errorf("%v: %v %v, want 403", header, resp, err)
				}
			}
			// The request's own host still opens sockets.
			if _, _, err := dialWS(t, f, "/v1/rooms/rt-hold:ws", http.Header{"Origin": {f.url}}, "good"); err != nil {
				t.Errorf("Origin %s: %v", f.url, err)
			}
		})
	}
}

func TestForwardedHeadersOfATrustedProxyNameTheOrigin(t *testing.T) {
	f := startWith(t, context.Background(), handlerConfig{trustedProxies: loopbackProxies})
	for _, header := range [][]string{
		{"X-Forwarded-Host", "chat.example.com", "X-Forwarded-Proto", "https"},
		{"Forwarded", "for=192.0.2.1;host=chat.example.com;proto=https"},
	} {
		r := f.do(t, http.MethodPost, "/rooms", "application/json", `{"name":"general"}`,
			append([]string{"Authorization", goodToken}, header...)...)
		if got, want := r.header.Get("Location"), "https://chat.example.com/v1/rooms/"+roomID; got != want {
			t.Errorf("%q: Location = %q, want %q", header, got, want)
		}
	}
	for _, header := range []http.Header{
		{"Origin": {"https://chat.example.com"}, "X-Forwarded-Host": {"chat.example.com"}},
		{"Origin": {"https://chat.example.com"}, "Forwarded": {`host="chat.example.com"`}},
	} {
		if _, _, err := dialWS(t, f, "/v1/rooms/rt-hold:ws", header, "good"); err != nil {
			t.Errorf("%v: %v", header, err)
		}
	}
	// A forwarded host decides: another page's origin is refused even
	// from a trusted proxy.
	_, resp, err := dialWS(t, f, "/v1/rooms/rt-hold:ws",
		http.Header{"Origin": {"https://evil.example"}, "X-Forwarded-Host": {"chat.example.com"}}, "good")
	if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("foreign origin behind a trusted proxy: %v %v, want 403", resp, err)
	}
}

func TestExternalOrigin(t *testing.T) {
	trusted := TrustedProxies{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")}
	const untrusted, proxy = "192.0.2.1:5000", "10.1.2.3:5000"
	for _, c := range []struct {
		name    string
		peer    string
		tls     bool
		host    string
		headers []string
		want    string
	}{
		{"own host", untrusted, false, "gw:8080", nil, "http://gw:8080"},
		{"own host over TLS", untrusted, true, "gw", nil, "https://gw"},
		{"untrusted X-Forwarded-*", untrusted, false, "gw",
			[]string{"X-Forwarded-Host", "evil.example", "X-Forwarded-Proto", "https"}, "http://gw"},
		{"untrusted Forwarded", untrusted, false, "gw", []string{"Forwarded", "host=evil.example;proto=https"}, "http://gw"},
		{"no host", untrusted, false, "", nil, ""},
		{"own host not a host", untrusted, false, "gw/x", nil, ""},
		{"trusted X-Forwarded-*", proxy, false, "gw",
			[]string{"X-Forwarded-Host", "chat.example.com", "X-Forwarded-Proto", "HTTPS"}, "https://chat.example.com"},
		{"trusted over IPv6", "[fd00::7]:5000", false, "gw", []string{"X-Forwarded-Host", "chat.example.com"}, "http://chat.example.com"},
		{"trusted IPv4-mapped peer", "[::ffff:10.0.0.7]:5000", false, "gw", []string{"X-Forwarded-Host", "chat.example.com"}, "http://chat.example.com"},
		{"first value of a list", proxy, false, "gw",
			[]string{"X-Forwarded-Host", "chat.example.com, inner.local", "X-Forwarded-Proto", "https,http"}, "https://chat.example.com"},
		{"Forwarded wins over X-Forwarded-*", proxy, false, "gw",
			[]string{"Forwarded", `Host="a.example:8443";PROTO=https`, "X-Forwarded-Host", "b.example", "X-Forwarded-Proto", "http"},
			"https://a.example:8443"},
		{"Forwarded without host: X-Forwarded-Host", proxy, false, "gw",
			[]string{"Forwarded", "for=192.0.2.1;proto=https", "X-Forwarded-Host", "b.example"}, "https://b.example"},
		{"malformed Forwarded is ignored", proxy, false, "gw", []string{"Forwarded", `host="a.example`}, "http://gw"},
		{"Forwarded with a parameter twice is ignored", proxy, false, "gw", []string{"Forwarded", "host=a.example;host=b.example"}, "http://gw"},
		{"trusted host with a path", proxy, false, "gw", []string{"X-Forwarded-Host", "evil.example/x?"}, "http://gw"},
		{"trusted host with userinfo", proxy, false, "gw", []string{"X-Forwarded-Host", "user@evil.example"}, "http://gw"},
		{"trusted host with a bad port", proxy, false, "gw", []string{"X-Forwarded-Host", "chat.example.com:99999"}, "http://gw"},
		{"trusted host that is colons", proxy, false, "gw", []string{"X-Forwarded-Host", "::::"}, "http://gw"},
		{"trusted bracketed IPv6 host", proxy, false, "gw", []string{"X-Forwarded-Host", "[2001:db8::1]:8443"}, "http://[2001:db8::1]:8443"},
		{"trusted proto that is no scheme", proxy, false, "gw", []string{"X-Forwarded-Proto", "javascript"}, "http://gw"},
		{"trusted proto over TLS", proxy, true, "gw", []string{"X-Forwarded-Proto", "http"}, "http://gw"},
		{"peer without a port", "10.1.2.3", false, "gw", []string{"X-Forwarded-Host", "chat.example.com"}, "http://gw"},
	} {
		r, _ := http.NewRequest(http.MethodGet, "http://placeholder/", nil)
		r.Host, r.RemoteAddr = c.host, c.peer
		if c.tls {
			r.TLS = &tls.ConnectionState{}
		}
		for i := 0; i+1 < len(c.headers); i += 2 {
			r.Header.Set(c.headers[i], c.headers[i+1])
		}
		if got := externalOrigin(r, trusted).String(); got != c.want {
			t.Errorf("%s: externalOrigin = %q, want %q", c.name, got, c.want)
		}
	}
}

func TestParseTrustedProxies(t *testing.T) {
	got, err := ParseTrustedProxies([]string{"10.0.0.7", " 192.168.0.0/16 ", "", "::1", "fd00::/8", "::ffff:172.16.0.0/108"})
	if err != nil {
		t.Fatal(err)
	}
	want := "[10.0.0.7/32 192.168.0.0/16 ::1/128 fd00::/8 172.16.0.0/12]"
	if fmtPrefixes(got) != want {
		t.Errorf("ParseTrustedProxies = %s, want %s", fmtPrefixes(got), want)
	}
	for _, c := range []struct{ item, message string }{
		{"example.com", `"example.com" is not an IP address or CIDR prefix`},
		{"10.0.0.0/33", `"10.0.0.0/33" is not an IP address or CIDR prefix`},
		{"10.0.0.1/8", `"10.0.0.1/8" has bits set past its prefix length: write 10.0.0.0/8`},
		{"fe80::1%eth0", `"fe80::1%eth0": an address with a zone cannot be matched; leave out %eth0`},
		{"10.0.0.1:80", `"10.0.0.1:80" is not an IP address or CIDR prefix`},
	} {
		_, err := ParseTrustedProxies([]string{"10.0.0.7", c.item})
		if err == nil || err.Error() != c.message {
			t.Errorf("ParseTrustedProxies(%q): %v, want %s", c.item, err, c.message)
		}
	}
}

func fmtPrefixes(ps TrustedProxies) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return "[" + strings.Join(s, " ") + "]"
}

func TestIsHostPort(t *testing.T) {
	for _, h := range []string{"gw", "gw:8080", "chat.example.com", "parley_gateway_1:8080", "10.0.0.1",
		"10.0.0.1:65535", "[::1]", "[2001:db8::1]:443", "xn--bcher-kva.example", strings.Repeat("a", 63) + ".example"} {
		if !isHostPort(h) {
			t.Errorf("isHostPort(%q) = false, want true", h)
		}
	}
	for _, h := range []string{"", ":80", "gw:", "gw:0", "gw:65536", "gw:+80", "gw:8080:1", "::1", "[::1", "[::1]x",
		"[::1]:", "[10.0.0.1]", "[fe80::1%25eth0]", "-gw", "gw-", "a..b", ".gw", "gw.", "evil.example/x", "a@b",
		"a b", "a\r\nb", "é.example", strings.Repeat("a", 64) + ".example", strings.Repeat("a.", 127) + "ab"} {
		if isHostPort(h) {
			t.Errorf("isHostPort(%q) = true, want false", h)
		}
	}
}
