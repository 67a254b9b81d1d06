package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	parleyv1 "parley/gateway/gen/parley/v1"
)

// grpcChannels are a run's connections to a gRPC server; subscriber i uses
// channel i % len.
type grpcChannels []*grpc.ClientConn

func dialChannels(target string, n int) (grpcChannels, error) {
	var cs grpcChannels
	for i := 0; i < n; i++ {
		// Each its own connection: a different authority-free option set
		// would be shared otherwise.
		c, err := grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(16<<20)),
			grpc.WithUserAgent(fmt.Sprintf("peerload/%d", i)))
		if err != nil {
			return nil, err
		}
		cs = append(cs, c)
	}
	return cs, nil
}

func (cs grpcChannels) pick(i int) *grpc.ClientConn { return cs[i%len(cs)] }

func (cs grpcChannels) close() {
	for _, c := range cs {
		c.Close()
	}
}

func withToken(ctx context.Context, token string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
}

// parley is every Parley mode: users and rooms made through gRPC, the
// subscribers on the mode's transport, publishing through the gateway's
// REST route (ws, sse) or gRPC PostMessage (grpc).
type parley struct {
	cfg          *config
	transport    string // ws, sse or grpc
	channels     grpcChannels
	userTokens   []string
	publishToken []string
	rooms        []string
	streamHTTP   streamClients
	publishHTTP  *http.Client
}

const parleyPassword = "peerload-password"

func (p *parley) setup(ctx context.Context) error {
	cfg := p.cfg
	var err error
	if p.channels, err = dialChannels(cfg.grpcTarget, cfg.grpcChannels); err != nil {
		return err
	}
	if p.transport != "grpc" && cfg.httpBase == "" {
		return errors.New("--http is required for parley-ws and parley-sse")
	}
	if p.userTokens, err = p.signUp(ctx, "u", cfg.users); err != nil {
		return err
	}
	if p.publishToken, err = p.signUp(ctx, "p", cfg.publishers); err != nil {
		return err
	}
	p.rooms = make([]string, cfg.rooms())
	err = parallel(len(p.rooms), 8, func(i int) error {
		p.rooms[i] = fmt.Sprintf("%s-r%d", cfg.prefix, i)
		rooms := parleyv1.NewRoomServiceClient(p.channels.pick(i))
		_, err := rooms.CreateRoom(withToken(ctx, p.publishToken[0]), &parleyv1.CreateRoomRequest{Name: p.rooms[i]})
		if status.Code(err) == codes.AlreadyExists {
			return nil
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("create rooms: %w", err)
	}
	p.streamHTTP = newStreamClients(cfg.sourceAddrs)
	p.publishHTTP = &http.Client{
		Transport: &http.Transport{MaxIdleConnsPerHost: cfg.maxInflight, DisableCompression: true},
		Timeout:   cfg.publishTimeout,
	}
	return nil
}

// signUp makes (or reuses) n users <prefix>-<kind><i>; their tokens.
func (p *parley) signUp(ctx context.Context, kind string, n int) ([]string, error) {
	tokens := make([]string, n)
	err := parallel(n, 8, func(i int) error {
		name := fmt.Sprintf("%s-%s%d", p.cfg.prefix, kind, i)
		c := p.channels.pick(i)
		_, err := parleyv1.NewUserServiceClient(c).CreateUser(ctx, &parleyv1.CreateUserRequest{Username: name, Password: parleyPassword})
		if err != nil && status.Code(err) != codes.AlreadyExists {
			return fmt.Errorf("create user %s: %w", name, err)
		}
		resp, err := parleyv1.NewAuthServiceClient(c).SignIn(ctx, &parleyv1.SignInRequest{Username: name, Password: parleyPassword})
		if err != nil {
			return fmt.Errorf("sign in %s: %w", name, err)
		}
		tokens[i] = resp.Token
		return nil
	})
	return tokens, err
}

func (p *parley) subscribe(ctx context.Context, i, room int, rec *recorder, fail func(error)) error {
	token := p.userTokens[i%len(p.userTokens)]
	switch p.transport {
	case "ws":
		u := strings.Replace(p.cfg.httpBase, "http", "ws", 1) + "/v1/rooms/" + url.PathEscape(p.rooms[room]) + ":ws"
		h := http.Header{}
		h.Set("Authorization", "Bearer "+token)
		// The upgrade completes once the subscription is in place.
		conn, _, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPHeader: h, HTTPClient: p.streamHTTP.pick(i)})
		if err != nil {
			return err
		}
		go readWebSocket(ctx, conn, rec, fail, nil)
		return nil
	case "sse":
		req, err := http.NewRequestWithContext(ctx, http.MethodGet,
			p.cfg.httpBase+"/v1/rooms/"+url.PathEscape(p.rooms[room])+":subscribe", nil)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Accept", "text/event-stream")
		// The status comes once the stream is in place.
		resp, err := p.streamHTTP.pick(i).Do(req)
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
			resp.Body.Close()
			return fmt.Errorf("SSE %s: %s %s", p.rooms[room], resp.Status, body)
		}
		go readSSE(ctx, resp.Body, rec, fail)
		return nil
	default:
		chat := parleyv1.NewChatServiceClient(p.channels.pick(i))
		stream, err := chat.Subscribe(withToken(ctx, token), &parleyv1.SubscribeRequest{Room: p.rooms[room]})
		if err != nil {
			return err
		}
		return startGRPCReader(ctx, stream.RecvMsg, rec, fail)
	}
}

