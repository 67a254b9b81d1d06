package gateway

import (
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"
)

// connLimitListener caps the connections one client address holds open at
// once (--max_conns_per_address): each address's count goes up on Accept
// and down on Close. A connection past the cap is answered with a 429 and
// closed before any request is read, so a client cannot hold the gateway's
// file descriptors and goroutines hostage. IPv6 addresses count by /64,
// which one subscriber usually gets whole. The trusted proxies are not
// counted: every client behind them shares their address, and the proxy in
// front enforces its own cap.
type connLimitListener struct {
	net.Listener
	max     int
	proxies TrustedProxies

	mu   sync.Mutex
	held map[netip.Addr]int
}

func newConnLimitListener(ln net.Listener, max int, proxies TrustedProxies) net.Listener {
	if max <= 0 {
		return ln
	}
	return &connLimitListener{Listener: ln, max: max, proxies: proxies, held: map[netip.Addr]int{}}
}

// refusal is what a connection past its address's cap reads: a complete
// HTTP/1.1 response, in the shape of every other error of the gateway.
var refusal = func() []byte {
	body := `{"error":{"code":"TOO_MANY_CONNECTIONS","status":429,"grpc_code":"RESOURCE_EXHAUSTED",` +
		`"message":"your address has too many connections open; close one first","retry_after_seconds":1}}` + "\n"
	return []byte("HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\n" +
		"X-Content-Type-Options: nosniff\r\nRetry-After: 1\r\nConnection: close\r\n" +
		"Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body)
}()

// addressKey is the address a connection counts against.
func addressKey(remote net.Addr) (netip.Addr, bool) {
	ap, err := netip.ParseAddrPort(remote.String())
	if err != nil {
		return netip.Addr{}, false
	}
	addr := ap.Addr().Unmap().WithZone("")
	if addr.Is6() {
		prefix, _ := addr.Prefix(64)
		addr = prefix.Addr()
	}
	return addr, true
}

func (l *connLimitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.proxies.trusts(c.RemoteAddr().String()) {
			return c, nil
		}
		key, ok := addressKey(c.RemoteAddr())
		if !ok {
			return c, nil
		}
		l.mu.Lock()
		if l.held[key] >= l.max {
			l.mu.Unlock()
			go refuseConn(c)
			continue
		}
		l.held[key]++
		l.mu.Unlock()
		return &countedConn{Conn: c, release: func() { l.release(key) }}, nil
	}
}

func (l *connLimitListener) release(key netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.held[key]--; l.held[key] <= 0 {
		delete(l.held, key)
	}
}

// refuseConn answers a connection over its cap and closes it; a client that
// does not read is not waited for long.
func refuseConn(c net.Conn) {
	_ = c.SetWriteDeadline(time.Now().Add(time.Second))
	_, _ = c.Write(refusal)
	_ = c.Close()
}

// countedConn gives its address's slot back on its first Close.
type countedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *countedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
