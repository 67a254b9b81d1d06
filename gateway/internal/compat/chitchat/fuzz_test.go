package chitchat

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"parley/gateway/internal/apierror"
)

// FuzzRequestBody decodes a body as the /chats routes do, into each of
// their request types. Whatever the body: no panic; an error is a 400
// naming the field when it is about one; a success came from one JSON
// object, and the request encodes to JSON that decodes and encodes to the
// same JSON.
func FuzzRequestBody(f *testing.F) {
	requests := []func() any{
		func() any { return &roomRequest{} },
		func() any { return &tokenRequest{} },
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, newRequest := range requests {
			req := newRequest()
			if e := decode(httptest.NewRequest(http.MethodPost, "/chats", bytes.NewReader(body)), req); e != nil {
				checkError(t, body, *e)
				continue
			}
			if !isJSONObject(body) {
				t.Fatalf("body %q is not one JSON object, yet decoded as %+v", body, req)
			}
			// roomRequest keeps the read-only fields as the client wrote
			// them; after one encoding they are stable.
			encoded, err := json.Marshal(req)
			if err != nil {
				t.Fatalf("encoding %+v: %v", req, err)
			}
			again := newRequest()
			if e := decode(httptest.NewRequest(http.MethodPost, "/chats", bytes.NewReader(encoded)), again); e != nil {
				t.Fatalf("body %q decoded as %+v, encoded as %s, which is refused: %+v", body, req, encoded, e)
			}
			reencoded, err := json.Marshal(again)
			if err != nil {
				t.Fatalf("encoding %+v: %v", again, err)
			}
			if !bytes.Equal(encoded, reencoded) {
				t.Fatalf("body %q: encoded as %s, decoded and encoded again as %s", body, encoded, reencoded)
			}
		}
	})
}

// FuzzSocketFrame decodes a client's frame on /chats/{room}/ws as the
// session does. Whatever the frame: no panic; an error is a 400
// MALFORMED_JSON; a success came from one JSON object, and the frame,
// encoded and decoded again, is the same frame.
func FuzzSocketFrame(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		fr, e := decodeFrame(data)
		if e != nil {
			if e.Status != http.StatusBadRequest || e.Code != apierror.MalformedJSON || e.Message == "" {
				t.Fatalf("frame %q: error %+v, want a 400 MALFORMED_JSON", data, e)
			}
			return
		}
		if !isJSONObject(data) {
			t.Fatalf("frame %q is not one JSON object, yet decoded as %+v", data, fr)
		}
		encoded, err := json.Marshal(fr)
		if err != nil {
			t.Fatalf("encoding %+v: %v", fr, err)
		}
		again, e := decodeFrame(encoded)
		if e != nil {
			t.Fatalf("frame %q decoded as %+v, encoded as %s, which is refused: %+v", data, fr, encoded, e)
		}
		if again != fr {
			t.Fatalf("frame %q decoded as %+v, encoded as %s, decoded as %+v", data, fr, encoded, again)
		}
	})
}

// checkError asserts the shape of a refusal of input.
func checkError(t *testing.T, input []byte, e apierror.Error) {
	t.Helper()
	if e.Status != http.StatusBadRequest || e.Message == "" {
		t.Fatalf("input %q: error %+v, want a 400 with a message", input, e)
	}
	switch e.Code {
	case apierror.MalformedJSON:
	case apierror.InvalidFieldValue, apierror.UnknownField:
		if e.Field == "" && !(e.Code == apierror.UnknownField && bytes.Contains(input, []byte(`""`))) {
			t.Fatalf("input %q: %s names no field (%s)", input, e.Code, e.Message)
		}
	default:
		t.Fatalf("input %q: reason %q", input, e.Code)
	}
}

// isJSONObject reports whether b is one JSON value, an object.
func isJSONObject(b []byte) bool {
	trimmed := bytes.TrimLeft(b, " \t\r\n")
	return json.Valid(b) && len(trimmed) > 0 && trimmed[0] == '{'
}
