#include <doctest/doctest.h>

#include <cfloat>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>
#include <string>
#include <vector>

#include "test_util.h"
#include "vecpack/errors.h"
#include "vecpack/formats.h"
#include "vecpack/table.h"

using namespace vecpack;

namespace {

template <class T>
std::string bytes_of(const std::vector<T>& values) {
  return std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(T));
}

// A .npy file as numpy lays it out: magic, version, header length (16 bits for 1.0, 32 bits
// after), the dict padded with spaces and ended by '\n' so that the data starts at 64 bytes.
std::string npy_file(const std::string& dict, const std::string& data, int major = 1) {
  const size_t preamble = major == 1 ? 10 : 12;
  std::string header = dict;
  while ((preamble + header.size() + 1) % 64 != 0) header += ' ';
  header += '\n';
  std::string out = "\x93NUMPY";
  out += static_cast<char>(major);
  out += '\0';
  const uint32_t length = static_cast<uint32_t>(header.size());
  out.append(reinterpret_cast<const char*>(&length), major == 1 ? 2 : 4);
  return out + header + data;
}

std::string dict(const std::string& descr, bool fortran, const std::string& shape) {
  return "{'descr': '" + descr + "', 'fortran_order': " + (fortran ? "True" : "False") + ", 'shape': " + shape + ", }";
}

void write_file(const std::string& path, const std::string& bytes) { test::write_text(path, bytes); }

std::vector<float> awkward_values() {
  return {0.1f, -0.0f, 1.0f / 3.0f, FLT_MAX, -FLT_MIN, std::numeric_limits<float>::denorm_min(), 1e10f,
          -123456.789f, 3.0e-39f, 0.0f, 1.0f, -2.5e-7f};
}

void check_rows(const Table& table, size_t rows, size_t dim, const std::vector<float>& expected) {
  REQUIRE(table.size() == rows);
  REQUIRE(table.dim() == dim);
  std::vector<float> got = test::all_rows(table);
  REQUIRE(got.size() == expected.size());
  CHECK(std::memcmp(got.data(), expected.data(), got.size() * sizeof(float)) == 0);
}

}  // namespace

TEST_CASE("npy: a written 3x4 table is byte for byte what np.save writes") {
  test::TempDir dir;
  std::vector<float> values = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
  std::string path = dir.file("t.npy");
  write_table(Table::from_rows(values, 4), path);
  std::vector<uint8_t> bytes = test::read_bytes(path);
  // np.save(np.arange(1, 13, dtype=np.float32).reshape(3, 4)): 118 header bytes, data at 128.
  const std::string header =
      std::string("\x93NUMPY\x01\x00\x76\x00", 10) +
      "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }" + std::string(20, ' ') +  // room to grow
      std::string(38, ' ') + "\n";
  REQUIRE(header.size() == 128);
  REQUIRE(bytes.size() == 128 + 12 * sizeof(float));
  CHECK(std::string(bytes.begin(), bytes.begin() + 128) == header);
  CHECK(std::memcmp(bytes.data() + 128, values.data(), values.size() * sizeof(float)) == 0);
  CHECK(test::files_in(dir.path()) == 1);  // no temporary left beside it
}

TEST_CASE("npy: the header pads to 64 bytes for any row count") {
  test::TempDir dir;
  for (size_t rows : {0, 1, 9, 10, 12345, 100000}) {
    std::string path = dir.file("r.npy");
    write_table(Table::from_rows(std::vector<float>(rows * 3, 0.5f), 3), path);
    std::vector<uint8_t> bytes = test::read_bytes(path);
    uint16_t header_length = 0;
    std::memcpy(&header_length, bytes.data() + 8, 2);
    CAPTURE(rows);
    CHECK((10 + header_length) % 64 == 0);
    CHECK(bytes[10 + header_length - 1] == '\n');
    CHECK(bytes.size() == 10 + header_length + rows * 3 * sizeof(float));
    CHECK(read_table(path).size() == rows);
  }
}

