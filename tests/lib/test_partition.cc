// Inverted-file partitions: rows stored list by list, each query scanning the lists it probes.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <set>

#include "partition.h"
#include "vecpack/formats.h"
#include "test_util.h"
#include "vecpack/errors.h"
#include "vecpack/table.h"

using namespace vecpack;

namespace {

double recall(const SearchResult& r, const std::vector<float>& x, size_t d, const std::vector<float>& queries, Metric metric) {
  size_t hits = 0;
  for (size_t q = 0; q < r.nq; ++q) {
    const auto truth = test::brute_force(x, d, queries.data() + q * d, metric, r.k);
    const std::set<int64_t> want(truth.begin(), truth.end());
    for (size_t i = 0; i < r.k; ++i) hits += want.count(r.ids_of(q)[i]);
  }
  return double(hits) / double(r.nq * r.k);
}

// Equal up to the last bits that BLAS and the row kernels may round differently for blocks of
// other shapes (the lists cut the rows into other blocks than the flat table).
void check_scores(const float* got, const float* want, size_t count) {
  for (size_t i = 0; i < count; ++i) CHECK(got[i] == doctest::Approx(want[i]).epsilon(1e-5));
}

Table table_of(const std::vector<float>& x, size_t d, Metric metric) {
  std::vector<float> rows = x;
  return Table::from_rows(std::move(rows), d, {}, metric);
}

}  // namespace

TEST_CASE("ivf: every list probed equals the flat table, for every codec family and metric") {
  const size_t n = 4000, d = 32;
  const auto x = test::clustered_rows(n, d, 40, 51);
  const auto queries = test::clustered_rows(12, d, 40, 52);
  for (Metric metric : {Metric::ip, Metric::cos, Metric::l2}) {
    const std::string metric_text = metric_name(metric);
    CAPTURE(metric_text);
    const Table base = table_of(x, d, metric);
    for (std::string spec : {"f32", "int8", "pq:m=8", "pq:m=16,nbits=4", "rbin:bits=2", "binary", "whiten/int8"}) {
      CAPTURE(spec);
      const Table flat = base.compress(spec);
      const Table ivf = base.compress("ivf:lists=16/" + spec);
      CHECK(ivf.spec() == "ivf:lists=16/" + flat.spec());
      CHECK(ivf.codes() == nullptr);  // stored list by list
      // The partition reorders rows; the codec and each row's code are the same.
      CHECK(ivf.codec().serialize() == flat.codec().serialize());
      std::vector<float> a(d), b(d);
      for (size_t row : {size_t(0), size_t(1777), n - 1}) {
        flat.reconstruct(row, 1, a.data());
        ivf.reconstruct(row, 1, b.data());
        CHECK(a == b);
      }
      SearchOptions options;
      options.k = 10;
      for (unsigned threads : {1u, 2u}) {
        options.threads = threads;
        // nprobe 0 scans every list as one flat batch.
        options.nprobe = 0;
        const SearchResult all = ivf.search(queries.data(), 12, options);
        const SearchResult want = flat.search(queries.data(), 12, options);
        CHECK(all.ids == want.ids);
        check_scores(all.scores.data(), want.scores.data(), all.scores.size());
        // nprobe = lists probes every list query by query: the flat result of each query alone.
        options.nprobe = 16;
        const SearchResult probed = ivf.search(queries.data(), 12, options);
        options.nprobe = 0;
        for (size_t q = 0; q < 12; ++q) {
          const SearchResult one = flat.search(queries.data() + q * d, 1, options);
          CHECK(std::equal(one.ids.begin(), one.ids.end(), probed.ids_of(q)));
          check_scores(probed.scores_of(q), one.scores.data(), one.scores.size());
        }
      }
    }
  }
}

