// rabitq: random rotation + sign bits with an unbiased inner-product estimator and its error
// bound (see rabitq.h).
#include "rabitq.h"

#include <cblas.h>

#include <cmath>
#include <cstring>

#include "sign_bits.h"
#include "transforms.h"

namespace vecpack {
namespace {

using namespace sign_bits;

// ---------------------------------------------------------------------------------- rabitq
// RaBitQ (Gao & Long, SIGMOD 2024): r = x - c, o = r P / |r| for a random orthogonal P; the
// code holds b = [o > 0], |r|, f = <o, xbar> with xbar = (2b - 1)/sqrt(d), and |x| (for cos).
// For a query-side vector v (qP for ip and cos, (q - c)P for l2), <o, v> is estimated without
// bias by <xbar, v> / f, with |error| <= eps0 |v| sqrt(1 - f^2) / (f sqrt(d - 1)) with high
// probability: the error is close to Gaussian with that scale per unit eps0, so eps0 = 1.9 (the
// paper's choice) is exceeded on one side about 3% of the time, eps0 = 3 about 0.1%.
// <xbar, v> comes from the query quantized to qbits-bit planes; the rounding adds an error of
// standard deviation step / sqrt(12) to <xbar, v>, bounded with the same eps0.

class RabitqQuantizer final : public Quantizer {
 public:
  RabitqQuantizer(uint64_t seed, unsigned query_bits, std::string bound_text, float bound)
      : seed_(seed), query_bits_(query_bits), bound_text_(std::move(bound_text)), bound_(bound) {}
  const CodecDescriptor& descriptor() const override { return kRabitqCodec; }
  std::string spec() const override {
    return spec_of("rabitq", {{"seed=" + std::to_string(seed_), seed_ == 1234},
                              {"qbits=" + std::to_string(query_bits_), query_bits_ == 4},
                              {"bound=" + bound_text_, bound_text_ == "1.9"}});
  }
  bool trained() const override { return d_ != 0; }
  size_t dim_in() const override { return d_; }
  size_t factors_offset() const { return words_for(d_) * 8; }
  size_t code_size() const override { return factors_offset() + 6; }  // + f16 |r|, f, |x|
  unsigned query_bits() const { return query_bits_; }
  float bound() const { return bound_; }
  const std::vector<float>& centre() const { return centre_; }

  void train(const float* x, size_t n, size_t d, const TrainOptions&) override {
    check_train_dim(d, "rabitq");
    if (d > 16384) throw Error("rabitq: dimension " + str(d) + " exceeds 16384 (the rotation is d x d)");
    centre_ = column_means(x, n, d, "rabitq");
    rotation_ = random_orthogonal(d, seed_);
    d_ = d;
  }

  // v = (rows - offset) P for n rows; offset may be null.
  void rotate(const float* rows, size_t n, const float* offset, float* v) const {
    std::vector<float> shifted;
    if (offset) {
      shifted.assign(rows, rows + n * d_);
      for (size_t i = 0; i < n; ++i)
        for (size_t j = 0; j < d_; ++j) shifted[i * d_ + j] -= offset[j];
      rows = shifted.data();
    }
    const int di = int(d_);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(n), di, di, 1.f, rows, di, rotation_.data(), di, 0.f, v, di);
  }

  void encode(const float* x, size_t n, uint8_t* codes, size_t) const override {
    std::vector<float> rotated(n * d_);
    rotate(x, n, centre_.data(), rotated.data());
    const float root_d = std::sqrt(float(d_));
    for (size_t i = 0; i < n; ++i) {
      uint8_t* code = codes + i * code_size();
      const float* o = rotated.data() + i * d_;
      pack_signs(o, d_, code);
      const double residual = std::sqrt(dot(o, o, d_));
      double absolute = 0;
      for (size_t j = 0; j < d_; ++j) absolute += std::fabs(o[j]);
      const float f = residual > 0 ? float(absolute / (residual * root_d)) : 1.f;
      const uint16_t factors[3] = {f16_bits(float(residual)), f16_bits(f),
                                   f16_bits(float(std::sqrt(dot(x + i * d_, x + i * d_, d_))))};
      std::memcpy(code + factors_offset(), factors, sizeof factors);
    }
  }

