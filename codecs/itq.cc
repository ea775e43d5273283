// itq: iterative quantization, a learnt rotation after PCA that sign codes lose least to (see
// itq.h).
#include "itq.h"

#include <cblas.h>

#include <Eigen/Dense>
#include <cmath>
#include <cstring>

#include "sign_bits.h"
#include "transforms.h"

namespace vecpack {
namespace {

using namespace sign_bits;

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

std::unique_ptr<Stage> create_itq(const CodecArgs& a) {
  return std::make_unique<ItqTransform>(size_t(a.integer("k")), size_t(a.integer("iterations")), uint64_t(a.integer("seed")));
}

}  // namespace

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
