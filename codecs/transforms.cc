// Transforms. Training works in double precision (Eigen); applying and reconstructing batches
// is single precision through BLAS. Parameters are stored as float32, like every codec's.
#include "transforms.h"

#include <cblas.h>

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>

#include "block_scorer.h"
#include "codec_util.h"
#include "vecpack/errors.h"

namespace vecpack {
namespace {

// Rows per BLAS call: bounds the scratch copy of centred rows and keeps int arguments small.
constexpr size_t kBlockRows = 4096;
// Stages that hold a d x d matrix (covariance, rotation) refuse larger dimensions.
constexpr size_t kMaxMatrixDim = 16384;

std::string str(size_t v) { return std::to_string(v); }

// out (n x cols) = rows (n x inner) * m, where m is inner x cols row-major, or cols x inner
// row-major when transposed.
void multiply(const float* rows, size_t n, size_t inner, const float* m, size_t cols, bool transposed, float* out) {
  for (size_t b = 0; b < n; b += kBlockRows) {
    const size_t count = std::min(kBlockRows, n - b);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, transposed ? CblasTrans : CblasNoTrans, static_cast<int>(count),
                static_cast<int>(cols), static_cast<int>(inner), 1.f, rows + b * inner, static_cast<int>(inner), m,
                static_cast<int>(transposed ? inner : cols), 0.f, out + b * cols, static_cast<int>(cols));
  }
}

void check_matrix_dim(size_t d, const char* stage) {
  if (d > kMaxMatrixDim)
    throw Error(std::string(stage) + ": input dimension " + str(d) + " is too large for a " + str(d) + " x " + str(d) +
                " matrix (at most " + str(kMaxMatrixDim) + ")");
}

template <class T>
void check_finite(const ByteReader& r, const std::vector<T>& values, const char* what) {
  for (size_t i = 0; i < values.size(); ++i)
    if (!std::isfinite(values[i])) r.fail(std::string(what) + " value " + str(i) + " is not finite");
}

}  // namespace

PrincipalAxes principal_axes(const float* x, size_t n, size_t d, bool centre, size_t keep, const std::string& stage,
                             size_t first_row) {
  PrincipalAxes p;
  p.mean.assign(d, 0.0);
  for (size_t i = 0; i < n; ++i)
    for (size_t j = 0; j < d; ++j) {
      const float v = x[i * d + j];
      if (!std::isfinite(v)) throw Error(stage + ": training row " + str(first_row + i) + " contains NaN or infinity");
      p.mean[j] += v;
    }
  for (double& m : p.mean) m = centre ? m / double(n) : 0.0;

  Eigen::MatrixXd cov = Eigen::MatrixXd::Zero(static_cast<Eigen::Index>(d), static_cast<Eigen::Index>(d));
  std::vector<double> block(std::min(n, kBlockRows) * d);
  for (size_t b = 0; b < n; b += kBlockRows) {
    const size_t count = std::min(kBlockRows, n - b);
    for (size_t i = 0; i < count; ++i)
      for (size_t j = 0; j < d; ++j) block[i * d + j] = double(x[(b + i) * d + j]) - p.mean[j];
    // The block is d x count column-major: cov += B B^T, lower triangle (all Eigen reads).
    cblas_dsyrk(CblasColMajor, CblasLower, CblasNoTrans, static_cast<int>(d), static_cast<int>(count), 1.0, block.data(),
                static_cast<int>(d), 1.0, cov.data(), static_cast<int>(d));
  }
  cov /= double(n);

  Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> solver(cov, Eigen::ComputeEigenvectors);
  if (solver.info() != Eigen::Success) throw Error(stage + ": the eigen-decomposition of the covariance did not converge");
  const auto& values = solver.eigenvalues();  // increasing
  const auto& vectors = solver.eigenvectors();
  keep = std::min(keep, d);
  p.values.resize(keep);
  p.axes.resize(keep * d);
  for (size_t k = 0; k < keep; ++k) {
    const auto src = static_cast<Eigen::Index>(d - 1 - k);
    p.values[k] = std::max(0.0, values(src));
    Eigen::Index largest = 0;
    vectors.col(src).cwiseAbs().maxCoeff(&largest);
    const double sign = vectors(largest, src) < 0 ? -1.0 : 1.0;
    for (size_t j = 0; j < d; ++j) p.axes[k * d + j] = sign * vectors(static_cast<Eigen::Index>(j), src);
  }
  return p;
}

