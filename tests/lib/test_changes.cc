// Tables that change: add, remove, compact, in memory and on disk (TableWriter), with snapshot
// isolation and one writer at a time.
#include <doctest/doctest.h>

#include <atomic>
#include <filesystem>
#include <thread>

#include "test_util.h"
#include "vecpack/errors.h"
#include "vecpack/table.h"

using namespace vecpack;

namespace {

std::vector<std::string> keys_from(size_t first, size_t count, const std::string& prefix = "w") {
  std::vector<std::string> keys(count);
  for (size_t i = 0; i < count; ++i) keys[i] = prefix + std::to_string(first + i);
  return keys;
}

std::vector<float> rows_of(const std::vector<float>& x, size_t d, size_t first, size_t count) {
  return std::vector<float>(x.begin() + first * d, x.begin() + (first + count) * d);
}

// Same ids, same scores up to rounding: a kernel may round a row's score differently by its place
// in the block it scores (the AVX2 int8 kernel's tail), and a delta shard moves rows' places.
void check_same_scores(const SearchResult& x, const SearchResult& y) {
  CHECK(x.ids == y.ids);
  REQUIRE(x.scores.size() == y.scores.size());
  for (size_t i = 0; i < x.scores.size(); ++i) CHECK(x.scores[i] == doctest::Approx(y.scores[i]).epsilon(1e-5));
}

void check_same_search(const Table& a, const Table& b, const std::vector<float>& q, size_t nq, SearchOptions o = {}) {
  o.k = 10;
  check_same_scores(a.search(q.data(), nq, o), b.search(q.data(), nq, o));
}

// A search never returns a deleted row.
void check_no_deleted(const Table& t, const std::vector<float>& q, size_t nq) {
  SearchOptions o;
  o.k = 50;
  const SearchResult r = t.search(q.data(), nq, o);
  for (int64_t id : r.ids)
    if (id >= 0) CHECK(!t.is_deleted(static_cast<size_t>(id)));
}

struct Data {
  size_t n = 1200, first = 1000, d = 16;
  std::vector<float> x = test::clustered_rows(1200, 16, 12, 21);
  std::vector<float> q = test::clustered_rows(20, 16, 12, 22);
  Table all_rows() const { return Table::from_rows(x, d, keys_from(0, n)); }
  Table first_rows() const { return Table::from_rows(rows_of(x, d, 0, first), d, keys_from(0, first)); }
  Table added_rows() const { return Table::from_rows(rows_of(x, d, first, n - first), d, keys_from(first, n - first)); }
};

}  // namespace

TEST_CASE("add: a table grown by add searches as the table built from all rows with the same codec") {
  const Data data;
  CompressOptions options;
  options.rerank_spec = "f16";
  for (const std::string spec : {"int8", "pq:m=4,nbits=4", "ivf:lists=8/int8", "ivf:lists=8/pq:m=8"}) {
    CAPTURE(spec);
    const Table base = data.first_rows().compress(spec, options);
    const Table whole = data.all_rows().compress(base, options);
    const Table grown = base.add(data.added_rows());
    REQUIRE(grown.size() == data.n);
    CHECK(grown.info().added_rows == data.n - data.first);
    CHECK(*grown.find("w1100") == 1100);
    CHECK(grown.get("w1100") == whole.get("w1100"));
    for (size_t rerank : {0, 30}) {
      SearchOptions o;
      o.rerank = rerank;
      check_same_search(grown, whole, data.q, 20, o);
      o.nprobe = 3;
      check_same_search(grown, whole, data.q, 20, o);
    }
  }
}

