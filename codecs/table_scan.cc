// Lookup-table scans (table_scan.h): float tables for any index width, 4-bit fast scan.
#include "table_scan.h"

#include <emmintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/kernels.h"
#include "pq.h"
#include "vecpack/errors.h"

namespace vecpack {
namespace {

// Queries whose tables are interleaved, so that one row's codes are read once for all of them
// and each lookup is one contiguous run of floats (a vector add, no gather).
constexpr size_t kGroupSizes[] = {16, 8, 4, 1};
// A group's tables, and those of the next group being prefetched, should fit in L2 together.
constexpr size_t kGroupTableBytes = size_t{1} << 19;
constexpr size_t kCacheLine = 64;
// Rows scored into a small buffer before being spread over the output, one query per line.
constexpr size_t kTileRows = 128;

// v[i] = 1 / sqrt(v[i]) where v[i] > 0, else 0: cosine scales from squared norms. SSE2 is part
// of x86-64, and its sqrt and division are correctly rounded like the scalar tail.
void reciprocal_square_roots(float* v, size_t n) {
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    const __m128 x = _mm_loadu_ps(v + i);
    const __m128 r = _mm_div_ps(_mm_set1_ps(1.0f), _mm_sqrt_ps(x));
    _mm_storeu_ps(v + i, _mm_and_ps(r, _mm_cmpgt_ps(x, _mm_setzero_ps())));
  }
  for (; i < n; ++i) v[i] = v[i] > 0 ? 1.0f / std::sqrt(v[i]) : 0.0f;
}

class TableScorer final : public CodeScorer {
 public:
  TableScorer(TableCodes codes, size_t nq, Metric metric, const FillTables& fill, std::vector<float> row_sq)
      : codes_(codes), metric_(metric), centroid_sq_(std::move(row_sq)) {
    const size_t m = codes.m, ksub = codes.ksub();
    const size_t entries = m * ksub;
    size_t largest_group = 1;
    for (size_t g : kGroupSizes)
      if (g * entries * sizeof(float) <= kGroupTableBytes) {
        largest_group = g;
        break;
      }
    if (metric != Metric::cos) centroid_sq_.clear();
    // A single cos query carries the squared-norm table as a second lane of its group, so that
    // each code is read once for both sums.
    norm_lane_ = metric == Metric::cos && nq == 1 && 2 * entries * sizeof(float) <= kGroupTableBytes;
    size_t table_floats = 0;
    if (norm_lane_) {
      groups_.push_back({0, 2, 0, true});
      table_floats = 2 * entries;
    }
    for (size_t q = norm_lane_ ? nq : 0; q < nq;) {
      size_t size = 1;
      for (size_t g : kGroupSizes)
        if (g <= largest_group && g <= nq - q) {
          size = g;
          break;
        }
      groups_.push_back({q, size, table_floats, false});
      table_floats += size * entries;
      q += size;
    }
    // Entries of a 16-query group are one cache line each: keep them on line boundaries.
    storage_.resize(table_floats + kCacheLine / sizeof(float));
    const size_t misalignment = reinterpret_cast<uintptr_t>(storage_.data()) % kCacheLine;
    tables_ = storage_.data() + (misalignment ? (kCacheLine - misalignment) / sizeof(float) : 0);
    std::vector<float> query_tables(entries);
    for (const Group& group : groups_)
      for (size_t g = 0; g < group.size; ++g) {
        float* tables = tables_ + group.table_offset;
        const bool norm = group.norm_lane && g + 1 == group.size;
        if (!norm) fill(group.first_query + g, query_tables.data());
        const float* source = norm ? centroid_sq_.data() : query_tables.data();
        for (size_t e = 0; e < entries; ++e) tables[e * group.size + g] = source[e];
      }
  }

