package messagingapi

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"parley/gateway/internal/apierror"
)

func TestBodyIsOneJSONObject(t *testing.T) {
	for _, c := range []struct{ input, code, field string }{
		{`null`, apierror.MalformedJSON, ""},
		{`[{"username":"a"}]`, apierror.MalformedJSON, ""},
		{`"alice"`, apierror.MalformedJSON, ""},
		{`00`, apierror.MalformedJSON, ""},
		{``, apierror.MalformedJSON, ""},
		{`{"username":"a"} {"username":"b"}`, apierror.MalformedJSON, ""},
		{`{"username":"a"}garbage`, apierror.MalformedJSON, ""},
		{`{"username":5}`, apierror.InvalidFieldValue, "username"},
		{` {"username":"a","age":30} `, "", ""},
	} {
		var req userRequest
		e := decode(httptest.NewRequest(http.MethodPost, "/user", strings.NewReader(c.input)), &req)
		switch {
		case c.code == "" && e != nil:
			t.Errorf("body %q: %+v, want it decoded", c.input, e)
		case c.code != "" && (e == nil || e.Code != c.code || e.Field != c.field || e.Status != http.StatusBadRequest):
			t.Errorf("body %q: %+v, want 400 %s on field %q", c.input, e, c.code, c.field)
		}
	}
}