  // x ~ c + |r| f (xbar P^T): the projection of o on xbar, rotated back.
  void decode(const uint8_t* codes, size_t n, float* x, size_t) const override {
    std::vector<float> rotated(n * d_);
    const float inverse_root_d = 1.f / std::sqrt(float(d_));
    for (size_t i = 0; i < n; ++i) {
      const uint8_t* code = codes + i * code_size();
      uint16_t factors[2];
      std::memcpy(factors, code + factors_offset(), sizeof factors);
      const float length = f16_value(factors[0]) * f16_value(factors[1]) * inverse_root_d;
      for (size_t j = 0; j < d_; ++j) rotated[i * d_ + j] = length * sign_of(code, j);
    }
    const int di = int(d_);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(n), di, di, 1.f, rotated.data(), di, rotation_.data(), di,
                0.f, x, di);
    for (size_t i = 0; i < n; ++i)
      for (size_t j = 0; j < d_; ++j) x[i * d_ + j] += centre_[j];
  }

  std::unique_ptr<CodeScorer> scorer(const float* queries, size_t nq, Metric metric) const override;
  std::unique_ptr<CodeScorer> upper_bound_scorer(const float* queries, size_t nq, Metric metric) const override;

  // u32 version, u64 d, centre (array of d f32), rotation (array of d*d f32, row-major).
  std::vector<uint8_t> serialize() const override {
    ByteWriter w;
    w.put<uint32_t>(1);
    w.put<uint64_t>(d_);
    w.put_array(centre_);
    w.put_array(rotation_);
    return w.take();
  }

  void load(const uint8_t* data, size_t size) override {
    ByteReader r(data, size, "parameters of codec 'rabitq'");
    const uint64_t d = read_blob_header(r, 1);
    if (d > 16384) r.fail("dimension " + str(d) + " exceeds 16384");
    auto centre = read_finite(r, d, "centre");
    auto rotation = read_finite(r, d * d, "rotation");
    r.expect_end();
    for (size_t i = 0; i < rotation.size(); ++i)
      if (std::fabs(rotation[i]) > 1.0001f) r.fail("rotation value " + str(i) + " exceeds 1 in magnitude");
    centre_ = std::move(centre);
    rotation_ = std::move(rotation);
    d_ = d;
  }

 private:
  uint64_t seed_;
  unsigned query_bits_;
  std::string bound_text_;
  float bound_;
  size_t d_ = 0;
  std::vector<float> centre_, rotation_;
};

class RabitqScorer final : public CodeScorer {
 public:
  RabitqScorer(const RabitqQuantizer& codec, const float* queries, size_t nq, Metric metric, float bound_weight)
      : codec_(codec), d_(codec.dim_in()), words_(words_for(d_)), nq_(nq), metric_(metric), bound_weight_(bound_weight) {
    std::vector<float> rotated(nq * d_);
    codec.rotate(queries, nq, metric == Metric::l2 ? codec.centre().data() : nullptr, rotated.data());
    for (size_t q = 0; q < nq; ++q) {
      const float* v = rotated.data() + q * d_;
      const float* query = queries + q * d_;
      Query prepared{QueryPlanes(v, d_, codec.query_bits()), 0, 0, 0, 0};
      double sum = 0;
      for (size_t j = 0; j < d_; ++j) sum += v[j];
      prepared.sum = float(sum);
      prepared.length = float(std::sqrt(dot(v, v, d_)));
      if (metric == Metric::l2) {
        prepared.base = prepared.length * prepared.length;  // |q - c|^2
      } else {
        prepared.base = float(dot(query, codec.centre().data(), d_));  // <q, c>
      }
      queries_.push_back(std::move(prepared));
    }
  }