TEST_CASE("add refuses what it cannot do, naming the fix") {
  const Data data;
  const Table base = data.first_rows().compress("int8");
  CHECK_THROWS_WITH_AS(base.add(Table::from_rows(rows_of(data.x, data.d, 0, 2), data.d, {"w5", "new"})),
                       doctest::Contains("key 'w5' is already in the table (row 5); ask to replace its row"), Error);
  CHECK_THROWS_WITH_AS(base.add(Table::from_rows(rows_of(data.x, data.d, 0, 2), data.d)),
                       "add: the table has keys: give each new row one", Error);
  CHECK_THROWS_WITH_AS(base.add(Table::from_rows(std::vector<float>(8, 1.f), 8, {"a"})),
                       "add: the rows have dimension 8, the table 16", Error);
  const Table shared = data.first_rows().compress("qr:m=10");
  CHECK_THROWS_WITH_AS(shared.add(data.added_rows()), doctest::Contains("cannot be added to or moved in it without refitting"), Error);
}

TEST_CASE("add with replace: the key's new row is found, its old row is deleted") {
  const Data data;
  const Table base = data.first_rows().compress("int8");
  const std::vector<float> moved = rows_of(data.x, data.d, 1100, 1);
  AddOptions replace;
  replace.replace = true;
  const Table changed = base.add(Table::from_rows(moved, data.d, {"w7"}), replace);
  CHECK(changed.size() == data.first + 1);
  CHECK(changed.is_deleted(7));
  CHECK(*changed.find("w7") == data.first);
  CHECK(changed.get("w7") == data.all_rows().compress(base).get("w1100"));
  check_no_deleted(changed, data.x, 20);
}

TEST_CASE("remove: deleted rows never come back, through search, get, compaction") {
  const Data data;
  const Table base = data.all_rows().compress("ivf:lists=8/int8");
  const std::vector<std::string> gone = {"w0", "w3", "w500", "w1199"};
  const Table removed = base.remove(gone).remove_ids({10, 11, 3});
  CHECK(removed.deleted_rows() == 6);
  for (const auto& key : gone) {
    CHECK(!removed.find(key));
    CHECK_THROWS_AS(removed.get(key), NotFoundError);
  }
  CHECK_THROWS_WITH_AS(removed.remove({"w0"}), "delete: key 'w0' is not in the table", NotFoundError);
  CHECK_THROWS_WITH_AS(removed.remove_ids({1200}), "delete: row id 1200 is outside the table's 1200 rows", NotFoundError);
  // The rows themselves as queries: each would find itself first.
  check_no_deleted(removed, data.x, 40);
  for (size_t nprobe : {0, 2}) {
    SearchOptions o;
    o.nprobe = nprobe;
    o.k = 5;
    const SearchResult r = removed.search(data.x.data(), 12, o);
    for (int64_t id : r.ids) CHECK((id != 0 && id != 3 && id != 10 && id != 11));
  }
  // Saved, a table drops its deleted rows; a slice keeps those in its range deleted.
  test::TempDir dir;
  removed.save(dir.file("saved.vecpack"));
  const Table saved = Table::open(dir.file("saved.vecpack"));
  CHECK(saved.size() == data.n - 6);
  CHECK(!saved.find("w500"));
  const Table part = removed.slice(400, 200);
  CHECK(part.deleted_rows() == 1);
  CHECK(part.is_deleted(100));
  const Table compact = removed.compacted();
  CHECK(compact.size() == data.n - 6);
  const Table flat_compact = base.compress("int8").remove_ids({5}).compacted();
  REQUIRE(flat_compact.codes() != nullptr);  // one run of codes, as a freshly encoded table
  CHECK(std::equal(flat_compact.codes(), flat_compact.codes() + 5 * 16, base.compress("int8").codes()));
  CHECK(compact.deleted_rows() == 0);
  CHECK(!compact.find("w500"));
  CHECK(compact.key(0) == "w1");
  CHECK(compact.get("w1198") == base.get("w1198"));
  // The compacted table searches as the live rows encoded alone with the same codec.
  std::vector<float> live;
  std::vector<std::string> live_keys;
  for (size_t i = 0; i < data.n; ++i)
    if (!removed.is_deleted(i)) {
      live_keys.push_back("w" + std::to_string(i));
      const auto row = rows_of(data.x, data.d, i, 1);
      live.insert(live.end(), row.begin(), row.end());
    }
  const Table expected = Table::from_rows(live, data.d, live_keys).compress(base);
  for (size_t nprobe : {0, 3}) {
    SearchOptions o;
    o.nprobe = nprobe;
    check_same_search(compact, expected, data.q, 20, o);
  }
}