  void score(const CodeBlock& block, float* out, size_t ld) const override {
    const uint8_t* codes = block.codes;
    const size_t count = block.count, m = codes_.m, ksub = codes_.ksub();
    static thread_local std::vector<uint16_t> unpacked;
    static thread_local std::vector<float> row_scale, tile;
    tile.resize(kTileRows * kGroupSizes[0]);
    // With 8-bit codes the code bytes are the indices; otherwise unpack them once for all queries.
    const uint8_t* byte_indices = nullptr;
    const uint16_t* wide_indices = nullptr;
    const size_t stride = m;
    if (codes_.nbits == 8) {
      byte_indices = codes;
    } else {
      unpacked.resize(count * m);
      std::vector<uint32_t> labels(m);
      const size_t cs = codes_.code_size();
      for (size_t i = 0; i < count; ++i) {
        pq_unpack(codes + i * cs, m, codes_.nbits, labels.data());
        for (size_t j = 0; j < m; ++j) unpacked[i * m + j] = static_cast<uint16_t>(labels[j]);
      }
      wide_indices = unpacked.data();
    }
    const auto& kernel_table = kernels::active();
    auto scan = [&](const float* tables, size_t lanes, size_t begin, size_t rows, float* dst, const void* prefetch,
                    size_t prefetch_lines) {
      if (byte_indices)
        kernel_table.pq_scan_u8(byte_indices + begin * stride, stride, rows, m, ksub, tables, lanes, dst, prefetch,
                                prefetch_lines);
      else
        kernel_table.pq_scan_u16(wide_indices + begin * stride, stride, rows, m, ksub, tables, lanes, dst, prefetch,
                                 prefetch_lines);
    };
    // cos: the squared norm of a decoded row is a sum of table entries too (the sub-vectors are
    // disjoint), computed once per block for every query.
    row_scale.resize(std::max(count, kTileRows));
    if (metric_ == Metric::cos && !norm_lane_) {
      scan(centroid_sq_.data(), 1, 0, count, row_scale.data(), nullptr, 0);
      reciprocal_square_roots(row_scale.data(), count);
    }
    // The engine hands over a few hundred rows at a time and every query's tables are needed for
    // each such block, so the tables stream from L3 or memory once per block. Their lookups are
    // random, which hardware prefetchers cannot follow: while one group is scanned, the tables of
    // the next are fetched ahead. Consecutive blocks on a thread also walk the groups in
    // alternate directions: a block then starts with the tables the previous one used last, still
    // in cache, and when all the tables exceed the cache only part of them comes from memory.
    static thread_local bool backwards = false;
    backwards = !backwards;
    const size_t entries = m * ksub, group_count = groups_.size();
    const size_t tiles = (count + kTileRows - 1) / kTileRows;
    for (size_t step = 0; step < group_count; ++step) {
      const Group& group = groups_[backwards ? group_count - 1 - step : step];
      const float* tables = tables_ + group.table_offset;
      const char* prefetch = nullptr;
      size_t prefetch_lines = 0;  // table sizes are whole cache lines (ksub >= 16)
      if (step + 1 < group_count) {
        const Group& next = groups_[backwards ? group_count - 2 - step : step + 1];
        prefetch = reinterpret_cast<const char*>(tables_ + next.table_offset);
        prefetch_lines = next.size * entries * sizeof(float) / kCacheLine;
      }
      for (size_t t = 0; t < tiles; ++t) {
        const size_t begin = t * kTileRows, rows = std::min(kTileRows, count - begin);
        const size_t first_line = prefetch_lines * t / tiles, end_line = prefetch_lines * (t + 1) / tiles;
        scan(tables, group.size, begin, rows, tile.data(), prefetch ? prefetch + first_line * kCacheLine : nullptr,
             end_line - first_line);
        if (group.norm_lane) {  // lane 0: the query, lane 1: the squared norm
          float* scale = row_scale.data();
          for (size_t i = 0; i < rows; ++i) scale[i] = tile[i * 2 + 1];
          reciprocal_square_roots(scale, rows);
          float* o = out + group.first_query * ld + begin;
          for (size_t i = 0; i < rows; ++i) o[i] = tile[i * 2] * scale[i];
          continue;
        }
        for (size_t g = 0; g < group.size; ++g) {
          float* o = out + (group.first_query + g) * ld + begin;
          if (metric_ == Metric::cos) {
            for (size_t i = 0; i < rows; ++i) o[i] = tile[i * group.size + g] * row_scale[begin + i];
          } else {
            for (size_t i = 0; i < rows; ++i) o[i] = tile[i * group.size + g];
          }
        }
      }
    }
  }

