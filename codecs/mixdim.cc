// Mixed-dimension embeddings (Ginart et al., "Mixed dimension embeddings with application to
// memory-efficient recommendation systems", 2021) fitted after training. Rows are ranked by
// frequency (rank 0 the most frequent): by their counts when the table has them (the FREQ
// section; fastText models carry word counts), ties in table order; otherwise by the table order
// when the source format lists rows by frequency (word2vec, GloVe, fastText) or order=file says
// so. Without either, training fails rather than guess. When the counts rank rows in another
// order than the table's, the rank of every row is stored (4 bytes a row, within the budget).
// Below, "row i" is the row of rank i. The frequency weight of rank i is its count relative to
// the largest, or without counts the Zipf popularity 1 / (i + 1).
// The n rows are split into B consecutive blocks whose sizes double: block b covers rows
// [s_b, s_{b+1}), s_b = round(n (2^b - 1) / (2^B - 1)), each boundary then moved so that every
// block holds at least one row. Block 0 holds about n / 2^B rows, the last about half of them.
// Block b keeps its rows in d_b dimensions:
//   row s_b + i = mean_b + E_b[i] P_b
// P_b (d_b x d) holds the top d_b principal axes of the block's rows, mean_b their mean, E_b
// (rows_b x d_b) the coefficients, stored as f32, f16 or int8 (uint8 codes c with a per-block,
// per-dimension affine low + step c). These are the whole table: rows store no code and decode
// by position.
// The dimensions meet `budget`, the average bytes per row of the whole parameter blob (its exact
// serialized size, headers included, divided by n); d_b is at most min(d, rows_b):
//   alpha > 0: d_b = round(lambda pop_b^alpha), at least 1, lambda the largest that fits;
//     pop_b = mean frequency weight over the block.
//   alpha = 0 (greedy): every block starts at d_b = 1; then, while one fits, the block whose
//     next dimension removes the most frequency-weighted squared error per byte gains it. That
//     error is the block's next PCA eigenvalue x W_b, W_b = sum of the block's frequency weights;
//     the bytes are rows_b x value size + 4 d (+ 8 for int8's low and step). Dimensions that
//     remove nothing (eigenvalue 0) are never bought, so exactly low-rank data may use less.
// Memory while training: per block its covariance (d x d doubles) while being decomposed and its
// top min(d, rows_b) axes as floats.
#include "mixdim.h"

#include <cblas.h>

#include <algorithm>
#include <atomic>
#include <numeric>
#include <cmath>
#include <cstring>
#include <queue>

#include "codec_util.h"
#include "kernels/kernels.h"
#include "parallel.h"
#include "transforms.h"
#include "vecpack/errors.h"

