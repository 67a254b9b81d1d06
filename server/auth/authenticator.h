// Who is calling: turns an `authorization: Bearer <token>` value into a
// Principal, refusing tokens that are malformed, forged, expired, revoked,
// or whose user is gone or changed password since. Keeps the revoked token
// ids in memory (loaded from the store at start). Thread-safe.
#ifndef PARLEY_SERVER_AUTH_AUTHENTICATOR_H_
#define PARLEY_SERVER_AUTH_AUTHENTICATOR_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/auth/tokens.h"
#include "server/common/mutex.h"
#include "server/store/directory.h"

namespace parley::auth {

struct Principal {
  TokenKind kind = TokenKind::kUser;
  std::string user_id;       // user tokens
  std::string username;      // user tokens
  std::string display_name;  // user tokens: the user's; room tokens: the name
  std::string room_id;       // room tokens
  bool admin = false;  // username listed in --admin_users (ignoring case)
  Claims claims;
};

class Authenticator {
 public:
  Authenticator(const TokenSigner* signer, store::Directory* store,
                std::vector<std::string> admin_usernames);

  // Reads the revoked token ids from the store. Call once before serving.
  absl::Status LoadRevoked();

  // `authorization` is the metadata value, "Bearer <token>" (scheme
  // case-insensitive). UNAUTHENTICATED with reason TOKEN_MISSING (empty),
  // TOKEN_MALFORMED, TOKEN_BAD_ALGORITHM, TOKEN_BAD_SIGNATURE,
  // TOKEN_EXPIRED, TOKEN_REVOKED, USER_GONE or ROOM_GONE (a room token's
  // room was deleted).
  absl::StatusOr<Principal> Authenticate(absl::string_view authorization);

  // A user token for `user`.
  absl::StatusOr<std::string> IssueUserToken(const store::User& user,
                                             absl::Time* expire_time);
  // A room token for display name `name` in room `room_id`.
  absl::StatusOr<std::string> IssueRoomToken(absl::string_view room_id,
                                             absl::string_view name,
                                             absl::Time* expire_time);

  // Revokes the token with `claims` durably (through the store's writer),
  // then calls `done` (on the writer thread).
  void Revoke(const Claims& claims,
              absl::AnyInvocable<void(absl::Status)> done);

  // Called with each token id this server revoked, after the commit and
  // before Revoke's `done`; set once, before serving. The server ends the
  // token's streams and tells the other servers (Hub::RevokeToken), which
  // call MarkRevoked.
  void set_on_revoked(std::function<void(const std::string&)> on_revoked) {
    on_revoked_ = std::move(on_revoked);
  }
  // Refuses token `jti` from now on: another server revoked it.
  void MarkRevoked(absl::string_view jti);

  bool IsAdmin(absl::string_view username) const;

 private:
  const TokenSigner* const signer_;
  store::Directory* const store_;
  const absl::flat_hash_set<std::string> admins_;
  std::function<void(const std::string&)> on_revoked_;
  Mutex mu_;
  absl::flat_hash_set<std::string> revoked_ ABSL_GUARDED_BY(mu_);
};

}  // namespace parley::auth

#endif  // PARLEY_SERVER_AUTH_AUTHENTICATOR_H_
