// The binary family (see binary.h). Training works in double or float through Eigen; encoding
// and scoring are plain loops plus the popcount kernels (kernels.h: hamming_rows, bitplane_rows)
// and the byte-table scan shared with pq (pq_scan_u8).
#include "binary.h"

#include <x86_64-linux-gnu/cblas.h>

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <cstring>

#include "block_scorer.h"
#include "codec_util.h"
#include "kernels/kernels.h"
#include "transforms.h"

namespace vecpack {
namespace {

std::string str(size_t v) { return std::to_string(v); }

// "name" or "name:a=1,b=2" from the arguments that differ from their defaults (the convention
// of canonical specs: a codec built from its bare name prints as its bare name).
std::string spec_of(const char* name, const std::vector<std::pair<std::string, bool>>& arguments) {
  std::string args;
  for (const auto& [text, is_default] : arguments)
    if (!is_default) args += (args.empty() ? "" : ",") + text;
  return args.empty() ? name : std::string(name) + ":" + args;
}

size_t words_for(size_t d) { return (d + 63) / 64; }

// Bit j set when v[j] > 0; out receives words_for(d) little-endian words (padding bits zero).
void pack_signs(const float* v, size_t d, uint8_t* out) {
  const size_t words = words_for(d);
  for (size_t w = 0; w < words; ++w) {
    uint64_t word = 0;
    for (size_t j = w * 64; j < std::min(d, w * 64 + 64); ++j) word |= uint64_t(v[j] > 0) << (j % 64);
    std::memcpy(out + w * 8, &word, sizeof word);
  }
}

inline float sign_of(const uint8_t* bits, size_t j) { return (bits[j / 8] >> (j % 8)) & 1u ? 1.f : -1.f; }

// Gathers `fields` consecutive f16 values starting at byte `offset` of each of count codes into
// out (count x fields floats).
void gather_f16(const uint8_t* codes, size_t stride, size_t count, size_t offset, size_t fields, float* out) {
  thread_local std::vector<uint16_t> halves;
  halves.resize(count * fields);
  for (size_t i = 0; i < count; ++i) std::memcpy(&halves[i * fields], codes + i * stride + offset, fields * 2);
  kernels::active().f16_to_f32(halves.data(), count * fields, out);
}

// The mean of n > 0 rows (the centre every codec of the family subtracts), summed in double.
std::vector<float> column_means(const float* x, size_t n, size_t d, const char* codec) {
  if (n == 0) throw Error(std::string(codec) + ": cannot learn the centre from 0 training rows");
  std::vector<double> sum(d, 0.0);
  for (size_t i = 0; i < n; ++i)
    for (size_t j = 0; j < d; ++j) sum[j] += x[i * d + j];
  std::vector<float> mean(d);
  for (size_t j = 0; j < d; ++j) mean[j] = float(sum[j] / double(n));
  return mean;
}

double dot(const float* a, const float* b, size_t d) {
  double s = 0;
  for (size_t j = 0; j < d; ++j) s += double(a[j]) * b[j];
  return s;
}

// A query quantized to unsigned `bits`-bit integers u_j, v_j ~ low + step * u_j, as bit planes
// for bitplane_rows: <b, v> ~ low * popcount(b) + step * sum_k 2^k popcount(b AND plane_k).
struct QueryPlanes {
  std::vector<uint64_t> planes;  // bits x words
  float low = 0, step = 0;
  QueryPlanes(const float* v, size_t d, unsigned bits) : planes(size_t(bits) * words_for(d), 0) {
    const size_t words = words_for(d);
    float high = -INFINITY;
    low = INFINITY;
    for (size_t j = 0; j < d; ++j) low = std::min(low, v[j]), high = std::max(high, v[j]);
    const float levels = float((1u << bits) - 1);
    step = high > low ? (high - low) / levels : 0.f;
    for (size_t j = 0; j < d; ++j) {
      const uint32_t u = step > 0 ? uint32_t(std::lround(std::clamp((v[j] - low) / step, 0.f, levels))) : 0;
      for (unsigned k = 0; k < bits; ++k)
        if ((u >> k) & 1u) planes[k * words + j / 64] |= uint64_t(1) << (j % 64);
    }
  }
};

std::vector<float> read_finite(ByteReader& r, uint64_t count, const char* what) {
  auto values = r.get_array<float>(count);
  for (size_t i = 0; i < values.size(); ++i)
    if (!std::isfinite(values[i])) r.fail(std::string(what) + " value " + str(i) + " is not finite");
  return values;
}

// ---------------------------------------------------------------------------------- binary
// x ~ mean + scale * s with s = sign(x - mean) per dimension; scale_j = mean |x_j - mean_j|.
// With center=off the mean is zero: the signs of the rows as given (SimHash-like for cosine
// data whose angles around the origin carry the meaning).
class BinaryQuantizer final : public Quantizer {
 public:
  BinaryQuantizer(bool hamming, bool center) : hamming_(hamming), center_(center) {}
  const CodecDescriptor& descriptor() const override { return kBinaryCodec; }
  std::string spec() const override {
    return spec_of("binary", {{"score=asym", hamming_}, {"center=off", center_}});
  }
  bool trained() const override { return d_ != 0; }
  size_t dim_in() const override { return d_; }
  size_t code_size() const override { return words_for(d_) * 8; }

