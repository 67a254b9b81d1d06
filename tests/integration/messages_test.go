package integration

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

var colorRE = regexp.MustCompile(`^#[0-9a-fA-F]{6}$`)

func TestPostListAndGetMessages(t *testing.T) {
	s := startStack(t)
	owner := s.signUp(t, "owner")
	bob := s.signUp(t, "bob")
	talk := s.createRoom(t, owner.token, "talk", "", "")
	other := s.createRoom(t, owner.token, "other", "", "")

	// Bob posts without joining.
	r := s.req(t, http.MethodPost, "/v1/rooms/"+talk.ID+"/messages", bob.token, map[string]string{"text": "first"})
	var first event
	mustStatus(t, r, http.StatusCreated, &first)
	if loc := r.header.Get("Location"); loc != "" && !strings.HasPrefix(loc, s.httpURL+"/") {
		t.Errorf("Location %q is not absolute", loc)
	}
	if first.Kind != "EVENT_KIND_MESSAGE" || !isUUID(first.ID) || first.Sequence == 0 || first.Text != "first" ||
		first.RoomID != talk.ID || first.Room != "talk" || first.SenderID != bob.ID || first.Sender != "BOB" ||
		!colorRE.MatchString(first.Color) {
		t.Errorf("posted %s", r.body)
	}
	parseTime(t, "createTime", first.CreateTime)

	var posted []event
	posted = append(posted, first)
	for i := 2; i <= 10; i++ {
		room := talk.ID
		if i%2 == 0 {
			room = "talk" // by name as well as by id
		}
		posted = append(posted, s.post(t, owner.token, room, fmt.Sprintf("message %d", i)))
	}
	for i := 1; i < len(posted); i++ {
		if posted[i].Sequence != posted[i-1].Sequence+1 {
			t.Errorf("sequences %v are not contiguous", sequences(posted))
			break
		}
	}
	exact := strings.Repeat("x", 4096)
	posted = append(posted, s.post(t, bob.token, talk.ID, exact))

	for _, c := range []struct {
		name, token, room string
		body              any
		status            int
		code, field       string
	}{
		{"no token", "", talk.ID, map[string]string{"text": "x"}, 401, "TOKEN_MISSING", ""},
		{"empty text", bob.token, talk.ID, map[string]string{"text": ""}, 400, "", "text"},
		{"no body", bob.token, talk.ID, nil, 400, "", "text"},
		{"text too long", bob.token, talk.ID, map[string]string{"text": exact + "x"}, 413, "MESSAGE_TOO_LONG", "text"},
		{"no such room", bob.token, "nowhere", map[string]string{"text": "x"}, 404, "ROOM_NOT_FOUND", "room"},
		{"unknown room id", bob.token, "00000000-0000-4000-8000-00000000abcd", map[string]string{"text": "x"}, 404, "ROOM_NOT_FOUND", "room"},
		{"malformed JSON", bob.token, talk.ID, `{"text":"x"`, 400, "MALFORMED_JSON", "-"},
		{"wrong type", bob.token, talk.ID, `{"text":["x"]}`, 400, "INVALID_FIELD_VALUE", "text"},
		{"unknown field", bob.token, talk.ID, `{"text":"x","message":"y"}`, 400, "UNKNOWN_FIELD", "message"},
	} {
		t.Run("post "+c.name, func(t *testing.T) {
			wantError(t, s.req(t, http.MethodPost, "/v1/rooms/"+c.room+"/messages", c.token, c.body), c.status, c.code, c.field)
		})
	}

	// List: the most recent, oldest first.
	all := s.listMessages(t, bob.token, talk.ID, "")
	if !slices.Equal(sequences(all.Messages), sequences(posted)) || all.HasOlder || all.HasNewer {
		t.Errorf("list = %v older %v newer %v, want %v", sequences(all.Messages), all.HasOlder, all.HasNewer, sequences(posted))
	}
	if got := all.Messages[0]; got.ID != first.ID || got.Text != "first" || got.Sender != "BOB" || got.SenderID != bob.ID {
		t.Errorf("listed first = %+v, want %+v", got, first)
	}
	last3 := s.listMessages(t, bob.token, "talk", "n=3")
	if !slices.Equal(sequences(last3.Messages), sequences(posted[len(posted)-3:])) || !last3.HasOlder || last3.HasNewer {
		t.Errorf("n=3 = %v older %v newer %v", sequences(last3.Messages), last3.HasOlder, last3.HasNewer)
	}

	// Page backwards, then forwards.
	var backwards []event
	before := uint64(0)
	for pages := 0; ; pages++ {
		q := "n=4"
		if before != 0 {
			q += "&before=" + itoa(before)
		}
		page := s.listMessages(t, bob.token, talk.ID, q)
		if len(page.Messages) == 0 || len(page.Messages) > 4 || pages > 4 {
			t.Fatalf("backward page %d = %+v", pages, page)
		}
		if before != 0 && !page.HasNewer {
			t.Errorf("a page before %d says nothing is newer", before)
		}
		backwards = append(page.Messages, backwards...)
		if !page.HasOlder {
			break
		}
		before = page.Messages[0].Sequence
	}
	forwards := s.forwardFrom(t, bob.token, talk.ID, posted[0].Sequence, 4)
	if !slices.Equal(sequences(backwards), sequences(posted)) || !slices.Equal(sequences(forwards), sequences(posted[1:])) {
		t.Errorf("paged backwards %v, forwards after %d %v, want %v", sequences(backwards), posted[0].Sequence, sequences(forwards), sequences(posted))
	}
	if all := s.allMessages(t, bob.token, talk.ID, 3); !slices.Equal(sequences(all), sequences(posted)) {
		t.Errorf("allMessages = %v", sequences(all))
	}
	mid := s.listMessages(t, bob.token, talk.ID, fmt.Sprintf("after=%d&n=2", posted[3].Sequence))
	if !slices.Equal(sequences(mid.Messages), sequences(posted[4:6])) || !mid.HasOlder || !mid.HasNewer {
		t.Errorf("after %d n=2 = %v older %v newer %v", posted[3].Sequence, sequences(mid.Messages), mid.HasOlder, mid.HasNewer)
	}
	for _, c := range []struct {
		query, token string
		status       int
		code, field  string
	}{
		{"before=3&after=1", bob.token, 400, "BEFORE_AND_AFTER", ""},
		{"n=1001", bob.token, 400, "PAGE_TOO_LARGE", "n"},
		{"n=-1", bob.token, 400, "", "n"},
		{"n=many", bob.token, 400, "", "n"},
		{"after=-5", bob.token, 400, "", "after"},
		{"", "", 401, "TOKEN_MISSING", ""},
	} {
		t.Run("list "+c.query, func(t *testing.T) {
			wantError(t, s.req(t, http.MethodGet, "/v1/rooms/"+talk.ID+"/messages?"+c.query, c.token, nil), c.status, c.code, c.field)
		})
	}
	wantError(t, s.req(t, http.MethodGet, "/v1/rooms/nowhere/messages", bob.token, nil), 404, "ROOM_NOT_FOUND", "room")
	if empty := s.listMessages(t, bob.token, other.ID, ""); len(empty.Messages) != 0 || empty.HasOlder || empty.HasNewer {
		t.Errorf("empty room lists %+v", empty)
	}
	if r := s.req(t, http.MethodGet, "/v1/rooms/"+other.ID+"/messages", bob.token, nil); !strings.Contains(string(r.body), `"messages":[]`) &&
		!strings.Contains(string(r.body), `"messages": []`) {
		t.Errorf("empty room body %s, want an empty messages array", r.body)
	}

	// Get one.
	var got event
	mustStatus(t, s.req(t, http.MethodGet, "/v1/rooms/"+talk.ID+"/messages/"+posted[4].ID, bob.token, nil), 200, &got)
	if got.ID != posted[4].ID || got.Text != posted[4].Text || got.Sequence != posted[4].Sequence {
		t.Errorf("get = %+v, want %+v", got, posted[4])
	}
	wantError(t, s.req(t, http.MethodGet, "/v1/rooms/"+talk.ID+"/messages/00000000-0000-4000-8000-00000000abcd", bob.token, nil), 404, "MESSAGE_NOT_FOUND", "message")
	wantError(t, s.req(t, http.MethodGet, "/v1/rooms/"+talk.ID+"/messages/not-a-uuid", bob.token, nil), 400, "INVALID_MESSAGE_ID", "message")
	wantError(t, s.req(t, http.MethodGet, "/v1/rooms/"+other.ID+"/messages/"+posted[4].ID, bob.token, nil), 404, "MESSAGE_NOT_FOUND", "message")
	wantError(t, s.req(t, http.MethodGet, "/v1/rooms/"+talk.ID+"/messages/"+posted[4].ID, "", nil), 401, "", "")
}

