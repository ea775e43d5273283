// Filtered search: SearchOptions::filter equals a scan of the allowed rows alone, for every kind
// of scan (flat, gathered, ivf lists, fast-scan layouts, rerank).
#include <doctest/doctest.h>

#include <random>

#include "test_util.h"
#include "vecpack/errors.h"
#include "vecpack/table.h"

using namespace vecpack;

namespace {

// Every row ranked by the table's own scorer, then the first k allowed: brute force over the
// allowed rows with the scores the filtered scan must give.
void check_filtered(const Table& table, const std::vector<float>& q, size_t nq, const RowFilter& filter, SearchOptions o) {
  const size_t k = o.k;
  SearchOptions all = o;
  all.k = table.size();
  all.rerank = o.rerank ? table.size() : 0;
  all.nprobe = 0;
  all.filter = RowFilter();
  const SearchResult everything = table.search(q.data(), nq, all);
  // With rerank, the first pass's best o.rerank allowed rows, rescored.
  SearchResult first_pass;
  if (o.rerank) {
    all.rerank = 0;
    first_pass = table.search(q.data(), nq, all);
  }
  o.filter = filter;
  const SearchResult found = table.search(q.data(), nq, o);
  REQUIRE(found.k == k);
  for (size_t i = 0; i < nq; ++i) {
    CAPTURE(i);
    std::vector<int64_t> expected_ids;
    std::vector<float> expected_scores;
    std::vector<int64_t> shortlist;
    for (size_t r = 0; o.rerank && r < first_pass.k && shortlist.size() < o.rerank; ++r)
      if (filter.allows(first_pass.ids_of(i)[r])) shortlist.push_back(first_pass.ids_of(i)[r]);
    for (size_t r = 0; r < everything.k && expected_ids.size() < k; ++r) {
      const int64_t id = everything.ids_of(i)[r];
      const bool listed = !o.rerank || std::find(shortlist.begin(), shortlist.end(), id) != shortlist.end();
      if (id >= 0 && filter.allows(id) && listed) {
        expected_ids.push_back(id);
        expected_scores.push_back(everything.scores_of(i)[r]);
      }
    }
    while (expected_ids.size() < k) expected_ids.push_back(-1);
    for (size_t r = 0; r < k; ++r) {
      CAPTURE(r);
      if (expected_ids[r] < 0) {
        CHECK(found.ids_of(i)[r] == -1);
        continue;
      }
      CHECK(found.ids_of(i)[r] >= 0);
      CHECK(filter.allows(found.ids_of(i)[r]));
      CHECK(found.scores_of(i)[r] == doctest::Approx(expected_scores[r]).epsilon(1e-4));
    }
  }
}

std::vector<int64_t> sample_ids(size_t n, double share, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::bernoulli_distribution keep(share);
  std::vector<int64_t> ids;
  for (size_t i = 0; i < n; ++i)
    if (keep(rng)) ids.push_back(static_cast<int64_t>(i));
  return ids;
}

}  // namespace

TEST_CASE("RowFilter: allow, deny, ranges and intersection") {
  const std::vector<int64_t> ids{0, 5, 63, 64, 99};
  const RowFilter allow = RowFilter::allow(ids.data(), ids.size(), 100);
  CHECK(allow.active());
  CHECK(allow.allowed() == 5);
  CHECK(allow.allows(63));
  CHECK(!allow.allows(62));
  CHECK(!allow.allows(100));
  CHECK(!allow.allows(-1));
  CHECK(allow.ids() == ids);
  CHECK(allow.any_in(60, 4));
  CHECK(!allow.any_in(6, 57));
  CHECK(allow.all_in(63, 2));
  CHECK(!allow.all_in(63, 3));
  const RowFilter deny = RowFilter::deny(ids.data(), ids.size(), 100);
  CHECK(deny.allowed() == 95);
  CHECK(!deny.allows(64));
  CHECK(deny.allows(65));
  CHECK(deny.all_in(6, 57));
  CHECK(allow.intersect(deny).allowed() == 0);
  CHECK(RowFilter().intersect(allow).ids() == ids);
  CHECK(RowFilter::all(70).allowed() == 70);
  CHECK(!RowFilter().active());
  CHECK(RowFilter().allows(12345));
  const std::vector<int64_t> outside{100};
  CHECK_THROWS_WITH_AS(RowFilter::allow(outside.data(), 1, 100), "allow: row id 100 is outside the table's 100 rows", Error);
}

