// Scalar quantization to 256 levels per dimension: x_j ~ low_j + step_j * c_j with c_j in 0..255,
// low/high the per-dimension minimum and maximum of the training rows, rounded to nearest.
// Float queries are scored against the codes directly (asymmetric), never against a decoded table.
#include "int8.h"

#include <algorithm>
#include <cmath>

#include "block_scorer.h"
#include "codec_util.h"
#include "kernels/kernels.h"

namespace vecpack {
namespace {

class Int8Quantizer final : public Quantizer {
 public:
  const CodecDescriptor& descriptor() const override { return kInt8Codec; }
  std::string spec() const override { return "int8"; }
  bool trained() const override { return d_ != 0; }
  size_t dim_in() const override { return d_; }
  size_t code_size() const override { return d_; }

  void train(const float* x, size_t n, size_t d, const TrainOptions&) override {
    check_train_dim(d, "int8");
    if (n == 0) throw Error("int8: cannot learn value ranges from 0 training rows");
    std::vector<float> low(d, INFINITY), high(d, -INFINITY);
    for (size_t i = 0; i < n; ++i)
      for (size_t j = 0; j < d; ++j) {
        float v = x[i * d + j];
        if (!std::isfinite(v)) continue;
        low[j] = std::min(low[j], v);
        high[j] = std::max(high[j], v);
      }
    step_.assign(d, 0.f);
    for (size_t j = 0; j < d; ++j) {
      if (low[j] > high[j]) low[j] = high[j] = 0;  // no finite value seen
      step_[j] = (high[j] - low[j]) / 255.f;
    }
    low_ = std::move(low);
    d_ = d;
    set_inverse_steps();
  }

  void encode(const float* x, size_t n, uint8_t* codes, size_t) const override {
    for (size_t i = 0; i < n; ++i) {
      const float* row = x + i * d_;
      uint8_t* out = codes + i * d_;
      for (size_t j = 0; j < d_; ++j) {
        // Branch-free so the compiler vectorizes it: NaN fails both comparisons and lands on 0,
        // out-of-range values clamp; + 0.5 then truncation rounds to nearest (ties up).
        float t = (row[j] - low_[j]) * inverse_step_[j];
        t = t > 0.f ? t : 0.f;
        t = t < 255.f ? t : 255.f;
        out[j] = static_cast<uint8_t>(static_cast<int>(t + 0.5f));
      }
    }
  }

  void decode(const uint8_t* codes, size_t n, float* x, size_t) const override {
    kernels::active().u8_affine_decode(codes, n, d_, low_.data(), step_.data(), x);
  }


  void decode_prefix(const uint8_t* codes, size_t n, size_t stride, size_t m, float* x) const override {
    const auto& k = kernels::active();
    for (size_t i = 0; i < n; ++i) k.u8_affine_decode(codes + i * stride, 1, m, low_.data(), step_.data(), x + i * m);
  }

  std::unique_ptr<CodeScorer> scorer(const float* queries, size_t nq, Metric metric) const override {
    if (nq >= kGemmMinQueries) return Quantizer::scorer(queries, nq, metric);
    const auto& k = kernels::active();
    return std::make_unique<RowKernelScorer>(
        queries, nq, d_, metric, [this, &k](const float* q, const uint8_t* c, size_t count, float* dot, float* sq) {
          k.dot_u8_affine_rows(q, low_.data(), step_.data(), c, count, d_, dot, sq);
        });
  }

  std::vector<uint8_t> serialize() const override {
    ByteWriter w;
    w.put<uint32_t>(1);
    w.put<uint64_t>(d_);
    w.put_array(low_);
    w.put_array(step_);
    return w.take();
  }

  void load(const uint8_t* data, size_t size) override {
    ByteReader r(data, size, "parameters of codec 'int8'");
    uint64_t d = read_blob_header(r, 1);
    auto low = r.get_array<float>(d);
    auto step = r.get_array<float>(d);
    r.expect_end();
    for (size_t j = 0; j < d; ++j)
      if (!std::isfinite(low[j]) || !std::isfinite(step[j]) || step[j] < 0) r.fail("range of dimension " + std::to_string(j) + " is invalid");
    low_ = std::move(low);
    step_ = std::move(step);
    d_ = d;
    set_inverse_steps();
  }

 private:
  void set_inverse_steps() {
    inverse_step_.resize(d_);
    for (size_t j = 0; j < d_; ++j) inverse_step_[j] = step_[j] > 0 ? 1.f / step_[j] : 0.f;
  }

  size_t d_ = 0;
  std::vector<float> low_, step_, inverse_step_;  // inverse_step_ is derived, not stored
};

std::unique_ptr<Stage> create_int8(const CodecArgs&) { return std::make_unique<Int8Quantizer>(); }

}  // namespace

const CodecDescriptor kInt8Codec{"int8", "8-bit scalar quantization, per-dimension ranges learnt in training",
                                 StageKind::quantizer, kAsymmetricSearch | kPerVectorCodes | kNeedsTraining | kPrefixDecodable, {},
                                 &create_int8};

}  // namespace vecpack
