#include <doctest/doctest.h>

#include <cstring>

#include "test_util.h"
#include "vecpack/errors.h"
#include "vecpack/table.h"

using namespace vecpack;

namespace {
Table keyed_table(size_t n, size_t d, uint64_t seed = 3) {
  auto x = test::clustered_rows(n, d, 20, seed);
  std::vector<std::string> keys;
  for (size_t i = 0; i < n; ++i) keys.push_back("word" + std::to_string(i));
  return Table::from_rows(std::move(x), d, std::move(keys), Metric::cos);
}
}  // namespace

TEST_CASE("table: f32 save and open round-trip bit for bit, with keys and metadata") {
  test::TempDir dir;
  Table t = keyed_table(1000, 16);
  t.set_source("glove", "/data/words.txt");
  t.set_metric(Metric::l2);
  std::string path = dir.file("t.vecpack");
  t.save(path);
  Table u = Table::open(path);
  CHECK(u.size() == 1000);
  CHECK(u.dim() == 16);
  CHECK(u.metric() == Metric::l2);
  CHECK(u.spec() == "f32");
  CHECK(u.meta().source_format == "glove");
  CHECK(u.meta().source_path == "/data/words.txt");
  CHECK(u.meta().tool_version.rfind("vecpack ", 0) == 0);
  CHECK(u.meta().created.size() == 20);
  for (size_t i = 0; i < 1000; i += 37) {
    auto a = t.row(i), b = u.row(i);
    CHECK(std::memcmp(a.data(), b.data(), 16 * sizeof(float)) == 0);
    CHECK(u.key(i) == "word" + std::to_string(i));
    CHECK(*u.find("word" + std::to_string(i)) == i);
  }
  CHECK(u.get("word5") == t.row(5));
  CHECK_FALSE(u.find("nope").has_value());
  CHECK_THROWS_WITH_AS(u.get("nope"), doctest::Contains("key 'nope' is not in the table"), NotFoundError);
  TableInfo info = u.info();
  CHECK(info.code_bytes == 1000 * 16 * 4);
  CHECK(info.file_bytes == std::filesystem::file_size(path));
  CHECK(info.sections.size() == 4);
  CHECK(Table::verify(path).ok());
}

TEST_CASE("table: opening reads no codes; damage in them shows in verify") {
  test::TempDir dir;
  std::string path = dir.file("t.vecpack");
  keyed_table(500, 8).save(path);
  Table probe = Table::open(path);
  auto bytes = test::read_bytes(path);
  for (const auto& s : probe.info().sections) {
    CAPTURE(s.type);
    auto damaged = bytes;
    damaged[s.offset + s.length - 1] ^= 0x10;
    std::string bad = dir.file("bad.vecpack");
    test::write_bytes(bad, damaged);
    VerifyReport report = Table::verify(bad);
    REQUIRE_FALSE(report.ok());
    CHECK(report.problems[0].find("section " + s.type) != std::string::npos);
    if (s.type == "CODE" || s.type == "VOCB") CHECK_NOTHROW(Table::open(bad));  // large sections: checked by verify
    else CHECK_THROWS_AS(Table::open(bad), FormatError);                        // small ones: checked on open
  }
}

TEST_CASE("table: inconsistent files are FormatErrors naming the problem") {
  test::TempDir dir;
  std::string path = dir.file("t.vecpack");
  keyed_table(100, 8).save(path);
  Table t = Table::open(path);
  auto bytes = test::read_bytes(path);
  // Cut the file: the header's size no longer matches.
  std::string cut = dir.file("cut.vecpack");
  test::write_bytes(cut, std::vector<uint8_t>(bytes.begin(), bytes.end() - 100));
  CHECK_THROWS_WITH_AS(Table::open(cut), doctest::Contains("truncated"), FormatError);
  CHECK_THROWS_WITH_AS(Table::open(dir.file("missing.vecpack")), doctest::Contains("No such file"), IoError);
}

TEST_CASE("table: from_rows validates its input") {
  CHECK_THROWS_WITH_AS(Table::from_rows({1, 2, 3}, 2), doctest::Contains("not a multiple"), Error);
  CHECK_THROWS_WITH_AS(Table::from_rows({1, 2}, 0), doctest::Contains("dimension"), Error);
  CHECK_THROWS_WITH_AS(TableBuilder(kMaxDimension + 1), doctest::Contains("exceeds the largest"), Error);
  CHECK_THROWS_WITH_AS(Table::from_rows({1, 2, 3, 4}, 2, {"a"}), doctest::Contains("2 rows but 1 keys"), Error);
  CHECK_THROWS_WITH_AS(Table::from_rows({1, 2, 3, 4}, 2, {"a", "a"}), doctest::Contains("duplicate key 'a'"), Error);
  Table empty;
  CHECK(empty.size() == 0);
  CHECK_THROWS_AS(empty.save("/tmp/never.vecpack"), Error);
}

