// Quotient-remainder compositional embeddings (Shi et al., 2020), fitted after training. The
// n rows of a table occupy n slots; slot s combines row s / m of a quotient table Q
// (ceil(n / m) rows) and row s % m of a remainder table R (m rows):
//   mult: Q[s / m] * R[s % m] elementwise     add: Q[s / m] + R[s % m]
//   concat: [Q[s / m], R[s % m]], Q holding the first ceil(d / 2) dimensions, R the rest.
// With parts=P > 2 the partitions are the digits of s in base m (mixed radix): table p < P - 1
// has m rows and is indexed by digit p, (s / m^p) % m; the last has ceil(n / m^(P-1)) rows and
// is indexed by s / m^(P-1); the op combines all P rows (concat: P slices of the dimensions,
// the last table's first). parts=2 is the quotient-remainder pair above (table 0 = R).
// The tables are the whole table: rows store no code (0 bytes), and decode by their position.
// With order=identity row i sits in slot i; then rows that share a quotient are neighbours in
// the file, which in a frequency-sorted vocabulary have nothing else in common. order=learned
// gives each row the slot that suits it: rows are split recursively along their principal
// direction into balanced groups of m similar rows (one quotient each), and within a group
// ordered along the principal direction of what the quotient leaves, so that rows sharing a
// remainder resemble each other too. The slots are then part of the parameters (4 bytes a row).
// Fitting is alternating least squares: with the other tables fixed, each row of a table has a
// closed form.
#include "qr.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "codec_util.h"
#include "vecpack/errors.h"

namespace vecpack {
namespace {

enum class QrOp : uint8_t { mult = 0, add = 1, concat = 2 };
enum class QrOrder : uint8_t { identity = 0, learned = 1 };

QrOp parse_op(const std::string& text) {
  if (text == "mult") return QrOp::mult;
  if (text == "add") return QrOp::add;
  return QrOp::concat;
}
const char* op_name(QrOp op) { return op == QrOp::mult ? "mult" : op == QrOp::add ? "add" : "concat"; }

// The top principal direction of rows (given by index) after subtracting `center`, by power
// iteration from a seeded start.
std::vector<float> principal_direction(const float* x, size_t d, const std::vector<uint32_t>& rows, size_t begin,
                                       size_t end, const std::vector<double>& center, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal;
  std::vector<double> v(d), next(d);
  for (auto& e : v) e = normal(rng);
  for (int iteration = 0; iteration < 6; ++iteration) {
    std::fill(next.begin(), next.end(), 0.0);
    for (size_t p = begin; p < end; ++p) {
      const float* row = x + size_t(rows[p]) * d;
      double dot = 0;
      for (size_t t = 0; t < d; ++t) dot += (row[t] - center[t]) * v[t];
      for (size_t t = 0; t < d; ++t) next[t] += dot * (row[t] - center[t]);
    }
    double norm = 0;
    for (double e : next) norm += e * e;
    norm = std::sqrt(norm);
    if (norm == 0) break;
    for (size_t t = 0; t < d; ++t) v[t] = next[t] / norm;
  }
  return std::vector<float>(v.begin(), v.end());
}

// Orders rows[begin, end) by their projection on the group's principal direction and splits
// them into two parts whose sizes are multiples of m, recursively, until groups of m remain.
void balanced_split(const float* x, size_t d, size_t m, std::vector<uint32_t>& rows, size_t begin, size_t end,
                    uint64_t seed) {
  if (end - begin <= m) return;
  std::vector<double> center(d, 0.0);
  for (size_t p = begin; p < end; ++p)
    for (size_t t = 0; t < d; ++t) center[t] += x[size_t(rows[p]) * d + t];
  for (auto& c : center) c /= double(end - begin);
  const std::vector<float> v = principal_direction(x, d, rows, begin, end, center, seed);
  std::vector<std::pair<float, uint32_t>> keyed(end - begin);
  for (size_t p = begin; p < end; ++p) {
    const float* row = x + size_t(rows[p]) * d;
    double dot = 0;
    for (size_t t = 0; t < d; ++t) dot += row[t] * double(v[t]);
    keyed[p - begin] = {static_cast<float>(dot), rows[p]};
  }
  const size_t groups = (end - begin + m - 1) / m, left = (groups + 1) / 2 * m;
  std::nth_element(keyed.begin(), keyed.begin() + static_cast<std::ptrdiff_t>(left), keyed.end());
  for (size_t p = begin; p < end; ++p) rows[p] = keyed[p - begin].second;
  balanced_split(x, d, m, rows, begin, begin + left, seed * 2 + 1);
  balanced_split(x, d, m, rows, begin + left, end, seed * 2 + 2);
}

class QrQuantizer final : public Quantizer {
 public:
  QrQuantizer(size_t m, size_t parts, QrOp op, QrOrder order, size_t iterations, uint64_t seed)
      : requested_m_(m), parts_(parts), op_(op), order_(order), iterations_(iterations), seed_(seed) {}

