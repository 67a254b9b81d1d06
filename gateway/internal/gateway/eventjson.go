package gateway

import (
	"bytes"
	"encoding/json"
	"strconv"
	"sync"

	parleyv1 "parley/gateway/gen/parley/v1"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// eventJSONCacheSize bounds the cache of encoded events (entries; all are
// dropped when it is full).
const eventJSONCacheSize = 20000

// eventJSON encodes events as JSON once: a history page that many clients
// read, and an event fanned out to many NDJSON, SSE or WebSocket streams,
// cost one protojson encoding (the gateway's largest cost per request)
// instead of one per reader. The key is the event's deterministic binary
// encoding, so equal events share one entry and any difference (an edit,
// a tombstone, a timestamp) is a different entry: what is served is always
// exactly protojson's encoding of that event (eventJSONOptions). Safe for concurrent use;
// returned slices are shared and must not be modified.
type eventJSON struct {
	mu      sync.Mutex
	entries map[string][]byte
	max     int
}

var encodedEvents = &eventJSON{entries: map[string][]byte{}, max: eventJSONCacheSize}

var keyOptions = proto.MarshalOptions{Deterministic: true}

// keyBuffers recycle the buffers keys are encoded into: a key is only
// copied (into a string) when it is stored.
var keyBuffers = sync.Pool{New: func() any { return new([]byte) }}

func (c *eventJSON) marshal(e *parleyv1.Event) []byte {
	kb := keyBuffers.Get().(*[]byte)
	defer keyBuffers.Put(kb)
	key, err := keyOptions.MarshalAppend((*kb)[:0], e)
	if err != nil {
		return marshalEventJSON(e)
	}
	*kb = key
	c.mu.Lock()
	b, ok := c.entries[string(key)]
	c.mu.Unlock()
	if ok {
		return b
	}
	b = marshalEventJSON(e)
	c.mu.Lock()
	if len(c.entries) >= c.max {
		clear(c.entries)
	}
	c.entries[string(key)] = b
	c.mu.Unlock()
	return b
}

// appendEvents appends `"name":[e1,e2,...]` to buf, growing it once.
func appendEvents(buf *bytes.Buffer, name string, list []*parleyv1.Event) {
	encoded := make([][]byte, len(list))
	size := len(name) + 4
	for i, e := range list {
		encoded[i] = encodedEvents.marshal(e)
		size += len(encoded[i]) + 1
	}
	// Room for what marshalEvents writes around the list, too.
	buf.Grow(size + 64)
	buf.WriteByte('"')
	buf.WriteString(name)
	buf.WriteString(`":[`)
	for i, b := range encoded {
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.Write(b)
	}
	buf.WriteByte(']')
}

// marshalEvents encodes the responses made of events through the cache,
// with the fields protojson would write, in its order; ok is false for
// anything else.
func marshalEvents(v any) (b []byte, ok bool) {
	var buf bytes.Buffer
	switch m := v.(type) {
	case *parleyv1.ListMessagesResponse:
		buf.WriteByte('{')
		appendEvents(&buf, "messages", m.GetMessages())
		buf.WriteString(`,"hasOlder":`)
		buf.WriteString(strconv.FormatBool(m.GetHasOlder()))
		buf.WriteString(`,"hasNewer":`)
		buf.WriteString(strconv.FormatBool(m.GetHasNewer()))
		buf.WriteByte('}')
	case map[string]any, map[string]proto.Message:
		// A stream's line, {"result": SubscribeResponse}: grpc-gateway
		// hands it over as a map[string]any.
		resp, isEvents := streamLine(m)
		if !isEvents {
			return nil, false
		}
		buf.WriteString(`{"result":{`)
		appendEvents(&buf, "events", resp.GetEvents())
		buf.WriteString(`}}`)
	default:
		return nil, false
	}
	return buf.Bytes(), true
}

// streamLine is the SubscribeResponse of a stream line {"result": ...}.
func streamLine(v any) (*parleyv1.SubscribeResponse, bool) {
	var result any
	switch m := v.(type) {
	case map[string]any:
		if len(m) != 1 {
			return nil, false
		}
		result = m["result"]
	case map[string]proto.Message:
		if len(m) != 1 {
			return nil, false
		}
		result = m["result"]
	}
	resp, ok := result.(*parleyv1.SubscribeResponse)
	return resp, ok
}

var eventDescriptor = (&parleyv1.Event{}).ProtoReflect().Descriptor()

// marshalWithEvents writes a response: an event, or a message holding
// events (JoinResponse, PollResponse, ...), with its events as
// eventJSONOptions writes them and every other field as jsonOptions does;
// ok is false for a message without events.
func marshalWithEvents(m proto.Message) (b []byte, ok bool) {
	if e, isEvent := m.(*parleyv1.Event); isEvent {
		return encodedEvents.marshal(e), true
	}
	msg := m.ProtoReflect()
	var eventFields []protoreflect.FieldDescriptor
	fields := msg.Descriptor().Fields()
	for i := 0; i < fields.Len(); i++ {
		if f := fields.Get(i); f.Message() != nil && f.Message().FullName() == eventDescriptor.FullName() {
			eventFields = append(eventFields, f)
		}
	}
	if len(eventFields) == 0 {
		return nil, false
	}
	rest := proto.Clone(m).ProtoReflect()
	for _, f := range eventFields {
		rest.Clear(f)
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(marshalJSON(rest.Interface()), &obj); err != nil {
		return nil, false
	}
	for _, f := range eventFields {
		switch {
		case f.IsList():
			list := msg.Get(f).List()
			var buf bytes.Buffer
			buf.WriteByte('[')
			for i := 0; i < list.Len(); i++ {
				if i > 0 {
					buf.WriteByte(',')
				}
				buf.Write(encodedEvents.marshal(list.Get(i).Message().Interface().(*parleyv1.Event)))
			}
			buf.WriteByte(']')
			obj[f.JSONName()] = buf.Bytes()
		case msg.Has(f):
			obj[f.JSONName()] = encodedEvents.marshal(msg.Get(f).Message().Interface().(*parleyv1.Event))
		default:
			obj[f.JSONName()] = json.RawMessage("null")
		}
	}
	b, err := json.Marshal(obj)
	return b, err == nil
}