 private:
  struct Group {
    size_t first_query, size, table_offset;  // size: lanes, the queries plus the norm lane if any
    bool norm_lane;
  };
  bool norm_lane_ = false;
  TableCodes codes_;
  Metric metric_;
  std::vector<Group> groups_;
  std::vector<float> storage_;
  float* tables_ = nullptr;  // within storage_, aligned to a cache line
  std::vector<float> centroid_sq_;  // cos: squared-norm entries, m x ksub
};

// 4-bit fast scan. With 16 centroids per sub-quantizer a query's table for one sub-quantizer
// is 16 floats; quantized to uint8 it fits one 128-bit register, and a byte shuffle looks it up
// for 16 rows at once (kernels' pq4_fastscan). Per query, with t_j(c) the float table:
//   bias_j = min_c t_j(c),  scale = max_j (max_c t_j(c) - bias_j) / 255,
//   q_j(c) = round((t_j(c) - bias_j) / scale)  in 0..255,
//   score = scale * sum_j q_j(c_j) + sum_j bias_j.
// Each entry is off by at most scale / 2, so a score differs from the exact table sum by at most
// m * scale / 2 (plus float rounding). The quantized score is returned as is (GloVe-100 angular,
// pq:m=50,nbits=4: recall@10 0.737); exact scores, when needed, come from a rerank stage
// (SPEC+RERANK@N).
//
// The kernel reads the codes of 64 rows byte by byte (fastscan_transpose). A table's codes are
// transposed once per segment, into a FastScanLayout its store keeps; blocks without one are
// transposed per call. In a search (select_above), each query's heap threshold becomes an integer bound on the
// uint16 sums, so the kernel rules out rows by one compare per 32 of them, and only the rows
// above the bound get a float score. Up to eight queries share each load of the codes.
constexpr size_t kFastScanBlock = 64;

// Byte j of row r of a block goes to byte j * 64 + r % 64 of the block. Missing rows of a last
// block read code 0. out: ceil(count / 64) blocks of code_size x 64 bytes, zeroed by the caller.
void fastscan_transpose(const uint8_t* codes, size_t count, size_t code_size, uint8_t* out) {
  for (size_t i = 0; i < count; ++i) {
    uint8_t* dst = out + (i / kFastScanBlock) * code_size * kFastScanBlock + i % kFastScanBlock;
    const uint8_t* row = codes + i * code_size;
    for (size_t j = 0; j < code_size; ++j) dst[j * kFastScanBlock] = row[j];
  }
}

// cos: 1 / |decoded row| (0 for a zero row), from the squared-norm entries.
void fastscan_row_scales(const uint8_t* codes, size_t count, size_t m, const float* centroid_sq, float* out) {
  const size_t cs = (m + 1) / 2;
  for (size_t i = 0; i < count; ++i) {
    const uint8_t* row = codes + i * cs;
    float s = 0;
    for (size_t j = 0; j < m; ++j) s += centroid_sq[j * 16 + ((row[j / 2] >> (4 * (j % 2))) & 15)];
    out[i] = s;
  }
  reciprocal_square_roots(out, count);
}

// Per pair of rows (2i, 2i + 1): the smaller |decoded row| (0 for a zero row), which the
// kernel's bound for cos needs; zero past the last row, up to whole blocks.
void fastscan_pair_norms(const float* row_scale, size_t count, float* out) {
  const size_t pairs = (count + kFastScanBlock - 1) / kFastScanBlock * (kFastScanBlock / 2);
  for (size_t p = 0; p < pairs; ++p) {
    float norm = 0;
    for (size_t row = 2 * p; row < std::min(count, 2 * p + 2); ++row) {
      const float n = row_scale[row] > 0 ? 1.0f / row_scale[row] : 0.0f;
      norm = row == 2 * p ? n : std::min(norm, n);
    }
    out[p] = norm;
  }
}

// A table's codes transposed, with what cos needs per row and per pair of rows: code_size + 6
// bytes per row, kept in memory beside the stored codes.
struct FastScanLayout final : ScanLayout {
  size_t rows = 0;
  std::vector<uint8_t> blocks;     // ceil(rows / 64) x code_size x 64
  std::vector<float> row_scale;    // 1 / |decoded row|, 0 for zero rows
  std::vector<float> pair_norm;    // see fastscan_pair_norms
};

class FastScanScorer final : public CodeScorer {
 public:
  FastScanScorer(TableCodes codes, size_t nq, Metric metric, const FillTables& fill, std::vector<float> row_sq)
      : codes_(codes), metric_(metric), nq_(nq) {
    const size_t m = codes.m;
    lut_bytes_ = codes.code_size() * 2 * 16;
    luts_.assign(nq * lut_bytes_, 0);
    scale_.resize(nq);
    bias_.resize(nq);
    std::vector<float> table(m * 16), low(m);
    for (size_t q = 0; q < nq; ++q) {
      fill(q, table.data());
      float range = 0;
      double bias = 0;
      for (size_t j = 0; j < m; ++j) {
        float lo = table[j * 16], hi = lo;
        for (size_t c = 1; c < 16; ++c) {
          lo = std::min(lo, table[j * 16 + c]);
          hi = std::max(hi, table[j * 16 + c]);
        }
        low[j] = lo;
        bias += lo;
        range = std::max(range, hi - lo);
      }
      const float scale = range > 0 ? range / 255.0f : 1.0f, inverse = 1.0f / scale;
      uint8_t* lut = luts_.data() + q * lut_bytes_;
      for (size_t j = 0; j < m; ++j)
        for (size_t c = 0; c < 16; ++c) {
          // Rounded half up by truncation (the level is never negative), which vectorizes.
          const float level = (table[j * 16 + c] - low[j]) * inverse + 0.5f;
          // Written so that NaN (tables overflowing to infinity on extreme centroids) becomes 0
          // instead of an undefined float-to-integer conversion.
          lut[j * 16 + c] = static_cast<uint8_t>(static_cast<int>(level >= 0.0f ? std::min(level, 255.0f) : 0.0f));
        }
      scale_[q] = scale;
      bias_[q] = static_cast<float>(bias);
    }
    if (metric == Metric::cos) centroid_sq_ = std::move(row_sq);
  }