namespace vecpack {
namespace {

enum class Inner : uint8_t { f32 = 0, f16 = 1, int8 = 2 };
enum class Order : uint8_t { automatic, file, counts };

Order parse_order(const std::string& text) {
  if (text == "file") return Order::file;
  if (text == "counts") return Order::counts;
  return Order::automatic;
}
const char* order_name(Order v) { return v == Order::file ? "file" : v == Order::counts ? "counts" : "auto"; }

Inner parse_inner(const std::string& text) {
  if (text == "f32") return Inner::f32;
  if (text == "int8") return Inner::int8;
  return Inner::f16;
}
const char* inner_name(Inner v) { return v == Inner::f32 ? "f32" : v == Inner::int8 ? "int8" : "f16"; }
size_t value_bytes(Inner v) { return v == Inner::f32 ? 4 : v == Inner::f16 ? 2 : 1; }

constexpr size_t kMaxBlocks = 65536;
// A block's covariance is d x d.
constexpr size_t kMaxMatrixDim = 16384;
// Rows per BLAS call and per task.
constexpr size_t kChunkRows = 4096;
constexpr uint64_t kHeaderBytes = 4 + 8 + 8 + 1 + 8 + 8;  // version, d, n, inner, blocks, rank count

std::string str(uint64_t v) { return std::to_string(v); }

// s_0 .. s_B (see the top of the file).
std::vector<size_t> block_starts(size_t n, size_t blocks) {
  std::vector<size_t> start(blocks + 1, 0);
  start[blocks] = n;
  const int big = static_cast<int>(blocks);
  const double tiny = std::ldexp(1.0, -big);  // 2^-B: (2^b - 1) / (2^B - 1) without overflow
  for (size_t b = 1; b < blocks; ++b) {
    const double share = (std::ldexp(1.0, static_cast<int>(b) - big) - tiny) / (1.0 - tiny);
    size_t s = static_cast<size_t>(std::llround(share * double(n)));
    s = std::max(s, start[b - 1] + 1);
    start[b] = std::min(s, n - (blocks - b));
  }
  return start;
}

// Serialized bytes of one block (see serialize()), and of one more dimension of it.
uint64_t block_bytes(size_t d, Inner inner, size_t rows, size_t dims) {
  uint64_t bytes = 8 + 8 + (8 + 4 * uint64_t(d)) + (8 + 4 * uint64_t(dims) * d) + (8 + uint64_t(rows) * dims * value_bytes(inner));
  if (inner == Inner::int8) bytes += 2 * (8 + 4 * uint64_t(dims));
  return bytes;
}
uint64_t dimension_bytes(size_t d, Inner inner, size_t rows) {
  return 4 * uint64_t(d) + uint64_t(rows) * value_bytes(inner) + (inner == Inner::int8 ? 8 : 0);
}
uint64_t blob_bytes(size_t d, Inner inner, const std::vector<size_t>& rows, const std::vector<size_t>& dims) {
  uint64_t total = kHeaderBytes;
  for (size_t b = 0; b < rows.size(); ++b) total += block_bytes(d, inner, rows[b], dims[b]);
  return total;
}

// Greedy: see the top of the file. gain[b][k] is the error removed by dimension k + 1 of block b.
std::vector<size_t> greedy_dims(const std::vector<std::vector<double>>& gain, const std::vector<uint64_t>& cost,
                                const std::vector<size_t>& cap, uint64_t spare) {
  const size_t blocks = gain.size();
  std::vector<size_t> dims(blocks, 1);
  // (error removed per byte, -block): the largest first, the earlier block on ties.
  std::priority_queue<std::pair<double, ptrdiff_t>> next;
  auto offer = [&](size_t b) {
    if (dims[b] < cap[b] && gain[b][dims[b]] > 0) next.emplace(gain[b][dims[b]] / double(cost[b]), -ptrdiff_t(b));
  };
  for (size_t b = 0; b < blocks; ++b) offer(b);
  while (!next.empty()) {
    const size_t b = size_t(-next.top().second);
    next.pop();
    if (cost[b] > spare) continue;  // the spare bytes only shrink: this block is done
    spare -= cost[b];
    ++dims[b];
    offer(b);
  }
  return dims;
}

// Power law: d_b = round(lambda pop_b^alpha) in 1..cap_b, lambda the largest whose table fits.
std::vector<size_t> power_law_dims(const std::vector<double>& popularity, double alpha, const std::vector<size_t>& cap,
                                   size_t d, Inner inner, const std::vector<size_t>& rows, uint64_t limit) {
  const size_t blocks = popularity.size();
  std::vector<double> weight(blocks);
  double hi = 1;
  for (size_t b = 0; b < blocks; ++b) {
    weight[b] = std::pow(popularity[b], alpha);
    if (weight[b] > 0) hi = std::max(hi, 2.0 * double(cap[b]) / weight[b]);
  }
  auto dims_at = [&](double lambda) {
    std::vector<size_t> dims(blocks);
    for (size_t b = 0; b < blocks; ++b) {
      const double target = std::round(lambda * weight[b]);
      dims[b] = target < 1 ? 1 : target > double(cap[b]) ? cap[b] : size_t(target);
    }
    return dims;
  };
  if (blob_bytes(d, inner, rows, dims_at(hi)) <= limit) return dims_at(hi);
  double lo = 0;  // fits: every block at 1 dimension
  for (int iteration = 0; iteration < 200 && hi - lo > 1e-12 * hi; ++iteration) {
    const double mid = 0.5 * (lo + hi);
    (blob_bytes(d, inner, rows, dims_at(mid)) <= limit ? lo : hi) = mid;
  }
  return dims_at(lo);
}

bool f16_is_finite(uint16_t h) { return (h & 0x7c00u) != 0x7c00u; }

struct Block {
  size_t begin = 0, rows = 0, dims = 0;
  std::vector<float> mean;             // d
  std::vector<float> projection;       // dims x d: P_b, row k the k-th principal axis
  std::vector<float> low, step;        // int8: dims each
  std::vector<uint8_t> coefficients;   // rows x dims values of the inner type
};

class MixdimQuantizer final : public Quantizer {
 public:
  MixdimQuantizer(uint64_t budget, std::string alpha_text, double alpha, size_t blocks, Inner inner, Order order)
      : budget_(budget), alpha_text_(std::move(alpha_text)), alpha_(alpha), block_count_(blocks), inner_(inner),
        order_(order) {}

