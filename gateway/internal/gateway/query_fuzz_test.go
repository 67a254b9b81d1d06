package gateway

import (
	"maps"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/grpc-ecosystem/grpc-gateway/v2/utilities"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	parleyv1 "parley/gateway/gen/parley/v1"
	"parley/gateway/internal/apierror"
)

// queryRequests are the request messages the gateway fills from a query:
// seed 000's long poll (GET /messages?id=&timeout=&max_events=), the
// streams and polls with their resume point, and the pages with their
// cursors and limits. pathParams are the fields a route's path sets, which
// the query may not.
var queryRequests = []struct {
	route      string
	new        func() proto.Message
	pathParams []string
	stream     bool // takes the `after` alias
}{
	{"GET /messages", func() proto.Message { return &parleyv1.ReceiveRequest{} }, nil, false},
	{"GET /subscribe", func() proto.Message { return &parleyv1.SubscribeRequest{} }, nil, true},
	{"GET /v1/rooms/{room}:subscribe", func() proto.Message { return &parleyv1.SubscribeRequest{} }, []string{"room"}, true},
	{"GET /v1/rooms/{room}/events", func() proto.Message { return &parleyv1.PollRequest{} }, []string{"room"}, true},
	{"GET /v1/rooms/{room}/messages", func() proto.Message { return &parleyv1.ListMessagesRequest{} }, []string{"room"}, false},
	{"GET /v1/direct-messages", func() proto.Message { return &parleyv1.ListDirectMessagesRequest{} }, nil, false},
	{"GET /v1/lobby/recent-messages", func() proto.Message { return &parleyv1.ListRecentMessagesRequest{} }, nil, false},
	{"GET /v1/users", func() proto.Message { return &parleyv1.ListUsersRequest{} }, nil, false},
	{"GET /v1/rooms", func() proto.Message { return &parleyv1.ListRoomsRequest{} }, nil, false},
}

// FuzzQueryString runs a raw query through what the gateway does with one:
// checkInput's check, the rewrites that re-encode it (the `after` alias,
// direct_messages=true), the WebSocket cursor, and filling each request
// message the query routes take. Whatever the query: no panic; a query
// that is malformed or not UTF-8 is refused with a 400 and nothing else
// is; each rewrite's re-encoded query decodes to exactly the parameters it
// meant; a cursor is a sequence number or an error naming its parameter;
// a filled request holds only values that parse as their field's type
// (a bad number is an error, not a zero), and, encoded as a query again,
// fills the same request.
func FuzzQueryString(f *testing.F) {
	f.Fuzz(func(t *testing.T, rawQuery string) {
		values, parseErr := url.ParseQuery(rawQuery)
		e := checkQuery(rawQuery, "query")
		switch {
		case parseErr != nil || !validUTF8Values(values):
			if e == nil || e.Status != http.StatusBadRequest {
				t.Fatalf("query %q (%v) accepted, want a 400", rawQuery, parseErr)
			}
			return
		case e != nil:
			t.Fatalf("query %q refused: %+v", rawQuery, e)
		}
		for _, key := range []string{"id", afterAlias, "direct_messages"} {
			_, want := values[key]
			if got := hasQueryKey(rawQuery, key); got != want {
				t.Fatalf("query %q: hasQueryKey(%q) = %v, want %v", rawQuery, key, got, want)
			}
		}
		checkAliasAfter(t, rawQuery, values)
		checkSetDirectMessages(t, rawQuery, values)
		checkSocketCursor(t, values)

		aliased := &url.URL{RawQuery: rawQuery}
		aliasAfter(aliased)
		for _, qr := range queryRequests {
			q := values
			if qr.stream {
				q = aliased.Query()
			}
			checkQueryRequest(t, rawQuery, qr.route, qr.new, qr.pathParams, q)
		}
	})
}

// checkAliasAfter: `after` becomes after_sequence unless the query sets
// the resume point itself; every other parameter stays as it was.
func checkAliasAfter(t *testing.T, rawQuery string, values url.Values) {
	t.Helper()
	want := maps.Clone(values)
	if after, ok := want[afterAlias]; ok {
		delete(want, afterAlias)
		_, proto := want[afterSequenceParam]
		_, json := want[afterSequenceJSON]
		if !proto && !json {
			want[afterSequenceParam] = after
		}
	}
	u := &url.URL{RawQuery: rawQuery}
	aliasAfter(u)
	got, err := url.ParseQuery(u.RawQuery)
	if err != nil || !sameValues(got, want) {
		t.Fatalf("query %q: aliasAfter wrote %q = %v (%v), want %v", rawQuery, u.RawQuery, got, err, want)
	}
}

// checkSetDirectMessages: direct_messages is "true", once, under its proto
// name only; every other parameter stays as it was.
func checkSetDirectMessages(t *testing.T, rawQuery string, values url.Values) {
	t.Helper()
	want := maps.Clone(values)
	delete(want, "directMessages")
	want["direct_messages"] = []string{"true"}
	u := &url.URL{RawQuery: rawQuery}
	setDirectMessages(u)
	got, err := url.ParseQuery(u.RawQuery)
	if err != nil || !sameValues(got, want) {
		t.Fatalf("query %q: setDirectMessages wrote %q = %v (%v), want %v", rawQuery, u.RawQuery, got, err, want)
	}
}