namespace {

// whiten and pca: y = (x - mean) U_k diag(scale), scale_j = 1 / sqrt(variance_j + eps) for
// whiten and 1 for pca; reconstruct x = y diag(1 / scale) U_k^T + mean (the pseudo-inverse).
// pca:center=off uses mean 0 (axes of the second moments): a rotation that keeps cosines.
class Projection final : public Transform {
 public:
  Projection(bool whiten, size_t requested_k, std::string eps_text, double eps, bool normalize, bool centre)
      : whiten_(whiten),
        requested_k_(requested_k),
        eps_text_(std::move(eps_text)),
        eps_(eps),
        normalize_(normalize),
        centre_(centre) {}

  const CodecDescriptor& descriptor() const override { return whiten_ ? kWhitenTransform : kPcaTransform; }
  std::string spec() const override {
    std::string s = std::string(name()) + ":k=" + str(trained() ? k_ : requested_k_);
    if (whiten_) s += ",eps=" + eps_text_ + ",normalize=" + (normalize_ ? "on" : "off");
    if (!centre_) s += ",center=off";
    return s;
  }
  bool trained() const override { return d_ != 0; }
  size_t dim_in() const override { return d_; }
  size_t dim_out() const override { return k_; }

  void train(const float* x, size_t n, size_t d, const TrainOptions&) override {
    check_train_dim(d, name());
    check_matrix_dim(d, name());
    const size_t k = requested_k_ ? requested_k_ : d;
    if (k > d)
      throw SpecError(std::string(name()) + ": k=" + str(k) + " is out of range for input dimension " + str(d) + " (1.." +
                      str(d) + ")");
    // Centred rows span at most n - 1 directions, uncentred ones n.
    const size_t spanned = centre_ ? n - std::min<size_t>(n, 1) : n;
    if (n < 2 || (spanned < k && !(whiten_ && eps_ > 0))) throw too_few_rows(n, d, k, spanned);

    PrincipalAxes p = principal_axes(x, n, d, centre_, k, name());
    std::vector<float> scale(k, 1.f);
    if (whiten_) {
      const double largest = p.values[0];
      for (size_t j = 0; j < k; ++j) {
        const double v = p.values[j] + eps_;
        if (!(v > 1e-10 * largest) || v <= 0) throw singular(n, d, k, j, p.values[j], largest);
        scale[j] = static_cast<float>(1.0 / std::sqrt(v));
      }
    }
    std::vector<float> mean(d), directions(d * k);
    for (size_t i = 0; i < d; ++i) {
      mean[i] = static_cast<float>(p.mean[i]);
      for (size_t j = 0; j < k; ++j)
        directions[i * k + j] = static_cast<float>(p.axes[j * d + i]);
    }
    set(d, k, std::move(mean), std::move(scale), std::move(directions));
  }

  void apply(const float* x, size_t n, float* y) const override {
    std::vector<float> centred(std::min(n, kBlockRows) * d_);
    for (size_t b = 0; b < n; b += kBlockRows) {
      const size_t count = std::min(kBlockRows, n - b);
      for (size_t i = 0; i < count; ++i)
        for (size_t j = 0; j < d_; ++j) centred[i * d_ + j] = x[(b + i) * d_ + j] - mean_[j];
      multiply(centred.data(), count, d_, forward_.data(), k_, false, y + b * k_);
    }
    if (normalize_) normalize_rows(y, n, k_);
  }

  void reconstruct(const float* y, size_t n, float* x) const override {
    multiply(y, n, k_, inverse_.data(), d_, false, x);
    for (size_t i = 0; i < n; ++i)
      for (size_t j = 0; j < d_; ++j) x[i * d_ + j] += mean_[j];
  }

  // u32 version, u64 d, u64 k, mean (u64 d + d f32), [whiten: scale (u64 k + k f32)],
  // directions (u64 d*k + d x k f32, row-major: column j is principal axis j).
  std::vector<uint8_t> serialize() const override {
    ByteWriter w;
    w.put<uint32_t>(1);
    w.put<uint64_t>(d_);
    w.put<uint64_t>(k_);
    w.put_array(mean_);
    if (whiten_) w.put_array(scale_);
    w.put_array(directions_);
    return w.take();
  }