  const CodecDescriptor& descriptor() const override { return kQrCodec; }

  // m once known (given, or chosen in training); op and order when not the defaults.
  std::string spec() const override {
    const size_t m = trained() ? m_ : requested_m_;
    std::string args;
    auto add = [&args](const std::string& a) { args += (args.empty() ? "" : ",") + a; };
    if (m) add("m=" + std::to_string(m));
    if (parts_ != 2) add("parts=" + std::to_string(parts_));
    if (op_ != QrOp::mult) add(std::string("op=") + op_name(op_));
    if (order_ == QrOrder::learned) add("order=learned");
    return args.empty() ? "qr" : "qr:" + args;
  }

  bool trained() const override { return d_ != 0; }
  size_t dim_in() const override { return d_; }
  size_t code_size() const override { return 0; }

  void train(const float* x, size_t n, size_t d, const TrainOptions& options) override {
    check_train_dim(d, "qr");
    if (n == 0) throw Error("qr: cannot fit tables to 0 rows");
    if (n > UINT32_MAX) throw Error("qr: at most 4,294,967,295 rows");
    // Default m: the P-th root of n, so that every table has about as many rows.
    const size_t m = requested_m_ ? requested_m_
                                  : std::clamp<size_t>(size_t(std::ceil(std::pow(double(n), 1.0 / double(parts_)))), 1, n);
    if (d < parts_ && op_ == QrOp::concat)
      throw Error("qr: op=concat with parts=" + std::to_string(parts_) + " needs at least " + std::to_string(parts_) +
                  " dimensions (the table has " + std::to_string(d) + ")");
    if (m > n) throw Error("qr: m=" + std::to_string(m) + " is larger than the " + std::to_string(n) + " rows (m must be in 1.." + std::to_string(n) + ")");
    d_ = d;
    n_ = n;
    m_ = m;
    if (options.progress) options.progress->begin("fitting qr tables", iterations_ + 1);
    slot_.clear();
    if (order_ == QrOrder::learned) slot_ = learn_slots(x);
    if (options.progress) options.progress->advance(1);
    fit(x, options.progress);
    if (options.progress) options.progress->end();
  }

  void encode(const float*, size_t, uint8_t*, size_t) const override {}

  void decode(const uint8_t*, size_t n, float* x, size_t first_row) const override {
    check_fitted_rows("qr", first_row, n, n_);
    for (size_t i = 0; i < n; ++i) row(first_row + i, x + i * d_);
  }

  // Layout (version 1): u32 version, u64 d, u64 n, u64 m, u8 op, u8 order, u32 parts, then
  // each table p = 0..parts-1 (u64 count + rows_p x dims_p floats: rows_p = m except the last,
  // ceil(n / m^(parts-1)); dims_p = d, or for concat the p-th slice of the dimensions), and for
  // order=learned the slot of every row (u64 count + n u32, a permutation of 0..n-1).
  std::vector<uint8_t> serialize() const override {
    ByteWriter w;
    w.put<uint32_t>(1);
    w.put<uint64_t>(d_);
    w.put<uint64_t>(n_);
    w.put<uint64_t>(m_);
    w.put<uint8_t>(static_cast<uint8_t>(op_));
    w.put<uint8_t>(static_cast<uint8_t>(order_));
    w.put<uint32_t>(static_cast<uint32_t>(parts_));
    for (const auto& table : tables_) w.put_array(table);
    if (order_ == QrOrder::learned) w.put_array(slot_);
    return w.take();
  }

  void load(const uint8_t* data, size_t size) override {
    ByteReader r(data, size, "parameters of codec 'qr'");
    const uint64_t d = read_blob_header(r, 1);
    const uint64_t n = r.get<uint64_t>(), m = r.get<uint64_t>();
    const uint8_t op = r.get<uint8_t>(), order = r.get<uint8_t>();
    const uint32_t parts = r.get<uint32_t>();
    if (n == 0 || n > UINT32_MAX) r.fail("row count " + std::to_string(n) + " is out of range 1..4294967295");
    if (m == 0 || m > n) r.fail("m=" + std::to_string(m) + " is out of range 1.." + std::to_string(n));
    if (requested_m_ && m != requested_m_) r.fail("m=" + std::to_string(m) + " differs from the spec's m=" + std::to_string(requested_m_));
    if (parts != parts_) r.fail("parts=" + std::to_string(parts) + " differs from the spec's parts=" + std::to_string(parts_));
    if (op != static_cast<uint8_t>(op_)) r.fail(std::string("op differs from the spec's op=") + op_name(op_));
    if (order != static_cast<uint8_t>(order_)) r.fail("order differs from the spec's");
    if (op_ == QrOp::concat && d < parts) r.fail("concat needs at least one dimension per part");
    d_ = d;
    n_ = n;
    m_ = m;
    std::vector<std::vector<float>> tables(parts_);
    for (size_t p = 0; p < parts_; ++p) {
      tables[p] = r.get_array<float>(checked_mul(table_rows(p), table_dims(p), "qr table"));
      for (float v : tables[p])
        if (!std::isfinite(v)) r.fail("a value of table " + std::to_string(p) + " is not finite");
    }
    std::vector<uint32_t> slot;
    if (order_ == QrOrder::learned) {
      slot = r.get_array<uint32_t>(n);
      check_permutation(r, slot, "slots");
    }
    r.expect_end();
    tables_ = std::move(tables);
    slot_ = std::move(slot);
  }

