package gateway

import (
	"encoding/json"
	"reflect"
	"testing"

	parleyv1 "parley/gateway/gen/parley/v1"

	"google.golang.org/protobuf/types/known/timestamppb"
)

// jsonEqual compares two JSON documents as values (protojson varies its
// whitespace on purpose).
func jsonEqual(t *testing.T, got, want []byte) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("got invalid JSON %s: %v", got, err)
	}
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatalf("want invalid JSON %s: %v", want, err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

func sampleEvents() []*parleyv1.Event {
	return []*parleyv1.Event{
		{Kind: parleyv1.EventKind_EVENT_KIND_MESSAGE, Room: "cafe", RoomId: "r1", Sequence: 7, Id: "m7",
			Sender: "ann", SenderId: "u1", Text: "héllo \"quoted\" <tag>", CreateTime: timestamppb.New(timestamppb.Now().AsTime()), Color: "#e6194b"},
		{Kind: parleyv1.EventKind_EVENT_KIND_MESSAGE, Sequence: 8, Id: "m8", Text: "now", UpdateTime: timestamppb.Now(),
			PreviousVersions: []*parleyv1.MessageVersion{{Text: "before", CreateTime: timestamppb.Now()}}},
		{Kind: parleyv1.EventKind_EVENT_KIND_MESSAGE, Sequence: 9, Id: "m9", Deleted: true},
		{Kind: parleyv1.EventKind_EVENT_KIND_GAP, GapFirstSequence: 10, GapLastSequence: 12},
	}
}

func TestCachedEventJSONIsProtojsonsEncoding(t *testing.T) {
	page := &parleyv1.ListMessagesResponse{Messages: sampleEvents(), HasOlder: true}
	for round := 0; round < 2; round++ { // the second round comes from the cache
		got, ok := marshalEvents(page)
		if !ok {
			t.Fatal("a message page was not encoded through the cache")
		}
		jsonEqual(t, got, leanPage(t, page))
	}
	// grpc-gateway hands a stream line over as a map[string]any.
	events := sampleEvents()
	chunk := map[string]any{"result": &parleyv1.SubscribeResponse{Events: events}}
	got, ok := marshalEvents(chunk)
	if !ok {
		t.Fatal("a stream line was not encoded through the cache")
	}
	jsonEqual(t, got, []byte(`{"result":`+string(eventsOnlyJSON(t, events))+`}`))
	empty, _ := marshalEvents(&parleyv1.ListMessagesResponse{})
	jsonEqual(t, empty, marshalJSON(&parleyv1.ListMessagesResponse{}))
	if _, ok := marshalEvents(&parleyv1.Room{}); ok {
		t.Error("a room went through the event path")
	}
}

func TestAnEditedEventIsNeverServedFromItsOldEntry(t *testing.T) {
	e := &parleyv1.Event{Kind: parleyv1.EventKind_EVENT_KIND_MESSAGE, Sequence: 1, Id: "m1", Text: "first"}
	before := encodedEvents.marshal(e)
	e.Text = "second"
	e.UpdateTime = timestamppb.Now()
	after := encodedEvents.marshal(e)
	jsonEqual(t, after, marshalEventJSON(e))
	if string(before) == string(after) {
		t.Error("the edited event got the old encoding")
	}
}

// eventsOnlyJSON is {"events":[...]} with each event as protojson writes it
// by default: only the fields it sets.
func eventsOnlyJSON(t *testing.T, events []*parleyv1.Event) []byte {
	t.Helper()
	var list []json.RawMessage
	for _, e := range events {
		list = append(list, marshalEventJSON(e))
	}
	b, err := json.Marshal(map[string]any{"events": list})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// leanPage is a message page as the gateway must write it: its events
// lean, its own fields all present.
func leanPage(t *testing.T, page *parleyv1.ListMessagesResponse) []byte {
	t.Helper()
	list := []json.RawMessage{}
	for _, e := range page.GetMessages() {
		list = append(list, marshalEventJSON(e))
	}
	b, err := json.Marshal(map[string]any{"messages": list, "hasOlder": page.GetHasOlder(), "hasNewer": page.GetHasNewer()})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// An event carries only the fields its kind sets, alone and inside any
// response; the response's own fields stay, set or not.
func TestEventsCarryOnlyTheirKindsFieldsInEveryResponse(t *testing.T) {
	typing := &parleyv1.Event{Kind: parleyv1.EventKind_EVENT_KIND_TYPING, Room: "cafe", Sender: "ann"}
	b, ok := marshalWithEvents(typing)
	if !ok {
		t.Fatal("an event was not encoded as one")
	}
	jsonEqual(t, b, []byte(`{"kind":"EVENT_KIND_TYPING","room":"cafe","sender":"ann"}`))
	b, ok = marshalWithEvents(&parleyv1.PollResponse{Events: []*parleyv1.Event{typing}})
	if !ok {
		t.Fatal("a poll response was not encoded with lean events")
	}
	jsonEqual(t, b, []byte(`{"events":[{"kind":"EVENT_KIND_TYPING","room":"cafe","sender":"ann"}],"nextAfterSequence":"0"}`))
	b, _ = marshalWithEvents(&parleyv1.JoinResponse{})
	jsonEqual(t, b, []byte(`{"event":null}`))
	if _, ok := marshalWithEvents(&parleyv1.Room{}); ok {
		t.Error("a room went through the event path")
	}
}