func TestEditDeleteAndPurgeMessages(t *testing.T) {
	s := startStack(t, withAdmins("root"))
	owner := s.signUp(t, "owner")
	bob := s.signUp(t, "bob")
	carol := s.signUp(t, "carol")
	root := s.signUp(t, "root")
	room := s.createRoom(t, owner.token, "edits", "", "")
	m1 := s.post(t, bob.token, room.ID, "original")
	m2 := s.post(t, bob.token, room.ID, "second")
	m3 := s.post(t, carol.token, room.ID, "third")
	msgPath := func(m event) string { return "/v1/rooms/" + room.ID + "/messages/" + m.ID }

	// Edit: the author only; earlier texts are kept, oldest first.
	var edited event
	mustStatus(t, s.req(t, http.MethodPatch, msgPath(m1), bob.token, map[string]string{"text": "edited once"}), 200, &edited)
	if edited.Text != "edited once" {
		t.Errorf("edit reply = %+v", edited)
	}
	mustStatus(t, s.req(t, http.MethodPatch, msgPath(m1), bob.token, map[string]string{"text": "edited twice"}), 200, nil)
	var got event
	mustStatus(t, s.req(t, http.MethodGet, msgPath(m1), carol.token, nil), 200, &got)
	if got.Text != "edited twice" || got.Sequence != m1.Sequence || got.UpdateTime == nil || got.Deleted ||
		len(got.PreviousVersions) != 2 || got.PreviousVersions[0].Text != "original" || got.PreviousVersions[1].Text != "edited once" {
		t.Errorf("edited message = %+v", got)
	}
	if got.UpdateTime != nil && !parseTime(t, "updateTime", *got.UpdateTime).After(parseTime(t, "createTime", got.CreateTime)) {
		t.Errorf("updateTime %s not after createTime %s", *got.UpdateTime, got.CreateTime)
	}
	if l := s.listMessages(t, carol.token, room.ID, ""); l.Messages[0].Text != "edited twice" {
		t.Errorf("listed after edit = %+v", l.Messages[0])
	}
	for _, c := range []struct {
		name, token string
		body        any
		status      int
		code, field string
	}{
		{"by the room owner", owner.token, map[string]string{"text": "x"}, 403, "NOT_AUTHOR", ""},
		{"by another user", carol.token, map[string]string{"text": "x"}, 403, "NOT_AUTHOR", ""},
		{"by an admin", root.token, map[string]string{"text": "x"}, 403, "NOT_AUTHOR", ""},
		{"anonymous", "", map[string]string{"text": "x"}, 401, "", ""},
		{"empty text", bob.token, map[string]string{"text": ""}, 400, "", "text"},
		{"text too long", bob.token, map[string]string{"text": strings.Repeat("y", 4097)}, 413, "MESSAGE_TOO_LONG", "text"},
		{"unknown field", bob.token, `{"txt":"x"}`, 400, "UNKNOWN_FIELD", "txt"},
	} {
		t.Run("edit "+c.name, func(t *testing.T) {
			wantError(t, s.req(t, http.MethodPatch, msgPath(m1), c.token, c.body), c.status, c.code, c.field)
		})
	}
	wantError(t, s.req(t, http.MethodPatch, "/v1/rooms/"+room.ID+"/messages/00000000-0000-4000-8000-00000000abcd", bob.token,
		map[string]string{"text": "x"}), 404, "MESSAGE_NOT_FOUND", "message")
	wantError(t, s.req(t, http.MethodPatch, "/v1/rooms/"+room.ID+"/messages/bogus", bob.token,
		map[string]string{"text": "x"}), 400, "INVALID_MESSAGE_ID", "message")

	// Delete: the author, the owner or an admin; a tombstone stays.
	wantError(t, s.req(t, http.MethodDelete, msgPath(m1), carol.token, nil), 403, "", "")
	wantError(t, s.req(t, http.MethodDelete, msgPath(m1), "", nil), 401, "", "")
	wantError(t, s.req(t, http.MethodDelete, "/v1/rooms/"+room.ID+"/messages/00000000-0000-4000-8000-00000000abcd", owner.token, nil), 404, "MESSAGE_NOT_FOUND", "message")
	wantError(t, s.req(t, http.MethodDelete, "/v1/rooms/"+room.ID+"/messages/bogus", owner.token, nil), 400, "INVALID_MESSAGE_ID", "message")
	// The proto leaves open whether the reply is the delete event or the
	// tombstone; either must name m1.
	var deleted event
	mustStatus(t, s.req(t, http.MethodDelete, msgPath(m1), bob.token, nil), 200, &deleted)
	isDeleteEvent := deleted.Kind == "EVENT_KIND_DELETE" && deleted.TargetID == m1.ID && deleted.TargetSequence == m1.Sequence
	isTombstone := deleted.Kind == "EVENT_KIND_MESSAGE" && deleted.ID == m1.ID && deleted.Deleted && deleted.Text == ""
	if !isDeleteEvent && !isTombstone {
		t.Errorf("delete reply = %+v, want the delete event for %s or its tombstone", deleted, m1.ID)
	}
	mustStatus(t, s.req(t, http.MethodDelete, msgPath(m2), owner.token, nil), 200, nil)
	mustStatus(t, s.req(t, http.MethodDelete, msgPath(m3), root.token, nil), 200, nil)
	l := s.listMessages(t, carol.token, room.ID, "")
	if len(l.Messages) != 3 {
		t.Fatalf("after deletes the list holds %+v, want 3 tombstones", l.Messages)
	}
	for i, want := range []event{m1, m2, m3} {
		if m := l.Messages[i]; m.ID != want.ID || m.Sequence != want.Sequence || !m.Deleted || m.Text != "" {
			t.Errorf("tombstone %d = %+v", i, m)
		}
	}
	got = event{} // the tombstone's JSON leaves its empty fields out
	mustStatus(t, s.req(t, http.MethodGet, msgPath(m1), carol.token, nil), 200, &got)
	if !got.Deleted || got.Text != "" || slices.ContainsFunc(got.PreviousVersions, func(v messageVersion) bool { return v.Text != "" }) {
		t.Errorf("deleted message = %+v, want a tombstone without its texts", got)
	}
	wantError(t, s.req(t, http.MethodPatch, msgPath(m1), bob.token, map[string]string{"text": "revive"}), 400, "MESSAGE_DELETED", "message")

	// Purge: the owner or an admin.
	var later []event
	for i := 0; i < 5; i++ {
		later = append(later, s.post(t, carol.token, room.ID, fmt.Sprintf("later %d", i)))
	}
	purgePath := "/v1/rooms/" + room.ID + "/messages:purge"
	wantError(t, s.req(t, http.MethodPost, purgePath, carol.token, map[string]string{}), 403, "NOT_ROOM_OWNER", "")
	wantError(t, s.req(t, http.MethodPost, purgePath, bob.token, map[string]string{}), 403, "NOT_ROOM_OWNER", "")
	wantError(t, s.req(t, http.MethodPost, purgePath, "", map[string]string{}), 401, "", "")
	wantError(t, s.req(t, http.MethodPost, "/v1/rooms/nowhere/messages:purge", owner.token, map[string]string{}), 404, "ROOM_NOT_FOUND", "room")
	var purged purgeReply
	mustStatus(t, s.req(t, http.MethodPost, purgePath, owner.token, map[string]any{"through_sequence": later[1].Sequence}), 200, &purged)
	if purged.Purged != 5 || purged.Event.Kind != "EVENT_KIND_PURGE" || purged.Event.PurgeThroughSequence != later[1].Sequence {
		t.Errorf("purge through %d = %+v, want 5 purged (3 tombstones, 2 messages)", later[1].Sequence, purged)
	}
	l = s.listMessages(t, carol.token, room.ID, "")
	if !slices.Equal(sequences(l.Messages), sequences(later[2:])) || l.HasOlder {
		t.Errorf("after purge: %v older %v, want %v", sequences(l.Messages), l.HasOlder, sequences(later[2:]))
	}
	wantError(t, s.req(t, http.MethodGet, msgPath(later[0]), carol.token, nil), 404, "MESSAGE_NOT_FOUND", "message")
	mustStatus(t, s.req(t, http.MethodPost, purgePath, root.token, map[string]string{}), 200, &purged)
	if purged.Purged != 3 {
		t.Errorf("admin purge of all = %+v, want 3", purged)
	}
	l = s.listMessages(t, carol.token, room.ID, "")
	if len(l.Messages) != 0 || l.HasOlder || l.HasNewer {
		t.Errorf("after purging all: %+v", l)
	}
	// Numbering goes on after a purge.
	if next := s.post(t, bob.token, room.ID, "after the purge"); next.Sequence <= later[4].Sequence {
		t.Errorf("sequence after purge %d, last before %d", next.Sequence, later[4].Sequence)
	}
}

