// Sharded tables: a folder of .vecpack shards and the manifest that makes them one table.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>

#include "test_util.h"
#include "vecpack/codec.h"
#include "vecpack/errors.h"
#include "vecpack/table.h"

using namespace vecpack;

namespace {

std::vector<std::string> numbered_keys(size_t n) {
  std::vector<std::string> keys(n);
  for (size_t i = 0; i < n; ++i) keys[i] = "k" + std::to_string(i);
  return keys;
}

// The table split into shards of `rows` rows each in `folder`, manifest written.
std::vector<std::string> write_shards(const Table& table, const std::string& folder, size_t rows) {
  std::vector<std::string> files;
  for (size_t begin = 0; begin < table.size(); begin += rows) {
    files.push_back("part-" + std::to_string(files.size()) + ".vecpack");
    table.slice(begin, std::min(rows, table.size() - begin)).save(folder + "/" + files.back());
  }
  write_manifest(folder, files);
  return files;
}

// Both tables give the same ids and scores for every rerank depth (and the options given).
void check_same_search(const Table& a, const Table& b, const std::vector<float>& q, size_t nq, SearchOptions o) {
  for (size_t rerank : {0, 50}) {
    CAPTURE(rerank);
    o.rerank = rerank;
    const SearchResult x = a.search(q.data(), nq, o), y = b.search(q.data(), nq, o);
    CHECK(x.ids == y.ids);
    CHECK(x.scores == y.scores);
  }
}

}  // namespace

TEST_CASE("shards: a sharded table searches, gets and decodes exactly like the single file") {
  test::TempDir dir;
  const size_t n = 5000, d = 24, nq = 30;
  const auto x = test::clustered_rows(n, d, 40, 3);
  const auto q = test::clustered_rows(nq, d, 40, 4);
  CompressOptions options;
  options.rerank_spec = "int8";
  const Table whole = Table::from_rows(x, d, numbered_keys(n)).compress("pq:m=6", options);
  write_shards(whole, dir.path(), 1300);  // 4 shards, the last shorter
  const Table sharded = Table::open(dir.path());
  REQUIRE(sharded.size() == n);
  CHECK(sharded.info().shards.size() == 4);
  CHECK(sharded.info().shards[3].first_row == 3900);
  CHECK(sharded.spec() == whole.spec());
  for (size_t k : {1, 10, 200}) {
    CAPTURE(k);
    SearchOptions o;
    o.k = k;
    check_same_search(sharded, whole, q, nq, o);
  }
  // Keys route to their shard; rows decode across shard boundaries.
  CHECK(sharded.find("k3899") == size_t(3899));
  CHECK(sharded.find("k3900") == size_t(3900));
  CHECK(sharded.key(4999) == "k4999");
  CHECK(!sharded.find("missing"));
  std::vector<float> a(200 * d), b(200 * d);
  sharded.reconstruct(1200, 200, a.data());
  whole.reconstruct(1200, 200, b.data());
  CHECK(a == b);
  // Saved as one file, it is the single table again.
  sharded.save(dir.path() + "/one.vecpack");
  const Table one = Table::open(dir.path() + "/one.vecpack");
  CHECK(one.find("k4321") == size_t(4321));
  SearchOptions o;
  CHECK(one.search(q.data(), nq, o).ids == whole.search(q.data(), nq, o).ids);
  CHECK(Table::verify(dir.path()).ok());
}

