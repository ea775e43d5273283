// Residual quantization (Chen, Guan and Wang, 2010) with beam search, as in FAISS's
// ResidualQuantizer. m codebooks of 256 centroids, each over all d dimensions: stage s quantizes
// what stages 0..s-1 left, and a row is the sum of one centroid from each. Codebooks are trained
// stage by stage, by k-means on the residuals the stages before leave. Encoding keeps the `beam`
// best partial sums at every stage rather than only the nearest centroid, which lowers the error
// for beam times the work.
//
// Scores are table lookups like pq's, since q . x = sum over stages of q . c_s: a query fills m
// tables of 256 entries and the same scan reads them (table_scan.h). The squared norm of a row is
// not such a sum (the stages overlap), so each code carries it in one more byte, on a log scale
// fitted in training; that byte indexes one more table, holding the norm's part of the score:
// nothing for ip, -|x|^2 - |q|^2 for l2, and the cosine's divisor through the norm tables.
//
// Code layout: the m stage indices, one byte each, then the norm byte.
#include "rq.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <mutex>

#include "codec_util.h"
#include "kernels/kernels.h"
#include "kmeans.h"
#include "parallel.h"
#include "sparse_least_squares.h"
#include "table_scan.h"
#include "vecpack/errors.h"

namespace vecpack {
namespace {

constexpr size_t kCentroids = 256;      // per stage: one byte
constexpr size_t kEncodeBlock = 64;     // rows whose products with every centroid are one matrix product
constexpr size_t kTrainIterations = 15;  // Lloyd iterations per stage
constexpr double kRefineRidge = 1e-4;      // of the joint least-squares fit, relative (sparse_least_squares.h)
constexpr size_t kRefineIterations = 20;   // conjugate-gradient steps of that fit
// Stages whose residual products come from cross-stage tables; beyond, reading s rows of 1 KiB per
// beam costs about as much as the matrix product of the residuals (GloVe-100: m=9 31k rows/s
// from tables alone, 28k with the last stage multiplied; m=12 the same either way).
constexpr size_t kTableStages = 10;
constexpr float kNormLevels = 255;

class RqQuantizer final : public Quantizer {
 public:
  RqQuantizer(size_t m, size_t beam) : m_(m), beam_(beam) {}

  const CodecDescriptor& descriptor() const override { return kRqCodec; }
  // Arguments spelled when they differ from the defaults (m=8, beam=8).
  std::string spec() const override {
    std::string args;
    if (m_ != 8) args = "m=" + std::to_string(m_);
    if (beam_ != 8) args += std::string(args.empty() ? "" : ",") + "beam=" + std::to_string(beam_);
    return args.empty() ? "rq" : "rq:" + args;
  }
  bool trained() const override { return d_ != 0; }
  size_t dim_in() const override { return d_; }
  size_t code_size() const override { return m_ + 1; }

