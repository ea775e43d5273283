// Ridge least squares through a sparse design: the n x d rows X approximated as A P, A being an
// n x p sparse matrix (each row a few weighted columns) and P the p x d unknowns. Hash
// embeddings (a pool of rows picked by hashing) and subword pools (the rows of a word's
// n-grams, averaged) are both fitted this way.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "vecpack/types.h"

namespace vecpack {

// A in compressed rows: row i holds entries begin[i] .. begin[i + 1] - 1 of column/weight.
struct SparseRows {
  std::vector<size_t> begin;     // n + 1
  std::vector<uint32_t> column;  // < p
  std::vector<float> weight;
  size_t rows() const { return begin.empty() ? 0 : begin.size() - 1; }
};

struct SparseFitOptions {
  double ridge = 1e-3;       // lambda, relative to the mean diagonal of A'A
  size_t max_iterations = 40;
  double tolerance = 1e-4;   // stop when |residual| < tolerance x |initial residual|
  unsigned threads = 0;
  // Advanced to the iterations run after each one (the caller begins and ends it); may be null.
  Progress* progress = nullptr;
};

// Improves P (p x d, row-major, its current values the starting point) towards the solution of
// (A'A + lambda I) P = A'X by conjugate gradients over all d columns at once. Returns the
// iterations run.
size_t fit_sparse_rows(const SparseRows& a, const float* x, size_t d, size_t p, std::vector<float>& pool,
                       const SparseFitOptions& options = {});

}  // namespace vecpack