  void score(const CodeBlock& block, float* out, size_t ld) const override {
    score_rows(prepare(block), block.count, out, ld);
  }

  void select_above(const CodeBlock& block, size_t nq, const float* thresholds, BlockCandidates& out) const override {
    const size_t count = block.count;
    // A row can beat the threshold t only if scale * sum + bias > t (ip, l2), or, for cos,
    // > t * |x| >= t * (smaller |x| of its pair of rows): sum > slope * norm - offset, with norm
    // 1 for ip and l2. Two steps of margin cover rounding. cos with t <= 0 gets no bound.
    // ivf search calls this per list and query: a few queries keep their bounds on the stack.
    constexpr size_t kStackQueries = 16;
    float stack_bounds[2 * kStackQueries];
    std::vector<float> heap_bounds(nq > kStackQueries ? 2 * nq : 0);
    float* slope = nq > kStackQueries ? heap_bounds.data() : stack_bounds;
    float* offset = slope + (nq > kStackQueries ? nq : kStackQueries);
    for (size_t q = 0; q < nq; ++q) {
      const float t = thresholds[q];
      const bool every_row = t == -INFINITY || (metric_ == Metric::cos && t <= 0);
      slope[q] = every_row ? 0.0f : t / scale_[q];
      offset[q] = every_row ? INFINITY : bias_[q] / scale_[q] + 2;
    }
    const Blocks blocks = prepare(block);
    // The candidates' scores, exactly as score computes them, kept when above the threshold.
    // The kernel's bound has a margin, so some fail that test, unpredictably: every candidate is
    // written and the count advances by the test instead of branching on it.
    out.offsets.assign(nq + 1, 0);
    out.rows.clear();
    out.scores.clear();
    size_t kept = 0;
    for_candidate_groups(blocks, count, slope, offset, [&](size_t q0, size_t group, uint32_t* const* rows, uint16_t* const* sums, const size_t* found) {
      size_t total = 0;
      for (size_t g = 0; g < group; ++g) total += found[g];
      out.rows.resize(kept + total);
      out.scores.resize(kept + total);
      uint32_t* out_rows = out.rows.data();
      float* out_scores = out.scores.data();
      for (size_t g = 0; g < group; ++g) {
        const size_t q = q0 + g, before = kept;
        const float threshold = thresholds[q];
        const bool every_row = threshold == -INFINITY;
        for (size_t p = 0; p < found[g]; ++p) {
          const float value = score_of(q, sums[g][p], rows[g][p], blocks.row_scale);
          out_rows[kept] = rows[g][p];
          out_scores[kept] = value;
          kept += (value > threshold) | every_row;
        }
        out.offsets[q + 1] = static_cast<uint32_t>(kept - before);
      }
    });
    out.rows.resize(kept);
    out.scores.resize(kept);
    for (size_t q = 0; q < nq; ++q) out.offsets[q + 1] += out.offsets[q];
  }

