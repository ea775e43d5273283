// Memory bombs: small inputs that declare (or, as gzip, expand to) huge tables are refused
// with a MemoryLimitError before the reader allocates them (ReadOptions::max_memory).
#include <doctest/doctest.h>
#include <zlib.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "test_util.h"
#include "vecpack/errors.h"
#include "vecpack/formats.h"
#include "vecpack/table.h"

using namespace vecpack;

namespace {

void write_gzip(const std::string& path, const std::string& content) {
  gzFile file = gzopen(path.c_str(), "wb9");
  REQUIRE(file != nullptr);
  for (size_t done = 0; done < content.size();) {
    const unsigned chunk = static_cast<unsigned>(std::min<size_t>(content.size() - done, size_t{1} << 24));
    REQUIRE(gzwrite(file, content.data() + done, chunk) == int(chunk));
    done += chunk;
  }
  REQUIRE(gzclose(file) == Z_OK);
}

ReadOptions with_limit(uint64_t bytes) {
  ReadOptions options;
  options.max_memory = bytes;
  return options;
}

// The refusal names the file, the size, the limit and how to raise it, on one line.
void check_refusal(const std::string& path, const ReadOptions& options, const std::string& needs,
                   const std::string& format = {}) {
  MemoryLimitError e = test::caught<MemoryLimitError>([&] { read_table(path, format, options); });
  const std::string message = e.what();
  CAPTURE(message);
  CHECK(message.rfind(path + ": ", 0) == 0);
  CHECK(test::contains(message, needs));
  CHECK(test::contains(message, "more than the memory limit of "));
  CHECK(test::contains(message, "raise it with --max-memory"));
  CHECK(message.find('\n') == std::string::npos);
}

}  // namespace

TEST_CASE("memory limit: sizes parse as bytes, binary suffixes, shares of available memory, or none") {
  CHECK(parse_memory_size("123456") == 123456);
  CHECK(parse_memory_size("512K") == 512u << 10);
  CHECK(parse_memory_size("512M") == 512u << 20);
  CHECK(parse_memory_size("4G") == uint64_t{4} << 30);
  CHECK(parse_memory_size("4gb") == uint64_t{4} << 30);
  CHECK(parse_memory_size("4GiB") == uint64_t{4} << 30);
  CHECK(parse_memory_size("1.5T") == uint64_t{3} << 39);
  CHECK(parse_memory_size("none") == kNoMemoryLimit);
  const uint64_t half = parse_memory_size("50%");
  CHECK(half > 0);
  CHECK(parse_memory_size("100%") >= half);
  CHECK(default_memory_limit() > (uint64_t{64} << 20));  // 80% of what a test machine has free
  for (const char* bad : {"", "lots", "4X", "-1G", "0", "150%", "4 G", "nan"}) {
    CAPTURE(bad);
    SpecError e = test::caught<SpecError>([&] { parse_memory_size(bad); });
    CHECK(test::contains(e.what(), "memory size '" + std::string(bad) + "'"));
  }
}

TEST_CASE("memory limit: a word2vec header declaring 10^12 rows is refused before any row is read") {
  test::TempDir dir;
  const std::string line = "cat 0.5 0.25 0.125\n";
  const std::string text = "1000000000000 3\n" + line;
  // gzip: the file size says nothing about the rows it holds, so the header is all there is.
  const std::string gz = dir.file("bomb.txt.gz");
  write_gzip(gz, text);
  check_refusal(gz, ReadOptions{}, "the table would need 10.9 TiB (the header's 1000000000000 rows x 3 floats)");
  // The binary variant, declaring 300 columns.
  const std::string bin = dir.file("bomb.bin.gz");
  write_gzip(bin, "1000000000000 300\ncat " + std::string(300 * 4, '\0'));
  check_refusal(bin, ReadOptions{}, "(the header's 1000000000000 rows x 300 floats)", "word2vec-bin");
  // --limit bounds what is read, so the same header passes with it (and then fails on its count
  // only under strict reading, as before).
  ReadOptions limited;
  limited.limit = 1;
  CHECK(read_table(gz, "", limited).size() == 1);
  // Lenient reading does not trust the header: rows are counted as they arrive instead.
  ReadOptions lenient;
  lenient.lenient = true;
  CHECK(read_table(gz, "", lenient).size() == 1);
}

TEST_CASE("memory limit: gzip text that expands past the limit is refused as it grows") {
  test::TempDir dir;
  // 2 MB of GloVe text (about 6 KB of gzip) is 150,000 rows x 3 floats: 1.7 MiB of floats and keys.
  std::string text;
  for (int i = 0; i < 150000; ++i) text += "w" + std::to_string(i) + " 0 0 0\n";
  const std::string glove = dir.file("bomb.glove.txt.gz");
  write_gzip(glove, text);
  check_refusal(glove, with_limit(1 << 20), "rows read so far)", "glove");
  CHECK(read_table(glove, "glove", with_limit(64 << 20)).size() == 150000);
  // word2vec read leniently (the header says 1 row) grows the same way.
  const std::string w2v = dir.file("bomb.w2v.txt.gz");
  write_gzip(w2v, "1 3\n" + text);
  ReadOptions lenient = with_limit(1 << 20);
  lenient.lenient = true;
  check_refusal(w2v, lenient, "rows read so far)", "word2vec");
  // fvecs: 100,000 records of 16 values.
  std::string records;
  for (int i = 0; i < 100000; ++i) {
    const int32_t dim = 16;
    records.append(reinterpret_cast<const char*>(&dim), 4);
    records.append(16 * 4, '\0');
  }
  const std::string fvecs = dir.file("bomb.fvecs.gz");
  write_gzip(fvecs, records);
  check_refusal(fvecs, with_limit(1 << 20), "rows read so far)", "fvecs");
}

TEST_CASE("memory limit: declared shapes of npy, fvecs and HDF5 are checked before allocation") {
  test::TempDir dir;
  const size_t n = 4000, d = 64;  // 1000 KiB of f32
  Table zeros = Table::from_rows(std::vector<float>(n * d, 0.0f), d);
  const std::string npy = dir.file("zeros.npy.gz");
  write_table(zeros, npy);
  check_refusal(npy, with_limit(256 << 10), "the table would need 1000.0 KiB (shape (4000, 64) as f32)");
  CHECK(read_table(npy, "", with_limit(2 << 20)).size() == n);
  ReadOptions limited = with_limit(256 << 10);
  limited.limit = 100;  // 25 KiB of rows fit
  CHECK(read_table(npy, "", limited).size() == 100);

  const std::string bvecs = dir.file("t.bvecs");  // 1 byte per value on disk, 4 in memory
  write_table(Table::from_rows(std::vector<float>(n * d, 1.0f), d), bvecs);
  check_refusal(bvecs, with_limit(512 << 10), "the table would need 1000.0 KiB (the file's 4000 records x 64 floats)");

  const std::string h5 = dir.file("t.h5");
  write_table(zeros, h5);
  check_refusal(h5, with_limit(256 << 10), "the table would need 1000.0 KiB (dataset 'train' of 4000 rows x 64 floats)");
  CHECK(read_table(h5, "", with_limit(2 << 20)).size() == n);
}