  const CodecDescriptor& descriptor() const override { return kMixdimCodec; }

  std::string spec() const override {
    return "mixdim:budget=" + str(budget_) + ",alpha=" + alpha_text_ + ",blocks=" + str(block_count_) +
           ",inner=" + inner_name(inner_) + ",order=" + order_name(order_);
  }

  bool trained() const override { return d_ != 0; }
  size_t dim_in() const override { return d_; }
  size_t code_size() const override { return 0; }

  void train(const float* x, size_t n, size_t d, const TrainOptions& options) override {
    check_train_dim(d, "mixdim");
    if (d > kMaxMatrixDim)
      throw Error("mixdim: dimension " + str(d) + " is too large for a " + str(d) + " x " + str(d) +
                  " covariance (at most " + str(kMaxMatrixDim) + ")");
    if (n == 0) throw Error("mixdim: cannot fit blocks to 0 rows");
    if (block_count_ > n)
      throw Error("mixdim: blocks=" + str(block_count_) + " is larger than the " + str(n) + " rows (blocks must be in 1.." +
                  str(n) + ")");
    const uint64_t* counts = frequency_counts(options.rows);
    // by_rank[i]: the row of rank i, when the counts order rows otherwise than the table.
    std::vector<uint32_t> by_rank;
    std::vector<float> ranked_rows;
    if (counts) {
      if (n > UINT32_MAX) throw Error("mixdim: ranking " + str(n) + " rows by count needs at most 2^32 rows");
      by_rank.resize(n);
      std::iota(by_rank.begin(), by_rank.end(), uint32_t(0));
      std::stable_sort(by_rank.begin(), by_rank.end(), [counts](uint32_t a, uint32_t b) { return counts[a] > counts[b]; });
      if (std::is_sorted(by_rank.begin(), by_rank.end())) {
        by_rank.clear();
      } else {
        ranked_rows.resize(n * d);
        for (size_t i = 0; i < n; ++i) std::copy_n(x + size_t(by_rank[i]) * d, d, ranked_rows.data() + i * d);
        x = ranked_rows.data();
      }
    }
    // Counts relative to the largest, so that alpha's powers of them stay in range.
    const double largest = counts ? std::max(1.0, double(*std::max_element(counts, counts + n))) : 1.0;
    auto frequency_weight = [&](size_t rank) {
      return counts ? double(counts[by_rank.empty() ? rank : by_rank[rank]]) / largest : 1.0 / double(rank + 1);
    };
    const uint64_t rank_bytes = by_rank.empty() ? 0 : 4 * uint64_t(n);
    const size_t blocks = block_count_;
    const std::vector<size_t> start = block_starts(n, blocks);
    std::vector<size_t> rows(blocks), cap(blocks);
    for (size_t b = 0; b < blocks; ++b) {
      rows[b] = start[b + 1] - start[b];
      cap[b] = std::min(d, rows[b]);
    }
    // The ranks are paid for first; the blocks get the rest of the budget.
    const uint64_t total_limit = budget_ > UINT64_MAX / n ? UINT64_MAX : budget_ * n;
    const uint64_t smallest = blob_bytes(d, inner_, rows, std::vector<size_t>(blocks, 1)) + rank_bytes;
    if (smallest > total_limit)
      throw Error("mixdim: budget=" + str(budget_) + " bytes per row is below the smallest table of " + str(n) +
                  " rows of dimension " + str(d) + " in " + str(blocks) + " blocks (every block at 1 dimension" +
                  (rank_bytes ? ", plus 4 bytes a row of ranks" : "") + "): budget must be at least " +
                  str((smallest + n - 1) / n) + ", or use fewer blocks");
    const uint64_t limit = total_limit - rank_bytes;

    keep_blas_single_threaded();
    const unsigned threads = resolve_threads(options.threads);
    // Tasks: one PCA per block (the largest first), then chunks of rows to project.
    std::vector<std::pair<size_t, size_t>> chunks;  // (block, first row within it)
    for (size_t b = 0; b < blocks; ++b)
      for (size_t r = 0; r < rows[b]; r += kChunkRows) chunks.emplace_back(b, r);
    Progress* progress = options.progress;
    std::atomic<size_t> done{0};
    // Worker 0 is the calling thread: it alone reports, and the calling thread again after each phase.
    auto report = [&](unsigned worker) {
      const size_t now = done.fetch_add(1) + 1;
      if (progress && worker == 0) progress->advance(now);
    };
    if (progress) progress->begin("fitting mixdim blocks", blocks + chunks.size());

    std::vector<PrincipalAxes> axes(blocks);
    parallel_for(blocks, threads, [&](size_t task, unsigned worker) {
      const size_t b = blocks - 1 - task;
      axes[b] = principal_axes(x + start[b] * d, rows[b], d, /*centre=*/true, cap[b], "mixdim", start[b]);
      report(worker);
    });
    if (progress) progress->advance(blocks);

    std::vector<double> weight(blocks, 0.0);  // W_b
    for (size_t b = 0; b < blocks; ++b)
      for (size_t i = start[b]; i < start[b + 1]; ++i) weight[b] += frequency_weight(i);
    std::vector<size_t> dims;
    if (alpha_ > 0) {
      std::vector<double> popularity(blocks);
      for (size_t b = 0; b < blocks; ++b) popularity[b] = weight[b] / double(rows[b]);
      dims = power_law_dims(popularity, alpha_, cap, d, inner_, rows, limit);
    } else {
      std::vector<std::vector<double>> gain(blocks);
      std::vector<uint64_t> cost(blocks);
      for (size_t b = 0; b < blocks; ++b) {
        gain[b] = axes[b].values;
        for (double& g : gain[b]) g *= weight[b];
        cost[b] = dimension_bytes(d, inner_, rows[b]);
      }
      dims = greedy_dims(gain, cost, cap, limit - (smallest - rank_bytes));
    }

    std::vector<Block> fitted(blocks);
    std::vector<std::vector<float>> coefficients(blocks);
    for (size_t b = 0; b < blocks; ++b) {
      Block& block = fitted[b];
      block.begin = start[b];
      block.rows = rows[b];
      block.dims = dims[b];
      block.mean.assign(axes[b].mean.begin(), axes[b].mean.end());
      block.projection.assign(axes[b].axes.begin(), axes[b].axes.begin() + static_cast<ptrdiff_t>(dims[b] * d));
      axes[b] = {};
      coefficients[b].resize(rows[b] * dims[b]);
    }
    // E_b = (X_b - mean_b) P_b^T, chunk by chunk.
    parallel_for(chunks.size(), threads, [&](size_t task, unsigned worker) {
      const auto [b, first] = chunks[task];
      const Block& block = fitted[b];
      const size_t count = std::min(kChunkRows, block.rows - first);
      std::vector<float> centred(count * d);
      for (size_t i = 0; i < count; ++i)
        for (size_t j = 0; j < d; ++j) centred[i * d + j] = x[(block.begin + first + i) * d + j] - block.mean[j];
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(count), static_cast<int>(block.dims),
                  static_cast<int>(d), 1.f, centred.data(), static_cast<int>(d), block.projection.data(), static_cast<int>(d),
                  0.f, coefficients[b].data() + first * block.dims, static_cast<int>(block.dims));
      report(worker);
    });
    for (size_t b = 0; b < blocks; ++b) store_coefficients(fitted[b], coefficients[b]);
    if (progress) {
      progress->advance(blocks + chunks.size());
      progress->end();
    }
    d_ = d;
    n_ = n;
    blocks_ = std::move(fitted);
    rank_.clear();
    if (!by_rank.empty()) {
      rank_.resize(n);
      for (size_t i = 0; i < n; ++i) rank_[by_rank[i]] = static_cast<uint32_t>(i);
    }
  }

