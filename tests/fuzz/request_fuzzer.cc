// The custom request deserializer (proto/request_traits.h):
// proto::DeserializeRequest, as ChatService.Subscribe and every
// SerializationTraits of a parley.v1 request call it, on arbitrary bytes
// split over several slices as gRPC may hand them over, then CheckStrings
// as the services do. It always answers OK; a request that parses is
// delivered as parsed (but for a marker field the bytes held, which is
// dropped) and re-encodes to itself; a refused one is empty but for
// the marker, which names a string field of the request or kNotAMessage,
// and CheckStrings refuses it with INVALID_UTF8 or MALFORMED_REQUEST.
#include <grpcpp/support/byte_buffer.h>
#include <grpcpp/support/slice.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <fuzzer/FuzzedDataProvider.h>

#include "google/protobuf/descriptor.h"
#include "google/protobuf/stubs/logging.h"
#include "google/protobuf/util/message_differencer.h"
#include "parley/v1/accounts.pb.h"
#include "parley/v1/chat.pb.h"
#include "parley/v1/messages.pb.h"
#include "parley/v1/rooms.pb.h"
#include "request_traits.h"
#include "server/api/common.h"
#include "server/common/errors.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;

// The requests tried: Subscribe's first (the raw method), then others
// with several string fields, a repeated one or none.
std::unique_ptr<Message> NewRequest(int which) {
  switch (which) {
    case 0:
      return std::make_unique<parley::v1::SubscribeRequest>();
    case 1:
      return std::make_unique<parley::v1::PostMessageRequest>();
    case 2:
      return std::make_unique<parley::v1::SendRequest>();
    case 3:
      return std::make_unique<parley::v1::CreateUserRequest>();
    case 4:
      return std::make_unique<parley::v1::UpdateRoomRequest>();
    case 5:
      return std::make_unique<parley::v1::ListMessagesRequest>();
    default:
      return std::make_unique<parley::v1::SignOutRequest>();
  }
}

// The bytes as a ByteBuffer of up to 4 slices, cut where the input says.
grpc::ByteBuffer Buffer(FuzzedDataProvider& in) {
  const int cuts = in.ConsumeIntegralInRange<int>(0, 3);
  std::vector<size_t> at;
  for (int i = 0; i < cuts; ++i) at.push_back(in.ConsumeIntegral<uint16_t>());
  const std::string bytes = in.ConsumeRemainingBytesAsString();
  std::vector<grpc::Slice> slices;
  size_t start = 0;
  for (size_t cut : at) {
    const size_t end = std::min(bytes.size(), start + cut);
    slices.emplace_back(bytes.data() + start, end - start);
    start = end;
  }
  slices.emplace_back(bytes.data() + start, bytes.size() - start);
  return grpc::ByteBuffer(slices.data(), slices.size());
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // protobuf logs every string that is not UTF-8; that is the point here.
  google::protobuf::SetLogHandler(nullptr);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  std::unique_ptr<Message> request =
      NewRequest(in.ConsumeIntegralInRange<int>(0, 6));
  grpc::ByteBuffer buffer = Buffer(in);
  std::vector<grpc::Slice> slices;
  FUZZ_CHECK(buffer.Dump(&slices).ok());
  std::string bytes;
  for (const grpc::Slice& s : slices) {
    bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  }

  FUZZ_CHECK(parley::proto::DeserializeRequest(&buffer, request.get()).ok());
  const std::string marker = parley::proto::MalformedField(*request);
  const absl::Status checked = parley::api::CheckStrings(*request);

  std::unique_ptr<Message> direct(request->New());
  const bool parses = direct->ParseFromString(bytes);
  if (parses) {
    // Delivered as protobuf parses it, less any marker field the bytes held.
    direct->GetReflection()->MutableUnknownFields(direct.get())->DeleteByNumber(
        parley::proto::kMalformedFieldMarker);
    FUZZ_CHECK(google::protobuf::util::MessageDifferencer::Equals(*request,
                                                                  *direct));
    FUZZ_CHECK(marker.empty());
    std::unique_ptr<Message> again(request->New());
    FUZZ_CHECK(again->ParseFromString(request->SerializeAsString()));
    FUZZ_CHECK(google::protobuf::util::MessageDifferencer::Equals(*request,
                                                                  *again));
    if (!checked.ok()) {
      FUZZ_CHECK(parley::ErrorReason(checked) == "NUL_CHARACTER");
    }
    return 0;
  }
  // Refused: only the marker is left.
  FUZZ_CHECK(!marker.empty());
  FUZZ_CHECK(request->ByteSizeLong() > 0);
  std::vector<const FieldDescriptor*> fields;
  request->GetReflection()->ListFields(*request, &fields);
  FUZZ_CHECK(fields.empty());
  FUZZ_CHECK(checked.code() == absl::StatusCode::kInvalidArgument);
  if (marker == parley::proto::kNotAMessage) {
    FUZZ_CHECK(parley::ErrorReason(checked) == "MALFORMED_REQUEST");
  } else {
    const FieldDescriptor* fd =
        request->GetDescriptor()->FindFieldByName(marker);
    FUZZ_CHECK(fd != nullptr && fd->type() == FieldDescriptor::TYPE_STRING);
    FUZZ_CHECK(parley::ErrorReason(checked) == "INVALID_UTF8");
    FUZZ_CHECK(parley::ErrorField(checked) == marker);
  }
  return 0;
}
