// rbin: recurrent binarization, b sign vectors of successive residuals with per-row scales
// (see rbin.h).
#include "rbin.h"

#include <Eigen/Dense>
#include <cmath>
#include <cstring>

#include "block_scorer.h"
#include "sign_bits.h"

namespace vecpack {
namespace {

using namespace sign_bits;

// ------------------------------------------------------------------------------------ rbin
// Recurrent binarization: r_0 = x - mean; level j keeps s_j = sign(r_{j-1}) and the scale
// alpha_j = mean |r_{j-1}| (the least-squares fit of r_{j-1} by alpha s_j), then
// r_j = r_{j-1} - alpha_j s_j. Once the signs are chosen, the b scales are refitted jointly
// (least squares of r_0 on s_1..s_b), which lowers the error of every row with b > 1. Code: the
// b sign vectors (words each), b f16 scales, and the f16 norm of the decoded row (for cos and l2).
class RbinQuantizer final : public Quantizer {
 public:
  RbinQuantizer(unsigned levels, bool symmetric) : levels_(levels), symmetric_(symmetric) {}
  const CodecDescriptor& descriptor() const override { return kRbinCodec; }
  std::string spec() const override {
    return spec_of("rbin", {{"bits=" + std::to_string(levels_), levels_ == 2}, {"score=sym", !symmetric_}});
  }
  bool trained() const override { return d_ != 0; }
  size_t dim_in() const override { return d_; }
  size_t level_bytes() const { return words_for(d_) * 8; }
  size_t scales_offset() const { return levels_ * level_bytes(); }
  size_t norm_offset() const { return scales_offset() + 2 * levels_; }
  size_t code_size() const override { return norm_offset() + 2; }
  unsigned levels() const { return levels_; }
  const std::vector<float>& mean() const { return mean_; }

  void train(const float* x, size_t n, size_t d, const TrainOptions&) override {
    check_train_dim(d, "rbin");
    mean_ = column_means(x, n, d, "rbin");
    d_ = d;
  }

  void encode(const float* x, size_t n, uint8_t* codes, size_t) const override {
    std::vector<float> residual(d_), centred(d_), decoded(d_);
    Eigen::MatrixXd gram(levels_, levels_);
    Eigen::VectorXd projection(levels_);
    for (size_t i = 0; i < n; ++i) {
      uint8_t* code = codes + i * code_size();
      std::memset(code, 0, code_size());
      for (size_t j = 0; j < d_; ++j) centred[j] = residual[j] = x[i * d_ + j] - mean_[j];
      std::vector<double> alpha(levels_);
      for (unsigned level = 0; level < levels_; ++level) {
        uint8_t* bits = code + level * level_bytes();
        pack_signs(residual.data(), d_, bits);
        double spread = 0;
        for (size_t j = 0; j < d_; ++j) spread += std::fabs(residual[j]);
        alpha[level] = spread / double(d_);
        for (size_t j = 0; j < d_; ++j) residual[j] -= float(alpha[level]) * sign_of(bits, j);
      }
      // Joint refit: (S^T S) alpha = S^T r_0, S the d x b matrix of signs. Kept only when the
      // system is well conditioned (repeated sign vectors make it singular).
      for (unsigned a = 0; a < levels_; ++a) {
        double dot_r = 0;
        for (size_t j = 0; j < d_; ++j) dot_r += double(centred[j]) * sign_of(code + a * level_bytes(), j);
        projection(a) = dot_r;
        for (unsigned b = 0; b < levels_; ++b) {
          // s_a . s_b = d - 2 hamming(s_a, s_b); padding bits are zero in both.
          size_t differ = 0;
          for (size_t w = 0; w < level_bytes(); w += 8) {
            uint64_t wa, wb;
            std::memcpy(&wa, code + a * level_bytes() + w, 8);
            std::memcpy(&wb, code + b * level_bytes() + w, 8);
            differ += size_t(__builtin_popcountll(wa ^ wb));
          }
          gram(a, b) = double(d_) - 2.0 * double(differ);
        }
      }
      Eigen::LDLT<Eigen::MatrixXd> solver(gram);
      if (levels_ > 1 && solver.info() == Eigen::Success && solver.isPositive() &&
          solver.vectorD().minCoeff() > 1e-6 * solver.vectorD().maxCoeff()) {
        const Eigen::VectorXd refit = solver.solve(projection);
        if (refit.allFinite())
          for (unsigned level = 0; level < levels_; ++level) alpha[level] = refit(level);
      }
      for (unsigned level = 0; level < levels_; ++level) {
        const uint16_t half = f16_bits(float(alpha[level]));
        std::memcpy(code + scales_offset() + 2 * level, &half, 2);
      }
      decode(code, 1, decoded.data(), 0);
      const uint16_t norm = f16_bits(float(std::sqrt(dot(decoded.data(), decoded.data(), d_))));
      std::memcpy(code + norm_offset(), &norm, 2);
    }
  }