 private:
  // m^p, saturated (digits beyond the rows are all 0).
  size_t radix(size_t p) const {
    size_t r = 1;
    for (size_t i = 0; i < p; ++i) r = r > n_ / m_ ? n_ + 1 : r * m_;
    return r;
  }
  size_t table_rows(size_t p) const { return p + 1 < parts_ ? m_ : (n_ + radix(p) - 1) / radix(p); }
  // concat: the slices go from the last (most significant) table to table 0, the first d % P
  // of them one wider, so that parts=2 is [Q, R] with Q ceil(d / 2) wide.
  size_t table_dims(size_t p) const {
    if (op_ != QrOp::concat) return d_;
    return d_ / parts_ + (parts_ - 1 - p < d_ % parts_ ? 1 : 0);
  }
  size_t table_offset(size_t p) const {  // concat: the first dimension of table p's slice
    size_t offset = 0;
    for (size_t i = p + 1; i < parts_; ++i) offset += table_dims(i);
    return offset;
  }
  size_t digit(size_t s, size_t p) const { return p + 1 < parts_ ? (s / radix(p)) % m_ : s / radix(p); }
  size_t slot_of(size_t row) const { return slot_.empty() ? row : slot_[row]; }

  void row(size_t i, float* out) const {
    const size_t s = slot_of(i);
    if (op_ == QrOp::concat) {
      for (size_t p = 0; p < parts_; ++p)
        std::copy_n(tables_[p].data() + digit(s, p) * table_dims(p), table_dims(p), out + table_offset(p));
      return;
    }
    const float* first = tables_[0].data() + digit(s, 0) * d_;
    std::copy_n(first, d_, out);
    for (size_t p = 1; p < parts_; ++p) {
      const float* t = tables_[p].data() + digit(s, p) * d_;
      if (op_ == QrOp::mult)
        for (size_t e = 0; e < d_; ++e) out[e] *= t[e];
      else
        for (size_t e = 0; e < d_; ++e) out[e] += t[e];
    }
  }

  std::vector<uint32_t> learn_slots(const float* x) const {
    std::vector<uint32_t> rows(n_);
    std::iota(rows.begin(), rows.end(), 0u);
    balanced_split(x, d_, m_, rows, 0, n_, seed_);
    // rows[g * m .. g * m + m) is quotient group g. Within groups, order by the principal
    // direction of the rows minus their group's mean, the same direction for every group.
    std::vector<float> residual(n_ * d_);
    for (size_t g = 0; g * m_ < n_; ++g) {
      const size_t begin = g * m_, end = std::min(n_, begin + m_);
      std::vector<double> mean(d_, 0.0);
      for (size_t p = begin; p < end; ++p)
        for (size_t t = 0; t < d_; ++t) mean[t] += x[size_t(rows[p]) * d_ + t];
      for (auto& v : mean) v /= double(end - begin);
      for (size_t p = begin; p < end; ++p)
        for (size_t t = 0; t < d_; ++t) residual[size_t(rows[p]) * d_ + t] = static_cast<float>(x[size_t(rows[p]) * d_ + t] - mean[t]);
    }
    std::vector<uint32_t> all(n_);
    std::iota(all.begin(), all.end(), 0u);
    const std::vector<float> v = principal_direction(residual.data(), d_, all, 0, n_, std::vector<double>(d_, 0.0), seed_ + 7);
    std::vector<uint32_t> slot(n_);
    for (size_t g = 0; g * m_ < n_; ++g) {
      const size_t begin = g * m_, end = std::min(n_, begin + m_);
      std::vector<std::pair<float, uint32_t>> keyed;
      for (size_t p = begin; p < end; ++p) {
        double dot = 0;
        for (size_t t = 0; t < d_; ++t) dot += residual[size_t(rows[p]) * d_ + t] * double(v[t]);
        keyed.emplace_back(static_cast<float>(dot), rows[p]);
      }
      std::sort(keyed.begin(), keyed.end());
      for (size_t p = 0; p < keyed.size(); ++p) slot[keyed[p].second] = static_cast<uint32_t>(begin + p);
    }
    return slot;
  }

