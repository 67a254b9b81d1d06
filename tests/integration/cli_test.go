package integration

import (
	"bufio"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// cli runs parley_cli against the stack's server and returns its stdout.
func (s *stack) cli(t *testing.T, args ...string) string {
	t.Helper()
	bin := binary(t, "PARLEY_CLI_BIN")
	cmd := exec.Command(bin, append([]string{"--server=" + s.grpcAddr}, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("parley_cli %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}

// cliLines splits the CLI's output into its tab-separated event lines.
func cliLines(out string) [][]string {
	var lines [][]string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if l != "" {
			lines = append(lines, strings.Split(l, "\t"))
		}
	}
	return lines
}

func TestCLIJoinsSendsPollsAndLeaves(t *testing.T) {
	s := startStack(t)
	if got := cliLines(s.cli(t, "join", "alice")); len(got) != 1 || got[0][1] != "join" || got[0][2] != "alice" {
		t.Fatalf("join printed %q", got)
	}
	s.cli(t, "join", "bob")
	sent := cliLines(s.cli(t, "send", "alice", "hello", "from", "the", "cli"))
	if len(sent) != 1 || sent[0][1] != "message" || sent[0][3] != "hello from the cli" {
		t.Fatalf("send printed %q", sent)
	}
	polled := cliLines(s.cli(t, "poll", "bob", "--timeout=5"))
	if len(polled) != 2 || polled[1][0] != sent[0][0] || polled[1][3] != "hello from the cli" {
		t.Fatalf("bob polled %q, want his join then message %s", polled, sent[0][0])
	}
	if left := cliLines(s.cli(t, "leave", "bob")); len(left) != 1 || left[0][1] != "leave" {
		t.Fatalf("leave printed %q", left)
	}

	bin := binary(t, "PARLEY_CLI_BIN")
	cmd := exec.Command(bin, "--server="+s.grpcAddr, "poll", "bob")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "has not joined") {
		t.Fatalf("poll after leave: err=%v out=%q, want a failure naming the cause", err, out)
	}
}

func TestCLISubscribeStreamsUntilTheClientLeaves(t *testing.T) {
	s := startStack(t)
	s.cli(t, "join", "carol")
	cmd := exec.Command(binary(t, "PARLEY_CLI_BIN"), "--server="+s.grpcAddr, "subscribe", "carol")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan []string)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- strings.Split(sc.Text(), "\t")
		}
		close(lines)
	}()
	next := func() []string {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("the subscription ended early")
			}
			return l
		case <-time.After(15 * time.Second):
			t.Fatal("no line from subscribe within 15s")
		}
		return nil
	}
	if l := next(); l[1] != "join" { // carol's own join: the stream is live
		t.Fatalf("first line %q", l)
	}
	s.cli(t, "send", "carol", "streamed")
	if l := next(); l[1] != "message" || l[3] != "streamed" {
		t.Fatalf("second line %q", l)
	}
	s.cli(t, "leave", "carol")
	for range lines {
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("subscribe exited with %v after leave, want 0", err)
		}
	case <-time.After(15 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("subscribe did not end after leave")
	}
}