  void load(const uint8_t* data, size_t size) override {
    ByteReader r(data, size, std::string("parameters of transform '") + name() + "'");
    const uint64_t d = read_blob_header(r, 1);
    const uint64_t k = r.get<uint64_t>();
    if (k == 0 || k > d) r.fail("k=" + str(k) + " is out of range 1.." + str(d));
    if (requested_k_ && requested_k_ != k) r.fail("k=" + str(k) + " disagrees with the spec's k=" + str(requested_k_));
    auto mean = r.get_array<float>(d);
    std::vector<float> scale(k, 1.f);
    if (whiten_) scale = r.get_array<float>(k);
    auto directions = r.get_array<float>(d * k);
    r.expect_end();
    check_finite(r, mean, "mean");
    check_finite(r, scale, "scale");
    check_finite(r, directions, "direction");
    for (size_t j = 0; j < k; ++j)
      if (!(scale[j] > 0)) r.fail("scale of dimension " + str(j) + " is not positive");
    set(d, k, std::move(mean), std::move(scale), std::move(directions));
  }

 private:
  const char* name() const { return whiten_ ? "whiten" : "pca"; }

  Error too_few_rows(size_t n, size_t d, size_t k, size_t spanned) const {
    const std::string most = centre_ ? "n - 1" : "n";
    std::string s = std::string(name()) + ": " + str(n) + " training rows for input dimension " + str(d) + " and k=" +
                    str(k) + ": the covariance of n rows spans at most " + most + " directions, so ";
    s += whiten_ ? "whitening to k dimensions divides by zero variances" : "principal directions beyond " + most + " are undefined";
    s += "; train on at least " + str(k + (centre_ ? 1 : 0)) + " rows";
    if (spanned >= 1) s += ", use k=" + str(spanned) + " or fewer";
    if (whiten_) s += ", or regularise with eps (e.g. whiten:eps=1e-4)";
    return Error(s);
  }

  Error singular(size_t n, size_t d, size_t k, size_t j, double variance, double largest) const {
    char buffer[64];
    std::snprintf(buffer, sizeof buffer, "%.3g", largest > 0 ? largest * 1e-6 : 1e-6);
    char v[32], l[32];
    std::snprintf(v, sizeof v, "%.3g", variance);
    std::snprintf(l, sizeof l, "%.3g", largest);
    return Error("whiten: the covariance of " + str(n) + " training rows (input dimension " + str(d) +
                 ") is singular: principal direction " + str(j + 1) + " of k=" + str(k) + " has variance " + v +
                 " (largest " + l + "); use a smaller k" + (j ? " (at most " + str(j) + ")" : std::string()) +
                 " or regularise with eps (e.g. eps=" + buffer + ")");
  }

  void set(size_t d, size_t k, std::vector<float> mean, std::vector<float> scale, std::vector<float> directions) {
    forward_.resize(d * k);
    inverse_.resize(k * d);
    for (size_t i = 0; i < d; ++i)
      for (size_t j = 0; j < k; ++j) {
        forward_[i * k + j] = directions[i * k + j] * scale[j];
        inverse_[j * d + i] = directions[i * k + j] / scale[j];
      }
    d_ = d;
    k_ = k;
    mean_ = std::move(mean);
    scale_ = std::move(scale);
    directions_ = std::move(directions);
  }

  bool whiten_;
  size_t requested_k_;  // 0: the input dimension
  std::string eps_text_;
  double eps_;
  bool normalize_;
  bool centre_;
  size_t d_ = 0, k_ = 0;
  std::vector<float> mean_, scale_, directions_;
  std::vector<float> forward_, inverse_;  // derived: d x k and k x d, not stored
};

}  // namespace

std::vector<float> random_orthogonal(size_t d, uint64_t seed) {
  // Gaussian values from a generator whose output the C++ standard fixes, through Box-Muller
  // (std::normal_distribution differs between standard libraries).
  std::mt19937_64 rng(seed);
  auto uniform = [&rng] { return (double(rng() >> 11) + 0.5) * 0x1.0p-53; };
  const auto dd = static_cast<Eigen::Index>(d);
  Eigen::MatrixXd g(dd, dd);
  for (Eigen::Index i = 0; i < dd * dd; i += 2) {
    const double radius = std::sqrt(-2.0 * std::log(uniform())), angle = 2 * M_PI * uniform();
    g.data()[i] = radius * std::cos(angle);
    if (i + 1 < dd * dd) g.data()[i + 1] = radius * std::sin(angle);
  }
  Eigen::HouseholderQR<Eigen::MatrixXd> qr(g);
  Eigen::MatrixXd q = qr.householderQ();
  const Eigen::MatrixXd& packed = qr.matrixQR();
  std::vector<float> r(d * d);
  for (Eigen::Index j = 0; j < dd; ++j) {
    const double sign = packed(j, j) < 0 ? -1.0 : 1.0;
    for (Eigen::Index i = 0; i < dd; ++i) r[size_t(i) * d + size_t(j)] = static_cast<float>(sign * q(i, j));
  }
  return r;
}