TEST_CASE("ivf: recall grows with nprobe and reaches a floor at a fraction of the lists") {
  const size_t n = 8000, d = 24, k = 10;
  const auto x = test::clustered_rows(n, d, 64, 61);
  const auto queries = test::clustered_rows(50, d, 64, 62);
  const Table ivf = table_of(x, d, Metric::cos).compress("ivf:lists=64/f32");
  SearchOptions options;
  options.k = k;
  double previous = 0;
  for (size_t nprobe : {size_t(1), size_t(4), size_t(16), size_t(64)}) {
    CAPTURE(nprobe);
    options.nprobe = nprobe;
    const double r = recall(ivf.search(queries.data(), 50, options), x, d, queries, Metric::cos);
    MESSAGE("ivf:lists=64/f32 nprobe=" << nprobe << ": recall@10 " << r);
    CHECK(r >= previous);
    previous = r;
    if (nprobe == 16) CHECK(r >= 0.9);
  }
  CHECK(previous == doctest::Approx(1.0));
}

TEST_CASE("ivf: the result is the same for any number of threads, batch size and rerank shortlist order") {
  // Lists are scanned grouped by list, in rounds, split over workers: none of it may change
  // which rows come back, their order or their scores. (40 queries x 7 lists x 250 rows is
  // enough work for the search to use two workers.)
  const size_t n = 12000, d = 20, k = 10, nq = 40;
  const auto x = test::clustered_rows(n, d, 48, 71);
  const auto queries = test::clustered_rows(nq, d, 48, 72);
  for (const char* spec : {"ivf:lists=48/pq:m=10,nbits=4", "ivf:lists=48,residual=on/pq:m=10,nbits=4", "ivf:lists=48/int8"}) {
    CAPTURE(spec);
    const Metric metric = std::string(spec).find("residual") != std::string::npos ? Metric::ip : Metric::cos;
    CompressOptions compress;
    compress.rerank_spec = "f32";
    const Table ivf = table_of(x, d, metric).compress(spec, compress);
    SearchOptions options;
    options.k = k;
    options.nprobe = 7;
    options.rerank = 30;
    options.threads = 1;
    const SearchResult one = ivf.search(queries.data(), nq, options);
    options.threads = 2;
    const SearchResult two = ivf.search(queries.data(), nq, options);
    CHECK(two.ids == one.ids);
    CHECK(two.scores == one.scores);
    for (size_t q = 0; q < nq; q += 13) {
      const SearchResult single = ivf.search(queries.data() + q * d, 1, options);
      CHECK(std::equal(single.ids.begin(), single.ids.end(), one.ids_of(q)));
      CHECK(std::equal(single.scores.begin(), single.scores.end(), one.scores.begin() + static_cast<std::ptrdiff_t>(q * k)));
    }
  }
}

TEST_CASE("ivf residuals: scores are the decoded rows' exactly, and pq gains recall at equal bytes") {
  const size_t n = 6000, d = 32, k = 10;
  // Clusters far apart with small spread: what is left after the centroid is small.
  const auto x = test::clustered_rows(n, d, 32, 71, 0.15f);
  const auto queries = test::clustered_rows(40, d, 32, 72, 0.15f);
  for (Metric metric : {Metric::ip, Metric::l2}) {
    const std::string metric_text = metric_name(metric);
    CAPTURE(metric_text);
    const Table base = table_of(x, d, metric);
    const Table plain = base.compress("ivf:lists=32/pq:m=8");
    const Table residual = base.compress("ivf:lists=32,residual=on/pq:m=8");
    CHECK(residual.spec() == "ivf:lists=32,residual=on/pq:m=8,nbits=8");
    SearchOptions options;
    options.k = k;
    options.nprobe = 32;
    const SearchResult got = residual.search(queries.data(), 40, options);
    // Each score is that of the decoded row (centroid plus decoded residual).
    std::vector<float> row(d);
    for (size_t q = 0; q < 40; ++q)
      for (size_t i = 0; i < k; ++i) {
        residual.reconstruct(size_t(got.ids_of(q)[i]), 1, row.data());
        double dot = 0, l2 = 0;
        for (size_t j = 0; j < d; ++j) {
          dot += double(queries[q * d + j]) * row[j];
          l2 += (double(queries[q * d + j]) - row[j]) * (double(queries[q * d + j]) - row[j]);
        }
        const double want = metric == Metric::ip ? dot : l2;
        CHECK(got.scores_of(q)[i] == doctest::Approx(want).epsilon(1e-4).scale(1));
      }
    const double r_plain = recall(plain.search(queries.data(), 40, options), x, d, queries, metric);
    const double r_residual = recall(got, x, d, queries, metric);
    MESSAGE(metric_text << ": pq:m=8 recall@10 " << r_plain << ", with residuals " << r_residual);
    CHECK(r_residual > r_plain + 0.05);
  }
}

