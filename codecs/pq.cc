// Product quantization (Jegou, Douze and Schmid, 2011). A row is cut into m contiguous
// sub-vectors; each is replaced by the index of its nearest centroid in a codebook of 2^nbits
// centroids learnt by k-means on the training rows, and the indices are packed at nbits each.
//
// Scoring is asymmetric (ADC): each query is compared with every centroid once, giving a table
// of m x 2^nbits partial scores, and a row's score is the sum of the m entries its codes pick.
// Because the sub-vectors cover disjoint dimensions, the squared norm of a decoded row is a sum
// of per-centroid squared norms too, which gives cosines with one more table per block of rows.
// With sdc=on the query is quantized as well (symmetric, SDC): the tables then hold scores
// between centroids. That is less accurate and only useful to mimic systems that store queries
// as codes. Codebooks too large for per-query tables (m x 2^nbits above 2^16 entries) score by
// decoding blocks of rows and multiplying instead.
#include "pq.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>

#include "codec_util.h"
#include "table_scan.h"
#include "kernels/kernels.h"
#include "parallel.h"
#include "vecpack/errors.h"

namespace vecpack {

size_t pq_default_m(size_t d) { return std::max<size_t>(1, (d + 3) / 4); }

std::vector<size_t> pq_split(size_t d, size_t m) {
  std::vector<size_t> offsets(m + 1, 0);
  const size_t base = d / m, longer = d % m;
  for (size_t j = 0; j < m; ++j) offsets[j + 1] = offsets[j] + base + (j < longer ? 1 : 0);
  return offsets;
}

size_t pq_code_size(size_t m, unsigned nbits) { return (m * nbits + 7) / 8; }

void pq_pack(const uint32_t* labels, size_t label_stride, size_t m, unsigned nbits, uint8_t* code) {
  if (nbits == 8) {
    for (size_t j = 0; j < m; ++j) code[j] = static_cast<uint8_t>(labels[j * label_stride]);
    return;
  }
  uint64_t pending = 0;  // bits not yet written, lowest first
  unsigned bits = 0;
  for (size_t j = 0; j < m; ++j) {
    pending |= static_cast<uint64_t>(labels[j * label_stride]) << bits;
    bits += nbits;
    for (; bits >= 8; bits -= 8, pending >>= 8) *code++ = static_cast<uint8_t>(pending);
  }
  if (bits) *code = static_cast<uint8_t>(pending);
}

void pq_unpack(const uint8_t* code, size_t m, unsigned nbits, uint32_t* labels) {
  if (nbits == 8) {
    for (size_t j = 0; j < m; ++j) labels[j] = code[j];
    return;
  }
  const uint64_t mask = (uint64_t{1} << nbits) - 1;
  uint64_t pending = 0;
  unsigned bits = 0;
  for (size_t j = 0; j < m; ++j) {
    for (; bits < nbits; bits += 8) pending |= static_cast<uint64_t>(*code++) << bits;
    labels[j] = static_cast<uint32_t>(pending & mask);
    pending >>= nbits;
    bits -= nbits;
  }
}

// ------------------------------------------------------------------------------ codebooks

PqCodebooks::PqCodebooks(size_t d, size_t m, unsigned nbits, std::vector<float> centroids)
    : d_(d), m_(m), nbits_(nbits), offsets_(pq_split(d, m)), centroids_(std::move(centroids)) {
  tables_.reserve(m);
  for (size_t j = 0; j < m; ++j) tables_.emplace_back(this->centroids(j), ksub(), sub_dim(j));
  const size_t k = ksub();
  squared_norms_.assign(m * k, 0.0f);
  for (size_t j = 0; j < m; ++j)
    for (size_t c = 0; c < k; ++c)
      for (size_t t = 0; t < sub_dim(j); ++t) {
        const float value = this->centroids(j)[c * sub_dim(j) + t];
        squared_norms_[j * k + c] += value * value;
      }
}

PqCodebooks PqCodebooks::train(const float* x, size_t n, size_t d, size_t m, unsigned nbits,
                               const TrainSettings& settings) {
  const size_t ksub = size_t{1} << nbits;
  const std::vector<size_t> offsets = pq_split(d, m);
  std::vector<float> centroids(d * ksub);
  // Sub-quantizers are independent: spread them over the threads with one k-means each, or, with
  // fewer sub-quantizers than threads, give each k-means all of them. Either way the result is
  // the same, as k-means does not depend on its thread count.
  const unsigned threads = resolve_threads(settings.threads);
  const bool across = m >= threads;
  std::atomic<size_t> done{0};
  if (settings.progress) settings.progress->begin("training pq codebooks", m);
  parallel_for(m, across ? threads : 1, [&](size_t j, unsigned worker) {
    const size_t offset = offsets[j], dsub = offsets[j + 1] - offsets[j];
    float* codebook = centroids.data() + offset * ksub;
    std::vector<float> sub(n * dsub);
    for (size_t i = 0; i < n; ++i) std::copy_n(x + i * d + offset, dsub, sub.data() + i * dsub);
    if (n <= ksub) {
      // Too few rows to cluster: each row is a centroid, and the spare entries repeat the first
      // (encoding breaks ties towards the smaller index, so they are never used).
      std::copy(sub.begin(), sub.end(), codebook);
      for (size_t c = n; c < ksub; ++c) std::copy_n(sub.data(), dsub, codebook + c * dsub);
    } else {
      KMeansOptions options;
      options.max_iterations = settings.kmeans_iterations;
      options.seed = derive_seed(settings.seed, j);
      options.threads = across ? 1 : threads;
      options.want_assignments = false;
      if (settings.warm_start) options.initial_centroids = settings.warm_start->centroids(j);
      KMeansResult result = kmeans(sub.data(), n, dsub, ksub, options);
      std::copy(result.centroids.begin(), result.centroids.end(), codebook);
    }
    const size_t now = ++done;
    if (settings.progress && worker == 0) settings.progress->advance(now);
  });
  if (settings.progress) settings.progress->end();
  return PqCodebooks(d, m, nbits, std::move(centroids));
}

namespace {
constexpr size_t kEncodeChunk = 256;  // rows whose sub-vectors are searched together
}

void PqCodebooks::assign(const float* x, size_t n, uint32_t* labels) const {
  std::vector<uint32_t> chunk(m_ * kEncodeChunk);
  for (size_t begin = 0; begin < n; begin += kEncodeChunk) {
    const size_t rows = std::min(kEncodeChunk, n - begin);
    for (size_t j = 0; j < m_; ++j)
      tables_[j].nearest(x + begin * d_ + offsets_[j], rows, d_, chunk.data() + j * kEncodeChunk, nullptr);
    for (size_t i = 0; i < rows; ++i)
      for (size_t j = 0; j < m_; ++j) labels[(begin + i) * m_ + j] = chunk[j * kEncodeChunk + i];
  }
}

void PqCodebooks::encode(const float* x, size_t n, uint8_t* codes) const {
  const size_t cs = code_size();
  std::vector<uint32_t> chunk(m_ * kEncodeChunk);
  for (size_t begin = 0; begin < n; begin += kEncodeChunk) {
    const size_t rows = std::min(kEncodeChunk, n - begin);
    for (size_t j = 0; j < m_; ++j)
      tables_[j].nearest(x + begin * d_ + offsets_[j], rows, d_, chunk.data() + j * kEncodeChunk, nullptr);
    for (size_t i = 0; i < rows; ++i) pq_pack(chunk.data() + i, kEncodeChunk, m_, nbits_, codes + (begin + i) * cs);
  }
}

namespace {
constexpr int kAnisotropicRounds = 2;  // a third round changed no recall on GloVe-100 (m=25)
}

void PqCodebooks::encode_anisotropic(const float* x, size_t n, float eta, uint8_t* codes) const {
  const size_t k = ksub(), cs = code_size();
  std::vector<uint32_t> labels(m_ * kEncodeChunk);
  std::vector<float> dots(m_ * k), parallel(m_);
  std::vector<float> sub_sq(m_);
  for (size_t begin = 0; begin < n; begin += kEncodeChunk) {
    const size_t rows = std::min(kEncodeChunk, n - begin);
    for (size_t j = 0; j < m_; ++j)
      tables_[j].nearest(x + begin * d_ + offsets_[j], rows, d_, labels.data() + j * kEncodeChunk, nullptr);
    for (size_t i = 0; i < rows; ++i) {
      const float* row = x + (begin + i) * d_;
      // dots[j][c] = x_j . c. A residual r_j = x_j - c has r_j . x = |x_j|^2 - dots[j][c], so the
      // parallel part of the whole residual is a sum over sub-quantizers, and so is |r|^2.
      const kernels::KernelTable& kernel = kernels::active();
      double row_sq = 0;
      for (size_t j = 0; j < m_; ++j) {
        // ksub is a multiple of 16, so the encoding tables' transposed centroids carry no padding.
        kernel.centroid_dots(row + offsets_[j], sub_dim(j), tables_[j].transposed(), k, dots.data() + j * k);
        float sq = 0;
        for (size_t t = offsets_[j]; t < offsets_[j + 1]; ++t) sq += row[t] * row[t];
        sub_sq[j] = sq;
        row_sq += sq;
      }
      if (row_sq > 0) {  // a zero row has no direction: it keeps the nearest centroids
        const float weight = static_cast<float>((eta - 1.0) / row_sq);
        float sum = 0;  // r . x over all sub-quantizers
        for (size_t j = 0; j < m_; ++j) {
          parallel[j] = sub_sq[j] - dots[j * k + labels[j * kEncodeChunk + i]];
          sum += parallel[j];
        }
        for (int round = 0; round < kAnisotropicRounds; ++round) {
          bool changed = false;
          for (size_t j = 0; j < m_; ++j) {
            const float rest = sum - parallel[j];
            const float* dot = dots.data() + j * k;
            const uint32_t best = kernel.anisotropic_argmin(dot, squared_norms_.data() + j * k, k, rest + sub_sq[j], weight);
            uint32_t& label = labels[j * kEncodeChunk + i];
            changed |= best != label;
            label = best;
            parallel[j] = sub_sq[j] - dot[best];
            sum = rest + parallel[j];
          }
          if (!changed) break;
        }
      }
      pq_pack(labels.data() + i, kEncodeChunk, m_, nbits_, codes + (begin + i) * cs);
    }
  }
}

void PqCodebooks::decode_labels(const uint32_t* labels, size_t n, float* x) const {
  for (size_t i = 0; i < n; ++i)
    for (size_t j = 0; j < m_; ++j) {
      const size_t dsub = sub_dim(j);
      std::copy_n(centroids(j) + labels[i * m_ + j] * dsub, dsub, x + i * d_ + offsets_[j]);
    }
}

void PqCodebooks::decode(const uint8_t* codes, size_t n, float* x) const {
  const size_t cs = code_size();
  std::vector<uint32_t> labels(m_);
  for (size_t i = 0; i < n; ++i) {
    pq_unpack(codes + i * cs, m_, nbits_, labels.data());
    decode_labels(labels.data(), 1, x + i * d_);
  }
}

// ------------------------------------------------------------------------------ the codec
namespace {

// Per-query tables beyond this many entries (m x 2^nbits) cost more to build and to keep in
// cache than decoding the rows and multiplying: such codecs score through the GEMM path.
constexpr size_t kMaxTableEntries = size_t{1} << 16;

// One sub-quantizer's table. DSUB > 0 fixes the sub-vector size at compile time, so the short
// inner loop unrolls and the centroids vectorize; 0 reads it from dsub. The sums are taken in
// the same order either way.
template <size_t DSUB>
void fill_sub_table(const float* sub_query, const float* centroids, size_t ksub, size_t dsub, Metric metric, float* table) {
  const size_t n = DSUB ? DSUB : dsub;
  if (metric == Metric::l2) {
    for (size_t c = 0; c < ksub; ++c) {
      const float* centroid = centroids + c * n;
      float value = 0;
      for (size_t t = 0; t < n; ++t) value -= (sub_query[t] - centroid[t]) * (sub_query[t] - centroid[t]);
      table[c] = value;
    }
  } else {
    for (size_t c = 0; c < ksub; ++c) {
      const float* centroid = centroids + c * n;
      float value = 0;
      for (size_t t = 0; t < n; ++t) value += sub_query[t] * centroid[t];
      table[c] = value;
    }
  }
}

// A query's table for sub-quantizer j, entry c: q_j . c (ip, cos) or -|q_j - c|^2 (l2), so a
// row's score is the sum of its entries.
void fill_query_tables(const PqCodebooks& books, const float* query, Metric metric, float* tables) {
  const size_t ksub = books.ksub();
  for (size_t j = 0; j < books.m(); ++j) {
    const size_t dsub = books.sub_dim(j);
    const float* sub_query = query + books.offset(j);
    float* table = tables + j * ksub;
    switch (dsub) {
      case 1: fill_sub_table<1>(sub_query, books.centroids(j), ksub, dsub, metric, table); break;
      case 2: fill_sub_table<2>(sub_query, books.centroids(j), ksub, dsub, metric, table); break;
      case 4: fill_sub_table<4>(sub_query, books.centroids(j), ksub, dsub, metric, table); break;
      default: fill_sub_table<0>(sub_query, books.centroids(j), ksub, dsub, metric, table);
    }
  }
}

class PqQuantizer final : public Quantizer {
 public:
  // loss: the encoding loss (mse, or aniso with threshold t or an explicit eta); texts as given.
  struct Loss {
    bool anisotropic = false;
    std::string t_text = "0.2", eta_text = "0";
  };