func (p *parley) publish(ctx context.Context, k, room int, text string) error {
	token := p.publishToken[k%len(p.publishToken)]
	if p.transport == "grpc" {
		ctx, cancel := context.WithTimeout(ctx, p.cfg.publishTimeout)
		defer cancel()
		messages := parleyv1.NewMessageServiceClient(p.channels.pick(k))
		_, err := messages.PostMessage(withToken(ctx, token), &parleyv1.PostMessageRequest{Room: p.rooms[room], Text: text})
		return err
	}
	body := fmt.Sprintf(`{"text":%q}`, text)
	return postJSON(ctx, p.publishHTTP, p.cfg.httpBase+"/v1/rooms/"+url.PathEscape(p.rooms[room])+"/messages",
		body, http.Header{"Authorization": {"Bearer " + token}})
}

func (p *parley) close() {
	if p.channels != nil {
		p.channels.close()
	}
}

// startGRPCReader reads a server stream of SubscribeResponse: the first
// write (the subscription is in place) before it returns, the rest in a
// goroutine.
func startGRPCReader(ctx context.Context, recv func(any) error, rec *recorder, fail func(error)) error {
	var first parleyv1.SubscribeResponse
	if err := recv(&first); err != nil {
		return err
	}
	go func() {
		for {
			var m parleyv1.SubscribeResponse
			if err := recv(&m); err != nil {
				if ctx.Err() == nil {
					fail(fmt.Errorf("stream ended: %w", err))
				}
				return
			}
			now := time.Now()
			for _, e := range m.Events {
				rec.deliveryText(e.Text, now)
			}
		}
	}()
	return nil
}

// readWebSocket reads text frames until ctx ends; answer, when set, may
// reply to a frame (Centrifugo's pings).
func readWebSocket(ctx context.Context, conn *websocket.Conn, rec *recorder, fail func(error), answer func([]byte) []byte) {
	conn.SetReadLimit(1 << 20)
	defer conn.CloseNow()
	for {
		_, data, err := conn.Read(ctx)
		if err != nil {
			if ctx.Err() == nil {
				fail(fmt.Errorf("socket ended: %w", err))
			}
			return
		}
		rec.deliveries(data, time.Now())
		if answer != nil {
			if reply := answer(data); reply != nil {
				if err := conn.Write(ctx, websocket.MessageText, reply); err != nil && ctx.Err() == nil {
					fail(fmt.Errorf("socket write: %w", err))
					return
				}
			}
		}
	}
}

// readSSE reads an event stream's data lines until ctx ends.
func readSSE(ctx context.Context, body io.ReadCloser, rec *recorder, fail func(error)) {
	defer body.Close()
	r := bufio.NewReaderSize(body, 16<<10)
	for {
		line, err := r.ReadSlice('\n')
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			if ctx.Err() == nil {
				fail(fmt.Errorf("event stream ended: %w", err))
			}
			return
		}
		if bytes.HasPrefix(line, []byte("data:")) {
			rec.deliveries(line, time.Now())
		} else if bytes.HasPrefix(line, []byte("event: error")) {
			fail(errors.New("event stream: error event"))
		}
	}
}

// postJSON POSTs body and wants a 2xx.
func postJSON(ctx context.Context, c *http.Client, u, body string, h http.Header) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(body))
	if err != nil {
		return err
	}
	for k, v := range h {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("POST %s: %s %s", u, resp.Status, b)
	}
	if bytes.HasPrefix(bytes.TrimSpace(b), []byte(`{"error"`)) {
		return fmt.Errorf("POST %s: %s", u, b)
	}
	return nil
}

// parallel runs fn(0..n-1) on `workers` goroutines; the first error.
func parallel(n, workers int, fn func(int) error) error {
	var (
		mu       sync.Mutex
		firstErr error
		next     int
		wg       sync.WaitGroup
	)
	for w := 0; w < workers && w < n; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				i := next
				next++
				stop := firstErr != nil
				mu.Unlock()
				if i >= n || stop {
					return
				}
				if err := fn(i); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	return firstErr
}
