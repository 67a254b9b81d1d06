#include "server/common/client_address.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace parley {
namespace {

AddressSet Set(const std::vector<std::string>& entries) {
  absl::StatusOr<AddressSet> set = AddressSet::Parse(entries);
  EXPECT_TRUE(set.ok()) << set.status();
  return set.ok() ? *set : AddressSet();
}

TEST(AddressSetTest, MatchesAddressesAndPrefixesOfBothFamilies) {
  AddressSet set = Set({"10.0.0.0/8", "192.0.2.7", "fd00::/8", " ::1 "});
  EXPECT_TRUE(set.Contains("10.1.2.3"));
  EXPECT_TRUE(set.Contains("192.0.2.7"));
  EXPECT_FALSE(set.Contains("192.0.2.8"));
  EXPECT_FALSE(set.Contains("11.0.0.1"));
  EXPECT_TRUE(set.Contains("fd12::5"));
  EXPECT_TRUE(set.Contains("::1"));
  EXPECT_TRUE(set.Contains("::ffff:10.9.9.9")) << "IPv4-mapped";
  EXPECT_FALSE(set.Contains("fe80::1"));
  EXPECT_FALSE(set.Contains("not an address"));
  EXPECT_TRUE(Set({"10.128.0.0/9"}).Contains("10.200.0.1"));
  EXPECT_FALSE(Set({"10.128.0.0/9"}).Contains("10.100.0.1"));
}

TEST(AddressSetTest, RefusesWhatIsNotAnAddressOrPrefix) {
  for (const char* bad : {"10.0.0.0/33", "example.com", "10.0.0.0/", "::/129",
                          "1.2.3.4/x"}) {
    EXPECT_FALSE(AddressSet::Parse({bad}).ok()) << bad;
  }
}

TEST(PeerIpTest, ReadsGrpcPeers) {
  EXPECT_EQ(PeerIp("ipv4:127.0.0.1:5000"), "127.0.0.1");
  EXPECT_EQ(PeerIp("ipv6:[::1]:5000"), "::1");
  EXPECT_EQ(PeerIp("ipv6:[fe80::1%eth0]:5000"), "fe80::1");
  EXPECT_EQ(PeerIp("unix:/tmp/s"), "");
}

TEST(ClientIpTest, TrustsForwardedForOnlyFromProxies) {
  AddressSet proxies = Set({"127.0.0.1", "10.0.0.0/8"});
  // Not through a proxy: the peer, whatever the header says.
  EXPECT_EQ(ClientIp("203.0.113.5", {"198.51.100.1"}, proxies), "203.0.113.5");
  // Through the gateway: the address it saw.
  EXPECT_EQ(ClientIp("127.0.0.1", {"203.0.113.5"}, proxies), "203.0.113.5");
  // A client's own forged entry sits left of what the proxies wrote.
  EXPECT_EQ(ClientIp("127.0.0.1", {"198.51.100.1, 203.0.113.5, 10.0.0.2"},
                     proxies),
            "203.0.113.5");
  EXPECT_EQ(ClientIp("127.0.0.1", {"198.51.100.1", "203.0.113.5"}, proxies),
            "203.0.113.5");
  // Garbage ends the walk at the last proxy.
  EXPECT_EQ(ClientIp("127.0.0.1", {"junk"}, proxies), "127.0.0.1");
  // No proxies configured: the peer.
  EXPECT_EQ(ClientIp("127.0.0.1", {"203.0.113.5"}, AddressSet()), "127.0.0.1");
}

TEST(AddressKeyTest, KeysIpv6ByItsSlash64) {
  EXPECT_EQ(AddressKey("203.0.113.5"), "203.0.113.5");
  EXPECT_EQ(AddressKey("::ffff:203.0.113.5"), "203.0.113.5");
  EXPECT_EQ(AddressKey("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64");
  EXPECT_EQ(AddressKey("2001:db8:1:2:bbbb::9"), "2001:db8:1:2::/64");
  EXPECT_EQ(AddressKey(""), "unknown");
}

}  // namespace
}  // namespace parley
