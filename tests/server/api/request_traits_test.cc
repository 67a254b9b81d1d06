#include "request_traits.h"

#include <grpcpp/support/byte_buffer.h>
#include <grpcpp/support/slice.h>

#include <string>

#include "gtest/gtest.h"
#include "parley/v1/chat.pb.h"

namespace parley::proto {
namespace {

grpc::ByteBuffer Buffer(const std::string& bytes) {
  grpc::Slice slice(bytes.data(), bytes.size());
  return grpc::ByteBuffer(&slice, 1);
}

// Field kMalformedFieldMarker (536870911), length-delimited, holding `value`.
std::string MarkerField(const std::string& value) {
  return std::string("\xfa\xff\xff\xff\x0f", 5) +
         static_cast<char>(value.size()) + value;
}

TEST(RequestTraitsTest, ParsedRequestHasNoMarker) {
  parley::v1::SubscribeRequest sent;
  sent.set_id("alice");
  grpc::ByteBuffer buffer = Buffer(sent.SerializeAsString());
  parley::v1::SubscribeRequest got;
  ASSERT_TRUE(DeserializeRequest(&buffer, &got).ok());
  EXPECT_EQ(got.id(), "alice");
  EXPECT_EQ(MalformedField(got), "");
}

TEST(RequestTraitsTest, MalformedUtf8NamesTheField) {
  // room (field 2) = "\xff"
  grpc::ByteBuffer buffer = Buffer(std::string("\x12\x01\xff", 3));
  parley::v1::SubscribeRequest got;
  ASSERT_TRUE(DeserializeRequest(&buffer, &got).ok());
  EXPECT_EQ(MalformedField(got), "room");
  EXPECT_EQ(got.room(), "");
}

TEST(RequestTraitsTest, BytesThatAreNoMessageAreMarked) {
  grpc::ByteBuffer buffer = Buffer(std::string("\x0a\x05" "ab", 4));
  parley::v1::SubscribeRequest got;
  ASSERT_TRUE(DeserializeRequest(&buffer, &got).ok());
  EXPECT_EQ(MalformedField(got), kNotAMessage);
}

// Found by tests/fuzz/request_fuzzer: a request that parsed but carried the
// marker's field number itself was refused as INVALID_UTF8 for the field it
// named (or MALFORMED_REQUEST for "*").
TEST(RequestTraitsTest, MarkerSentByTheClientIsDropped) {
  parley::v1::SubscribeRequest sent;
  sent.set_id("alice");
  for (const char* value : {"id", "room", kNotAMessage}) {
    grpc::ByteBuffer buffer =
        Buffer(sent.SerializeAsString() + MarkerField(value));
    parley::v1::SubscribeRequest got;
    ASSERT_TRUE(DeserializeRequest(&buffer, &got).ok());
    EXPECT_EQ(MalformedField(got), "") << value;
    EXPECT_EQ(got.id(), "alice");
    EXPECT_TRUE(got.GetReflection()->GetUnknownFields(got).empty());
  }
}

}  // namespace
}  // namespace parley::proto
