// Trainable shared-parameter tables (embeddings.h) and the bucket hash of shared_rows.h.
//
// Every parameter array keeps a dense gradient buffer (allocated on the first backward) and the
// list of rows backward has touched; step() visits only those rows, so a step costs what the
// batch touched, not the size of the table.
#include "vecpack/embeddings.h"

#include <xxhash.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>

#include "shared_rows.h"
#include "vecpack/errors.h"

namespace vecpack {

// ---------------------------------------------------------------- shared_rows.h

uint64_t hash_bucket(uint64_t id, uint32_t j, uint64_t buckets) {
  uint8_t bytes[8];
  for (int b = 0; b < 8; ++b) bytes[b] = static_cast<uint8_t>(id >> (8 * b));
  return XXH64(bytes, sizeof bytes, j) % buckets;
}

uint64_t hash_bucket(std::string_view key, uint32_t j, uint64_t buckets) {
  return XXH64(key.data(), key.size(), j) % buckets;
}

uint64_t hash_bucket(uint64_t id, uint32_t table, uint32_t j, uint64_t buckets) {
  if (table == 0) return hash_bucket(id, j, buckets);
  uint8_t bytes[12];
  for (int b = 0; b < 8; ++b) bytes[b] = static_cast<uint8_t>(id >> (8 * b));
  for (int b = 0; b < 4; ++b) bytes[8 + b] = static_cast<uint8_t>(table >> (8 * b));
  return XXH64(bytes, sizeof bytes, j) % buckets;
}

uint64_t hash_bucket(std::string_view key, uint32_t table, uint32_t j, uint64_t buckets) {
  if (table == 0) return hash_bucket(key, j, buckets);
  std::string bytes(key);
  for (int b = 0; b < 4; ++b) bytes += static_cast<char>(static_cast<uint8_t>(table >> (8 * b)));
  return XXH64(bytes.data(), bytes.size(), j) % buckets;
}

// ---------------------------------------------------------------- names

const char* optimizer_name(Optimizer optimizer) noexcept {
  return optimizer == Optimizer::adagrad ? "adagrad" : "sgd";
}

Optimizer parse_optimizer(std::string_view name) {
  if (name == "sgd") return Optimizer::sgd;
  if (name == "adagrad") return Optimizer::adagrad;
  throw SpecError("optimizer must be 'sgd' or 'adagrad', not '" + std::string(name) + "'");
}

const char* qr_op_name(QROp op) noexcept {
  switch (op) {
    case QROp::mult: return "mult";
    case QROp::add: return "add";
    case QROp::concat: return "concat";
  }
  return "?";
}

QROp parse_qr_op(std::string_view name) {
  if (name == "mult") return QROp::mult;
  if (name == "add") return QROp::add;
  if (name == "concat") return QROp::concat;
  throw SpecError("QREmbedding: op must be 'mult', 'add' or 'concat', not '" + std::string(name) + "'");
}

namespace {

constexpr float kAdagradEpsilon = 1e-10f;
// No parameter array beyond 2^36 floats (256 GiB): a typo, not a table.
constexpr uint64_t kMaxParameterFloats = uint64_t{1} << 36;

// Seeded N(0, 1) draws (splitmix64 + Box-Muller): the same values on every platform and
// standard library, unlike std::normal_distribution.
class Normal {
 public:
  explicit Normal(uint64_t seed) : state_(seed) {}
  double next() {
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    const double radius = std::sqrt(-2.0 * std::log(uniform()));
    const double angle = 2.0 * std::numbers::pi * uniform();
    spare_ = radius * std::sin(angle);
    has_spare_ = true;
    return radius * std::cos(angle);
  }

 private:
  uint64_t bits() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  double uniform() { return (static_cast<double>(bits() >> 11) + 0.5) * 0x1.0p-53; }  // (0, 1)

  uint64_t state_;
  bool has_spare_ = false;
  double spare_ = 0;
};

std::string shape_text(size_t rows, size_t cols) {
  return "(" + std::to_string(rows) + ", " + std::to_string(cols) + ")";
}

// One parameter array with its sparse gradient and optimizer state.
struct Param {
  std::string name;
  size_t rows = 0, cols = 0;
  std::vector<float> value;
  std::vector<float> grad;    // rows x cols once anything has been accumulated
  std::vector<float> accum;   // Adagrad's sums of squares once Adagrad has run
  std::vector<uint8_t> is_touched;
  std::vector<size_t> touched;  // rows with a gradient, in first-touch order