  void train(const float* x, size_t n, size_t d, const TrainOptions&) override {
    check_train_dim(d, "binary");
    std::vector<float> mean = column_means(x, n, d, "binary");
    if (!center_) std::fill(mean.begin(), mean.end(), 0.f);
    std::vector<double> spread(d, 0.0);
    double norms = 0;
    for (size_t i = 0; i < n; ++i) {
      norms += std::sqrt(dot(x + i * d, x + i * d, d));
      for (size_t j = 0; j < d; ++j) spread[j] += std::fabs(x[i * d + j] - mean[j]);
    }
    mean_ = std::move(mean);
    scale_.resize(d);
    for (size_t j = 0; j < d; ++j) scale_[j] = float(spread[j] / double(n));
    mean_norm_ = float(norms / double(n));
    d_ = d;
  }

  void encode(const float* x, size_t n, uint8_t* codes, size_t) const override {
    std::vector<float> centred(d_);
    for (size_t i = 0; i < n; ++i) {
      for (size_t j = 0; j < d_; ++j) centred[j] = x[i * d_ + j] - mean_[j];
      pack_signs(centred.data(), d_, codes + i * code_size());
    }
  }

  void decode(const uint8_t* codes, size_t n, float* x, size_t) const override {
    for (size_t i = 0; i < n; ++i)
      for (size_t j = 0; j < d_; ++j) x[i * d_ + j] = mean_[j] + sign_of(codes + i * code_size(), j) * scale_[j];
  }

  std::unique_ptr<CodeScorer> scorer(const float* queries, size_t nq, Metric metric) const override;

  // u32 version, u64 d, mean (array of d f32), scale (array of d f32), f32 mean row norm.
  std::vector<uint8_t> serialize() const override {
    ByteWriter w;
    w.put<uint32_t>(1);
    w.put<uint64_t>(d_);
    w.put_array(mean_);
    w.put_array(scale_);
    w.put<float>(mean_norm_);
    return w.take();
  }

  void load(const uint8_t* data, size_t size) override {
    ByteReader r(data, size, "parameters of codec 'binary'");
    const uint64_t d = read_blob_header(r, 1);
    auto mean = read_finite(r, d, "centre");
    auto scale = read_finite(r, d, "scale");
    const float mean_norm = r.get<float>();
    r.expect_end();
    if (!std::isfinite(mean_norm) || mean_norm < 0) r.fail("mean row norm is invalid");
    mean_ = std::move(mean);
    scale_ = std::move(scale);
    mean_norm_ = mean_norm;
    d_ = d;
  }