namespace {

// rotate: y = x R with R a seeded random orthogonal d x d matrix (QR of a Gaussian matrix,
// columns sign-fixed so that R is uniformly distributed); reconstruct x = y R^T.
class Rotation final : public Transform {
 public:
  explicit Rotation(uint64_t seed) : seed_(seed) {}
  const CodecDescriptor& descriptor() const override { return kRotateTransform; }
  std::string spec() const override { return "rotate:seed=" + std::to_string(seed_); }
  bool trained() const override { return d_ != 0; }
  size_t dim_in() const override { return d_; }
  size_t dim_out() const override { return d_; }

  void train(const float*, size_t, size_t d, const TrainOptions&) override {
    check_train_dim(d, "rotate");
    check_matrix_dim(d, "rotate");
    r_ = random_orthogonal(d, seed_);
    d_ = d;
  }

  void apply(const float* x, size_t n, float* y) const override { multiply(x, n, d_, r_.data(), d_, false, y); }
  void reconstruct(const float* y, size_t n, float* x) const override { multiply(y, n, d_, r_.data(), d_, true, x); }

  // u32 version, u64 d, R (u64 d*d + d x d f32, row-major).
  std::vector<uint8_t> serialize() const override {
    ByteWriter w;
    w.put<uint32_t>(1);
    w.put<uint64_t>(d_);
    w.put_array(r_);
    return w.take();
  }

  void load(const uint8_t* data, size_t size) override {
    ByteReader r(data, size, "parameters of transform 'rotate'");
    const uint64_t d = read_blob_header(r, 1);
    if (d > kMaxMatrixDim) r.fail("dimension " + str(d) + " exceeds " + str(kMaxMatrixDim));
    auto matrix = r.get_array<float>(d * d);
    r.expect_end();
    check_finite(r, matrix, "rotation");
    for (size_t i = 0; i < matrix.size(); ++i)
      if (std::fabs(matrix[i]) > 1.0001f) r.fail("rotation value " + str(i) + " exceeds 1 in magnitude");
    r_ = std::move(matrix);
    d_ = d;
  }

 private:
  uint64_t seed_;
  size_t d_ = 0;
  std::vector<float> r_;
};

// l2norm: y = x / |x| (zero rows stay zero). Norms are not kept: reconstruct returns the unit rows.
class L2Norm final : public Transform {
 public:
  const CodecDescriptor& descriptor() const override { return kL2NormTransform; }
  std::string spec() const override { return "l2norm"; }
  bool trained() const override { return d_ != 0; }
  size_t dim_in() const override { return d_; }
  size_t dim_out() const override { return d_; }
  void train(const float*, size_t, size_t d, const TrainOptions&) override {
    check_train_dim(d, "l2norm");
    d_ = d;
  }
  void apply(const float* x, size_t n, float* y) const override {
    if (y != x) std::memcpy(y, x, n * d_ * sizeof(float));
    normalize_rows(y, n, d_);
  }
  void reconstruct(const float* y, size_t n, float* x) const override {
    if (x != y) std::memcpy(x, y, n * d_ * sizeof(float));
  }
  std::vector<uint8_t> serialize() const override {
    ByteWriter w;
    w.put<uint32_t>(1);
    w.put<uint64_t>(d_);
    return w.take();
  }
  void load(const uint8_t* data, size_t size) override {
    ByteReader r(data, size, "parameters of transform 'l2norm'");
    d_ = read_blob_header(r, 1);
    r.expect_end();
  }

