// Optimized product quantization, non-parametric variant (Ge, He, Ke and Sun, 2013): an
// orthogonal d x d rotation R chosen so that the rotated rows x R lose as little as possible to
// a product quantizer with m sub-vectors. Training alternates two steps from R = identity:
//   1. train a quick product quantizer (2^8 centroids, a few k-means iterations warm-started
//      from the previous ones) on the rotated rows X R and reconstruct them as Y;
//   2. solve the orthogonal Procrustes problem min |X R - Y| over orthogonal R: with
//      X^T Y = U S V^T, R = U V^T.
// Each step lowers the quantization error of the training rows. apply() is x R and
// reconstruct() is y R^T, exact up to rounding since R is orthogonal.
#include "opq.h"

#include <cblas.h>

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <random>

#include "codec_util.h"
#include "parallel.h"
#include "pq.h"
#include "vecpack/errors.h"

namespace vecpack {
namespace {

// The rotation is a dense d x d matrix: stored, trained and applied at O(d^2) per row.
constexpr size_t kMaxOpqDim = 4096;
// Rows the rotation is learnt from (a seeded sample of the training rows); more barely helps.
constexpr size_t kMaxTrainingRows = 65536;
// The quick product quantizer of every iteration.
constexpr unsigned kInnerBits = 8;
constexpr size_t kFirstKMeansIterations = 20;
constexpr size_t kLaterKMeansIterations = 4;
// Rows per task when multiplying by R, and when summing X^T Y in a fixed order.
constexpr size_t kBlockRows = 4096;

// out = x r (n x d times d x d), or x r^T when transposed.
void multiply(const float* x, size_t n, size_t d, const float* r, bool transposed, float* out) {
  if (n == 0) return;
  keep_blas_single_threaded();
  const int di = static_cast<int>(d);
  cblas_sgemm(CblasRowMajor, CblasNoTrans, transposed ? CblasTrans : CblasNoTrans, static_cast<int>(n), di, di, 1.0f,
              x, di, r, di, 0.0f, out, di);
}

void multiply_rows(const float* x, size_t n, size_t d, const float* r, float* out, unsigned threads) {
  parallel_for((n + kBlockRows - 1) / kBlockRows, threads, [&](size_t t, unsigned) {
    const size_t begin = t * kBlockRows, rows = std::min(kBlockRows, n - begin);
    multiply(x + begin * d, rows, d, r, false, out + begin * d);
  });
}

class OpqTransform final : public Transform {
 public:
  OpqTransform(size_t m, size_t iterations) : requested_m_(m), iterations_(iterations) {}

  const CodecDescriptor& descriptor() const override { return kOpqCodec; }

  std::string spec() const override {
    const size_t m = trained() ? m_ : requested_m_;
    if (m) return "opq:m=" + std::to_string(m) + ",iterations=" + std::to_string(iterations_);
    return iterations_ == kDefaultIterations ? "opq" : "opq:iterations=" + std::to_string(iterations_);
  }

  bool trained() const override { return d_ != 0; }
  size_t dim_in() const override { return d_; }
  size_t dim_out() const override { return d_; }

  // The rotation is learnt for pq's split of the rows: a pq with another m would quantize
  // sub-vectors the rotation was not fitted to, silently losing most of what opq gains.
  void check_next(const Stage& next) const override {
    const size_t pq_m = pq_requested_m(next);
    if (requested_m_ && pq_m && pq_m != requested_m_)
      throw SpecError("opq:m=" + std::to_string(requested_m_) + " is followed by pq:m=" + std::to_string(pq_m) +
                      "; opq learns its rotation for the split into m sub-vectors of the pq after it, so give "
                      "both the same m");
  }