TEST_CASE("npy: float32 round trips are bit exact, plain and gzip; keys are not written") {
  test::TempDir dir;
  std::vector<float> values = test::clustered_rows(300, 12, 5, 3);
  std::vector<float> awkward = awkward_values();
  std::copy(awkward.begin(), awkward.end(), values.begin());
  std::vector<std::string> keys;
  for (size_t i = 0; i < 300; ++i) keys.push_back("w" + std::to_string(i));
  Table keyed = Table::from_rows(values, 12, keys);
  for (const char* name : {"t.npy", "t.npy.gz"}) {
    CAPTURE(std::string(name));
    std::string path = dir.file(name);
    write_table(keyed, path);
    CHECK(std::string(detect_format(path).name) == "npy");
    Table back = read_table(path);
    CHECK_FALSE(back.has_keys());
    CHECK(back.meta().source_format == "npy");
    check_rows(back, 300, 12, values);
  }
  // Found by content whatever the name.
  std::filesystem::copy_file(dir.file("t.npy"), dir.file("vectors.dat"));
  CHECK(std::string(detect_format(dir.file("vectors.dat")).name) == "npy");
}

TEST_CASE("npy: float16, float64, big-endian, Fortran order and version 2.0 and 3.0 headers") {
  test::TempDir dir;
  std::string path = dir.file("in.npy");
  const std::vector<float> expected = {1.0f, -2.0f, 0.5f, 65504.0f, std::ldexp(1.0f, -24), -0.0f};

  // float16: 1, -2, 0.5, the largest half, the smallest subnormal, -0.
  write_file(path, npy_file(dict("<f2", false, "(2, 3)"), bytes_of(std::vector<uint16_t>{0x3C00, 0xC000, 0x3800, 0x7BFF, 0x0001, 0x8000})));
  check_rows(read_table(path), 2, 3, expected);

  std::vector<double> doubles(expected.begin(), expected.end());
  write_file(path, npy_file(dict("<f8", false, "(2, 3)"), bytes_of(doubles)));
  check_rows(read_table(path), 2, 3, expected);

  // Big-endian float32 is swapped; '|' and '=' mean this machine's order.
  std::vector<uint32_t> swapped;
  for (float v : expected) swapped.push_back(__builtin_bswap32(std::bit_cast<uint32_t>(v)));
  write_file(path, npy_file(dict(">f4", false, "(2, 3)"), bytes_of(swapped)));
  check_rows(read_table(path), 2, 3, expected);
  for (const char* descr : {"=f4", "|f4"}) {
    write_file(path, npy_file(dict(descr, false, "(2, 3)"), bytes_of(expected)));
    check_rows(read_table(path), 2, 3, expected);
  }

  // Fortran order stores column after column.
  std::vector<float> by_column = {expected[0], expected[3], expected[1], expected[4], expected[2], expected[5]};
  write_file(path, npy_file(dict("<f4", true, "(2, 3)"), bytes_of(by_column)));
  check_rows(read_table(path), 2, 3, expected);
  std::vector<double> doubles_by_column(by_column.begin(), by_column.end());
  write_file(path, npy_file(dict("<f8", true, "(2, 3)"), bytes_of(doubles_by_column)));
  check_rows(read_table(path), 2, 3, expected);

  // Versions 2.0 and 3.0 differ only by a 32-bit header length; keys in any order, double quotes.
  for (int major : {2, 3}) {
    CAPTURE(major);
    write_file(path, npy_file("{\"shape\": (2, 3), \"fortran_order\": False, \"descr\": \"<f4\"}", bytes_of(expected), major));
    check_rows(read_table(path), 2, 3, expected);
  }
  // Python 2 wrote long integers with an L.
  write_file(path, npy_file(dict("<f4", false, "(2L, 3L)"), bytes_of(expected)));
  check_rows(read_table(path), 2, 3, expected);
}

TEST_CASE("npy: a 1-D shape is one row; (0, d) is an empty table") {
  test::TempDir dir;
  std::string path = dir.file("one.npy");
  std::vector<float> values = {0.25f, -1.5f, 3.0f, 7.0f};
  write_file(path, npy_file(dict("<f4", false, "(4,)"), bytes_of(values)));
  check_rows(read_table(path), 1, 4, values);
  write_file(path, npy_file(dict("<f4", true, "(4,)"), bytes_of(values)));
  check_rows(read_table(path), 1, 4, values);

  write_file(path, npy_file(dict("<f4", false, "(0, 7)"), ""));
  Table empty = read_table(path);
  CHECK(empty.size() == 0);
  CHECK(empty.dim() == 7);
}

