#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <random>

#include "search.h"
#include "test_util.h"
#include "vecpack/errors.h"
#include "vecpack/table.h"

using namespace vecpack;


TEST_CASE("search: exact top-k equals brute force for every metric, batch size and thread count") {
  const size_t n = 9000, d = 24, k = 10;
  auto x = test::clustered_rows(n, d, 50, 7);
  auto queries = test::clustered_rows(40, d, 50, 7);
  Table t = Table::from_rows(x, d);
  for (Metric metric : {Metric::ip, Metric::cos, Metric::l2})
    for (size_t nq : {size_t(1), size_t(3), size_t(40)})
      for (unsigned threads : {1u, 2u, 3u}) {
        CAPTURE(metric_name(metric));
        CAPTURE(nq);
        CAPTURE(threads);
        SearchOptions options;
        options.k = k;
        options.threads = threads;
        SearchResult r = t.search(queries.data(), nq, options, metric);
        REQUIRE(r.ids.size() == nq * k);
        for (size_t q = 0; q < nq; ++q) {
          auto want = test::brute_force(x, d, queries.data() + q * d, metric, k);
          // Near-ties may swap under float rounding; the sets must agree on all but such ties.
          size_t same = 0;
          for (size_t i = 0; i < k; ++i) same += std::count(want.begin(), want.end(), r.ids_of(q)[i]);
          CHECK(same >= k - 1);
          CHECK(r.ids_of(q)[0] == want[0]);
          for (size_t i = 1; i < k; ++i) {
            if (metric == Metric::l2) CHECK(r.scores_of(q)[i] >= r.scores_of(q)[i - 1]);
            else CHECK(r.scores_of(q)[i] <= r.scores_of(q)[i - 1]);
          }
        }
      }
}

TEST_CASE("search: scores and ids are bit-identical for every thread count (BLAS and kernel paths)") {
  // 64 queries take the GEMM path of f32, f16 and int8, and workers split the rows; with 300,
  // workers split the queries (each scores its share with a scorer of its own).
  const size_t n = 30011, d = 40;
  for (size_t nq : {size_t(64), size_t(300)}) {
  CAPTURE(nq);
  const auto x = test::clustered_rows(n, d, 50, 21);
  const auto q = test::clustered_rows(nq, d, 50, 22);
  const Table f32 = Table::from_rows(x, d);
  for (const char* spec : {"f32", "f16", "int8", "pq:m=10", "pq:m=10,nbits=4"}) {
    CAPTURE(std::string(spec));
    const Table t = std::string(spec) == "f32" ? f32 : f32.compress(spec);
    SearchOptions o;
    o.k = 50;
    o.threads = 1;
    const SearchResult one = t.search(q.data(), nq, o);
    for (unsigned threads : {2u, 3u, 5u}) {
      CAPTURE(threads);
      o.threads = threads;
      const SearchResult many = t.search(q.data(), nq, o);
      CHECK(many.ids == one.ids);
      CHECK(std::equal(many.scores.begin(), many.scores.end(), one.scores.begin(),
                       [](float a, float b) { return std::memcmp(&a, &b, sizeof a) == 0; }));
    }
  }
  }
}

TEST_CASE("search: scores are the metric's values") {
  std::vector<float> x = {3, 4, 0, 1, 0, 0, 0, 0, 0};
  Table t = Table::from_rows(x, 3);
  float q[3] = {1, 0, 0};
  SearchOptions o;
  o.k = 3;
  auto ip = t.search(q, 1, o, Metric::ip);
  CHECK(ip.ids == std::vector<int64_t>{0, 1, 2});
  CHECK(ip.scores[0] == doctest::Approx(3));
  auto cos = t.search(q, 1, o, Metric::cos);
  CHECK(cos.ids == std::vector<int64_t>{1, 0, 2});
  CHECK(cos.scores[0] == doctest::Approx(1.0));
  CHECK(cos.scores[1] == doctest::Approx(0.6));
  CHECK(cos.scores[2] == doctest::Approx(0.0));  // the zero row scores 0, not NaN
  auto l2 = t.search(q, 1, o, Metric::l2);
  CHECK(l2.ids == std::vector<int64_t>{1, 2, 0});
  CHECK(l2.scores[0] == doctest::Approx(0));
  CHECK(l2.scores[1] == doctest::Approx(1));
  CHECK(l2.scores[2] == doctest::Approx(20));
}