func TestDirectMessages(t *testing.T) {
	s := startStack(t)
	alice := s.signUp(t, "alice")
	bob := s.signUp(t, "bob")
	carol := s.signUp(t, "carol")
	send := func(from account, to, text string) event {
		t.Helper()
		var ev event
		r := s.req(t, http.MethodPost, "/v1/users/"+to+"/messages", from.token, map[string]string{"text": text})
		mustStatus(t, r, http.StatusCreated, &ev)
		if ev.Kind != "EVENT_KIND_MESSAGE" || !isUUID(ev.ID) || ev.Text != text || ev.SenderID != from.ID || ev.Room != "" || ev.RoomID != "" {
			t.Errorf("sent %s", r.body)
		}
		return ev
	}
	d1 := send(alice, bob.ID, "psst, bob")
	d2 := send(alice, "bob", "by name")
	d3 := send(carol, "bob", "from carol")
	send(alice, "carol", "hi carol")
	for _, d := range []event{d1, d2, d3} {
		if d.RecipientID != bob.ID || d.Recipient != "bob" {
			t.Errorf("direct message %+v, want recipient bob", d)
		}
	}
	if d2.Sequence != d1.Sequence+1 || d3.Sequence != d2.Sequence+1 {
		t.Errorf("inbox sequences %d %d %d, want contiguous", d1.Sequence, d2.Sequence, d3.Sequence)
	}

	var inbox messageList
	mustStatus(t, s.req(t, http.MethodGet, "/v1/direct-messages", bob.token, nil), 200, &inbox)
	if !slices.Equal(texts(inbox.Messages), []string{"psst, bob", "by name", "from carol"}) || inbox.HasOlder || inbox.HasNewer {
		t.Errorf("bob's inbox = %v", texts(inbox.Messages))
	}
	if inbox.Messages[2].Sender != "CAROL" || inbox.Messages[2].SenderID != carol.ID {
		t.Errorf("from carol = %+v", inbox.Messages[2])
	}
	// A sender's inbox holds a copy of what they sent, so a conversation
	// reads back whole; each copy names the recipient's message.
	mustStatus(t, s.req(t, http.MethodGet, "/v1/direct-messages", alice.token, nil), 200, &inbox)
	if !slices.Equal(texts(inbox.Messages), []string{"psst, bob", "by name", "hi carol"}) {
		t.Errorf("alice's inbox holds %v, want her three sent messages", texts(inbox.Messages))
	} else if inbox.Messages[0].SenderID != alice.ID || inbox.Messages[0].RecipientID != bob.ID || inbox.Messages[0].TargetID != d1.ID {
		t.Errorf("alice's copy %+v, want sender alice, recipient bob, target %s", inbox.Messages[0], d1.ID)
	}
	mustStatus(t, s.req(t, http.MethodGet, "/v1/direct-messages", carol.token, nil), 200, &inbox)
	if !slices.Equal(texts(inbox.Messages), []string{"from carol", "hi carol"}) {
		t.Errorf("carol's inbox = %v", texts(inbox.Messages))
	}
	mustStatus(t, s.req(t, http.MethodGet, "/v1/direct-messages?n=2", bob.token, nil), 200, &inbox)
	if !slices.Equal(texts(inbox.Messages), []string{"by name", "from carol"}) || !inbox.HasOlder {
		t.Errorf("n=2 = %v older %v", texts(inbox.Messages), inbox.HasOlder)
	}
	mustStatus(t, s.req(t, http.MethodGet, "/v1/direct-messages?before="+itoa(d2.Sequence), bob.token, nil), 200, &inbox)
	if !slices.Equal(texts(inbox.Messages), []string{"psst, bob"}) || inbox.HasOlder || !inbox.HasNewer {
		t.Errorf("before %d = %v", d2.Sequence, texts(inbox.Messages))
	}
	mustStatus(t, s.req(t, http.MethodGet, "/v1/direct-messages?after="+itoa(d1.Sequence), bob.token, nil), 200, &inbox)
	if !slices.Equal(texts(inbox.Messages), []string{"by name", "from carol"}) || !inbox.HasOlder || inbox.HasNewer {
		t.Errorf("after %d = %v", d1.Sequence, texts(inbox.Messages))
	}

	wantError(t, s.req(t, http.MethodPost, "/v1/users/nobody/messages", alice.token, map[string]string{"text": "x"}), 404, "USER_NOT_FOUND", "user")
	wantError(t, s.req(t, http.MethodPost, "/v1/users/bob/messages", alice.token, map[string]string{"text": ""}), 400, "", "text")
	wantError(t, s.req(t, http.MethodPost, "/v1/users/bob/messages", alice.token, map[string]string{"text": strings.Repeat("z", 4097)}), 413, "MESSAGE_TOO_LONG", "text")
	wantError(t, s.req(t, http.MethodPost, "/v1/users/bob/messages", "", map[string]string{"text": "x"}), 401, "", "")
	wantError(t, s.req(t, http.MethodPost, "/v1/users/bob/messages", alice.token, `{"text":"x","to":"y"}`), 400, "UNKNOWN_FIELD", "to")
	wantError(t, s.req(t, http.MethodGet, "/v1/direct-messages", "", nil), 401, "", "")
	wantError(t, s.req(t, http.MethodGet, "/v1/direct-messages?before=2&after=1", bob.token, nil), 400, "BEFORE_AND_AFTER", "")
	wantError(t, s.req(t, http.MethodGet, "/v1/direct-messages?n=1001", bob.token, nil), 400, "PAGE_TOO_LARGE", "n")
	// Direct messages need a user token; a room token will not do.
	rm := s.createRoom(t, alice.token, "open", "", "")
	guest := s.roomToken(t, rm.ID, "", "guest")
	wantError(t, s.req(t, http.MethodPost, "/v1/users/bob/messages", guest.Token, map[string]string{"text": "x"}), 403, "USER_TOKEN_REQUIRED", "")
	wantError(t, s.req(t, http.MethodGet, "/v1/direct-messages:subscribe", guest.Token, nil), 403, "USER_TOKEN_REQUIRED", "")
}

