#include <doctest/doctest.h>

#include <cstring>

#include "bytes.h"
#include "container.h"
#include "test_util.h"
#include "vecpack/errors.h"

using namespace vecpack;
using vecpack::test::TempDir;

namespace {

std::string write_sample(const TempDir& dir, const std::string& name = "sample.vecpack") {
  std::string path = dir.file(name);
  ContainerWriter w(path);
  std::string meta = "{\"hello\": 1}";
  w.add("META", meta.data(), meta.size());
  std::vector<uint8_t> codes(5000);
  for (size_t i = 0; i < codes.size(); ++i) codes[i] = static_cast<uint8_t>(i * 7);
  w.add("CODE", codes.data(), codes.size(), kCodeAlign);
  w.commit();
  return path;
}

template <class T>
T read_at(const std::vector<uint8_t>& b, size_t offset) {
  T v;
  std::memcpy(&v, b.data() + offset, sizeof(T));
  return v;
}

template <class T>
void write_at(std::vector<uint8_t>& b, size_t offset, T v) {
  std::memcpy(b.data() + offset, &v, sizeof(T));
}

void reseal_header(std::vector<uint8_t>& b) { write_at<uint64_t>(b, 56, xxh64(b.data(), 56)); }

}  // namespace

TEST_CASE("container: byte layout of header, sections and section table") {
  TempDir dir;
  auto b = test::read_bytes(write_sample(dir));
  const uint8_t magic[8] = {0x89, 'V', 'P', 'K', 0x0d, 0x0a, 0x1a, 0x0a};
  CHECK(std::memcmp(b.data(), magic, 8) == 0);
  CHECK(read_at<uint16_t>(b, 8) == 1);   // major
  CHECK(read_at<uint16_t>(b, 10) == 4);  // minor
  CHECK(read_at<uint64_t>(b, 16) == b.size());
  uint64_t table = read_at<uint64_t>(b, 24);
  CHECK(read_at<uint32_t>(b, 32) == 2);
  CHECK(read_at<uint32_t>(b, 36) == 32);
  CHECK(read_at<uint64_t>(b, 40) == xxh64(b.data() + table, 64));
  CHECK(read_at<uint64_t>(b, 56) == xxh64(b.data(), 56));
  CHECK(table % 64 == 0);
  CHECK(table + 64 == b.size());
  // First entry: META right after the 64-byte header.
  CHECK(std::memcmp(b.data() + table, "META", 4) == 0);
  CHECK(read_at<uint64_t>(b, table + 8) == 64);
  CHECK(read_at<uint64_t>(b, table + 16) == 12);
  CHECK(read_at<uint64_t>(b, table + 24) == xxh64(b.data() + 64, 12));
  // Second entry: CODE 4096-aligned so codes are usable in place from the mapping.
  CHECK(std::memcmp(b.data() + table + 32, "CODE", 4) == 0);
  CHECK(read_at<uint64_t>(b, table + 40) == 4096);
  CHECK(read_at<uint64_t>(b, table + 48) == 5000);
}

TEST_CASE("container: reads back what was written") {
  TempDir dir;
  ContainerReader r(write_sample(dir));
  REQUIRE(r.sections().size() == 2);
  ByteSpan code = r.section("CODE", true);
  CHECK(code.size == 5000);
  CHECK(code.data[13] == static_cast<uint8_t>(13 * 7));
  CHECK(reinterpret_cast<uintptr_t>(code.data) % 4096 == 0);
  CHECK(r.section("VOCB", false, false).data == nullptr);
  CHECK_THROWS_WITH_AS(r.section("VOCB", false), doctest::Contains("required section VOCB is missing"), FormatError);
  CHECK(ContainerReader::verify(r.path()).ok());
}

TEST_CASE("container: truncation at any point is a FormatError, never a crash") {
  TempDir dir;
  auto full = test::read_bytes(write_sample(dir));
  for (size_t cut : {size_t(0), size_t(5), size_t(8), size_t(40), size_t(63), size_t(64), size_t(100), size_t(4096),
                     full.size() / 2, full.size() - 1}) {
    CAPTURE(cut);
    std::string path = dir.file("cut.vecpack");
    test::write_bytes(path, std::vector<uint8_t>(full.begin(), full.begin() + cut));
    CHECK_THROWS_AS(ContainerReader{path}, FormatError);
    CHECK_FALSE(ContainerReader::verify(path).ok());
  }
  std::string path = dir.file("cut.vecpack");
  test::write_bytes(path, std::vector<uint8_t>(full.begin(), full.begin() + full.size() / 2));
  CHECK_THROWS_WITH(ContainerReader{path}, doctest::Contains("truncated"));
}

