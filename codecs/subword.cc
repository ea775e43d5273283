// Subword rows fitted to a word table. Row i is the mean of the pool rows of its key's character
// n-grams (the key wrapped in '<' '>', n-grams of minn..maxn characters, hashed as fastText
// hashes them into `rows` buckets: lib/subwords.h); the pool is fitted so that these means
// approximate the rows, by ridge least squares over every row (fit_ngram_pool). The first `keep`
// rows (the frequent words of a frequency-sorted table) are kept as they are instead. Rows store
// no code: they decode from their keys, which the table binds (Quantizer::bind_keys), and a key
// the table lacks gets its n-gram mean too (vector_for_key), as fastText and Magnitude answer
// out-of-vocabulary words. Pool and kept rows are stored as f16 (values=f32: as f32).
#include "subword.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "codec_util.h"
#include "kernels/kernels.h"
#include "subwords.h"
#include "vecpack/errors.h"
#include "vecpack/table.h"

namespace vecpack {
namespace {

std::string str(uint64_t v) { return std::to_string(v); }

constexpr uint64_t kDefaultRows = 100000;
constexpr uint32_t kDefaultMinn = 3, kDefaultMaxn = 6;

class SubwordQuantizer final : public Quantizer {
 public:
  SubwordQuantizer(SubwordScheme scheme, size_t keep, bool f16, double ridge, size_t iterations)
      : scheme_(std::move(scheme)), keep_(keep), f16_(f16), ridge_(ridge), iterations_(iterations) {}

  const CodecDescriptor& descriptor() const override { return kSubwordCodec; }

  // Arguments at their defaults are left out, as hash and the binary family do.
  std::string spec() const override {
    std::string args;
    auto add = [&args](const std::string& a) { args += (args.empty() ? "" : ",") + a; };
    if (scheme_.buckets != kDefaultRows) add("rows=" + str(scheme_.buckets));
    if (scheme_.minn != kDefaultMinn) add("minn=" + str(scheme_.minn));
    if (scheme_.maxn != kDefaultMaxn) add("maxn=" + str(scheme_.maxn));
    if (keep_) add("keep=" + str(keep_));
    if (!f16_) add("values=f32");
    return args.empty() ? "subword" : "subword:" + args;
  }

  bool trained() const override { return d_ != 0; }
  size_t dim_in() const override { return d_; }
  size_t code_size() const override { return 0; }
  bool needs_keys() const override { return true; }
  void bind_keys(KeyLookup keys) override { keys_ = std::move(keys); }

  void train(const float* x, size_t n, size_t d, const TrainOptions& options) override {
    check_train_dim(d, "subword");
    if (n == 0) throw Error("subword: cannot fit a pool to 0 rows");
    if (!options.rows || !options.rows->key)
      throw Error("subword: rows are built from the n-grams of their keys (words), and these rows have none");
    if (keep_ > n) throw Error("subword: keep=" + str(keep_) + " is larger than the " + str(n) + " rows");
    NgramFit fit;
    fit.ridge = ridge_;
    fit.iterations = iterations_;
    fit.threads = options.threads;
    fit.progress = options.progress;
    std::vector<float> pool = fit_ngram_pool(scheme_, options.rows->key, x, n, d, fit);
    std::vector<float> kept(x, x + keep_ * d);
    round_values(pool, "an n-gram pool value");
    round_values(kept, "a kept row's value");
    d_ = d;
    n_ = n;
    pool_ = std::move(pool);
    kept_ = std::move(kept);
    keys_ = options.rows->key;
  }

  void encode(const float*, size_t, uint8_t*) const override {}
  void decode(const uint8_t* codes, size_t n, float* x) const override { decode_at(codes, n, 0, x); }
  void decode_at(const uint8_t*, size_t n, size_t first_row, float* x) const override {
    check_fitted_rows("subword", first_row, n, n_);
    for (size_t i = 0; i < n; ++i) {
      const size_t row = first_row + i;
      if (row < keep_) {
        std::copy_n(kept_.data() + row * d_, d_, x + i * d_);
        continue;
      }
      if (!keys_) throw Error("subword: rows decode from their keys; use the codec through its table");
      ngram_mean(keys_(row), x + i * d_);
    }
  }

  bool vector_for_key(std::string_view key, float* out) const override {
    if (!trained()) return false;
    ngram_mean(key, out);
    return true;
  }

  // Layout (version 1): u32 version, u64 d, u64 n, u64 rows (buckets), u32 minn, u32 maxn, u64 keep,
  // u8 values (0 f32, 1 f16), then the pool (u64 count + rows x d values) and the kept rows (u64
  // count + keep x d values); values are f32 or f16 bit patterns, little-endian.
  std::vector<uint8_t> serialize() const override {
    ByteWriter w;
    w.put<uint32_t>(1);
    w.put<uint64_t>(d_);
    w.put<uint64_t>(n_);
    w.put<uint64_t>(scheme_.buckets);
    w.put<uint32_t>(scheme_.minn);
    w.put<uint32_t>(scheme_.maxn);
    w.put<uint64_t>(keep_);
    w.put<uint8_t>(f16_ ? 1 : 0);
    put_values(w, pool_);
    put_values(w, kept_);
    return w.take();
  }