  const std::vector<float>& mean() const { return mean_; }
  const std::vector<float>& scale() const { return scale_; }
  float mean_norm() const { return mean_norm_; }

 private:
  bool hamming_, center_;
  size_t d_ = 0;
  std::vector<float> mean_, scale_;
  float mean_norm_ = 0;
};

// Scores are minus the Hamming distance between the query's bits and each row's. For ip and cos
// the centre is scaled to the query's length first (queries and rows may differ in norm).
class HammingScorer final : public CodeScorer {
 public:
  HammingScorer(const BinaryQuantizer& codec, const float* queries, size_t nq, Metric metric)
      : d_(codec.dim_in()), words_(words_for(d_)), nq_(nq), bits_(nq * words_) {
    std::vector<float> centred(d_);
    for (size_t q = 0; q < nq; ++q) {
      const float* v = queries + q * d_;
      float centre_scale = 1.f;
      if (metric != Metric::l2 && codec.mean_norm() > 0)
        centre_scale = float(std::sqrt(dot(v, v, d_)) / codec.mean_norm());
      for (size_t j = 0; j < d_; ++j) centred[j] = v[j] - centre_scale * codec.mean()[j];
      pack_signs(centred.data(), d_, reinterpret_cast<uint8_t*>(bits_.data() + q * words_));
    }
  }
  void score(const CodeBlock& block, float* out, size_t ld) const override {
    const uint8_t* codes = block.codes;
    const size_t count = block.count;
    const auto& k = kernels::active();
    for (size_t q = 0; q < nq_; ++q) k.hamming_rows(bits_.data() + q * words_, codes, words_ * 8, count, words_, -1.f, 0.f, out + q * ld);
  }

 private:
  size_t d_, words_, nq_;
  std::vector<uint64_t> bits_;
};

// Float queries against the decoded rows without decoding: per code byte a 256-entry table of
// the query's dot product with that byte's signs, summed by the pq table-scan kernel for 16
// queries at a time (one code read serves all 16); for cos and l2 one more table gives each
// row's squared norm, once per block.
constexpr size_t kQueryLanes = 16;

class BinaryTableScorer final : public QueryBatchScorer {
 public:
  BinaryTableScorer(const BinaryQuantizer& codec, const float* queries, size_t nq, Metric metric)
      : QueryBatchScorer(queries, nq, codec.dim_in(), metric),
        bytes_((d_ + 7) / 8),
        code_size_(codec.code_size()),
        groups_((nq + kQueryLanes - 1) / kQueryLanes),
        tables_(groups_ * bytes_ * 256 * kQueryLanes, 0.f),
        dot_base_(nq) {
    const auto& mean = codec.mean();
    const auto& scale = codec.scale();
    double sq_base = 0;
    for (size_t j = 0; j < d_; ++j) sq_base += double(mean[j]) * mean[j] + double(scale[j]) * scale[j] - 2.0 * mean[j] * scale[j];
    sq_base_ = float(sq_base);
    // Bit t of byte p adds 2 q_j s_j to the dot and 4 m_j s_j to the squared norm (j = 8p + t).
    std::vector<float> weight(d_);
    for (size_t j = 0; j < d_; ++j) weight[j] = 4.f * mean[j] * scale[j];
    if (metric != Metric::ip) norm_table_ = byte_tables(weight.data());
    for (size_t q = 0; q < nq; ++q) {
      const float* v = queries + q * d_;
      double base = 0;
      for (size_t j = 0; j < d_; ++j) base += double(v[j]) * mean[j] - double(v[j]) * scale[j];
      dot_base_[q] = float(base);
      for (size_t j = 0; j < d_; ++j) weight[j] = 2.f * v[j] * scale[j];
      const std::vector<float> table = byte_tables(weight.data());
      float* group = tables_.data() + (q / kQueryLanes) * bytes_ * 256 * kQueryLanes;
      for (size_t e = 0; e < bytes_ * 256; ++e) group[e * kQueryLanes + q % kQueryLanes] = table[e];
    }
  }