  void score(const CodeBlock& block, float* out, size_t ld) const override {
    const uint8_t* codes = block.codes;
    const size_t count = block.count;
    const size_t stride = codec_.code_size();
    thread_local std::vector<float> factors, bits_dot, pop, coef, bound, rounding_bound, inverse_norm, residual_sq;
    factors.resize(count * 3);
    bits_dot.resize(count);
    pop.resize(count);
    coef.resize(count);
    bound.resize(count);
    rounding_bound.resize(count);
    inverse_norm.resize(count);
    residual_sq.resize(count);
    gather_f16(codes, stride, count, codec_.factors_offset(), 3, factors.data());
    // Per row, independent of the query: the estimate's scale |r| / (f sqrt(d)), its bound per
    // unit |v| and per unit query step, 1/|x| and |r|^2.
    const float inverse_root_d = 1.f / std::sqrt(float(d_));
    const float bound_scale = bound_weight_ / std::sqrt(float(std::max<size_t>(d_, 2) - 1));
    for (size_t i = 0; i < count; ++i) {
      const float residual = factors[i * 3], f = std::max(factors[i * 3 + 1], 1e-3f), norm = factors[i * 3 + 2];
      coef[i] = residual * inverse_root_d / f;
      bound[i] = bound_weight_ > 0 ? bound_scale * residual * std::sqrt(std::max(0.f, 1.f - f * f)) / f : 0.f;
      rounding_bound[i] = bound_weight_ * residual / (std::sqrt(12.f) * f);
      inverse_norm[i] = norm > 0 ? 1.f / norm : 0.f;
      residual_sq[i] = residual * residual;
    }
    const auto& k = kernels::active();
    for (size_t q = 0; q < nq_; ++q) {
      const Query& query = queries_[q];
      k.bitplane_rows(query.planes.planes.data(), codec_.query_bits(), codes, stride, count, words_, bits_dot.data(),
                      q == 0 ? pop.data() : nullptr);
      // 2 <b, v> - sum(v), with <b, v> ~ low popcount(b) + step (plane sums).
      const float a = 2.f * query.planes.step, b = 2.f * query.planes.low, c = query.sum, length = query.length,
                  base = query.base, step = query.planes.step;
      float* o = out + q * ld;
      const float* sums = bits_dot.data();
      const float* ones = pop.data();
      switch (metric_) {
        case Metric::ip:
          for (size_t i = 0; i < count; ++i)
            o[i] = base + coef[i] * (a * sums[i] + b * ones[i] - c) + length * bound[i] + step * rounding_bound[i];
          break;
        case Metric::cos:
          for (size_t i = 0; i < count; ++i)
            o[i] = (base + coef[i] * (a * sums[i] + b * ones[i] - c) + length * bound[i] + step * rounding_bound[i]) *
                   inverse_norm[i];
          break;
        case Metric::l2:
          for (size_t i = 0; i < count; ++i)
            o[i] = 2.f * (coef[i] * (a * sums[i] + b * ones[i] - c) + length * bound[i] + step * rounding_bound[i]) -
                   residual_sq[i] - base;
          break;
      }
    }
  }

 private:
  struct Query {
    QueryPlanes planes;
    float sum, length, base, unused;
  };
  const RabitqQuantizer& codec_;
  size_t d_, words_, nq_;
  Metric metric_;
  float bound_weight_;
  std::vector<Query> queries_;
};

std::unique_ptr<CodeScorer> RabitqQuantizer::scorer(const float* queries, size_t nq, Metric metric) const {
  return std::make_unique<RabitqScorer>(*this, queries, nq, metric, 0.f);
}
std::unique_ptr<CodeScorer> RabitqQuantizer::upper_bound_scorer(const float* queries, size_t nq, Metric metric) const {
  if (bound_ <= 0) return nullptr;  // rescore every candidate
  return std::make_unique<RabitqScorer>(*this, queries, nq, metric, bound_);
}

std::unique_ptr<Stage> create_rabitq(const CodecArgs& a) {
  return std::make_unique<RabitqQuantizer>(uint64_t(a.integer("seed")), unsigned(a.integer("qbits")), a.text("bound"),
                                           float(a.real("bound")));
}

}  // namespace

const CodecDescriptor kRabitqCodec{
    "rabitq",
    "random rotation + 1-bit codes with an unbiased distance estimator and its error bound (rerank stops by the bound)",
    StageKind::quantizer,
    kAsymmetricSearch | kPerVectorCodes | kNeedsTraining,
    {{"seed", ParamType::integer, "1234", 0, 9007199254740992.0, nullptr, "seed of the random rotation"},
     {"qbits", ParamType::integer, "4", 1, 8, nullptr, "bits per query value in the popcount estimator"},
     {"bound", ParamType::real, "1.9", 0, 100, nullptr,
      "eps0 of the error bound by which two-stage search stops rescoring: larger rescores more and misses fewer; "
      "0: rescore every candidate"}},
    &create_rabitq,
    {},
    128,  // scored from per-query codes or tables, as pq
};

}  // namespace vecpack
