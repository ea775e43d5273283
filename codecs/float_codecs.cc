#include "float_codecs.h"

#include <cstring>

#include "block_scorer.h"
#include "codec_util.h"
#include "kernels/kernels.h"

namespace vecpack {
namespace {

enum class FloatFormat { f32, f16, bf16 };

class FloatQuantizer final : public Quantizer {
 public:
  FloatQuantizer(const CodecDescriptor& descriptor, FloatFormat format) : descriptor_(descriptor), format_(format) {}

  const CodecDescriptor& descriptor() const override { return descriptor_; }
  std::string spec() const override { return descriptor_.name; }
  bool trained() const override { return d_ != 0; }
  size_t dim_in() const override { return d_; }
  size_t code_size() const override { return d_ * (format_ == FloatFormat::f32 ? 4 : 2); }

  void train(const float*, size_t, size_t d, const TrainOptions&) override {
    check_train_dim(d, descriptor_.name);
    d_ = d;
  }

  void encode(const float* x, size_t n, uint8_t* codes, size_t) const override {
    const auto& k = kernels::active();
    switch (format_) {
      case FloatFormat::f32: std::memcpy(codes, x, n * d_ * sizeof(float)); break;
      case FloatFormat::f16: k.f32_to_f16(x, n * d_, reinterpret_cast<uint16_t*>(codes)); break;
      case FloatFormat::bf16: k.f32_to_bf16(x, n * d_, reinterpret_cast<uint16_t*>(codes)); break;
    }
  }

  void decode(const uint8_t* codes, size_t n, float* x, size_t) const override {
    const auto& k = kernels::active();
    switch (format_) {
      case FloatFormat::f32: std::memcpy(x, codes, n * d_ * sizeof(float)); break;
      case FloatFormat::f16: k.f16_to_f32(reinterpret_cast<const uint16_t*>(codes), n * d_, x); break;
      case FloatFormat::bf16: k.bf16_to_f32(reinterpret_cast<const uint16_t*>(codes), n * d_, x); break;
    }
  }


  void decode_prefix(const uint8_t* codes, size_t n, size_t stride, size_t m, float* x) const override {
    const auto& k = kernels::active();
    for (size_t i = 0; i < n; ++i) {
      const uint8_t* row = codes + i * stride;
      float* out = x + i * m;
      switch (format_) {
        case FloatFormat::f32: std::memcpy(out, row, m * sizeof(float)); break;
        case FloatFormat::f16: k.f16_to_f32(reinterpret_cast<const uint16_t*>(row), m, out); break;
        case FloatFormat::bf16: k.bf16_to_f32(reinterpret_cast<const uint16_t*>(row), m, out); break;
      }
    }
  }

  std::unique_ptr<CodeScorer> scorer(const float* queries, size_t nq, Metric metric) const override {
    const auto& k = kernels::active();
    const size_t d = d_;
    if (nq >= kGemmMinQueries) {
      GemmScorer::Decode decode;
      if (format_ != FloatFormat::f32)
        decode = [this](const uint8_t* codes, size_t, size_t count, float* out) { this->decode(codes, count, out, 0); };
      return std::make_unique<GemmScorer>(queries, nq, d, metric, std::move(decode));
    }
    RowKernelScorer::DotRows dot_rows;
    switch (format_) {
      case FloatFormat::f32:
        dot_rows = [&k, d](const float* q, const uint8_t* c, size_t count, float* dot, float* sq) {
          k.dot_f32_rows(q, reinterpret_cast<const float*>(c), count, d, dot, sq);
        };
        break;
      case FloatFormat::f16:
        dot_rows = [&k, d](const float* q, const uint8_t* c, size_t count, float* dot, float* sq) {
          k.dot_f16_rows(q, reinterpret_cast<const uint16_t*>(c), count, d, dot, sq);
        };
        break;
      case FloatFormat::bf16:
        dot_rows = [&k, d](const float* q, const uint8_t* c, size_t count, float* dot, float* sq) {
          k.dot_bf16_rows(q, reinterpret_cast<const uint16_t*>(c), count, d, dot, sq);
        };
        break;
    }
    return std::make_unique<RowKernelScorer>(queries, nq, d, metric, std::move(dot_rows));
  }

  std::vector<uint8_t> serialize() const override {
    ByteWriter w;
    w.put<uint32_t>(1);
    w.put<uint64_t>(d_);
    return w.take();
  }

  void load(const uint8_t* data, size_t size) override {
    ByteReader r(data, size, std::string("parameters of codec '") + descriptor_.name + "'");
    d_ = read_blob_header(r, 1);
    r.expect_end();
  }

 private:
  const CodecDescriptor& descriptor_;
  FloatFormat format_;
  size_t d_ = 0;
};

template <FloatFormat F>
std::unique_ptr<Stage> create_float(const CodecArgs&);

}  // namespace

const CodecDescriptor kF32Codec{"f32", "32-bit float rows, lossless; searched with BLAS", StageKind::quantizer,
                                kExactDecode | kAsymmetricSearch | kPerVectorCodes | kPrefixDecodable | kFloatRows, {},
                                &create_float<FloatFormat::f32>};
const CodecDescriptor kF16Codec{"f16", "IEEE half precision (2 bytes per value), round to nearest even",
                                StageKind::quantizer, kAsymmetricSearch | kPerVectorCodes | kPrefixDecodable, {},
                                &create_float<FloatFormat::f16>};
const CodecDescriptor kBf16Codec{"bf16", "bfloat16 (2 bytes per value, float32 range, 8-bit mantissa)",
                                 StageKind::quantizer, kAsymmetricSearch | kPerVectorCodes | kPrefixDecodable, {},
                                 &create_float<FloatFormat::bf16>};

namespace {
template <FloatFormat F>
std::unique_ptr<Stage> create_float(const CodecArgs&) {
  const CodecDescriptor& d = F == FloatFormat::f32 ? kF32Codec : F == FloatFormat::f16 ? kF16Codec : kBf16Codec;
  return std::make_unique<FloatQuantizer>(d, F);
}
}  // namespace

}  // namespace vecpack