func TestDirectMessageStreams(t *testing.T) {
	s := startStack(t)
	alice := s.signUp(t, "alice")
	bob := s.signUp(t, "bob")
	carol := s.signUp(t, "carol")
	earlier := s.req(t, http.MethodPost, "/v1/users/bob/messages", alice.token, map[string]string{"text": "before the stream"})
	mustStatus(t, earlier, 201, nil)

	bobStream := s.openStream(t, "/v1/direct-messages:subscribe", bob.token)
	carolStream := s.openStream(t, "/v1/direct-messages:subscribe", carol.token)
	for name, st := range map[string]*stream{"bob": bobStream, "carol": carolStream} {
		if code := st.waitStatus(t); code != 200 {
			t.Fatalf("%s's stream: status %d", name, code)
		}
		// The first write comes as soon as the stream is in place.
		if l, ok := st.next(t, 10*time.Second); !ok || l.Result == nil {
			t.Fatalf("%s's stream: first line %q", name, l.raw)
		}
	}

	s.req(t, http.MethodPost, "/v1/users/bob/messages", alice.token, map[string]string{"text": "live for bob"})
	s.req(t, http.MethodPost, "/v1/users/carol/messages", alice.token, map[string]string{"text": "live for carol"})
	s.req(t, http.MethodPost, "/v1/users/bob/messages", carol.token, map[string]string{"text": "carol to bob"})

	bobGot := messages(bobStream.collect(t, func(evs []event) bool { return len(messages(evs)) >= 2 }))
	if !slices.Equal(texts(bobGot), []string{"live for bob", "carol to bob"}) {
		t.Errorf("bob's stream = %v, want only his live messages", texts(bobGot))
	}
	for _, m := range bobGot {
		if m.RecipientID != bob.ID {
			t.Errorf("bob's stream carries %+v", m)
		}
	}
	carolGot := messages(carolStream.collect(t, func(evs []event) bool { return len(messages(evs)) >= 1 }))
	if !slices.Equal(texts(carolGot), []string{"live for carol"}) {
		t.Errorf("carol's stream = %v", texts(carolGot))
	}

	// Resuming from the start: history, then live.
	resumed := s.openStream(t, "/v1/direct-messages:subscribe?after_sequence=0", bob.token)
	hist := messages(resumed.collect(t, func(evs []event) bool { return len(messages(evs)) >= 3 }))
	if !slices.Equal(texts(hist), []string{"before the stream", "live for bob", "carol to bob"}) {
		t.Errorf("resumed stream = %v", texts(hist))
	}
	s.req(t, http.MethodPost, "/v1/users/bob/messages", alice.token, map[string]string{"text": "after resume"})
	if next := messages(resumed.collect(t, func(evs []event) bool { return len(messages(evs)) >= 1 })); next[0].Text != "after resume" {
		t.Errorf("live after history = %v", texts(next))
	}

	wantError(t, s.req(t, http.MethodGet, "/v1/direct-messages:subscribe", "", nil), 401, "", "")
}