TEST_CASE("container: a flipped byte in each section is named by verify") {
  TempDir dir;
  std::string good = write_sample(dir);
  auto full = test::read_bytes(good);
  ContainerReader r(good);
  for (const auto& s : r.sections()) {
    CAPTURE(s.type);
    auto damaged = full;
    damaged[s.offset + s.length / 2] ^= 0x40;
    std::string path = dir.file("flip.vecpack");
    test::write_bytes(path, damaged);
    VerifyReport report = ContainerReader::verify(path);
    REQUIRE(report.problems.size() == 1);
    CHECK(report.problems[0].find("section " + s.type) != std::string::npos);
    // Opening succeeds (contents are not read); reading the section with verification fails.
    ContainerReader opened(path);
    CHECK_THROWS_WITH_AS(opened.section(s.type, true), doctest::Contains("damaged"), FormatError);
  }
  // Header and section table are checked on open.
  for (size_t where : {size_t(20), full.size() - 10}) {
    auto damaged = full;
    damaged[where] ^= 1;
    std::string path = dir.file("flip.vecpack");
    test::write_bytes(path, damaged);
    CHECK_THROWS_AS(ContainerReader{path}, FormatError);
  }
}

TEST_CASE("container: wrong magic, text-mode damage and newer versions") {
  TempDir dir;
  auto full = test::read_bytes(write_sample(dir));
  std::string path = dir.file("bad.vecpack");

  auto text = full;
  text[0] = 'x';
  test::write_bytes(path, text);
  CHECK_THROWS_WITH_AS(ContainerReader{path}, doctest::Contains("not a .vecpack file"), FormatError);

  // "\r\n" -> "\n", as an FTP text-mode transfer would do.
  auto crlf = full;
  crlf.erase(crlf.begin() + 4);
  test::write_bytes(path, crlf);
  CHECK_THROWS_WITH_AS(ContainerReader{path}, doctest::Contains("text mode"), FormatError);

  auto newer = full;
  write_at<uint16_t>(newer, 8, 2);
  reseal_header(newer);
  test::write_bytes(path, newer);
  CHECK_THROWS_WITH_AS(ContainerReader{path}, doctest::Contains("newer than this vecpack"), FormatError);

  // A newer minor version is readable: unknown sections are ignored.
  auto minor = full;
  write_at<uint16_t>(minor, 10, 7);
  reseal_header(minor);
  test::write_bytes(path, minor);
  CHECK(ContainerReader(path).minor_version() == 7);
}

TEST_CASE("container: hostile section tables are rejected before use") {
  TempDir dir;
  auto full = test::read_bytes(write_sample(dir));
  uint64_t table = read_at<uint64_t>(full, 24);
  std::string path = dir.file("hostile.vecpack");
  auto with_entry = [&](uint64_t offset, uint64_t length) {
    auto b = full;
    write_at<uint64_t>(b, table + 32 + 8, offset);
    write_at<uint64_t>(b, table + 32 + 16, length);
    write_at<uint64_t>(b, 40, xxh64(b.data() + table, 64));
    reseal_header(b);
    test::write_bytes(path, b);
  };
  with_entry(4096, uint64_t(1) << 62);
  CHECK_THROWS_WITH_AS(ContainerReader{path}, doctest::Contains("lies outside the file"), FormatError);
  with_entry(UINT64_MAX - 10, 100);
  CHECK_THROWS_WITH_AS(ContainerReader{path}, doctest::Contains("lies outside the file"), FormatError);
  with_entry(4097, 10);
  CHECK_THROWS_WITH_AS(ContainerReader{path}, doctest::Contains("aligned"), FormatError);

  auto many = full;
  write_at<uint32_t>(many, 32, 1u << 30);
  reseal_header(many);
  test::write_bytes(path, many);
  CHECK_THROWS_WITH_AS(ContainerReader{path}, doctest::Contains("section count"), FormatError);
}

TEST_CASE("container: a failed write leaves the existing file untouched and no temporary behind") {
  TempDir dir;
  std::string path = write_sample(dir);
  auto before = test::read_bytes(path);
  {
    ContainerWriter w(path);
    w.add("META", "x", 1);
    CHECK_THROWS(w.add_streamed("CODE", 100, kCodeAlign, [](const ContainerWriter::Sink& sink) {
      sink("abc", 3);
      throw Error("encoder failed");
    }));
  }
  CHECK(test::read_bytes(path) == before);
  CHECK(test::files_in(dir.path()) == 1);
  CHECK_THROWS_AS(ContainerWriter(dir.file("no/such/folder/x.vecpack")), IoError);
}