  void train(const float* x, size_t n, size_t d, const TrainOptions& options) override {
    check_train_dim(d, "opq");
    if (d > kMaxOpqDim)
      throw Error("opq: dimension " + std::to_string(d) + " is too large for a dense rotation (at most " +
                  std::to_string(kMaxOpqDim) + ")");
    const size_t m = requested_m_ ? requested_m_ : pq_default_m(d);
    if (m > d)
      throw Error("opq: m=" + std::to_string(m) + " sub-vectors exceed the dimension " + std::to_string(d) +
                  " (m must be in 1.." + std::to_string(d) + " and equal the m of the pq that follows)");
    if (n == 0) throw Error("opq: cannot learn a rotation from 0 training rows");
    const unsigned threads = resolve_threads(options.threads);

    // The sample X, and X R for the current R.
    std::mt19937_64 rng(options.seed);
    const size_t nt = std::min(n, kMaxTrainingRows);
    std::vector<float> sample(nt * d);
    {
      std::vector<size_t> index(n);
      for (size_t i = 0; i < n; ++i) index[i] = i;
      for (size_t i = 0; i < nt && nt < n; ++i) std::swap(index[i], index[i + rng() % (n - i)]);
      index.resize(nt);
      std::sort(index.begin(), index.end());
      for (size_t i = 0; i < nt; ++i) std::copy_n(x + index[i] * d, d, sample.data() + i * d);
    }
    std::vector<float> rotation(d * d, 0.0f);
    for (size_t j = 0; j < d; ++j) rotation[j * d + j] = 1.0f;
    std::vector<float> rotated = sample, reconstructed(nt * d);

    PqCodebooks books;
    if (options.progress) options.progress->begin("training opq rotation", iterations_);
    for (size_t it = 0; it < iterations_; ++it) {
      PqCodebooks::TrainSettings settings;
      settings.kmeans_iterations = it == 0 ? kFirstKMeansIterations : kLaterKMeansIterations;
      settings.seed = derive_seed(options.seed, it);
      settings.threads = threads;
      settings.warm_start = books.empty() ? nullptr : &books;
      books = PqCodebooks::train(rotated.data(), nt, d, m, kInnerBits, settings);

      // Y: the rotated rows as the quick quantizer reconstructs them.
      const size_t blocks = (nt + kBlockRows - 1) / kBlockRows;
      parallel_for(blocks, threads, [&](size_t t, unsigned) {
        const size_t begin = t * kBlockRows, rows = std::min(kBlockRows, nt - begin);
        std::vector<uint32_t> labels(rows * m);
        books.assign(rotated.data() + begin * d, rows, labels.data());
        books.decode_labels(labels.data(), rows, reconstructed.data() + begin * d);
      });

      // X^T Y, summed over fixed row blocks in block order so the thread count cannot change it.
      std::vector<float> partial(blocks * d * d);
      parallel_for(blocks, threads, [&](size_t t, unsigned) {
        keep_blas_single_threaded();
        const size_t begin = t * kBlockRows, rows = std::min(kBlockRows, nt - begin);
        const int di = static_cast<int>(d);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, di, di, static_cast<int>(rows), 1.0f,
                    sample.data() + begin * d, di, reconstructed.data() + begin * d, di, 0.0f,
                    partial.data() + t * d * d, di);
      });
      Eigen::MatrixXd cross = Eigen::MatrixXd::Zero(static_cast<Eigen::Index>(d), static_cast<Eigen::Index>(d));
      for (size_t t = 0; t < blocks; ++t)
        for (size_t a = 0; a < d; ++a)
          for (size_t b = 0; b < d; ++b) cross(a, b) += partial[t * d * d + a * d + b];

      // Procrustes: the orthogonal R maximising trace(R^T X^T Y).
      Eigen::BDCSVD<Eigen::MatrixXd> svd(cross, Eigen::ComputeFullU | Eigen::ComputeFullV);
      const Eigen::MatrixXd best = svd.matrixU() * svd.matrixV().transpose();
      for (size_t a = 0; a < d; ++a)
        for (size_t b = 0; b < d; ++b) rotation[a * d + b] = static_cast<float>(best(a, b));
      multiply_rows(sample.data(), nt, d, rotation.data(), rotated.data(), threads);
      if (options.progress) options.progress->advance(it + 1);
    }
    if (options.progress) options.progress->end();
    rotation_ = std::move(rotation);
    m_ = m;
    d_ = d;
  }

  void apply(const float* x, size_t n, float* y) const override { multiply(x, n, d_, rotation_.data(), false, y); }
  void reconstruct(const float* y, size_t n, float* x) const override {
    multiply(y, n, d_, rotation_.data(), true, x);
  }

  // Layout (version 1): u32 version, u64 d, u32 m, then u64 d * d and the rotation R row-major
  // (y_j = sum_i x_i R_ij).
  std::vector<uint8_t> serialize() const override {
    ByteWriter w;
    w.put<uint32_t>(1);
    w.put<uint64_t>(d_);
    w.put<uint32_t>(static_cast<uint32_t>(m_));
    w.put_array(rotation_);
    return w.take();
  }

  void load(const uint8_t* data, size_t size) override {
    ByteReader r(data, size, "parameters of codec 'opq'");
    const uint64_t d = read_blob_header(r, 1);
    if (d > kMaxOpqDim) r.fail("dimension " + std::to_string(d) + " exceeds " + std::to_string(kMaxOpqDim));
    const uint32_t m = r.get<uint32_t>();
    if (m == 0 || m > d) r.fail("m=" + std::to_string(m) + " is out of range 1.." + std::to_string(d));
    if (requested_m_ && m != requested_m_)
      r.fail("m=" + std::to_string(m) + " differs from the spec's m=" + std::to_string(requested_m_));
    auto rotation = r.get_array<float>(d * d);
    r.expect_end();
    for (size_t i = 0; i < rotation.size(); ++i)
      if (!std::isfinite(rotation[i])) r.fail("rotation value " + std::to_string(i) + " is not finite");
    rotation_ = std::move(rotation);
    m_ = m;
    d_ = d;
  }

  static constexpr size_t kDefaultIterations = 20;

 private:
  size_t requested_m_;  // 0: chosen from the dimension in training, as pq does
  size_t iterations_;
  size_t m_ = 0, d_ = 0;
  std::vector<float> rotation_;  // d x d
};

std::unique_ptr<Stage> create_opq(const CodecArgs& args) {
  return std::make_unique<OpqTransform>(static_cast<size_t>(args.integer("m")),
                                        static_cast<size_t>(args.integer("iterations")));
}

}  // namespace

const CodecDescriptor kOpqCodec{
    "opq",
    "learnt rotation before pq: cuts product quantization error (m must equal the following pq's m)",
    StageKind::transform,
    kTransform | kNeedsTraining,
    {
        {"m", ParamType::integer, "0", 0, 65536, nullptr, "sub-vectors of the pq that follows (0: one per 4 dimensions)"},
        {"iterations", ParamType::integer, "20", 0, 1000, nullptr, "rotation updates (each retrains a quick pq)"},
    },
    &create_opq,
};

}  // namespace vecpack
