// Subword rows fitted to a word table. Row i is the mean of the pool rows of its key's character
// n-grams (the key wrapped in '<' '>', n-grams of minn..maxn characters, hashed as fastText
// hashes them into `rows` buckets: lib/subwords.h); the pool is fitted so that these means
// approximate the rows, by ridge least squares over every row (fit_ngram_pool). The first `keep`
// rows (the frequent words of a frequency-sorted table) are kept as they are instead. Rows store
// no code: they decode from their keys, which the table binds (Quantizer::bind_keys), and a key
// the table lacks gets its n-gram mean too (vector_for_key), as fastText and Magnitude answer
// out-of-vocabulary words. Pool and kept rows are stored as f16, f32, or int8 (per matrix and
// column an affine map low + step c over its range, c in 0..255, as the int8 codec).
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

enum class Values : uint8_t { f32 = 0, f16 = 1, int8 = 2 };

Values parse_values(const std::string& text) {
  return text == "f32" ? Values::f32 : text == "int8" ? Values::int8 : Values::f16;
}
const char* values_name(Values v) { return v == Values::f32 ? "f32" : v == Values::int8 ? "int8" : "f16"; }

// The pool or the kept rows: floats as the file holds them, and for int8 the file's form.
struct Stored {
  size_t rows = 0;
  std::vector<float> values;      // rows x d
  std::vector<float> low, step;   // int8: per column
  std::vector<uint8_t> codes;     // int8: rows x d
};

class SubwordQuantizer final : public Quantizer {
 public:
  SubwordQuantizer(SubwordScheme scheme, size_t keep, Values values, double ridge, size_t iterations)
      : scheme_(std::move(scheme)), keep_(keep), values_(values), ridge_(ridge), iterations_(iterations) {}

  const CodecDescriptor& descriptor() const override { return kSubwordCodec; }

  // Arguments at their defaults are left out, as hash and the binary family do.
  std::string spec() const override {
    std::string args;
    auto add = [&args](const std::string& a) { args += (args.empty() ? "" : ",") + a; };
    if (scheme_.buckets != kDefaultRows) add("rows=" + str(scheme_.buckets));
    if (scheme_.minn != kDefaultMinn) add("minn=" + str(scheme_.minn));
    if (scheme_.maxn != kDefaultMaxn) add("maxn=" + str(scheme_.maxn));
    if (keep_) add("keep=" + str(keep_));
    if (values_ != Values::f16) add(std::string("values=") + values_name(values_));
    return args.empty() ? "subword" : "subword:" + args;
  }

