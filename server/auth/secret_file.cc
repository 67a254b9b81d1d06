#include "server/auth/secret_file.h"

#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace parley::auth {
namespace {

// Random bytes in a new secret (written as twice as many hex digits).
constexpr size_t kSecretBytes = 32;

std::string ErrnoText(int err) { return std::strerror(err); }

absl::Status WriteAll(int fd, absl::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return absl::InternalError(ErrnoText(errno));
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

// The directory of `path`: what comes before its last slash.
std::string DirOf(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

}  // namespace

std::optional<std::string> ReadWholeFile(const std::string& path, int* err) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    *err = errno;
    return std::nullopt;
  }
  std::string contents;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR) continue;
      *err = errno;
      ::close(fd);
      return std::nullopt;
    }
    if (n == 0) break;
    contents.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return contents;
}

absl::StatusOr<std::string> CreateFileOnce(const std::string& path,
                                           absl::string_view contents,
                                           absl::string_view what) {
  const std::string dir = DirOf(path);
  std::string tmp_template = path + ".tmp.XXXXXX";
  std::vector<char> tmp(tmp_template.begin(), tmp_template.end());
  tmp.push_back('\0');
  const int fd = ::mkstemp(tmp.data());  // mode 0600
  if (fd < 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot create ", what, " in ", dir, ": ", ErrnoText(errno)));
  }
  const std::string tmp_path(tmp.data());
  absl::Status written = WriteAll(fd, contents);
  if (written.ok() && ::fchmod(fd, S_IRUSR | S_IWUSR) != 0) {
    written = absl::InternalError(ErrnoText(errno));
  }
  if (written.ok() && ::fsync(fd) != 0) {
    written = absl::InternalError(ErrnoText(errno));
  }
  ::close(fd);
  if (!written.ok()) {
    ::unlink(tmp_path.c_str());
    return absl::InternalError(absl::StrCat("cannot write ", tmp_path, ": ",
                                            written.message()));
  }
  int link_err = 0;
  if (::link(tmp_path.c_str(), path.c_str()) != 0) link_err = errno;
  if (link_err == EPERM || link_err == ENOTSUP || link_err == EOPNOTSUPP) {
    // A file system without hard links: rename instead. Not exclusive, but
    // only processes starting at once on one new directory could differ.
    link_err = ::rename(tmp_path.c_str(), path.c_str()) == 0 ? 0 : errno;
  }
  ::unlink(tmp_path.c_str());
  if (link_err != 0 && link_err != EEXIST) {
    return absl::InternalError(absl::StrCat("cannot create ", path, ": ",
                                            ErrnoText(link_err)));
  }
  const int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd >= 0) {
    ::fsync(dir_fd);  // best effort: make the new name durable
    ::close(dir_fd);
  }
  if (link_err == 0) return std::string(contents);
  // Lost a race with another process: use what it wrote.
  int err = 0;
  std::optional<std::string> existing = ReadWholeFile(path, &err);
  if (!existing.has_value()) {
    return absl::InternalError(
        absl::StrCat("cannot read ", path, ": ", ErrnoText(err)));
  }
  return *std::move(existing);
}

absl::StatusOr<std::string> ReadOrCreateFile(
    const std::string& path, absl::string_view what,
    absl::FunctionRef<absl::StatusOr<std::string>()> make) {
  int err = 0;
  std::optional<std::string> contents = ReadWholeFile(path, &err);
  if (contents.has_value()) return *std::move(contents);
  if (err != ENOENT) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot read ", path, ": ", ErrnoText(err)));
  }
  absl::StatusOr<std::string> fresh = make();
  if (!fresh.ok()) return fresh.status();
  return CreateFileOnce(path, *fresh, what);
}

absl::StatusOr<std::string> LoadOrCreateSecret(const std::string& path) {
  absl::StatusOr<std::string> contents =
      ReadOrCreateFile(path, "the secret", []() -> absl::StatusOr<std::string> {
        if (sodium_init() < 0) {
          return absl::InternalError("libsodium failed to start");
        }
        unsigned char raw[kSecretBytes];
        char hex[2 * kSecretBytes + 1];
        randombytes_buf(raw, sizeof(raw));
        sodium_bin2hex(hex, sizeof(hex), raw, sizeof(raw));
        std::string fresh = absl::StrCat(hex, "\n");
        sodium_memzero(raw, sizeof(raw));
        sodium_memzero(hex, sizeof(hex));
        return fresh;
      });
  if (!contents.ok()) return contents.status();
  std::string secret(absl::StripAsciiWhitespace(*contents));
  if (secret.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        path, " holds no secret: write one into it, or remove it for a new "
        "one to be made"));
  }
  for (const char c : secret) {
    if (c < 0x20 || c > 0x7e) {
      return absl::FailedPreconditionError(absl::StrCat(
          path, " holds a character that is not printable ASCII; the secret "
          "travels as gRPC metadata, which takes only those"));
    }
  }
  return secret;
}

absl::StatusOr<std::string> EdgeSecretFromFlags(
    const std::string& secret, const std::string& secret_file) {
  if (!secret.empty() && !secret_file.empty()) {
    return absl::InvalidArgumentError(
        "give --edge_secret or --edge_secret_file, not both");
  }
  if (secret_file.empty()) return secret;
  absl::StatusOr<std::string> loaded = LoadOrCreateSecret(secret_file);
  if (!loaded.ok()) {
    return absl::Status(loaded.status().code(),
                        absl::StrCat("--edge_secret_file: ",
                                     loaded.status().message()));
  }
  return loaded;
}

}  // namespace parley::auth