  void train(const float* x, size_t n, size_t d, const TrainOptions& options) override {
    check_train_dim(d, "rq");
    if (n == 0) throw Error("rq: cannot learn codebooks from 0 training rows");
    const unsigned threads = resolve_threads(options.threads);
    std::vector<float> residual(x, x + n * d), centroids(m_ * kCentroids * d);
    std::vector<uint32_t> labels(n);
    if (options.progress) options.progress->begin("training rq codebooks", m_);
    for (size_t s = 0; s < m_; ++s) {
      float* book = centroids.data() + s * kCentroids * d;
      if (n <= kCentroids) {
        // Too few rows to cluster: the residuals are the centroids; the spare entries repeat
        // the first (encoding prefers the smaller index on ties, so they are never chosen).
        std::copy(residual.begin(), residual.end(), book);
        for (size_t c = n; c < kCentroids; ++c) std::copy_n(residual.data(), d, book + c * d);
      } else {
        KMeansOptions k;
        k.max_iterations = kTrainIterations;
        k.seed = derive_seed(options.seed, s);
        k.threads = threads;
        k.want_assignments = false;
        KMeansResult result = kmeans(residual.data(), n, d, kCentroids, k);
        std::copy(result.centroids.begin(), result.centroids.end(), book);
      }
      assign_nearest(residual.data(), n, d, book, kCentroids, labels.data(), nullptr, threads);
      for (size_t i = 0; i < n; ++i)
        for (size_t t = 0; t < d; ++t) residual[i * d + t] -= book[labels[i] * d + t];
      if (options.progress) options.progress->advance(s + 1);
    }
    if (options.progress) options.progress->end();

    // Each stage was fitted alone, to what the greedy choice of the stages before left. Encode
    // the training rows with the beam, then fit all codebooks at once to those codes by least
    // squares: row i ~ sum over s of centroid (s, code_is).
    std::vector<float> rebuilt(n * d);
    if (n > kCentroids) {
      RqQuantizer draft(m_, beam_);
      draft.set_codebooks(d, centroids);
      std::vector<uint8_t> codes(n * code_size());
      const size_t blocks = (n + kEncodeBlock - 1) / kEncodeBlock;
      parallel_for(blocks, threads, [&](size_t b, unsigned) {
        const size_t begin = b * kEncodeBlock, rows = std::min(kEncodeBlock, n - begin);
        draft.encode(x + begin * d, rows, codes.data() + begin * code_size(), 0);
      });
      SparseRows design;
      design.begin.resize(n + 1);
      design.column.resize(n * m_);
      design.weight.assign(n * m_, 1.0f);
      for (size_t i = 0; i <= n; ++i) design.begin[i] = i * m_;
      for (size_t i = 0; i < n; ++i)
        for (size_t s = 0; s < m_; ++s) design.column[i * m_ + s] = static_cast<uint32_t>(s * kCentroids + codes[i * code_size() + s]);
      SparseFitOptions fit;
      fit.ridge = kRefineRidge;
      fit.max_iterations = kRefineIterations;
      fit.threads = threads;
      fit_sparse_rows(design, x, d, m_ * kCentroids, centroids, fit);
      draft.set_codebooks(d, centroids);
      draft.decode(codes.data(), n, rebuilt.data(), 0);
    } else {
      for (size_t i = 0; i < n * d; ++i) rebuilt[i] = x[i] - residual[i];
    }
    set_codebooks(d, std::move(centroids));

    // The norm scale: the squared norms of the training rows as the codes rebuild them.
    float low = std::numeric_limits<float>::infinity(), high = 0;
    for (size_t i = 0; i < n; ++i) {
      float sq = 0;
      for (size_t t = 0; t < d; ++t) sq += rebuilt[i * d + t] * rebuilt[i * d + t];
      if (sq > 0) low = std::min(low, sq), high = std::max(high, sq);
    }
    if (!(high > 0)) low = high = 1;  // every row rebuilt as zero: any scale will do
    log_low_ = std::log(low);
    log_high_ = std::max(std::log(high), log_low_ + 1e-6f);
  }

