package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
)

// streamClients are the HTTP clients the subscribers' connections (SSE,
// WebSocket) are made with: subscriber i's comes from loopback address
// 127.0.0.(2 + i % n). One source address has some 28,000 ephemeral ports,
// and the connections of a run just closed hold theirs in TIME_WAIT for a
// minute: 10,000 subscribers a run, run after run, need several.
type streamClients []*http.Client

func newStreamClients(n int) streamClients {
	if n < 1 {
		return streamClients{{Transport: &http.Transport{MaxIdleConnsPerHost: 1, DisableCompression: true}}}
	}
	cs := make(streamClients, n)
	for i := range cs {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(2+i))}}
		cs[i] = &http.Client{Transport: &http.Transport{
			DialContext:         d.DialContext,
			MaxIdleConnsPerHost: 1,
			DisableCompression:  true,
		}}
	}
	return cs
}

func (cs streamClients) pick(i int) *http.Client { return cs[i%len(cs)] }

// checkSourceAddrs fails early when n loopback source addresses cannot be
// bound.
func checkSourceAddrs(n int) error {
	if n > 250 {
		return fmt.Errorf("--source_addrs=%d: at most 250", n)
	}
	for i := 0; i < n; i++ {
		l, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", fmt.Sprintf("127.0.0.%d:0", 2+i))
		if err != nil {
			return fmt.Errorf("loopback source address 127.0.0.%d: %w", 2+i, err)
		}
		l.Close()
	}
	return nil
}
