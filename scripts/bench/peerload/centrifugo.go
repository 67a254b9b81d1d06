package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/coder/websocket"
)

// centrifugo speaks Centrifugo v6's JSON client protocol over its
// WebSocket endpoint (connect with an HS256 JWT, subscribe to a channel
// per room, answer the server's empty-object pings) and publishes through
// its server HTTP API, /api/publish with the API key.
type centrifugo struct {
	cfg         *config
	channels    []string
	publishHTTP *http.Client
	streamHTTP  streamClients
}

func (c *centrifugo) setup(context.Context) error {
	if c.cfg.httpBase == "" || c.cfg.centrifugoSecret == "" || c.cfg.centrifugoAPIKey == "" {
		return errors.New("centrifugo-ws needs --http, --centrifugo_secret and --centrifugo_api_key")
	}
	c.channels = make([]string, c.cfg.rooms())
	for i := range c.channels {
		c.channels[i] = fmt.Sprintf("%s-r%d", c.cfg.prefix, i)
	}
	c.streamHTTP = newStreamClients(c.cfg.sourceAddrs)
	c.publishHTTP = &http.Client{
		Transport: &http.Transport{MaxIdleConnsPerHost: c.cfg.maxInflight, DisableCompression: true},
		Timeout:   c.cfg.publishTimeout,
	}
	return nil
}

// hs256JWT signs claims with key: header.claims.signature, base64url.
func hs256JWT(claims map[string]any, key string) (string, error) {
	enc := base64.RawURLEncoding
	body, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	unsigned := enc.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + enc.EncodeToString(body)
	mac := hmac.New(sha256.New, []byte(key))
	mac.Write([]byte(unsigned))
	return unsigned + "." + enc.EncodeToString(mac.Sum(nil)), nil
}

// centrifugoReply is the part of a reply the loadgen reads.
type centrifugoReply struct {
	ID    uint32          `json:"id"`
	Error json.RawMessage `json:"error"`
}

// awaitReply reads frames until the reply with id; other lines (pushes,
// pings) are not expected before a subscription.
func awaitReply(ctx context.Context, conn *websocket.Conn, id uint32) error {
	for {
		_, data, err := conn.Read(ctx)
		if err != nil {
			return err
		}
		for _, line := range bytes.Split(data, []byte("\n")) {
			if len(bytes.TrimSpace(line)) == 0 {
				continue
			}
			var r centrifugoReply
			if err := json.Unmarshal(line, &r); err != nil {
				return fmt.Errorf("reply %q: %w", line, err)
			}
			if r.ID != id {
				continue
			}
			if len(r.Error) > 0 {
				return fmt.Errorf("command %d: %s", id, r.Error)
			}
			return nil
		}
	}
}

func (c *centrifugo) subscribe(ctx context.Context, i, room int, rec *recorder, fail func(error)) error {
	token, err := hs256JWT(map[string]any{
		"sub": fmt.Sprintf("%s-u%d", c.cfg.prefix, i%c.cfg.users),
		"exp": time.Now().Add(24 * time.Hour).Unix(),
	}, c.cfg.centrifugoSecret)
	if err != nil {
		return err
	}
	u := strings.Replace(c.cfg.httpBase, "http", "ws", 1) + "/connection/websocket"
	conn, _, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPClient: c.streamHTTP.pick(i)})
	if err != nil {
		return err
	}
	conn.SetReadLimit(1 << 20)
	connect := fmt.Sprintf(`{"id":1,"connect":{"token":%q,"name":"peerload"}}`, token)
	if err := conn.Write(ctx, websocket.MessageText, []byte(connect)); err != nil {
		conn.CloseNow()
		return err
	}
	if err := awaitReply(ctx, conn, 1); err != nil {
		conn.CloseNow()
		return fmt.Errorf("connect: %w", err)
	}
	sub := fmt.Sprintf(`{"id":2,"subscribe":{"channel":%q}}`, c.channels[room])
	if err := conn.Write(ctx, websocket.MessageText, []byte(sub)); err != nil {
		conn.CloseNow()
		return err
	}
	if err := awaitReply(ctx, conn, 2); err != nil {
		conn.CloseNow()
		return fmt.Errorf("subscribe %s: %w", c.channels[room], err)
	}
	go readWebSocket(ctx, conn, rec, fail, centrifugoPong)
	return nil
}

// centrifugoPong answers a frame holding a ping (an empty object on a line
// of its own) with a pong, also an empty object.
func centrifugoPong(frame []byte) []byte {
	for _, line := range bytes.Split(frame, []byte("\n")) {
		if string(bytes.TrimSpace(line)) == "{}" {
			return []byte("{}")
		}
	}
	return nil
}

func (c *centrifugo) publish(ctx context.Context, _, room int, text string) error {
	body := fmt.Sprintf(`{"channel":%q,"data":{"text":%q}}`, c.channels[room], text)
	return postJSON(ctx, c.publishHTTP, c.cfg.httpBase+"/api/publish", body,
		http.Header{"X-Api-Key": {c.cfg.centrifugoAPIKey}})
}

func (c *centrifugo) close() {}