  // The dot product of beam b's residual with centroid c of stage s is x . c minus, for each
  // earlier stage s', c_s'[path_b(s')] . c. For the first kTableStages stages it is read from x's
  // products with their centroids (one matrix product per block of rows) and from tables of
  // products between the centroids of every two of them (cross_tables), so that a step costs s
  // additions per centroid instead of d multiplications; later stages, where the s table rows to
  // read cost more than that, form the beams' residuals and multiply them by the codebook.
  void encode(const float* x, size_t n, uint8_t* codes, size_t) const override {
    keep_blas_single_threaded();
    const std::vector<float>& cross = cross_tables();
    const size_t d = d_, width = beam_, table_entries = std::min(m_, kTableStages) * kCentroids;
    const kernels::KernelTable& kernel = kernels::active();
    // Per row of the block, up to `width` beams: path (stage indices) and squared error, best first.
    std::vector<float> products(kEncodeBlock * table_entries), gains(kCentroids);
    std::vector<float> residuals(kEncodeBlock * width * d), dots(kEncodeBlock * width * kCentroids);
    std::vector<uint32_t> chosen(kCentroids);
    std::vector<float> errors(kEncodeBlock * width), next_errors(errors.size()), best_error(width), row(d);
    std::vector<uint8_t> paths(kEncodeBlock * width * m_), next_paths(paths.size());
    std::vector<uint32_t> best_from(width);
    for (size_t begin = 0; begin < n; begin += kEncodeBlock) {
      const size_t rows = std::min(kEncodeBlock, n - begin);
      const float* block = x + begin * d;
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(rows), static_cast<int>(table_entries),
                  static_cast<int>(d), 1.0f, block, static_cast<int>(d), centroids_.data(), static_cast<int>(d), 0.0f,
                  products.data(), static_cast<int>(table_entries));
      for (size_t i = 0; i < rows; ++i) {
        float sq = 0;
        for (size_t t = 0; t < d; ++t) sq += block[i * d + t] * block[i * d + t];
        errors[i * width] = sq;
      }
      size_t beams = 1;  // per row, at this stage
      for (size_t s = 0; s < m_; ++s) {
        const float* book = centroids_.data() + s * kCentroids * d;
        const float* book_sq = centroid_sq_.data() + s * kCentroids;
        const bool from_tables = s < kTableStages;
        if (!from_tables) {  // every beam's residual, then one product with the codebook
          for (size_t i = 0; i < rows; ++i)
            for (size_t b = 0; b < beams; ++b) {
              float* r = residuals.data() + (i * beams + b) * d;
              std::copy_n(block + i * d, d, r);
              const uint8_t* path = paths.data() + (i * width + b) * m_;
              for (size_t earlier = 0; earlier < s; ++earlier) {
                const float* centroid = centroids_.data() + (earlier * kCentroids + path[earlier]) * d;
                for (size_t t = 0; t < d; ++t) r[t] -= centroid[t];
              }
            }
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(rows * beams), static_cast<int>(kCentroids),
                      static_cast<int>(d), 1.0f, residuals.data(), static_cast<int>(d), book, static_cast<int>(d), 0.0f,
                      dots.data(), static_cast<int>(kCentroids));
        }
        const size_t kept = std::min(width, beams * kCentroids);
        for (size_t i = 0; i < rows; ++i) {
          // The `kept` smallest errors |r_b - c|^2 = |r_b|^2 - 2 r_b . c + |c|^2 over beams b and
          // centroids c, in order; on ties the earlier beam, then the smaller centroid.
          std::fill_n(best_error.begin(), kept, std::numeric_limits<float>::infinity());
          for (size_t b = 0; b < beams; ++b) {
            const uint8_t* path = paths.data() + (i * width + b) * m_;
            // gains[c] = r_b . c - |c|^2 / 2 = (|r_b|^2 - error of c) / 2, so that the kernel
            // picks the few centroids that can still enter the beam.
            if (from_tables) {
              const float* xc = products.data() + i * table_entries + s * kCentroids;
              for (size_t c = 0; c < kCentroids; ++c) gains[c] = xc[c] - 0.5f * book_sq[c];
              for (size_t earlier = 0; earlier < s; ++earlier) {
                const float* table = cross.data() + (pair_index(earlier, s) * kCentroids + path[earlier]) * kCentroids;
                for (size_t c = 0; c < kCentroids; ++c) gains[c] -= table[c];
              }
            } else {
              const float* dot = dots.data() + (i * beams + b) * kCentroids;
              for (size_t c = 0; c < kCentroids; ++c) gains[c] = dot[c] - 0.5f * book_sq[c];
            }
            const float base = errors[i * width + b];
            const float worst = best_error[kept - 1];
            const size_t count = std::isinf(worst) ? kCentroids
                                                   : kernel.select_above(gains.data(), kCentroids, 0.5f * (base - worst), chosen.data());
            for (size_t e = 0; e < count; ++e) {
              const size_t c = std::isinf(worst) ? e : chosen[e];
              const float error = base - 2 * gains[c];
              if (!(error < best_error[kept - 1])) continue;
              size_t at = kept - 1;
              while (at > 0 && error < best_error[at - 1]) {
                best_error[at] = best_error[at - 1];
                best_from[at] = best_from[at - 1];
                --at;
              }
              best_error[at] = error;
              best_from[at] = static_cast<uint32_t>(b * kCentroids + c);
            }
          }
          for (size_t e = 0; e < kept; ++e) {
            const size_t b = best_from[e] / kCentroids;
            std::copy_n(paths.data() + (i * width + b) * m_, s, next_paths.data() + (i * width + e) * m_);
            next_paths[(i * width + e) * m_ + s] = static_cast<uint8_t>(best_from[e] % kCentroids);
            next_errors[i * width + e] = best_error[e];
          }
        }
        std::swap(paths, next_paths);
        std::swap(errors, next_errors);
        beams = kept;
      }
      for (size_t i = 0; i < rows; ++i) {
        uint8_t* code = codes + (begin + i) * code_size();  // beam 0 is the best
        std::copy_n(paths.data() + i * width * m_, m_, code);
        decode(code, 1, row.data(), 0);
        float norm = 0;
        for (size_t t = 0; t < d; ++t) norm += row[t] * row[t];
        code[m_] = norm_code(norm);
      }
    }
  }

