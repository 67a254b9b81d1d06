package gateway

import (
	"bytes"
	"errors"
	"io"
	"maps"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"unicode/utf8"

	"google.golang.org/grpc/codes"
)

// maxBodyBytes caps a request body. The routes take their parameters from the
// query string; a body only matters as an HTML form.
const maxBodyBytes = 1 << 20

// checkInput refuses what must never reach the server: query strings and
// bodies that are not valid UTF-8 (grpc-go would fail to marshal the request
// and the client would see a 500), malformed query strings and oversized
// bodies. A body it has read is handed on in memory.
func checkInput(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if e := checkQuery(r.URL.RawQuery, "query"); e != nil {
			writeError(w, *e)
			return
		}
		if r.Body != nil && r.Body != http.NoBody {
			body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
			if err != nil {
				var tooLarge *http.MaxBytesError
				if errors.As(err, &tooLarge) {
					writeError(w, gatewayError(http.StatusRequestEntityTooLarge, codes.InvalidArgument,
						reasonRequestTooLarge, "", "request body is larger than 1 MiB"))
				} else {
					writeError(w, gatewayError(http.StatusBadRequest, codes.InvalidArgument, "", "",
						"reading request body: "+err.Error()))
				}
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
			if isForm(r) {
				if e := checkQuery(string(body), "form"); e != nil {
					writeError(w, *e)
					return
				}
			} else if !utf8.Valid(body) {
				writeError(w, gatewayError(http.StatusBadRequest, codes.InvalidArgument,
					reasonInvalidUTF8, "", "request body is not valid UTF-8"))
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

func isForm(r *http.Request) bool {
	ct, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return err == nil && ct == "application/x-www-form-urlencoded"
}

// checkQuery checks a URL-encoded query or form; where says which, for the
// message.
func checkQuery(raw, where string) *apiError {
	if raw == "" {
		return nil
	}
	values, err := url.ParseQuery(raw)
	if err != nil {
		e := gatewayError(http.StatusBadRequest, codes.InvalidArgument, "", "", "malformed "+where+": "+err.Error())
		return &e
	}
	for _, key := range slices.Sorted(maps.Keys(values)) {
		if !utf8.ValidString(key) {
			e := gatewayError(http.StatusBadRequest, codes.InvalidArgument, reasonInvalidUTF8,
				strings.ToValidUTF8(key, "\uFFFD"), "a "+where+" parameter name is not valid UTF-8")
			return &e
		}
		for _, v := range values[key] {
			if !utf8.ValidString(v) {
				e := gatewayError(http.StatusBadRequest, codes.InvalidArgument, reasonInvalidUTF8,
					key, where+" parameter "+key+" is not valid UTF-8")
				return &e
			}
		}
	}
	return nil
}