TEST_CASE("shards: the manifest refuses shards of another codec, dimension or metric, naming the shard") {
  test::TempDir dir;
  const size_t n = 2000, d = 16;
  const auto x = test::clustered_rows(n, d, 20, 5);
  const Table rows = Table::from_rows(x, d);
  rows.slice(0, 1000).compress("int8").save(dir.path() + "/a.vecpack");
  rows.slice(1000, 1000).compress("int8").save(dir.path() + "/b.vecpack");  // int8 retrained: other ranges
  auto message = test::caught<Error>([&] { write_manifest(dir.path(), {"a.vecpack", "b.vecpack"}); });
  CHECK(test::contains(message.what(), "b.vecpack: codec 'int8' (fingerprint "));
  CHECK(test::contains(message.what(), "differs from a.vecpack's"));
  CHECK(!std::filesystem::exists(dir.path() + "/manifest.json"));

  Codec shared("int8");
  shared.train(x.data(), n, d);
  rows.slice(1000, 1000).compress(shared).save(dir.path() + "/b.vecpack");
  rows.slice(0, 1000).compress(shared).save(dir.path() + "/a.vecpack");
  write_manifest(dir.path(), {"a.vecpack", "b.vecpack"});
  CHECK(Table::open(dir.path()).size() == n);

  Table::from_rows(std::vector<float>(10 * 8, 1.f), 8).compress(shared.spec()).save(dir.path() + "/c.vecpack");
  CHECK(test::contains(test::caught<Error>([&] { write_manifest(dir.path(), {"a.vecpack", "c.vecpack"}); }).what(),
                       "c.vecpack: dimension 8 differs from a.vecpack's (16)"));
  CHECK(test::contains(test::caught<Error>([&] { write_manifest(dir.path(), {"../a.vecpack"}); }).what(),
                       "is not a plain file name"));
  Codec wrong("int8");
  CHECK(test::contains(test::caught<Error>([&] { rows.compress(wrong); }).what(), "is not trained"));
}

TEST_CASE("shards: a folder without a manifest, a damaged shard, and a shard swapped behind the manifest") {
  test::TempDir dir;
  const size_t n = 3000, d = 8;
  const Table table = Table::from_rows(test::clustered_rows(n, d, 10, 6), d).compress("f16");
  std::filesystem::create_directories(dir.path() + "/empty");
  CHECK(test::contains(test::caught<IoError>([&] { Table::open(dir.path() + "/empty"); }).what(),
                       "is a folder without manifest.json"));
  const auto files = write_shards(table, dir.path(), 1000);
  // One flipped byte in a shard's codes: verify names the shard (the manifest checksum and its own).
  const std::string victim = dir.path() + "/" + files[1];
  auto bytes = test::read_bytes(victim);
  bytes[bytes.size() - 100] ^= 0x40;
  test::write_bytes(victim, bytes);
  const VerifyReport report = Table::verify(dir.path());
  REQUIRE(!report.ok());
  CHECK(test::contains(report.problems.front(), files[1] + ": xxh64 checksum differs from the manifest's"));
  // A shard replaced by one with a different row count is refused at open.
  table.slice(0, 999).save(victim);
  CHECK(test::contains(test::caught<FormatError>([&] { Table::open(dir.path()); }).what(),
                       files[1] + ": row count 999 disagrees with"));
}

TEST_CASE("shards: row counts and the source come through a sharded table") {
  test::TempDir dir;
  const size_t n = 900, d = 8;
  std::vector<uint64_t> counts(n);
  for (size_t i = 0; i < n; ++i) counts[i] = 5 * (n - i);
  Table whole = Table::from_rows(test::clustered_rows(n, d, 9, 2), d, numbered_keys(n)).with_counts(counts).compress("int8");
  whole.set_source("glove", "words.txt");
  write_shards(whole, dir.path(), 400);
  const Table sharded = Table::open(dir.path());
  REQUIRE(sharded.counts() != nullptr);
  CHECK(std::vector<uint64_t>(sharded.counts(), sharded.counts() + n) == counts);
  CHECK(sharded.meta().source_format == "glove");
  // Saved as one file, the counts go with it; a frequency-ranked codec can use them.
  sharded.save(dir.file("one.vecpack"));
  CHECK(Table::open(dir.file("one.vecpack")).counts()[n - 1] == counts[n - 1]);
  CHECK(sharded.compress("mixdim:budget=24,order=counts").size() == n);
}

