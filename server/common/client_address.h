// Which address a call comes from, for per-address limits: the peer of the
// connection, unless the peer is a proxy the operator trusts
// (--trusted_proxies: the gateway, a load balancer), in which case the
// address that proxy saw, from the `x-forwarded-for` list it extended.
// Plain functions and an immutable set: thread-safe.
#ifndef PARLEY_SERVER_COMMON_CLIENT_ADDRESS_H_
#define PARLEY_SERVER_COMMON_CLIENT_ADDRESS_H_

#include <array>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace parley {

// IP addresses and CIDR prefixes (IPv4 and IPv6).
class AddressSet {
 public:
  AddressSet() = default;
  // From entries such as "10.0.0.0/8", "127.0.0.1", "fd00::/8";
  // INVALID_ARGUMENT naming the first that is none of these.
  static absl::StatusOr<AddressSet> Parse(const std::vector<std::string>& entries);
  bool empty() const { return prefixes_.empty(); }
  // Whether `ip` (text, IPv4, IPv6 or IPv4-mapped IPv6) is in the set.
  bool Contains(absl::string_view ip) const;

 private:
  struct Prefix {
    std::array<unsigned char, 16> bytes{};  // IPv4 as IPv4-mapped IPv6
    int bits = 0;
  };
  std::vector<Prefix> prefixes_;
};

// The IP address of a gRPC peer string ("ipv4:1.2.3.4:5", "ipv6:[::1]:5");
// empty for others (a Unix socket).
std::string PeerIp(absl::string_view grpc_peer);

// The client's address: `peer_ip` unless it is in `proxies`; then the
// rightmost entry of `forwarded_for` (comma-separated lists, in the order
// the headers came) that is not in `proxies`, or the leftmost one when all
// are; entries a proxy could not have written (not an IP address) end the
// walk there.
std::string ClientIp(absl::string_view peer_ip,
                     const std::vector<absl::string_view>& forwarded_for,
                     const AddressSet& proxies);

// The key of a client address for per-address limits: an IPv4 address
// whole, an IPv6 address by its /64 (one subscriber's usual share, which an
// attacker gets as cheaply as one address), "unknown" for anything else.
std::string AddressKey(absl::string_view ip);

}  // namespace parley

#endif  // PARLEY_SERVER_COMMON_CLIENT_ADDRESS_H_
