// The search engine: exact top-k over any RowStore, blocked and multi-threaded.
#pragma once

#include "row_store.h"
#include "vecpack/types.h"

namespace vecpack {

// queries: nq x store.dim(), in the table's space. For cos they are normalised here.
// With options.rerank, the best max(k, rerank) rows by `store` are rescored exactly from the
// decoded rows of `rerank_store` (a second representation of the same rows).
SearchResult search_store(const RowStore& store, const float* queries, size_t nq, Metric metric,
                          const SearchOptions& options, const RowStore* rerank_store = nullptr);

// Keeps the k best (score, id) pairs: larger score wins, equal scores prefer the smaller id.
class TopK {
 public:
  explicit TopK(size_t k = 0) : k_(k) { items_.reserve(k); }
  bool full() const { return items_.size() == k_; }
  // Lowest score kept; only meaningful when full().
  float threshold() const { return items_.front().score; }
  void push(float score, int64_t id);
  // Best first.
  void sorted_into(int64_t* ids, float* scores) const;
  struct Item {
    float score;
    int64_t id;
  };
  const std::vector<Item>& items() const { return items_; }

 private:
  size_t k_;
  std::vector<Item> items_;  // heap, worst at the front
};

}  // namespace vecpack
