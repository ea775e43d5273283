#include <doctest/doctest.h>

#include <cmath>
#include <cstring>

#include "kmeans.h"
#include "test_util.h"
#include "vecpack/errors.h"

using namespace vecpack;

namespace {

double squared_distance(const float* a, const float* b, size_t d) {
  double s = 0;
  for (size_t j = 0; j < d; ++j) s += (double(a[j]) - b[j]) * (double(a[j]) - b[j]);
  return s;
}

// Each label must pick a centroid as close as the true nearest (up to float rounding).
void check_nearest(const std::vector<float>& x, size_t d, const std::vector<float>& centroids, size_t k,
                   const std::vector<uint32_t>& labels, const std::vector<float>& distances) {
  const size_t n = x.size() / d;
  for (size_t i = 0; i < n; ++i) {
    double best = INFINITY;
    for (size_t c = 0; c < k; ++c) best = std::min(best, squared_distance(&x[i * d], &centroids[c * d], d));
    REQUIRE(labels[i] < k);
    const double chosen = squared_distance(&x[i * d], &centroids[labels[i] * d], d);
    CHECK(chosen <= best + 1e-4 * std::max(1.0, best));
    CHECK(distances[i] == doctest::Approx(chosen).epsilon(1e-3).scale(std::max(1.0, best)));
  }
}

}  // namespace

TEST_CASE("kmeans: assign_nearest finds the nearest centroid on the kernel and GEMM paths") {
  for (size_t d : {size_t(1), size_t(3), size_t(4), size_t(7), size_t(9), size_t(40)}) {
    for (size_t k : {size_t(1), size_t(5), size_t(16), size_t(37)}) {
      CAPTURE(d);
      CAPTURE(k);
      auto x = test::clustered_rows(301, d, 6, 100 + d);
      auto centroids = test::clustered_rows(k, d, 6, 200 + k);
      std::vector<uint32_t> labels(301);
      std::vector<float> distances(301);
      assign_nearest(x.data(), 301, d, centroids.data(), k, labels.data(), distances.data(), 2);
      check_nearest(x, d, centroids, k, labels, distances);
    }
  }
  // Equal distances go to the smaller index.
  const float x[2] = {0.5f, 0.0f};
  const float centroids[6] = {3, 3, 0, 0, 1, 0};  // centroids 1 and 2 are both 0.25 away
  uint32_t label = 9;
  assign_nearest(x, 1, 2, centroids, 3, &label, nullptr, 1);
  CHECK(label == 1);
}

TEST_CASE("kmeans: deterministic across runs and thread counts") {
  const size_t n = 6000, d = 6, k = 40;
  auto x = test::clustered_rows(n, d, 25, 7);
  KMeansOptions options;
  options.seed = 99;
  options.max_points_per_centroid = 100;  // exercises the seeded subsample too
  options.threads = 1;
  KMeansResult one = kmeans(x.data(), n, d, k, options);
  options.threads = 2;
  KMeansResult two = kmeans(x.data(), n, d, k, options);
  KMeansResult again = kmeans(x.data(), n, d, k, options);
  REQUIRE(one.centroids.size() == k * d);
  CHECK(std::memcmp(one.centroids.data(), two.centroids.data(), k * d * sizeof(float)) == 0);
  CHECK(std::memcmp(two.centroids.data(), again.centroids.data(), k * d * sizeof(float)) == 0);
  CHECK(one.assignments == two.assignments);
  CHECK(one.objective == two.objective);
  CHECK(one.assignments.size() == n);
  options.seed = 100;
  KMeansResult other = kmeans(x.data(), n, d, k, options);
  CHECK(std::memcmp(one.centroids.data(), other.centroids.data(), k * d * sizeof(float)) != 0);

  // The GEMM path (longer rows) is deterministic too.
  auto wide = test::clustered_rows(3000, 48, 10, 8);
  options.threads = 1;
  KMeansResult wide_one = kmeans(wide.data(), 3000, 48, 12, options);
  options.threads = 2;
  KMeansResult wide_two = kmeans(wide.data(), 3000, 48, 12, options);
  CHECK(std::memcmp(wide_one.centroids.data(), wide_two.centroids.data(), wide_one.centroids.size() * sizeof(float)) == 0);
}

TEST_CASE("kmeans: the objective decreases and matches the assignments") {
  const size_t n = 4000, d = 5, k = 24;
  auto x = test::clustered_rows(n, d, 30, 3, 0.5f);
  KMeansOptions options;
  options.tolerance = 0;  // run every iteration
  options.max_iterations = 15;
  KMeansResult r = kmeans(x.data(), n, d, k, options);
  REQUIRE(r.objective_history.size() == 15);
  CHECK(r.iterations == 15);
  for (size_t i = 1; i < r.objective_history.size(); ++i)
    CHECK(r.objective_history[i] <= r.objective_history[i - 1] * (1 + 1e-6));
  CHECK(r.objective_history.back() < r.objective_history.front());
  // The reported objective is the sum of the squared distances to the assigned centroids.
  double total = 0;
  for (size_t i = 0; i < n; ++i) total += squared_distance(&x[i * d], &r.centroids[r.assignments[i] * d], d);
  CHECK(r.objective == doctest::Approx(total).epsilon(1e-4));

  // Convergence stops early with a tolerance.
  options.tolerance = 1e-2;
  options.max_iterations = 100;
  KMeansResult early = kmeans(x.data(), n, d, k, options);
  CHECK(early.iterations < 100);
}

TEST_CASE("kmeans: an empty cluster is repaired by splitting the largest") {
  // Four tight, far-apart blobs; one starting centroid lies far from every row, so it is empty
  // after the first assignment while one of the others holds two blobs.
  const size_t per_blob = 50, d = 2, k = 4;
  const float blob_centres[4][2] = {{0, 0}, {10, 0}, {0, 10}, {10, 10}};
  std::vector<float> x;
  auto noise = test::clustered_rows(4 * per_blob, d, 1, 5, 0.1f);
  for (size_t b = 0; b < 4; ++b)
    for (size_t i = 0; i < per_blob; ++i)
      for (size_t j = 0; j < d; ++j) x.push_back(blob_centres[b][j] + noise[(b * per_blob + i) * d + j] - noise[j]);
  const float start[k * d] = {0, 0, 10, 0, 5, 10, 1000, 1000};
  KMeansOptions options;
  options.initial_centroids = start;
  options.tolerance = 0;
  options.max_iterations = 20;
  KMeansResult r = kmeans(x.data(), x.size() / d, d, k, options);
  CHECK(r.repaired_clusters >= 1);
  std::vector<size_t> counts(k, 0);
  for (uint32_t label : r.assignments) ++counts[label];
  for (size_t c = 0; c < k; ++c) CHECK(counts[c] == per_blob);
  CHECK(r.objective < 4 * per_blob * 0.2);  // each blob has its own centroid
}

TEST_CASE("kmeans: clear errors") {
  auto x = test::clustered_rows(10, 3, 2, 1);
  CHECK_THROWS_WITH_AS(kmeans(x.data(), 10, 3, 16), doctest::Contains("10 training rows cannot make 16 centroids"), Error);
  CHECK_THROWS_WITH_AS(kmeans(x.data(), 10, 3, 0), doctest::Contains("at least 1"), Error);
  // As many rows as centroids: every row becomes a centroid.
  KMeansResult r = kmeans(x.data(), 10, 3, 10);
  CHECK(r.objective == doctest::Approx(0).scale(1));
}
