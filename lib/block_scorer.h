// Building blocks for CodeScorer implementations.
//
// Every scorer reduces to two numbers per (query, row): the dot product q.x and, for cos and
// l2, the squared norm x.x. finish_scores() turns them into the metric's score, so codecs only
// supply fast ways to get them:
//   * GemmScorer decodes a block of codes to float (or uses f32 codes in place) and multiplies
//     it with the whole query batch through BLAS: the fastest path for many queries;
//   * RowKernelScorer runs a per-ISA kernel over the codes directly, one query at a time: the
//     fastest path for a few queries, with no decode buffer at all.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "vecpack/codec.h"

namespace vecpack {

// out[i] = score of row i from its dot and squared norm (sq unused for ip).
void finish_scores(Metric metric, float query_sq, const float* dot, const float* sq, size_t count, float* out);

// Scales each of n rows of dimension d to unit length (summed in double); zero rows stay zero.
// Queries for cos go through it, as do rows of the l2norm transform.
void normalize_rows(float* rows, size_t n, size_t d);

// out: for each of nq queries, the rows i < count with scores[q * ld + i] > thresholds[q]
// (all rows when the threshold is -infinity), as CodeScorer::select_above returns them.
void select_scores_above(const float* scores, size_t nq, size_t count, size_t ld, const float* thresholds,
                         BlockCandidates& out);

// Squared norms of count rows of dimension d.
void row_squared_norms(const float* rows, size_t count, size_t d, float* sq);

// A copy of the query batch with each query's squared norm.
class QueryBatchScorer : public CodeScorer {
 protected:
  QueryBatchScorer(const float* queries, size_t nq, size_t d, Metric metric);
  std::vector<float> queries_, query_sq_;
  size_t nq_, d_;
  Metric metric_;
};

class GemmScorer final : public QueryBatchScorer {
 public:
  // decode: turns count codes, the first at row first_row of the table, into count x d floats;
  // empty when the codes are f32 rows.
  using Decode = std::function<void(const uint8_t* codes, size_t first_row, size_t count, float* out)>;
  GemmScorer(const float* queries, size_t nq, size_t d, Metric metric, Decode decode);
  void score(const CodeBlock& block, float* out, size_t ld) const override;

 private:
  Decode decode_;
};

class RowKernelScorer final : public QueryBatchScorer {
 public:
  // dot_rows: dot[i] = q . x_i and (sq non-null) sq[i] = x_i . x_i for count rows of codes.
  using DotRows = std::function<void(const float* q, const uint8_t* codes, size_t count, float* dot, float* sq)>;
  RowKernelScorer(const float* queries, size_t nq, size_t d, Metric metric, DotRows dot_rows);
  void score(const CodeBlock& block, float* out, size_t ld) const override;

 private:
  DotRows dot_rows_;
};

// Few queries go through row kernels, many through GEMM: the crossover where a decoded block
// is reused by enough queries to pay for itself.
inline constexpr size_t kGemmMinQueries = 8;

}  // namespace vecpack
