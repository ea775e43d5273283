#include "sparse_least_squares.h"

#include <algorithm>
#include <cmath>

#include "parallel.h"

namespace vecpack {
namespace {

constexpr size_t kRowBlock = 4096;

// y = A p (n x d).
void multiply(const SparseRows& a, const std::vector<float>& p, size_t d, std::vector<float>& y, unsigned threads) {
  const size_t n = a.rows();
  parallel_for((n + kRowBlock - 1) / kRowBlock, threads, [&](size_t b, unsigned) {
    for (size_t i = b * kRowBlock; i < std::min(n, (b + 1) * kRowBlock); ++i) {
      float* yi = y.data() + i * d;
      std::fill(yi, yi + d, 0.0f);
      for (size_t e = a.begin[i]; e < a.begin[i + 1]; ++e) {
        const float* pj = p.data() + size_t(a.column[e]) * d;
        const float w = a.weight[e];
        for (size_t t = 0; t < d; ++t) yi[t] += w * pj[t];
      }
    }
  });
}

// out = A'y (p x d): each thread owns a range of columns, so none writes another's rows.
void multiply_transposed(const SparseRows& a, const float* y, size_t d, size_t p, std::vector<float>& out,
                         unsigned threads) {
  std::fill(out.begin(), out.end(), 0.0f);
  const size_t n = a.rows();
  parallel_for(threads, threads, [&](size_t part, unsigned) {
    const size_t lo = p * part / threads, hi = p * (part + 1) / threads;
    for (size_t i = 0; i < n; ++i)
      for (size_t e = a.begin[i]; e < a.begin[i + 1]; ++e) {
        const size_t c = a.column[e];
        if (c < lo || c >= hi) continue;
        float* o = out.data() + c * d;
        const float* yi = y + i * d;
        const float w = a.weight[e];
        for (size_t t = 0; t < d; ++t) o[t] += w * yi[t];
      }
  });
}

}  // namespace

size_t fit_sparse_rows(const SparseRows& a, const float* x, size_t d, size_t p, std::vector<float>& pool,
                       const SparseFitOptions& options) {
  const unsigned threads = resolve_threads(options.threads);
  const size_t n = a.rows(), size = p * d;
  pool.resize(size, 0.0f);
  double diagonal = 0;
  for (float w : a.weight) diagonal += double(w) * w;
  const float lambda = static_cast<float>(options.ridge * diagonal / double(std::max<size_t>(p, 1)));
  std::vector<float> y(n * d), ap(size), rhs(size), r(size), direction(size);
  auto apply = [&](const std::vector<float>& v, std::vector<float>& out) {
    multiply(a, v, d, y, threads);
    multiply_transposed(a, y.data(), d, p, out, threads);
    for (size_t e = 0; e < size; ++e) out[e] += lambda * v[e];
  };
  multiply_transposed(a, x, d, p, rhs, threads);
  apply(pool, ap);
  double rr = 0;
  for (size_t e = 0; e < size; ++e) {
    r[e] = rhs[e] - ap[e];
    direction[e] = r[e];
    rr += double(r[e]) * r[e];
  }
  const double target = rr * options.tolerance * options.tolerance;
  size_t iteration = 0;
  for (; iteration < options.max_iterations && rr > target; ++iteration) {
    apply(direction, ap);
    double pap = 0;
    for (size_t e = 0; e < size; ++e) pap += double(direction[e]) * ap[e];
    if (!(pap > 0)) break;
    const double alpha = rr / pap;
    double next = 0;
    for (size_t e = 0; e < size; ++e) {
      pool[e] += static_cast<float>(alpha * direction[e]);
      r[e] -= static_cast<float>(alpha * ap[e]);
      next += double(r[e]) * r[e];
    }
    const double beta = next / rr;
    rr = next;
    for (size_t e = 0; e < size; ++e) direction[e] = r[e] + static_cast<float>(beta * direction[e]);
    if (options.progress) options.progress->advance(iteration + 1);
  }
  return iteration;
}

}  // namespace vecpack