func sameValues(a, b url.Values) bool {
	if len(a) == 0 && len(b) == 0 {
		return true
	}
	return reflect.DeepEqual(a, b)
}

// checkSocketCursor: the first of after_sequence, afterSequence and after
// that the query names decides; its (first) value is a decimal uint64,
// maybe padded with white space, or the error names it.
func checkSocketCursor(t *testing.T, values url.Values) {
	t.Helper()
	after, e := socketCursor(values)
	name := ""
	for _, n := range []string{afterSequenceParam, afterSequenceJSON, afterAlias} {
		if _, ok := values[n]; ok {
			name = n
			break
		}
	}
	if name == "" {
		if after != nil || e != nil {
			t.Fatalf("query %v names no cursor, yet socketCursor = %v, %+v", values, after, e)
		}
		return
	}
	digits := strings.TrimSpace(values.Get(name))
	want, err := strconv.ParseUint(digits, 10, 64)
	switch {
	case err != nil:
		if e == nil || e.Status != http.StatusBadRequest || e.Code != apierror.InvalidFieldValue || e.Field != name {
			t.Fatalf("cursor %s=%q: socketCursor = %v, %+v; want INVALID_FIELD_VALUE on %s", name, values.Get(name), after, e, name)
		}
	case e != nil || after == nil || *after != want:
		t.Fatalf("cursor %s=%q: socketCursor = %v, %+v; want %d", name, values.Get(name), after, e, want)
	default:
		if again, ok := parseSequence(strconv.FormatUint(*after, 10)); !ok || again != *after {
			t.Fatalf("cursor %d does not round-trip: %d %v", *after, again, ok)
		}
	}
}

// checkQueryRequest fills a request of route from q, as the generated
// handler does.
func checkQueryRequest(t *testing.T, rawQuery, route string, newRequest func() proto.Message, pathParams []string, q url.Values) {
	t.Helper()
	filter := &utilities.DoubleArray{}
	if len(pathParams) > 0 {
		var seqs [][]string
		for _, p := range pathParams {
			seqs = append(seqs, []string{p})
		}
		filter = utilities.NewDoubleArray(seqs)
	}
	req := newRequest()
	if err := runtime.PopulateQueryParameters(req, q, filter); err != nil {
		return // a 400; which one is errorHandler's business
	}
	fields := req.ProtoReflect().Descriptor().Fields()
	for key, vs := range q {
		fd := fields.ByName(protoreflect.Name(key))
		if fd == nil {
			fd = fields.ByJSONName(key)
		}
		if fd == nil || slices.Contains(pathParams, string(fd.Name())) {
			continue
		}
		if len(vs) != 1 {
			t.Fatalf("%s ?%s: %d values for %s accepted", route, rawQuery, len(vs), key)
		}
		if !parsesAs(fd, vs[0]) {
			t.Fatalf("%s ?%s: %s=%q is not a %s, yet filled %v", route, rawQuery, key, vs[0], fd.Kind(), req)
		}
	}
	again := newRequest()
	encoded := encodeQuery(req)
	if err := runtime.PopulateQueryParameters(again, encoded, filter); err != nil {
		t.Fatalf("%s ?%s: filled %v, encoded as %s, which fails: %v", route, rawQuery, req, encoded.Encode(), err)
	}
	// proto.Equal does not hold a NaN equal to itself; the encodings do.
	if !proto.Equal(req, again) && encodeQuery(again).Encode() != encoded.Encode() {
		t.Fatalf("%s ?%s: filled %v, encoded as %s, filled %v", route, rawQuery, req, encoded.Encode(), again)
	}
}

// parsesAs reports whether v is a value of a field of fd's kind.
func parsesAs(fd protoreflect.FieldDescriptor, v string) bool {
	var err error
	switch fd.Kind() {
	case protoreflect.BoolKind:
		_, err = strconv.ParseBool(v)
	case protoreflect.Uint32Kind:
		_, err = strconv.ParseUint(v, 10, 32)
	case protoreflect.Uint64Kind:
		_, err = strconv.ParseUint(v, 10, 64)
	case protoreflect.DoubleKind:
		_, err = strconv.ParseFloat(v, 64)
	case protoreflect.StringKind:
	default:
		return false // no query field of another kind yet: check it when there is one
	}
	return err == nil
}

// encodeQuery writes the populated fields of m as a query, by their proto
// names.
func encodeQuery(m proto.Message) url.Values {
	q := url.Values{}
	m.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		var s string
		switch fd.Kind() {
		case protoreflect.BoolKind:
			s = strconv.FormatBool(v.Bool())
		case protoreflect.Uint32Kind, protoreflect.Uint64Kind:
			s = strconv.FormatUint(v.Uint(), 10)
		case protoreflect.DoubleKind:
			s = strconv.FormatFloat(v.Float(), 'g', -1, 64)
		default:
			s = v.String()
		}
		q.Set(string(fd.Name()), s)
		return true
	})
	return q
}