  PqQuantizer(size_t m, unsigned nbits, bool symmetric, Loss loss)
      : requested_m_(m), nbits_(nbits), symmetric_(symmetric), loss_(std::move(loss)) {}

  const CodecDescriptor& descriptor() const override { return kPqCodec; }

  // m is spelled once known (given, or chosen in training); sdc only when on, as it changes how
  // queries are scored but not the codes.
  std::string spec() const override {
    const size_t m = trained() ? books_.m() : requested_m_;
    std::string args;
    if (m) args = "m=" + std::to_string(m) + ",nbits=" + std::to_string(nbits_);
    else if (nbits_ != 8) args = "nbits=" + std::to_string(nbits_);
    if (symmetric_) args += std::string(args.empty() ? "" : ",") + "sdc=on";
    if (loss_.anisotropic) {
      args += std::string(args.empty() ? "" : ",") + "loss=aniso";
      if (std::stod(loss_.eta_text) > 0) args += ",eta=" + loss_.eta_text;
      else if (loss_.t_text != "0.2") args += ",t=" + loss_.t_text;
    }
    return args.empty() ? "pq" : "pq:" + args;
  }

  bool trained() const override { return !books_.empty(); }
  size_t requested_m() const { return requested_m_; }
  size_t dim_in() const override { return books_.dim(); }
  size_t code_size() const override { return books_.code_size(); }

