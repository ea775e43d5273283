// Quotient-remainder compositional embeddings (Shi et al., 2020), fitted after training. The
// n rows of a table occupy n slots; slot s combines row s / m of a quotient table Q
// (ceil(n / m) rows) and row s % m of a remainder table R (m rows):
//   mult: Q[s / m] * R[s % m] elementwise     add: Q[s / m] + R[s % m]
//   concat: [Q[s / m], R[s % m]], Q holding the first ceil(d / 2) dimensions, R the rest.
// The tables are the whole table: rows store no code (0 bytes), and decode by their position.
// With order=identity row i sits in slot i; then rows that share a quotient are neighbours in
// the file, which in a frequency-sorted vocabulary have nothing else in common. order=learned
// gives each row the slot that suits it: rows are split recursively along their principal
// direction into balanced groups of m similar rows (one quotient each), and within a group
// ordered along the principal direction of what the quotient leaves, so that rows sharing a
// remainder resemble each other too. The slots are then part of the parameters (4 bytes a row).
// Fitting is alternating least squares: with R fixed each Q row has a closed form, and back.
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
  QrQuantizer(size_t m, QrOp op, QrOrder order, size_t iterations, uint64_t seed)
      : requested_m_(m), op_(op), order_(order), iterations_(iterations), seed_(seed) {}

  const CodecDescriptor& descriptor() const override { return kQrCodec; }

  // m once known (given, or chosen in training); op and order when not the defaults.
  std::string spec() const override {
    const size_t m = trained() ? m_ : requested_m_;
    std::string args;
    auto add = [&args](const std::string& a) { args += (args.empty() ? "" : ",") + a; };
    if (m) add("m=" + std::to_string(m));
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
    const size_t m = requested_m_ ? requested_m_ : std::max<size_t>(1, size_t(std::ceil(std::sqrt(double(n)))));
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

  void encode(const float*, size_t, uint8_t*) const override {}
  void decode(const uint8_t* codes, size_t n, float* x) const override { decode_at(codes, n, 0, x); }

  void decode_at(const uint8_t*, size_t n, size_t first_row, float* x) const override {
    if (first_row > n_ || n > n_ - first_row)
      throw NotFoundError("qr: rows " + std::to_string(first_row) + ".." + std::to_string(first_row + n) +
                          " are beyond the " + std::to_string(n_) + " rows its tables were fitted to");
    for (size_t i = 0; i < n; ++i) row(first_row + i, x + i * d_);
  }

  // Layout (version 1): u32 version, u64 d, u64 n, u64 m, u8 op, u8 order, then the quotient
  // table (u64 count + ceil(n / m) x dq floats), the remainder table (u64 count + m x dr
  // floats), dq = dr = d except for concat (ceil(d / 2) and floor(d / 2)), and for
  // order=learned the slot of every row (u64 count + n u32, a permutation of 0..n-1).
  std::vector<uint8_t> serialize() const override {
    ByteWriter w;
    w.put<uint32_t>(1);
    w.put<uint64_t>(d_);
    w.put<uint64_t>(n_);
    w.put<uint64_t>(m_);
    w.put<uint8_t>(static_cast<uint8_t>(op_));
    w.put<uint8_t>(static_cast<uint8_t>(order_));
    w.put_array(quotient_);
    w.put_array(remainder_);
    if (order_ == QrOrder::learned) w.put_array(slot_);
    return w.take();
  }

  void load(const uint8_t* data, size_t size) override {
    ByteReader r(data, size, "parameters of codec 'qr'");
    const uint64_t d = read_blob_header(r, 1);
    const uint64_t n = r.get<uint64_t>(), m = r.get<uint64_t>();
    const uint8_t op = r.get<uint8_t>(), order = r.get<uint8_t>();
    if (n == 0 || n > UINT32_MAX) r.fail("row count " + std::to_string(n) + " is out of range 1..4294967295");
    if (m == 0 || m > n) r.fail("m=" + std::to_string(m) + " is out of range 1.." + std::to_string(n));
    if (requested_m_ && m != requested_m_) r.fail("m=" + std::to_string(m) + " differs from the spec's m=" + std::to_string(requested_m_));
    if (op != static_cast<uint8_t>(op_)) r.fail(std::string("op differs from the spec's op=") + op_name(op_));
    if (order != static_cast<uint8_t>(order_)) r.fail("order differs from the spec's");
    d_ = d;
    n_ = n;
    m_ = m;
    auto quotient = r.get_array<float>(checked_mul(quotients(), quotient_dim(), "qr quotient table"));
    auto remainder = r.get_array<float>(checked_mul(m, remainder_dim(), "qr remainder table"));
    std::vector<uint32_t> slot;
    if (order_ == QrOrder::learned) {
      slot = r.get_array<uint32_t>(n);
      std::vector<bool> seen(n, false);
      for (uint32_t s : slot) {
        if (s >= n || seen[s]) r.fail("the slots are not a permutation of the rows");
        seen[s] = true;
      }
    }
    r.expect_end();
    for (float v : quotient)
      if (!std::isfinite(v)) r.fail("a quotient value is not finite");
    for (float v : remainder)
      if (!std::isfinite(v)) r.fail("a remainder value is not finite");
    quotient_ = std::move(quotient);
    remainder_ = std::move(remainder);
    slot_ = std::move(slot);
  }

 private:
  size_t quotients() const { return (n_ + m_ - 1) / m_; }
  size_t quotient_dim() const { return op_ == QrOp::concat ? (d_ + 1) / 2 : d_; }
  size_t remainder_dim() const { return op_ == QrOp::concat ? d_ / 2 : d_; }
  size_t slot_of(size_t row) const { return slot_.empty() ? row : slot_[row]; }

  void row(size_t i, float* out) const {
    const size_t s = slot_of(i);
    const float* q = quotient_.data() + (s / m_) * quotient_dim();
    const float* r = remainder_.data() + (s % m_) * remainder_dim();
    switch (op_) {
      case QrOp::mult:
        for (size_t t = 0; t < d_; ++t) out[t] = q[t] * r[t];
        break;
      case QrOp::add:
        for (size_t t = 0; t < d_; ++t) out[t] = q[t] + r[t];
        break;
      case QrOp::concat:
        std::copy_n(q, quotient_dim(), out);
        std::copy_n(r, remainder_dim(), out + quotient_dim());
        break;
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

  // Alternating least squares. Per dimension t, with a = quotient and b = remainder of a row:
  // add: Q[a] = mean(x - R[b]), R[b] = mean(x - Q[a]); mult: Q[a]_t = sum x_t R[b]_t / sum
  // R[b]_t^2 and back; concat has each table's closed form (the means) at once.
  void fit(const float* x, Progress* progress) {
    const size_t dq = quotient_dim(), dr = remainder_dim(), nq = quotients();
    quotient_.assign(nq * dq, 0.0f);
    remainder_.assign(m_ * dr, op_ == QrOp::mult ? 1.0f : 0.0f);
    std::vector<double> num_q(nq * dq), den_q(nq * dq), num_r(m_ * dr), den_r(m_ * dr);
    const size_t rounds = op_ == QrOp::concat ? 1 : iterations_;
    for (size_t round = 0; round < rounds; ++round) {
      std::fill(num_q.begin(), num_q.end(), 0.0);
      std::fill(den_q.begin(), den_q.end(), 0.0);
      for (size_t i = 0; i < n_; ++i) {
        const size_t s = slot_of(i), a = s / m_, b = s % m_;
        const float* row = x + i * d_;
        const float* r = remainder_.data() + b * dr;
        for (size_t t = 0; t < dq; ++t) {
          if (op_ == QrOp::mult) {
            num_q[a * dq + t] += double(row[t]) * r[t];
            den_q[a * dq + t] += double(r[t]) * r[t];
          } else {
            num_q[a * dq + t] += op_ == QrOp::add ? row[t] - r[t] : row[t];
            den_q[a * dq + t] += 1;
          }
        }
      }
      for (size_t e = 0; e < nq * dq; ++e) quotient_[e] = den_q[e] > 1e-12 ? static_cast<float>(num_q[e] / den_q[e]) : 0.0f;
      std::fill(num_r.begin(), num_r.end(), 0.0);
      std::fill(den_r.begin(), den_r.end(), 0.0);
      for (size_t i = 0; i < n_; ++i) {
        const size_t s = slot_of(i), a = s / m_, b = s % m_;
        const float* row = x + i * d_;
        const float* q = quotient_.data() + a * dq;
        for (size_t t = 0; t < dr; ++t) {
          if (op_ == QrOp::mult) {
            num_r[b * dr + t] += double(row[t]) * q[t];
            den_r[b * dr + t] += double(q[t]) * q[t];
          } else if (op_ == QrOp::add) {
            num_r[b * dr + t] += row[t] - q[t];
            den_r[b * dr + t] += 1;
          } else {
            num_r[b * dr + t] += row[dq + t];
            den_r[b * dr + t] += 1;
          }
        }
      }
      for (size_t e = 0; e < m_ * dr; ++e) remainder_[e] = den_r[e] > 1e-12 ? static_cast<float>(num_r[e] / den_r[e]) : 0.0f;
      if (progress) progress->advance(round + 2);
    }
  }

  size_t requested_m_;
  QrOp op_;
  QrOrder order_;
  size_t iterations_;
  uint64_t seed_;
  size_t d_ = 0, n_ = 0, m_ = 0;
  std::vector<float> quotient_, remainder_;
  std::vector<uint32_t> slot_;  // learned order: the slot of every row
};

std::unique_ptr<Stage> create_qr(const CodecArgs& args) {
  return std::make_unique<QrQuantizer>(static_cast<size_t>(args.integer("m")), parse_op(args.text("op")),
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
        {"m", ParamType::integer, "0", 0, 4294967295.0, nullptr, "remainder rows, at most the row count (0: sqrt of it)"},
        {"op", ParamType::choice, "mult", 0, 0, "mult|add|concat", "how a quotient and a remainder row combine"},
        {"order", ParamType::choice, "identity", 0, 0, "identity|learned",
         "row i in slot i, or slots learnt so that rows sharing a quotient are alike (4 bytes a row)"},
        {"iterations", ParamType::integer, "10", 1, 1000, nullptr, "alternating least-squares rounds"},
        {"seed", ParamType::integer, "1234", 0, 9007199254740992.0, nullptr, "seed of the learned order"},
    },
    &create_qr,
};

}  // namespace vecpack