  void score(const CodeBlock& block, float* out, size_t ld) const override {
    const uint8_t* codes = block.codes;
    const size_t count = block.count;
    thread_local std::vector<float> sums, sqs;
    sums.resize(count * kQueryLanes);
    sqs.resize(count);
    const auto& k = kernels::active();
    if (!norm_table_.empty()) {
      // Row terms, once per block: 1/|x| for cos, |x|^2 for l2.
      k.pq_scan_u8(codes, code_size_, count, bytes_, 256, norm_table_.data(), 1, sqs.data(), nullptr, 0);
      for (size_t i = 0; i < count; ++i) {
        const float sq = sqs[i] + sq_base_;
        sqs[i] = metric_ == Metric::l2 ? sq : (sq > 0 ? 1.f / std::sqrt(sq) : 0.f);
      }
    }
    for (size_t g = 0; g < groups_; ++g) {
      k.pq_scan_u8(codes, code_size_, count, bytes_, 256, tables_.data() + g * bytes_ * 256 * kQueryLanes, kQueryLanes,
                   sums.data(), nullptr, 0);
      for (size_t l = 0; l < kQueryLanes && g * kQueryLanes + l < nq_; ++l) {
        const size_t q = g * kQueryLanes + l;
        const float base = dot_base_[q], query_sq = query_sq_[q];
        const float* lane = sums.data() + l;
        float* o = out + q * ld;
        switch (metric_) {
          case Metric::ip:
            for (size_t i = 0; i < count; ++i) o[i] = base + lane[i * kQueryLanes];
            break;
          case Metric::cos:
            for (size_t i = 0; i < count; ++i) o[i] = (base + lane[i * kQueryLanes]) * sqs[i];
            break;
          case Metric::l2:
            for (size_t i = 0; i < count; ++i) o[i] = 2.f * (base + lane[i * kQueryLanes]) - sqs[i] - query_sq;
            break;
        }
      }
    }
  }

 private:
  // Per byte p, entry v: the sum of weight[8p + t] over the bits t set in v.
  std::vector<float> byte_tables(const float* weight) const {
    std::vector<float> table(bytes_ * 256, 0.f);
    for (size_t p = 0; p < bytes_; ++p) {
      float* entries = table.data() + p * 256;
      for (unsigned value = 1; value < 256; ++value) {
        const unsigned lowest = unsigned(__builtin_ctz(value));
        const size_t j = p * 8 + lowest;
        entries[value] = entries[value & (value - 1)] + (j < d_ ? weight[j] : 0.f);
      }
    }
    return table;
  }

  size_t bytes_, code_size_, groups_;
  std::vector<float> tables_, norm_table_, dot_base_;
  float sq_base_ = 0;
};

std::unique_ptr<CodeScorer> BinaryQuantizer::scorer(const float* queries, size_t nq, Metric metric) const {
  if (hamming_) return std::make_unique<HammingScorer>(*this, queries, nq, metric);
  return std::make_unique<BinaryTableScorer>(*this, queries, nq, metric);
}

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

// ------------------------------------------------------------------------------------- itq
// Iterative quantization (Gong & Lazebnik): centre, project on the top-k principal axes, then
// learn the rotation R minimising |B - V R|^2 with B = sign(V R), alternating B and the
// Procrustes solution for R. y = (x - mean) W R; reconstruct x = y (W R)^T + mean.
constexpr size_t kItqMaxRows = 50000;

class ItqTransform final : public Transform {
 public:
  ItqTransform(size_t k, size_t iterations, uint64_t seed) : k_(k), iterations_(iterations), seed_(seed) {}
  const CodecDescriptor& descriptor() const override { return kItqTransform; }
  std::string spec() const override {
    return "itq:k=" + str(k_) + ",iterations=" + str(iterations_) + ",seed=" + std::to_string(seed_);
  }
  bool trained() const override { return d_ != 0; }
  size_t dim_in() const override { return d_; }
  size_t dim_out() const override { return out_; }