  void load(const uint8_t* data, size_t size) override {
    ByteReader r(data, size, "parameters of codec 'subword'");
    const uint64_t d = read_blob_header(r, 1);
    const uint64_t n = r.get<uint64_t>(), rows = r.get<uint64_t>();
    const uint32_t minn = r.get<uint32_t>(), maxn = r.get<uint32_t>();
    const uint64_t keep = r.get<uint64_t>();
    const bool f16 = r.get<uint8_t>() != 0;
    if (rows != scheme_.buckets || minn != scheme_.minn || maxn != scheme_.maxn || keep != keep_ || f16 != f16_)
      r.fail("rows, minn, maxn, keep or values differ from the spec '" + spec() + "'");
    if (keep > n) r.fail("keep=" + str(keep) + " is larger than the " + str(n) + " rows");
    std::vector<float> pool = get_values(r, checked_mul(rows, d, "subword pool"));
    std::vector<float> kept = get_values(r, checked_mul(keep, d, "subword kept rows"));
    r.expect_end();
    for (const auto* values : {&pool, &kept})
      for (float v : *values)
        if (!std::isfinite(v)) r.fail("a pool or kept value is not finite");
    d_ = d;
    n_ = n;
    pool_ = std::move(pool);
    kept_ = std::move(kept);
  }

 private:
  // The mean of the pool rows of key's n-grams; zeros when it has none (as fastText).
  void ngram_mean(std::string_view key, float* out) const {
    std::fill(out, out + d_, 0.0f);
    const std::vector<uint64_t> rows = subword_rows(scheme_, key);
    for (uint64_t r : rows) {
      const float* p = pool_.data() + r * d_;
      for (size_t t = 0; t < d_; ++t) out[t] += p[t];
    }
    if (rows.empty()) return;
    const float scale = 1.0f / float(rows.size());
    for (size_t t = 0; t < d_; ++t) out[t] *= scale;
  }

  // Rounds values to what the file will hold, so a fresh codec decodes as a loaded one.
  void round_values(std::vector<float>& values, const char* what) const {
    if (!f16_) return;
    for (float& v : values) {
      if (std::fabs(v) > 65504.f)
        throw Error(std::string("subword: ") + what + " (" + std::to_string(v) + ") is beyond the f16 range; use values=f32");
      v = f16_value(f16_bits(v));
    }
  }

  void put_values(ByteWriter& w, const std::vector<float>& values) const {
    if (!f16_) return w.put_array(values);
    std::vector<uint16_t> bits(values.size());
    kernels::active().f32_to_f16(values.data(), values.size(), bits.data());
    w.put_array(bits);
  }

  std::vector<float> get_values(ByteReader& r, uint64_t count) const {
    if (!f16_) return r.get_array<float>(count);
    const std::vector<uint16_t> bits = r.get_array<uint16_t>(count);
    std::vector<float> values(bits.size());
    kernels::active().f16_to_f32(bits.data(), bits.size(), values.data());
    return values;
  }

  SubwordScheme scheme_;
  size_t keep_;
  bool f16_;
  double ridge_;
  size_t iterations_;
  size_t d_ = 0, n_ = 0;
  std::vector<float> pool_;  // buckets x d
  std::vector<float> kept_;  // keep x d
  KeyLookup keys_;
};

std::unique_ptr<Stage> create_subword(const CodecArgs& args) {
  SubwordScheme scheme;
  scheme.buckets = static_cast<uint64_t>(args.integer("rows"));
  scheme.minn = static_cast<uint32_t>(args.integer("minn"));
  scheme.maxn = static_cast<uint32_t>(args.integer("maxn"));
  if (scheme.minn > scheme.maxn)
    throw SpecError("subword: minn=" + str(scheme.minn) + " is larger than maxn=" + str(scheme.maxn));
  return std::make_unique<SubwordQuantizer>(std::move(scheme), static_cast<size_t>(args.integer("keep")),
                                            args.text("values") == "f16", args.real("ridge"),
                                            static_cast<size_t>(args.integer("iterations")));
}

}  // namespace

const CodecDescriptor kSubwordCodec{
    "subword",
    "rows from the character n-grams of their keys (fastText hashing), a pool fitted by ridge least squares; the first "
    "keep rows stored whole; 0 bytes per row, and any word, in the table or not, gets a vector",
    StageKind::quantizer,
    kSharedParameters | kNeedsTraining,
    {
        {"rows", ParamType::integer, "100000", 1, 4294967296.0, nullptr, "rows (hash buckets) of the n-gram pool"},
        {"minn", ParamType::integer, "3", 1, double(kMaxSubwordLength), nullptr, "shortest n-gram, in characters"},
        {"maxn", ParamType::integer, "6", 1, double(kMaxSubwordLength), nullptr, "longest n-gram, in characters"},
        {"keep", ParamType::integer, "0", 0, 1e12, nullptr,
         "the first keep rows are stored whole (the frequent words of a frequency-sorted table)"},
        {"values", ParamType::choice, "f16", 0, 0, "f16|f32", "storage of the pool and the kept rows"},
        {"ridge", ParamType::real, "0.001", 0, 1e6, nullptr, "ridge, relative to the mean diagonal of the normal equations"},
        {"iterations", ParamType::integer, "40", 1, 10000, nullptr, "conjugate-gradient steps at most"},
    },
    &create_subword,
};

}  // namespace vecpack