  Param(std::string name_, size_t rows_, size_t cols_) : name(std::move(name_)), rows(rows_), cols(cols_) {
    if (cols && rows > kMaxParameterFloats / cols)
      throw SpecError("parameter '" + name + "' " + shape_text(rows, cols) + " exceeds 2^36 floats");
    value.resize(rows * cols);
  }

  float* row(size_t r) { return value.data() + r * cols; }
  const float* row(size_t r) const { return value.data() + r * cols; }
  float* grad_row(size_t r) {
    if (grad.empty()) {
      grad.assign(value.size(), 0.0f);
      is_touched.assign(rows, 0);
    }
    if (!is_touched[r]) {
      is_touched[r] = 1;
      touched.push_back(r);
    }
    return grad.data() + r * cols;
  }
  void fill_normal(uint64_t seed, double mean, double std) {
    Normal normal(seed);
    for (float& v : value) v = static_cast<float>(mean + std * normal.next());
  }
  void step(float lr, Optimizer optimizer) {
    if (optimizer == Optimizer::adagrad && accum.empty() && !touched.empty()) accum.assign(value.size(), 0.0f);
    for (size_t r : touched) {
      float* p = row(r);
      float* g = grad.data() + r * cols;
      if (optimizer == Optimizer::sgd) {
        for (size_t c = 0; c < cols; ++c) p[c] -= lr * g[c];
      } else {
        float* a = accum.data() + r * cols;
        for (size_t c = 0; c < cols; ++c) {
          a[c] += g[c] * g[c];
          p[c] -= lr * g[c] / (std::sqrt(a[c]) + kAdagradEpsilon);
        }
      }
    }
    zero_grad();
  }
  void zero_grad() {
    for (size_t r : touched) {
      std::fill_n(grad.data() + r * cols, cols, 0.0f);
      is_touched[r] = 0;
    }
    touched.clear();
  }
};

// A seed per parameter array, so that adding an array never changes the others' values.
uint64_t array_seed(uint64_t seed, size_t index) { return seed * 0x9E3779B97F4A7C15ull + 0x632BE59BD9B4E019ull * (index + 1); }

float default_std(const EmbeddingOptions& options, size_t dim) {
  if (options.init_std < 0 || !std::isfinite(options.init_std))
    throw SpecError("init_std must be a finite number >= 0 (0: 1 / sqrt(dim)), not " + std::to_string(options.init_std));
  return options.init_std > 0 ? options.init_std : static_cast<float>(1.0 / std::sqrt(static_cast<double>(dim)));
}

void check_dims(const char* kind, size_t n_ids, size_t dim) {
  if (n_ids == 0) throw SpecError(std::string(kind) + ": n_ids must be at least 1");
  if (n_ids > static_cast<size_t>(std::numeric_limits<int64_t>::max()))
    throw SpecError(std::string(kind) + ": n_ids " + std::to_string(n_ids) + " exceeds the int64 range of ids");
  if (dim == 0 || dim > kMaxDimension)
    throw SpecError(std::string(kind) + ": dim must be 1.." + std::to_string(kMaxDimension) + ", not " + std::to_string(dim));
}

}  // namespace

// ---------------------------------------------------------------- the common part

struct SharedEmbedding::Impl {
  const char* kind = "";
  size_t n = 0, dim = 0;
  uint32_t tables = 1;
  Optimizer optimizer = Optimizer::sgd;
  std::vector<Param> params;  // never resized after construction: views point into it

  virtual ~Impl() = default;
  // out: dim() values; row id of table.
  virtual void forward_row(uint64_t id, uint32_t table, float* out) const = 0;
  virtual void backward_row(uint64_t id, uint32_t table, const float* grad) = 0;

