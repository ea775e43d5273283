// Hash embeddings (Svenstrup et al., 2017) fitted after training. Row i of the table is the
// weighted sum of k rows of a shared pool P (`rows` x d) picked by hashing its position:
//   x_i ~ sum_j w_ij P[h_j(i)],   h_j(i) = xxh64(i as 8 little-endian bytes, seed j) % rows
// (lib/shared_rows.h, the same buckets as the trainable HashEmbedding). With weights=on each
// row stores its k importance weights as f16 (2k bytes); with weights=off every w is 1 (the
// plain hashing trick) and rows store nothing. The pool is fitted to every row by alternating
// least squares: the weights of each row in closed form (k x k normal equations), then the pool
// by conjugate gradients on (A'A + lambda I) P = A'X, A being the sparse n x rows matrix of
// weights (lib/sparse_least_squares).
#include "hash.h"

#include <algorithm>
#include <cmath>

#include "codec_util.h"
#include "kernels/kernels.h"
#include "parallel.h"
#include "shared_rows.h"
#include "sparse_least_squares.h"
#include "vecpack/errors.h"

namespace vecpack {
namespace {

constexpr size_t kMaxK = 16;
constexpr size_t kDefaultRows = 4096, kDefaultK = 2;
// Ridge on the weights' k x k systems, relative to their diagonal: keeps colliding buckets
// (h_j(i) equal for two j) solvable.
constexpr double kWeightRidge = 1e-6;

// Solves the k x k symmetric positive system a w = b in place (Cholesky); false if singular.
bool solve_small(double* a, double* b, size_t k) {
  for (size_t c = 0; c < k; ++c) {
    double diag = a[c * k + c];
    for (size_t p = 0; p < c; ++p) diag -= a[c * k + p] * a[c * k + p];
    if (!(diag > 0)) return false;
    diag = std::sqrt(diag);
    a[c * k + c] = diag;
    for (size_t r = c + 1; r < k; ++r) {
      double v = a[r * k + c];
      for (size_t p = 0; p < c; ++p) v -= a[r * k + p] * a[c * k + p];
      a[r * k + c] = v / diag;
    }
  }
  for (size_t r = 0; r < k; ++r) {  // L y = b
    double v = b[r];
    for (size_t p = 0; p < r; ++p) v -= a[r * k + p] * b[p];
    b[r] = v / a[r * k + r];
  }
  for (size_t r = k; r-- > 0;) {  // L' w = y
    double v = b[r];
    for (size_t p = r + 1; p < k; ++p) v -= a[p * k + r] * b[p];
    b[r] = v / a[r * k + r];
  }
  return true;
}

class HashQuantizer final : public Quantizer {
 public:
  HashQuantizer(size_t rows, size_t k, bool weights, size_t iterations)
      : rows_(rows), k_(k), weights_(weights), iterations_(iterations) {}

  const CodecDescriptor& descriptor() const override { return kHashCodec; }

  // Arguments at their defaults are left out, as the binary family does.
  std::string spec() const override {
    std::string args;
    auto add = [&args](const std::string& a) { args += (args.empty() ? "" : ",") + a; };
    if (rows_ != kDefaultRows) add("rows=" + std::to_string(rows_));
    if (k_ != kDefaultK) add("k=" + std::to_string(k_));
    if (!weights_) add("weights=off");
    return args.empty() ? "hash" : "hash:" + args;
  }

  bool trained() const override { return d_ != 0; }
  size_t dim_in() const override { return d_; }
  size_t code_size() const override { return weights_ ? 2 * k_ : 0; }

