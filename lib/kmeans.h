// k-means clustering for codec training (product quantizers, rotations, coarse quantizers).
//
// Seeded and deterministic: the same input, options and seed give bit-identical centroids on
// any number of threads. Work is split into fixed row blocks whose results are combined in a
// fixed order, so the thread count changes only the speed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "vecpack/types.h"

namespace vecpack {

struct KMeansOptions {
  size_t max_iterations = 25;
  // Stop once an iteration lowers the objective by less than this fraction of it.
  double tolerance = 1e-4;
  // Training sets larger than k * this are subsampled (seeded): beyond a few hundred rows per
  // centroid the centroids barely move, while the cost keeps growing. 0: never subsample.
  size_t max_points_per_centroid = 256;
  uint64_t seed = 1234;
  unsigned threads = 0;  // 0: one per core
  Progress* progress = nullptr;
  std::string progress_task = "k-means";
  // k x d centroids to start from instead of k-means++ seeding (warm starts); may be null.
  const float* initial_centroids = nullptr;
  // false: skip the final pass that assigns every input row (when only centroids are wanted);
  // assignments stay empty and objective is that of the training rows.
  bool want_assignments = true;
};

struct KMeansResult {
  size_t k = 0, d = 0;
  std::vector<float> centroids;        // k x d
  std::vector<uint32_t> assignments;   // nearest centroid of each input row
  double objective = 0;                // sum over the input rows of the squared distance to it
  // The objective on the training rows (the subsample, if any) after each assignment step.
  std::vector<double> objective_history;
  size_t iterations = 0;         // assignment steps run on the training rows
  size_t repaired_clusters = 0;  // clusters found empty and re-seeded by splitting the largest
};

// Clusters n rows of dimension d (row-major) into k centroids: k-means++ seeding on a sample,
// then Lloyd iterations. Throws Error when n < k or k == 0; rows must be finite.
KMeansResult kmeans(const float* x, size_t n, size_t d, size_t k, const KMeansOptions& options = {});

// labels[i] = the nearest of k centroids (k x d) to row i by squared L2 distance, the smallest
// index on ties; distances (may be null) receive the squared distances.
void assign_nearest(const float* x, size_t n, size_t d, const float* centroids, size_t k, uint32_t* labels,
                    float* distances, unsigned threads = 0);

// Centroids prepared for repeated nearest-centroid queries on short rows (the sub-vectors of a
// product quantizer): transposed and padded for the SIMD kernel, norms precomputed.
class CentroidTable {
 public:
  CentroidTable() = default;
  CentroidTable(const float* centroids, size_t k, size_t d);  // k x d, row-major

  size_t k() const { return k_; }
  size_t d() const { return d_; }
  // Coordinate j of centroid c at transposed()[j * padded_k() + c] (padded_k: k rounded up to 16).
  const float* transposed() const { return transposed_.data(); }
  size_t padded_k() const { return padded_k_; }
  // For n rows starting at x, `stride` floats apart, each using its first d values:
  // labels[i] = nearest centroid (smallest index on ties); distances (may be null) = squared
  // distance to it. Single-threaded; callers split rows across threads.
  void nearest(const float* x, size_t n, size_t stride, uint32_t* labels, float* distances) const;

 private:
  size_t k_ = 0, d_ = 0, padded_k_ = 0;
  std::vector<float> transposed_;  // d x padded_k
  std::vector<float> half_sq_;     // |c|^2 / 2, +infinity in the padding
};

// A 64-bit seed derived from a base seed and a stream number (splitmix64), so that independent
// trainings (one per sub-quantizer, say) get unrelated random streams.
uint64_t derive_seed(uint64_t seed, uint64_t stream);

}  // namespace vecpack
