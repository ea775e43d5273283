#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "test_util.h"
#include "vecpack/errors.h"
#include "vecpack/formats.h"
#include "vecpack/table.h"

using namespace vecpack;

namespace {

// One TEXMEX record: an int32 dimension (the number of values unless given), then the values.
template <class T>
std::string record(const std::vector<T>& values, std::optional<int32_t> stated_dim = std::nullopt) {
  const int32_t dim = stated_dim.value_or(static_cast<int32_t>(values.size()));
  std::string out(reinterpret_cast<const char*>(&dim), sizeof dim);
  return out + std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(T));
}

void check_rows(const Table& table, size_t rows, size_t dim, const std::vector<float>& expected) {
  REQUIRE(table.size() == rows);
  REQUIRE(table.dim() == dim);
  std::vector<float> got = test::all_rows(table);
  REQUIRE(got.size() == expected.size());
  CHECK(std::memcmp(got.data(), expected.data(), got.size() * sizeof(float)) == 0);
}

}  // namespace

TEST_CASE("fvecs: the written bytes are records of an int32 dimension and float32 values") {
  test::TempDir dir;
  std::vector<float> values = {1.5f, -2.0f, 0.1f, 4.0f, 5.0f, -0.0f};
  std::string path = dir.file("t.fvecs");
  write_table(Table::from_rows(values, 3), path);
  std::string expected = record(std::vector<float>(values.begin(), values.begin() + 3)) +
                         record(std::vector<float>(values.begin() + 3, values.end()));
  CHECK(test::file_text(path) == expected);
  CHECK(test::files_in(dir.path()) == 1);
}

TEST_CASE("texmex: fvecs, bvecs and ivecs round trips are exact, plain and gzip; keys are not written") {
  test::TempDir dir;
  const size_t rows = 200, dim = 24;
  std::vector<float> floats = test::clustered_rows(rows, dim, 5, 2);
  std::vector<float> bytes(rows * dim), ints(rows * dim);
  for (size_t i = 0; i < rows * dim; ++i) {
    bytes[i] = static_cast<float>(i % 256);
    ints[i] = static_cast<float>((i % 2 ? -1 : 1) * static_cast<int64_t>(i * 9973 % 16777216));
  }
  ints[1] = -2147483648.0f;
  ints[2] = 2147483520.0f;  // the largest float below 2^31
  std::vector<std::string> keys;
  for (size_t i = 0; i < rows; ++i) keys.push_back("k" + std::to_string(i));
  struct Case {
    const char* name;
    const std::vector<float>& values;
  };
  for (const Case& c : {Case{"fvecs", floats}, Case{"bvecs", bytes}, Case{"ivecs", ints}}) {
    for (const char* suffix : {"", ".gz"}) {
      std::string path = dir.file(std::string("t.") + c.name + suffix);
      CAPTURE(path);
      write_table(Table::from_rows(c.values, dim, keys), path);
      CHECK(std::string(detect_format(path).name) == c.name);
      Table back = read_table(path);
      CHECK_FALSE(back.has_keys());
      CHECK(back.meta().source_format == c.name);
      check_rows(back, rows, dim, c.values);
    }
  }
  // bvecs stores one byte per value, ivecs four.
  CHECK(test::read_bytes(dir.file("t.bvecs")).size() == rows * (4 + dim));
  CHECK(test::read_bytes(dir.file("t.ivecs")).size() == rows * (4 + 4 * dim));
}

TEST_CASE("texmex: bvecs and ivecs values read as floats; limit reads the first records") {
  test::TempDir dir;
  std::string path = dir.file("in.bvecs");
  test::write_text(path, record(std::vector<uint8_t>{0, 1, 255}) + record(std::vector<uint8_t>{7, 128, 9}));
  check_rows(read_table(path), 2, 3, {0, 1, 255, 7, 128, 9});

  path = dir.file("in.ivecs");
  test::write_text(path, record(std::vector<int32_t>{-5, 0, 1 << 20}) + record(std::vector<int32_t>{3, 2, 1}) +
                             record(std::vector<int32_t>{9, 9, 9}));
  check_rows(read_table(path), 3, 3, {-5, 0, 1 << 20, 3, 2, 1, 9, 9, 9});
  ReadOptions options;
  options.limit = 2;
  check_rows(read_table(path, {}, options), 2, 3, {-5, 0, 1 << 20, 3, 2, 1});

  // A limit stops before a damaged record.
  path = dir.file("in.fvecs");
  test::write_text(path, record(std::vector<float>{1, 2}) + record(std::vector<float>{3, 4}) + "\x02\x00");
  options.limit = 2;
  check_rows(read_table(path, {}, options), 2, 2, {1, 2, 3, 4});
  CHECK_THROWS_AS(read_table(path), ParseError);
}