TEST_CASE("search: ties break by smaller row id across threads; k beyond n pads with -1") {
  const size_t n = 20000, d = 4;
  std::vector<float> x(n * d, 1.f);  // every row identical
  Table t = Table::from_rows(x, d);
  float q[4] = {1, 2, 3, 4};
  SearchOptions o;
  o.k = 5;
  o.threads = 2;
  auto r = t.search(q, 1, o);
  CHECK(r.ids == std::vector<int64_t>{0, 1, 2, 3, 4});

  Table small = Table::from_rows({1, 0, 0, 1}, 2);
  o.k = 4;
  auto padded = small.search(q, 1, o, Metric::ip);
  CHECK(padded.ids[0] == 1);
  CHECK(padded.ids[2] == -1);
  CHECK(padded.ids[3] == -1);
  CHECK(std::isnan(padded.scores[3]));
}

TEST_CASE("search: bad requests are errors") {
  Table t = Table::from_rows({1, 0, 0, 1}, 2);
  float q[2] = {NAN, 1};
  SearchOptions o;
  CHECK_THROWS_WITH_AS(t.search(q, 1, o), doctest::Contains("query 0 contains NaN"), Error);
  float good[2] = {1, 1};
  o.k = 0;
  CHECK_THROWS_WITH_AS(t.search(good, 1, o), doctest::Contains("k must be at least 1"), Error);
  o.k = 1;
  o.rerank = 10;
  CHECK_THROWS_WITH_AS(t.search(good, 1, o), doctest::Contains("no rerank section"), Error);
}

TEST_CASE("TopK keeps the best with stable ties") {
  TopK top(3);
  for (int i = 0; i < 10; ++i) top.push(float(i % 4), i);
  int64_t ids[3];
  float scores[3];
  top.sorted_into(ids, scores);
  CHECK(ids[0] == 3);
  CHECK(ids[1] == 7);
  CHECK(ids[2] == 2);
  CHECK(scores[2] == 2.f);
}

TEST_CASE("kth_largest selects like a descending sort, duplicates included") {
  std::mt19937 rng(7);
  for (size_t n : {1, 2, 9, 116, 1000}) {
    for (int levels : {2, 50, 1 << 20}) {  // few distinct values, some, nearly all distinct
      std::vector<float> keys(n);
      for (float& key : keys) key = float(int(rng() % uint32_t(levels))) - levels / 2;
      keys[0] = -INFINITY;
      std::vector<float> sorted = keys;
      std::sort(sorted.begin(), sorted.end(), std::greater<float>());
      for (size_t k : {size_t{0}, n / 3, n / 2, n - 1}) {
        std::vector<float> work = keys;
        CHECK(kth_largest(work.data(), n, k) == sorted[k]);
      }
    }
  }
}

TEST_CASE("TopK with a reservoir keeps the k best, ties by the smaller id, NaN last") {
  std::mt19937 rng(11);
  for (size_t k : {size_t{TopK::kReservoirK}, size_t{50}, size_t{200}}) {
    for (int levels : {3, 40, 1 << 20}) {
      TopK top(k), unsorted(k);
      std::vector<TopK::Item> all;
      for (int64_t id = 0; id < 5000; ++id) {
        const float score = id % 97 == 5 ? NAN : float(int(rng() % uint32_t(levels)));
        top.push(score, id);
        unsorted.push(score, id);
        all.push_back({score == score ? score : -INFINITY, id});
      }
      std::sort(all.begin(), all.end(), [](const TopK::Item& a, const TopK::Item& b) {
        return a.score > b.score || (a.score == b.score && a.id < b.id);
      });
      std::vector<int64_t> ids(k), best_ids(k);
      std::vector<float> scores(k), best_scores(k);
      top.sorted_into(ids.data(), scores.data());
      for (size_t i = 0; i < k; ++i) {
        CHECK(ids[i] == all[i].id);
        CHECK(scores[i] == all[i].score);
      }
      unsorted.best_into(best_ids.data(), best_scores.data());
      std::sort(best_ids.begin(), best_ids.end());
      std::vector<int64_t> expected(k);
      for (size_t i = 0; i < k; ++i) expected[i] = all[i].id;
      std::sort(expected.begin(), expected.end());
      CHECK(best_ids == expected);
    }
  }
}