TEST_CASE("TableWriter: a file grows, loses rows and compacts on disk; readers keep their generation") {
  const Data data;
  test::TempDir dir;
  const std::string path = dir.file("t.vecpack");
  data.first_rows().compress("int8").save(path);
  const Table whole = data.all_rows().compress(Table::open(path));
  const Table before = Table::open(path);
  const SearchResult before_result = before.search(data.q.data(), 20);
  {
    TableWriter writer(path);
    CHECK_THROWS_WITH_AS(TableWriter{path}, ("table " + path + " is locked by pid " + std::to_string(getpid()) +
                                             " (another writer is changing it); try again when it has finished")
                                                .c_str(),
                         LockedError);
    writer.add(data.added_rows());
    CHECK(writer.table().info().generation == 1);
    check_same_search(writer.table(), whole, data.q, 20);
    const Table opened = Table::open(path);
    check_same_search(opened, whole, data.q, 20);
    CHECK(Table::verify(path).ok());
    writer.remove({"w2", "w1150"});
    const Table after_remove = Table::open(path);
    CHECK(after_remove.deleted_rows() == 2);
    CHECK_THROWS_AS(after_remove.get("w1150"), NotFoundError);
    check_no_deleted(after_remove, data.x, 40);
    writer.compact();
    CHECK(!std::filesystem::exists(path + ".changes/manifest.json"));
    // The reader that opened the first generation still sees it, whatever the writer did.
    const SearchResult still = before.search(data.q.data(), 20);
    CHECK(still.ids == before_result.ids);
    CHECK(still.scores == before_result.scores);
    check_same_search(after_remove, after_remove, data.q, 20);
  }
  CHECK(!std::filesystem::exists(path + ".changes"));
  const Table compacted = Table::open(path);
  CHECK(compacted.size() == data.n - 2);
  CHECK(!compacted.find("w2"));
  CHECK(compacted.get("w1199") == whole.get("w1199"));
  CHECK(Table::verify(path).ok());
}

TEST_CASE("TableWriter: a folder table takes delta shards; vacuum removes what no generation uses") {
  const Data data;
  test::TempDir dir;
  const std::string folder = dir.file("shards");
  std::filesystem::create_directory(folder);
  const Table base = data.first_rows().compress("pq:m=4");
  base.slice(0, 500).save(folder + "/part-0.vecpack");
  base.slice(500, 500).save(folder + "/part-1.vecpack");
  write_manifest(folder, {"part-0.vecpack", "part-1.vecpack"});
  const Table whole = data.all_rows().compress(base);
  TableWriter writer(folder);
  writer.add(data.added_rows().slice(0, 100));
  writer.add(data.added_rows().slice(100, 100));
  check_same_search(Table::open(folder), whole, data.q, 20);
  CHECK(Table::open(folder).info().shards.size() == 4);
  test::write_text(folder + "/delta-99.vecpack", "left by a writer that crashed");
  test::write_text(folder + "/notes.txt", "the owner's");
  CHECK(writer.vacuum() == 1);
  CHECK(std::filesystem::exists(folder + "/notes.txt"));
  writer.remove_ids({0, 999, 1000});
  writer.compact();
  const Table compacted = Table::open(folder);
  CHECK(compacted.info().shards.size() == 1);
  CHECK(compacted.size() == data.n - 3);
  CHECK(!std::filesystem::exists(folder + "/part-0.vecpack"));
  CHECK(Table::verify(folder).ok());
}

