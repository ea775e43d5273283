// Hash embeddings (Svenstrup et al., 2017) fitted after training. Row i of the table is the
// weighted sum of k rows of a shared pool P (`rows` x d) picked by hashing its position, or with
// key=string its key:
//   x_i ~ sum_j w_ij P[h_j(i)],   h_j(i) = xxh64(i as 8 little-endian bytes, seed j) % rows
// (lib/shared_rows.h, the same buckets as the trainable HashEmbedding). Several feature tables
// can share one pool (feature multiplexing): given a table id t per row (RowContext::tables),
// h_j(i, t) hashes the id with the table, so equal ids of different tables meet different
// buckets; the ids are stored as runs of rows (12 bytes a run). With weights=on each
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

// A run of rows of one feature table: rows from first_row on, up to the next run's.
struct TableRun {
  uint64_t first_row;
  uint32_t table;
};

class HashQuantizer final : public Quantizer {
 public:
  HashQuantizer(size_t rows, size_t k, bool weights, size_t iterations, bool by_key)
      : rows_(rows), k_(k), weights_(weights), iterations_(iterations), by_key_(by_key) {}

  const CodecDescriptor& descriptor() const override { return kHashCodec; }

  // Arguments at their defaults are left out, as the binary family does.
  std::string spec() const override {
    std::string args;
    auto add = [&args](const std::string& a) { args += (args.empty() ? "" : ",") + a; };
    if (rows_ != kDefaultRows) add("rows=" + std::to_string(rows_));
    if (k_ != kDefaultK) add("k=" + std::to_string(k_));
    if (!weights_) add("weights=off");
    if (by_key_) add("key=string");
    return args.empty() ? "hash" : "hash:" + args;
  }

  bool trained() const override { return d_ != 0; }
  size_t dim_in() const override { return d_; }
  size_t code_size() const override { return weights_ ? 2 * k_ : 0; }

  uint32_t capabilities() const override { return descriptor().capabilities | (by_key_ ? kNeedsKeys : 0u); }
  void bind_keys(KeyLookup keys) override { keys_ = std::move(keys); }

  // With key=string and no weights or tables, any key has a row: the sum of its buckets.
  bool vector_for_key(std::string_view key, float* out) const override {
    if (!by_key_ || weights_ || !runs_.empty() || !trained()) return false;
    std::fill(out, out + d_, 0.0f);
    for (size_t j = 0; j < k_; ++j) {
      const float* p = pool_.data() + hash_bucket(key, uint32_t(j), rows_) * d_;
      for (size_t t = 0; t < d_; ++t) out[t] += p[t];
    }
    return true;
  }

