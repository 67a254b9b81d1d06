// The Authenticator against an in-memory store.
#include "server/auth/authenticator.h"

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "server/auth/tokens.h"
#include "server/common/clock.h"
#include "server/common/errors.h"
#include "server/common/mutex.h"
#include "server/store/memory_store.h"
#include "server/store/store.h"

namespace parley::auth {
namespace {

const std::string kKey = "0123456789abcdef0123456789abcdef";
const absl::Duration kLifetime = absl::Hours(1);

// Waits for one store write's or revocation's callback, without sleeping.
template <typename T>
class Result {
 public:
  void Set(T value) {
    MutexLock lock(&mu_);
    value_.emplace(std::move(value));
    cv_.SignalAll();
  }
  T Wait() {
    MutexLock lock(&mu_);
    while (!value_.has_value()) cv_.Wait();
    return *value_;
  }

 private:
  Mutex mu_;
  CondVar cv_{&mu_};
  std::optional<T> value_ ABSL_GUARDED_BY(mu_);
};

absl::Status Write(store::Store* s, store::DirectoryWrite write) {
  Result<absl::Status> result;
  s->Submit(std::move(write), [&result](absl::StatusOr<int64_t> r) {
    result.Set(r.status());
  });
  return result.Wait();
}

std::string Reason(const absl::StatusOr<Principal>& p) {
  if (p.ok()) return "accepted";
  if (!absl::IsUnauthenticated(p.status())) {
    return absl::StrCat("not UNAUTHENTICATED: ", p.status().ToString());
  }
  return ErrorReason(p.status());
}

std::string Bearer(const std::string& token) {
  return absl::StrCat("Bearer ", token);
}

class AuthenticatorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auth_ = NewAuthenticator();
    ASSERT_TRUE(auth_->LoadRevoked().ok());
    alice_ = MakeUser("7d1b5e0e-1111-4a5b-9c3d-000000000001", "alice");
  }

  void TearDown() override {
    store_->Close();  // runs pending callbacks before the authenticators go
  }

  std::unique_ptr<Authenticator> NewAuthenticator(
      std::vector<std::string> admins = {}) {
    return std::make_unique<Authenticator>(&signer_, store_.get(),
                                           std::move(admins));
  }

  store::User MakeUser(const std::string& id, const std::string& username) {
    store::User user;
    user.id = id;
    user.username = username;
    user.display_name = absl::StrCat(username, " (display)");
    user.password_hash = "$argon2id$not-a-real-hash";
    user.create_time = user.update_time = clock_.Now();
    EXPECT_TRUE(Write(store_.get(), store::PutUser{user, true}).ok());
    return user;
  }

  store::Room MakeRoom(const std::string& id, const std::string& name) {
    store::Room room;
    room.id = id;
    room.name = name;
    room.visibility = store::Visibility::kPublic;
    room.owner_id = alice_.id;
    room.create_time = room.update_time = clock_.Now();
    EXPECT_TRUE(Write(store_.get(), store::PutRoom{room, true}).ok());
    return room;
  }

  std::string UserToken(const store::User& user) {
    absl::StatusOr<std::string> token = auth_->IssueUserToken(user, nullptr);
    EXPECT_TRUE(token.ok()) << token.status();
    return token.value_or("");
  }

  absl::Status Revoke(Authenticator* auth, const Claims& claims) {
    Result<absl::Status> result;
    auth->Revoke(claims, [&result](absl::Status s) { result.Set(s); });
    return result.Wait();
  }

  // Revoked tokens are pruned by real time, so the test clock starts now.
  ManualClock clock_{absl::Now()};
  TokenSigner signer_{kKey, kLifetime, &clock_};
  std::unique_ptr<store::Store> store_ = std::make_unique<store::MemoryStore>();
  std::unique_ptr<Authenticator> auth_;
  store::User alice_;
};

TEST_F(AuthenticatorTest, MissingTokenIsRefused) {
  EXPECT_EQ(Reason(auth_->Authenticate("")), "TOKEN_MISSING");
  EXPECT_EQ(Reason(auth_->Authenticate("   ")), "TOKEN_MISSING");
  EXPECT_EQ(Reason(auth_->Authenticate("Bearer")), "TOKEN_MISSING");
  EXPECT_EQ(Reason(auth_->Authenticate("Bearer   ")), "TOKEN_MISSING");
}

