package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"
)

// edgeSecretPoll is how often the gateway looks again for an
// --edge_secret_file that is not there yet.
const edgeSecretPoll = 100 * time.Millisecond

// readEdgeSecretFile returns the secret in the file at path, without the
// white space around it. The servers given the same --edge_secret_file
// create it when they start, so a file that does not exist yet is looked
// for again every poll until wait has passed (then it is an error) or ctx
// ends; onMiss, when not nil, is called each time it was not there. A file
// that holds no secret, or characters other than printable ASCII (the
// secret travels as gRPC metadata), is an error at once.
func readEdgeSecretFile(ctx context.Context, path string, wait, poll time.Duration, onMiss func()) (string, error) {
	deadline := time.Now().Add(wait)
	for {
		data, err := os.ReadFile(path)
		if err == nil {
			return parseEdgeSecret(path, data)
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("--edge_secret_file: %w", err)
		}
		left := time.Until(deadline)
		if left <= 0 {
			return "", fmt.Errorf("--edge_secret_file: %s did not appear within --edge_secret_wait=%s "+
				"(the servers create it when they start with the same --edge_secret_file)", path, wait)
		}
		if onMiss != nil {
			onMiss()
		}
		timer := time.NewTimer(min(poll, left))
		select {
		case <-ctx.Done():
			timer.Stop()
			return "", fmt.Errorf("--edge_secret_file: stopped waiting for %s: %w", path, ctx.Err())
		case <-timer.C:
		}
	}
}

func parseEdgeSecret(path string, data []byte) (string, error) {
	secret := strings.TrimSpace(string(data))
	if secret == "" {
		return "", fmt.Errorf("--edge_secret_file: %s holds no secret", path)
	}
	for _, c := range []byte(secret) {
		if c < 0x20 || c > 0x7e {
			return "", fmt.Errorf("--edge_secret_file: %s holds a character that is not printable ASCII "+
				"(the secret travels as gRPC metadata, which takes only those)", path)
		}
	}
	return secret, nil
}