func TestRoomStreamResumesWithoutGapOrDuplicate(t *testing.T) {
	s := startStack(t)
	owner := s.signUp(t, "owner")
	bob := s.signUp(t, "bob")
	room := s.createRoom(t, owner.token, "stream", "", "")
	var posted []event
	for i := 1; i <= 5; i++ {
		posted = append(posted, s.post(t, owner.token, room.ID, fmt.Sprintf("m%d", i)))
	}

	// History after m2, then live.
	st := s.openStream(t, "/v1/rooms/"+room.ID+":subscribe?after_sequence="+itoa(posted[1].Sequence), bob.token)
	if code := st.waitStatus(t); code != 200 {
		t.Fatalf("status %d", code)
	}
	got := messages(st.collect(t, func(evs []event) bool { return len(messages(evs)) >= 3 }))
	if !slices.Equal(sequences(got), sequences(posted[2:])) {
		t.Errorf("history = %v, want %v", sequences(got), sequences(posted[2:]))
	}
	for i := 6; i <= 7; i++ {
		posted = append(posted, s.post(t, owner.token, room.ID, fmt.Sprintf("m%d", i)))
	}
	got = messages(st.collect(t, func(evs []event) bool { return len(messages(evs)) >= 2 }))
	if !slices.Equal(sequences(got), sequences(posted[5:])) {
		t.Errorf("live = %v, want %v", sequences(got), sequences(posted[5:]))
	}

	// Edits and deletes arrive live.
	mustStatus(t, s.req(t, http.MethodPatch, "/v1/rooms/"+room.ID+"/messages/"+posted[6].ID, owner.token, map[string]string{"text": "m7 edited"}), 200, nil)
	mustStatus(t, s.req(t, http.MethodDelete, "/v1/rooms/"+room.ID+"/messages/"+posted[5].ID, owner.token, nil), 200, nil)
	var kinds []string
	st.collect(t, func(evs []event) bool {
		kinds = kinds[:0]
		for _, e := range evs {
			switch {
			case e.Kind == "EVENT_KIND_EDIT" && e.TargetID == posted[6].ID && e.Text == "m7 edited":
				kinds = append(kinds, "edit")
			case e.Kind == "EVENT_KIND_DELETE" && e.TargetID == posted[5].ID && e.TargetSequence == posted[5].Sequence:
				kinds = append(kinds, "delete")
			}
		}
		return len(kinds) == 2
	})

	// A subscription opened while messages are being posted: every one of
	// them exactly once, in order, whichever way the race goes.
	last := s.listMessages(t, bob.token, room.ID, "n=1").Messages
	from := last[len(last)-1].Sequence
	const n = 40
	errs := make(chan error, 1)
	go func() {
		for i := 0; i < n; i++ {
			r, err := s.tryReq(http.MethodPost, "/v1/rooms/"+room.ID+"/messages", owner.token, map[string]string{"text": fmt.Sprintf("race %d", i)})
			if err == nil && r.status != 201 {
				err = fmt.Errorf("post %d: %v", i, r)
			}
			if err != nil {
				errs <- err
				return
			}
		}
		errs <- nil
	}()
	racing := s.openStream(t, "/room/"+room.ID+"/subscribe?after_sequence="+itoa(from), bob.token)
	if code := racing.waitStatus(t); code != http.StatusAccepted {
		t.Fatalf("seed route status %d, want 202", code)
	}
	raced := messages(racing.collect(t, func(evs []event) bool { return len(messages(evs)) >= n }))
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	for i, m := range raced {
		if want := fmt.Sprintf("race %d", i); m.Text != want || (i > 0 && m.Sequence <= raced[i-1].Sequence) {
			t.Fatalf("raced stream %v / %v: message %d is %q, want %q in increasing sequence", texts(raced), sequences(raced), i, m.Text, want)
		}
	}
	if len(raced) != n {
		t.Errorf("got %d messages, want %d", len(raced), n)
	}

	// Without a resume point: live only.
	live := s.openStream(t, "/v1/rooms/"+room.ID+":subscribe", bob.token)
	if l, ok := live.next(t, 10*time.Second); !ok || l.Result == nil || len(messages(l.Result.Events)) != 0 {
		t.Fatalf("first write of a live-only stream = %q, want no history", l.raw)
	}
	s.post(t, owner.token, room.ID, "only live")
	if got := messages(live.collect(t, func(evs []event) bool { return len(messages(evs)) >= 1 })); got[0].Text != "only live" {
		t.Errorf("live-only stream = %v", texts(got))
	}
}