TEST_F(AuthenticatorTest, WrongSchemeIsMalformed) {
  const std::string token = UserToken(alice_);
  EXPECT_EQ(Reason(auth_->Authenticate(absl::StrCat("Basic ", token))),
            "TOKEN_MALFORMED");
  EXPECT_EQ(Reason(auth_->Authenticate(absl::StrCat("Bearer: ", token))),
            "TOKEN_MALFORMED");
  EXPECT_EQ(Reason(auth_->Authenticate(token)), "TOKEN_MALFORMED");
  EXPECT_EQ(Reason(auth_->Authenticate("Bearer not-a-jwt")),
            "TOKEN_MALFORMED");
}

TEST_F(AuthenticatorTest, SchemeIsCaseInsensitive) {
  const std::string token = UserToken(alice_);
  for (const char* scheme : {"Bearer ", "bearer ", "BEARER ", "bEaReR\t"}) {
    EXPECT_EQ(Reason(auth_->Authenticate(absl::StrCat(scheme, token))),
              "accepted")
        << scheme;
  }
}

TEST_F(AuthenticatorTest, ValidUserTokenNamesTheStoredUser) {
  absl::Time expire_time;
  absl::StatusOr<std::string> token =
      auth_->IssueUserToken(alice_, &expire_time);
  ASSERT_TRUE(token.ok()) << token.status();
  EXPECT_EQ(expire_time,
            absl::FromUnixSeconds(absl::ToUnixSeconds(clock_.Now())) +
                kLifetime);

  // The principal reflects the store, not the token: a later display name.
  store::User renamed = alice_;
  renamed.display_name = "Alice Liddell";
  ASSERT_TRUE(Write(store_.get(), store::PutUser{renamed, false}).ok());

  absl::StatusOr<Principal> who = auth_->Authenticate(Bearer(*token));
  ASSERT_TRUE(who.ok()) << who.status();
  EXPECT_EQ(who->kind, TokenKind::kUser);
  EXPECT_EQ(who->user_id, alice_.id);
  EXPECT_EQ(who->username, "alice");
  EXPECT_EQ(who->display_name, "Alice Liddell");
  EXPECT_EQ(who->room_id, "");
  EXPECT_FALSE(who->admin);
  EXPECT_EQ(who->claims.subject, alice_.id);
  EXPECT_FALSE(who->claims.jti.empty());
}

TEST_F(AuthenticatorTest, ExpiredTokenIsRefused) {
  const std::string token = UserToken(alice_);
  clock_.Advance(kLifetime + absl::Seconds(1));
  EXPECT_EQ(Reason(auth_->Authenticate(Bearer(token))), "TOKEN_EXPIRED");
}

TEST_F(AuthenticatorTest, RevokedTokenIsRefusedDurably) {
  const std::string revoked = UserToken(alice_);
  const std::string kept = UserToken(alice_);
  absl::StatusOr<Principal> who = auth_->Authenticate(Bearer(revoked));
  ASSERT_TRUE(who.ok()) << who.status();

  ASSERT_TRUE(Revoke(auth_.get(), who->claims).ok());
  EXPECT_EQ(Reason(auth_->Authenticate(Bearer(revoked))), "TOKEN_REVOKED");
  EXPECT_EQ(Reason(auth_->Authenticate(Bearer(kept))), "accepted");

  // A restart: a new Authenticator loads the revocations from the store.
  auth_.reset();
  auth_ = NewAuthenticator();
  // Not yet loaded: the revocation lives in the store, not in this object.
  EXPECT_EQ(Reason(auth_->Authenticate(Bearer(revoked))), "accepted");
  ASSERT_TRUE(auth_->LoadRevoked().ok());
  EXPECT_EQ(Reason(auth_->Authenticate(Bearer(revoked))), "TOKEN_REVOKED");
  EXPECT_EQ(Reason(auth_->Authenticate(Bearer(kept))), "accepted");
}

