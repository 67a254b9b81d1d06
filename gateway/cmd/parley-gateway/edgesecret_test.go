package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A file that is not there yet is waited for: here it appears (written
// with white space around the secret, as a person would) after the first
// look missed it.
func TestEdgeSecretFileIsWaitedFor(t *testing.T) {
	path := filepath.Join(t.TempDir(), "edge.secret")
	misses := 0
	secret, err := readEdgeSecretFile(context.Background(), path, time.Minute, time.Millisecond, func() {
		misses++
		if misses == 1 {
			if err := os.WriteFile(path, []byte("  s3cret value\n"), 0o600); err != nil {
				t.Error(err)
			}
		}
	})
	if err != nil || secret != "s3cret value" {
		t.Fatalf("got %q, %v; want the secret", secret, err)
	}
	if misses != 1 {
		t.Errorf("missed %d times; want 1", misses)
	}
}

func TestEdgeSecretFileWaitIsBounded(t *testing.T) {
	path := filepath.Join(t.TempDir(), "edge.secret")
	const wait = 50 * time.Millisecond
	start := time.Now()
	misses := 0
	secret, err := readEdgeSecretFile(context.Background(), path, wait, 10*time.Millisecond, func() { misses++ })
	took := time.Since(start)
	want := "--edge_secret_file: " + path + " did not appear within --edge_secret_wait=50ms"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("got %q, %v; want an error with %q", secret, err, want)
	}
	if took < wait {
		t.Errorf("gave up after %s; want at least %s", took, wait)
	}
	if misses < 2 {
		t.Errorf("looked %d times; want it looked again while waiting", misses)
	}

	// No wait: one look.
	misses = 0
	if _, err := readEdgeSecretFile(context.Background(), path, 0, time.Millisecond, func() { misses++ }); err == nil || misses != 0 {
		t.Errorf("with no wait: %v after %d misses; want an error at once", err, misses)
	}
}

// SIGTERM while waiting ends the wait.
func TestEdgeSecretFileWaitEndsWithTheContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	path := filepath.Join(t.TempDir(), "edge.secret")
	_, err := readEdgeSecretFile(ctx, path, time.Hour, time.Hour, cancel)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v; want the wait cancelled", err)
	}
}

func TestEdgeSecretFileMustHoldASecret(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct{ name, contents, message string }{
		{"empty", "", "holds no secret"},
		{"white space", " \n\t\n", "holds no secret"},
		{"not metadata", "bad\x01secret", "holds a character that is not printable ASCII"},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(dir, c.name)
			if err := os.WriteFile(path, []byte(c.contents), 0o600); err != nil {
				t.Fatal(err)
			}
			// Never waited for: the file is there.
			_, err := readEdgeSecretFile(context.Background(), path, time.Hour, time.Hour, func() {
				t.Error("waited for a file that is there")
			})
			if err == nil || !strings.Contains(err.Error(), path+" "+c.message) {
				t.Errorf("got %v; want %q", err, c.message)
			}
		})
	}
}

// The command line: the secret given both ways, a negative wait, and a file
// that never comes stop the gateway with a clear error.
func TestEdgeSecretFlags(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "never.secret")
	for _, c := range []struct {
		name    string
		env     []string
		args    []string
		code    int
		message string
	}{
		{"both flags", nil, []string{"--edge_secret=s3cret", "--edge_secret_file=" + missing}, 2,
			"parley-gateway: give --edge_secret or --edge_secret_file, not both"},
		{"both from the environment", []string{"PARLEY_EDGE_SECRET=s3cret", "PARLEY_EDGE_SECRET_FILE=" + missing}, nil, 2,
			"parley-gateway: give --edge_secret or --edge_secret_file, not both"},
		{"a negative wait", nil, []string{"--edge_secret_file=" + missing, "--edge_secret_wait=-1s"}, 2,
			"parley-gateway: --edge_secret_wait must not be negative, not -1s"},
		{"a file that never comes", nil, []string{"--edge_secret_file=" + missing, "--edge_secret_wait=20ms"}, 1,
			"parley-gateway: --edge_secret_file: " + missing + " did not appear within --edge_secret_wait=20ms"},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, stderr := runGateway(t, c.env, append(c.args, "--http_addr=127.0.0.1:0", "--port_file=")...)
			if code != c.code || !strings.Contains(stderr, c.message) {
				t.Errorf("exit %d, stderr %q; want exit %d and %q", code, stderr, c.code, c.message)
			}
		})
	}
}