  void encode(const float*, size_t, uint8_t*, size_t) const override {}

  // Row by row, in the same order whatever the batch: a row decodes to the same bits alone or
  // in a block.
  void decode(const uint8_t*, size_t n, float* x, size_t first_row) const override {
    check_fitted_rows("mixdim", first_row, n, n_);
    if (n == 0) return;
    std::vector<float> coefficients;  // reused by every row
    if (!rank_.empty()) {  // rows ranked by count: each row on its own
      for (size_t i = 0; i < n; ++i) decode_ranks(rank_[first_row + i], 1, x + i * d_, coefficients);
      return;
    }
    decode_ranks(first_row, n, x, coefficients);
  }

  // Layout (version 2): u32 version, u64 d, u64 n, u8 inner (0 f32, 1 f16, 2 int8), u64 blocks,
  // the ranks (u64 count, 0 or n, + that many u32: the frequency rank of each row, a permutation;
  // none when ranks follow the table order; version 1 has no such array), then per block, in
  // rank order: u64 rows, u64 dims, the mean (u64 count + d f32), the
  // projection (u64 count + dims x d f32, row k the k-th axis), for int8 low and step (u64
  // count + dims f32 each), and the coefficients (u64 count + rows x dims values: f32, f16 bit
  // patterns or uint8 codes, row-major). Budgets count every byte of it.
  std::vector<uint8_t> serialize() const override {
    ByteWriter w;
    w.put<uint32_t>(2);
    w.put<uint64_t>(d_);
    w.put<uint64_t>(n_);
    w.put<uint8_t>(static_cast<uint8_t>(inner_));
    w.put<uint64_t>(blocks_.size());
    w.put_array(rank_);
    for (const Block& block : blocks_) {
      w.put<uint64_t>(block.rows);
      w.put<uint64_t>(block.dims);
      w.put_array(block.mean);
      w.put_array(block.projection);
      if (inner_ == Inner::int8) {
        w.put_array(block.low);
        w.put_array(block.step);
      }
      w.put<uint64_t>(block.rows * block.dims);
      w.put_bytes(block.coefficients.data(), block.coefficients.size());
    }
    return w.take();
  }