 private:
  struct Blocks {
    const uint8_t* codes;    // transposed
    const float* row_scale;  // cos only
    const float* pair_norm;  // cos only
  };
  float score_of(size_t q, uint16_t sum, size_t row, const float* row_scale) const {
    const float value = std::fma(static_cast<float>(sum), scale_[q], bias_[q]);
    return row_scale ? value * row_scale[row] : value;
  }

  // The transposed blocks of the rows: from the segment's layout when the block starts one of
  // its 64-row blocks, otherwise transposed here (per thread, reused by the next call).
  Blocks prepare(const CodeBlock& block) const {
    const uint8_t* codes = block.codes;
    const size_t count = block.count, first = block.layout_row;
    const size_t cs = codes_.code_size(), block_count = (count + kFastScanBlock - 1) / kFastScanBlock;
    const auto* layout = dynamic_cast<const FastScanLayout*>(block.layout);
    if (layout && first % kFastScanBlock == 0 && first + count <= layout->rows) {
      const uint8_t* codes_here = layout->blocks.data() + first * cs;
      if (metric_ != Metric::cos) return {codes_here, nullptr, nullptr};
      return {codes_here, layout->row_scale.data() + first, layout->pair_norm.data() + first / 2};
    }
    static thread_local std::vector<uint8_t> transposed;
    static thread_local std::vector<float> row_scale, pair_norm;
    transposed.assign(block_count * cs * kFastScanBlock, 0);
    fastscan_transpose(codes, count, cs, transposed.data());
    if (metric_ != Metric::cos) return {transposed.data(), nullptr, nullptr};
    row_scale.resize(count);
    fastscan_row_scales(codes, count, codes_.m, centroid_sq_.data(), row_scale.data());
    pair_norm.resize(block_count * kFastScanBlock / 2);
    fastscan_pair_norms(row_scale.data(), count, pair_norm.data());
    return {transposed.data(), row_scale.data(), pair_norm.data()};
  }

  // Calls fn(q, row, sum) for every candidate row of every query, query by query and rows in
  // order.
  template <class F>
  void for_candidates(const Blocks& blocks, size_t count, const float* slope, const float* offset, F&& fn) const {
    for_candidate_groups(blocks, count, slope, offset,
                         [&](size_t q0, size_t group, uint32_t* const* rows, uint16_t* const* sums, const size_t* found) {
                           for (size_t g = 0; g < group; ++g)
                             for (size_t p = 0; p < found[g]; ++p) fn(q0 + g, rows[g][p], sums[g][p]);
                         });
  }