  bool trained() const override { return d_ != 0; }
  size_t dim_in() const override { return d_; }
  size_t code_size() const override { return 0; }
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
    d_ = d;
    n_ = n;
    pool_ = store(std::move(pool), scheme_.buckets, "an n-gram pool value");
    kept_ = store(std::vector<float>(x, x + keep_ * d), keep_, "a kept row's value");
    keys_ = options.rows->key;
  }

  void encode(const float*, size_t, uint8_t*, size_t) const override {}
  void decode(const uint8_t*, size_t n, float* x, size_t first_row) const override {
    check_fitted_rows("subword", first_row, n, n_);
    for (size_t i = 0; i < n; ++i) {
      const size_t row = first_row + i;
      if (row < keep_) {
        std::copy_n(kept_.values.data() + row * d_, d_, x + i * d_);
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
  // u8 values (0 f32, 1 f16, 2 int8), then the pool (rows x d) and the kept rows (keep x d), each
  // as u64 count + the values (f32, or f16 bit patterns), or for int8 low and step (u64 d + d f32
  // each) then u64 count + the uint8 codes, a value being low_j + step_j c; little-endian.
  std::vector<uint8_t> serialize() const override {
    ByteWriter w;
    w.put<uint32_t>(1);
    w.put<uint64_t>(d_);
    w.put<uint64_t>(n_);
    w.put<uint64_t>(scheme_.buckets);
    w.put<uint32_t>(scheme_.minn);
    w.put<uint32_t>(scheme_.maxn);
    w.put<uint64_t>(keep_);
    w.put<uint8_t>(static_cast<uint8_t>(values_));
    put_stored(w, pool_);
    put_stored(w, kept_);
    return w.take();
  }

  void load(const uint8_t* data, size_t size) override {
    ByteReader r(data, size, "parameters of codec 'subword'");
    const uint64_t d = read_blob_header(r, 1);
    const uint64_t n = r.get<uint64_t>(), rows = r.get<uint64_t>();
    const uint32_t minn = r.get<uint32_t>(), maxn = r.get<uint32_t>();
    const uint64_t keep = r.get<uint64_t>();
    const uint8_t values = r.get<uint8_t>();
    if (rows != scheme_.buckets || minn != scheme_.minn || maxn != scheme_.maxn || keep != keep_ ||
        values != static_cast<uint8_t>(values_))
      r.fail("rows, minn, maxn, keep or values differ from the spec '" + spec() + "'");
    if (keep > n) r.fail("keep=" + str(keep) + " is larger than the " + str(n) + " rows");
    Stored pool = get_stored(r, rows, d, "pool");
    Stored kept = get_stored(r, keep, d, "kept rows");
    r.expect_end();
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
      const float* p = pool_.values.data() + r * d_;
      for (size_t t = 0; t < d_; ++t) out[t] += p[t];
    }
    if (rows.empty()) return;
    const float scale = 1.0f / float(rows.size());
    for (size_t t = 0; t < d_; ++t) out[t] *= scale;
  }

  // Rounds rows x d_ values to what the file will hold, so a fresh codec decodes as a loaded one.
  Stored store(std::vector<float> values, size_t rows, const char* what) const {
    Stored out;
    out.rows = rows;
    switch (values_) {
      case Values::f32: break;
      case Values::f16:
        for (float& v : values) {
          if (std::fabs(v) > 65504.f)
            throw Error(std::string("subword: ") + what + " (" + std::to_string(v) +
                        ") is beyond the f16 range; use values=f32");
          v = f16_value(f16_bits(v));
        }
        break;
      case Values::int8: {
        out.low.assign(d_, 0.f);
        out.step.assign(d_, 0.f);
        for (size_t j = 0; j < d_ && rows; ++j) {
          float lo = values[j], hi = values[j];
          for (size_t i = 1; i < rows; ++i) lo = std::min(lo, values[i * d_ + j]), hi = std::max(hi, values[i * d_ + j]);
          out.low[j] = lo;
          out.step[j] = (hi - lo) / 255.f;
        }
        out.codes.resize(values.size());
        for (size_t i = 0; i < rows; ++i)
          for (size_t j = 0; j < d_; ++j) {
            const float step = out.step[j];
            const float c = step > 0 ? std::round((values[i * d_ + j] - out.low[j]) / step) : 0.f;
            out.codes[i * d_ + j] = static_cast<uint8_t>(std::clamp(c, 0.f, 255.f));
          }
        kernels::active().u8_affine_decode(out.codes.data(), rows, d_, out.low.data(), out.step.data(), values.data());
        break;
      }
    }
    out.values = std::move(values);
    return out;
  }

  void put_stored(ByteWriter& w, const Stored& m) const {
    switch (values_) {
      case Values::f32: return w.put_array(m.values);
      case Values::f16: {
        std::vector<uint16_t> bits(m.values.size());
        kernels::active().f32_to_f16(m.values.data(), m.values.size(), bits.data());
        return w.put_array(bits);
      }
      case Values::int8:
        w.put_array(m.low);
        w.put_array(m.step);
        return w.put_array(m.codes);
    }
  }

  Stored get_stored(ByteReader& r, uint64_t rows, uint64_t d, const char* what) const {
    Stored m;
    m.rows = rows;
    const uint64_t count = checked_mul(rows, d, what);
    switch (values_) {
      case Values::f32: m.values = r.get_array<float>(count); break;
      case Values::f16: {
        const std::vector<uint16_t> bits = r.get_array<uint16_t>(count);
        m.values.resize(bits.size());
        kernels::active().f16_to_f32(bits.data(), bits.size(), m.values.data());
        break;
      }
      case Values::int8: {
        m.low = r.get_array<float>(d);
        m.step = r.get_array<float>(d);
        for (size_t j = 0; j < d; ++j)
          if (!std::isfinite(m.low[j]) || !std::isfinite(m.step[j]) || m.step[j] < 0)
            r.fail(std::string("the range of column ") + str(j) + " of the " + what + " is invalid");
        m.codes = r.get_array<uint8_t>(count);
        m.values.resize(count);
        if (rows) kernels::active().u8_affine_decode(m.codes.data(), rows, d, m.low.data(), m.step.data(), m.values.data());
        break;
      }
    }
    for (float v : m.values)
      if (!std::isfinite(v)) r.fail(std::string("a value of the ") + what + " is not finite");
    return m;
  }

  SubwordScheme scheme_;
  size_t keep_;
  Values values_;
  double ridge_;
  size_t iterations_;
  size_t d_ = 0, n_ = 0;
  Stored pool_;  // buckets x d
  Stored kept_;  // keep x d
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
                                            parse_values(args.text("values")), args.real("ridge"),
                                            static_cast<size_t>(args.integer("iterations")));
}

}  // namespace

const CodecDescriptor kSubwordCodec{
    "subword",
    "rows from the character n-grams of their keys (fastText hashing), a pool fitted by ridge least squares; the first "
    "keep rows stored whole; 0 bytes per row, and any word, in the table or not, gets a vector",
    StageKind::quantizer,
    kSharedParameters | kNeedsTraining | kNeedsKeys,
    {
        {"rows", ParamType::integer, "100000", 1, 4294967296.0, nullptr, "rows (hash buckets) of the n-gram pool"},
        {"minn", ParamType::integer, "3", 1, double(kMaxSubwordLength), nullptr, "shortest n-gram, in characters"},
        {"maxn", ParamType::integer, "6", 1, double(kMaxSubwordLength), nullptr, "longest n-gram, in characters"},
        {"keep", ParamType::integer, "0", 0, 1e12, nullptr,
         "the first keep rows are stored whole (the frequent words of a frequency-sorted table)"},
        {"values", ParamType::choice, "f16", 0, 0, "f16|f32|int8",
         "storage of the pool and the kept rows (int8: an affine map per column, as the int8 codec)"},
        {"ridge", ParamType::real, "0.001", 0, 1e6, nullptr, "ridge, relative to the mean diagonal of the normal equations"},
        {"iterations", ParamType::integer, "40", 1, 10000, nullptr, "conjugate-gradient steps at most"},
    },
    &create_subword,
};

}  // namespace vecpack
