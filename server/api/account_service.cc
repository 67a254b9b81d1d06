#include "server/api/account_service.h"

#include <optional>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "server/api/quotas.h"
#include "server/api/status.h"
#include "server/common/errors.h"

namespace parley::api {
namespace {

constexpr size_t kMaxUsernameChars = 64;
constexpr size_t kMinPasswordBytes = 8;
constexpr size_t kMaxPasswordBytes = 256;
constexpr size_t kMaxDisplayNameChars = 64;

absl::Status ValidateUsername(absl::string_view username) {
  if (username.empty() || username.size() > kMaxUsernameChars) {
    return InvalidInput("INVALID_USERNAME", "username",
                        absl::StrCat("username must be 1 to ",
                                     kMaxUsernameChars, " characters"));
  }
  for (char c : username) {
    if (!absl::ascii_isalnum(c) && c != '.' && c != '_' && c != '-') {
      return InvalidInput("INVALID_USERNAME", "username",
                          "username may hold only letters, digits, '.', '_' "
                          "and '-'");
    }
  }
  if (LooksLikeUuid(username)) {
    return InvalidInput("INVALID_USERNAME", "username",
                        "username must not look like a UUID");
  }
  if (absl::EqualsIgnoreCase(username, "me")) {
    return InvalidInput("INVALID_USERNAME", "username",
                        "username 'me' is reserved");
  }
  return absl::OkStatus();
}

absl::Status ValidatePassword(absl::string_view password) {
  if (password.size() < kMinPasswordBytes) {
    return InvalidInput("PASSWORD_TOO_SHORT", "password",
                        absl::StrCat("password must be at least ",
                                     kMinPasswordBytes, " bytes"));
  }
  if (password.size() > kMaxPasswordBytes) {
    return InvalidInput("PASSWORD_TOO_LONG", "password",
                        absl::StrCat("password must be at most ",
                                     kMaxPasswordBytes, " bytes"));
  }
  return absl::OkStatus();
}

// Empty is allowed here: it stands for the username.
absl::Status ValidateDisplayName(absl::string_view name) {
  if (CountChars(name) > kMaxDisplayNameChars) {
    return InvalidInput("INVALID_DISPLAY_NAME", "display_name",
                        absl::StrCat("display_name must be at most ",
                                     kMaxDisplayNameChars, " characters"));
  }
  if (HasControlChars(name)) {
    return InvalidInput("INVALID_DISPLAY_NAME", "display_name",
                        "display_name must not contain control characters");
  }
  if (!name.empty() && absl::StripAsciiWhitespace(name).empty()) {
    return InvalidInput("INVALID_DISPLAY_NAME", "display_name",
                        "display_name must not be only white space");
  }
  return absl::OkStatus();
}

absl::Status BadCredentials() {
  return WithReason(
      absl::UnauthenticatedError("wrong username or password"),
      "BAD_CREDENTIALS");
}

absl::Status NotAllowed(absl::string_view what) {
  return WithReason(
      absl::PermissionDeniedError(absl::StrCat(
          "only the user themself or an admin may ", what, " this user")),
      "NOT_ALLOWED", "user");
}

}  // namespace

// ---- AuthService ----

AuthService::AuthService(const Deps& deps) : deps_(deps) {}

const std::string& AuthService::DummyHash() {
  std::call_once(dummy_once_, [this] {
    absl::StatusOr<std::string> hash =
        deps_.passwords->Hash("parley: no such user");
    if (hash.ok()) dummy_hash_ = *std::move(hash);
  });
  return dummy_hash_;
}

grpc::ServerUnaryReactor* AuthService::SignIn(
    grpc::CallbackServerContext* context,
    const parley::v1::SignInRequest* request,
    parley::v1::SignInResponse* response) {
  if (absl::Status s = CheckStrings(*request); !s.ok()) {
    return FinishNow(context, s);
  }
  if (request->username().empty()) {
    return FinishNow(context, InvalidInput("USERNAME_REQUIRED", "username",
                                           "username is required"));
  }
  if (request->password().empty()) {
    return FinishNow(context, InvalidInput("PASSWORD_REQUIRED", "password",
                                           "password is required"));
  }
  // Failures count per address, and per user for names that exist (so
  // made-up names cannot fill the table).
  const std::string address = ClientAddress(deps_, context);
  const std::string username = absl::AsciiStrToLower(request->username());
  if (deps_.quotas != nullptr) {
    if (absl::Status s = deps_.quotas->AdmitSignIn(address, username);
        !s.ok()) {
      return FinishNow(context, s);
    }
  }
  return RunOn(
      deps_.hashing, context,
      [this, context, request, response, address,
       username](grpc::ServerUnaryReactor* reactor) {
        // In a cluster the failures on the other servers count too.
        if (deps_.quotas != nullptr) {
          if (absl::Status s = deps_.quotas->RecheckSignIn(address, username);
              !s.ok()) {
            return FinishWith(reactor, context, s);
          }
        }
        absl::StatusOr<store::User> user =
            deps_.store->GetUserByName(request->username());
        if (!user.ok()) {
          if (!absl::IsNotFound(user.status())) {
            return FinishWith(reactor, context, user.status());
          }
          // Spend the time a real check takes, then refuse.
          deps_.passwords->Verify(DummyHash(), request->password());
          if (deps_.quotas != nullptr) deps_.quotas->SignInFailed(address, "");
          return FinishWith(reactor, context, BadCredentials());
        }
        if (request->password().size() > kMaxPasswordBytes ||
            !deps_.passwords->Verify(user->password_hash,
                                     request->password())) {
          if (deps_.quotas != nullptr) {
            deps_.quotas->SignInFailed(address, username);
          }
          return FinishWith(reactor, context, BadCredentials());
        }
        if (deps_.quotas != nullptr) {
          deps_.quotas->SignInSucceeded(address, username);
        }
        absl::Time expire_time;
        absl::StatusOr<std::string> token =
            deps_.auth->IssueUserToken(*user, &expire_time);
        if (!token.ok()) return FinishWith(reactor, context, token.status());
        response->set_token(*std::move(token));
        ToTimestamp(expire_time, response->mutable_expire_time());
        ToProto(*user, response->mutable_user());
        FinishWith(reactor, context, absl::OkStatus());
      });
}

grpc::ServerUnaryReactor* AuthService::SignOut(
    grpc::CallbackServerContext* context,
    const parley::v1::SignOutRequest* request,
    parley::v1::SignOutResponse* /*response*/) {
  return RunOn(deps_.reads, context,
               [this, context, request](grpc::ServerUnaryReactor* reactor) {
                 if (absl::Status s = CheckStrings(*request); !s.ok()) {
                   return FinishWith(reactor, context, s);
                 }
                 absl::StatusOr<auth::Principal> principal =
                     Authenticate(deps_, context);
                 if (!principal.ok()) {
                   return FinishWith(reactor, context, principal.status());
                 }
                 deps_.auth->Revoke(principal->claims,
                                    [reactor, context](absl::Status s) {
                                      FinishWith(reactor, context, s);
                                    });
               });
}

grpc::ServerUnaryReactor* AuthService::RenewToken(
    grpc::CallbackServerContext* context,
    const parley::v1::RenewTokenRequest* request,
    parley::v1::RenewTokenResponse* response) {
  return RunOn(
      deps_.reads, context,
      [this, context, request, response](grpc::ServerUnaryReactor* reactor) {
        absl::StatusOr<auth::Principal> principal =
            SignedInUser(deps_, context, *request);
        if (!principal.ok()) {
          return FinishWith(reactor, context, principal.status());
        }
        absl::StatusOr<store::User> user =
            deps_.store->GetUser(principal->user_id);
        if (!user.ok()) {
          if (absl::IsNotFound(user.status())) {
            return FinishWith(
                reactor, context,
                WithReason(absl::UnauthenticatedError(
                               "the token's user no longer exists"),
                           "USER_GONE"));
          }
          return FinishWith(reactor, context, user.status());
        }
        absl::Time expire_time;
        absl::StatusOr<std::string> token =
            deps_.auth->IssueUserToken(*user, &expire_time);
        if (!token.ok()) return FinishWith(reactor, context, token.status());
        response->set_token(*std::move(token));
        ToTimestamp(expire_time, response->mutable_expire_time());
        FinishWith(reactor, context, absl::OkStatus());
      });
}

// ---- UserService ----

UserService::UserService(const Deps& deps) : deps_(deps) {}

grpc::ServerUnaryReactor* UserService::CreateUser(
    grpc::CallbackServerContext* context,
    const parley::v1::CreateUserRequest* request,
    parley::v1::User* response) {
  if (absl::Status s = CheckStrings(*request); !s.ok()) {
    return FinishNow(context, s);
  }
  if (absl::Status s = ValidateUsername(request->username()); !s.ok()) {
    return FinishNow(context, s);
  }
  if (absl::Status s = ValidatePassword(request->password()); !s.ok()) {
    return FinishNow(context, s);
  }
  if (absl::Status s = ValidateDisplayName(request->display_name()); !s.ok()) {
    return FinishNow(context, s);
  }
  return RunOn(
      deps_.hashing, context,
      [this, context, request, response](grpc::ServerUnaryReactor* reactor) {
        absl::StatusOr<std::string> hash =
            deps_.passwords->Hash(request->password());
        if (!hash.ok()) return FinishWith(reactor, context, hash.status());

        store::User user;
        user.id = NewUuid();
        user.username = request->username();
        user.display_name = request->display_name().empty()
                                ? request->username()
                                : request->display_name();
        user.password_hash = *std::move(hash);
        user.create_time = user.update_time = StoredNow(deps_);
        ToProto(user, response);  // Filled now; sent only on success.
        const std::string location = absl::StrCat("/v1/users/", user.id);

        deps_.store->Submit(
            store::PutUser{std::move(user), /*create=*/true},
            [reactor, context, location](absl::StatusOr<int64_t> done) {
              if (done.ok()) SetCreated(context, location);
              FinishWith(reactor, context, done.status());
            });
      });
}

grpc::ServerUnaryReactor* UserService::ListUsers(
    grpc::CallbackServerContext* context,
    const parley::v1::ListUsersRequest* request,
    parley::v1::ListUsersResponse* response) {
  return RunOn(
      deps_.reads, context,
      [this, context, request, response](grpc::ServerUnaryReactor* reactor) {
        absl::StatusOr<auth::Principal> principal =
            SignedInUser(deps_, context, *request);
        if (!principal.ok()) {
          return FinishWith(reactor, context, principal.status());
        }
        absl::StatusOr<NamePage> page =
            ParseNamePage(request->page_size(), request->page_token(), "users");
        if (!page.ok()) return FinishWith(reactor, context, page.status());

        // One more than asked tells whether there is a next page.
        absl::StatusOr<std::vector<store::User>> users =
            deps_.store->ListUsers(page->after, page->size + 1);
        if (!users.ok()) return FinishWith(reactor, context, users.status());
        const bool more = users->size() > page->size;
        if (more) users->resize(page->size);
        for (const store::User& user : *users)
          ToProto(user, response->add_users());
        if (more) {
          response->set_next_page_token(
              EncodePageToken("users", users->back().username));
        }
        FinishWith(reactor, context, absl::OkStatus());
      });
}

grpc::ServerUnaryReactor* UserService::GetUser(
    grpc::CallbackServerContext* context,
    const parley::v1::GetUserRequest* request, parley::v1::User* response) {
  return RunOn(
      deps_.reads, context,
      [this, context, request, response](grpc::ServerUnaryReactor* reactor) {
        absl::StatusOr<auth::Principal> principal =
            SignedInUser(deps_, context, *request);
        if (!principal.ok()) {
          return FinishWith(reactor, context, principal.status());
        }
        absl::StatusOr<store::User> user =
            ResolveUser(deps_, request->user(), *principal);
        if (!user.ok()) return FinishWith(reactor, context, user.status());
        ToProto(*user, response);
        FinishWith(reactor, context, absl::OkStatus());
      });
}

grpc::ServerUnaryReactor* UserService::UpdateUser(
    grpc::CallbackServerContext* context,
    const parley::v1::UpdateUserRequest* request,
    parley::v1::User* response) {
  return RunOn(
      request->has_password() ? deps_.hashing : deps_.reads, context,
      [this, context, request, response](grpc::ServerUnaryReactor* reactor) {
        absl::StatusOr<auth::Principal> principal =
            SignedInUser(deps_, context, *request);
        if (!principal.ok()) {
          return FinishWith(reactor, context, principal.status());
        }
        absl::StatusOr<store::User> target =
            ResolveUser(deps_, request->user(), *principal);
        if (!target.ok()) return FinishWith(reactor, context, target.status());
        if (target->id != principal->user_id && !principal->admin) {
          return FinishWith(reactor, context, NotAllowed("change"));
        }
        if (request->has_display_name()) {
          if (absl::Status s = ValidateDisplayName(request->display_name());
              !s.ok()) {
            return FinishWith(reactor, context, s);
          }
        }
        if (request->has_password()) {
          if (absl::Status s = ValidatePassword(request->password()); !s.ok()) {
            return FinishWith(reactor, context, s);
          }
        }
        store::User updated = *std::move(target);
        if (!request->has_display_name() && !request->has_password()) {
          ToProto(updated, response);  // Nothing to change.
          return FinishWith(reactor, context, absl::OkStatus());
        }
        const absl::Time now = StoredNow(deps_);
        if (request->has_display_name()) {
          updated.display_name = request->display_name().empty()
                                     ? updated.username
                                     : request->display_name();
        }
        if (request->has_password()) {
          absl::StatusOr<std::string> hash =
              deps_.passwords->Hash(request->password());
          if (!hash.ok()) return FinishWith(reactor, context, hash.status());
          updated.password_hash = *std::move(hash);
          updated.tokens_valid_after = now;
        }
        updated.update_time = now;
        ToProto(updated, response);  // Sent only on success.

        // A token's issue time has whole seconds, so tokens_valid_after alone
        // cannot refuse a token issued in the same second as the change; the
        // token that changed its own user's password is also revoked by id.
        std::optional<auth::Claims> revoke;
        if (request->has_password() && updated.id == principal->user_id) {
          revoke = principal->claims;
        }
        auth::Authenticator* authenticator = deps_.auth;
        deps_.store->Submit(
            store::PutUser{std::move(updated), /*create=*/false},
            [reactor, context, authenticator,
             revoke = std::move(revoke)](absl::StatusOr<int64_t> done) {
              if (!done.ok() || !revoke.has_value()) {
                return FinishWith(reactor, context, done.status());
              }
              authenticator->Revoke(*revoke,
                                    [reactor, context](absl::Status s) {
                                      FinishWith(reactor, context, s);
                                    });
            });
      });
}

grpc::ServerUnaryReactor* UserService::DeleteUser(
    grpc::CallbackServerContext* context,
    const parley::v1::DeleteUserRequest* request,
    parley::v1::DeleteUserResponse* /*response*/) {
  return RunOn(deps_.reads, context,
               [this, context, request](grpc::ServerUnaryReactor* reactor) {
                 absl::StatusOr<auth::Principal> principal =
                     SignedInUser(deps_, context, *request);
                 if (!principal.ok()) {
                   return FinishWith(reactor, context, principal.status());
                 }
                 absl::StatusOr<store::User> target =
                     ResolveUser(deps_, request->user(), *principal);
                 if (!target.ok()) {
                   return FinishWith(reactor, context, target.status());
                 }
                 if (target->id != principal->user_id && !principal->admin) {
                   return FinishWith(reactor, context, NotAllowed("delete"));
                 }
                 chat::Hub* hub = deps_.hub;
                 std::string id = target->id;
                 deps_.store->Submit(
                     store::DeleteUser{id},
                     [reactor, context, hub, id](absl::StatusOr<int64_t> done) {
                       if (done.ok()) {
                         hub->CloseUserSubscriptions(
                             id, chat::CloseReason::kUserGone);
                       }
                       FinishWith(reactor, context, done.status());
                     });
               });
}

}  // namespace parley::api
