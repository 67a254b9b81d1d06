// parley.v1.AuthService and parley.v1.UserService on the gRPC callback API
// (see proto/parley/v1/accounts.proto for the contract).
//
// Nothing blocks a gRPC thread: store reads run on the store-read pool, and
// password hashing and verifying (argon2id, about 0.1 s of CPU and 64 MiB
// each at the default cost) on the hashing pool (Deps::reads,
// Deps::hashing; see RunOn). Every write goes through the store's
// group-committed writer, and the call finishes from the write's completion
// (on the writer thread).
//
// Also here: the input rules and small helpers that RoomService shares.
// `deps` must outlive the services and every call they started.
#ifndef PARLEY_SERVER_API_ACCOUNT_SERVICE_H_
#define PARLEY_SERVER_API_ACCOUNT_SERVICE_H_

#include <grpcpp/grpcpp.h>

#include <cstddef>
#include <mutex>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "parley/v1/accounts.grpc.pb.h"
#include "server/api/common.h"

namespace parley::api {

class AuthService final : public parley::v1::AuthService::CallbackService {
 public:
  explicit AuthService(const Deps& deps);

  // UNAUTHENTICATED (reason BAD_CREDENTIALS, no field) for an unknown user
  // and for a wrong password alike; INVALID_ARGUMENT when either is empty.
  grpc::ServerUnaryReactor* SignIn(grpc::CallbackServerContext* context,
                                   const parley::v1::SignInRequest* request,
                                   parley::v1::SignInResponse* response)
      override;
  // Revokes the token of the call, a user's or a room token, durably; it
  // finishes once the revocation is committed.
  grpc::ServerUnaryReactor* SignOut(grpc::CallbackServerContext* context,
                                    const parley::v1::SignOutRequest* request,
                                    parley::v1::SignOutResponse* response)
      override;
  // A fresh user token for the caller (a user token is required).
  grpc::ServerUnaryReactor* RenewToken(
      grpc::CallbackServerContext* context,
      const parley::v1::RenewTokenRequest* request,
      parley::v1::RenewTokenResponse* response) override;

 private:
  // A hash of no real password, verified against when the username is
  // unknown so that a sign-in takes as long whether or not the user exists.
  const std::string& DummyHash();

  const Deps deps_;
  std::once_flag dummy_once_;
  std::string dummy_hash_;
};

class UserService final : public parley::v1::UserService::CallbackService {
 public:
  explicit UserService(const Deps& deps);

  // Needs no token. 201 + Location /v1/users/<id> through the gateway.
  // INVALID_ARGUMENT: INVALID_USERNAME (username), PASSWORD_TOO_SHORT /
  // PASSWORD_TOO_LONG (password), INVALID_DISPLAY_NAME (display_name).
  // ALREADY_EXISTS (USERNAME_TAKEN) from the store.
  grpc::ServerUnaryReactor* CreateUser(
      grpc::CallbackServerContext* context,
      const parley::v1::CreateUserRequest* request,
      parley::v1::User* response) override;
  // Pages by username; the page token is opaque (INVALID_ARGUMENT, reason
  // INVALID_PAGE_TOKEN, field page_token, when it is not one we issued).
  grpc::ServerUnaryReactor* ListUsers(
      grpc::CallbackServerContext* context,
      const parley::v1::ListUsersRequest* request,
      parley::v1::ListUsersResponse* response) override;
  grpc::ServerUnaryReactor* GetUser(grpc::CallbackServerContext* context,
                                    const parley::v1::GetUserRequest* request,
                                    parley::v1::User* response) override;
  // Self or admin (PERMISSION_DENIED, reason NOT_ALLOWED). An empty
  // display_name resets it to the username. A new password is re-hashed and
  // every token issued before the change is refused from then on (the
  // user's tokens_valid_after; the calling token, when it is the user's own,
  // is also revoked by id).
  grpc::ServerUnaryReactor* UpdateUser(
      grpc::CallbackServerContext* context,
      const parley::v1::UpdateUserRequest* request,
      parley::v1::User* response) override;
  // Self or admin (PERMISSION_DENIED, reason NOT_ALLOWED). After the commit
  // every open stream of the user ends (chat::CloseReason::kUserGone).
  grpc::ServerUnaryReactor* DeleteUser(
      grpc::CallbackServerContext* context,
      const parley::v1::DeleteUserRequest* request,
      parley::v1::DeleteUserResponse* response) override;

 private:
  const Deps deps_;
};

}  // namespace parley::api

#endif  // PARLEY_SERVER_API_ACCOUNT_SERVICE_H_