TEST_CASE("ivf: keys, rerank and row ids survive the list order") {
  const size_t n = 3000, d = 16;
  const auto x = test::clustered_rows(n, d, 30, 81);
  std::vector<std::string> keys(n);
  for (size_t i = 0; i < n; ++i) keys[i] = "w" + std::to_string(i);
  std::vector<float> rows = x;
  const Table base = Table::from_rows(std::move(rows), d, keys);
  CompressOptions options;
  options.rerank_spec = "f32";
  const Table ivf = base.compress("ivf:lists=20/pq:m=8", options);
  CHECK(ivf.key(1234) == "w1234");
  CHECK(ivf.get("w1234") == ivf.row(1234));
  SearchOptions search;
  search.k = 5;
  search.nprobe = 3;
  search.rerank = 100;
  // Each row finds itself first: exact rescoring from the rerank rows, under its original id.
  for (size_t row : {size_t(5), size_t(1500), n - 1}) {
    const SearchResult r = ivf.search(x.data() + row * d, 1, search);
    CHECK(r.ids[0] == int64_t(row));
    CHECK(r.scores[0] == doctest::Approx(1.0));
  }
}

TEST_CASE("ivf: bad specs and requests get clear errors") {
  const size_t n = 200, d = 8;
  const auto x = test::clustered_rows(n, d, 4, 91);
  const Table base = table_of(x, d, Metric::cos);
  CHECK_THROWS_WITH_AS(base.compress("ivf:lists=500/int8"), doctest::Contains("exceeds the 200 training rows"), Error);
  CHECK_THROWS_WITH_AS(base.compress("ivf:lists=0/int8"), doctest::Contains("lists"), SpecError);
  CHECK_THROWS_WITH_AS(base.compress("ivf:lists=4"), doctest::Contains("must be followed by one"), SpecError);
  CHECK_THROWS_WITH_AS(base.compress("ivf:lists=4/ivf:lists=2/int8"), doctest::Contains("a second ivf stage"), SpecError);
  CHECK_THROWS_WITH_AS(base.compress("ivf:lists=4,residual=on/whiten/int8"), doctest::Contains("without transforms"), SpecError);
  CHECK_THROWS_WITH_AS(base.compress("ivf:lists=4,residual=on/int8"), doctest::Contains("needs metric ip or l2"), Error);
  CHECK_THROWS_WITH_AS(base.compress("ivf:lists=4/qr:m=4"), doctest::Contains("drop the ivf stage"), Error);
  CompressOptions rerank;
  rerank.rerank_spec = "ivf:lists=4/int8";
  CHECK_THROWS_WITH_AS(base.compress("int8", rerank), doctest::Contains("not to rerank codes"), Error);
  const Table ivf = base.compress("ivf:lists=4/int8");
  SearchOptions options;
  options.nprobe = 5;
  CHECK_THROWS_WITH_AS(ivf.search(x.data(), 1, options), doctest::Contains("nprobe=5 exceeds the table's 4 lists"), Error);
}