TEST_CASE("table builder: keeps the first of duplicate keys and fixes the dimension") {
  TableBuilder b;
  float r1[3] = {1, 2, 3}, r2[3] = {4, 5, 6};
  CHECK(b.add("a", r1, 3));
  CHECK_FALSE(b.add("a", r2, 3));
  CHECK(b.add("b", r2, 3));
  CHECK(b.duplicates() == 1);
  CHECK_THROWS_WITH_AS(b.add("c", r1, 2), doctest::Contains("has 2 values, expected 3"), Error);
  CHECK_THROWS_WITH_AS(b.add(r1, 3), doctest::Contains("cannot mix"), Error);
  Table t = b.finish(Metric::ip);
  CHECK(t.size() == 2);
  CHECK(t.get("a") == std::vector<float>{1, 2, 3});
  CHECK(t.metric() == Metric::ip);
  CHECK(first_non_finite(r1, 3) == 3);
  float bad[3] = {1, INFINITY, NAN};
  CHECK(first_non_finite(bad, 3) == 1);
}

TEST_CASE("table: compress keeps keys and metric, rejects NaN rows unless allowed") {
  Table t = keyed_table(3000, 16);
  CompressOptions o;
  o.train_size = 1000;
  Table c = t.compress("f16", o);
  CHECK(c.spec() == "f16");
  CHECK(c.size() == 3000);
  CHECK(*c.find("word42") == 42);
  CHECK(c.metric() == Metric::cos);
  CHECK(c.info().code_bytes == 3000 * 16 * 2);

  std::vector<float> x(40, 1.f);
  x[25] = NAN;
  Table withnan = Table::from_rows(x, 4);
  CHECK_THROWS_WITH_AS(withnan.compress("int8"), doctest::Contains("row 6 contains NaN"), Error);
  CompressOptions allow;
  allow.allow_nan = true;
  Table ok = withnan.compress("int8", allow);
  CHECK(ok.size() == 10);
  CHECK_THROWS_AS(t.compress("nonsense"), SpecError);
}

TEST_CASE("table: rerank rows rescore a shortlist; over every row they give the exact answer") {
  test::TempDir dir;
  Table exact = keyed_table(3000, 24, 9);
  CompressOptions options;
  options.rerank_spec = "f32";
  Table lossy = exact.compress("bf16", options);
  CHECK(lossy.info().rerank_spec == "f32");
  CHECK(lossy.info().rerank_bytes >= 3000 * 24 * 4);
  const std::string path = dir.file("r.vecpack");
  lossy.save(path);
  Table opened = Table::open(path);
  CHECK(opened.info().rerank_spec == "f32");
  CHECK(Table::verify(path).ok());

  auto queries = test::clustered_rows(40, 24, 20, 77);
  for (Metric metric : {Metric::ip, Metric::cos, Metric::l2}) {
    CAPTURE(metric_name(metric));
    SearchOptions plain;
    plain.k = 10;
    SearchResult truth = exact.search(queries.data(), 40, plain, metric);
    SearchOptions all = plain;
    all.rerank = 3000;  // every row is a candidate: the rescoring alone decides
    SearchResult reranked = opened.search(queries.data(), 40, all, metric);
    CHECK(reranked.k == 10);
    CHECK(reranked.ids == truth.ids);
    for (size_t i = 0; i < truth.scores.size(); ++i) CHECK(reranked.scores[i] == doctest::Approx(truth.scores[i]).epsilon(1e-5));
  }
  // A shortlist shorter than k still returns k rows (the shortlist is at least k long).
  SearchOptions short_list;
  short_list.k = 10;
  short_list.rerank = 3;
  CHECK(opened.search(queries.data(), 1, short_list).ids[9] >= 0);

  // Compressing again keeps the rerank rows unless told otherwise.
  CHECK(opened.compress("int8").info().rerank_spec == "f32");
  CompressOptions f16;
  f16.rerank_spec = "f16";
  CHECK(opened.compress("int8", f16).info().rerank_spec == "f16");

  SearchOptions wanted;
  wanted.rerank = 50;
  CHECK_THROWS_WITH_AS(exact.search(queries.data(), 1, wanted), doctest::Contains("no rerank section"), Error);
}
