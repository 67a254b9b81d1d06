package integration

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// Sign up, sign in, sign out and renew, over REST.
func TestSignUpSignInSignOutAndRenew(t *testing.T) {
	s := startStack(t)
	start := time.Now().Add(-2 * time.Second)

	r := s.req(t, http.MethodPost, "/v1/users", "", map[string]string{
		"username": "alice", "password": "correct horse", "display_name": "Alice A.",
	})
	var alice user
	mustStatus(t, r, http.StatusCreated, &alice)
	if !isUUID(alice.ID) || alice.Username != "alice" || alice.DisplayName != "Alice A." {
		t.Errorf("sign up = %s", r.body)
	}
	if ct := parseTime(t, "createTime", alice.CreateTime); ct.Before(start) || ct.After(time.Now().Add(2*time.Second)) {
		t.Errorf("createTime %v is not now", ct)
	}
	if loc := r.header.Get("Location"); loc != s.httpURL+"/v1/users/"+alice.ID {
		t.Errorf("Location = %q, want %s/v1/users/%s", loc, s.httpURL, alice.ID)
	}
	// The display name defaults to the username.
	var bob user
	mustStatus(t, s.req(t, http.MethodPost, "/v1/users", "", map[string]string{"username": "bob", "password": "bob-password"}),
		http.StatusCreated, &bob)
	if bob.DisplayName != "bob" {
		t.Errorf("default display name = %q, want bob", bob.DisplayName)
	}

	for _, c := range []struct {
		name        string
		body        any
		status      int
		code, field string
	}{
		{"taken username", map[string]string{"username": "alice", "password": "another-pw"}, 409, "", "username"},
		{"no username", map[string]string{"password": "a-password"}, 400, "", "username"},
		{"bad username", map[string]string{"username": "no spaces!", "password": "a-password"}, 400, "", "username"},
		{"username shaped like a UUID", map[string]string{"username": "0b7c6f3e-3c1a-4d59-9a57-6a1f0e8f2d10", "password": "a-password"}, 400, "", "username"},
		{"username too long", map[string]string{"username": strings.Repeat("u", 65), "password": "a-password"}, 400, "", "username"},
		{"no password", map[string]string{"username": "carol"}, 400, "", "password"},
		{"short password", map[string]string{"username": "carol", "password": "1234567"}, 400, "", "password"},
		{"long password", map[string]string{"username": "carol", "password": strings.Repeat("p", 257)}, 400, "", "password"},
		{"display name too long", map[string]string{"username": "carol", "password": "a-password", "display_name": strings.Repeat("d", 65)}, 400, "", "display_name"},
		{"malformed JSON", `{"username":"carol",`, 400, "MALFORMED_JSON", "-"},
		{"unknown field", `{"username":"carol","password":"a-password","email":"c@example.com"}`, 400, "UNKNOWN_FIELD", "email"},
		{"wrong type", `{"username":7,"password":"a-password"}`, 400, "INVALID_FIELD_VALUE", "username"},
	} {
		t.Run(c.name, func(t *testing.T) {
			wantError(t, s.req(t, http.MethodPost, "/v1/users", "", c.body), c.status, c.code, c.field)
		})
	}

	// Sign in.
	in := s.signIn(t, "alice", "correct horse")
	if in.User.ID != alice.ID {
		t.Errorf("signed-in user %+v, want %s", in.User, alice.ID)
	}
	if exp := parseTime(t, "expireTime", in.ExpireTime); !exp.After(time.Now()) {
		t.Errorf("token expires at %v, in the past", exp)
	}
	wrongPassword := s.req(t, http.MethodPost, "/v1/auth/sign-in", "", map[string]string{"username": "alice", "password": "wrong horse"})
	unknownUser := s.req(t, http.MethodPost, "/v1/auth/sign-in", "", map[string]string{"username": "nobody", "password": "wrong horse"})
	wantError(t, wrongPassword, 401, "BAD_CREDENTIALS", "")
	wantError(t, s.req(t, http.MethodPost, "/v1/auth/sign-in", "", `{"username":"alice"`), 400, "MALFORMED_JSON", "-")
	wantError(t, s.req(t, http.MethodPost, "/v1/auth/sign-in", "", `{"username":"alice","password":"x","remember":true}`), 400, "UNKNOWN_FIELD", "remember")
	wantError(t, unknownUser, 401, "", "")
	if string(wrongPassword.body) != string(unknownUser.body) {
		t.Errorf("a wrong password (%s) and an unknown user (%s) can be told apart", wrongPassword.body, unknownUser.body)
	}

	var me user
	mustStatus(t, s.req(t, http.MethodGet, "/v1/users/me", in.Token, nil), 200, &me)
	if me.ID != alice.ID {
		t.Errorf("me = %+v", me)
	}

	// Renew: a fresh token; the old one stays valid.
	var renewed renewReply
	mustStatus(t, s.req(t, http.MethodPost, "/v1/auth/renew", in.Token, "{}"), 200, &renewed)
	if renewed.Token == "" || renewed.Token == in.Token {
		t.Errorf("renewed token %q, want a new one", renewed.Token)
	}
	if parseTime(t, "renewed expireTime", renewed.ExpireTime).Before(parseTime(t, "expireTime", in.ExpireTime)) {
		t.Errorf("renewed token expires at %s, before the old one (%s)", renewed.ExpireTime, in.ExpireTime)
	}
	mustStatus(t, s.req(t, http.MethodGet, "/v1/users/me", renewed.Token, nil), 200, nil)
	mustStatus(t, s.req(t, http.MethodGet, "/v1/users/me", in.Token, nil), 200, nil)
	wantError(t, s.req(t, http.MethodPost, "/v1/auth/renew", "", "{}"), 401, "TOKEN_MISSING", "")

	// Sign out revokes that token only.
	mustStatus(t, s.req(t, http.MethodPost, "/v1/auth/sign-out", in.Token, "{}"), 200, nil)
	wantError(t, s.req(t, http.MethodGet, "/v1/users/me", in.Token, nil), 401, "TOKEN_REVOKED", "")
	wantError(t, s.req(t, http.MethodPost, "/v1/auth/renew", in.Token, "{}"), 401, "TOKEN_REVOKED", "")
	wantError(t, s.req(t, http.MethodPost, "/v1/auth/sign-out", in.Token, "{}"), 401, "TOKEN_REVOKED", "")
	mustStatus(t, s.req(t, http.MethodGet, "/v1/users/me", renewed.Token, nil), 200, nil)
	wantError(t, s.req(t, http.MethodPost, "/v1/auth/sign-out", "", "{}"), 401, "TOKEN_MISSING", "")

	// Bad tokens.
	for _, tok := range []string{"not-a-jwt", in.Token[:len(in.Token)-2] + "xx", "e30.e30.e30"} {
		wantError(t, s.req(t, http.MethodGet, "/v1/users/me", tok, nil), 401, "", "")
	}
	r = s.req(t, http.MethodGet, "/v1/users/me", "", nil, "Authorization", "Basic YWxpY2U6cHc=")
	wantError(t, r, 401, "", "")
	if r.header.Get("WWW-Authenticate") == "" {
		t.Errorf("401 without WWW-Authenticate")
	}

	// Signing in again works after signing out.
	s.signIn(t, "alice", "correct horse")
	s.noSecretsIn(t, "correct horse", "bob-password")
}

