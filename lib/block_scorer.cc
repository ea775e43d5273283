#include "block_scorer.h"

#include <cblas.h>

#include <cmath>
#include <cstring>

#include "kernels/kernels.h"

namespace vecpack {

void select_scores_above(const float* scores, size_t nq, size_t count, size_t ld, const float* thresholds,
                         BlockCandidates& out) {
  const auto& k = kernels::active();
  out.offsets.resize(nq + 1);
  out.rows.resize(nq * count);
  out.scores.resize(nq * count);
  size_t total = 0;
  for (size_t q = 0; q < nq; ++q) {
    out.offsets[q] = static_cast<uint32_t>(total);
    const float* s = scores + q * ld;
    uint32_t* rows = out.rows.data() + total;
    size_t found;
    if (thresholds[q] == -INFINITY) {
      for (size_t i = 0; i < count; ++i) rows[i] = static_cast<uint32_t>(i);
      found = count;
    } else {
      found = k.select_above(s, count, thresholds[q], rows);
    }
    for (size_t p = 0; p < found; ++p) out.scores[total + p] = s[rows[p]];
    total += found;
  }
  out.offsets[nq] = static_cast<uint32_t>(total);
}

void finish_scores(Metric metric, float query_sq, const float* dot, const float* sq, size_t count, float* out) {
  switch (metric) {
    case Metric::ip:
      for (size_t i = 0; i < count; ++i) out[i] = dot[i];
      break;
    case Metric::cos:
      for (size_t i = 0; i < count; ++i) out[i] = sq[i] > 0 ? dot[i] / std::sqrt(sq[i]) : 0.f;
      break;
    case Metric::l2:
      for (size_t i = 0; i < count; ++i) out[i] = 2 * dot[i] - sq[i] - query_sq;
      break;
  }
}

void normalize_rows(float* rows, size_t n, size_t d) {
  for (size_t i = 0; i < n; ++i) {
    float* v = rows + i * d;
    double s = 0;
    for (size_t j = 0; j < d; ++j) s += double(v[j]) * v[j];
    if (s <= 0) continue;
    const float inv = static_cast<float>(1.0 / std::sqrt(s));
    for (size_t j = 0; j < d; ++j) v[j] *= inv;
  }
}

void row_squared_norms(const float* rows, size_t count, size_t d, float* sq) {
  static thread_local std::vector<float> zeros;
  if (zeros.size() < d) zeros.assign(d, 0.f);
  static thread_local std::vector<float> unused;
  if (unused.size() < count) unused.resize(count);
  kernels::active().dot_f32_rows(zeros.data(), rows, count, d, unused.data(), sq);
}

QueryBatchScorer::QueryBatchScorer(const float* queries, size_t nq, size_t d, Metric metric)
    : queries_(queries, queries + nq * d), query_sq_(nq), nq_(nq), d_(d), metric_(metric) {
  row_squared_norms(queries, nq, d, query_sq_.data());
}

GemmScorer::GemmScorer(const float* queries, size_t nq, size_t d, Metric metric, Decode decode)
    : QueryBatchScorer(queries, nq, d, metric), decode_(std::move(decode)) {}

void GemmScorer::score(const CodeBlock& block, float* out, size_t ld) const {
  const uint8_t* codes = block.codes;
  const size_t count = block.count, first_row = block.first_row;
  static thread_local std::vector<float> decoded, row_sq;
  const float* rows = reinterpret_cast<const float*>(codes);
  if (decode_ || metric_ == Metric::cos) {
    if (decoded.size() < count * d_) decoded.resize(count * d_);
    if (decode_) decode_(codes, first_row, count, decoded.data());
    else std::memcpy(decoded.data(), codes, count * d_ * sizeof(float));
    rows = decoded.data();
  }
  if (metric_ != Metric::ip) {
    if (row_sq.size() < count) row_sq.resize(count);
    row_squared_norms(rows, count, d_, row_sq.data());
  }
  if (metric_ == Metric::cos) {
    // Rows scaled to unit length before the product: one pass over the block's rows instead of
    // one over every query's scores.
    for (size_t i = 0; i < count; ++i) {
      const float scale = row_sq[i] > 0 ? 1.f / std::sqrt(row_sq[i]) : 0.f;
      float* row = decoded.data() + i * d_;
      for (size_t j = 0; j < d_; ++j) row[j] *= scale;
    }
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(nq_), static_cast<int>(count),
              static_cast<int>(d_), metric_ == Metric::l2 ? 2.f : 1.f, queries_.data(), static_cast<int>(d_), rows,
              static_cast<int>(d_), 0.f, out, static_cast<int>(ld));
  if (metric_ != Metric::l2) return;
  // l2: 2 q.x was computed by the GEMM.
  for (size_t q = 0; q < nq_; ++q) {
    float* o = out + q * ld;
    const float qs = query_sq_[q];
    for (size_t i = 0; i < count; ++i) o[i] -= row_sq[i] + qs;
  }
}

RowKernelScorer::RowKernelScorer(const float* queries, size_t nq, size_t d, Metric metric, DotRows dot_rows)
    : QueryBatchScorer(queries, nq, d, metric), dot_rows_(std::move(dot_rows)) {}

void RowKernelScorer::score(const CodeBlock& block, float* out, size_t ld) const {
  const uint8_t* codes = block.codes;
  const size_t count = block.count;
  static thread_local std::vector<float> dot, sq;
  if (dot.size() < count) dot.resize(count), sq.resize(count);
  float* sq_out = metric_ == Metric::ip ? nullptr : sq.data();
  for (size_t q = 0; q < nq_; ++q) {
    dot_rows_(queries_.data() + q * d_, codes, count, dot.data(), sq_out);
    finish_scores(metric_, query_sq_[q], dot.data(), sq.data(), count, out + q * ld);
  }
}

}  // namespace vecpack