  void load(const uint8_t* data, size_t size) override {
    ByteReader r(data, size, "parameters of codec 'mixdim'");
    uint32_t version = 0;
    const uint64_t d = read_blob_header(r, 2, &version);
    const uint64_t n = r.get<uint64_t>();
    const uint8_t inner = r.get<uint8_t>();
    const uint64_t count = r.get<uint64_t>();
    std::vector<uint32_t> rank;
    if (version >= 2) {
      const uint64_t ranks = r.get<uint64_t>();
      if (ranks != 0 && ranks != n) r.fail("rank count " + str(ranks) + " is neither 0 nor the " + str(n) + " rows");
      if (ranks > r.remaining() / 4) r.fail("ranks of " + str(ranks) + " rows overrun the data");
      rank.resize(ranks);
      for (uint32_t& v : rank) v = r.get<uint32_t>();
      check_permutation(r, rank, "ranks");
    }
    if (n == 0) r.fail("row count 0 is out of range (at least 1)");
    if (inner != static_cast<uint8_t>(inner_)) r.fail(std::string("inner differs from the spec's inner=") + inner_name(inner_));
    if (count != block_count_) r.fail("blocks=" + str(count) + " differs from the spec's blocks=" + str(block_count_));
    if (count > n) r.fail("blocks=" + str(count) + " is larger than the " + str(n) + " rows");
    std::vector<Block> blocks(count);
    uint64_t begin = 0;
    for (Block& block : blocks) {
      const uint64_t rows = r.get<uint64_t>(), dims = r.get<uint64_t>();
      if (rows == 0 || rows > n - begin) r.fail("a block of " + str(rows) + " rows does not fit in the " + str(n - begin) + " rows left");
      if (dims == 0 || dims > d) r.fail("block dimension " + str(dims) + " is out of range 1.." + str(d));
      block.begin = begin;
      block.rows = rows;
      block.dims = dims;
      begin += rows;
      block.mean = r.get_array<float>(d);
      block.projection = r.get_array<float>(checked_mul(dims, d, "mixdim projection"));
      if (inner_ == Inner::int8) {
        block.low = r.get_array<float>(dims);
        block.step = r.get_array<float>(dims);
      }
      const uint64_t values = checked_mul(rows, dims, "mixdim coefficients");
      if (r.get<uint64_t>() != values) r.fail("coefficient count differs from " + str(rows) + " x " + str(dims));
      const uint64_t bytes = checked_mul(values, value_bytes(inner_), "mixdim coefficients");
      if (bytes > r.remaining()) r.fail("coefficients of " + str(bytes) + " bytes overrun the data");
      const uint8_t* p = r.take(bytes);
      block.coefficients.assign(p, p + bytes);
      check_finite(r, block);
    }
    if (begin != n) r.fail("the blocks hold " + str(begin) + " rows, not " + str(n));
    r.expect_end();
    d_ = d;
    n_ = n;
    blocks_ = std::move(blocks);
    rank_ = std::move(rank);
  }