TEST_CASE("ivf: a recall target picks nprobe from the curve measured at compression, kept in the file") {
  // Queries from the rows' own distribution: rows generated beside the table's and left out.
  const size_t n = 6000, d = 16, nq = 60;
  auto x = test::clustered_rows(n + nq, d, 8, 111);
  const std::vector<float> queries(x.begin() + static_cast<std::ptrdiff_t>(n * d), x.end());
  x.resize(n * d);
  CompressOptions options;
  options.rerank_spec = "f32";
  const Table base = table_of(x, d, Metric::cos);
  const Table ivf = base.compress("ivf:lists=64/pq:m=8", options);
  const RecallCurve& curve = ivf.recall_curve();
  REQUIRE(!curve.empty());
  CHECK(curve.k == 10);
  CHECK(curve.rerank == 100);
  CHECK(curve.queries == 300);  // n / 20
  // nprobe doubles from 1 and ends at every list; recall grows with it.
  std::vector<size_t> nprobes;
  for (const auto& point : curve.points) nprobes.push_back(point.first);
  CHECK(nprobes == std::vector<size_t>{1, 2, 4, 8, 16, 32, 64});
  for (size_t i = 1; i < curve.points.size(); ++i) CHECK(curve.points[i].second >= curve.points[i - 1].second - 0.02);
  CHECK(curve.points.front().second < 0.9);
  CHECK(curve.points.back().second > 0.95);
  for (double target : {0.5, 0.8, 0.95}) {
    CAPTURE(target);
    size_t want = 64;  // the fewest lists whose measured recall reaches the target
    for (const auto& [nprobe, recall] : curve.points)
      if (recall >= target) {
        want = nprobe;
        break;
      }
    SearchOptions by_recall, by_nprobe;
    by_recall.recall = target;
    by_nprobe.nprobe = want;
    by_nprobe.rerank = 100;  // the curve's depth, used when the search names none
    const SearchResult a = ivf.search(queries.data(), nq, by_recall), b = ivf.search(queries.data(), nq, by_nprobe);
    CHECK(a.ids == b.ids);
    CHECK(recall(a, x, d, queries, Metric::cos) >= target - 0.05);
  }
  test::TempDir dir;
  ivf.save(dir.file("curve.vecpack"));
  const Table opened = Table::open(dir.file("curve.vecpack"));
  CHECK(opened.recall_curve().points == curve.points);
  CHECK(opened.recall_curve().queries == curve.queries);
  // Bad targets and tables without a curve are refused by name.
  SearchOptions bad;
  bad.recall = 1.5;
  CHECK_THROWS_WITH_AS(ivf.search(queries.data(), 1, bad), doctest::Contains("not a target in (0, 1]"), Error);
  bad.recall = 0.9;
  bad.nprobe = 4;
  CHECK_THROWS_WITH_AS(ivf.search(queries.data(), 1, bad), doctest::Contains("not both"), Error);
  bad.nprobe = 0;
  CHECK_THROWS_WITH_AS(base.search(queries.data(), 1, bad), doctest::Contains("no ivf partition"), Error);
  CHECK(base.compress("pq:m=8").recall_curve().empty());

  // A curve measured elsewhere (on the caller's queries) replaces it and is kept in the file.
  RecallCurve tuned;
  tuned.k = 10;
  tuned.rerank = 20;
  tuned.queries = 7;
  tuned.measured_on = "queries";
  tuned.points = {{3, 0.5}, {5, 0.97}};
  const Table retuned = ivf.with_recall_curve(tuned);
  retuned.save(dir.file("tuned.vecpack"));
  const Table reopened = Table::open(dir.file("tuned.vecpack"));
  const RecallCurve& kept = reopened.recall_curve();
  CHECK(kept.points == tuned.points);
  CHECK(kept.measured_on == "queries");
  CHECK(kept.rerank == 20);
  SearchOptions by_tuned, by_hand;
  by_tuned.recall = 0.9;
  by_hand.nprobe = 5;
  by_hand.rerank = 20;
  CHECK(retuned.search(queries.data(), nq, by_tuned).ids == ivf.search(queries.data(), nq, by_hand).ids);
  RecallCurve unordered = tuned;
  unordered.points = {{5, 0.5}, {3, 0.9}};
  CHECK_THROWS_WITH_AS(ivf.with_recall_curve(unordered), doctest::Contains("out of order or out of range"), Error);
  unordered.points = {{65, 0.9}};
  CHECK_THROWS_WITH_AS(ivf.with_recall_curve(unordered), doctest::Contains("nprobe rises within 1..64"), Error);
  CHECK_THROWS_WITH_AS(base.with_recall_curve(tuned), doctest::Contains("has no partition"), Error);
}

