package integration

import (
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
)

// Bad input is never a 500: every route of gateway/http_rules.yaml, with
// odd path parameters, out-of-range and malformed query parameters and odd
// bodies, signed in, anonymous and with an oversized token, answers below
// 500 with the JSON error shape.
func TestNoServerErrorOnBadInput(t *testing.T) {
	s := startStack(t)
	s.noCoverage = true // these requests prove nothing about the routes' behaviour
	a := s.signUp(t, "alice")
	rm := s.createRoom(t, a.token, "real", "", "")
	m := s.post(t, a.token, rm.ID, "real message")
	rules, err := readRules()
	if err != nil {
		t.Fatal(err)
	}

	pathValues := oddPathValues(rm.ID)
	const badQuery = "?n=99999999999&before=-1&after=18446744073709551616&page_size=0&page_token=%25%25" +
		"&timeout=1e400&max_events=-1&after_sequence=abc&id=%00&room=&direct_messages=maybe"
	bodies := []string{
		`{}`,
		`{"text":"` + strings.Repeat("t", 5000) + `"}`,
		`{"name":null,"text":null,"user":null}`,
		`{"visibility":99}`,
		`{"through_sequence":"-1"}`,
		`{"through_sequence":"18446744073709551615"}`,
		`{"user":{"a":1}}`,
		`{"display_name":"\u0000","password":"\u0000\u0000\u0000\u0000\u0000\u0000\u0000\u0000"}`,
		`{"text":"\u0000"}`, // NUL_CHARACTER: no store keeps it
		`{"text":"a plain message"}`,
		`{"secret":"` + strings.Repeat("s", 100000) + `","name":"n"}`,
	}
	varRE := regexp.MustCompile(`\{[a-z_]+\}`)
	var seenMu sync.Mutex
	seen := map[int]int{}
	check := func(t *testing.T, method, target, token string, body any) {
		t.Helper()
		if strings.Contains(target, "subscribe") && method == http.MethodGet {
			status := s.streamStatus(t, target, token)
			seenMu.Lock()
			seen[status]++
			seenMu.Unlock()
			if status >= 500 {
				t.Errorf("GET %.120s: %d", target, status)
			}
			return
		}
		r := s.req(t, method, target, token, body)
		seenMu.Lock()
		seen[r.status]++
		seenMu.Unlock()
		if r.status >= 500 {
			t.Errorf("%s %.120s: %v", method, target, r)
		}
		if r.status >= 400 {
			var e apiError
			if err := json.Unmarshal(r.body, &e); err != nil || e.Error.Code == "" || e.Error.Status != r.status {
				t.Errorf("%s %.120s: %v, want the JSON error shape", method, target, r)
			}
		}
	}
	for _, rule := range rules {
		t.Run(rule.method+" "+rule.template, func(t *testing.T) {
			for _, v := range pathValues {
				if rule.method == http.MethodDelete && (v == rm.ID || v == "me") {
					continue // would delete what the other requests use
				}
				path := varRE.ReplaceAllStringFunc(rule.template, func(name string) string {
					if name == "{message}" && v == rm.ID {
						return m.ID
					}
					return v
				})
				token := a.token
				if rule.template == "/v1/auth/sign-out" {
					token = s.signIn(t, "alice", a.password).Token // one to spare
				}
				for _, token := range []string{token, "", oversizedToken} {
					var body any
					if rule.method != http.MethodGet && rule.method != http.MethodDelete {
						body = `{}`
					}
					check(t, rule.method, path+badQuery, token, body)
				}
			}
			if rule.method == http.MethodGet || rule.method == http.MethodDelete {
				return
			}
			path := varRE.ReplaceAllString(rule.template, rm.ID)
			for _, b := range bodies {
				token := a.token
				if rule.template == "/v1/auth/sign-out" {
					token = s.signIn(t, "alice", a.password).Token
				}
				check(t, rule.method, path, token, b)
			}
		})
	}
	t.Logf("statuses seen: %v", seen)
	for _, want := range []int{200, 201, 400, 401, 403, 404} {
		if seen[want] == 0 {
			t.Errorf("no %d among %v: the sweep did not reach the server as meant", want, seen)
		}
	}
	// The service is still up and sane.
	mustStatus(t, s.req(t, http.MethodGet, "/v1/rooms/"+rm.ID, a.token, nil), 200, nil)
	s.post(t, a.token, rm.ID, "still here")
	mustStatus(t, s.req(t, http.MethodGet, "/healthz", "", nil), 200, nil)
}

// oddPathValues are the values every robustness sweep puts in a route's
// path variables, then the real ids given.
func oddPathValues(ids ...string) []string {
	return append([]string{
		"x",
		strings.Repeat("long", 2000),
		"00000000-0000-4000-8000-00000000abcd",
		"%E2%9C%93%F0%9F%92%AC", // ✓💬
		"%00",
		"%FF", // not UTF-8
		"..",
		"%2E%2E",
		"", // an empty segment
		"a%2Fb",
		"me",
		"lobby",
	}, ids...)
}

// oversizedToken is longer than any token, and than the server takes in a
// call's metadata.
var oversizedToken = strings.Repeat("A", 64<<10)

// streamStatus GETs a stream route and returns its status as soon as the
// headers arrive, closing the stream.
func (s *stack) streamStatus(t *testing.T, target, token string) int {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.httpURL+target, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET %.120s: %v", target, err)
	}
	resp.Body.Close()
	if !s.noCoverage {
		recordHit(http.MethodGet, target, resp.StatusCode)
	}
	return resp.StatusCode
}
