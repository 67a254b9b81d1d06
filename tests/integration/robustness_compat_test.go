package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// The reproduced APIs take bad input as Parley's own routes do
// (TestNoServerErrorOnBadInput) and refuse it in their own error body:
// every REST route docs/api.md documents for them (the routes the coverage
// check reads, so a new one is swept too), with odd path values, odd and
// malformed query strings, bodies that are not what the route reads,
// missing, garbage and oversized tokens and oversized headers, answers
// below 500 with a 4xx in its API's error shape.
func TestReproducedAPIsRefuseBadInputInTheirOwnShape(t *testing.T) {
	s := startStack(t)
	s.noCoverage = true // these requests prove nothing about the routes' behaviour
	a := s.signUp(t, "alice")
	rm := s.chitchatRoom(t, a.token)
	roomToken := s.chitchatToken(t, rm.ID, `{"secret":"","name":"david"}`).Token
	routes, err := readDocumentedRoutes()
	if err != nil {
		t.Fatal(err)
	}
	if len(routes) == 0 {
		t.Fatalf("no routes under %q in %s", compatSection, apiDoc)
	}

	titlePath := url.PathEscape(rm.Title)
	pathValues := oddPathValues(titlePath, rm.ID, a.ID)
	keep := map[string]bool{rm.ID: true, a.ID: true, titlePath: true, "me": true, "lobby": true}
	queries := []string{
		"?chat_id=%00&chatId=%E2%9C%93&password=" + strings.Repeat("p", 5000) + "&n=-1&page_token=%25%25&x=1e400",
		"?chat_id=" + rm.ID + "&chat_id=x&chatId=" + strings.Repeat("c", 5000),
		"?chat_id=&chatId=",
		"?%zz",         // a malformed escape
		"?chat_id=%FF", // not UTF-8
		"?a=1;b=2",     // a semicolon
		"?" + strings.Repeat("&", 1000),
	}
	bodies := []string{
		``,
		`{`,
		`[]`,
		`null`,
		`"a string"`,
		`123`,
		`{} {}`,
		`{}x`,
		`{"nope":1}`,
		`{"title":"a","title":"b"}`,
		`{"title":1,"description":[],"visibility":{},"password":true,"secret":2,"name":3,"username":4,"chatName":5,"chat_name":6}`,
		`{"title":null,"description":null,"visibility":null,"password":null,"secret":null,"name":null,"username":null,"chatName":null}`,
		`{"visibility":"nope","title":"\u0000"}`,
		`{"username":"someone-else","password":"x"}`,
		`{"title":"` + strings.Repeat("t", 100000) + `","chatName":"` + strings.Repeat("c", 100000) + `","name":"` + strings.Repeat("n", 100000) + `","visibility":"public"}`,
		`{"secret":"` + strings.Repeat("s", 100000) + `","password":"` + strings.Repeat("p", 100000) + `","name":"n"}`,
		strings.Repeat("[", 100000),
		"{\"title\":\"\xff\xfe\"}",                       // not UTF-8
		`{"title":"` + strings.Repeat("h", 2<<20) + `"}`, // over the gateway's 1 MiB
	}
	authorizations := []string{
		"",
		"Bearer " + a.token,
		"Bearer " + roomToken,
		"Bearer garbage",
		"Bearer a.b.c",
		"Bearer " + a.token + "x",
		"Bearer",
		"Basic YWxpY2U6YWxpY2Utc2VjcmV0LXB3",
		"Bearer " + oversizedToken[:2048-len("Bearer ")], // the longest the gateway forwards
		"Bearer " + oversizedToken,
	}
	// Headers the gateway forwards as metadata, too large in all.
	bigHeaders := []string{"Cookie", "User-Agent", "Grpc-Metadata-X", "Referer"}

	varRE := regexp.MustCompile(`\{[a-z_]+\}`)
	seen := map[string]map[int]int{} // API -> status -> count
	for _, route := range routes {
		api, check := reproducedAPIOf(route.section)
		if check == nil {
			t.Fatalf("%s %s: no error shape known for %q; add one to reproducedAPIOf", route.method, route.template, route.section)
		}
		if seen[api] == nil {
			seen[api] = map[int]int{}
		}
		send := func(t *testing.T, path, authorization string, body any, header ...string) {
			t.Helper()
			if authorization != "" {
				header = append(header, "Authorization", authorization)
			}
			r := s.req(t, route.method, path, "", body, header...)
			seen[api][r.status]++
			check(t, fmt.Sprintf("%s %.100s (Authorization %.20q, body %.40q, headers %.30q)", route.method, path, authorization, body, header), r)
		}
		hasBody := route.method == http.MethodPost || route.method == http.MethodPut
		t.Run(route.method+" "+route.template, func(t *testing.T) {
			for _, v := range pathValues {
				if route.method == http.MethodDelete && keep[v] {
					continue // would delete what the other requests use
				}
				path := varRE.ReplaceAllString(route.template, v)
				for _, auth := range authorizations {
					var body any
					if hasBody {
						body = `{}`
					}
					send(t, path, auth, body)
				}
			}
			path := varRE.ReplaceAllString(route.template, "x")
			if route.method != http.MethodDelete {
				path = varRE.ReplaceAllString(route.template, rm.ID)
			}
			for _, q := range queries {
				for _, auth := range authorizations[:2] {
					send(t, path+q, auth, nil)
				}
			}
			for _, b := range bodies {
				for _, auth := range authorizations[:2] {
					send(t, path, auth, b)
				}
			}
			for _, h := range bigHeaders {
				for _, auth := range authorizations[:2] {
					send(t, path, auth, nil, h, oversizedToken[:9000])
				}
			}
		})
	}
	for api, statuses := range seen {
		t.Logf("%s: statuses seen: %v", api, statuses)
		for _, want := range []int{200, 400, 401, 403, 404} {
			if statuses[want] == 0 {
				t.Errorf("%s: no %d among %v: the sweep did not reach the server as meant", api, want, statuses)
			}
		}
	}
	// The service is still up and sane.
	mustOK(t, s.req(t, http.MethodGet, "/chats/"+rm.ID, "", nil), nil)
	mustOK(t, s.req(t, http.MethodGet, "/user/"+a.ID, a.token, nil), nil)
	mustStatus(t, s.req(t, http.MethodGet, "/healthz", "", nil), 200, nil)
}

