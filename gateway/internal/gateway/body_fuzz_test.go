package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	_ "parley/gateway/gen/parley/v1" // registers the request messages
	"parley/gateway/internal/apierror"
)

// FuzzRequestBody decodes a body, as the gateway's JSON marshaler decodes
// a REST request's, into the request message of every RPC whose HTTP rule
// takes a body. Whatever the body: no panic; an empty body is io.EOF (an
// empty request); an error is a request-body error the error handler gives
// a reason (and a field, when the reason is about one); a success came from
// one valid JSON object, and the message survives marshalling and decoding
// again unchanged.
func FuzzRequestBody(f *testing.F) {
	requests := bodyRequestTypes(f)
	m := newJSONMarshaler()
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, mt := range requests {
			name := mt.Descriptor().FullName()
			msg := mt.New().Interface()
			err := m.NewDecoder(bytes.NewReader(body)).Decode(msg)
			switch {
			case errors.Is(err, io.EOF):
				if len(bytes.Trim(body, " \t\r\n")) != 0 {
					t.Fatalf("%s: body %q decoded as empty", name, body)
				}
			case err != nil:
				reason, field := bodyErrorReason(err.Error())
				if reason == "" {
					t.Fatalf("%s: body %q: error %q is not a request-body error", name, body, err)
				}
				if reason != apierror.MalformedJSON && field == "" && !namesEmptyField(reason, body) {
					t.Fatalf("%s: body %q: reason %s names no field (%q)", name, body, reason, err)
				}
			default:
				if !isJSONObject(body) || !utf8.Valid(body) {
					t.Fatalf("%s: body %q is not one JSON object, yet decoded as %v", name, body, msg)
				}
				encoded, err := m.Marshal(msg)
				if err != nil {
					t.Fatalf("%s: marshalling %v: %v", name, msg, err)
				}
				again := mt.New().Interface()
				if err := m.NewDecoder(bytes.NewReader(encoded)).Decode(again); err != nil {
					t.Fatalf("%s: decoding %s (from %q): %v", name, encoded, body, err)
				}
				if !proto.Equal(msg, again) {
					t.Fatalf("%s: %q decoded as %v, re-encoded as %s, decoded as %v", name, body, msg, encoded, again)
				}
			}
		}
	})
}

// isJSONObject reports whether b is one JSON value, an object.
func isJSONObject(b []byte) bool {
	trimmed := bytes.TrimLeft(b, " \t\r\n")
	return json.Valid(b) && len(trimmed) > 0 && trimmed[0] == '{'
}

// namesEmptyField reports whether an error with reason and no field may be
// about a field whose name is the empty string, "" in data.
func namesEmptyField(reason string, data []byte) bool {
	return reason == apierror.UnknownField && bytes.Contains(data, []byte(`""`))
}

// bodyRequestTypes reads gateway/http_rules.yaml for the RPCs with a body
// (a rule or an additional binding with `body:`) and returns their request
// messages.
func bodyRequestTypes(tb testing.TB) []protoreflect.MessageType {
	tb.Helper()
	rules, err := os.ReadFile("../../http_rules.yaml")
	if err != nil {
		tb.Fatal(err)
	}
	var selectors []string
	selector := ""
	for _, line := range strings.Split(string(rules), "\n") {
		line = strings.TrimSpace(line)
		if s, ok := strings.CutPrefix(line, "- selector:"); ok {
			selector = strings.TrimSpace(s)
			continue
		}
		if strings.HasPrefix(line, "body:") && selector != "" && !slices.Contains(selectors, selector) {
			selectors = append(selectors, selector)
		}
	}
	slices.Sort(selectors)
	var out []protoreflect.MessageType
	for _, s := range selectors {
		desc, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(s))
		if err != nil {
			tb.Fatalf("http_rules.yaml: %s: %v", s, err)
		}
		method, ok := desc.(protoreflect.MethodDescriptor)
		if !ok {
			tb.Fatalf("http_rules.yaml: %s is not a method", s)
		}
		mt, err := protoregistry.GlobalTypes.FindMessageByName(method.Input().FullName())
		if err != nil {
			tb.Fatalf("%s: %v", method.Input().FullName(), err)
		}
		out = append(out, mt)
	}
	if len(out) < 10 {
		tb.Fatalf("found %d RPCs with a body in http_rules.yaml; has its layout changed?", len(out))
	}
	return out
}
