// naivews is the least a WebSocket fan-out can do, the floor of the
// peers benchmark's WebSocket pairs (scripts/bench/peers.sh): channels in
// memory, and each publication written to each subscriber's socket with
// one write, from the publishing request, with no queue, history or
// authentication. It speaks the part of Centrifugo's JSON protocol that
// peerload uses (connect, subscribe, POST /api/publish), so peerload
// drives it as it drives Centrifugo (--mode=naive-ws).
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

type server struct {
	mu       sync.Mutex
	channels map[string][]*subscriber
}

type subscriber struct {
	mu   sync.Mutex // one write at a time: a publication's, or a reply
	conn net.Conn
}

func (s *subscriber) write(frame []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, err := s.conn.Write(frame)
	return err
}

type command struct {
	ID        uint32 `json:"id"`
	Connect   any    `json:"connect"`
	Subscribe *struct {
		Channel string `json:"channel"`
	} `json:"subscribe"`
}

func (s *server) socket(w http.ResponseWriter, r *http.Request) {
	conn, _, _, err := ws.UpgradeHTTP(r, w)
	if err != nil {
		return
	}
	sub := &subscriber{conn: conn}
	defer conn.Close()
	defer s.leave(sub)
	for {
		data, op, err := wsutil.ReadClientData(conn)
		if err != nil {
			return
		}
		if op != ws.OpText {
			continue
		}
		var c command
		if json.Unmarshal(data, &c) != nil || c.ID == 0 {
			continue // a pong, {}
		}
		reply := fmt.Sprintf(`{"id":%d,"connect":{}}`, c.ID)
		if c.Subscribe != nil {
			s.mu.Lock()
			s.channels[c.Subscribe.Channel] = append(s.channels[c.Subscribe.Channel], sub)
			s.mu.Unlock()
			reply = fmt.Sprintf(`{"id":%d,"subscribe":{}}`, c.ID)
		}
		if sub.write(ws.MustCompileFrame(ws.NewTextFrame([]byte(reply)))) != nil {
			return
		}
	}
}

func (s *server) leave(sub *subscriber) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for ch, subs := range s.channels {
		for i, x := range subs {
			if x == sub {
				s.channels[ch] = append(subs[:i:i], subs[i+1:]...)
				break
			}
		}
	}
}

// publish writes the publication's frame, built once, to every
// subscriber of its channel, one write each.
func (s *server) publish(w http.ResponseWriter, r *http.Request) {
	var p struct {
		Channel string          `json:"channel"`
		Data    json.RawMessage `json:"data"`
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil || json.Unmarshal(body, &p) != nil {
		http.Error(w, `{"error":{"code":400}}`, http.StatusBadRequest)
		return
	}
	push, _ := json.Marshal(map[string]any{"push": map[string]any{"channel": p.Channel,
		"pub": map[string]any{"data": p.Data}}})
	frame := ws.MustCompileFrame(ws.NewTextFrame(push))
	s.mu.Lock()
	subs := append([]*subscriber(nil), s.channels[p.Channel]...)
	s.mu.Unlock()
	for _, sub := range subs {
		_ = sub.write(frame)
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, `{"result":{}}`)
}

func main() {
	addr := flag.String("http_addr", "127.0.0.1:0", "listen address")
	portFile := flag.String("port_file", "", "write the port here once listening")
	flag.Parse()
	s := &server{channels: map[string][]*subscriber{}}
	mux := http.NewServeMux()
	mux.HandleFunc("/connection/websocket", s.socket)
	mux.HandleFunc("POST /api/publish", s.publish)
	mux.HandleFunc("/health", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "{}") })
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	if *portFile != "" {
		port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
		if err := os.WriteFile(*portFile, []byte(port), 0o644); err != nil {
			log.Fatal(err)
		}
	}
	log.Fatal(http.Serve(ln, mux))
}