// errorShapeCheck fails unless a reply is a success or a 4xx in one
// reproduced API's error body.
type errorShapeCheck func(t *testing.T, what string, r reply)

// reproducedAPIOf names the reproduced API of a documented route's section
// of docs/api.md and the check of its error body; nil for an API not
// known here.
func reproducedAPIOf(section string) (string, errorShapeCheck) {
	switch {
	case strings.HasPrefix(section, "ChitChat"):
		return "ChitChat", checkChitChatError
	case strings.Contains(section, "Messaging API"):
		return "Messaging API", checkMessagingError
	}
	return "", nil
}

// sensibleClientErrors are the statuses bad input may be refused with.
var sensibleClientErrors = map[int]bool{400: true, 401: true, 403: true, 404: true, 405: true, 409: true, 413: true, 431: true}

// decodeStrictly decodes body into v, refusing fields v does not have.
func decodeStrictly(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

// checkStatus fails on a 5xx or an unexpected status and reports whether
// r is an error, whose body is to be checked.
func checkStatus(t *testing.T, what string, r reply) bool {
	t.Helper()
	switch {
	case r.status < 300:
		return false
	case !sensibleClientErrors[r.status]:
		t.Errorf("%s: %v, want a success or one of the 4xx %v", what, r, sensibleClientErrors)
		return false
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("%s: %v with Content-Type %q, want JSON", what, r, ct)
	}
	return true
}

// checkChitChatError: {"status":false,"error":{"code","error","field"}},
// the code of the status's family.
func checkChitChatError(t *testing.T, what string, r reply) {
	t.Helper()
	if !checkStatus(t, what, r) {
		return
	}
	var e struct {
		Status *bool `json:"status"`
		Error  *struct {
			Code  int     `json:"code"`
			Error string  `json:"error"`
			Field *string `json:"field"`
		} `json:"error"`
	}
	if err := decodeStrictly(r.body, &e); err != nil || e.Status == nil || *e.Status || e.Error == nil ||
		e.Error.Code == 0 || e.Error.Error == "" || e.Error.Field == nil {
		t.Errorf("%s: %v, want ChitChat's {\"status\":false,\"error\":{\"code\",\"error\",\"field\"}}", what, r)
		return
	}
	var family bool
	switch c := e.Error.Code; r.status {
	case 401:
		family = c >= 301 && c <= 303
	case 403:
		family = c == 304
	case 404:
		family = c == 101
	default:
		family = c > 100 && c < 300
	}
	if !family {
		t.Errorf("%s: %v: code %d does not go with status %d", what, r, e.Error.Code, r.status)
	}
}

// checkMessagingError: {"error":"<message>"}.
func checkMessagingError(t *testing.T, what string, r reply) {
	t.Helper()
	if !checkStatus(t, what, r) {
		return
	}
	var e struct {
		Error *string `json:"error"`
	}
	if err := decodeStrictly(r.body, &e); err != nil || e.Error == nil || *e.Error == "" {
		t.Errorf("%s: %v, want the Messaging API's {\"error\":\"<message>\"}", what, r)
	}
}
