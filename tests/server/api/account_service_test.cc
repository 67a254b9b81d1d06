// AuthService and UserService over real gRPC on loopback (a whole server on
// a fresh SQLite directory): every RPC's success path, each error's code,
// reason and field, and the token lifecycle (sign out, renew, password
// change, delete) also across a restart.
#include "server/api/account_service.h"

#include <memory>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "parley/v1/accounts.grpc.pb.h"
#include "server/model/ids.h"
#include "server/store/store.h"
#include "tests/server/api/test_server.h"

namespace parley::api {
namespace {

using parley::testing::Call;
using parley::testing::Failed;
using parley::testing::kAny;
using parley::testing::NoHash;
using parley::testing::Outcome;
using parley::testing::Succeeded;
using parley::testing::Header;
using parley::testing::SignUp;
using parley::testing::TestServer;
using parley::testing::TestUser;
using parley::testing::WithToken;

class AccountServiceTest : public ::testing::Test {
 protected:
  explicit AccountServiceTest(ServerOptions options = {})
      : server_(std::move(options)) {
    Connect();
  }

  // New stubs: after a restart the server listens on a new port.
  void Connect() {
    auth_ = v1::AuthService::NewStub(server_.NewChannel());
    users_ = v1::UserService::NewStub(server_.NewChannel());
  }

  Outcome CreateUser(const std::string& username, const std::string& password,
                     const std::string& display_name = "",
                     v1::User* user = nullptr) {
    v1::CreateUserRequest req;
    req.set_username(username);
    req.set_password(password);
    req.set_display_name(display_name);
    v1::User local;
    if (user == nullptr) user = &local;
    Outcome o = Call(users_.get(), &v1::UserService::Stub::CreateUser, "",
                     req, user);
    EXPECT_TRUE(NoHash(*user));
    return o;
  }

  Outcome SignIn(const std::string& username, const std::string& password,
                 v1::SignInResponse* resp = nullptr) {
    v1::SignInRequest req;
    req.set_username(username);
    req.set_password(password);
    v1::SignInResponse local;
    if (resp == nullptr) resp = &local;
    Outcome o =
        Call(auth_.get(), &v1::AuthService::Stub::SignIn, "", req, resp);
    EXPECT_TRUE(NoHash(*resp));
    return o;
  }

  Outcome SignOut(const std::string& token) {
    v1::SignOutResponse resp;
    return Call(auth_.get(), &v1::AuthService::Stub::SignOut, token,
                v1::SignOutRequest(), &resp);
  }

  Outcome Renew(const std::string& token, v1::RenewTokenResponse* resp) {
    return Call(auth_.get(), &v1::AuthService::Stub::RenewToken, token,
                v1::RenewTokenRequest(), resp);
  }

  Outcome GetUser(const std::string& token, const std::string& user,
                  v1::User* out = nullptr) {
    v1::GetUserRequest req;
    req.set_user(user);
    v1::User local;
    if (out == nullptr) out = &local;
    Outcome o =
        Call(users_.get(), &v1::UserService::Stub::GetUser, token, req, out);
    EXPECT_TRUE(NoHash(*out));
    return o;
  }

  Outcome ListUsers(const std::string& token, uint32_t page_size,
                    const std::string& page_token,
                    v1::ListUsersResponse* out) {
    v1::ListUsersRequest req;
    req.set_page_size(page_size);
    req.set_page_token(page_token);
    Outcome o =
        Call(users_.get(), &v1::UserService::Stub::ListUsers, token, req, out);
    EXPECT_TRUE(NoHash(*out));
    return o;
  }

  Outcome UpdateUser(const std::string& token,
                     const v1::UpdateUserRequest& req,
                     v1::User* out = nullptr) {
    v1::User local;
    if (out == nullptr) out = &local;
    Outcome o = Call(users_.get(), &v1::UserService::Stub::UpdateUser, token,
                     req, out);
    EXPECT_TRUE(NoHash(*out));
    return o;
  }

  Outcome DeleteUser(const std::string& token, const std::string& user) {
    v1::DeleteUserRequest req;
    req.set_user(user);
    v1::DeleteUserResponse resp;
    return Call(users_.get(), &v1::UserService::Stub::DeleteUser, token, req,
                &resp);
  }

