// Trainable lookup tables whose rows share parameters, for use inside a training loop:
//
//   HashEmbedding      k hashed rows of a shared pool, summed with per-id importance weights
//   QREmbedding        a quotient row and a remainder row, combined by mult, add or concat
//   MixedDimEmbedding  frequency blocks stored in fewer dimensions, each projected to dim
//
// A step of training: forward(ids) gives the rows, the caller computes the gradient of its loss
// with respect to those rows, backward(ids, grad) accumulates the gradients of the parameters
// the ids touch (sparse: only touched rows are kept), step(lr) applies SGD or Adagrad to the
// touched rows and clears the gradients. Parameters are float32 arrays owned by the table and
// visible (writable) through parameters(). save() writes the decoded rows as a .vecpack table.
//
// Ids are int64 in [0, size()); anything else is a NotFoundError naming the position. Bad
// constructor arguments are SpecErrors naming the argument. Not thread-safe: one training loop
// per table.
//
// Extension API (may change between minor versions).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "vecpack/table.h"

namespace vecpack {

// What step() applies to each touched parameter p with accumulated gradient g:
//   sgd:      p -= lr * g
//   adagrad:  a += g * g;  p -= lr * g / (sqrt(a) + 1e-10)   (a per parameter, starting at 0)
enum class Optimizer : uint8_t { sgd = 0, adagrad = 1 };
const char* optimizer_name(Optimizer optimizer) noexcept;
Optimizer parse_optimizer(std::string_view name);  // "sgd" or "adagrad"; SpecError otherwise

// One trainable array of a table: rows x cols float32, row-major, owned by the table. Writes
// through data change the table. Valid as long as the table lives (a move keeps it valid).
struct ParameterView {
  std::string name;
  float* data = nullptr;
  size_t rows = 0, cols = 0;
};

struct EmbeddingOptions {
  Optimizer optimizer = Optimizer::sgd;  // what step(lr) applies
  // Standard deviation of each element of a decoded row at initialisation (each type scales its
  // parameters so that its rows come out at this scale); 0: 1 / sqrt(dim).
  float init_std = 0;
};

// The common interface of the three tables. Move-only.
class SharedEmbedding {
 public:
  virtual ~SharedEmbedding();
  SharedEmbedding(SharedEmbedding&&) noexcept;
  SharedEmbedding& operator=(SharedEmbedding&&) noexcept;

  size_t size() const;  // ids are 0..size()-1
  size_t dim() const;   // of a decoded row

  // The rows of ids[0..n) into out, n x dim() row-major.
  void forward(const int64_t* ids, size_t n, float* out) const;
  // Adds to the parameters' gradients those of sum_i <grad_i, row(ids[i])>: grad is the
  // gradient of the loss with respect to the rows forward() gave, grad_rows x grad_cols
  // row-major, which must be n x dim() (Error otherwise). Repeated ids accumulate.
  void backward(const int64_t* ids, size_t n, const float* grad, size_t grad_rows, size_t grad_cols);
  // Applies the optimizer to every parameter row touched since the last step, then clears the
  // gradients. Optimizer state (Adagrad accumulators) is kept across steps.
  void step(float lr);
  void step(float lr, Optimizer optimizer);
  void zero_grad();  // drops the accumulated gradients without applying them
  Optimizer optimizer() const;
  void set_optimizer(Optimizer optimizer);

  uint64_t parameter_count() const;  // floats in all parameter arrays (optimizer state excluded)
  uint64_t parameter_bytes() const;  // 4 x parameter_count()
  std::vector<ParameterView> parameters();

  // The decoded rows of ids [begin, begin + count) into out (count x dim()). A HashEmbedding of
  // several tables has size() x tables() rows here and in to_table(): row t * size() + id.
  void reconstruct(size_t begin, size_t count, float* out) const;
  // All decoded rows as an uncompressed table (metric ip, as a score is a dot product).
  Table to_table() const;
  // Writes to_table() compressed with spec (e.g. "f16", "int8") to a .vecpack file, atomically.
  void save(const std::string& path, std::string_view spec = "f16") const;

