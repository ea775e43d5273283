// binary: 1 bit per dimension, the sign of the centred row; Hamming or asymmetric (byte-table)
// scoring (see binary.h).
#include "binary.h"

#include <cmath>
#include <cstring>

#include "block_scorer.h"
#include "sign_bits.h"

namespace vecpack {
namespace {

using namespace sign_bits;

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

std::unique_ptr<Stage> create_binary(const CodecArgs& a) {
  return std::make_unique<BinaryQuantizer>(a.text("score") == "hamming", a.flag("center"));
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

}  // namespace vecpack