  void decode(const uint8_t* codes, size_t n, float* x, size_t) const override {
    for (size_t i = 0; i < n; ++i) {
      const uint8_t* code = codes + i * code_size();
      float* row = x + i * d_;
      std::copy(mean_.begin(), mean_.end(), row);
      for (unsigned level = 0; level < levels_; ++level) {
        uint16_t half;
        std::memcpy(&half, code + scales_offset() + 2 * level, 2);
        const float alpha = f16_value(half);
        for (size_t j = 0; j < d_; ++j) row[j] += alpha * sign_of(code + level * level_bytes(), j);
      }
    }
  }

  std::unique_ptr<CodeScorer> scorer(const float* queries, size_t nq, Metric metric) const override;

  // u32 version, u64 d, mean (array of d f32).
  std::vector<uint8_t> serialize() const override {
    ByteWriter w;
    w.put<uint32_t>(1);
    w.put<uint64_t>(d_);
    w.put_array(mean_);
    return w.take();
  }

  void load(const uint8_t* data, size_t size) override {
    ByteReader r(data, size, "parameters of codec 'rbin'");
    const uint64_t d = read_blob_header(r, 1);
    auto mean = read_finite(r, d, "centre");
    r.expect_end();
    mean_ = std::move(mean);
    d_ = d;
  }

 private:
  unsigned levels_;
  bool symmetric_;
  size_t d_ = 0;
  std::vector<float> mean_;
};

// q . x^ = q . mean + sum_j alpha_j (q . s_j), with q . s_j = 2 <b_j, q> - sum(q) and <b_j, q>
// from 8-bit query planes (asymmetric), or q . s_j ~ sum_i beta_i (d - 2 hamming(t_i, s_j)) with
// the query binarized the same way, t_i and beta_i its own levels (symmetric).
class RbinScorer final : public QueryBatchScorer {
 public:
  RbinScorer(const RbinQuantizer& codec, const float* queries, size_t nq, Metric metric, bool symmetric)
      : QueryBatchScorer(queries, nq, codec.dim_in(), metric),
        codec_(codec),
        words_(words_for(d_)),
        symmetric_(symmetric),
        dot_base_(nq),
        sum_(nq) {
    const unsigned levels = codec.levels();
    std::vector<float> residual(d_);
    for (size_t q = 0; q < nq; ++q) {
      const float* v = queries + q * d_;
      dot_base_[q] = float(dot(v, codec.mean().data(), d_));
      double total = 0;
      for (size_t j = 0; j < d_; ++j) total += v[j];
      sum_[q] = float(total);
      if (!symmetric) {
        planes_.emplace_back(v, d_, 8);
        continue;
      }
      std::copy(v, v + d_, residual.begin());
      for (unsigned level = 0; level < levels; ++level) {
        std::vector<uint64_t> bits(words_);
        pack_signs(residual.data(), d_, reinterpret_cast<uint8_t*>(bits.data()));
        double spread = 0;
        for (size_t j = 0; j < d_; ++j) spread += std::fabs(residual[j]);
        const float beta = float(spread / double(d_));
        for (size_t j = 0; j < d_; ++j) residual[j] -= beta * sign_of(reinterpret_cast<const uint8_t*>(bits.data()), j);
        query_bits_.insert(query_bits_.end(), bits.begin(), bits.end());
        query_scales_.push_back(beta);
      }
    }
  }