TEST_CASE("fvecs: NaN and infinity are rejected with the record unless allow_nan") {
  test::TempDir dir;
  std::string path = dir.file("nan.fvecs");
  const float nan = std::numeric_limits<float>::quiet_NaN();
  test::write_text(path, record(std::vector<float>{1, 2, 3}) + record(std::vector<float>{4, nan, 6}));
  ParseError e = test::caught<ParseError>([&] { read_table(path); });
  CHECK(test::contains(e.what(), "nan.fvecs: NaN in value 2 of record 2 (byte offset 24)"));
  ReadOptions allow;
  allow.allow_nan = true;
  CHECK(std::isnan(read_table(path, {}, allow).row(1)[1]));
}

TEST_CASE("texmex: values bvecs and ivecs cannot hold are refused with their row and column") {
  test::TempDir dir;
  struct Case {
    const char* format;
    float value;
    std::string message;
  };
  const Case cases[] = {
      {"bvecs", 1.5f, "as bvecs: row 1, column 2 holds 1.5; bvecs stores integers 0..255"},
      {"bvecs", 256.0f, "as bvecs: row 1, column 2 holds 256; bvecs stores integers 0..255"},
      {"bvecs", -1.0f, "as bvecs: row 1, column 2 holds -1; bvecs stores integers 0..255"},
      {"bvecs", std::numeric_limits<float>::quiet_NaN(), "as bvecs: row 1, column 2 holds nan"},
      {"ivecs", 0.25f, "as ivecs: row 1, column 2 holds 0.25; ivecs stores integers -2147483648..2147483647"},
      {"ivecs", 2147483648.0f, "as ivecs: row 1, column 2 holds 2147483648; ivecs stores integers -2147483648..2147483647"},
      {"ivecs", -std::numeric_limits<float>::infinity(), "as ivecs: row 1, column 2 holds -inf"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.message);
    std::vector<float> values = {1, 2, 3, 4, 5, c.value};
    std::string path = dir.file(std::string("out.") + c.format);
    Error e = test::caught<Error>([&] { write_table(Table::from_rows(values, 3), path); });
    CHECK(test::contains(e.what(), "cannot write " + path));
    CHECK_MESSAGE(test::contains(e.what(), c.message), std::string(e.what()));
    CHECK(test::files_in(dir.path()) == 0);  // the temporary file is gone, no output appeared
  }
}

TEST_CASE("texmex: bad input is a ParseError naming the record, its byte offset and what was expected") {
  test::TempDir dir;
  struct Case {
    const char* what;
    const char* format;
    std::string bytes;
    std::string message;
  };
  const std::string three = record(std::vector<float>{1, 2, 3});
  const Case cases[] = {
      {"empty file", "fvecs", "", "the file is empty; expected records of an int32 dimension and its values (.fvecs)"},
      {"dim 0", "fvecs", record(std::vector<float>{}), "record 1 at byte offset 0 has dimension 0; expected 1..65536"},
      {"negative dim", "ivecs", record(std::vector<int32_t>{1}, -4), "record 1 at byte offset 0 has dimension -4; expected 1..65536"},
      {"dim too large", "bvecs", record(std::vector<uint8_t>{1}, 70000),
       "record 1 at byte offset 0 has dimension 70000; expected 1..65536 (is this a .bvecs file?)"},
      {"a byte order mark", "fvecs", "\xEF\xBB\xBF\x01" + three, "record 1 at byte offset 0 has dimension 29342703"},
      {"inconsistent record dimension", "fvecs", three + three + record(std::vector<float>{1, 2}),
       "record 3 at byte offset 32 has dimension 2, expected 3 as in record 1"},
      {"truncated record", "fvecs", three + three.substr(0, 10),
       "truncated: record 2 at byte offset 16 needs 12 bytes of values, found 6"},
      {"truncated bvecs record", "bvecs", record(std::vector<uint8_t>{1, 2, 3}) + record(std::vector<uint8_t>{4, 5}, 3),
       "truncated: record 2 at byte offset 7 needs 3 bytes of values, found 2"},
      {"truncated dimension", "ivecs", record(std::vector<int32_t>{1, 2}) + std::string("\x02\x00", 2),
       "truncated: record 2 at byte offset 12 has 2 of the 4 bytes of its dimension"},
  };
  for (const Case& c : cases) {
    CAPTURE(std::string(c.what));
    std::string path = dir.file(std::string("bad.") + c.format);
    test::write_text(path, c.bytes);
    ParseError e = test::caught<ParseError>([&] { read_table(path); });
    CHECK(test::contains(e.what(), path + ": "));
    CHECK_MESSAGE(test::contains(e.what(), c.message), std::string(e.what()));
  }
}

TEST_CASE("texmex: picked by extension or name, never by content") {
  test::TempDir dir;
  std::string path = dir.file("vectors.dat");
  test::write_text(path, record(std::vector<float>{1, 2}));
  CHECK_THROWS_AS(read_table(path), Error);
  check_rows(read_table(path, "fvecs"), 1, 2, {1, 2});
  CHECK(std::string(detect_format(dir.file("new.fvecs")).name) == "fvecs");
  CHECK(std::string(detect_format(dir.file("new.BVECS.gz")).name) == "bvecs");
  CHECK(std::string(detect_format(dir.file("new.ivecs")).name) == "ivecs");
  const bool has_sniffer = find_format("fvecs")->sniff != nullptr;
  CHECK_FALSE(has_sniffer);
}