  void train(const float* x, size_t n, size_t d, const TrainOptions& options) override {
    check_train_dim(d, "hash");
    if (n == 0) throw Error("hash: cannot fit a pool to 0 rows");
    d_ = d;
    pool_.assign(rows_ * d, 0.0f);
    std::vector<uint32_t> buckets(n * k_);
    for (size_t i = 0; i < n; ++i)
      for (size_t j = 0; j < k_; ++j) buckets[i * k_ + j] = static_cast<uint32_t>(hash_bucket(i, uint32_t(j), rows_));
    std::vector<float> w(n * k_, 1.0f);
    const unsigned threads = resolve_threads(options.threads);
    const size_t rounds = weights_ ? iterations_ : 1;
    if (options.progress) options.progress->begin("fitting the hash pool", rounds);
    for (size_t round = 0; round < rounds; ++round) {
      fit_pool(x, n, buckets, w, threads);
      if (weights_)
        parallel_for((n + 4095) / 4096, threads, [&](size_t b, unsigned) {
          const size_t begin = b * 4096, end = std::min(n, begin + 4096);
          for (size_t i = begin; i < end; ++i) solve_weights(x + i * d, buckets.data() + i * k_, w.data() + i * k_);
        });
      if (options.progress) options.progress->advance(round + 1);
    }
    if (options.progress) options.progress->end();
  }

  void encode(const float* x, size_t n, uint8_t* codes) const override { encode_at(x, n, 0, codes); }
  void encode_at(const float* x, size_t n, size_t first_row, uint8_t* codes) const override {
    if (!weights_) return;
    uint32_t buckets[kMaxK];
    float w[kMaxK];
    for (size_t i = 0; i < n; ++i) {
      bucket_row(first_row + i, buckets);
      solve_weights(x + i * d_, buckets, w);
      for (size_t j = 0; j < k_; ++j) {
        const uint16_t h = f16_bits(w[j]);
        codes[i * 2 * k_ + 2 * j] = static_cast<uint8_t>(h);
        codes[i * 2 * k_ + 2 * j + 1] = static_cast<uint8_t>(h >> 8);
      }
    }
  }

  void decode(const uint8_t* codes, size_t n, float* x) const override { decode_at(codes, n, 0, x); }
  void decode_at(const uint8_t* codes, size_t n, size_t first_row, float* x) const override {
    uint32_t buckets[kMaxK];
    for (size_t i = 0; i < n; ++i) {
      bucket_row(first_row + i, buckets);
      float* out = x + i * d_;
      std::fill(out, out + d_, 0.0f);
      for (size_t j = 0; j < k_; ++j) {
        const float w =
            weights_ ? f16_value(uint16_t(codes[i * 2 * k_ + 2 * j] | codes[i * 2 * k_ + 2 * j + 1] << 8)) : 1.0f;
        const float* p = pool_.data() + size_t(buckets[j]) * d_;
        for (size_t t = 0; t < d_; ++t) out[t] += w * p[t];
      }
    }
  }

  // Layout (version 1): u32 version, u64 d, u64 rows, u32 k, u8 weights, then the pool (u64
  // count + rows x d floats). Codes with weights: k f16 (little-endian) per row.
  std::vector<uint8_t> serialize() const override {
    ByteWriter w;
    w.put<uint32_t>(1);
    w.put<uint64_t>(d_);
    w.put<uint64_t>(rows_);
    w.put<uint32_t>(static_cast<uint32_t>(k_));
    w.put<uint8_t>(weights_ ? 1 : 0);
    w.put_array(pool_);
    return w.take();
  }

  void load(const uint8_t* data, size_t size) override {
    ByteReader r(data, size, "parameters of codec 'hash'");
    const uint64_t d = read_blob_header(r, 1);
    const uint64_t rows = r.get<uint64_t>();
    const uint32_t k = r.get<uint32_t>();
    const uint8_t weights = r.get<uint8_t>();
    if (rows != rows_) r.fail("rows=" + std::to_string(rows) + " differs from the spec's rows=" + std::to_string(rows_));
    if (k != k_) r.fail("k=" + std::to_string(k) + " differs from the spec's k=" + std::to_string(k_));
    if ((weights != 0) != weights_) r.fail("weights differ from the spec's");
    auto pool = r.get_array<float>(checked_mul(rows, d, "hash pool"));
    r.expect_end();
    for (float v : pool)
      if (!std::isfinite(v)) r.fail("a pool value is not finite");
    d_ = d;
    pool_ = std::move(pool);
  }