func TestTokensExpireAfterTheirLifetime(t *testing.T) {
	s := startStack(t, withTokenLifetime(2*time.Second))
	a := s.signUp(t, "shortlived")
	mustStatus(t, s.req(t, http.MethodGet, "/v1/users/me", a.token, nil), 200, nil)
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := s.req(t, http.MethodGet, "/v1/users/me", a.token, nil)
		if r.status == http.StatusUnauthorized {
			wantError(t, r, 401, "TOKEN_EXPIRED", "")
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a 2s token still works after 10s: %v", r)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestUsersListGetUpdateDelete(t *testing.T) {
	s := startStack(t, withAdmins("root"))
	root := s.signUp(t, "root")
	alice := s.signUp(t, "alice")
	bob := s.signUp(t, "bob")
	carol := s.signUp(t, "carol")

	// List: everyone, by username, paged.
	wantError(t, s.req(t, http.MethodGet, "/v1/users", "", nil), 401, "", "")
	var all userList
	mustStatus(t, s.req(t, http.MethodGet, "/v1/users", bob.token, nil), 200, &all)
	var names []string
	for _, u := range all.Users {
		names = append(names, u.Username)
	}
	if strings.Join(names, ",") != "alice,bob,carol,root" || all.NextPageToken != "" {
		t.Errorf("users = %v (next %q), want alice,bob,carol,root", names, all.NextPageToken)
	}
	var paged []string
	for token, pages := "", 0; ; pages++ {
		if pages > 4 {
			t.Fatalf("more than 4 pages of 1 for 4 users")
		}
		var page userList
		mustStatus(t, s.req(t, http.MethodGet, "/v1/users?page_size=1&page_token="+url.QueryEscape(token), bob.token, nil), 200, &page)
		if len(page.Users) != 1 {
			t.Fatalf("page of 1 = %+v", page)
		}
		paged = append(paged, page.Users[0].Username)
		if token = page.NextPageToken; token == "" {
			break
		}
	}
	if strings.Join(paged, ",") != strings.Join(names, ",") {
		t.Errorf("paged users = %v, want %v", paged, names)
	}
	wantError(t, s.req(t, http.MethodGet, "/v1/users?page_size=1001", bob.token, nil), 400, "", "page_size")
	wantError(t, s.req(t, http.MethodGet, "/v1/users?page_token=garbage", bob.token, nil), 400, "", "page_token")

	// Get by id, by name, me.
	for _, who := range []string{alice.ID, "alice"} {
		var u user
		mustStatus(t, s.req(t, http.MethodGet, "/v1/users/"+who, bob.token, nil), 200, &u)
		if u.ID != alice.ID || u.Username != "alice" || u.DisplayName != "ALICE" {
			t.Errorf("GET /v1/users/%s = %+v", who, u)
		}
	}
	wantError(t, s.req(t, http.MethodGet, "/v1/users/nobody", bob.token, nil), 404, "USER_NOT_FOUND", "user")
	wantError(t, s.req(t, http.MethodGet, "/v1/users/00000000-0000-4000-8000-00000000abcd", bob.token, nil), 404, "USER_NOT_FOUND", "user")
	wantError(t, s.req(t, http.MethodGet, "/v1/users/alice", "", nil), 401, "", "")

	// Update: oneself, or anyone as admin.
	var updated user
	mustStatus(t, s.req(t, http.MethodPatch, "/v1/users/me", alice.token, map[string]string{"display_name": "Alice Liddell"}), 200, &updated)
	if updated.DisplayName != "Alice Liddell" || updated.Username != "alice" {
		t.Errorf("updated = %+v", updated)
	}
	if updated.UpdateTime == alice.UpdateTime ||
		parseTime(t, "updateTime", updated.UpdateTime).Before(parseTime(t, "createTime", updated.CreateTime)) {
		t.Errorf("updateTime %s, was %s, created %s", updated.UpdateTime, alice.UpdateTime, updated.CreateTime)
	}
	wantError(t, s.req(t, http.MethodPatch, "/v1/users/alice", bob.token, map[string]string{"display_name": "hacked"}), 403, "", "")
	wantError(t, s.req(t, http.MethodPatch, "/v1/users/me", alice.token, map[string]string{"display_name": strings.Repeat("x", 65)}), 400, "", "display_name")
	wantError(t, s.req(t, http.MethodPatch, "/v1/users/me", alice.token, map[string]string{"password": "short"}), 400, "", "password")
	wantError(t, s.req(t, http.MethodPatch, "/v1/users/me", "", map[string]string{"display_name": "x"}), 401, "", "")
	wantError(t, s.req(t, http.MethodPatch, "/v1/users/nobody", root.token, map[string]string{"display_name": "x"}), 404, "USER_NOT_FOUND", "user")
	mustStatus(t, s.req(t, http.MethodPatch, "/v1/users/bob", root.token, map[string]string{"display_name": "Bobby"}), 200, &updated)
	if updated.DisplayName != "Bobby" {
		t.Errorf("admin update = %+v", updated)
	}

	// A new password revokes the tokens issued before.
	mustStatus(t, s.req(t, http.MethodPatch, "/v1/users/me", carol.token, map[string]string{"password": "carols-new-pw"}), 200, nil)
	wantError(t, s.req(t, http.MethodGet, "/v1/users/me", carol.token, nil), 401, "", "")
	wantError(t, s.req(t, http.MethodPost, "/v1/auth/sign-in", "", map[string]string{"username": "carol", "password": carol.password}), 401, "", "")
	carolIn := s.signIn(t, "carol", "carols-new-pw")

	// Delete: oneself, or anyone as admin. The messages stay.
	lounge := s.createRoom(t, root.token, "lounge", "", "")
	posted := s.post(t, bob.token, lounge.ID, "bob was here")
	wantError(t, s.req(t, http.MethodDelete, "/v1/users/bob", alice.token, nil), 403, "", "")
	wantError(t, s.req(t, http.MethodDelete, "/v1/users/bob", "", nil), 401, "", "")
	mustStatus(t, s.req(t, http.MethodDelete, "/v1/users/me", bob.token, nil), 200, nil)
	wantError(t, s.req(t, http.MethodGet, "/v1/users/me", bob.token, nil), 401, "", "")
	wantError(t, s.req(t, http.MethodGet, "/v1/users/"+bob.ID, alice.token, nil), 404, "USER_NOT_FOUND", "user")
	wantError(t, s.req(t, http.MethodPost, "/v1/auth/sign-in", "", map[string]string{"username": "bob", "password": bob.password}), 401, "", "")
	history := s.listMessages(t, alice.token, lounge.ID, "")
	if len(history.Messages) != 1 || history.Messages[0].ID != posted.ID || history.Messages[0].Text != "bob was here" ||
		history.Messages[0].Sender != "Bobby" {
		t.Errorf("history after bob left = %+v, want his message under his display name", history.Messages)
	}
	mustStatus(t, s.req(t, http.MethodDelete, "/v1/users/carol", root.token, nil), 200, nil)
	wantError(t, s.req(t, http.MethodGet, "/v1/users/me", carolIn.Token, nil), 401, "", "")
	wantError(t, s.req(t, http.MethodDelete, "/v1/users/carol", root.token, nil), 404, "USER_NOT_FOUND", "user")
	// The name is free again.
	s.signUp(t, "bob")
	s.noSecretsIn(t, "carols-new-pw", carol.password, bob.password, alice.password)
}
