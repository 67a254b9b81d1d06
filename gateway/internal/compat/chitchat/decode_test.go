package chitchat

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"parley/gateway/internal/apierror"
)

func TestBodiesAndFramesAreOneJSONObject(t *testing.T) {
	for _, c := range []struct{ input, code, field string }{
		{`null`, apierror.MalformedJSON, ""},
		{`[{"title":"x"}]`, apierror.MalformedJSON, ""},
		{`"general"`, apierror.MalformedJSON, ""},
		{`0`, apierror.MalformedJSON, ""},
		{``, apierror.MalformedJSON, ""},
		{`{"title":"x"} {}`, apierror.MalformedJSON, ""},
		{`{"title":5}`, apierror.InvalidFieldValue, "title"},
		{`{"title":"x","colour":"red"}`, apierror.UnknownField, "colour"},
		{` {"title":"x"} `, "", ""},
	} {
		var req roomRequest
		e := decode(httptest.NewRequest(http.MethodPost, "/chats", strings.NewReader(c.input)), &req)
		switch {
		case c.code == "" && e != nil:
			t.Errorf("body %q: %+v, want it decoded", c.input, e)
		case c.code != "" && (e == nil || e.Code != c.code || e.Field != c.field || e.Status != http.StatusBadRequest):
			t.Errorf("body %q: %+v, want 400 %s on field %q", c.input, e, c.code, c.field)
		}
	}
	for _, c := range []struct {
		input string
		ok    bool
	}{
		{`null`, false},
		{`[{"event_type":"send"}]`, false},
		{`"send"`, false},
		{`{"event_type":"send"}{}`, false},
		{` {"event_type":"send","extra":1}`, true},
	} {
		_, e := decodeFrame([]byte(c.input))
		if ok := e == nil; ok != c.ok || !ok && e.Code != apierror.MalformedJSON {
			t.Errorf("frame %q: %+v, want decoded %v (else MALFORMED_JSON)", c.input, e, c.ok)
		}
	}
}
