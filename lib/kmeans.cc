#include "kmeans.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>

#include "kernels/kernels.h"
#include "parallel.h"
#include "vecpack/errors.h"

namespace vecpack {
namespace {

// Rows per task. Fixed, so that how rows are grouped never depends on the thread count.
constexpr size_t kBlockRows = 1024;
// Up to this dimension the nearest-centroid kernel beats a GEMM (which would spend its time
// writing the distance matrix rather than computing it).
constexpr size_t kKernelMaxDim = 32;
// The GEMM path: rows x centroids scored per call, sized to stay in L2.
constexpr size_t kGemmRows = 256;
constexpr size_t kGemmCentroids = 512;
// k-means++ looks at this many rows per centroid: seeding costs k times a pass over them.
constexpr size_t kSeedingRowsPerCentroid = 16;
// Relative size of the nudge that separates the two halves of a split cluster.
constexpr float kSplitNudge = 1.0f / 1024;

double uniform01(std::mt19937_64& rng) { return static_cast<double>(rng() >> 11) * 0x1p-53; }

float squared_distance(const float* a, const float* b, size_t d) {
  float s = 0;
  for (size_t j = 0; j < d; ++j) {
    const float t = a[j] - b[j];
    s += t * t;
  }
  return s;
}

float squared_norm(const float* a, size_t d) {
  float s = 0;
  for (size_t j = 0; j < d; ++j) s += a[j] * a[j];
  return s;
}

size_t task_count(size_t n) { return (n + kBlockRows - 1) / kBlockRows; }

// A seeded choice of `count` distinct rows of n, in increasing order (cache-friendly gathers).
std::vector<size_t> sample_rows(size_t n, size_t count, std::mt19937_64& rng) {
  std::vector<size_t> index(n);
  std::iota(index.begin(), index.end(), size_t(0));
  for (size_t i = 0; i < count; ++i) std::swap(index[i], index[i + rng() % (n - i)]);
  index.resize(count);
  std::sort(index.begin(), index.end());
  return index;
}

std::vector<float> gather_rows(const float* x, size_t d, const std::vector<size_t>& rows) {
  std::vector<float> out(rows.size() * d);
  for (size_t i = 0; i < rows.size(); ++i) std::copy_n(x + rows[i] * d, d, out.data() + i * d);
  return out;
}

double sum_in_order(const std::vector<float>& values) {
  double s = 0;
  for (float v : values) s += v;
  return s;
}

// k-means++ (Arthur and Vassilvitskii): each next centroid is a row drawn with probability
// proportional to its squared distance to the nearest centroid chosen so far.
std::vector<float> seed_plus_plus(const float* x, size_t n, size_t d, size_t k, std::mt19937_64& rng,
                                  unsigned threads) {
  std::vector<float> sample_storage;
  size_t s = std::min(n, std::max(k, k * kSeedingRowsPerCentroid));
  if (s < n) {
    sample_storage = gather_rows(x, d, sample_rows(n, s, rng));
    x = sample_storage.data();
  }
  std::vector<float> centroids(k * d);
  std::vector<float> nearest(s, std::numeric_limits<float>::infinity());
  auto add_centroid = [&](size_t c, size_t row) {
    const float* chosen = x + row * d;
    std::copy_n(chosen, d, centroids.data() + c * d);
    parallel_for(task_count(s), threads, [&](size_t t, unsigned) {
      const size_t end = std::min(s, (t + 1) * kBlockRows);
      for (size_t i = t * kBlockRows; i < end; ++i)
        nearest[i] = std::min(nearest[i], squared_distance(x + i * d, chosen, d));
    });
  };
  add_centroid(0, rng() % s);
  for (size_t c = 1; c < k; ++c) {
    const double total = sum_in_order(nearest);
    size_t pick = 0;
    if (total > 0) {
      const double target = uniform01(rng) * total;
      double running = 0;
      pick = s;
      for (size_t i = 0; i < s; ++i) {
        running += nearest[i];
        if (running > target && nearest[i] > 0) {
          pick = i;
          break;
        }
      }
      if (pick == s)  // rounding left the target just past the end: take the last candidate
        for (size_t i = s; i-- > 0;)
          if (nearest[i] > 0) {
            pick = i;
            break;
          }
    } else {
      pick = rng() % s;  // every row coincides with a centroid already; repair splits later
    }
    add_centroid(c, pick);
  }
  return centroids;
}

// Means of the rows assigned to each centroid, summed in row order in double precision, one
// centroid per task: the result cannot depend on how tasks are spread over threads.
std::vector<size_t> update_centroids(const float* x, size_t n, size_t d, size_t k, const std::vector<uint32_t>& labels,
                                     std::vector<float>& centroids, unsigned threads) {
  std::vector<size_t> counts(k, 0), start(k + 1, 0);
  for (size_t i = 0; i < n; ++i) ++counts[labels[i]];
  for (size_t c = 0; c < k; ++c) start[c + 1] = start[c] + counts[c];
  std::vector<size_t> order(n), fill(start.begin(), start.end() - 1);
  for (size_t i = 0; i < n; ++i) order[fill[labels[i]]++] = i;
  constexpr size_t kCentroidsPerTask = 16;
  parallel_for((k + kCentroidsPerTask - 1) / kCentroidsPerTask, threads, [&](size_t t, unsigned) {
    std::vector<double> sum(d);
    const size_t end = std::min(k, (t + 1) * kCentroidsPerTask);
    for (size_t c = t * kCentroidsPerTask; c < end; ++c) {
      if (counts[c] == 0) continue;
      std::fill(sum.begin(), sum.end(), 0.0);
      for (size_t p = start[c]; p < start[c + 1]; ++p) {
        const float* row = x + order[p] * d;
        for (size_t j = 0; j < d; ++j) sum[j] += row[j];
      }
      const double scale = 1.0 / static_cast<double>(counts[c]);
      for (size_t j = 0; j < d; ++j) centroids[c * d + j] = static_cast<float>(sum[j] * scale);
    }
  });
  return counts;
}

// An empty cluster takes half of the largest one: a copy of its centroid nudged one way while
// the original moves the other way, so the next assignment splits the rows between them.
size_t repair_empty_clusters(size_t d, size_t k, std::vector<size_t>& counts, std::vector<float>& centroids) {
  size_t repaired = 0;
  for (size_t c = 0; c < k; ++c) {
    if (counts[c] != 0) continue;
    const size_t largest = static_cast<size_t>(std::max_element(counts.begin(), counts.end()) - counts.begin());
    float* source = centroids.data() + largest * d;
    float* target = centroids.data() + c * d;
    float mean_magnitude = 0;
    for (size_t j = 0; j < d; ++j) mean_magnitude += std::fabs(source[j]);
    mean_magnitude /= static_cast<float>(d);
    for (size_t j = 0; j < d; ++j) {
      const float nudge = kSplitNudge * (std::fabs(source[j]) + mean_magnitude) * (j % 2 ? 1.0f : -1.0f);
      target[j] = source[j] + nudge;
      source[j] -= nudge;
    }
    counts[c] = counts[largest] / 2;
    counts[largest] -= counts[c];
    ++repaired;
  }
  return repaired;
}

void assign_with_gemm(const float* x, size_t n, size_t d, const float* centroids, size_t k, uint32_t* labels,
                      float* distances, unsigned threads) {
  keep_blas_single_threaded();
  std::vector<float> half_sq(k);
  for (size_t c = 0; c < k; ++c) half_sq[c] = 0.5f * squared_norm(centroids + c * d, d);
  const size_t tasks = (n + kGemmRows - 1) / kGemmRows;
  parallel_for(tasks, threads, [&](size_t t, unsigned) {
    const size_t begin = t * kGemmRows, rows = std::min(kGemmRows, n - begin);
    const float* block = x + begin * d;
    std::vector<float> dots(rows * std::min(k, kGemmCentroids));
    std::vector<float> best(rows, std::numeric_limits<float>::infinity());
    std::vector<uint32_t> best_label(rows, 0);
    for (size_t c0 = 0; c0 < k; c0 += kGemmCentroids) {
      const size_t cn = std::min(kGemmCentroids, k - c0);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(rows), static_cast<int>(cn),
                  static_cast<int>(d), 1.0f, block, static_cast<int>(d), centroids + c0 * d, static_cast<int>(d), 0.0f,
                  dots.data(), static_cast<int>(cn));
      for (size_t r = 0; r < rows; ++r) {
        const float* row_dots = dots.data() + r * cn;
        for (size_t c = 0; c < cn; ++c) {
          const float value = half_sq[c0 + c] - row_dots[c];
          if (value < best[r]) best[r] = value, best_label[r] = static_cast<uint32_t>(c0 + c);
        }
      }
    }
    for (size_t r = 0; r < rows; ++r) {
      labels[begin + r] = best_label[r];
      if (distances) distances[begin + r] = std::max(0.0f, squared_norm(block + r * d, d) + 2 * best[r]);
    }
  });
}

}  // namespace