TEST_CASE("npy: limit reads only the first rows, in C and in Fortran order") {
  test::TempDir dir;
  const size_t rows = 50, dim = 5;
  std::vector<float> values = test::clustered_rows(rows, dim, 4, 9);
  std::vector<float> by_column(rows * dim);
  for (size_t r = 0; r < rows; ++r) {
    for (size_t c = 0; c < dim; ++c) by_column[c * rows + r] = values[r * dim + c];
  }
  std::string c_path = dir.file("c.npy"), f_path = dir.file("f.npy"), gz_path = dir.file("c.npy.gz");
  write_file(c_path, npy_file(dict("<f4", false, "(50, 5)"), bytes_of(values)));
  write_file(f_path, npy_file(dict("<f4", true, "(50, 5)"), bytes_of(by_column)));
  write_table(Table::from_rows(values, dim), gz_path);
  for (size_t limit : {1, 7, 50, 80}) {
    ReadOptions options;
    options.limit = limit;
    const size_t kept = std::min(limit, rows);
    std::vector<float> first(values.begin(), values.begin() + kept * dim);
    for (const std::string& path : {c_path, f_path, gz_path}) {
      CAPTURE(path);
      CAPTURE(limit);
      check_rows(read_table(path, {}, options), kept, dim, first);
    }
  }
}

TEST_CASE("npy: NaN and infinity are rejected with their row and column unless allow_nan") {
  test::TempDir dir;
  std::string path = dir.file("nan.npy");
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  write_file(path, npy_file(dict("<f4", false, "(2, 3)"), bytes_of(std::vector<float>{1, 2, 3, 4, nan, 6})));
  ParseError e = test::caught<ParseError>([&] { read_table(path); });
  CHECK(test::contains(e.what(), "nan.npy: NaN in value 2 of row 2 (byte offset 144)"));
  CHECK(test::contains(e.what(), "unless allow_nan is set"));
  ReadOptions allow;
  allow.allow_nan = true;
  CHECK(std::isnan(read_table(path, {}, allow).row(1)[1]));

  // Fortran order names the row and column of the value, not its place in the file.
  write_file(path, npy_file(dict("<f4", true, "(2, 3)"), bytes_of(std::vector<float>{1, 4, 2, -inf, 3, 6})));
  CHECK(test::contains(test::caught<ParseError>([&] { read_table(path); }).what(),
                       "infinity in value 2 of row 2 (byte offset 140)"));

  // float16 infinity; a float64 beyond float32 range is refused even with allow_nan.
  write_file(path, npy_file(dict("<f2", false, "(1, 2)"), bytes_of(std::vector<uint16_t>{0x3C00, 0x7C00})));
  CHECK(test::contains(test::caught<ParseError>([&] { read_table(path); }).what(), "infinity in value 2 of row 1"));
  write_file(path, npy_file(dict("<f8", false, "(1, 2)"), bytes_of(std::vector<double>{1.0, 1e300})));
  CHECK(test::contains(test::caught<ParseError>([&] { read_table(path, {}, allow); }).what(),
                       "value 2 of row 1 is 1e+300, outside the float32 range (byte offset 136)"));
}