 private:
  size_t d_ = 0;
};

// matryoshka: y = x[0, m), optionally scaled to unit length; reconstruct pads with zeros.
class Matryoshka final : public Transform {
 public:
  Matryoshka(size_t m, bool normalize) : m_(m), normalize_(normalize) {}
  const CodecDescriptor& descriptor() const override { return kMatryoshkaTransform; }
  std::string spec() const override {
    return "matryoshka:dim=" + str(m_) + ",normalize=" + (normalize_ ? "on" : "off");
  }
  bool trained() const override { return d_ != 0; }
  size_t dim_in() const override { return d_; }
  size_t dim_out() const override { return m_; }
  void train(const float*, size_t, size_t d, const TrainOptions&) override {
    check_train_dim(d, "matryoshka");
    if (m_ > d)
      throw SpecError("matryoshka: dim=" + str(m_) + " is out of range for input dimension " + str(d) + " (1.." + str(d) +
                      ")");
    d_ = d;
  }
  void apply(const float* x, size_t n, float* y) const override {
    for (size_t i = 0; i < n; ++i) std::memmove(y + i * m_, x + i * d_, m_ * sizeof(float));
    if (normalize_) normalize_rows(y, n, m_);
  }
  void reconstruct(const float* y, size_t n, float* x) const override {
    for (size_t i = n; i-- > 0;) {  // backwards, so that x may be y's own buffer
      std::memmove(x + i * d_, y + i * m_, m_ * sizeof(float));
      std::fill(x + i * d_ + m_, x + (i + 1) * d_, 0.f);
    }
  }
  // u32 version, u64 d, u64 m.
  std::vector<uint8_t> serialize() const override {
    ByteWriter w;
    w.put<uint32_t>(1);
    w.put<uint64_t>(d_);
    w.put<uint64_t>(m_);
    return w.take();
  }
  void load(const uint8_t* data, size_t size) override {
    ByteReader r(data, size, "parameters of transform 'matryoshka'");
    const uint64_t d = read_blob_header(r, 1);
    const uint64_t m = r.get<uint64_t>();
    r.expect_end();
    if (m == 0 || m > d) r.fail("dim=" + str(m) + " is out of range 1.." + str(d));
    if (m != m_) r.fail("dim=" + str(m) + " disagrees with the spec's dim=" + str(m_));
    d_ = d;
  }

 private:
  size_t m_;
  bool normalize_;
  size_t d_ = 0;
};

std::unique_ptr<Stage> create_whiten(const CodecArgs& a) {
  return std::make_unique<Projection>(true, size_t(a.integer("k")), a.text("eps"), a.real("eps"), a.flag("normalize"),
                                      true);
}
std::unique_ptr<Stage> create_pca(const CodecArgs& a) {
  return std::make_unique<Projection>(false, size_t(a.integer("k")), "0", 0.0, false, a.flag("center"));
}
std::unique_ptr<Stage> create_rotate(const CodecArgs& a) { return std::make_unique<Rotation>(uint64_t(a.integer("seed"))); }
std::unique_ptr<Stage> create_l2norm(const CodecArgs&) { return std::make_unique<L2Norm>(); }
std::unique_ptr<Stage> create_matryoshka(const CodecArgs& a) {
  const int64_t m = a.integer("dim");
  if (m <= 0)
    throw SpecError("matryoshka: argument dim is required: the number of leading dimensions to keep (1..65536), e.g. "
                    "matryoshka:dim=64");
  return std::make_unique<Matryoshka>(size_t(m), a.flag("normalize"));
}

}  // namespace

const CodecDescriptor kWhitenTransform{
    "whiten",
    "centre, project onto the top-k principal axes and scale each to unit variance (search runs in the whitened space)",
    StageKind::transform,
    kTransform | kNeedsTraining,
    {{"k", ParamType::integer, "0", 0, 65536, nullptr, "output dimensions, the top principal axes (0: the input dimension)"},
     {"eps", ParamType::real, "0", 0, 1e30, nullptr, "added to every variance before scaling; regularises singular data"},
     {"normalize", ParamType::flag, "off", 0, 0, nullptr, "scale whitened rows to unit length (norms cannot be restored)"}},
    &create_whiten};

const CodecDescriptor kPcaTransform{
    "pca",
    "centre and project onto the top-k principal axes, largest variance first",
    StageKind::transform,
    kTransform | kNeedsTraining,
    {{"k", ParamType::integer, "0", 0, 65536, nullptr, "output dimensions (0: the input dimension, a rotation)"},
     {"center", ParamType::flag, "on", 0, 0, nullptr,
      "subtract the mean first; off: axes of the uncentred rows, so that k = d keeps cosines and norms"}},
    &create_pca};

const CodecDescriptor kRotateTransform{
    "rotate",
    "a seeded random orthogonal rotation (spreads variance evenly across dimensions)",
    StageKind::transform,
    kTransform,
    {{"seed", ParamType::integer, "1234", 0, 9007199254740992.0, nullptr, "seed of the random rotation"}},
    &create_rotate};

const CodecDescriptor kL2NormTransform{"l2norm", "scale every row to unit length (decoded rows keep unit length)",
                                       StageKind::transform, kTransform, {}, &create_l2norm};

const CodecDescriptor kMatryoshkaTransform{
    "matryoshka",
    "keep the first dim dimensions (for Matryoshka-trained models, or after pca); decoding pads zeros",
    StageKind::transform,
    kTransform,
    {{"dim", ParamType::integer, "0", 1, 65536, nullptr, "leading dimensions kept (required)"},
     {"normalize", ParamType::flag, "off", 0, 0, nullptr, "scale the kept dimensions to unit length"}},
    &create_matryoshka};

}  // namespace vecpack
