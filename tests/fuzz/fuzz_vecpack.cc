// Fuzz target: a .vecpack file (lib/container.cc, META, codec chains, VOCB, subword and rerank
// sections): open, look keys up, read the first and last rows, search, verify.
//
// Each input is tried twice: as it is, which mostly exercises the header and checksum checks,
// and resealed (file size and every checksum recomputed over the mutated bytes, as a hostile
// writer would), which lets mutations reach the parsers of the sections behind the checksums.
#include <algorithm>
#include <cstring>
#include <vector>

#include "bytes.h"
#include "fuzz_common.h"

namespace {

template <class T>
T load(const std::vector<uint8_t>& b, size_t at) {
  T v;
  std::memcpy(&v, b.data() + at, sizeof v);
  return v;
}

template <class T>
void store(std::vector<uint8_t>& b, size_t at, T v) {
  std::memcpy(b.data() + at, &v, sizeof v);
}

// Recomputes the file size, the section checksums, the table checksum and the header checksum
// as docs/FORMAT.md defines them; fields that point outside the file are left alone.
void reseal(std::vector<uint8_t>& b) {
  const uint64_t size = b.size();
  if (size < 64) return;
  store<uint64_t>(b, 16, size);
  const uint64_t table = load<uint64_t>(b, 24);
  uint64_t count = load<uint32_t>(b, 32);
  if (table <= size) {
    count = std::min<uint64_t>(count, (size - table) / 32);
    for (uint64_t i = 0; i < count; ++i) {
      const uint64_t entry = table + 32 * i;
      const uint64_t offset = load<uint64_t>(b, entry + 8), length = load<uint64_t>(b, entry + 16);
      if (offset <= size && length <= size - offset) store<uint64_t>(b, entry + 24, vecpack::xxh64(b.data() + offset, length));
    }
    store<uint64_t>(b, 40, vecpack::xxh64(b.data() + table, count * 32));
  }
  store<uint64_t>(b, 56, vecpack::xxh64(b.data(), 56));
}

void run(const uint8_t* data, size_t size) {
  using namespace vecpack;
  const std::string& path = fuzz::write_input("vecpack", data, size);
  fuzz::expect_errors([&] { fuzz::exercise_table(Table::open(path)); });
  fuzz::expect_errors([&] {
    VerifyReport report = Table::verify(path);
    (void)report.ok();
  });
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  run(data, size);
  std::vector<uint8_t> resealed(data, data + size);
  reseal(resealed);
  if (resealed != std::vector<uint8_t>(data, data + size)) run(resealed.data(), resealed.size());
  return 0;
}