 private:
  // Rows of ranks first_row.. first_row + n - 1 (see the top of the file).
  void decode_ranks(size_t first_row, size_t n, float* x, std::vector<float>& coefficients) const {
    size_t b = size_t(std::upper_bound(blocks_.begin(), blocks_.end(), first_row,
                                       [](size_t row, const Block& block) { return row < block.begin; }) -
                      blocks_.begin()) - 1;
    for (size_t i = 0; i < n;) {
      const Block& block = blocks_[b];
      const size_t row = first_row + i;
      if (row >= block.begin + block.rows) {
        ++b;
        continue;
      }
      const size_t count = std::min({kChunkRows, n - i, block.begin + block.rows - row}), k = block.dims;
      coefficients.resize(count * k);
      read_coefficients(block, row - block.begin, count, coefficients.data());
      for (size_t r = 0; r < count; ++r) {
        float* out = x + (i + r) * d_;
        std::copy_n(block.mean.data(), d_, out);
        for (size_t c = 0; c < k; ++c) {
          const float e = coefficients[r * k + c];
          const float* axis = block.projection.data() + c * d_;
          for (size_t t = 0; t < d_; ++t) out[t] += e * axis[t];
        }
      }
      i += count;
    }
  }

  // The counts that rank the rows, or null when the table order is the frequency order; throws
  // when neither is known (see the top of the file).
  const uint64_t* frequency_counts(const RowContext* context) const {
    if (order_ == Order::file) return nullptr;
    if (context && context->counts) return context->counts;
    const std::string source = !context ? "were given as bare vectors, not a table"
                               : context->source_format.empty()
                                   ? "come from an unknown source"
                                   : "come from '" + context->source_format + "', which does not list rows by frequency";
    if (order_ == Order::counts)
      throw Error("mixdim: order=counts needs row counts, and the table has none (attach them: compress --counts FILE, "
                  "Table::with_counts)");
    if (context && context->frequency_ordered) return nullptr;
    throw Error("mixdim: frequencies missing: the rows have no counts (FREQ section) and " + source +
                "; attach counts (compress --counts FILE, Table::with_counts; fastText models carry them) or, if the "
                "rows are in frequency order, say so with order=file");
  }

  // Rounds a block's coefficients to the inner type (int8: the affine map spans each dimension's
  // range in the block).
  void store_coefficients(Block& block, const std::vector<float>& values) const {
    const size_t k = block.dims, count = values.size();
    block.coefficients.resize(count * value_bytes(inner_));
    switch (inner_) {
      case Inner::f32:
        if (count) std::memcpy(block.coefficients.data(), values.data(), count * 4);
        break;
      case Inner::f16:
        for (float v : values)
          if (std::fabs(v) > 65504.f)
            throw Error("mixdim: a coefficient (" + std::to_string(v) + ") is beyond the f16 range; use inner=f32");
        kernels::active().f32_to_f16(values.data(), count, reinterpret_cast<uint16_t*>(block.coefficients.data()));
        break;
      case Inner::int8: {
        block.low.assign(k, 0.f);
        block.step.assign(k, 0.f);
        for (size_t c = 0; c < k; ++c) {
          float lo = values[c], hi = values[c];
          for (size_t i = 0; i < block.rows; ++i) lo = std::min(lo, values[i * k + c]), hi = std::max(hi, values[i * k + c]);
          block.low[c] = lo;
          block.step[c] = (hi - lo) / 255.f;
        }
        for (size_t i = 0; i < block.rows; ++i)
          for (size_t c = 0; c < k; ++c) {
            const float step = block.step[c];
            const float q = step > 0 ? std::round((values[i * k + c] - block.low[c]) / step) : 0.f;
            block.coefficients[i * k + c] = static_cast<uint8_t>(std::clamp(q, 0.f, 255.f));
          }
        break;
      }
    }
  }

