#include "server/auth/authenticator.h"

#include <cstdint>
#include <iterator>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "server/common/errors.h"

namespace parley::auth {
namespace {

absl::Status Refuse(absl::string_view reason, absl::string_view message) {
  return WithReason(absl::UnauthenticatedError(message), reason);
}

// Whole seconds, like a token's iat.
absl::Time TruncToSeconds(absl::Time t) {
  if (t == absl::InfinitePast() || t == absl::InfiniteFuture()) return t;
  return absl::FromUnixSeconds(absl::ToUnixSeconds(t));
}

// Usernames are unique ignoring ASCII case, so admin names match that way.
absl::flat_hash_set<std::string> LowerAll(std::vector<std::string> names) {
  absl::flat_hash_set<std::string> lowered;
  for (std::string& name : names) {
    absl::AsciiStrToLower(&name);
    lowered.insert(std::move(name));
  }
  return lowered;
}

}  // namespace

Authenticator::Authenticator(const TokenSigner* signer, store::Directory* store,
                             std::vector<std::string> admin_usernames)
    : signer_(signer),
      store_(store),
      admins_(LowerAll(std::move(admin_usernames))) {}

absl::Status Authenticator::LoadRevoked() {
  absl::StatusOr<std::vector<std::string>> revoked =
      store_->ListRevokedTokens();
  if (!revoked.ok()) return revoked.status();
  MutexLock lock(&mu_);
  for (std::string& jti : *revoked) revoked_.insert(std::move(jti));
  return absl::OkStatus();
}

absl::StatusOr<Principal> Authenticator::Authenticate(
    absl::string_view authorization) {
  const absl::string_view value = absl::StripAsciiWhitespace(authorization);
  if (value.empty()) {
    return Refuse("TOKEN_MISSING",
                  "sign in first: send `authorization: Bearer <token>`");
  }
  const size_t space = value.find_first_of(" \t");
  const absl::string_view scheme = value.substr(0, space);
  const absl::string_view token =
      space == absl::string_view::npos
          ? absl::string_view()
          : absl::StripLeadingAsciiWhitespace(value.substr(space));
  if (!absl::EqualsIgnoreCase(scheme, "bearer")) {
    return Refuse("TOKEN_MALFORMED",
                  "the authorization scheme must be Bearer: "
                  "`authorization: Bearer <token>`");
  }
  if (token.empty()) {
    return Refuse("TOKEN_MISSING", "no token after Bearer");
  }

  absl::StatusOr<Claims> claims = signer_->Verify(token);
  if (!claims.ok()) return claims.status();
  {
    MutexLock lock(&mu_);
    if (revoked_.contains(claims->jti)) {
      return Refuse("TOKEN_REVOKED", "token has been revoked (signed out)");
    }
  }

  Principal principal;
  principal.kind = claims->kind;
  if (claims->kind == TokenKind::kUser) {
    absl::StatusOr<store::User> user = store_->GetUser(claims->subject);
    if (absl::IsNotFound(user.status())) {
      return Refuse("USER_GONE", "the token's user no longer exists");
    }
    if (!user.ok()) return user.status();
    if (claims->issue_time < TruncToSeconds(user->tokens_valid_after)) {
      return Refuse("TOKEN_REVOKED",
                    "token was issued before the password changed; "
                    "sign in again");
    }
    principal.user_id = user->id;
    principal.username = user->username;
    principal.display_name = user->display_name;
    principal.admin = IsAdmin(user->username);
  } else {
    absl::StatusOr<store::Room> room = store_->GetRoom(claims->room_id);
    if (absl::IsNotFound(room.status())) {
      return Refuse("ROOM_GONE", "the token's room no longer exists");
    }
    if (!room.ok()) return room.status();
    principal.room_id = room->id;
    principal.display_name = claims->name;
  }
  principal.claims = *std::move(claims);
  return principal;
}

absl::StatusOr<std::string> Authenticator::IssueUserToken(
    const store::User& user, absl::Time* expire_time) {
  Claims claims;
  claims.kind = TokenKind::kUser;
  claims.subject = user.id;
  claims.name = user.username;
  absl::StatusOr<std::string> token = signer_->Sign(&claims);
  if (token.ok() && expire_time != nullptr) *expire_time = claims.expire_time;
  return token;
}

absl::StatusOr<std::string> Authenticator::IssueRoomToken(
    absl::string_view room_id, absl::string_view name,
    absl::Time* expire_time) {
  Claims claims;
  claims.kind = TokenKind::kRoom;
  claims.room_id = std::string(room_id);
  claims.name = std::string(name);
  absl::StatusOr<std::string> token = signer_->Sign(&claims);
  if (token.ok() && expire_time != nullptr) *expire_time = claims.expire_time;
  return token;
}

void Authenticator::Revoke(const Claims& claims,
                           absl::AnyInvocable<void(absl::Status)> done) {
  if (claims.jti.empty()) {
    done(absl::InvalidArgumentError("cannot revoke a token without a jti"));
    return;
  }
  store_->Submit(
      store::RevokeToken{claims.jti, claims.expire_time},
      [this, jti = claims.jti,
       done = std::move(done)](absl::StatusOr<int64_t> result) mutable {
        if (result.ok()) {
          {
            MutexLock lock(&mu_);
            revoked_.insert(jti);
          }
          if (on_revoked_) on_revoked_(jti);
        }
        done(result.status());
      });
}

void Authenticator::MarkRevoked(absl::string_view jti) {
  MutexLock lock(&mu_);
  revoked_.insert(std::string(jti));
}

bool Authenticator::IsAdmin(absl::string_view username) const {
  return admins_.contains(absl::AsciiStrToLower(username));
}

}  // namespace parley::auth