  // Alternating least squares over the tables. For table p, per row and dimension, with the
  // other tables' rows fixed ("rest"): add: T_p[k] = mean over its rows of (x - rest), rest the
  // sum of the others; mult: T_p[k]_e = sum x_e rest_e / sum rest_e^2, rest their product;
  // concat: T_p[k] = the mean of its rows' slice, in one round.
  void fit(const float* x, Progress* progress) {
    tables_.assign(parts_, {});
    for (size_t p = 0; p < parts_; ++p) tables_[p].assign(table_rows(p) * table_dims(p), op_ == QrOp::mult ? 1.0f : 0.0f);
    const size_t rounds = op_ == QrOp::concat ? 1 : iterations_;
    std::vector<double> num, den;
    std::vector<float> rest(d_);
    for (size_t round = 0; round < rounds; ++round) {
      for (size_t p = 0; p < parts_; ++p) {
        const size_t dims = table_dims(p), offset = table_offset(p);
        num.assign(table_rows(p) * dims, 0.0);
        den.assign(table_rows(p) * dims, 0.0);
        for (size_t i = 0; i < n_; ++i) {
          const size_t s = slot_of(i), k = digit(s, p);
          const float* row = x + i * d_;
          if (op_ != QrOp::concat) {
            std::fill(rest.begin(), rest.end(), op_ == QrOp::mult ? 1.0f : 0.0f);
            for (size_t o = 0; o < parts_; ++o) {
              if (o == p) continue;
              const float* t = tables_[o].data() + digit(s, o) * d_;
              for (size_t e = 0; e < d_; ++e) rest[e] = op_ == QrOp::mult ? rest[e] * t[e] : rest[e] + t[e];
            }
          }
          double* nk = num.data() + k * dims;
          double* dk = den.data() + k * dims;
          for (size_t e = 0; e < dims; ++e) {
            if (op_ == QrOp::mult) {
              nk[e] += double(row[e]) * rest[e];
              dk[e] += double(rest[e]) * rest[e];
            } else {
              nk[e] += op_ == QrOp::add ? row[e] - rest[e] : row[offset + e];
              dk[e] += 1;
            }
          }
        }
        for (size_t e = 0; e < num.size(); ++e) tables_[p][e] = den[e] > 1e-12 ? static_cast<float>(num[e] / den[e]) : 0.0f;
      }
      if (progress) progress->advance(round + 2);
    }
  }

  size_t requested_m_, parts_;
  QrOp op_;
  QrOrder order_;
  size_t iterations_;
  uint64_t seed_;
  size_t d_ = 0, n_ = 0, m_ = 0;
  std::vector<std::vector<float>> tables_;  // tables_[p]: table_rows(p) x table_dims(p)
  std::vector<uint32_t> slot_;  // learned order: the slot of every row
};

std::unique_ptr<Stage> create_qr(const CodecArgs& args) {
  return std::make_unique<QrQuantizer>(static_cast<size_t>(args.integer("m")), static_cast<size_t>(args.integer("parts")),
                                       parse_op(args.text("op")),
                                       args.text("order") == "learned" ? QrOrder::learned : QrOrder::identity,
                                       static_cast<size_t>(args.integer("iterations")),
                                       static_cast<uint64_t>(args.integer("seed")));
}

}  // namespace

const CodecDescriptor kQrCodec{
    "qr",
    "quotient-remainder compositional rows fitted to the table: row i combines quotient row i/m and "
    "remainder row i%m (mult, add or concat); 0 bytes per row, rows decode by position",
    StageKind::quantizer,
    kSharedParameters | kNeedsTraining,
    {
        {"m", ParamType::integer, "0", 0, 4294967295.0, nullptr, "rows of each table but the last, at most the row count (0: n^(1/parts))"},
        {"parts", ParamType::integer, "2", 2, 8, nullptr, "partitions: digits of the slot in base m (2: quotient, remainder)"},
        {"op", ParamType::choice, "mult", 0, 0, "mult|add|concat", "how the partitions' rows combine"},
        {"order", ParamType::choice, "identity", 0, 0, "identity|learned",
         "row i in slot i, or slots learnt so that rows sharing a quotient are alike (4 bytes a row)"},
        {"iterations", ParamType::integer, "10", 1, 1000, nullptr, "alternating least-squares rounds"},
        {"seed", ParamType::integer, "1234", 0, 9007199254740992.0, nullptr, "seed of the learned order"},
    },
    &create_qr,
};

}  // namespace vecpack