TEST_CASE("a damaged file of deleted ids is a FormatError, never a silent undelete") {
  const Data data;
  test::TempDir dir;
  const std::string path = dir.file("t.vecpack");
  data.first_rows().compress("int8").save(path);
  {
    TableWriter writer(path);
    writer.remove_ids({4, 5});
  }
  const std::string ids = path + ".changes/deleted-1.ids";
  std::vector<uint8_t> bytes = test::read_bytes(ids);
  bytes[16] ^= 1;
  test::write_bytes(ids, bytes);
  CHECK_THROWS_AS(Table::open(path), FormatError);
  CHECK(!Table::verify(path).ok());
}

TEST_CASE("TableWriter: reader threads open and search while a writer publishes generations") {
  const Data data;
  test::TempDir dir;
  const std::string path = dir.file("t.vecpack");
  data.first_rows().compress("int8").save(path);
  const std::vector<float> probe = rows_of(data.x, data.d, 1100, 1);
  std::atomic<bool> done{false};
  std::atomic<size_t> answers{0}, wrong{0};
  std::vector<std::thread> readers;
  for (int r = 0; r < 3; ++r)
    readers.emplace_back([&] {
      while (!done) {
        const Table t = Table::open(path);
        const uint64_t generation = t.info().generation;
        SearchOptions o;
        o.k = 1;
        o.threads = 2;
        const SearchResult found = t.search(probe.data(), 1, o);
        // Odd generations hold the probe row as "p<g>", even ones have deleted it again.
        const std::string best(t.key(static_cast<size_t>(found.ids[0])));
        if ((generation % 2 == 1) != (best == "p" + std::to_string(generation / 2))) ++wrong;
        ++answers;
      }
    });
  {
    TableWriter writer(path);
    for (int g = 0; g < 10; ++g) {
      writer.add(Table::from_rows(probe, data.d, {"p" + std::to_string(g)}));
      writer.remove({"p" + std::to_string(g)});
    }
  }
  done = true;
  for (auto& r : readers) r.join();
  CHECK(wrong == 0);
  CHECK(answers > 0);
}

TEST_CASE("TableWriter: many small adds merge their delta shards, keeping ids, keys and deletions") {
  const Data data;
  test::TempDir dir;
  const std::string path = dir.file("t.vecpack");
  data.first_rows().compress("ivf:lists=8/int8").save(path);
  const Table whole = data.all_rows().compress(Table::open(path));
  TableWriter writer(path);
  const Table added = data.added_rows();
  for (size_t batch = 0; batch < 20; ++batch) {
    writer.add(added.slice(batch * 10, 10));
    if (batch == 3) writer.remove({"w1031"});
    CHECK(writer.table().info().shards.size() <= 9);  // the base and at most 8 deltas
  }
  const uint64_t generation = writer.table().info().generation;
  CHECK(writer.add(added.slice(200, 0)).info().generation == generation);  // nothing to add: no generation
  const Table t = Table::open(path);
  CHECK(t.size() == data.n);
  CHECK(t.deleted_rows() == 1);
  CHECK(!t.find("w1031"));
  CHECK(*t.find("w1150") == 1150);
  CHECK(t.get("w1150") == whole.get("w1150"));
  for (size_t nprobe : {0, 3}) {
    SearchOptions o;
    o.nprobe = nprobe;
    o.k = 10;
    o.filter = RowFilter::deny(std::vector<int64_t>{1031}.data(), 1, data.n);
    check_same_scores(t.search(data.q.data(), 20, o), whole.search(data.q.data(), 20, o));
  }
  CHECK(Table::verify(path).ok());
  // A delta with fewer rows than the table has lists.
  writer.add(Table::from_rows(rows_of(data.x, data.d, 0, 3), data.d, {"x0", "x1", "x2"}));
  CHECK(*Table::open(path).find("x1") == data.n + 1);
  CHECK(Table::verify(path).ok());
}