  void score(const CodeBlock& block, float* out, size_t ld) const override {
    const uint8_t* codes = block.codes;
    const size_t count = block.count;
    const unsigned levels = codec_.levels();
    const size_t stride = codec_.code_size(), level_bytes = codec_.level_bytes();
    thread_local std::vector<float> alphas, norms, dots, sqs, part, acc, pop;
    alphas.resize(count * levels);
    norms.resize(count);
    dots.resize(count);
    sqs.resize(count);
    part.resize(count);
    acc.resize(count);
    pop.resize(count * levels);
    gather_f16(codes, stride, count, codec_.scales_offset(), levels, alphas.data());
    gather_f16(codes, stride, count, codec_.norm_offset(), 1, norms.data());
    for (size_t i = 0; i < count; ++i) sqs[i] = norms[i] * norms[i];
    const auto& k = kernels::active();
    for (size_t q = 0; q < nq_; ++q) {
      std::fill(dots.begin(), dots.end(), dot_base_[q]);
      for (unsigned level = 0; level < levels; ++level) {
        const uint8_t* level_codes = codes + level * level_bytes;
        if (symmetric_) {
          std::fill(acc.begin(), acc.end(), 0.f);
          for (unsigned i = 0; i < levels; ++i) {
            const float beta = query_scales_[q * levels + i];
            k.hamming_rows(query_bits_.data() + (q * levels + i) * words_, level_codes, stride, count, words_, -2.f * beta,
                           beta * float(d_), part.data());
            for (size_t r = 0; r < count; ++r) acc[r] += part[r];
          }
        } else {
          const QueryPlanes& planes = planes_[q];
          float* level_pop = pop.data() + level * count;  // popcounts depend on the row only
          k.bitplane_rows(planes.planes.data(), 8, level_codes, stride, count, words_, part.data(), q == 0 ? level_pop : nullptr);
          const float a = 2.f * planes.step, b = 2.f * planes.low, c = sum_[q];
          for (size_t r = 0; r < count; ++r) acc[r] = a * part[r] + b * level_pop[r] - c;
        }
        for (size_t r = 0; r < count; ++r) dots[r] += alphas[r * levels + level] * acc[r];
      }
      finish_scores(metric_, query_sq_[q], dots.data(), sqs.data(), count, out + q * ld);
    }
  }

 private:
  const RbinQuantizer& codec_;
  size_t words_;
  bool symmetric_;
  std::vector<float> dot_base_, sum_;
  std::vector<QueryPlanes> planes_;
  std::vector<uint64_t> query_bits_;
  std::vector<float> query_scales_;
};

std::unique_ptr<CodeScorer> RbinQuantizer::scorer(const float* queries, size_t nq, Metric metric) const {
  return std::make_unique<RbinScorer>(*this, queries, nq, metric, symmetric_);
}

std::unique_ptr<Stage> create_rbin(const CodecArgs& a) {
  return std::make_unique<RbinQuantizer>(unsigned(a.integer("bits")), a.text("score") == "sym");
}

}  // namespace

const CodecDescriptor kRbinCodec{
    "rbin",
    "recurrent binarization: bits sign vectors of successive residuals with per-row scales (bits per dimension "
    "trade size for accuracy)",
    StageKind::quantizer,
    kAsymmetricSearch | kSymmetricSearch | kPerVectorCodes | kNeedsTraining,
    {{"bits", ParamType::integer, "2", 1, 8, nullptr, "residual levels, one bit per dimension each"},
     {"score", ParamType::choice, "asym", 0, 0, "asym|sym",
      "asym: the query as 8-bit planes against each level (accurate); sym: the query binarized the same way, "
      "a weighted sum of popcounts"}},
    &create_rbin,
    {"rbin:bits=1", "rbin:bits=2", "rbin:bits=4"},
    128,  // scored from per-query codes or tables, as pq
};

}  // namespace vecpack