 private:
  void bucket_row(size_t row, uint32_t* buckets) const {
    for (size_t j = 0; j < k_; ++j) buckets[j] = static_cast<uint32_t>(hash_bucket(row, uint32_t(j), rows_));
  }

  // Least-squares weights of one row against its k pool rows.
  void solve_weights(const float* x, const uint32_t* buckets, float* w) const {
    double a[kMaxK * kMaxK], b[kMaxK];
    for (size_t j = 0; j < k_; ++j) {
      const float* pj = pool_.data() + size_t(buckets[j]) * d_;
      double bj = 0;
      for (size_t t = 0; t < d_; ++t) bj += double(pj[t]) * x[t];
      b[j] = bj;
      for (size_t l = 0; l <= j; ++l) {
        const float* pl = pool_.data() + size_t(buckets[l]) * d_;
        double s = 0;
        for (size_t t = 0; t < d_; ++t) s += double(pj[t]) * pl[t];
        a[j * k_ + l] = a[l * k_ + j] = s;
      }
    }
    double trace = 0;
    for (size_t j = 0; j < k_; ++j) trace += a[j * k_ + j];
    const double ridge = kWeightRidge * (trace / double(k_) + 1e-30);
    for (size_t j = 0; j < k_; ++j) a[j * k_ + j] += ridge;
    if (!solve_small(a, b, k_)) std::fill(b, b + k_, 0.0);
    for (size_t j = 0; j < k_; ++j) w[j] = std::isfinite(b[j]) ? static_cast<float>(b[j]) : 0.0f;
  }

  // The pool's least-squares fit for the current weights (lib/sparse_least_squares).
  void fit_pool(const float* x, size_t n, const std::vector<uint32_t>& buckets, const std::vector<float>& w,
                unsigned threads) {
    SparseRows a;
    a.begin.resize(n + 1);
    for (size_t i = 0; i <= n; ++i) a.begin[i] = i * k_;
    a.column = buckets;
    a.weight = w;
    SparseFitOptions options;
    options.threads = threads;
    options.tolerance = 1e-4;
    fit_sparse_rows(a, x, d_, rows_, pool_, options);
  }

  size_t rows_, k_;
  bool weights_;
  size_t iterations_;
  size_t d_ = 0;
  std::vector<float> pool_;  // rows_ x d_
};

std::unique_ptr<Stage> create_hash(const CodecArgs& args) {
  const size_t rows = static_cast<size_t>(args.integer("rows")), k = static_cast<size_t>(args.integer("k"));
  if (k > rows)
    throw SpecError("hash: k=" + std::to_string(k) + " is larger than rows=" + std::to_string(rows) +
                    " (each table row picks k distinct-hash pool rows out of `rows`)");
  return std::make_unique<HashQuantizer>(rows, k, args.flag("weights"), static_cast<size_t>(args.integer("iterations")));
}

}  // namespace

const CodecDescriptor kHashCodec{
    "hash",
    "hash embeddings fitted to the table: each row is a weighted sum of k rows of a shared pool picked by "
    "hashing its position; k f16 weights per row (weights=off: none, the hashing trick)",
    StageKind::quantizer,
    kSharedParameters | kNeedsTraining,
    {
        {"rows", ParamType::integer, "4096", 1, 4294967295.0, nullptr, "rows of the shared pool"},
        {"k", ParamType::integer, "2", 1, double(kMaxK), nullptr, "pool rows summed per table row"},
        {"weights", ParamType::flag, "on", 0, 0, nullptr, "store k importance weights per row (f16)"},
        {"iterations", ParamType::integer, "4", 1, 100, nullptr, "alternating least-squares rounds (weights=on)"},
    },
    &create_hash,
};

}  // namespace vecpack