TEST_F(AuthenticatorTest, FailedRevocationIsReportedAndNotApplied) {
  const std::string token = UserToken(alice_);
  absl::StatusOr<Principal> who = auth_->Authenticate(Bearer(token));
  ASSERT_TRUE(who.ok()) << who.status();
  store_->Close();  // the revocation cannot be written
  EXPECT_FALSE(Revoke(auth_.get(), who->claims).ok());
  // Reads still work after Close; the token was not revoked in memory.
  EXPECT_EQ(Reason(auth_->Authenticate(Bearer(token))), "accepted");
}

TEST_F(AuthenticatorTest, DeletedUserIsGone) {
  const std::string token = UserToken(alice_);
  ASSERT_TRUE(Write(store_.get(), store::DeleteUser{alice_.id}).ok());
  EXPECT_EQ(Reason(auth_->Authenticate(Bearer(token))), "USER_GONE");
}

TEST_F(AuthenticatorTest, PasswordChangeRefusesOlderTokens) {
  const std::string old_token = UserToken(alice_);
  clock_.Advance(absl::Seconds(10) + absl::Milliseconds(500));

  // The password changes at a fractional second; a token issued within that
  // same second (iat is whole seconds) stays valid, earlier ones do not.
  store::User changed = alice_;
  changed.password_hash = "$argon2id$another-hash";
  changed.tokens_valid_after = clock_.Now();
  changed.update_time = clock_.Now();
  ASSERT_TRUE(Write(store_.get(), store::PutUser{changed, false}).ok());

  EXPECT_EQ(Reason(auth_->Authenticate(Bearer(old_token))), "TOKEN_REVOKED");
  const std::string new_token = UserToken(changed);
  EXPECT_EQ(Reason(auth_->Authenticate(Bearer(new_token))), "accepted");
}

TEST_F(AuthenticatorTest, AdminsAreNamedByUsername) {
  const store::User root =
      MakeUser("7d1b5e0e-1111-4a5b-9c3d-000000000002", "root");
  auth_ = NewAuthenticator({"Root"});
  EXPECT_TRUE(auth_->IsAdmin("root"));  // usernames ignore ASCII case
  EXPECT_TRUE(auth_->IsAdmin("ROOT"));
  EXPECT_FALSE(auth_->IsAdmin("alice"));

  absl::StatusOr<Principal> admin =
      auth_->Authenticate(Bearer(UserToken(root)));
  ASSERT_TRUE(admin.ok()) << admin.status();
  EXPECT_TRUE(admin->admin);
  absl::StatusOr<Principal> user =
      auth_->Authenticate(Bearer(UserToken(alice_)));
  ASSERT_TRUE(user.ok()) << user.status();
  EXPECT_FALSE(user->admin);
}

TEST_F(AuthenticatorTest, RoomTokenNamesItsRoomUntilTheRoomIsDeleted) {
  const store::Room room =
      MakeRoom("7d1b5e0e-2222-4a5b-9c3d-000000000001", "tea-party");
  absl::Time expire_time;
  absl::StatusOr<std::string> token =
      auth_->IssueRoomToken(room.id, "March Hare", &expire_time);
  ASSERT_TRUE(token.ok()) << token.status();
  EXPECT_GT(expire_time, clock_.Now());

  absl::StatusOr<Principal> who = auth_->Authenticate(Bearer(*token));
  ASSERT_TRUE(who.ok()) << who.status();
  EXPECT_EQ(who->kind, TokenKind::kRoom);
  EXPECT_EQ(who->room_id, room.id);
  EXPECT_EQ(who->display_name, "March Hare");
  EXPECT_EQ(who->user_id, "");
  EXPECT_FALSE(who->admin);

  ASSERT_TRUE(Write(store_.get(), store::DeleteRoom{room.id}).ok());
  EXPECT_EQ(Reason(auth_->Authenticate(Bearer(*token))), "ROOM_GONE");
}

TEST_F(AuthenticatorTest, RoomTokenForAnUnknownRoomIsRefused) {
  absl::StatusOr<std::string> token =
      auth_->IssueRoomToken("7d1b5e0e-2222-4a5b-9c3d-00000000dead", "x",
                            nullptr);
  ASSERT_TRUE(token.ok()) << token.status();
  EXPECT_EQ(Reason(auth_->Authenticate(Bearer(*token))), "ROOM_GONE");
}

}  // namespace
}  // namespace parley::auth
