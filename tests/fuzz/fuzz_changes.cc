// Fuzz target: a changed table's folder (lib/shards.cc, lib/changes.cc): the manifest of a
// generation and its file of deleted ids, beside two fixed, sound shards. Open, search, look keys
// up, verify.
//
// The input is the manifest text, a NUL byte, then the deleted-ids file. Mutations of the JSON
// reach every field check; of the ids file, its count, order and checksum checks.
#include <filesystem>
#include <vector>

#include "fuzz_common.h"

namespace {

// A folder with two small keyed int8 shards, made once per process.
const std::string& folder() {
  static std::string path;
  if (path.empty()) {
    using namespace vecpack;
    const std::string& scratch = fuzz::write_input("changes", nullptr, 0);
    path = scratch + ".d";
    std::filesystem::create_directories(path);
    std::vector<float> rows(12 * 4);
    std::vector<std::string> keys;
    for (size_t i = 0; i < rows.size(); ++i) rows[i] = float(int(i * 7 % 11) - 5) / 4.f;
    for (size_t i = 0; i < 12; ++i) keys.push_back(i == 0 ? "the" : "w" + std::to_string(i));
    const Table table = Table::from_rows(rows, 4, keys).compress("int8");
    table.slice(0, 8).save(path + "/part-0.vecpack");
    table.slice(8, 4).save(path + "/delta-1.vecpack");
    std::atexit([] { std::filesystem::remove_all(path); });
  }
  return path;
}

void write_file(const std::string& path, const uint8_t* data, size_t size) {
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) std::abort();
  if (size && std::fwrite(data, 1, size, f) != size) std::abort();
  std::fclose(f);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace vecpack;
  const std::string& dir = folder();
  const uint8_t* split = static_cast<const uint8_t*>(std::memchr(data, 0, size));
  const size_t manifest_size = split ? size_t(split - data) : size;
  write_file(dir + "/manifest.json", data, manifest_size);
  const size_t rest = split ? size - manifest_size - 1 : 0;
  write_file(dir + "/deleted-1.ids", split ? split + 1 : data, rest);
  fuzz::expect_errors([&] {
    const Table t = Table::open(dir);
    fuzz::exercise_table(t);
    for (size_t row = 0; row < t.size(); ++row) (void)t.is_deleted(row);
    (void)t.compacted();
  });
  fuzz::expect_errors([&] { (void)Table::verify(dir).ok(); });
  return 0;
}
