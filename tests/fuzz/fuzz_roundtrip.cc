// Differential fuzz target: the input describes a table (rows, dimension, keys as raw bytes,
// values as raw float bits); it is written in every writable format, plain and gzip where the
// format is text, and read back. A writer may refuse a table it cannot hold (a key with a
// blank, a value bvecs cannot store) with a vecpack::Error; once it has written a file, its
// own reader must give back the same keys and bit-identical values. Anything else aborts: a
// reader that accepts garbage silently is a finding here, not only one that crashes.
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "fuzz_common.h"

namespace {

using namespace vecpack;
using fuzz::expect_errors;

[[noreturn]] void mismatch(const std::string& format, const std::string& what) {
  std::fprintf(stderr, "roundtrip: %s: %s\n", format.c_str(), what.c_str());
  std::abort();
}

// Integer formats store a value, not its bits: -0 comes back as 0.
bool same_value(float a, float b, bool bits) {
  if (!bits) return a == b;
  uint32_t x, y;
  std::memcpy(&x, &a, 4);
  std::memcpy(&y, &b, 4);
  return x == y;
}

void check_format(const FormatDescriptor& format, const Table& table, const std::string& path) {
  if (!expect_errors([&] { format.write(table, path, WriteOptions{}); })) return;  // refused: fine
  Table back;
  try {
    back = format.read(path, ReadOptions{});
  } catch (const Error& e) {
    mismatch(format.name, std::string("a file it wrote does not read back: ") + e.what());
  }
  const std::string name = format.name;
  if (back.size() != table.size() || back.dim() != table.dim()) {
    mismatch(name, std::to_string(table.size()) + " x " + std::to_string(table.dim()) + " read back as " +
                       std::to_string(back.size()) + " x " + std::to_string(back.dim()));
  }
  const bool keeps_keys = back.has_keys();
  const bool bits = name != "bvecs" && name != "ivecs";
  for (size_t r = 0; r < table.size(); ++r) {
    if (keeps_keys && back.key(r) != table.key(r)) mismatch(name, "key of row " + std::to_string(r) + " differs");
    std::vector<float> a = table.row(r), b = back.row(r);
    for (size_t c = 0; c < a.size(); ++c) {
      if (!same_value(a[c], b[c], bits)) {
        mismatch(name, "value " + std::to_string(c) + " of row " + std::to_string(r) + " differs");
      }
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 3) return 0;
  const size_t rows = 1 + data[0] % 16, dim = 1 + data[1] % 16;
  const bool gzip = data[2] & 1;
  size_t at = 3;
  auto next = [&]() -> uint8_t { return at < size ? data[at++] : 0; };

  TableBuilder builder(dim);
  std::vector<float> values(dim);
  for (size_t r = 0; r < rows; ++r) {
    std::string key;
    const size_t length = next() % 12;
    for (size_t i = 0; i < length; ++i) key.push_back(static_cast<char>(next()));
    for (float& v : values) {
      uint32_t bits = uint32_t(next()) | uint32_t(next()) << 8 | uint32_t(next()) << 16 | uint32_t(next()) << 24;
      std::memcpy(&v, &bits, 4);
      if (!std::isfinite(v)) v = static_cast<float>(bits & 0xFFFF) - 32768.0f;  // readers refuse NaN by default
    }
    if (!expect_errors([&] { builder.add(key, values.data(), dim); })) return 0;
  }
  Table table;
  if (!expect_errors([&] { table = builder.finish(Metric::cos); })) return 0;

  const std::string& scratch = fuzz::write_input("roundtrip", data, 0);
  for (const FormatDescriptor* format : format_list()) {
    if (!format->write) continue;
    const bool text = format->name == std::string("word2vec") || format->name == std::string("glove") ||
                      format->name == std::string("fasttext-vec");
    const std::string path =
        scratch + (format->extensions.empty() ? "" : format->extensions[0]) + (gzip && text ? ".gz" : "");
    check_format(*format, table, path);
    ::unlink(path.c_str());
  }
  return 0;
}
