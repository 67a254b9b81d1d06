package gateway

import (
	"encoding/json"
	"reflect"
	"testing"

	parleyv1 "parley/gateway/gen/parley/v1"

	"google.golang.org/protobuf/proto"
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
		jsonEqual(t, got, marshalJSON(page))
	}
	chunk := map[string]proto.Message{"result": &parleyv1.SubscribeResponse{Events: sampleEvents()}}
	got, ok := marshalEvents(chunk)
	if !ok {
		t.Fatal("a stream line was not encoded through the cache")
	}
	jsonEqual(t, got, []byte(`{"result":`+string(marshalJSON(chunk["result"]))+`}`))
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
	jsonEqual(t, after, marshalJSON(e))
	if string(before) == string(after) {
		t.Error("the edited event got the old encoding")
	}
}
