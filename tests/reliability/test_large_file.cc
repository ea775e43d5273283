// Files over 4 GiB: offsets and lengths are 64-bit throughout (docs/FORMAT.md). The files are
// built by hand, sparse (ftruncate leaves holes), so they take a few KB of disk; the test is
// skipped with a message where the file system cannot hold such a file sparsely.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "bytes.h"
#include "container.h"
#include "test_util.h"
#include "vecpack/table.h"
#include "vocabulary.h"

namespace vecpack {
namespace {

constexpr uint64_t k4GiB = uint64_t{1} << 32;
constexpr size_t kDim = 8;
constexpr uint64_t kRowBytes = kDim * sizeof(float);

uint64_t align_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

// A section of a sparse file: `length` bytes at `offset`, of which only `pieces` (offset within
// the section -> bytes) are written; the rest is a hole that reads as zeros.
struct SparseSection {
  std::string type;
  uint64_t offset = 0, length = 0;
  std::map<uint64_t, std::vector<uint8_t>> pieces;

  uint64_t checksum() const {
    XXH64_state_t* state = XXH64_createState();
    XXH64_reset(state, 0);
    static const std::vector<uint8_t> zeros(1 << 20, 0);
    uint64_t pos = 0;
    auto zero_fill = [&](uint64_t until) {
      while (pos < until) {
        uint64_t n = std::min<uint64_t>(until - pos, zeros.size());
        XXH64_update(state, zeros.data(), n);
        pos += n;
      }
    };
    for (const auto& [at, bytes] : pieces) {
      zero_fill(at);
      XXH64_update(state, bytes.data(), bytes.size());
      pos += bytes.size();
    }
    zero_fill(length);
    uint64_t h = XXH64_digest(state);
    XXH64_freeState(state);
    return h;
  }
};

void pwrite_all(int fd, const void* data, size_t size, uint64_t offset) {
  REQUIRE(::pwrite(fd, data, size, static_cast<off_t>(offset)) == static_cast<ssize_t>(size));
}

// Writes header, sections and section table as docs/FORMAT.md lays them out. False (with a
// message) when the file system cannot make the file sparse.
bool write_sparse_vecpack(const std::string& path, const std::vector<SparseSection>& sections) {
  uint64_t end = kHeaderSize;
  for (const auto& s : sections) end = std::max(end, s.offset + s.length);
  const uint64_t table_offset = align_up(end, kSectionAlign);
  ByteWriter table;
  for (const auto& s : sections) {
    table.put_bytes(s.type.data(), 4);
    table.put<uint32_t>(0);
    table.put<uint64_t>(s.offset);
    table.put<uint64_t>(s.length);
    table.put<uint64_t>(s.checksum());
  }
  const uint64_t file_size = table_offset + table.bytes().size();
  ByteWriter header;
  header.put_bytes(kFileMagic, 8);
  header.put<uint16_t>(kFormatMajor);
  header.put<uint16_t>(kFormatMinor);
  header.put<uint32_t>(0);
  header.put<uint64_t>(file_size);
  header.put<uint64_t>(table_offset);
  header.put<uint32_t>(static_cast<uint32_t>(sections.size()));
  header.put<uint32_t>(static_cast<uint32_t>(kSectionEntrySize));
  header.put<uint64_t>(xxh64(table.bytes().data(), table.bytes().size()));
  header.put<uint64_t>(0);
  header.put<uint64_t>(xxh64(header.bytes().data(), 56));

  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  REQUIRE(fd >= 0);
  if (::ftruncate(fd, static_cast<off_t>(file_size)) != 0) {
    MESSAGE("skipped: the file system cannot hold a " << file_size << "-byte file: " << std::strerror(errno));
    ::close(fd);
    return false;
  }
  pwrite_all(fd, header.bytes().data(), header.bytes().size(), 0);
  for (const auto& s : sections)
    for (const auto& [at, bytes] : s.pieces) pwrite_all(fd, bytes.data(), bytes.size(), s.offset + at);
  pwrite_all(fd, table.bytes().data(), table.bytes().size(), table_offset);
  struct stat st {};
  REQUIRE(::fstat(fd, &st) == 0);
  ::close(fd);
  const uint64_t on_disk = static_cast<uint64_t>(st.st_blocks) * 512;
  if (on_disk > (uint64_t{64} << 20)) {
    MESSAGE("skipped: the file system does not keep files sparse (" << on_disk << " bytes on disk)");
    return false;
  }
  return true;
}

std::vector<uint8_t> bytes_of(const std::string& text) { return {text.begin(), text.end()}; }

std::vector<uint8_t> f32_codec(size_t d) {
  ByteWriter w;
  w.put<uint32_t>(1);
  w.put_string("f32");
  w.put<uint64_t>(12);
  w.put<uint32_t>(1);
  w.put<uint64_t>(d);
  return w.take();
}

std::string meta_json(uint64_t n, bool keys) {
  return R"({"format":"vecpack","n":)" + std::to_string(n) + R"(,"d":)" + std::to_string(kDim) +
         R"(,"metric":"l2","spec":"f32","code_size":)" + std::to_string(kRowBytes) +
         R"(,"keys":)" + (keys ? "true" : "false") + "}";
}

std::vector<float> marker_row(float base) {
  std::vector<float> row(kDim);
  for (size_t j = 0; j < kDim; ++j) row[j] = base + static_cast<float>(j);
  return row;
}

std::vector<uint8_t> row_bytes(const std::vector<float>& row) {
  std::vector<uint8_t> out(row.size() * sizeof(float));
  std::memcpy(out.data(), row.data(), out.size());
  return out;
}

}  // namespace

TEST_CASE("large files: a CODE section of more than 4 GiB, rows read back from its end") {
  test::TempDir dir;
  const std::string path = dir.file("rows.vecpack");
  // n rows of 32 bytes: the code section ends 64 KiB past 4 GiB; the row that starts exactly at
  // file offset 4 GiB and the last row hold data, every other row is a hole (zeros).
  const uint64_t code_offset = 4096;
  const uint64_t n = (k4GiB + 65536) / kRowBytes;
  const uint64_t row_at_4gib = (k4GiB - code_offset) / kRowBytes;
  SparseSection meta{"META", 64, 0, {}};
  std::string meta_text = meta_json(n, false);
  meta.length = meta_text.size();
  meta.pieces[0] = bytes_of(meta_text);
  SparseSection codec{"CODC", align_up(64 + meta.length, 64), 0, {}};
  std::vector<uint8_t> codec_bytes = f32_codec(kDim);
  codec.length = codec_bytes.size();
  codec.pieces[0] = codec_bytes;
  REQUIRE(codec.offset + codec.length <= code_offset);
  SparseSection code{"CODE", code_offset, n * kRowBytes, {}};
  code.pieces[0] = row_bytes(marker_row(-1.f));
  code.pieces[row_at_4gib * kRowBytes] = row_bytes(marker_row(100.f));
  code.pieces[(n - 1) * kRowBytes] = row_bytes(marker_row(7.f));
  if (!write_sparse_vecpack(path, {meta, codec, code})) return;

  Table t = Table::open(path);
  REQUIRE(t.size() == n);
  CHECK(t.dim() == kDim);
  CHECK(t.info().file_bytes > k4GiB);
  CHECK(t.info().code_bytes == n * kRowBytes);
  CHECK(t.row(n - 1) == marker_row(7.f));
  CHECK(t.row(row_at_4gib) == marker_row(100.f));
  CHECK(t.row(row_at_4gib - 1) == std::vector<float>(kDim, 0.f));
  CHECK(t.row(0) == marker_row(-1.f));
  std::vector<float> last_two(2 * kDim);
  t.reconstruct(n - 2, 2, last_two.data());
  CHECK(std::vector<float>(last_two.begin() + kDim, last_two.end()) == marker_row(7.f));
  CHECK_THROWS_AS(t.row(n), NotFoundError);
}

TEST_CASE("large files: sections placed beyond 4 GiB (codes and keys), opened, searched and verified") {
  test::TempDir dir;
  const std::string path = dir.file("far.vecpack");
  const uint64_t n = 100;
  std::vector<std::string> keys;
  std::vector<float> rows;
  for (uint64_t i = 0; i < n; ++i) {
    keys.push_back("key" + std::to_string(i));
    std::vector<float> row = marker_row(static_cast<float>(i));
    rows.insert(rows.end(), row.begin(), row.end());
  }
  SparseSection meta{"META", 64, 0, {}};
  std::string meta_text = meta_json(n, true);
  meta.length = meta_text.size();
  meta.pieces[0] = bytes_of(meta_text);
  SparseSection codec{"CODC", align_up(64 + meta.length, 64), 0, {}};
  std::vector<uint8_t> codec_bytes = f32_codec(kDim);
  codec.length = codec_bytes.size();
  codec.pieces[0] = codec_bytes;
  // A 5 GiB gap of zero padding, then the codes and the keys.
  SparseSection code{"CODE", k4GiB + (uint64_t{1} << 30), n * kRowBytes, {}};
  code.pieces[0] = row_bytes(rows);
  SparseSection vocab{"VOCB", align_up(code.offset + code.length, 64), 0, {}};
  std::vector<uint8_t> vocab_bytes = build_vocabulary(keys);
  vocab.length = vocab_bytes.size();
  vocab.pieces[0] = vocab_bytes;
  if (!write_sparse_vecpack(path, {meta, codec, code, vocab})) return;

  VerifyReport report = Table::verify(path);
  for (const auto& problem : report.problems) MESSAGE(problem);
  CHECK(report.ok());
  Table t = Table::open(path);
  REQUIRE(t.size() == n);
  CHECK(t.get("key99") == marker_row(99.f));
  CHECK(t.key(n - 1) == "key99");
  std::vector<float> query = marker_row(42.2f);
  SearchOptions options;
  options.k = 3;
  SearchResult r = t.search(query.data(), 1, options);
  CHECK(r.ids_of(0)[0] == 42);
  for (const auto& s : t.info().sections)
    if (s.type == "CODE" || s.type == "VOCB") CHECK(s.offset > k4GiB);
}

}  // namespace vecpack