  void train(const float* x, size_t n, size_t d, const TrainOptions& options) override {
    check_train_dim(d, "pq");
    const size_t m = requested_m_ ? requested_m_ : pq_default_m(d);
    if (m > d)
      throw Error("pq: m=" + std::to_string(m) + " sub-quantizers exceed the dimension " + std::to_string(d) +
                  " (m must be in 1.." + std::to_string(d) + ")");
    if (n == 0) throw Error("pq: cannot learn codebooks from 0 training rows");
    PqCodebooks::TrainSettings settings;
    settings.seed = options.seed;
    settings.threads = options.threads;
    settings.progress = options.progress;
    books_ = PqCodebooks::train(x, n, d, m, nbits_, settings);
    eta_ = parallel_weight(d);
  }

  void encode(const float* x, size_t n, uint8_t* codes, size_t) const override {
    if (eta_ == 1.0f) return books_.encode(x, n, codes);
    books_.encode_anisotropic(x, n, eta_, codes);
  }
  void decode(const uint8_t* codes, size_t n, float* x, size_t) const override { books_.decode(codes, n, x); }

  std::unique_ptr<CodeScorer> scorer(const float* queries, size_t nq, Metric metric) const override {
    const size_t d = books_.dim();
    std::vector<float> quantized;
    if (symmetric_) {
      // Tables built from the reconstructed query hold exactly the centroid-to-centroid scores.
      quantized.resize(nq * d);
      std::vector<uint8_t> codes(nq * books_.code_size());
      books_.encode(queries, nq, codes.data());
      books_.decode(codes.data(), nq, quantized.data());
      // cos stays a true cosine: the quantized query is brought back to unit length.
      if (metric == Metric::cos)
        for (size_t q = 0; q < nq; ++q) {
          float* v = quantized.data() + q * d;
          double s = 0;
          for (size_t j = 0; j < d; ++j) s += double(v[j]) * v[j];
          const float inverse = s > 0 ? static_cast<float>(1.0 / std::sqrt(s)) : 0.0f;
          for (size_t j = 0; j < d; ++j) v[j] *= inverse;
        }
      queries = quantized.data();
    }
    if (books_.m() * books_.ksub() > kMaxTableEntries) return Quantizer::scorer(queries, nq, metric);
    const FillTables fill = [&](size_t q, float* tables) { fill_query_tables(books_, queries + q * d, metric, tables); };
    std::vector<float> row_sq = metric == Metric::cos ? books_.squared_norms() : std::vector<float>();
    const TableCodes codes{books_.m(), books_.nbits()};
    if (books_.nbits() == 4 && books_.m() <= kFastScanMaxM) return fastscan_scorer(codes, nq, metric, fill, std::move(row_sq));
    return table_scorer(codes, nq, metric, fill, std::move(row_sq));
  }