uint64_t derive_seed(uint64_t seed, uint64_t stream) {
  auto mix = [](uint64_t z) {
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  };
  return mix(seed ^ mix(stream + 0x632be59bd9b4e019ull));
}

CentroidTable::CentroidTable(const float* centroids, size_t k, size_t d)
    : k_(k), d_(d), padded_k_((k + 15) / 16 * 16) {
  transposed_.assign(d * padded_k_, 0.0f);
  half_sq_.assign(padded_k_, std::numeric_limits<float>::infinity());
  for (size_t c = 0; c < k; ++c) {
    half_sq_[c] = 0.5f * squared_norm(centroids + c * d, d);
    for (size_t j = 0; j < d; ++j) transposed_[j * padded_k_ + c] = centroids[c * d + j];
  }
}

void CentroidTable::nearest(const float* x, size_t n, size_t stride, uint32_t* labels, float* distances) const {
  if (!distances) {
    kernels::active().nearest_centroids(x, n, stride, d_, transposed_.data(), half_sq_.data(), padded_k_, labels,
                                        nullptr);
    return;
  }
  kernels::active().nearest_centroids(x, n, stride, d_, transposed_.data(), half_sq_.data(), padded_k_, labels,
                                      distances);
  for (size_t i = 0; i < n; ++i) distances[i] = std::max(0.0f, squared_norm(x + i * stride, d_) + 2 * distances[i]);
}

