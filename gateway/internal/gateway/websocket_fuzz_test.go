package gateway

import (
	"bytes"
	"encoding/json"
	"net/http"
	"testing"

	"parley/gateway/internal/apierror"
)

// FuzzSocketCommand decodes a client's frame on Parley's WebSocket, as
// parleySession.Command does. Whatever the frame: no panic; an error is a
// 400 with one of the frame reasons, naming the field when the reason is
// about one; a success came from one JSON object, and the command, encoded
// and decoded again, is the same command.
func FuzzSocketCommand(f *testing.F) {
	f.Fuzz(func(t *testing.T, frame []byte) {
		cmd, e := decodeCommand(frame)
		if e != nil {
			if e.Status != http.StatusBadRequest || e.Message == "" {
				t.Fatalf("frame %q: error %+v, want a 400 with a message", frame, e)
			}
			switch e.Code {
			case apierror.UnknownField, apierror.InvalidFieldValue:
				if e.Field == "" && !namesEmptyField(e.Code, frame) {
					t.Fatalf("frame %q: %s names no field (%s)", frame, e.Code, e.Message)
				}
			case apierror.MalformedJSON:
			default:
				t.Fatalf("frame %q: reason %q", frame, e.Code)
			}
			return
		}
		if !isJSONObject(frame) {
			t.Fatalf("frame %q is not one JSON object, yet decoded as %+v", frame, cmd)
		}
		encoded, err := json.Marshal(cmd)
		if err != nil {
			t.Fatalf("encoding %+v: %v", cmd, err)
		}
		again, e := decodeCommand(encoded)
		if e != nil {
			t.Fatalf("frame %q decoded as %+v, encoded as %s, which is refused: %+v", frame, cmd, encoded, e)
		}
		reencoded, err := json.Marshal(again)
		if err != nil {
			t.Fatalf("encoding %+v: %v", again, err)
		}
		// ref is echoed as the client wrote it, so compare it as JSON.
		if !bytes.Equal(encoded, reencoded) || !sameJSONValue(cmd.Ref, again.Ref) {
			t.Fatalf("frame %q: %s decoded and encoded again is %s", frame, encoded, reencoded)
		}
	})
}

// sameJSONValue reports whether a and b are the same JSON value, or both
// absent (null counts as absent).
func sameJSONValue(a, b json.RawMessage) bool {
	var va, vb any
	if len(a) > 0 && json.Unmarshal(a, &va) != nil || len(b) > 0 && json.Unmarshal(b, &vb) != nil {
		return false
	}
	ea, _ := json.Marshal(va)
	eb, _ := json.Marshal(vb)
	return bytes.Equal(ea, eb)
}
