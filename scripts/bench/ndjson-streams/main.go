// ndjson-streams opens many REST NDJSON streams at once through the gateway
// (GET /v1/rooms/{room}:subscribe, one HTTP/1.1 connection each) and checks
// that every one gets its first line, then that every one gets a message
// posted after they are all open: none may queue behind an HTTP/2 stream
// limit between the gateway and the server. Prints one JSON result line.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	base := flag.String("url", "http://127.0.0.1:8080", "the gateway")
	room := flag.String("room", "", "room name or UUID")
	token := flag.String("token", "", "user token")
	n := flag.Int("streams", 1000, "streams to open at once")
	timeout := flag.Duration("timeout", 30*time.Second, "time allowed for every stream's first line, and again for the message")
	flag.Parse()

	client := &http.Client{Transport: &http.Transport{
		MaxIdleConns: 0, MaxConnsPerHost: 0, DisableCompression: true,
		// One connection per stream, as browsers and curl do over HTTP/1.1.
		ForceAttemptHTTP2: false,
	}}
	subURL := fmt.Sprintf("%s/v1/rooms/%s:subscribe", *base, url.PathEscape(*room))
	marker := fmt.Sprintf("ndjson-streams-%d", time.Now().UnixNano())

	var firstLines, gotMessage, failed atomic.Int64
	var firstErr atomic.Value
	start := time.Now()
	var firstMax atomic.Int64 // ns until the slowest first line
	var wg sync.WaitGroup
	bodies := make([]io.Closer, *n)
	var mu sync.Mutex
	for i := 0; i < *n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			req, _ := http.NewRequest("GET", subURL, nil)
			req.Header.Set("Authorization", "Bearer "+*token)
			resp, err := client.Do(req)
			if err != nil {
				failed.Add(1)
				firstErr.CompareAndSwap(nil, err.Error())
				return
			}
			mu.Lock()
			bodies[i] = resp.Body
			mu.Unlock()
			if resp.StatusCode/100 != 2 {
				failed.Add(1)
				firstErr.CompareAndSwap(nil, resp.Status)
				return
			}
			r := bufio.NewReader(resp.Body)
			first := true
			for {
				line, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if first {
					first = false
					firstLines.Add(1)
					d := int64(time.Since(start))
					for {
						old := firstMax.Load()
						if d <= old || firstMax.CompareAndSwap(old, d) {
							break
						}
					}
				}
				if strings.Contains(line, marker) {
					gotMessage.Add(1)
					return
				}
			}
		}(i)
	}
	waitUntil := func(cond func() bool) bool {
		deadline := time.Now().Add(*timeout)
		for !cond() {
			if time.Now().After(deadline) {
				return false
			}
			time.Sleep(10 * time.Millisecond)
		}
		return true
	}
	allFirst := waitUntil(func() bool { return firstLines.Load()+failed.Load() >= int64(*n) })
	firstAll := time.Since(start)

	body, _ := json.Marshal(map[string]string{"text": marker})
	req, _ := http.NewRequest("POST", fmt.Sprintf("%s/v1/rooms/%s/messages", *base, url.PathEscape(*room)), bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+*token)
	req.Header.Set("Content-Type", "application/json")
	postStart := time.Now()
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode/100 != 2 {
		failed.Add(1)
		firstErr.CompareAndSwap(nil, fmt.Sprint("post: ", err))
	} else {
		resp.Body.Close()
	}
	allMessage := waitUntil(func() bool { return gotMessage.Load()+failed.Load() >= int64(*n) })
	messageAll := time.Since(postStart)
	mu.Lock()
	for _, b := range bodies {
		if b != nil {
			b.Close()
		}
	}
	mu.Unlock()

	errText, _ := firstErr.Load().(string)
	ok := allFirst && allMessage && failed.Load() == 0
	out, _ := json.Marshal(map[string]any{
		"scenario":         "rest_streams",
		"streams":          *n,
		"first_lines":      firstLines.Load(),
		"got_message":      gotMessage.Load(),
		"failed":           failed.Load(),
		"all_first_s":      firstAll.Seconds(),
		"slowest_first_s":  float64(firstMax.Load()) / 1e9,
		"message_to_all_s": messageAll.Seconds(),
		"first_error":      errText,
		"ok":               ok,
	})
	fmt.Println(string(out))
	if !ok {
		os.Exit(1)
	}
}