  std::shared_ptr<const ScanLayout> scan_layout(const uint8_t* codes, size_t n) const override {
    if (books_.nbits() != 4 || symmetric_ || books_.m() > kFastScanMaxM) return nullptr;
    return fastscan_layout({books_.m(), books_.nbits()}, codes, n, books_.squared_norms());
  }

  // Layout (version 1): u32 version, u64 d, u32 m, u32 nbits, then u64 d * 2^nbits and the
  // centroids: for each sub-quantizer in order, 2^nbits centroids of its sub-vector size.
  std::vector<uint8_t> serialize() const override {
    ByteWriter w;
    w.put<uint32_t>(1);
    w.put<uint64_t>(books_.dim());
    w.put<uint32_t>(static_cast<uint32_t>(books_.m()));
    w.put<uint32_t>(books_.nbits());
    w.put_array(books_.all_centroids());
    return w.take();
  }

  void load(const uint8_t* data, size_t size) override {
    ByteReader r(data, size, "parameters of codec 'pq'");
    const uint64_t d = read_blob_header(r, 1);
    const uint32_t m = r.get<uint32_t>();
    const uint32_t nbits = r.get<uint32_t>();
    if (m == 0 || m > d) r.fail("m=" + std::to_string(m) + " is out of range 1.." + std::to_string(d));
    if (requested_m_ && m != requested_m_)
      r.fail("m=" + std::to_string(m) + " differs from the spec's m=" + std::to_string(requested_m_));
    if (nbits != nbits_) r.fail("nbits=" + std::to_string(nbits) + " differs from the spec's nbits=" + std::to_string(nbits_));
    auto centroids = r.get_array<float>(checked_mul(d, uint64_t{1} << nbits, "pq codebook size"));
    r.expect_end();
    for (size_t i = 0; i < centroids.size(); ++i)
      if (!std::isfinite(centroids[i])) r.fail("centroid value " + std::to_string(i) + " is not finite");
    books_ = PqCodebooks(d, m, nbits, std::move(centroids));
    eta_ = parallel_weight(d);
  }