void assign_nearest(const float* x, size_t n, size_t d, const float* centroids, size_t k, uint32_t* labels,
                    float* distances, unsigned threads) {
  if (k == 0) throw Error("k-means: cannot assign rows to 0 centroids");
  if (n == 0) return;
  if (d > kKernelMaxDim) return assign_with_gemm(x, n, d, centroids, k, labels, distances, threads);
  const CentroidTable table(centroids, k, d);
  parallel_for(task_count(n), threads, [&](size_t t, unsigned) {
    const size_t begin = t * kBlockRows, rows = std::min(kBlockRows, n - begin);
    table.nearest(x + begin * d, rows, d, labels + begin, distances ? distances + begin : nullptr);
  });
}

KMeansResult kmeans(const float* x, size_t n, size_t d, size_t k, const KMeansOptions& options) {
  if (k == 0) throw Error("k-means: the number of centroids must be at least 1");
  if (d == 0) throw Error("k-means: the rows have dimension 0");
  if (n < k)
    throw Error("k-means: " + std::to_string(n) + " training rows cannot make " + std::to_string(k) +
                " centroids (at least as many rows as centroids are needed)");
  const unsigned threads = resolve_threads(options.threads);
  std::mt19937_64 rng(options.seed);

  // The training rows: all of them, or a seeded subsample.
  std::vector<float> sample_storage;
  const float* train = x;
  size_t nt = n;
  if (options.max_points_per_centroid && n / k > options.max_points_per_centroid) {
    nt = k * options.max_points_per_centroid;
    sample_storage = gather_rows(x, d, sample_rows(n, nt, rng));
    train = sample_storage.data();
  }

  KMeansResult result;
  result.k = k;
  result.d = d;
  if (options.initial_centroids)
    result.centroids.assign(options.initial_centroids, options.initial_centroids + k * d);
  else
    result.centroids = seed_plus_plus(train, nt, d, k, rng, threads);

  std::vector<uint32_t> labels(nt);
  std::vector<float> distances(nt);
  bool assigned = false;
  if (options.progress) options.progress->begin(options.progress_task, options.max_iterations);
  for (size_t it = 0; it < options.max_iterations; ++it) {
    assign_nearest(train, nt, d, result.centroids.data(), k, labels.data(), distances.data(), threads);
    assigned = true;
    const double objective = sum_in_order(distances);
    const bool converged = it > 0 && result.objective_history.back() - objective <= options.tolerance * objective;
    result.objective_history.push_back(objective);
    result.iterations = it + 1;
    if (options.progress) options.progress->advance(it + 1);
    // Stopping right after an assignment keeps the labels consistent with the centroids.
    if (converged || it + 1 == options.max_iterations) break;
    std::vector<size_t> counts = update_centroids(train, nt, d, k, labels, result.centroids, threads);
    result.repaired_clusters += repair_empty_clusters(d, k, counts, result.centroids);
  }
  if (options.progress) options.progress->end();

  if (!options.want_assignments && assigned) {
    result.objective = result.objective_history.back();
  } else if (train == x && assigned) {
    result.assignments = std::move(labels);
    result.objective = result.objective_history.back();
  } else {
    result.assignments.resize(n);
    std::vector<float> all_distances(n);
    assign_nearest(x, n, d, result.centroids.data(), k, result.assignments.data(), all_distances.data(), threads);
    result.objective = sum_in_order(all_distances);
  }
  return result;
}

}  // namespace vecpack