  TestServer server_;
  std::unique_ptr<v1::AuthService::Stub> auth_;
  std::unique_ptr<v1::UserService::Stub> users_;
};

ServerOptions WithAdmin() {
  ServerOptions options;
  options.admin_users = {"root"};
  return options;
}

class AccountServiceAdminTest : public AccountServiceTest {
 protected:
  AccountServiceAdminTest() : AccountServiceTest(WithAdmin()) {}
};

// ---- CreateUser ----

TEST_F(AccountServiceTest, CreateUserReturnsTheUserWith201AndLocation) {
  v1::User user;
  Outcome o = CreateUser("alice", "correct horse", "", &user);
  ASSERT_TRUE(Succeeded(o));
  EXPECT_TRUE(LooksLikeUuid(user.id())) << user.id();
  EXPECT_EQ(user.username(), "alice");
  EXPECT_EQ(user.display_name(), "alice");  // Defaults to the username.
  EXPECT_GT(user.create_time().seconds(), 0);
  EXPECT_EQ(user.update_time().seconds(), user.create_time().seconds());
  EXPECT_EQ(o.http_code, "201");
  EXPECT_EQ(o.location, "/v1/users/" + user.id());

  v1::User named;
  ASSERT_TRUE(Succeeded(CreateUser("bob", "correct horse", "Bob B.", &named)));
  EXPECT_EQ(named.display_name(), "Bob B.");
  EXPECT_NE(named.id(), user.id());
}

TEST_F(AccountServiceTest, CreateUserRejectsBadInputNamingTheField) {
  struct Case {
    std::string username, password, display_name, reason, field;
  };
  const std::string ok_pw = "12345678";
  const std::vector<Case> cases = {
      {"", ok_pw, "", "INVALID_USERNAME", "username"},
      {std::string(65, 'a'), ok_pw, "", "INVALID_USERNAME", "username"},
      {"a b", ok_pw, "", "INVALID_USERNAME", "username"},
      {"a/b", ok_pw, "", "INVALID_USERNAME", "username"},
      {"\xC3\xA9t\xC3\xA9", ok_pw, "", "INVALID_USERNAME", "username"},
      {"123e4567-e89b-42d3-a456-426614174000", ok_pw, "", "INVALID_USERNAME",
       "username"},
      {"me", ok_pw, "", "INVALID_USERNAME", "username"},
      {"ME", ok_pw, "", "INVALID_USERNAME", "username"},
      {"carol", "1234567", "", "PASSWORD_TOO_SHORT", "password"},
      {"carol", std::string(257, 'p'), "", "PASSWORD_TOO_LONG", "password"},
      {"carol", ok_pw, std::string(65, 'd'), "INVALID_DISPLAY_NAME",
       "display_name"},
      {"carol", ok_pw, "tab\there", "INVALID_DISPLAY_NAME", "display_name"},
      {"carol", ok_pw, "c1\xC2\x85", "INVALID_DISPLAY_NAME", "display_name"},
      {"carol", ok_pw, "   ", "INVALID_DISPLAY_NAME", "display_name"},
  };
  for (const Case& c : cases) {
    EXPECT_TRUE(Failed(CreateUser(c.username, c.password, c.display_name),
                       grpc::StatusCode::INVALID_ARGUMENT, c.reason, c.field))
        << "username '" << c.username << "' display '" << c.display_name
        << "'";
  }
  // The limits themselves are fine: 64 characters (not bytes) of display
  // name, 64 of username, 8 and 256 bytes of password.
  std::string accents;
  for (int i = 0; i < 64; ++i) accents += "\xC3\xA9";
  EXPECT_TRUE(Succeeded(CreateUser(std::string(64, 'u'), ok_pw, accents)));
  EXPECT_TRUE(Succeeded(CreateUser("x.y_z-0", std::string(256, 'p'))));
}

TEST_F(AccountServiceTest, CreateUserRejectsMalformedUtf8) {
  EXPECT_TRUE(Failed(CreateUser("dave", "12345678", "bad\xFF"),
                     grpc::StatusCode::INVALID_ARGUMENT, "INVALID_UTF8",
                     "display_name"));
}

TEST_F(AccountServiceTest, ATakenUsernameIsAlreadyExists) {
  ASSERT_TRUE(Succeeded(CreateUser("alice", "12345678")));
  EXPECT_TRUE(Failed(CreateUser("alice", "87654321"),
                     grpc::StatusCode::ALREADY_EXISTS, "USERNAME_TAKEN",
                     "username"));
}

// ---- SignIn / SignOut / RenewToken ----

TEST_F(AccountServiceTest, SignInReturnsAWorkingToken) {
  v1::User created;
  ASSERT_TRUE(Succeeded(CreateUser("alice", "correct horse", "", &created)));
  v1::SignInResponse resp;
  ASSERT_TRUE(Succeeded(SignIn("alice", "correct horse", &resp)));
  EXPECT_FALSE(resp.token().empty());
  EXPECT_GT(resp.expire_time().seconds(), absl::ToUnixSeconds(absl::Now()));
  EXPECT_EQ(resp.user().id(), created.id());
  EXPECT_EQ(resp.user().username(), "alice");

  v1::User me;
  ASSERT_TRUE(Succeeded(GetUser(resp.token(), "me", &me)));
  EXPECT_EQ(me.id(), created.id());
  // What CreateUser answered is what is stored, to the nanosecond.
  EXPECT_EQ(me.create_time().seconds(), created.create_time().seconds());
  EXPECT_EQ(me.create_time().nanos(), created.create_time().nanos());
}

// Two authorization values are refused, not one of them picked.
TEST_F(AccountServiceTest, TwoAuthorizationValuesAreRefused) {
  ASSERT_TRUE(Succeeded(CreateUser("alice", "correct horse")));
  v1::SignInResponse signed_in;
  ASSERT_TRUE(Succeeded(SignIn("alice", "correct horse", &signed_in)));
  grpc::ClientContext ctx;
  ctx.AddMetadata("authorization", "Bearer " + signed_in.token());
  ctx.AddMetadata("authorization", "Bearer " + signed_in.token());
  v1::GetUserRequest req;
  req.set_user("me");
  v1::User out;
  grpc::Status s = users_->GetUser(&ctx, req, &out);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(parley::testing::Reason(s), "TOKEN_MALFORMED");
  EXPECT_TRUE(Succeeded(GetUser(signed_in.token(), "me")));
}

TEST_F(AccountServiceTest, SignInDoesNotSayWhichCredentialWasWrong) {
  ASSERT_TRUE(Succeeded(CreateUser("alice", "correct horse")));
  Outcome wrong_password = SignIn("alice", "wrong horse");
  Outcome unknown_user = SignIn("nobody", "correct horse");
  EXPECT_TRUE(Failed(wrong_password, grpc::StatusCode::UNAUTHENTICATED,
                     "BAD_CREDENTIALS", ""));
  EXPECT_TRUE(Failed(unknown_user, grpc::StatusCode::UNAUTHENTICATED,
                     "BAD_CREDENTIALS", ""));
  EXPECT_EQ(wrong_password.status.error_message(),
            unknown_user.status.error_message());
  EXPECT_TRUE(Failed(SignIn("", "x"), grpc::StatusCode::INVALID_ARGUMENT,
                     "USERNAME_REQUIRED", "username"));
  EXPECT_TRUE(Failed(SignIn("alice", ""), grpc::StatusCode::INVALID_ARGUMENT,
                     "PASSWORD_REQUIRED", "password"));
}

TEST_F(AccountServiceTest, ASignedOutTokenIsRefusedAlsoAfterARestart) {
  TestUser alice = SignUp(server_, "alice");
  v1::SignInResponse second;
  ASSERT_TRUE(Succeeded(SignIn("alice", alice.password, &second)));

  ASSERT_TRUE(Succeeded(SignOut(alice.token)));
  EXPECT_TRUE(Failed(GetUser(alice.token, "me"),
                     grpc::StatusCode::UNAUTHENTICATED, "TOKEN_REVOKED"));
  EXPECT_TRUE(Failed(SignOut(alice.token), grpc::StatusCode::UNAUTHENTICATED,
                     "TOKEN_REVOKED"));
  // Only that token: the other sign-in still works.
  EXPECT_TRUE(Succeeded(GetUser(second.token(), "me")));

  server_.Restart();
  Connect();
  EXPECT_TRUE(Failed(GetUser(alice.token, "me"),
                     grpc::StatusCode::UNAUTHENTICATED, "TOKEN_REVOKED"));
  EXPECT_TRUE(Succeeded(GetUser(second.token(), "me")));
}

TEST_F(AccountServiceTest, SignOutNeedsAToken) {
  EXPECT_TRUE(Failed(SignOut(""), grpc::StatusCode::UNAUTHENTICATED,
                     "TOKEN_MISSING"));
  EXPECT_TRUE(Failed(SignOut("not-a-jwt"), grpc::StatusCode::UNAUTHENTICATED,
                     "TOKEN_MALFORMED"));
}

TEST_F(AccountServiceTest, RenewTokenGivesAFreshTokenAndKeepsTheOld) {
  TestUser alice = SignUp(server_, "alice");
  v1::RenewTokenResponse renewed;
  ASSERT_TRUE(Succeeded(Renew(alice.token, &renewed)));
  EXPECT_FALSE(renewed.token().empty());
  EXPECT_NE(renewed.token(), alice.token);
  EXPECT_GT(renewed.expire_time().seconds(), absl::ToUnixSeconds(absl::Now()));
  v1::User me;
  ASSERT_TRUE(Succeeded(GetUser(renewed.token(), "me", &me)));
  EXPECT_EQ(me.id(), alice.id);
  EXPECT_TRUE(Succeeded(GetUser(alice.token, "me")));

  // Signing out the renewed token leaves the first one alone.
  ASSERT_TRUE(Succeeded(SignOut(renewed.token())));
  EXPECT_TRUE(Failed(Renew(renewed.token(), &renewed),
                     grpc::StatusCode::UNAUTHENTICATED, "TOKEN_REVOKED"));
  EXPECT_TRUE(Succeeded(Renew(alice.token, &renewed)));
  EXPECT_TRUE(Failed(Renew("", &renewed), grpc::StatusCode::UNAUTHENTICATED,
                     "TOKEN_MISSING"));
}

// ---- GetUser / ListUsers ----

TEST_F(AccountServiceTest, GetUserByIdUsernameOrMe) {
  TestUser alice = SignUp(server_, "alice");
  TestUser bob = SignUp(server_, "bob");
  for (const std::string& name : {bob.id, bob.username}) {
    v1::User user;
    ASSERT_TRUE(Succeeded(GetUser(alice.token, name, &user))) << name;
    EXPECT_EQ(user.id(), bob.id);
    EXPECT_EQ(user.username(), "bob");
  }
  v1::User me;
  ASSERT_TRUE(Succeeded(GetUser(alice.token, "me", &me)));
  EXPECT_EQ(me.id(), alice.id);

  EXPECT_TRUE(Failed(GetUser(alice.token, "nobody"),
                     grpc::StatusCode::NOT_FOUND, "USER_NOT_FOUND", "user"));
  EXPECT_TRUE(Failed(GetUser(alice.token,
                             "123e4567-e89b-42d3-a456-426614174000"),
                     grpc::StatusCode::NOT_FOUND, "USER_NOT_FOUND", "user"));
  EXPECT_TRUE(Failed(GetUser("", "bob"), grpc::StatusCode::UNAUTHENTICATED,
                     "TOKEN_MISSING"));
}

TEST_F(AccountServiceTest, ListUsersPagesByUsername) {
  TestUser me = SignUp(server_, "erin");
  for (const char* name : {"dave", "alice", "carol", "bob"}) {
    SignUp(server_, name);
  }
  std::vector<std::string> seen;
  std::string token;
  int pages = 0;
  do {
    v1::ListUsersResponse page;
    ASSERT_TRUE(Succeeded(ListUsers(me.token, 2, token, &page)));
    EXPECT_LE(page.users_size(), 2);
    for (const v1::User& u : page.users()) seen.push_back(u.username());
    token = page.next_page_token();
    ASSERT_LT(++pages, 10);
  } while (!token.empty());
  EXPECT_EQ(pages, 3);
  EXPECT_EQ(seen, (std::vector<std::string>{"alice", "bob", "carol", "dave",
                                            "erin"}));

  v1::ListUsersResponse all;
  ASSERT_TRUE(Succeeded(ListUsers(me.token, 0, "", &all)));
  EXPECT_EQ(all.users_size(), 5);
  EXPECT_TRUE(all.next_page_token().empty());
}

TEST_F(AccountServiceTest, ListUsersRefusesBadPagingAndMissingTokens) {
  TestUser me = SignUp(server_, "alice");
  v1::ListUsersResponse page;
  EXPECT_TRUE(Failed(ListUsers(me.token, 0, "not a token!", &page),
                     grpc::StatusCode::INVALID_ARGUMENT, "INVALID_PAGE_TOKEN",
                     "page_token"));
  // A token of another list is not one of this list.
  EXPECT_TRUE(Failed(ListUsers(me.token, 0, EncodePageToken("rooms", "a"),
                               &page),
                     grpc::StatusCode::INVALID_ARGUMENT, "INVALID_PAGE_TOKEN",
                     "page_token"));
  EXPECT_TRUE(Failed(ListUsers(me.token, 1001, "", &page),
                     grpc::StatusCode::INVALID_ARGUMENT, kAny, "page_size"));
  EXPECT_TRUE(Failed(ListUsers("", 0, "", &page),
                     grpc::StatusCode::UNAUTHENTICATED, "TOKEN_MISSING"));
}

// ---- UpdateUser ----

TEST_F(AccountServiceTest, UpdateUserChangesTheDisplayName) {
  TestUser alice = SignUp(server_, "alice");
  v1::UpdateUserRequest req;
  req.set_user("me");
  req.set_display_name("Alice A.");
  v1::User updated;
  ASSERT_TRUE(Succeeded(UpdateUser(alice.token, req, &updated)));
  EXPECT_EQ(updated.display_name(), "Alice A.");
  EXPECT_EQ(updated.username(), "alice");
  EXPECT_GE(absl::FromUnixSeconds(updated.update_time().seconds()) +
                absl::Nanoseconds(updated.update_time().nanos()),
            absl::FromUnixSeconds(updated.create_time().seconds()) +
                absl::Nanoseconds(updated.create_time().nanos()));
  v1::User read;
  ASSERT_TRUE(Succeeded(GetUser(alice.token, "alice", &read)));
  EXPECT_EQ(read.display_name(), "Alice A.");

  // Absent fields stay; an empty display name is the username again.
  v1::UpdateUserRequest nothing;
  nothing.set_user(alice.id);
  ASSERT_TRUE(Succeeded(UpdateUser(alice.token, nothing, &read)));
  EXPECT_EQ(read.display_name(), "Alice A.");
  req.set_display_name("");
  ASSERT_TRUE(Succeeded(UpdateUser(alice.token, req, &read)));
  EXPECT_EQ(read.display_name(), "alice");
  // Still signed in: only a password change revokes tokens.
  EXPECT_TRUE(Succeeded(GetUser(alice.token, "me")));
}

TEST_F(AccountServiceTest, UpdateUserValidatesAndIsSelfOnly) {
  TestUser alice = SignUp(server_, "alice");
  TestUser bob = SignUp(server_, "bob");
  v1::UpdateUserRequest req;
  req.set_user("bob");
  req.set_display_name("Mallory");
  EXPECT_TRUE(Failed(UpdateUser(alice.token, req),
                     grpc::StatusCode::PERMISSION_DENIED, "NOT_ALLOWED"));
  v1::User read;
  ASSERT_TRUE(Succeeded(GetUser(alice.token, "bob", &read)));
  EXPECT_EQ(read.display_name(), "bob");

  req.set_user("me");
  req.set_display_name(std::string(65, 'x'));
  EXPECT_TRUE(Failed(UpdateUser(alice.token, req),
                     grpc::StatusCode::INVALID_ARGUMENT,
                     "INVALID_DISPLAY_NAME", "display_name"));
  req.clear_display_name();
  req.set_password("short");
  EXPECT_TRUE(Failed(UpdateUser(alice.token, req),
                     grpc::StatusCode::INVALID_ARGUMENT, "PASSWORD_TOO_SHORT",
                     "password"));
  req.set_user("nobody");
  EXPECT_TRUE(Failed(UpdateUser(alice.token, req),
                     grpc::StatusCode::NOT_FOUND, "USER_NOT_FOUND", "user"));
}

// The authenticator's rule for a password change at `change`: a token's
// issue time has whole seconds, and tokens issued in an earlier second are
// refused while those of the change's own second stay valid (so that a
// sign-in right after the change works). `expire` is the token's expiry.
bool IssuedInAnEarlierSecond(const google::protobuf::Timestamp& expire,
                             const google::protobuf::Timestamp& change) {
  const int64_t issued =
      expire.seconds() - absl::ToInt64Seconds(ServerOptions().token_lifetime);
  return issued < change.seconds();
}

TEST_F(AccountServiceTest, APasswordChangeRevokesEveryEarlierToken) {
  TestUser alice = SignUp(server_, "alice");
  v1::SignInResponse other;
  ASSERT_TRUE(Succeeded(SignIn("alice", alice.password, &other)));

  v1::UpdateUserRequest req;
  req.set_user("me");
  req.set_password("a brand new password");
  v1::User updated;
  ASSERT_TRUE(Succeeded(UpdateUser(alice.token, req, &updated)));

  // The token that made the change is refused whatever the clock says.
  EXPECT_TRUE(Failed(GetUser(alice.token, "me"),
                     grpc::StatusCode::UNAUTHENTICATED, "TOKEN_REVOKED"));
  // Other earlier tokens: by their issue second.
  Outcome with_other = GetUser(other.token(), "me");
  if (IssuedInAnEarlierSecond(other.expire_time(), updated.update_time())) {
    EXPECT_TRUE(Failed(with_other, grpc::StatusCode::UNAUTHENTICATED,
                       "TOKEN_REVOKED"));
  } else {
    EXPECT_TRUE(Succeeded(with_other));
  }
  EXPECT_TRUE(Failed(SignIn("alice", alice.password),
                     grpc::StatusCode::UNAUTHENTICATED, "BAD_CREDENTIALS"));
  v1::SignInResponse fresh;
  ASSERT_TRUE(Succeeded(SignIn("alice", "a brand new password", &fresh)));
  EXPECT_EQ(fresh.user().id(), alice.id);
  EXPECT_TRUE(Succeeded(GetUser(fresh.token(), "me")));

  server_.Restart();
  Connect();
  EXPECT_TRUE(Failed(GetUser(alice.token, "me"),
                     grpc::StatusCode::UNAUTHENTICATED, "TOKEN_REVOKED"));
  EXPECT_TRUE(Succeeded(GetUser(fresh.token(), "me")));
}

TEST_F(AccountServiceAdminTest, AnAdminMayChangeAndDeleteAnyone) {
  TestUser root = SignUp(server_, "root");
  TestUser bob = SignUp(server_, "bob");
  v1::SignInResponse bobs;
  ASSERT_TRUE(Succeeded(SignIn("bob", bob.password, &bobs)));
  v1::UpdateUserRequest req;
  req.set_user("bob");
  req.set_display_name("Robert");
  v1::User updated;
  ASSERT_TRUE(Succeeded(UpdateUser(root.token, req, &updated)));
  EXPECT_EQ(updated.id(), bob.id);
  EXPECT_EQ(updated.display_name(), "Robert");

  req.clear_display_name();
  req.set_password("reset by the admin");
  ASSERT_TRUE(Succeeded(UpdateUser(root.token, req, &updated)));
  Outcome with_old = GetUser(bobs.token(), "me");
  if (IssuedInAnEarlierSecond(bobs.expire_time(), updated.update_time())) {
    EXPECT_TRUE(Failed(with_old, grpc::StatusCode::UNAUTHENTICATED,
                       "TOKEN_REVOKED"));
  } else {
    EXPECT_TRUE(Succeeded(with_old));
  }
  EXPECT_TRUE(Failed(SignIn("bob", bob.password),
                     grpc::StatusCode::UNAUTHENTICATED, "BAD_CREDENTIALS"));
  EXPECT_TRUE(Succeeded(SignIn("bob", "reset by the admin")));
  // The admin's own token is not touched by changing someone else.
  EXPECT_TRUE(Succeeded(GetUser(root.token, "me")));

  ASSERT_TRUE(Succeeded(DeleteUser(root.token, bob.id)));
  EXPECT_TRUE(Failed(GetUser(root.token, "bob"), grpc::StatusCode::NOT_FOUND,
                     "USER_NOT_FOUND", "user"));
  EXPECT_TRUE(Failed(GetUser(bobs.token(), "me"),
                     grpc::StatusCode::UNAUTHENTICATED, "USER_GONE"));
  EXPECT_TRUE(Succeeded(GetUser(root.token, "me")));
}

// ---- DeleteUser ----

TEST_F(AccountServiceTest, DeleteUserIsSelfOnlyAndEndsTheAccount) {
  TestUser alice = SignUp(server_, "alice");
  TestUser bob = SignUp(server_, "bob");
  EXPECT_TRUE(Failed(DeleteUser(alice.token, "bob"),
                     grpc::StatusCode::PERMISSION_DENIED, "NOT_ALLOWED"));
  EXPECT_TRUE(Succeeded(GetUser(bob.token, "me")));

  // An open direct-message subscription of bob's ends with the account.
  chat::Subscriber who;
  who.user_id = bob.id;
  auto inbox = server_.hub().Subscribe(model::InboxLog(bob.id), who);
  ASSERT_TRUE(inbox.ok()) << inbox.status();

  ASSERT_TRUE(Succeeded(DeleteUser(bob.token, "me")));
  EXPECT_EQ(inbox->channel->Take(10).closed, chat::CloseReason::kUserGone);
  EXPECT_TRUE(Failed(GetUser(alice.token, bob.id),
                     grpc::StatusCode::NOT_FOUND, "USER_NOT_FOUND", "user"));
  EXPECT_TRUE(Failed(GetUser(bob.token, "me"),
                     grpc::StatusCode::UNAUTHENTICATED, "USER_GONE"));
  EXPECT_TRUE(Failed(SignIn("bob", bob.password),
                     grpc::StatusCode::UNAUTHENTICATED, "BAD_CREDENTIALS"));
  EXPECT_TRUE(Failed(DeleteUser(alice.token, "bob"),
                     grpc::StatusCode::NOT_FOUND, "USER_NOT_FOUND", "user"));

  // The name is free again, for a new account with a new id.
  v1::User again;
  ASSERT_TRUE(Succeeded(CreateUser("bob", "another password", "", &again)));
  EXPECT_NE(again.id(), bob.id);
  EXPECT_TRUE(Failed(GetUser(bob.token, "me"),
                     grpc::StatusCode::UNAUTHENTICATED, "USER_GONE"));
}

// ---- Shared helpers ----

TEST(AccountHelpersTest, PageTokensRoundTripAndAreKindChecked) {
  const std::string token = EncodePageToken("users", "ali/ce é");
  auto decoded = DecodePageToken("users", token);
  ASSERT_TRUE(decoded.ok());
  EXPECT_EQ(*decoded, "ali/ce é");
  EXPECT_EQ(*DecodePageToken("users", ""), "");
  EXPECT_FALSE(DecodePageToken("rooms", token).ok());
  EXPECT_FALSE(DecodePageToken("users", "%%%").ok());
}

TEST(AccountHelpersTest, CharsAndControls) {
  EXPECT_EQ(CountChars("h\xC3\xA9llo"), 5u);
  EXPECT_EQ(CountChars("\xF0\x9F\x98\x80"), 1u);
  EXPECT_FALSE(HasControlChars("plain \xC3\xA9"));
  EXPECT_TRUE(HasControlChars("a\nb"));
  EXPECT_FALSE(HasControlChars("a\nb", /*allow_line_breaks=*/true));
  EXPECT_TRUE(HasControlChars("a\x7F"));
  EXPECT_TRUE(HasControlChars("a\xC2\x9F"));
  EXPECT_FALSE(HasControlChars("a\xC2\xA0"));  // NBSP is not a control.
  EXPECT_EQ(NewUuid().size(), 36u);
  EXPECT_NE(NewUuid(), NewUuid());
}

}  // namespace
}  // namespace parley::api