TEST_CASE("shards: a sharded ivf table searches, gets and saves exactly like the single file") {
  test::TempDir dir;
  const size_t n = 6000, d = 16, nq = 40;
  const auto x = test::clustered_rows(n, d, 50, 13);
  const auto q = test::clustered_rows(nq, d, 50, 14);
  CompressOptions options;
  options.rerank_spec = "int8";
  for (const char* spec : {"ivf:lists=32/pq:m=8", "ivf:lists=32,residual=on/pq:m=8,nbits=4"}) {
    CAPTURE(spec);
    const Table whole = Table::from_rows(x, d, numbered_keys(n), Metric::ip).compress(spec, options);
    std::filesystem::remove_all(dir.path());
    std::filesystem::create_directories(dir.path());
    write_shards(whole, dir.path(), 2500);  // 3 shards; every list spans them
    const Table sharded = Table::open(dir.path());
    REQUIRE(sharded.size() == n);
    CHECK(sharded.spec() == whole.spec());
    CHECK(sharded.recall_curve().points == whole.recall_curve().points);
    for (size_t nprobe : {1, 4, 32}) {
      CAPTURE(nprobe);
      SearchOptions o;
      o.nprobe = nprobe;
      check_same_search(sharded, whole, q, nq, o);
    }
    for (size_t row : {size_t(0), size_t(2499), size_t(2500), n - 1}) {
      CHECK(sharded.key(row) == whole.key(row));
      CHECK(sharded.row(row) == whole.row(row));  // residuals decode against their own list
    }
    // Saved as one file, the sharded table is the single file again.
    sharded.save(dir.file("joined.vecpack"));
    const Table joined = Table::open(dir.file("joined.vecpack"));
    SearchOptions o;
    o.nprobe = 4;
    CHECK(joined.search(q.data(), nq, o).ids == whole.search(q.data(), nq, o).ids);
    CHECK(Table::verify(dir.path()).ok());
  }
}

TEST_CASE("shards: ivf shards encoded with one model table share its partition; other partitions are refused") {
  test::TempDir dir;
  const size_t n = 4000, d = 16, nq = 20;
  const auto x = test::clustered_rows(n, d, 40, 23);
  const auto q = test::clustered_rows(nq, d, 40, 24);
  const Table all = Table::from_rows(x, d, numbered_keys(n));
  // The model: the partition and codec trained on a sample, as a sharded build trains them once.
  // pq scores a row by table lookups, the same bits in any block (int8 rounds by block shape).
  const Table model = all.slice(0, 1500).compress("ivf:lists=16/pq:m=4");
  std::vector<std::string> files;
  for (size_t begin = 0; begin < n; begin += 1000) {
    files.push_back("part-" + std::to_string(files.size()) + ".vecpack");
    const Table shard = all.slice(begin, 1000).compress(model);
    CHECK(shard.spec() == model.spec());
    CHECK(shard.recall_curve().points == model.recall_curve().points);
    shard.save(dir.file(files.back()));
  }
  write_manifest(dir.path(), files);
  const Table sharded = Table::open(dir.path());
  const Table single = all.compress(model);
  SearchOptions o;
  o.nprobe = 3;
  const SearchResult a = sharded.search(q.data(), nq, o), b = single.search(q.data(), nq, o);
  CHECK(a.ids == b.ids);
  CHECK(a.scores == b.scores);
  // A shard whose partition was trained on its own rows is refused by name (f32: one codec).
  all.slice(0, 1000).compress("ivf:lists=16/f32").save(dir.file("mine.vecpack"));
  all.slice(1000, 1000).compress("ivf:lists=16/f32").save(dir.file("other.vecpack"));
  CHECK_THROWS_WITH_AS(write_manifest(dir.path(), {"mine.vecpack", "other.vecpack"}),
                       doctest::Contains("other.vecpack: ivf partition 'ivf:lists=16' (fingerprint"), Error);
  all.slice(0, 1000).compress(model.codec()).save(dir.file("flat.vecpack"));
  CHECK_THROWS_WITH_AS(write_manifest(dir.path(), {files[0], "flat.vecpack"}),
                       doctest::Contains("flat.vecpack: ivf partition (none)"), Error);
  // A model of another metric is refused before encoding.
  const Table ip_rows = Table::from_rows(x, d, {}, Metric::ip);
  CHECK_THROWS_WITH_AS(ip_rows.compress(model), doctest::Contains("trained for metric cos"), Error);
}