  struct Impl;  // internal

 protected:
  explicit SharedEmbedding(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// The hashing trick with importance weights (hash embeddings): id i of table t uses k rows of a
// pool P of `buckets` rows, row(i) = sum_j w[i][j] P[h_j(i)], h_j as hash_bucket in
// lib/shared_rows.h: xxh64 of the 8 little-endian bytes of i with seed j, modulo buckets.
// weights = false: every w is 1 (the plain hashing trick, no parameters per id).
//
// Feature multiplexing: `tables` id spaces of n_ids ids each share one pool. Lookups name their
// table (0 when not given); for table t > 0 the hashed bytes are the 8 bytes of i followed by
// the 4 little-endian bytes of t, so tables collide only as any two ids do. Weights are per
// (table, id): row t * n_ids + i of the weights array. Parameters: "pool" (buckets x dim) and,
// with weights, "weights" (tables * n_ids x k). Init: pool N(0, init_std / sqrt(k)), weights 1.
class HashEmbedding : public SharedEmbedding {
 public:
  HashEmbedding(size_t n_ids, size_t dim, size_t buckets, size_t k, bool weights = true, uint64_t seed = 1234,
                uint32_t tables = 1, const EmbeddingOptions& options = {});

  using SharedEmbedding::backward;
  using SharedEmbedding::forward;
  // table_ids: one per lookup, each < tables(); null: table 0.
  void forward(const int64_t* ids, const uint32_t* table_ids, size_t n, float* out) const;
  void backward(const int64_t* ids, const uint32_t* table_ids, size_t n, const float* grad, size_t grad_rows,
                size_t grad_cols);

  size_t buckets() const;
  size_t k() const;
  bool has_weights() const;
  uint32_t tables() const;
  // Pool rows of id in table, h_0 .. h_{k-1}.
  std::vector<uint64_t> buckets_of(int64_t id, uint32_t table = 0) const;
};

// How QREmbedding combines a quotient row q and a remainder row r:
//   mult: q * r elementwise (both dim wide)   add: q + r (both dim wide)
//   concat: [q, r] (q has ceil(dim / 2) columns, r floor(dim / 2))
enum class QROp : uint8_t { mult = 0, add = 1, concat = 2 };
const char* qr_op_name(QROp op) noexcept;
QROp parse_qr_op(std::string_view name);  // "mult", "add", "concat"; SpecError otherwise

// Compositional embeddings from complementary partitions: row(i) = op(Q[i / m], R[i % m]) with
// Q ceil(n_ids / m) rows ("quotient") and R m rows ("remainder"); 1 <= m <= n_ids.
// Init: mult N(0, sqrt(init_std)) both; add N(0, init_std / sqrt 2) both; concat N(0, init_std).
class QREmbedding : public SharedEmbedding {
 public:
  QREmbedding(size_t n_ids, size_t dim, size_t m, QROp op = QROp::mult, uint64_t seed = 1234,
              const EmbeddingOptions& options = {});
  size_t m() const;
  QROp op() const;
};

// Mixed-dimension embeddings: ids are frequency ranks (0 the most frequent); block b covers ids
// [start_b, start_b + block_rows[b]) with start_b the sum of the earlier blocks, stores them in
// block_dims[b] (1..dim) dimensions, E_b, and projects with P_b (block_dims[b] x dim):
// row(i) = E_b[i - start_b] P_b. n_ids: 0 takes the sum of block_rows; otherwise the sum must
// equal it. Parameters "block<b>" and "projection<b>". Init: E_b N(0, init_std),
// P_b N(0, 1 / sqrt(block_dims[b])).
class MixedDimEmbedding : public SharedEmbedding {
 public:
  MixedDimEmbedding(std::vector<size_t> block_rows, std::vector<size_t> block_dims, size_t dim, size_t n_ids = 0,
                    uint64_t seed = 1234, const EmbeddingOptions& options = {});
  const std::vector<size_t>& block_rows() const;
  const std::vector<size_t>& block_dims() const;
};

}  // namespace vecpack