// A stream ends when its reader loses access: PERMISSION_DENIED when removed
// from a private room, NOT_FOUND when the room is deleted.
func TestRoomStreamsEndWhenAccessEnds(t *testing.T) {
	s := startStack(t)
	owner := s.signUp(t, "owner")
	bob := s.signUp(t, "bob")
	room := s.createRoom(t, owner.token, "closing", "VISIBILITY_PRIVATE", "closing-pw")
	mustStatus(t, s.req(t, http.MethodPost, "/v1/rooms/"+room.ID+"/members", owner.token, map[string]string{"user": "bob"}), 200, nil)

	bobs := s.openStream(t, "/v1/rooms/"+room.ID+":subscribe", bob.token)
	owners := s.openStream(t, "/v1/rooms/"+room.ID+":subscribe", owner.token)
	for _, st := range []*stream{bobs, owners} {
		if code := st.waitStatus(t); code != 200 {
			t.Fatalf("status %d", code)
		}
		st.next(t, 10*time.Second)
	}
	endsWith := func(st *stream, grpcCode string) {
		t.Helper()
		var last streamLine
		for {
			l, ok := st.next(t, 10*time.Second)
			if !ok {
				break
			}
			last = l
		}
		var e struct {
			GRPCCode string `json:"grpc_code"`
		}
		if last.Error == nil || json.Unmarshal(*last.Error, &e) != nil || e.GRPCCode != grpcCode {
			t.Errorf("stream ended with %q, want an error line with grpc_code %s", last.raw, grpcCode)
		}
	}
	mustStatus(t, s.req(t, http.MethodDelete, "/v1/rooms/"+room.ID+"/members/bob", owner.token, nil), 200, nil)
	endsWith(bobs, "PERMISSION_DENIED")
	mustStatus(t, s.req(t, http.MethodDelete, "/v1/rooms/"+room.ID, owner.token, nil), 200, nil)
	endsWith(owners, "NOT_FOUND")

	// A public room turned private: the non-members' streams end.
	open := s.createRoom(t, owner.token, "turning", "", "")
	carol := s.signUp(t, "carol")
	carols := s.openStream(t, "/room/"+open.ID+"/subscribe", carol.token)
	if code := carols.waitStatus(t); code != http.StatusAccepted {
		t.Fatalf("status %d", code)
	}
	carols.next(t, 10*time.Second)
	mustStatus(t, s.req(t, http.MethodPatch, "/v1/rooms/"+open.ID, owner.token,
		map[string]string{"visibility": "VISIBILITY_PRIVATE", "password": "turning-pw"}), 200, nil)
	endsWith(carols, "PERMISSION_DENIED")

	// A deleted user's streams end.
	dave := s.signUp(t, "dave")
	daves := s.openStream(t, "/v1/direct-messages:subscribe", dave.token)
	if code := daves.waitStatus(t); code != 200 {
		t.Fatalf("status %d", code)
	}
	daves.next(t, 10*time.Second)
	mustStatus(t, s.req(t, http.MethodDelete, "/v1/users/me", dave.token, nil), 200, nil)
	endsWith(daves, "UNAUTHENTICATED")
}

