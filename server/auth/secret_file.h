// Files holding a secret that several processes sharing a directory may
// create at the same moment (servers starting together on one volume): the
// first to link its file into place wins, and every other reads the
// winner's. The token key (tokens.h) and the gateways' edge secret
// (docs/fanout.md) are kept this way.
#ifndef PARLEY_SERVER_AUTH_SECRET_FILE_H_
#define PARLEY_SERVER_AUTH_SECRET_FILE_H_

#include <optional>
#include <string>

#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace parley::auth {

// The whole regular file at `path`; nullopt with *err set to errno when it
// cannot be read.
std::optional<std::string> ReadWholeFile(const std::string& path, int* err);

// Creates `path` holding `contents`, atomically: they are written and synced
// to a private temporary file (mode 0600) in the same directory, which is
// then hard-linked to `path`, so no reader ever sees a partial file. When
// `path` exists already (another process linked its file first), it is left
// as it is and its contents are returned; otherwise `contents`. `what` names
// the file in errors ("the token key").
absl::StatusOr<std::string> CreateFileOnce(const std::string& path,
                                           absl::string_view contents,
                                           absl::string_view what);

// The contents of `path`. When there is no such file, first creates it
// (CreateFileOnce) with what `make` returns, so that every process given
// the same path reads the same contents; `what` names it in errors.
absl::StatusOr<std::string> ReadOrCreateFile(
    const std::string& path, absl::string_view what,
    absl::FunctionRef<absl::StatusOr<std::string>()> make);

// The shared secret in `path`, without leading or trailing white space.
// With no file at `path`, first creates it (CreateFileOnce) with a fresh
// random secret of 64 hex digits, so that every server given the same file
// uses the same secret. A file that holds nothing but white space, or
// characters other than printable ASCII (the secret travels as gRPC
// metadata), is an error.
absl::StatusOr<std::string> LoadOrCreateSecret(const std::string& path);

// The edge secret of the server's flags: `secret` (--edge_secret) or the
// one in `secret_file` (--edge_secret_file, LoadOrCreateSecret); both set
// is an error. Empty when neither is set.
absl::StatusOr<std::string> EdgeSecretFromFlags(const std::string& secret,
                                                const std::string& secret_file);

}  // namespace parley::auth

#endif  // PARLEY_SERVER_AUTH_SECRET_FILE_H_