TEST_CASE("npy: bad input is a ParseError naming the file and what was expected") {
  test::TempDir dir;
  const std::string twelve = bytes_of(std::vector<float>(12, 1.0f));
  struct Case {
    const char* what;
    std::string bytes;
    std::string message;
  };
  std::string long_header = npy_file(dict("<f4", false, "(3, 4)"), twelve);
  long_header[8] = '\xF4';  // header length 500: past the end of the file
  long_header[9] = '\x01';
  std::string huge_header = npy_file(dict("<f4", false, "(3, 4)"), twelve, 2);
  huge_header[11] = '\x7F';
  const Case cases[] = {
      {"empty file", "", "not a .npy file: expected the magic '\\x93NUMPY' at byte offset 0, found ''"},
      {"wrong magic", "\x93NUMPZ\x01\x00" + twelve, "not a .npy file: expected the magic '\\x93NUMPY' at byte offset 0, found '\\x93NUMPZ'"},
      {"text", "the 0.1 0.2\n", "found 'the 0.'"},
      {"cut preamble", std::string("\x93NUMPY\x01", 7), "truncated: the file ends within its .npy preamble"},
      {"version 4.0", std::string("\x93NUMPY\x04\x00\x10\x00", 10) + std::string(16, ' '),
       "unsupported .npy version 4.0; expected 1.0, 2.0 or 3.0 (byte offset 6)"},
      {"header past the end", long_header, "truncated: the header needs 500 bytes after byte offset 10, the file has 166"},
      {"huge header length", huge_header, "the header length 2130706548 is larger than the supported 1048576 (byte offset 8)"},
      {"truncated data", npy_file(dict("<f4", false, "(3, 4)"), twelve.substr(0, 40)),
       "truncated: shape (3, 4) of '<f4' needs 48 bytes of data after the header (byte offset 128), found 40"},
      {"trailing data", npy_file(dict("<f4", false, "(3, 4)"), twelve + "abcd"),
       "shape (3, 4) of '<f4' needs 48 bytes of data after the header (byte offset 128), found 52 (trailing bytes)"},
      {"bad shape text", npy_file(dict("<f4", false, "(3, four)"), twelve),
       "bad .npy header: 'shape' must be a tuple of integers such as (rows, dim), found '(3, four), }"},
      {"shape not a tuple", npy_file(dict("<f4", false, "[3, 4]"), twelve),
       "bad .npy header: 'shape' must be a tuple of integers such as (rows, dim), found '[3, 4], }"},
      {"negative shape", npy_file(dict("<f4", false, "(-3, 4)"), twelve), "'shape' must be a tuple of integers"},
      {"unsupported dtype", npy_file(dict("<i8", false, "(3, 4)"), twelve),
       "bad .npy header: unsupported dtype '<i8'; expected float32 '<f4', float16 '<f2' or float64 '<f8' (byte offset 20)"},
      {"structured dtype", npy_file("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (3,), }", twelve),
       "unsupported dtype: a structured array (a list 'descr') cannot be read"},
      {"3-D shape", npy_file(dict("<f4", false, "(1, 3, 4)"), twelve), "shape (1, 3, 4) has 3 dimensions; expected (rows, dim) or (dim,)"},
      {"0-D shape", npy_file(dict("<f4", false, "()"), twelve), "shape () has 0 dimensions; expected (rows, dim) or (dim,)"},
      {"dim 0", npy_file(dict("<f4", false, "(5, 0)"), ""), "shape (5, 0) has dimension 0; expected 1..65536"},
      {"dim too large", npy_file(dict("<f4", false, "(1, 70000)"), twelve), "shape (1, 70000) has dimension 70000; expected 1..65536"},
      {"rows beyond memory", npy_file(dict("<f4", false, "(18446744073709551615, 4)"), twelve),
       "shape (18446744073709551615, 4) is too large to be real"},
      {"shape beyond 64 bits", npy_file(dict("<f4", false, "(99999999999999999999, 4)"), twelve), "a 'shape' entry is too large"},
      {"missing key", npy_file("{'descr': '<f4', 'shape': (3, 4), }", twelve), "bad .npy header: the header has no 'fortran_order' key"},
      {"unknown key", npy_file("{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), 'x': 1}", twelve),
       "unexpected key 'x' in the header; expected 'descr', 'fortran_order' and 'shape'"},
      {"bad fortran_order", npy_file("{'descr': '<f4', 'fortran_order': 0, 'shape': (3, 4), }", twelve),
       "'fortran_order' must be True or False, found '0, "},
      {"not a dict", npy_file("('<f4', False, (3, 4))", twelve), "the header must be a Python dict starting with '{'"},
      {"text after the dict", npy_file(dict("<f4", false, "(3, 4)") + " x", twelve), "unexpected text after the header's closing '}': 'x"},
  };
  for (const Case& c : cases) {
    CAPTURE(std::string(c.what));
    std::string path = dir.file("bad.npy");
    write_file(path, c.bytes);
    ParseError e = test::caught<ParseError>([&] { read_table(path, "npy"); });
    CHECK(test::contains(e.what(), path + ": "));
    CHECK_MESSAGE(test::contains(e.what(), c.message), std::string(e.what()));
  }
}

TEST_CASE("npy: a cut gzip file reports the bytes it found") {
  test::TempDir dir;
  std::string path = dir.file("t.npy.gz");
  write_table(Table::from_rows(test::clustered_rows(4000, 16, 5, 1), 16), path);
  std::vector<uint8_t> bytes = test::read_bytes(path);
  bytes.resize(bytes.size() / 2);
  test::write_bytes(path, bytes);
  CHECK_THROWS_AS(read_table(path), ParseError);
}

TEST_CASE("npy: a table of dimension 0 cannot be written and a failed write leaves no file") {
  test::TempDir dir;
  CHECK_THROWS_WITH_AS(write_table(Table(), dir.file("e.npy")), doctest::Contains("the table has dimension 0"), Error);
  CHECK(test::files_in(dir.path()) == 0);
}