  void decode(const uint8_t* codes, size_t n, float* x, size_t) const override {
    for (size_t i = 0; i < n; ++i) {
      float* out = x + i * d_;
      std::fill_n(out, d_, 0.0f);
      for (size_t s = 0; s < m_; ++s) {
        const float* centroid = centroids_.data() + (s * kCentroids + codes[i * code_size() + s]) * d_;
        for (size_t t = 0; t < d_; ++t) out[t] += centroid[t];
      }
    }
  }

  std::unique_ptr<CodeScorer> scorer(const float* queries, size_t nq, Metric metric) const override {
    const size_t d = d_, stages = m_;
    std::vector<float> norms(kCentroids);
    for (size_t b = 0; b < kCentroids; ++b) norms[b] = norm_value(static_cast<uint8_t>(b));
    const FillTables fill = [&, d, stages](size_t q, float* tables) {
      const float* query = queries + q * d;
      // Stage tables: q . c (2 q . c for l2, whose score is 2 q.x - |x|^2 - |q|^2).
      cblas_sgemv(CblasRowMajor, CblasNoTrans, static_cast<int>(stages * kCentroids), static_cast<int>(d),
                  metric == Metric::l2 ? 2.0f : 1.0f, centroids_.data(), static_cast<int>(d), query, 1, 0.0f, tables, 1);
      float* norm_table = tables + stages * kCentroids;
      if (metric == Metric::l2) {
        float q_sq = 0;
        for (size_t t = 0; t < d; ++t) q_sq += query[t] * query[t];
        for (size_t b = 0; b < kCentroids; ++b) norm_table[b] = -norms[b] - q_sq;
      } else {
        std::fill_n(norm_table, kCentroids, 0.0f);
      }
    };
    std::vector<float> row_sq;
    if (metric == Metric::cos) {
      row_sq.assign((stages + 1) * kCentroids, 0.0f);
      std::copy(norms.begin(), norms.end(), row_sq.begin() + stages * kCentroids);
    }
    return table_scorer(TableCodes{stages + 1, 8}, nq, metric, fill, std::move(row_sq));
  }

  // Layout (version 1): u32 version, u64 d, u32 m, u32 centroids per stage (256), f32 log of the
  // smallest and of the largest squared norm the norm byte spans, then the m x 256 x d centroids,
  // stage by stage.
  std::vector<uint8_t> serialize() const override {
    ByteWriter w;
    w.put<uint32_t>(1);
    w.put<uint64_t>(d_);
    w.put<uint32_t>(static_cast<uint32_t>(m_));
    w.put<uint32_t>(static_cast<uint32_t>(kCentroids));
    w.put<float>(log_low_);
    w.put<float>(log_high_);
    w.put_array(centroids_);
    return w.take();
  }

  void load(const uint8_t* data, size_t size) override {
    ByteReader r(data, size, "parameters of codec 'rq'");
    const uint64_t d = read_blob_header(r, 1);
    const uint32_t m = r.get<uint32_t>();
    const uint32_t centroids = r.get<uint32_t>();
    if (m != m_) r.fail("m=" + std::to_string(m) + " differs from the spec's m=" + std::to_string(m_));
    if (centroids != kCentroids) r.fail(std::to_string(centroids) + " centroids per stage; this version reads 256");
    const float low = r.get<float>(), high = r.get<float>();
    if (!std::isfinite(low) || !std::isfinite(high) || !(low < high)) r.fail("the norm scale is not an increasing range");
    auto values = r.get_array<float>(checked_mul(checked_mul(d, m, "rq codebook size"), kCentroids, "rq codebook size"));
    r.expect_end();
    for (size_t i = 0; i < values.size(); ++i)
      if (!std::isfinite(values[i])) r.fail("centroid value " + std::to_string(i) + " is not finite");
    log_low_ = low;
    log_high_ = high;
    set_codebooks(d, std::move(values));
  }