TEST_CASE("ivf: a saved table opens in place and searches as it did; damaged lists are refused") {
  const size_t n = 2500, d = 16;
  const auto x = test::clustered_rows(n, d, 25, 101);
  const auto queries = test::clustered_rows(20, d, 25, 102);
  std::vector<std::string> keys(n);
  for (size_t i = 0; i < n; ++i) keys[i] = "k" + std::to_string(i);
  std::vector<float> rows = x;
  CompressOptions options;
  options.rerank_spec = "int8";
  const Table ivf = Table::from_rows(std::move(rows), d, keys, Metric::l2).compress("ivf:lists=24,residual=on/pq:m=4", options);
  test::TempDir dir;
  const std::string path = dir.file("ivf.vecpack");
  ivf.save(path);
  const Table opened = Table::open(path);
  CHECK(opened.spec() == ivf.spec());
  CHECK(opened.get("k77") == ivf.get("k77"));
  // What the partition costs is counted: its section sizes, 8 bytes a row of them the row ids.
  uint64_t section_bytes = 0;
  for (const auto& section : opened.info().sections)
    if (section.type == "IVFI" || section.type == "IVFC") section_bytes += section.length;
  CHECK(opened.info().partition_bytes == section_bytes);
  CHECK(ivf.info().partition_bytes == section_bytes);
  CHECK(Table::verify(path).ok());
  SearchOptions search;
  search.k = 7;
  for (size_t nprobe : {size_t(0), size_t(3), size_t(24)})
    for (size_t rerank : {size_t(0), size_t(40)}) {
      CAPTURE(nprobe);
      CAPTURE(rerank);
      search.nprobe = nprobe;
      search.rerank = rerank;
      const SearchResult a = ivf.search(queries.data(), 20, search), b = opened.search(queries.data(), 20, search);
      CHECK(a.ids == b.ids);
      CHECK(a.scores == b.scores);
    }
  // A reader that knows no partition finds no CODE section rather than rows in the wrong order.
  std::vector<std::string> types;
  for (const auto& section : opened.info().sections) types.push_back(section.type);
  CHECK(std::find(types.begin(), types.end(), "CODE") == types.end());
  CHECK(std::find(types.begin(), types.end(), "LIST") != types.end());

  const auto bytes = test::read_bytes(path);
  auto section_of = [&](const std::string& type) {
    for (const auto& section : opened.info().sections)
      if (section.type == type) return section;
    FAIL("no section " << type);
    return SectionInfo{};
  };
  // Any damage to the partition (small, read on open) is refused on open and by verify.
  const SectionInfo lists = section_of("IVFC");
  auto damaged = bytes;
  damaged[lists.offset + lists.length - 3] ^= 0x40;
  test::write_bytes(dir.file("bad-ivfc.vecpack"), damaged);
  CHECK_THROWS_AS(Table::open(dir.file("bad-ivfc.vecpack")), FormatError);
  CHECK_FALSE(Table::verify(dir.file("bad-ivfc.vecpack")).ok());
  // Row ids (large, used in place) are checked by verify, and once before a search reads them.
  const SectionInfo ids = section_of("IVFI");
  damaged = bytes;
  damaged[ids.offset + 8 * 10 + 6] ^= 0x01;  // row id of stored row 10: far out of range
  test::write_bytes(dir.file("bad-ivfi.vecpack"), damaged);
  CHECK_FALSE(Table::verify(dir.file("bad-ivfi.vecpack")).ok());
  const Table bad = Table::open(dir.file("bad-ivfi.vecpack"));
  CHECK_THROWS_WITH_AS(bad.search(queries.data(), 1, search), doctest::Contains("id map of the stored rows is damaged"),
                       FormatError);
}