  // Coefficients of `count` rows of a block from row `first` of it, as floats (count x dims).
  void read_coefficients(const Block& block, size_t first, size_t count, float* out) const {
    const size_t k = block.dims;
    const uint8_t* p = block.coefficients.data() + first * k * value_bytes(inner_);
    switch (inner_) {
      case Inner::f32: std::memcpy(out, p, count * k * 4); break;
      case Inner::f16: kernels::active().f16_to_f32(reinterpret_cast<const uint16_t*>(p), count * k, out); break;
      case Inner::int8: kernels::active().u8_affine_decode(p, count, k, block.low.data(), block.step.data(), out); break;
    }
  }

  void check_finite(const ByteReader& r, const Block& block) const {
    auto all_finite = [](const std::vector<float>& v) {
      return std::all_of(v.begin(), v.end(), [](float e) { return std::isfinite(e); });
    };
    if (!all_finite(block.mean) || !all_finite(block.projection) || !all_finite(block.low) || !all_finite(block.step))
      r.fail("a mean, projection or scale value of the block at row " + str(block.begin) + " is not finite");
    const size_t values = block.rows * block.dims;
    bool finite = true;
    if (inner_ == Inner::f32) {
      for (size_t i = 0; i < values && finite; ++i) {
        float v;
        std::memcpy(&v, block.coefficients.data() + 4 * i, 4);
        finite = std::isfinite(v);
      }
    } else if (inner_ == Inner::f16) {
      for (size_t i = 0; i < values && finite; ++i)
        finite = f16_is_finite(uint16_t(block.coefficients[2 * i] | block.coefficients[2 * i + 1] << 8));
    }
    if (!finite) r.fail("a coefficient of the block at row " + str(block.begin) + " is not finite");
  }

  uint64_t budget_;
  std::string alpha_text_;
  double alpha_;
  size_t block_count_;
  Inner inner_;
  Order order_;
  size_t d_ = 0, n_ = 0;
  std::vector<Block> blocks_;
  std::vector<uint32_t> rank_;  // frequency rank of each row; empty: the table order
};

std::unique_ptr<Stage> create_mixdim(const CodecArgs& args) {
  const int64_t budget = args.integer("budget");
  if (budget <= 0)
    throw SpecError("mixdim: argument budget is required: the average bytes per row of the whole table, parameters "
                    "included (at least 1), e.g. mixdim:budget=64");
  return std::make_unique<MixdimQuantizer>(static_cast<uint64_t>(budget), args.text("alpha"), args.real("alpha"),
                                           static_cast<size_t>(args.integer("blocks")), parse_inner(args.text("inner")),
                                           parse_order(args.text("order")));
}

}  // namespace

const CodecDescriptor kMixdimCodec{
    "mixdim",
    "mixed-dimension rows fitted to the table (Ginart et al.): rows ranked by frequency (their counts, or the order "
    "of a frequency-sorted source); blocks of ranks, doubling in size, each in its own PCA dimensions, frequent rows "
    "in more; 0 bytes per row, rows decode by position",
    StageKind::quantizer,
    kSharedParameters | kNeedsTraining,
    {
        {"budget", ParamType::integer, "0", 1, 1e12, nullptr,
         "average bytes per row of the whole table: coefficients, projections and means (required)"},
        {"alpha", ParamType::real, "0", 0, 10, nullptr,
         "block dimensions proportional to block popularity^alpha; 0: greedy, by frequency-weighted error per byte"},
        {"blocks", ParamType::integer, "8", 1, double(kMaxBlocks), nullptr,
         "consecutive blocks of rows, each twice the size of the one before (at most the row count)"},
        {"inner", ParamType::choice, "f16", 0, 0, "f32|f16|int8",
         "storage of the coefficients (int8: an affine map per block and dimension)"},
        {"order", ParamType::choice, "auto", 0, 0, "auto|file|counts",
         "frequency ranks: auto (counts if the table has them, else the order of a frequency-sorted source, else an "
         "error), file (the table order, whatever the source), counts (the row counts, required)"},
    },
    &create_mixdim,
};

}  // namespace vecpack
