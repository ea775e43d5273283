// The search engine: exact top-k over any RowStore, blocked and multi-threaded.
#pragma once

#include <cmath>
#include <vector>

#include "row_store.h"
#include "vecpack/types.h"

namespace vecpack {

class Partition;

// queries: nq x store.dim(), in the table's space. For cos they are normalised here.
// With options.rerank, the best max(k, rerank) rows by `store` are rescored exactly from the
// decoded rows of `rerank_store` (a second representation of the same rows).
// partition: the table's inverted-file partition, whose lists are store's segments in order;
// with it, each query scans only the options.nprobe lists it probes.
SearchResult search_store(const RowStore& store, const float* queries, size_t nq, Metric metric,
                          const SearchOptions& options, const RowStore* rerank_store = nullptr,
                          const Partition* partition = nullptr);

// The value that would stand at place k (from 0) if keys[0, n) were sorted in descending order;
// reorders keys. k < n; keys must not be NaN (rank_key makes them so).
float kth_largest(float* keys, size_t n, size_t k);

// A score as a selection ranks it: NaN last, as -infinity.
inline float rank_key(float score) { return score == score ? score : -INFINITY; }

// Keeps the k best (score, id) pairs: larger score wins, equal scores prefer the smaller id.
// Small k keep a heap. From kReservoirK on, pairs that beat the threshold are appended and,
// when about twice k have gathered, cut back to k by a branchless selection (kth_largest),
// which raises the threshold: O(1) per pair instead of a sift through log2(k) levels.
class TopK {
 public:
  static constexpr size_t kReservoirK = 16;
  struct Item {
    float score;
    int64_t id;
  };

  explicit TopK(size_t k = 0) : k_(k), reservoir_(k >= kReservoirK) { items_.reserve(reservoir_ ? limit() : k); }
  // A copy keeps the reservation (a vector's copy does not): heaps copied from one prototype
  // would otherwise grow by reallocation, one allocation per doubling.
  TopK(const TopK& other) : k_(other.k_), reservoir_(other.reservoir_), cut_(other.cut_), kth_(other.kth_) {
    items_.reserve(other.items_.capacity());
    items_.assign(other.items_.begin(), other.items_.end());
  }
  TopK(TopK&&) = default;
  TopK& operator=(const TopK&) = default;
  TopK& operator=(TopK&&) = default;
  // True once threshold() is a lower bound on the k-th best score (the heap holds k items, or a
  // reservoir has been cut).
  bool full() const { return reservoir_ ? cut_ : items_.size() == k_; }
  // Only pairs better than the one scoring this (see full()) can enter.
  float threshold() const { return reservoir_ ? kth_.score : items_.front().score; }
  void push(float score, int64_t id);
  // A reservoir holding at least k pairs is cut now, so that full() holds and threshold() is
  // the k-th best; a heap is always tight.
  void tighten();
  // Best first.
  void sorted_into(int64_t* ids, float* scores) const;
  // The best k in no order (a shortlist to rescore needs no sort); padding (-1, NaN) last.
  void best_into(int64_t* ids, float* scores) const;
  // The pairs kept, in no order; a reservoir may hold up to limit() of them, the best k among them.
  const std::vector<Item>& items() const { return items_; }

 private:
  size_t limit() const { return 2 * k_ + 16; }
  void cut();

  size_t k_;
  bool reservoir_;
  bool cut_ = false;
  Item kth_{-INFINITY, 0};      // reservoir: the k-th best at the last cut
  std::vector<Item> items_;     // heap (worst at the front) or reservoir
};

}  // namespace vecpack
