// The store's decoding of its own rows: an events-table row with arbitrary
// column values (as a damaged or future database could hold) through
// store::DecodeEventRow, which SqliteStore and PostgresStore both use, with
// the stored integers turned into times by each store's FromMicros and the
// kind codes of event_codes.h. A row decodes exactly when its kind code is
// one a log entry has, into an event holding the row's values; the kind
// codes and both stores' times round-trip.
#include <cstddef>
#include <cstdint>
#include <string>

#include <fuzzer/FuzzedDataProvider.h>

#include "absl/time/time.h"
#include "server/common/errors.h"
#include "server/store/event_codes.h"
#include "server/store/event_row.h"
#include "server/store/postgres_connection.h"
#include "server/store/sqlite_connection.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

namespace pg = parley::store::pg_internal;
namespace sqlite = parley::store::sqlite_internal;

uint64_t Clamped(int64_t n) { return n < 0 ? 0 : static_cast<uint64_t>(n); }

// An int64 column: often near the codes and sentinels that matter.
int64_t Number(FuzzedDataProvider& in) {
  switch (in.ConsumeIntegralInRange<int>(0, 3)) {
    case 0:
      return in.ConsumeIntegralInRange<int64_t>(-2, 12);
    case 1:
      return in.PickValueInArray<int64_t>(
          {INT64_MIN, INT64_MIN + 1, INT64_MAX, INT64_MAX - 1, -1, 0});
    default:
      return in.ConsumeIntegral<int64_t>();
  }
}

void CheckTime(int64_t micros) {
  const absl::Time s = sqlite::FromMicros(micros);
  const absl::Time p = pg::FromMicros(micros);
  FUZZ_CHECK(s == p);
  FUZZ_CHECK(sqlite::ToMicros(s) == micros);
  FUZZ_CHECK(pg::ToMicros(p) == micros);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  parley::store::EventRow row;
  row.log = in.ConsumeRandomLengthString(64);
  row.sequence = Number(in);
  row.kind = Number(in);
  row.id = in.ConsumeRandomLengthString(64);
  row.room_id = in.ConsumeRandomLengthString(64);
  row.room = in.ConsumeRandomLengthString(64);
  row.sender = in.ConsumeRandomLengthString(64);
  row.sender_id = in.ConsumeRandomLengthString(64);
  row.recipient_id = in.ConsumeRandomLengthString(64);
  row.recipient = in.ConsumeRandomLengthString(64);
  const int64_t time = Number(in);
  row.time = sqlite::FromMicros(time);
  row.target_id = in.ConsumeRandomLengthString(64);
  row.target_sequence = Number(in);
  row.purge_through = Number(in);
  const int64_t update_time = Number(in);
  row.update_time = pg::FromMicros(update_time);
  row.deleted = in.ConsumeBool();
  row.text = in.ConsumeRemainingBytesAsString();

  CheckTime(time);
  CheckTime(update_time);
  const std::optional<parley::model::EventKind> kind =
      parley::store::KindFromCode(row.kind);
  if (kind.has_value()) {
    FUZZ_CHECK(parley::store::KindCode(*kind) == row.kind);
  }

  const parley::store::EventRow copy = row;
  const absl::StatusOr<std::shared_ptr<parley::model::Event>> event =
      parley::store::DecodeEventRow(row);
  FUZZ_CHECK(event.ok() == kind.has_value());
  if (!event.ok()) {
    FUZZ_CHECK(parley::ErrorReason(event.status()) == "STORE_FAILED");
    return 0;
  }
  const parley::model::Event& e = **event;
  FUZZ_CHECK(e.kind == *kind);
  FUZZ_CHECK(e.log == copy.log && e.id == copy.id &&
             e.room_id == copy.room_id && e.room == copy.room &&
             e.sender == copy.sender && e.sender_id == copy.sender_id &&
             e.recipient_id == copy.recipient_id &&
             e.recipient == copy.recipient && e.text == copy.text &&
             e.target_id == copy.target_id);
  FUZZ_CHECK(e.sequence == Clamped(copy.sequence));
  FUZZ_CHECK(e.target_sequence == Clamped(copy.target_sequence));
  FUZZ_CHECK(e.purge_through == Clamped(copy.purge_through));
  FUZZ_CHECK(e.time == copy.time && e.update_time == copy.update_time);
  FUZZ_CHECK(e.deleted == copy.deleted);
  FUZZ_CHECK(e.previous_versions.empty());
  return 0;
}
