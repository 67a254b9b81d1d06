#include "server/common/client_address.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>
#include <optional>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace parley {
namespace {

using Bytes = std::array<unsigned char, 16>;

// `ip` as 16 bytes (IPv4 mapped into IPv6), and whether it was IPv4.
std::optional<std::pair<Bytes, bool>> ParseIp(absl::string_view ip) {
  const std::string text(ip);
  Bytes out{};
  in_addr v4;
  if (inet_pton(AF_INET, text.c_str(), &v4) == 1) {
    out[10] = out[11] = 0xff;
    std::memcpy(out.data() + 12, &v4, 4);
    return std::make_pair(out, true);
  }
  in6_addr v6;
  if (inet_pton(AF_INET6, text.c_str(), &v6) == 1) {
    std::memcpy(out.data(), v6.s6_addr, 16);
    return std::make_pair(out, false);
  }
  return std::nullopt;
}

bool IsMappedV4(const Bytes& b) {
  static constexpr unsigned char kPrefix[12] = {0, 0, 0, 0, 0,    0,
                                                0, 0, 0, 0, 0xff, 0xff};
  return std::equal(kPrefix, kPrefix + 12, b.begin());
}

}  // namespace

absl::StatusOr<AddressSet> AddressSet::Parse(
    const std::vector<std::string>& entries) {
  AddressSet set;
  for (const std::string& raw : entries) {
    absl::string_view entry = absl::StripAsciiWhitespace(raw);
    if (entry.empty()) continue;
    std::pair<absl::string_view, absl::string_view> parts =
        absl::StrSplit(entry, absl::MaxSplits('/', 1));
    auto ip = ParseIp(parts.first);
    int bits = 0;
    bool ok = ip.has_value();
    if (ok) {
      const int max = ip->second ? 32 : 128;
      if (parts.second.empty() && entry.find('/') == absl::string_view::npos) {
        bits = max;
      } else {
        ok = absl::SimpleAtoi(parts.second, &bits) && bits >= 0 && bits <= max;
      }
      if (ip->second) bits += 96;
    }
    if (!ok) {
      return absl::InvalidArgumentError(absl::StrCat(
          "\"", entry, "\" is not an IP address or CIDR prefix"));
    }
    set.prefixes_.push_back(Prefix{ip->first, bits});
  }
  return set;
}

bool AddressSet::Contains(absl::string_view ip) const {
  auto parsed = ParseIp(ip);
  if (!parsed.has_value()) return false;
  const Bytes& b = parsed->first;
  for (const Prefix& p : prefixes_) {
    const int whole = p.bits / 8;
    const int rest = p.bits % 8;
    if (!std::equal(p.bytes.begin(), p.bytes.begin() + whole, b.begin())) {
      continue;
    }
    if (rest != 0) {
      const unsigned char mask = static_cast<unsigned char>(0xff << (8 - rest));
      if ((p.bytes[whole] & mask) != (b[whole] & mask)) continue;
    }
    return true;
  }
  return false;
}

std::string PeerIp(absl::string_view peer) {
  if (absl::ConsumePrefix(&peer, "ipv4:")) {
    const size_t colon = peer.rfind(':');
    return std::string(peer.substr(0, colon));
  }
  if (absl::ConsumePrefix(&peer, "ipv6:")) {
    // "[addr]:port", the address possibly with a %zone.
    if (!absl::ConsumePrefix(&peer, "[")) return "";
    peer = peer.substr(0, peer.find(']'));
    return std::string(peer.substr(0, peer.find('%')));
  }
  return "";
}

std::string ClientIp(absl::string_view peer_ip,
                     const std::vector<absl::string_view>& forwarded_for,
                     const AddressSet& proxies) {
  std::string client(peer_ip);
  if (proxies.empty() || !proxies.Contains(client)) return client;
  std::vector<absl::string_view> hops;
  for (absl::string_view header : forwarded_for) {
    for (absl::string_view hop : absl::StrSplit(header, ',')) {
      hops.push_back(absl::StripAsciiWhitespace(hop));
    }
  }
  for (auto it = hops.rbegin(); it != hops.rend(); ++it) {
    if (!ParseIp(*it).has_value()) break;
    client = std::string(*it);
    if (!proxies.Contains(client)) break;
  }
  return client;
}

std::string AddressKey(absl::string_view ip) {
  auto parsed = ParseIp(ip);
  if (!parsed.has_value()) return "unknown";
  Bytes b = parsed->first;
  if (IsMappedV4(b)) {
    char out[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, b.data() + 12, out, sizeof(out));
    return out;
  }
  std::fill(b.begin() + 8, b.end(), 0);
  char out[INET6_ADDRSTRLEN];
  inet_ntop(AF_INET6, b.data(), out, sizeof(out));
  return absl::StrCat(out, "/64");
}

}  // namespace parley