TEST_CASE("filtered search equals brute force over the allowed rows") {
  const size_t n = 3000, d = 16, nq = 7;
  const std::vector<float> x = test::clustered_rows(n, d, 24, 11);
  const std::vector<float> q = test::clustered_rows(nq, d, 24, 12);
  const Table flat = Table::from_rows(x, d);
  CompressOptions rerank;
  rerank.rerank_spec = "int8";
  struct Case {
    std::string name;
    Table table;
    size_t nprobe = 0, rerank = 0;
  };
  std::vector<Case> cases;
  cases.push_back({"f32", flat});
  cases.push_back({"int8", flat.compress("int8")});
  cases.push_back({"pq fast scan + rerank", flat.compress("pq:m=8,nbits=4", rerank), 0, 40});
  cases.push_back({"binary", flat.compress("binary")});
  const Table ivf = flat.compress("ivf:lists=16/int8");
  cases.push_back({"ivf every list", ivf});
  cases.push_back({"ivf all lists probed", ivf, 16});
  for (const Case& c : cases)
    for (double share : {0.01, 0.1, 0.5, 0.9}) {
      CAPTURE(c.name);
      CAPTURE(share);
      const std::vector<int64_t> ids = sample_ids(n, share, 7 + uint64_t(share * 100));
      SearchOptions o;
      o.k = 10;
      o.nprobe = c.nprobe;
      o.rerank = c.rerank;
      for (unsigned threads : {1u, 2u}) {
        o.threads = threads;
        check_filtered(c.table, q, nq, RowFilter::allow(ids.data(), ids.size(), n), o);
        check_filtered(c.table, q, nq, RowFilter::deny(ids.data(), ids.size(), n), o);
      }
    }
}

TEST_CASE("filtered search: a contiguous range skips whole blocks, an empty filter finds nothing") {
  const size_t n = 10000, d = 8;
  const std::vector<float> x = test::clustered_rows(n, d, 10, 3);
  const Table table = Table::from_rows(x, d).compress("int8");
  std::vector<int64_t> ids(5000);
  std::iota(ids.begin(), ids.end(), 2500);
  SearchOptions o;
  o.k = 5;
  check_filtered(table, x, 4, RowFilter::allow(ids.data(), ids.size(), n), o);
  o.filter = RowFilter::allow(nullptr, 0, n);
  const SearchResult none = table.search(x.data(), 2, o);
  CHECK(none.ids == std::vector<int64_t>(10, -1));
}

TEST_CASE("filtered search in an ivf table probing few lists returns only allowed rows") {
  const size_t n = 4000, d = 16;
  const std::vector<float> x = test::clustered_rows(n, d, 32, 5);
  const Table ivf = Table::from_rows(x, d).compress("ivf:lists=32/int8");
  const std::vector<int64_t> ids = sample_ids(n, 0.5, 99);
  const RowFilter filter = RowFilter::allow(ids.data(), ids.size(), n);
  SearchOptions o;
  o.k = 10;
  o.nprobe = 4;
  o.filter = filter;
  const SearchResult found = ivf.search(x.data(), 50, o);
  size_t returned = 0;
  for (int64_t id : found.ids)
    if (id >= 0) {
      CHECK(filter.allows(id));
      ++returned;
    }
  CHECK(returned == found.ids.size());
  // Few allowed rows: gathered and scanned exactly whatever nprobe says.
  const std::vector<int64_t> few = sample_ids(n, 0.02, 5);
  o.nprobe = 1;
  check_filtered(ivf, x, 20, RowFilter::allow(few.data(), few.size(), n), o);
}

TEST_CASE("row tables: saved with the table, and a filter by feature table is brute force over its rows") {
  const size_t n = 600, d = 8;
  const std::vector<float> x = test::clustered_rows(n, d, 6, 41);
  std::vector<std::string> keys;
  std::vector<uint32_t> tables;
  for (size_t i = 0; i < n; ++i) {
    tables.push_back(i % 3 == 0 ? 1u : 0u);
    keys.push_back((tables.back() ? "item:" : "user:") + std::to_string(i));
  }
  CompressOptions options;
  options.row_tables = tables;
  const Table t = Table::from_rows(x, d, keys).compress("hash:rows=128,k=2", options);
  test::TempDir dir;
  t.save(dir.file("t.vecpack"));
  const Table opened = Table::open(dir.file("t.vecpack"));
  REQUIRE(opened.row_tables() != nullptr);
  CHECK(std::equal(tables.begin(), tables.end(), opened.row_tables()));
  CHECK(opened.slice(3, 5).row_tables()[0] == 1u);
  const RowFilter items = opened.rows_in_table(1);
  CHECK(items.allowed() == 200);
  SearchOptions o;
  o.k = 10;
  // hash places rows by position: the filter is checked in the scan, never by gathering.
  check_filtered(opened, x, 12, items, o);
  CHECK_THROWS_WITH_AS(Table::from_rows(x, d).rows_in_table(0), doctest::Contains("the table has no row tables"), Error);
}
