#include "request_traits.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/stubs/common.h>
#include <google/protobuf/unknown_field_set.h>

namespace parley::proto {

using google::protobuf::FieldDescriptor;
using google::protobuf::UnknownField;
using google::protobuf::UnknownFieldSet;

grpc::Status DeserializeRequest(grpc::ByteBuffer* buffer,
                                google::protobuf::Message* msg) {
  bool parsed;
  {
    grpc::ProtoBufferReader reader(buffer);
    if (!reader.status().ok()) return reader.status();
    parsed = msg->ParseFromZeroCopyStream(&reader);
  }
  std::string bad_field;
  if (!parsed) {
    // Read the same bytes again without UTF-8 checks to find the culprit.
    grpc::ProtoBufferReader reader(buffer);
    UnknownFieldSet raw;
    if (raw.ParseFromZeroCopyStream(&reader)) {
      const auto* descriptor = msg->GetDescriptor();
      for (int i = 0; i < raw.field_count() && bad_field.empty(); ++i) {
        const UnknownField& f = raw.field(i);
        const FieldDescriptor* fd = descriptor->FindFieldByNumber(f.number());
        if (f.type() == UnknownField::TYPE_LENGTH_DELIMITED && fd != nullptr &&
            fd->type() == FieldDescriptor::TYPE_STRING &&
            !google::protobuf::internal::IsStructurallyValidUTF8(
                f.length_delimited())) {
          bad_field = fd->name();
        }
      }
    }
  }
  buffer->Clear();
  if (parsed) {
    // The marker is the server's alone: a client's field of that number
    // would otherwise pass a request that parsed for one that did not.
    UnknownFieldSet* unknown = msg->GetReflection()->MutableUnknownFields(msg);
    if (!unknown->empty()) unknown->DeleteByNumber(kMalformedFieldMarker);
    return grpc::Status::OK;
  }
  if (bad_field.empty()) bad_field = kNotAMessage;
  msg->Clear();
  msg->GetReflection()->MutableUnknownFields(msg)->AddLengthDelimited(
      kMalformedFieldMarker, bad_field);
  return grpc::Status::OK;
}

std::string MalformedField(const google::protobuf::Message& msg) {
  const UnknownFieldSet& unknown = msg.GetReflection()->GetUnknownFields(msg);
  for (int i = 0; i < unknown.field_count(); ++i) {
    const UnknownField& f = unknown.field(i);
    if (f.number() == kMalformedFieldMarker &&
        f.type() == UnknownField::TYPE_LENGTH_DELIMITED) {
      return f.length_delimited();
    }
  }
  return "";
}

}  // namespace parley::proto