 private:
  void set_codebooks(size_t d, std::vector<float> centroids) {
    d_ = d;
    centroids_ = std::move(centroids);
    centroid_sq_.assign(m_ * kCentroids, 0.0f);
    for (size_t c = 0; c < m_ * kCentroids; ++c)
      for (size_t t = 0; t < d; ++t) centroid_sq_[c] += centroids_[c * d + t] * centroids_[c * d + t];
  }

  // Table of stage pair (earlier, later), earlier < later: 256 x 256 products c_earlier[a] . c_later[c].
  static size_t pair_index(size_t earlier, size_t later) { return later * (later - 1) / 2 + earlier; }

  // Built on the first encode and kept: for the stages scored from tables, k (k - 1) / 2 tables
  // of 256 KiB, k = min(m, kTableStages) (11 MiB at most).
  const std::vector<float>& cross_tables() const {
    std::call_once(cross_once_, [this] {
      keep_blas_single_threaded();
      const size_t stages = std::min(m_, kTableStages);
      cross_.assign(stages * (stages - 1) / 2 * kCentroids * kCentroids, 0.0f);
      for (size_t later = 1; later < stages; ++later)
        for (size_t earlier = 0; earlier < later; ++earlier)
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(kCentroids), static_cast<int>(kCentroids),
                      static_cast<int>(d_), 1.0f, centroids_.data() + earlier * kCentroids * d_, static_cast<int>(d_),
                      centroids_.data() + later * kCentroids * d_, static_cast<int>(d_), 0.0f,
                      cross_.data() + pair_index(earlier, later) * kCentroids * kCentroids, static_cast<int>(kCentroids));
    });
    return cross_;
  }

  // The norm byte: the squared norm on a log scale between the training extremes (relative steps
  // of under 2 % for norms that differ 10x; a cosine's divisor moves by half of that).
  uint8_t norm_code(float sq) const {
    if (!(sq > 0)) return 0;
    const float level = (std::log(sq) - log_low_) / (log_high_ - log_low_) * kNormLevels;
    return static_cast<uint8_t>(std::clamp(std::lround(level), 0L, 255L));
  }
  float norm_value(uint8_t code) const { return std::exp(log_low_ + (log_high_ - log_low_) * float(code) / kNormLevels); }

  size_t m_, beam_;
  size_t d_ = 0;
  std::vector<float> centroids_;    // m x 256 x d
  std::vector<float> centroid_sq_;  // m x 256
  float log_low_ = 0, log_high_ = 1;
  mutable std::once_flag cross_once_;
  mutable std::vector<float> cross_;  // derived: cross_tables()
};

std::unique_ptr<Stage> create_rq(const CodecArgs& args) {
  return std::make_unique<RqQuantizer>(static_cast<size_t>(args.integer("m")), static_cast<size_t>(args.integer("beam")));
}

}  // namespace

const CodecDescriptor kRqCodec{
    "rq",
    "residual quantization: m stages of 256 centroids over the whole row, each coding what the stages before "
    "left, chosen by beam search; scored through per-query tables like pq, with the row norm in one more byte",
    StageKind::quantizer,
    kAsymmetricSearch | kPerVectorCodes | kNeedsTraining,
    {
        {"m", ParamType::integer, "8", 1, 32, nullptr, "stages, one byte each (the code adds one byte for the norm)"},
        {"beam", ParamType::integer, "8", 1, 64, nullptr, "partial sums kept per row while encoding (1: greedy)"},
    },
    &create_rq,
    {"rq:m=8"},
    128,  // lookup tables per query ((m + 1) x 256 floats): 128 queries' tables stay in cache
};

}  // namespace vecpack
