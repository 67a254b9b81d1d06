package integration

import (
	"encoding/json"
	"net/http"
	"syscall"
	"testing"
	"time"
)

// A SIGTERM to the server must end open streams (with UNAVAILABLE) rather
// than leave them hanging, and the server must then exit 0.
func TestServerShutdownEndsOpenStreams(t *testing.T) {
	s := startStack(t)
	mustOK(t, s.get(t, "/join?id=stayer"), nil)
	st := s.subscribe(t, "stayer")
	mustOK(t, s.get(t, "/send?id=stayer&message=before+shutdown"), nil)

	// The stream is live once the message came through it.
	for seen := false; !seen; {
		l, ok := st.next(t, 10*time.Second)
		if !ok {
			t.Fatalf("stream ended before shutdown: %v", st.readErr())
		}
		seen = l.Result != nil && len(messages(l.Result.Events)) > 0
	}

	sigterm := time.Now()
	if err := s.server.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}

	var last streamLine
	for {
		l, ok := st.next(t, 10*time.Second)
		if !ok {
			break
		}
		last = l
	}
	t.Logf("stream ended %v after SIGTERM", time.Since(sigterm))
	if last.Error == nil {
		t.Errorf("stream ended without an error line (last %q), want UNAVAILABLE", last.raw)
	} else {
		var e struct {
			GRPCCode string `json:"grpc_code"`
		}
		if err := json.Unmarshal(*last.Error, &e); err != nil || e.GRPCCode != "UNAVAILABLE" {
			t.Errorf("last line %s, want grpc_code UNAVAILABLE", last.raw)
		}
	}

	select {
	case <-s.server.done:
		t.Logf("server exited %v after SIGTERM", time.Since(sigterm))
		if s.server.err != nil {
			t.Errorf("server exit: %v, want status 0", s.server.err)
		}
	case <-time.After(stopTimeout):
		t.Fatalf("server still running %v after SIGTERM", stopTimeout)
	}

	// The gateway outlives its server and says so.
	r := s.get(t, "/healthz")
	if r.status != http.StatusServiceUnavailable {
		t.Errorf("/healthz with the server gone = %v, want 503", r)
	}
}
