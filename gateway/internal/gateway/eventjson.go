package gateway

import (
	"bytes"
	"strconv"
	"sync"

	parleyv1 "parley/gateway/gen/parley/v1"

	"google.golang.org/protobuf/proto"
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
// exactly protojson's encoding of that event. Safe for concurrent use;
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
		return marshalJSON(e)
	}
	*kb = key
	c.mu.Lock()
	b, ok := c.entries[string(key)]
	c.mu.Unlock()
	if ok {
		return b
	}
	b = marshalJSON(e)
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
	case map[string]proto.Message:
		// A stream's line, {"result": SubscribeResponse}.
		resp, isEvents := m["result"].(*parleyv1.SubscribeResponse)
		if len(m) != 1 || !isEvents {
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