  void train(const float* x, size_t n, size_t d, const TrainOptions& options) override {
    check_train_dim(d, "itq");
    if (d > 4096) throw Error("itq: dimension " + str(d) + " exceeds 4096 (training is O(d^3))");
    if (k_ > d) throw Error("itq: k=" + str(k_) + " exceeds the dimension " + str(d));
    if (n < 2) throw Error("itq: needs at least 2 training rows, got " + str(n));
    const size_t k = k_ ? k_ : d;
    // An evenly spaced sample keeps training time bounded and deterministic.
    const size_t rows = std::min(n, kItqMaxRows);
    Eigen::MatrixXf sample(static_cast<Eigen::Index>(rows), static_cast<Eigen::Index>(d));
    for (size_t i = 0; i < rows; ++i) {
      const size_t source = rows == n ? i : size_t((double(i) * double(n)) / double(rows));
      for (size_t j = 0; j < d; ++j) sample(Eigen::Index(i), Eigen::Index(j)) = x[source * d + j];
    }
    const Eigen::RowVectorXf mean = sample.colwise().mean();
    sample.rowwise() -= mean;
    const Eigen::MatrixXd covariance = (sample.transpose() * sample).cast<double>() / double(rows - 1);
    Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> solver(covariance);
    if (solver.info() != Eigen::Success) throw Error("itq: the eigen decomposition of the covariance failed");
    Eigen::MatrixXf axes(static_cast<Eigen::Index>(d), static_cast<Eigen::Index>(k));  // largest eigenvalues first
    for (size_t j = 0; j < k; ++j) axes.col(Eigen::Index(j)) = solver.eigenvectors().col(Eigen::Index(d - 1 - j)).cast<float>();
    const Eigen::MatrixXf projected = sample * axes;

    const std::vector<float> start = random_orthogonal(k, seed_);
    Eigen::MatrixXf rotation(static_cast<Eigen::Index>(k), static_cast<Eigen::Index>(k));
    for (size_t a = 0; a < k; ++a)
      for (size_t b = 0; b < k; ++b) rotation(Eigen::Index(a), Eigen::Index(b)) = start[a * k + b];
    if (options.progress) options.progress->begin("itq: learning the rotation", iterations_);
    for (size_t it = 0; it < iterations_; ++it) {
      const Eigen::MatrixXf signs = (projected * rotation).unaryExpr([](float v) { return v > 0 ? 1.f : -1.f; });
      const Eigen::MatrixXd cross = (projected.transpose() * signs).cast<double>();
      Eigen::JacobiSVD<Eigen::MatrixXd> svd(cross, Eigen::ComputeFullU | Eigen::ComputeFullV);
      rotation = (svd.matrixU() * svd.matrixV().transpose()).cast<float>();
      if (options.progress) options.progress->advance(it + 1);
    }
    if (options.progress) options.progress->end();
    const Eigen::MatrixXf combined = axes * rotation;  // d x k
    mean_.assign(mean.data(), mean.data() + d);
    matrix_.resize(d * k);
    for (size_t a = 0; a < d; ++a)
      for (size_t b = 0; b < k; ++b) matrix_[a * k + b] = combined(Eigen::Index(a), Eigen::Index(b));
    d_ = d;
    out_ = k;
  }

  void apply(const float* x, size_t n, float* y) const override {
    std::vector<float> centred(x, x + n * d_);
    for (size_t i = 0; i < n; ++i)
      for (size_t j = 0; j < d_; ++j) centred[i * d_ + j] -= mean_[j];
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(n), int(out_), int(d_), 1.f, centred.data(), int(d_),
                matrix_.data(), int(out_), 0.f, y, int(out_));
  }

  void reconstruct(const float* y, size_t n, float* x) const override {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(n), int(d_), int(out_), 1.f, y, int(out_), matrix_.data(),
                int(out_), 0.f, x, int(d_));
    for (size_t i = 0; i < n; ++i)
      for (size_t j = 0; j < d_; ++j) x[i * d_ + j] += mean_[j];
  }

