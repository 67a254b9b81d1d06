// Request validation: server/chat/validate.h's rules for ids and message
// texts, and api/common.h's pure checks of what clients send (CheckStrings
// on a request holding arbitrary strings, UUID shapes, page tokens and
// sizes, character counts, control characters). Each is compared with a
// plain restatement of its rule.
#include <cstddef>
#include <cstdint>
#include <string>

#include <fuzzer/FuzzedDataProvider.h>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "parley/v1/chat.pb.h"
#include "parley/v1/messages.pb.h"
#include "server/api/common.h"
#include "server/chat/validate.h"
#include "server/common/errors.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using parley::ErrorField;
using parley::ErrorReason;

bool IsInvalid(const absl::Status& s, const std::string& reason,
               const std::string& field) {
  return s.code() == absl::StatusCode::kInvalidArgument &&
         ErrorReason(s) == reason && ErrorField(s) == field;
}

void CheckClientId(const std::string& id, size_t max) {
  const absl::Status s = parley::chat::ValidateClientId(id, max, "client_id");
  bool control = false;
  for (unsigned char c : id) control |= c < 0x20 || c == 0x7F;
  if (id.empty()) {
    FUZZ_CHECK(IsInvalid(s, "CLIENT_ID_REQUIRED", "client_id"));
  } else if (id.size() > max) {
    FUZZ_CHECK(IsInvalid(s, "CLIENT_ID_TOO_LONG", "client_id"));
  } else if (control) {
    FUZZ_CHECK(IsInvalid(s, "INVALID_CLIENT_ID", "client_id"));
  } else {
    FUZZ_CHECK(s.ok());
  }
}

void CheckMessageText(const std::string& text, size_t max) {
  const absl::Status s = parley::chat::ValidateMessageText(text, max);
  bool blank = true;
  for (unsigned char c : text) blank &= absl::ascii_isspace(c);
  if (text.size() > max) {
    FUZZ_CHECK(IsInvalid(s, "MESSAGE_TOO_LONG", "message"));
  } else if (blank) {
    FUZZ_CHECK(IsInvalid(s, "MESSAGE_REQUIRED", "message"));
  } else {
    FUZZ_CHECK(s.ok());
  }
}

void CheckUuidShape(const std::string& s) {
  bool shaped = s.size() == 36;
  for (size_t i = 0; shaped && i < s.size(); ++i) {
    const bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    shaped = dash ? s[i] == '-'
                  : absl::ascii_isxdigit(static_cast<unsigned char>(s[i]));
  }
  FUZZ_CHECK(parley::api::LooksLikeUuid(s) == shaped);
}

void CheckChars(const std::string& s, bool line_breaks) {
  size_t starts = 0;
  for (unsigned char c : s) starts += (c & 0xC0) != 0x80;
  FUZZ_CHECK(parley::api::CountChars(s) == starts);
  FUZZ_CHECK(parley::api::CountChars(s) <= s.size());
  const bool control = parley::api::HasControlChars(s, line_breaks);
  // Any C0 control but the allowed line breaks, or DEL, is one.
  for (unsigned char c : s) {
    if ((c < 0x20 && !(line_breaks && (c == '\n' || c == '\r' || c == '\t'))) ||
        c == 0x7F) {
      FUZZ_CHECK(control);
    }
  }
  // Without line breaks allowed there are at least as many controls.
  if (control && line_breaks) FUZZ_CHECK(parley::api::HasControlChars(s));
}

void CheckPageToken(const std::string& kind, const std::string& key,
                    const std::string& token) {
  // Every key (but "", the first page) survives its token.
  const std::string encoded = parley::api::EncodePageToken(kind, key);
  absl::StatusOr<std::string> back = parley::api::DecodePageToken(kind, encoded);
  if (key.empty()) {
    FUZZ_CHECK(!back.ok());
  } else {
    FUZZ_CHECK(back.ok() && *back == key);
  }
  // Any other token decodes to a key, or is INVALID_PAGE_TOKEN.
  absl::StatusOr<std::string> any = parley::api::DecodePageToken(kind, token);
  if (token.empty()) {
    FUZZ_CHECK(any.ok() && any->empty());
  } else if (!any.ok()) {
    FUZZ_CHECK(IsInvalid(any.status(), "INVALID_PAGE_TOKEN", "page_token"));
  } else {
    FUZZ_CHECK(!any->empty());
  }
}

void CheckPageSize(uint32_t requested, size_t fallback, size_t max) {
  absl::StatusOr<size_t> size =
      parley::api::PageSize(requested, fallback, max, "page_size");
  if (requested == 0) {
    FUZZ_CHECK(size.ok() && *size == fallback);
  } else if (requested > max) {
    FUZZ_CHECK(IsInvalid(size.status(), "PAGE_TOO_LARGE", "page_size"));
  } else {
    FUZZ_CHECK(size.ok() && *size == requested);
  }
}

// CheckStrings on requests whose strings are set directly (as a request
// that parsed would have them, NUL included): NUL_CHARACTER names the first
// field that holds one, and nothing else is refused.
void CheckRequestStrings(const std::string& a, const std::string& b,
                         const std::string& c) {
  parley::v1::PostMessageRequest post;
  post.set_room(a);
  post.set_text(b);
  post.set_idempotency_key(c);
  const absl::Status s = parley::api::CheckStrings(post);
  const bool nul_a = absl::StrContains(a, '\0');
  const bool nul_b = absl::StrContains(b, '\0');
  const bool nul_c = absl::StrContains(c, '\0');
  if (nul_a || nul_b || nul_c) {
    FUZZ_CHECK(s.code() == absl::StatusCode::kInvalidArgument);
    FUZZ_CHECK(ErrorReason(s) == "NUL_CHARACTER");
    const std::string field = ErrorField(s);
    FUZZ_CHECK((field == "room" && nul_a) || (field == "text" && nul_b) ||
               (field == "idempotency_key" && nul_c));
  } else {
    FUZZ_CHECK(s.ok());
  }
  parley::v1::SubscribeRequest subscribe;
  subscribe.set_id(a);
  subscribe.set_room(b);
  const absl::Status t = parley::api::CheckStrings(subscribe);
  FUZZ_CHECK(t.ok() == !(nul_a || nul_b));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  const size_t max = in.ConsumeIntegralInRange<size_t>(0, 256);
  const std::string a = in.ConsumeRandomLengthString(512);
  const std::string b = in.ConsumeRandomLengthString(512);
  const std::string c = in.ConsumeRemainingBytesAsString();

  CheckClientId(a, max);
  CheckClientId(c, 128);
  CheckMessageText(b, max);
  CheckMessageText(c, 4096);
  CheckUuidShape(a);
  CheckUuidShape(c);
  CheckChars(c, false);
  CheckChars(c, true);
  CheckPageToken(a, b, c);
  CheckPageToken("rooms", c, c);
  CheckPageSize(static_cast<uint32_t>(max * 16777216u + a.size()), b.size(),
                c.size());
  CheckRequestStrings(a, b, c);
  return 0;
}
