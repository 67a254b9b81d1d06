package messagingapi

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"testing"

	"parley/gateway/internal/apierror"
)

// FuzzRequestBody decodes a body as the /user and /chat routes do, into
// each of their request types. Whatever the body: no panic; an error is a
// 400 naming the field when it is about one; a success came from one JSON
// object, and the request, encoded and decoded again, is the same request.
func FuzzRequestBody(f *testing.F) {
	requests := []func() any{
		func() any { return &userRequest{} },
		func() any { return &chatRequest{} },
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, newRequest := range requests {
			req := newRequest()
			e := decode(httptest.NewRequest(http.MethodPost, "/user", bytes.NewReader(body)), req)
			if e != nil {
				checkError(t, body, *e)
				continue
			}
			if !isJSONObject(body) {
				t.Fatalf("body %q is not one JSON object, yet decoded as %+v", body, req)
			}
			encoded, err := json.Marshal(req)
			if err != nil {
				t.Fatalf("encoding %+v: %v", req, err)
			}
			again := newRequest()
			if e := decode(httptest.NewRequest(http.MethodPost, "/user", bytes.NewReader(encoded)), again); e != nil {
				t.Fatalf("body %q decoded as %+v, encoded as %s, which is refused: %+v", body, req, encoded, e)
			}
			if !reflect.DeepEqual(req, again) {
				t.Fatalf("body %q decoded as %+v, encoded as %s, decoded as %+v", body, req, encoded, again)
			}
		}
	})
}

// FuzzSocketFrame decodes a client's frame on /ws as the session does.
// Whatever the frame: no panic; an error is a 400 naming the field when it
// is about one; a success is one of the four commands, from one JSON
// object, and the command, written as a frame again, decodes to itself.
func FuzzSocketFrame(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		req, e := decodeFrame(data)
		if e != nil {
			checkError(t, data, *e)
			return
		}
		if !isJSONObject(data) {
			t.Fatalf("frame %q is not one JSON object, yet decoded as %+v", data, req)
		}
		switch req.typ {
		case "connect-chat", "send-message", "update-message":
		case "delete-message":
			if req.messageID == "" {
				t.Fatalf("frame %q: delete-message without a message id decoded", data)
			}
		default:
			t.Fatalf("frame %q: type %q decoded", data, req.typ)
		}
		encoded := encodeFrame(t, req)
		again, e := decodeFrame(encoded)
		if e != nil {
			t.Fatalf("frame %q decoded as %+v, encoded as %s, which is refused: %+v", data, req, encoded, e)
		}
		if !reflect.DeepEqual(req, again) {
			t.Fatalf("frame %q decoded as %+v, encoded as %s, decoded as %+v", data, req, encoded, again)
		}
	})
}

// encodeFrame writes a command as a client would send it.
func encodeFrame(t *testing.T, req request) []byte {
	t.Helper()
	var content any
	if req.typ == "delete-message" {
		content = req.messageID
	} else {
		fields := map[string]any{"chatId": req.chatID, "content": req.text, "messageId": req.messageID}
		if req.afterSequence != nil {
			fields["afterSequence"] = strconv.FormatUint(*req.afterSequence, 10)
		}
		content = fields
	}
	b, err := json.Marshal(map[string]any{"type": req.typ, "content": content})
	if err != nil {
		t.Fatalf("encoding %+v: %v", req, err)
	}
	return b
}

// checkError asserts the shape of a refusal of input.
func checkError(t *testing.T, input []byte, e apierror.Error) {
	t.Helper()
	if e.Status != http.StatusBadRequest || e.Message == "" {
		t.Fatalf("input %q: error %+v, want a 400 with a message", input, e)
	}
	switch e.Code {
	case apierror.MalformedJSON:
	case apierror.InvalidFieldValue, apierror.UnknownFrameType:
		if e.Field == "" {
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