  // u32 version, u64 d, u64 k, mean (array of d f32), W R (array of d*k f32, row-major).
  std::vector<uint8_t> serialize() const override {
    ByteWriter w;
    w.bytes().reserve(36 + 4 * (mean_.size() + matrix_.size()));
    w.put<uint32_t>(1);
    w.put<uint64_t>(d_);
    w.put<uint64_t>(out_);
    w.put_array(mean_);
    w.put_array(matrix_);
    return w.take();
  }

  void load(const uint8_t* data, size_t size) override {
    ByteReader r(data, size, "parameters of transform 'itq'");
    const uint64_t d = read_blob_header(r, 1);
    const uint64_t k = r.get<uint64_t>();
    if (d > 4096) r.fail("dimension " + str(d) + " exceeds 4096");
    if (k == 0 || k > d) r.fail("output dimension " + str(k) + " is out of range 1.." + str(d));
    auto mean = read_finite(r, d, "mean");
    auto matrix = read_finite(r, d * k, "rotation");
    r.expect_end();
    for (size_t i = 0; i < matrix.size(); ++i)
      if (std::fabs(matrix[i]) > 1.0001f) r.fail("rotation value " + str(i) + " exceeds 1 in magnitude");
    mean_ = std::move(mean);
    matrix_ = std::move(matrix);
    d_ = d;
    out_ = k;
  }

 private:
  size_t k_, iterations_;
  uint64_t seed_;
  size_t d_ = 0, out_ = 0;
  std::vector<float> mean_, matrix_;
};

std::unique_ptr<Stage> create_binary(const CodecArgs& a) {
  return std::make_unique<BinaryQuantizer>(a.text("score") == "hamming", a.flag("center"));
}
std::unique_ptr<Stage> create_rbin(const CodecArgs& a) {
  return std::make_unique<RbinQuantizer>(unsigned(a.integer("bits")), a.text("score") == "sym");
}
std::unique_ptr<Stage> create_rabitq(const CodecArgs& a) {
  return std::make_unique<RabitqQuantizer>(uint64_t(a.integer("seed")), unsigned(a.integer("qbits")), a.text("bound"),
                                           float(a.real("bound")));
}
std::unique_ptr<Stage> create_itq(const CodecArgs& a) {
  return std::make_unique<ItqTransform>(size_t(a.integer("k")), size_t(a.integer("iterations")), uint64_t(a.integer("seed")));
}

}  // namespace

const CodecDescriptor kBinaryCodec{
    "binary",
    "1 bit per dimension, the sign of the centred row; Hamming search by popcount (put rotate/ or itq/ in front to "
    "spread variance)",
    StageKind::quantizer,
    kAsymmetricSearch | kSymmetricSearch | kPerVectorCodes | kNeedsTraining,
    {{"score", ParamType::choice, "hamming", 0, 0, "hamming|asym",
      "hamming: minus the Hamming distance to the query's bits (fastest); asym: the float query against the "
      "decoded rows through byte tables (more accurate)"},
     {"center", ParamType::flag, "on", 0, 0, nullptr,
      "subtract the training mean before taking signs; off: signs of the rows as given"}},
    &create_binary,
    {"binary", "binary:center=off", "binary:score=asym"},
    128,  // scored from per-query codes or tables, as pq
};

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

const CodecDescriptor kItqTransform{
    "itq",
    "iterative quantization: centre, PCA to k dimensions and a learnt rotation that sign codes lose least to "
    "(put in front of binary)",
    StageKind::transform,
    kTransform | kNeedsTraining,
    {{"k", ParamType::integer, "0", 0, 4096, nullptr, "output dimensions, the top principal axes (0: the input dimension)"},
     {"iterations", ParamType::integer, "50", 1, 1000, nullptr, "alternations of sign codes and rotation"},
     {"seed", ParamType::integer, "1234", 0, 9007199254740992.0, nullptr, "seed of the starting rotation"}},
    &create_itq,
};

}  // namespace vecpack