// Everyone sees one order: concurrent posters, several subscribers; every
// subscriber gets every message once, in the same order, numbered without
// gaps.
func TestConcurrentPostersOneOrderForEverySubscriber(t *testing.T) {
	s := startStack(t)
	owner := s.signUp(t, "owner")
	room := s.createRoom(t, owner.token, "busy", "", "")
	var posters []account
	for i := 0; i < 4; i++ {
		posters = append(posters, s.signUp(t, fmt.Sprintf("poster%d", i)))
	}
	var subs []*stream
	for i := 0; i < 3; i++ {
		reader := s.signUp(t, fmt.Sprintf("reader%d", i))
		st := s.openStream(t, "/v1/rooms/"+room.ID+":subscribe", reader.token)
		if code := st.waitStatus(t); code != 200 {
			t.Fatalf("status %d", code)
		}
		st.next(t, 10*time.Second) // the stream is in place
		subs = append(subs, st)
	}
	const each = 50
	errs := make(chan error, len(posters))
	for _, p := range posters {
		go func() {
			for i := 0; i < each; i++ {
				r, err := s.tryReq(http.MethodPost, "/v1/rooms/"+room.ID+"/messages", p.token,
					map[string]string{"text": fmt.Sprintf("%s %d", p.Username, i)})
				if err == nil && r.status != 201 {
					err = fmt.Errorf("%s post %d: %v", p.Username, i, r)
				}
				if err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range posters {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	total := each * len(posters)
	var first []event
	for i, st := range subs {
		got := messages(st.collect(t, func(evs []event) bool { return len(messages(evs)) >= total }))
		if len(got) != total {
			t.Errorf("subscriber %d got %d messages, want %d", i, len(got), total)
		}
		for j := 1; j < len(got); j++ {
			if got[j].Sequence != got[j-1].Sequence+1 {
				t.Errorf("subscriber %d: sequence %d after %d", i, got[j].Sequence, got[j-1].Sequence)
				break
			}
		}
		if i == 0 {
			first = got
		} else if !slices.Equal(texts(got), texts(first)) {
			t.Errorf("subscriber %d saw another order than subscriber 0", i)
		}
	}
	// Each poster's own messages keep their order.
	next := map[string]int{}
	for _, m := range first {
		var name string
		var n int
		fmt.Sscanf(m.Text, "%s %d", &name, &n)
		if n != next[name] {
			t.Errorf("%s's message %d came where %d was due", name, n, next[name])
		}
		next[name] = n + 1
	}
	if history := s.allMessages(t, owner.token, room.ID, 1000); !slices.Equal(texts(history), texts(first)) {
		t.Errorf("history order differs from the streamed order")
	}
}