 private:
  // eta, the weight of the residual's part along the row over the weight of the rest: 1 for
  // mse; for aniso, as ScaNN derives it from a threshold t on the cosine of the queries that
  // matter, eta = (d - 1) t^2 / (1 - t^2) (4.1 at d = 100, t = 0.2), unless given.
  float parallel_weight(size_t d) const {
    if (!loss_.anisotropic) return 1.0f;
    if (const double eta = std::stod(loss_.eta_text); eta > 0) return static_cast<float>(eta);
    const double t = std::stod(loss_.t_text);
    return static_cast<float>(double(d - 1) * t * t / (1 - t * t));
  }

  size_t requested_m_;  // 0: chosen from the dimension in training
  unsigned nbits_;
  bool symmetric_;
  Loss loss_;
  float eta_ = 1.0f;
  PqCodebooks books_;
};

}  // namespace

size_t pq_requested_m(const Stage& stage) {
  const auto* pq = dynamic_cast<const PqQuantizer*>(&stage);
  return pq ? pq->requested_m() : 0;
}

namespace {

std::unique_ptr<Stage> create_pq(const CodecArgs& args) {
  PqQuantizer::Loss loss;
  loss.anisotropic = args.text("loss") == "aniso";
  loss.t_text = args.text("t");
  loss.eta_text = args.text("eta");
  if (!loss.anisotropic && (loss.t_text != "0.2" || std::stod(loss.eta_text) != 0))
    throw SpecError("pq: t and eta weigh the anisotropic loss; give them with loss=aniso");
  return std::make_unique<PqQuantizer>(static_cast<size_t>(args.integer("m")), static_cast<unsigned>(args.integer("nbits")),
                                       args.flag("sdc"), std::move(loss));
}

}  // namespace

const CodecDescriptor kPqCodec{
    "pq",
    "product quantization: m sub-vectors, each coded as the nearest of 2^nbits k-means centroids; scored "
    "through per-query tables (with fewer training rows than centroids the rows are the codebook)",
    StageKind::quantizer,
    kAsymmetricSearch | kPerVectorCodes | kNeedsTraining,
    {
        {"m", ParamType::integer, "0", 0, 65536, nullptr, "sub-quantizers, at most the dimension (0: one per 4 dimensions)"},
        {"nbits", ParamType::integer, "8", 4, 16, nullptr, "bits per sub-quantizer code: 2^nbits centroids each"},
        {"sdc", ParamType::flag, "off", 0, 0, nullptr, "quantize queries too (symmetric scoring; less accurate)"},
        {"loss", ParamType::choice, "mse", 0, 0, "mse|aniso",
         "encoding loss: mse, or aniso (score-aware, ScaNN): error along the row weighs eta times the rest; "
         "pays for ip tables (cos tables renormalise decoded rows, which already cancels that error)"},
        {"t", ParamType::real, "0.2", 0, 0.99, nullptr, "aniso: the query cosine that matters; eta = (d-1) t^2 / (1-t^2)"},
        {"eta", ParamType::real, "0", 0, 1000, nullptr, "aniso: the weight ratio itself (0: from t)"},
    },
    &create_pq,
    {"pq", "pq:nbits=4"},
    128,  // lookup tables per query (m x 2^nbits floats): 128 queries' tables stay in cache
};

}  // namespace vecpack