  void train(const float* x, size_t n, size_t d, const TrainOptions& options) override {
    check_train_dim(d, "hash");
    if (n == 0) throw Error("hash: cannot fit a pool to 0 rows");
    const RowContext* context = options.rows;
    if (by_key_) {
      if (!context || !context->key) throw Error("hash: key=string hashes the rows' keys, and these rows have none");
      keys_ = context->key;
    }
    runs_.clear();
    if (context && context->tables) {
      for (size_t i = 0; i < n; ++i)
        if (i == 0 || context->tables[i] != runs_.back().table) runs_.push_back({i, context->tables[i]});
      if (runs_.size() == 1 && runs_[0].table == 0) runs_.clear();  // all in table 0: nothing to store
    }
    d_ = d;
    n_ = n;
    pool_.assign(rows_ * d, 0.0f);
    std::vector<uint32_t> buckets(n * k_);
    for (size_t i = 0; i < n; ++i) bucket_row(i, buckets.data() + i * k_);
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

  void encode(const float* x, size_t n, uint8_t* codes, size_t first_row) const override {
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

  void decode(const uint8_t* codes, size_t n, float* x, size_t first_row) const override {
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

  // Layout (version 2): u32 version, u64 d, u64 rows, u32 k, u8 weights, then the pool (u64
  // count + rows x d floats), u8 key (0 position, 1 string), u64 table rows (the rows the table
  // ids cover; 0: no table ids), u64 runs + per run u64 first row, u32 table (first rows
  // ascending from 0). Version 1 ends after the pool. Codes with weights: k f16 (little-endian)
  // per row.
  std::vector<uint8_t> serialize() const override {
    ByteWriter w;
    w.put<uint32_t>(2);
    w.put<uint64_t>(d_);
    w.put<uint64_t>(rows_);
    w.put<uint32_t>(static_cast<uint32_t>(k_));
    w.put<uint8_t>(weights_ ? 1 : 0);
    w.put_array(pool_);
    w.put<uint8_t>(by_key_ ? 1 : 0);
    w.put<uint64_t>(runs_.empty() ? 0 : n_);
    w.put<uint64_t>(runs_.size());
    for (const TableRun& run : runs_) {
      w.put<uint64_t>(run.first_row);
      w.put<uint32_t>(run.table);
    }
    return w.take();
  }

  void load(const uint8_t* data, size_t size) override {
    ByteReader r(data, size, "parameters of codec 'hash'");
    uint32_t version = 0;
    const uint64_t d = read_blob_header(r, 2, &version);
    const uint64_t rows = r.get<uint64_t>();
    const uint32_t k = r.get<uint32_t>();
    const uint8_t weights = r.get<uint8_t>();
    if (rows != rows_) r.fail("rows=" + std::to_string(rows) + " differs from the spec's rows=" + std::to_string(rows_));
    if (k != k_) r.fail("k=" + std::to_string(k) + " differs from the spec's k=" + std::to_string(k_));
    if ((weights != 0) != weights_) r.fail("weights differ from the spec's");
    auto pool = r.get_array<float>(checked_mul(rows, d, "hash pool"));
    bool by_key = false;
    uint64_t table_rows = 0;
    std::vector<TableRun> runs;
    if (version >= 2) {
      by_key = r.get<uint8_t>() != 0;
      table_rows = r.get<uint64_t>();
      const uint64_t count = r.get<uint64_t>();
      if (count > r.remaining() / 12) r.fail(std::to_string(count) + " table runs overrun the data");
      runs.resize(count);
      for (size_t i = 0; i < count; ++i) {
        runs[i].first_row = r.get<uint64_t>();
        runs[i].table = r.get<uint32_t>();
        if (i == 0 ? runs[i].first_row != 0 : runs[i].first_row <= runs[i - 1].first_row || runs[i].first_row >= table_rows)
          r.fail("table run " + std::to_string(i) + " starts at row " + std::to_string(runs[i].first_row) +
                 " (runs start at row 0, ascending, below the " + std::to_string(table_rows) + " rows)");
      }
      if ((count == 0) != (table_rows == 0)) r.fail("table rows and table runs disagree");
    }
    r.expect_end();
    if (by_key != by_key_) r.fail(std::string("key=") + (by_key ? "string" : "position") + " differs from the spec's");
    for (float v : pool)
      if (!std::isfinite(v)) r.fail("a pool value is not finite");
    d_ = d;
    n_ = table_rows;
    pool_ = std::move(pool);
    runs_ = std::move(runs);
  }

 private:
  uint32_t table_of(size_t row) const {
    if (runs_.empty()) return 0;
    if (row >= n_)
      throw NotFoundError("hash: row " + std::to_string(row) + " is beyond the " + std::to_string(n_) +
                          " rows its table ids cover");
    auto after = std::upper_bound(runs_.begin(), runs_.end(), row,
                                  [](size_t r, const TableRun& run) { return r < run.first_row; });
    return (after - 1)->table;
  }

  void bucket_row(size_t row, uint32_t* buckets) const {
    const uint32_t table = table_of(row);
    if (by_key_) {
      if (!keys_) throw Error("hash: key=string rows decode from their keys; use the codec through its table");
      const std::string_view key = keys_(row);
      for (size_t j = 0; j < k_; ++j) buckets[j] = static_cast<uint32_t>(hash_bucket(key, table, uint32_t(j), rows_));
      return;
    }
    for (size_t j = 0; j < k_; ++j) buckets[j] = static_cast<uint32_t>(hash_bucket(row, table, uint32_t(j), rows_));
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
  bool by_key_;
  size_t d_ = 0;
  size_t n_ = 0;                // rows the table ids cover (0: no table ids)
  std::vector<float> pool_;     // rows_ x d_
  std::vector<TableRun> runs_;  // empty: every row in table 0
  KeyLookup keys_;              // key=string: the table's keys
};

std::unique_ptr<Stage> create_hash(const CodecArgs& args) {
  const size_t rows = static_cast<size_t>(args.integer("rows")), k = static_cast<size_t>(args.integer("k"));
  if (k > rows)
    throw SpecError("hash: k=" + std::to_string(k) + " is larger than rows=" + std::to_string(rows) +
                    " (each table row picks k distinct-hash pool rows out of `rows`)");
  return std::make_unique<HashQuantizer>(rows, k, args.flag("weights"), static_cast<size_t>(args.integer("iterations")),
                                         args.text("key") == "string");
}

}  // namespace

const CodecDescriptor kHashCodec{
    "hash",
    "hash embeddings fitted to the table: each row is a weighted sum of k rows of a shared pool picked by "
    "hashing its position or key (and feature table); k f16 weights per row (weights=off: none, the hashing trick)",
    StageKind::quantizer,
    kSharedParameters | kNeedsTraining | kRowTables,
    {
        {"rows", ParamType::integer, "4096", 1, 4294967295.0, nullptr, "rows of the shared pool"},
        {"k", ParamType::integer, "2", 1, double(kMaxK), nullptr, "pool rows summed per table row"},
        {"weights", ParamType::flag, "on", 0, 0, nullptr, "store k importance weights per row (f16)"},
        {"iterations", ParamType::integer, "4", 1, 100, nullptr, "alternating least-squares rounds (weights=on)"},
        {"key", ParamType::choice, "position", 0, 0, "position|string",
         "what picks a row's pool rows: its position, or its key (the table's string keys)"},
    },
    &create_hash,
};

}  // namespace vecpack
