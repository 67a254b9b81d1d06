package main

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// runMainEnv makes the test binary run main instead of the tests, so that
// a test can start the gateway's command line as a process of its own.
const runMainEnv = "PARLEY_GATEWAY_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(runMainEnv) == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// runGateway runs main with args and env, and returns its exit code and
// standard error.
func runGateway(t *testing.T, env []string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), append([]string{runMainEnv + "=1"}, env...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0, stderr.String()
	case errors.As(err, &exit):
		return exit.ExitCode(), stderr.String()
	}
	t.Fatalf("running the gateway: %v", err)
	return 0, ""
}

func TestBadTrustedProxiesAreRefusedAtStart(t *testing.T) {
	for _, c := range []struct {
		name    string
		env     []string
		args    []string
		message string
	}{
		{"a host name", nil, []string{"--trusted_proxies=10.0.0.1,proxy.example"},
			`parley-gateway: --trusted_proxies: "proxy.example" is not an IP address or CIDR prefix`},
		{"a prefix too long", nil, []string{"--trusted_proxies=10.0.0.0/40"},
			`parley-gateway: --trusted_proxies: "10.0.0.0/40" is not an IP address or CIDR prefix`},
		{"host bits set", nil, []string{"--trusted_proxies", "192.168.1.1/16"},
			`parley-gateway: --trusted_proxies: "192.168.1.1/16" has bits set past its prefix length: write 192.168.0.0/16`},
		{"from the environment", []string{"PARLEY_TRUSTED_PROXIES=10.0.0.1:8080"}, nil,
			`parley-gateway: --trusted_proxies: "10.0.0.1:8080" is not an IP address or CIDR prefix`},
	} {
		t.Run(c.name, func(t *testing.T) {
			// Nothing listens on port 1: had the value been accepted, the
			// health probe would fail with 1 instead.
			code, stderr := runGateway(t, c.env, append(c.args, "--healthcheck", "--http_addr=127.0.0.1:1", "--port_file=")...)
			if code != 2 || strings.TrimSpace(stderr) != c.message {
				t.Errorf("exit %d, stderr %q; want exit 2 and %q", code, stderr, c.message)
			}
		})
	}
}

func TestGoodTrustedProxiesAreAccepted(t *testing.T) {
	for _, c := range []struct {
		name string
		env  []string
		args []string
	}{
		{"flag", nil, []string{"--trusted_proxies=10.0.0.1, 172.16.0.0/12,::1,fd00::/8"}},
		{"environment", []string{"PARLEY_TRUSTED_PROXIES=127.0.0.1"}, nil},
		{"empty", nil, []string{"--trusted_proxies="}},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, stderr := runGateway(t, c.env, append(c.args, "--healthcheck", "--http_addr=127.0.0.1:1", "--port_file=")...)
			if code != 1 || !strings.Contains(stderr, "unhealthy") {
				t.Errorf("exit %d, stderr %q; want the health probe's exit 1", code, stderr)
			}
		})
	}
}

func TestGCPercentFallsAsTheLiveHeapGrows(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct {
		live uint64
		max  int
		want int
	}{
		{0, 400, 400},
		{2 * mib, 400, 400},    // 16 MiB is 800% of it: the most
		{8 * mib, 400, 200},    // 16 MiB over 8
		{32 * mib, 400, 100},   // 50% would do: Go's default at the least
		{64 * mib, 50, 50},     // a --gc_percent below the floor is kept
		{100 * mib, 1000, 100}, // at the least
		{10 * mib, 1000, 160},  // 16 MiB over 10
	} {
		if got := gcPercentFor(tc.live, 16*mib, tc.max); got != tc.want {
			t.Errorf("live %d MiB, max %d: %d, want %d", tc.live/mib, tc.max, got, tc.want)
		}
	}
}