  // Calls fn(q0, group, rows, sums, found) for each group of queries q0 .. q0 + group - 1: query
  // q0 + g has found[g] candidates, rows[g][p] with sum sums[g][p], in row order. Queries go to
  // the kernel eight at a time, so the candidate lists stay small.
  template <class F>
  void for_candidate_groups(const Blocks& blocks, size_t count, const float* slope, const float* offset, F&& fn) const {
    constexpr size_t kQueries = 8;
    static thread_local std::vector<uint32_t> rows;
    static thread_local std::vector<uint16_t> sums;
    rows.resize(kQueries * count);
    sums.resize(kQueries * count);
    uint32_t* row_lists[kQueries];
    uint16_t* sum_lists[kQueries];
    for (size_t g = 0; g < kQueries; ++g) row_lists[g] = rows.data() + g * count, sum_lists[g] = sums.data() + g * count;
    for (size_t q0 = 0; q0 < nq_; q0 += kQueries) {
      const size_t group = std::min(kQueries, nq_ - q0);
      size_t found[kQueries] = {};
      kernels::active().pq4_fastscan_select(blocks.codes, codes_.code_size(), count, luts_.data() + q0 * lut_bytes_,
                                            lut_bytes_, group, slope + q0, offset + q0, blocks.pair_norm, row_lists,
                                            sum_lists, found);
      fn(q0, group, row_lists, sum_lists, found);
    }
  }

  // Every row's score: every row is a candidate.
  void score_rows(const Blocks& blocks, size_t count, float* out, size_t ld) const {
    std::vector<float> slope(nq_, 0.0f), offset(nq_, INFINITY);
    for_candidates(blocks, count, slope.data(), offset.data(), [&](size_t q, uint32_t row, uint16_t sum) {
      out[q * ld + row] = score_of(q, sum, row, blocks.row_scale);
    });
  }

  TableCodes codes_;
  Metric metric_;
  size_t nq_, lut_bytes_ = 0;
  std::vector<uint8_t> luts_;  // nq x 2 code_size x 16, zero past m
  std::vector<float> scale_, bias_;
  std::vector<float> centroid_sq_;  // cos: squared-norm entries, m x 16
};

}  // namespace

std::unique_ptr<CodeScorer> table_scorer(TableCodes codes, size_t nq, Metric metric, const FillTables& fill,
                                         std::vector<float> row_sq_tables) {
  return std::make_unique<TableScorer>(codes, nq, metric, fill, std::move(row_sq_tables));
}

std::unique_ptr<CodeScorer> fastscan_scorer(TableCodes codes, size_t nq, Metric metric, const FillTables& fill,
                                            std::vector<float> row_sq_tables) {
  if (codes.nbits != 4 || codes.m > kFastScanMaxM)
    throw Error("fast scan needs 4-bit indices and at most " + std::to_string(kFastScanMaxM) + " codebooks");
  return std::make_unique<FastScanScorer>(codes, nq, metric, fill, std::move(row_sq_tables));
}

std::shared_ptr<const ScanLayout> fastscan_layout(TableCodes codes, const uint8_t* rows, size_t n,
                                                  const std::vector<float>& row_sq_tables) {
  auto layout = std::make_shared<FastScanLayout>();
  const size_t cs = codes.code_size(), blocks = (n + kFastScanBlock - 1) / kFastScanBlock;
  layout->rows = n;
  layout->blocks.assign(blocks * cs * kFastScanBlock, 0);
  fastscan_transpose(rows, n, cs, layout->blocks.data());
  layout->row_scale.resize(n);
  fastscan_row_scales(rows, n, codes.m, row_sq_tables.data(), layout->row_scale.data());
  layout->pair_norm.resize(blocks * kFastScanBlock / 2);
  fastscan_pair_norms(layout->row_scale.data(), n, layout->pair_norm.data());
  return layout;
}

}  // namespace vecpack