  // Every id (and table id) is checked before any row is touched: a bad batch changes nothing.
  void check_ids(const char* call, const int64_t* ids, const uint32_t* table_ids, size_t n_lookups) const {
    for (size_t i = 0; i < n_lookups; ++i) {
      if (ids[i] < 0 || static_cast<uint64_t>(ids[i]) >= n)
        throw NotFoundError(std::string(kind) + "." + call + ": ids[" + std::to_string(i) + "] = " + std::to_string(ids[i]) +
                            " is out of range [0, " + std::to_string(n) + ")");
      if (table_ids && table_ids[i] >= tables)
        throw NotFoundError(std::string(kind) + "." + call + ": table_ids[" + std::to_string(i) + "] = " +
                            std::to_string(table_ids[i]) + " is out of range [0, " + std::to_string(tables) + ")");
    }
  }
  void forward(const int64_t* ids, const uint32_t* table_ids, size_t n_lookups, float* out) const {
    check_ids("forward", ids, table_ids, n_lookups);
    for (size_t i = 0; i < n_lookups; ++i)
      forward_row(static_cast<uint64_t>(ids[i]), table_ids ? table_ids[i] : 0, out + i * dim);
  }
  void backward(const int64_t* ids, const uint32_t* table_ids, size_t n_lookups, const float* grad, size_t grad_rows,
                size_t grad_cols) {
    if (grad_rows != n_lookups || grad_cols != dim)
      throw Error(std::string(kind) + ".backward: grad has shape " + shape_text(grad_rows, grad_cols) + "; expected " +
                  shape_text(n_lookups, dim) + " (one row of dim values per id)");
    check_ids("backward", ids, table_ids, n_lookups);
    for (size_t i = 0; i < n_lookups; ++i)
      backward_row(static_cast<uint64_t>(ids[i]), table_ids ? table_ids[i] : 0, grad + i * dim);
  }
};

SharedEmbedding::SharedEmbedding(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SharedEmbedding::~SharedEmbedding() = default;
SharedEmbedding::SharedEmbedding(SharedEmbedding&&) noexcept = default;
SharedEmbedding& SharedEmbedding::operator=(SharedEmbedding&&) noexcept = default;

size_t SharedEmbedding::size() const { return impl_->n; }
size_t SharedEmbedding::dim() const { return impl_->dim; }

void SharedEmbedding::forward(const int64_t* ids, size_t n, float* out) const { impl_->forward(ids, nullptr, n, out); }

void SharedEmbedding::backward(const int64_t* ids, size_t n, const float* grad, size_t grad_rows, size_t grad_cols) {
  impl_->backward(ids, nullptr, n, grad, grad_rows, grad_cols);
}

void SharedEmbedding::step(float lr) { step(lr, impl_->optimizer); }

void SharedEmbedding::step(float lr, Optimizer optimizer) {
  if (!std::isfinite(lr)) throw Error(std::string(impl_->kind) + ".step: lr must be finite, not " + std::to_string(lr));
  for (Param& p : impl_->params) p.step(lr, optimizer);
}

void SharedEmbedding::zero_grad() {
  for (Param& p : impl_->params) p.zero_grad();
}

Optimizer SharedEmbedding::optimizer() const { return impl_->optimizer; }
void SharedEmbedding::set_optimizer(Optimizer optimizer) { impl_->optimizer = optimizer; }

uint64_t SharedEmbedding::parameter_count() const {
  uint64_t count = 0;
  for (const Param& p : impl_->params) count += uint64_t{p.rows} * p.cols;
  return count;
}

uint64_t SharedEmbedding::parameter_bytes() const { return parameter_count() * sizeof(float); }

std::vector<ParameterView> SharedEmbedding::parameters() {
  std::vector<ParameterView> views;
  for (Param& p : impl_->params) views.push_back({p.name, p.value.data(), p.rows, p.cols});
  return views;
}

void SharedEmbedding::reconstruct(size_t begin, size_t count, float* out) const {
  const size_t total = impl_->n * impl_->tables;
  if (begin > total || count > total - begin)
    throw NotFoundError(std::string(impl_->kind) + ".reconstruct: rows [" + std::to_string(begin) + ", " +
                        std::to_string(begin + count) + ") exceed the " + std::to_string(total) + " rows");
  for (size_t r = begin; r < begin + count; ++r)
    impl_->forward_row(r % impl_->n, static_cast<uint32_t>(r / impl_->n), out + (r - begin) * impl_->dim);
}

Table SharedEmbedding::to_table() const {
  const size_t total = impl_->n * impl_->tables;
  std::vector<float> rows(total * impl_->dim);
  reconstruct(0, total, rows.data());
  return Table::from_rows(std::move(rows), impl_->dim, {}, Metric::ip);
}

void SharedEmbedding::save(const std::string& path, std::string_view spec) const {
  to_table().compress(spec).save(path);
}

// ---------------------------------------------------------------- HashEmbedding

namespace {

struct HashImpl final : SharedEmbedding::Impl {
  size_t buckets = 0, k = 0;
  bool weighted = true;

  const Param& pool() const { return params[0]; }
  Param& pool() { return params[0]; }
  size_t weight_row(uint64_t id, uint32_t table) const { return static_cast<size_t>(table) * n + id; }

  void forward_row(uint64_t id, uint32_t table, float* out) const override {
    std::fill_n(out, dim, 0.0f);
    const float* w = weighted ? params[1].row(weight_row(id, table)) : nullptr;
    for (size_t j = 0; j < k; ++j) {
      const float* p = pool().row(hash_bucket(id, table, static_cast<uint32_t>(j), buckets));
      const float wj = w ? w[j] : 1.0f;
      for (size_t c = 0; c < dim; ++c) out[c] += wj * p[c];
    }
  }
  void backward_row(uint64_t id, uint32_t table, const float* grad) override {
    float* wg = weighted ? params[1].grad_row(weight_row(id, table)) : nullptr;
    const float* w = weighted ? params[1].row(weight_row(id, table)) : nullptr;
    for (size_t j = 0; j < k; ++j) {
      const size_t b = hash_bucket(id, table, static_cast<uint32_t>(j), buckets);
      const float* p = pool().row(b);
      float* pg = pool().grad_row(b);
      const float wj = w ? w[j] : 1.0f;
      double dot = 0;
      for (size_t c = 0; c < dim; ++c) {
        pg[c] += wj * grad[c];
        dot += double(p[c]) * grad[c];
      }
      if (wg) wg[j] += static_cast<float>(dot);
    }
  }
};

}  // namespace

HashEmbedding::HashEmbedding(size_t n_ids, size_t dim, size_t buckets, size_t k, bool weights, uint64_t seed,
                             uint32_t tables, const EmbeddingOptions& options)
    : SharedEmbedding(std::make_unique<HashImpl>()) {
  check_dims("HashEmbedding", n_ids, dim);
  if (buckets == 0) throw SpecError("HashEmbedding: buckets must be at least 1, not 0");
  if (k == 0 || k > buckets)
    throw SpecError("HashEmbedding: k (hashes per id) must be 1..buckets (" + std::to_string(buckets) + "), not " +
                    std::to_string(k));
  if (k > 0xFFFFFFFFull) throw SpecError("HashEmbedding: k must fit 32 bits (it seeds the hash)");
  if (tables == 0) throw SpecError("HashEmbedding: tables must be at least 1, not 0");
  if (n_ids > std::numeric_limits<size_t>::max() / tables)
    throw SpecError("HashEmbedding: n_ids x tables overflows");
  const float row_std = default_std(options, dim);
  auto& impl = static_cast<HashImpl&>(*impl_);
  impl.kind = "HashEmbedding";
  impl.n = n_ids;
  impl.dim = dim;
  impl.tables = tables;
  impl.optimizer = options.optimizer;
  impl.buckets = buckets;
  impl.k = k;
  impl.weighted = weights;
  impl.params.reserve(2);
  // row = sum of k pool rows with weights 1: each pool element at row_std / sqrt(k).
  impl.params.emplace_back("pool", buckets, dim);
  impl.params.back().fill_normal(array_seed(seed, 0), 0.0, row_std / std::sqrt(static_cast<double>(k)));
  if (weights) {
    impl.params.emplace_back("weights", n_ids * tables, k);
    std::fill(impl.params.back().value.begin(), impl.params.back().value.end(), 1.0f);
  }
}

void HashEmbedding::forward(const int64_t* ids, const uint32_t* table_ids, size_t n, float* out) const {
  impl_->forward(ids, table_ids, n, out);
}

void HashEmbedding::backward(const int64_t* ids, const uint32_t* table_ids, size_t n, const float* grad,
                             size_t grad_rows, size_t grad_cols) {
  impl_->backward(ids, table_ids, n, grad, grad_rows, grad_cols);
}

size_t HashEmbedding::buckets() const { return static_cast<const HashImpl&>(*impl_).buckets; }
size_t HashEmbedding::k() const { return static_cast<const HashImpl&>(*impl_).k; }
bool HashEmbedding::has_weights() const { return static_cast<const HashImpl&>(*impl_).weighted; }
uint32_t HashEmbedding::tables() const { return impl_->tables; }

std::vector<uint64_t> HashEmbedding::buckets_of(int64_t id, uint32_t table) const {
  impl_->check_ids("buckets_of", &id, &table, 1);
  std::vector<uint64_t> out(k());
  for (size_t j = 0; j < out.size(); ++j)
    out[j] = hash_bucket(static_cast<uint64_t>(id), table, static_cast<uint32_t>(j), buckets());
  return out;
}

// ---------------------------------------------------------------- QREmbedding

namespace {

struct QRImpl final : SharedEmbedding::Impl {
  size_t m = 1;
  QROp op = QROp::mult;

  void forward_row(uint64_t id, uint32_t, float* out) const override {
    const float* q = params[0].row(id / m);
    const float* r = params[1].row(id % m);
    switch (op) {
      case QROp::mult:
        for (size_t c = 0; c < dim; ++c) out[c] = q[c] * r[c];
        break;
      case QROp::add:
        for (size_t c = 0; c < dim; ++c) out[c] = q[c] + r[c];
        break;
      case QROp::concat:
        std::copy_n(q, params[0].cols, out);
        std::copy_n(r, params[1].cols, out + params[0].cols);
        break;
    }
  }
  void backward_row(uint64_t id, uint32_t, const float* grad) override {
    const float* q = params[0].row(id / m);
    const float* r = params[1].row(id % m);
    float* qg = params[0].grad_row(id / m);
    float* rg = params[1].grad_row(id % m);
    switch (op) {
      case QROp::mult:
        for (size_t c = 0; c < dim; ++c) {
          qg[c] += grad[c] * r[c];
          rg[c] += grad[c] * q[c];
        }
        break;
      case QROp::add:
        for (size_t c = 0; c < dim; ++c) {
          qg[c] += grad[c];
          rg[c] += grad[c];
        }
        break;
      case QROp::concat:
        for (size_t c = 0; c < params[0].cols; ++c) qg[c] += grad[c];
        for (size_t c = 0; c < params[1].cols; ++c) rg[c] += grad[params[0].cols + c];
        break;
    }
  }
};

}  // namespace

QREmbedding::QREmbedding(size_t n_ids, size_t dim, size_t m, QROp op, uint64_t seed, const EmbeddingOptions& options)
    : SharedEmbedding(std::make_unique<QRImpl>()) {
  check_dims("QREmbedding", n_ids, dim);
  if (m == 0 || m > n_ids)
    throw SpecError("QREmbedding: m (remainder rows) must be 1..n_ids (" + std::to_string(n_ids) + "), not " +
                    std::to_string(m));
  if (op == QROp::concat && dim < 2) throw SpecError("QREmbedding: op=concat needs dim >= 2, not " + std::to_string(dim));
  const double row_std = default_std(options, dim);
  auto& impl = static_cast<QRImpl&>(*impl_);
  impl.kind = "QREmbedding";
  impl.n = n_ids;
  impl.dim = dim;
  impl.optimizer = options.optimizer;
  impl.m = m;
  impl.op = op;
  const size_t q_cols = op == QROp::concat ? (dim + 1) / 2 : dim;
  const size_t r_cols = op == QROp::concat ? dim / 2 : dim;
  // Element scale of each factor so that the combined row comes out at row_std.
  const double factor_std = op == QROp::mult  ? std::sqrt(row_std)
                            : op == QROp::add ? row_std / std::sqrt(2.0)
                                              : row_std;
  impl.params.reserve(2);
  impl.params.emplace_back("quotient", (n_ids + m - 1) / m, q_cols);
  impl.params.back().fill_normal(array_seed(seed, 0), 0.0, factor_std);
  impl.params.emplace_back("remainder", m, r_cols);
  impl.params.back().fill_normal(array_seed(seed, 1), 0.0, factor_std);
}

size_t QREmbedding::m() const { return static_cast<const QRImpl&>(*impl_).m; }
QROp QREmbedding::op() const { return static_cast<const QRImpl&>(*impl_).op; }

// ---------------------------------------------------------------- MixedDimEmbedding

namespace {

struct MixedDimImpl final : SharedEmbedding::Impl {
  std::vector<size_t> block_rows, block_dims, starts;  // starts: first id of each block

  size_t block_of(uint64_t id) const {
    return static_cast<size_t>(std::upper_bound(starts.begin(), starts.end(), id) - starts.begin()) - 1;
  }
  void forward_row(uint64_t id, uint32_t, float* out) const override {
    const size_t b = block_of(id);
    const Param& e = params[2 * b];
    const Param& p = params[2 * b + 1];
    const float* x = e.row(id - starts[b]);
    std::fill_n(out, dim, 0.0f);
    for (size_t l = 0; l < e.cols; ++l) {
      const float* pl = p.row(l);
      for (size_t c = 0; c < dim; ++c) out[c] += x[l] * pl[c];
    }
  }
  void backward_row(uint64_t id, uint32_t, const float* grad) override {
    const size_t b = block_of(id);
    Param& e = params[2 * b];
    Param& p = params[2 * b + 1];
    const float* x = e.row(id - starts[b]);
    float* xg = e.grad_row(id - starts[b]);
    for (size_t l = 0; l < e.cols; ++l) {
      const float* pl = p.row(l);
      float* plg = p.grad_row(l);
      double dot = 0;
      for (size_t c = 0; c < dim; ++c) {
        dot += double(pl[c]) * grad[c];
        plg[c] += x[l] * grad[c];
      }
      xg[l] += static_cast<float>(dot);
    }
  }
};

}  // namespace

MixedDimEmbedding::MixedDimEmbedding(std::vector<size_t> block_rows, std::vector<size_t> block_dims, size_t dim,
                                     size_t n_ids, uint64_t seed, const EmbeddingOptions& options)
    : SharedEmbedding(std::make_unique<MixedDimImpl>()) {
  if (block_rows.empty()) throw SpecError("MixedDimEmbedding: block_rows is empty (one entry per block)");
  if (block_rows.size() != block_dims.size())
    throw SpecError("MixedDimEmbedding: block_rows has " + std::to_string(block_rows.size()) + " blocks, block_dims " +
                    std::to_string(block_dims.size()));
  uint64_t total = 0;
  for (size_t b = 0; b < block_rows.size(); ++b) {
    if (block_rows[b] == 0) throw SpecError("MixedDimEmbedding: block_rows[" + std::to_string(b) + "] is 0; a block needs rows");
    if (block_rows[b] > std::numeric_limits<uint64_t>::max() - total) throw SpecError("MixedDimEmbedding: block_rows overflow");
    total += block_rows[b];
  }
  if (n_ids != 0 && total != n_ids)
    throw SpecError("MixedDimEmbedding: block_rows add up to " + std::to_string(total) + ", not n_ids = " +
                    std::to_string(n_ids));
  check_dims("MixedDimEmbedding", total, dim);
  for (size_t b = 0; b < block_dims.size(); ++b)
    if (block_dims[b] == 0 || block_dims[b] > dim)
      throw SpecError("MixedDimEmbedding: block_dims[" + std::to_string(b) + "] must be 1..dim (" + std::to_string(dim) +
                      "), not " + std::to_string(block_dims[b]));
  const double row_std = default_std(options, dim);
  auto& impl = static_cast<MixedDimImpl&>(*impl_);
  impl.kind = "MixedDimEmbedding";
  impl.n = total;
  impl.dim = dim;
  impl.optimizer = options.optimizer;
  impl.block_rows = std::move(block_rows);
  impl.block_dims = std::move(block_dims);
  impl.params.reserve(2 * impl.block_rows.size());
  size_t start = 0;
  for (size_t b = 0; b < impl.block_rows.size(); ++b) {
    impl.starts.push_back(start);
    start += impl.block_rows[b];
    // row_c = sum over block_dims[b] terms e_l P_lc: E at row_std, P at 1 / sqrt(block_dims[b]).
    impl.params.emplace_back("block" + std::to_string(b), impl.block_rows[b], impl.block_dims[b]);
    impl.params.back().fill_normal(array_seed(seed, 2 * b), 0.0, row_std);
    impl.params.emplace_back("projection" + std::to_string(b), impl.block_dims[b], dim);
    impl.params.back().fill_normal(array_seed(seed, 2 * b + 1), 0.0,
                                   1.0 / std::sqrt(static_cast<double>(impl.block_dims[b])));
  }
}

const std::vector<size_t>& MixedDimEmbedding::block_rows() const {
  return static_cast<const MixedDimImpl&>(*impl_).block_rows;
}
const std::vector<size_t>& MixedDimEmbedding::block_dims() const {
  return static_cast<const MixedDimImpl&>(*impl_).block_dims;
}

}  // namespace vecpack
