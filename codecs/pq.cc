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

#include <emmintrin.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>

#include "codec_util.h"
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

// ------------------------------------------------------------------------------ scoring
namespace {

// Per-query tables beyond this many entries (m x 2^nbits) cost more to build and to keep in
// cache than decoding the rows and multiplying: such codecs score through the GEMM path.
constexpr size_t kMaxTableEntries = size_t{1} << 16;
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

// |centroid|^2 for every sub-quantizer and centroid, m x ksub: the squared norm of a decoded row
// is a sum of these, one per sub-vector.
std::vector<float> centroid_squared_norms(const PqCodebooks& books) {
  std::vector<float> sq(books.m() * books.ksub());
  for (size_t j = 0; j < books.m(); ++j) {
    const size_t dsub = books.sub_dim(j);
    for (size_t c = 0; c < books.ksub(); ++c) {
      const float* centroid = books.centroids(j) + c * dsub;
      float s = 0;
      for (size_t t = 0; t < dsub; ++t) s += centroid[t] * centroid[t];
      sq[j * books.ksub() + c] = s;
    }
  }
  return sq;
}

class PqTableScorer final : public CodeScorer {
 public:
  // queries: nq x d, already prepared (unit length for cos; quantized for sdc).
  PqTableScorer(const PqCodebooks& books, const float* queries, size_t nq, Metric metric)
      : books_(books), metric_(metric) {
    const size_t m = books.m(), ksub = books.ksub(), d = books.dim();
    const size_t entries = m * ksub;
    size_t largest_group = 1;
    for (size_t g : kGroupSizes)
      if (g * entries * sizeof(float) <= kGroupTableBytes) {
        largest_group = g;
        break;
      }
    if (metric == Metric::cos) centroid_sq_ = centroid_squared_norms(books);
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
    for (const Group& group : groups_)
      for (size_t g = 0; g < group.size; ++g) {
        float* tables = tables_ + group.table_offset;
        if (group.norm_lane && g + 1 == group.size) {
          for (size_t e = 0; e < entries; ++e) tables[e * group.size + g] = centroid_sq_[e];
          continue;
        }
        const float* query = queries + (group.first_query + g) * d;
        for (size_t j = 0; j < m; ++j) {
          const size_t dsub = books.sub_dim(j);
          const float* sub_query = query + books.offset(j);
          const float* centroids = books.centroids(j);
          for (size_t c = 0; c < ksub; ++c) {
            const float* centroid = centroids + c * dsub;
            float value = 0;
            if (metric == Metric::l2) {
              for (size_t t = 0; t < dsub; ++t) value -= (sub_query[t] - centroid[t]) * (sub_query[t] - centroid[t]);
            } else {
              for (size_t t = 0; t < dsub; ++t) value += sub_query[t] * centroid[t];
            }
            tables[(j * ksub + c) * group.size + g] = value;
          }
        }
      }
  }

  void score(const uint8_t* codes, size_t count, float* out, size_t ld) const override {
    const size_t m = books_.m(), ksub = books_.ksub();
    static thread_local std::vector<uint16_t> unpacked;
    static thread_local std::vector<float> row_scale, tile;
    tile.resize(kTileRows * kGroupSizes[0]);
    // With 8-bit codes the code bytes are the indices; otherwise unpack them once for all queries.
    const uint8_t* byte_indices = nullptr;
    const uint16_t* wide_indices = nullptr;
    const size_t stride = m;
    if (books_.nbits() == 8) {
      byte_indices = codes;
    } else {
      unpacked.resize(count * m);
      std::vector<uint32_t> labels(m);
      const size_t cs = books_.code_size();
      for (size_t i = 0; i < count; ++i) {
        pq_unpack(codes + i * cs, m, books_.nbits(), labels.data());
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
  const PqCodebooks& books_;
  Metric metric_;
  std::vector<Group> groups_;
  std::vector<float> storage_;
  float* tables_ = nullptr;  // within storage_, aligned to a cache line
  std::vector<float> centroid_sq_;  // cos: |centroid|^2, m x ksub
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
// transposed once, into a PqScanLayout its store keeps; codes without one are transposed per
// call. In a search (select_above), each query's heap threshold becomes an integer bound on the
// uint16 sums, so the kernel rules out rows by one compare per 32 of them, and only the rows
// above the bound get a float score. Up to eight queries share each load of the codes.
constexpr size_t kFastScanBlock = 64;
// Sums of more sub-quantizers could overflow uint16: such codecs use the float tables.
constexpr size_t kFastScanMaxM = 256;

// Byte j of row r of a block goes to byte j * 64 + r % 64 of the block. Missing rows of a last
// block read code 0. out: ceil(count / 64) blocks of code_size x 64 bytes, zeroed by the caller.
void fastscan_transpose(const uint8_t* codes, size_t count, size_t code_size, uint8_t* out) {
  for (size_t i = 0; i < count; ++i) {
    uint8_t* dst = out + (i / kFastScanBlock) * code_size * kFastScanBlock + i % kFastScanBlock;
    const uint8_t* row = codes + i * code_size;
    for (size_t j = 0; j < code_size; ++j) dst[j * kFastScanBlock] = row[j];
  }
}

// cos: 1 / |decoded row| (0 for a zero row), from the squared norms of the centroids.
void fastscan_row_scales(const uint8_t* codes, size_t count, size_t m, const float* centroid_sq, float* out) {
  const size_t cs = pq_code_size(m, 4);
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
struct PqScanLayout final : ScanLayout {
  const uint8_t* codes = nullptr;  // the codes it was made from: scorers find their rows by address
  size_t rows = 0;
  std::vector<uint8_t> blocks;     // ceil(rows / 64) x code_size x 64
  std::vector<float> row_scale;    // 1 / |decoded row|, 0 for zero rows
  std::vector<float> pair_norm;    // see fastscan_pair_norms
};

class PqFastScanScorer final : public CodeScorer {
 public:
  PqFastScanScorer(const PqCodebooks& books, const float* queries, size_t nq, Metric metric,
                   const PqScanLayout* layout)
      : books_(books), metric_(metric), nq_(nq), layout_(layout) {
    const size_t m = books.m(), d = books.dim();
    lut_bytes_ = books.code_size() * 2 * 16;
    luts_.assign(nq * lut_bytes_, 0);
    scale_.resize(nq);
    bias_.resize(nq);
    std::vector<float> table(m * 16), low(m);
    for (size_t q = 0; q < nq; ++q) {
      const float* query = queries + q * d;
      for (size_t j = 0; j < m; ++j) {
        const size_t dsub = books.sub_dim(j);
        const float* sub_query = query + books.offset(j);
        for (size_t c = 0; c < 16; ++c) {
          const float* centroid = books.centroids(j) + c * dsub;
          float value = 0;
          if (metric == Metric::l2) {
            for (size_t t = 0; t < dsub; ++t) value -= (sub_query[t] - centroid[t]) * (sub_query[t] - centroid[t]);
          } else {
            for (size_t t = 0; t < dsub; ++t) value += sub_query[t] * centroid[t];
          }
          table[j * 16 + c] = value;
        }
      }
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
      const float scale = range > 0 ? range / 255.0f : 1.0f;
      uint8_t* lut = luts_.data() + q * lut_bytes_;
      for (size_t j = 0; j < m; ++j)
        for (size_t c = 0; c < 16; ++c) {
          const float level = std::nearbyint((table[j * 16 + c] - low[j]) / scale);
          // Written so that NaN (tables overflowing to infinity on extreme centroids) becomes 0
          // instead of an undefined float-to-integer conversion.
          lut[j * 16 + c] = static_cast<uint8_t>(level >= 0.0f ? std::min(level, 255.0f) : 0.0f);
        }
      scale_[q] = scale;
      bias_[q] = static_cast<float>(bias);
    }
    if (metric == Metric::cos) centroid_sq_ = centroid_squared_norms(books);
  }

  void score(const uint8_t* codes, size_t count, float* out, size_t ld) const override {
    score_rows(prepare(codes, count), count, out, ld);
  }

  void select_above(const uint8_t* codes, size_t, size_t count, size_t nq, const float* thresholds,
                    BlockCandidates& out) const override {
    // A row can beat the threshold t only if scale * sum + bias > t (ip, l2), or, for cos,
    // > t * |x| >= t * (smaller |x| of its pair of rows): sum > slope * norm - offset, with norm
    // 1 for ip and l2. Two steps of margin cover rounding. cos with t <= 0 gets no bound.
    std::vector<float> slope(nq), offset(nq);
    for (size_t q = 0; q < nq; ++q) {
      const float t = thresholds[q];
      const bool every_row = t == -INFINITY || (metric_ == Metric::cos && t <= 0);
      slope[q] = every_row ? 0.0f : t / scale_[q];
      offset[q] = every_row ? INFINITY : bias_[q] / scale_[q] + 2;
    }
    const Blocks blocks = prepare(codes, count);
    // The candidates' scores, exactly as score_at computes them, kept when above the threshold.
    out.offsets.assign(nq + 1, 0);
    out.rows.clear();
    out.scores.clear();
    for_candidates(blocks, count, slope.data(), offset.data(), [&](size_t q, uint32_t row, uint16_t sum) {
      const float value = score_of(q, sum, row, blocks.row_scale);
      if (value > thresholds[q] || thresholds[q] == -INFINITY) {
        out.rows.push_back(row);
        out.scores.push_back(value);
        ++out.offsets[q + 1];
      }
    });
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

  // The transposed blocks of the rows: from the layout when the rows are codes it was made from
  // and start one of its blocks, otherwise transposed here (per thread, reused by the next call).
  Blocks prepare(const uint8_t* codes, size_t count) const {
    const size_t cs = books_.code_size(), block_count = (count + kFastScanBlock - 1) / kFastScanBlock;
    const size_t offset = layout_ && codes >= layout_->codes ? static_cast<size_t>(codes - layout_->codes) : 1;
    const size_t first = cs ? offset / cs : 0;
    if (layout_ && offset % (cs * kFastScanBlock) == 0 && first + count <= layout_->rows) {
      const uint8_t* codes_here = layout_->blocks.data() + first * cs;
      if (metric_ != Metric::cos) return {codes_here, nullptr, nullptr};
      return {codes_here, layout_->row_scale.data() + first, layout_->pair_norm.data() + first / 2};
    }
    static thread_local std::vector<uint8_t> transposed;
    static thread_local std::vector<float> row_scale, pair_norm;
    transposed.assign(block_count * cs * kFastScanBlock, 0);
    fastscan_transpose(codes, count, cs, transposed.data());
    if (metric_ != Metric::cos) return {transposed.data(), nullptr, nullptr};
    row_scale.resize(count);
    fastscan_row_scales(codes, count, books_.m(), centroid_sq_.data(), row_scale.data());
    pair_norm.resize(block_count * kFastScanBlock / 2);
    fastscan_pair_norms(row_scale.data(), count, pair_norm.data());
    return {transposed.data(), row_scale.data(), pair_norm.data()};
  }

  // Calls fn(q, row, sum) for every candidate row of every query, query by query and rows in
  // order. Queries go to the kernel eight at a time, so the candidate lists stay small.
  template <class F>
  void for_candidates(const Blocks& blocks, size_t count, const float* slope, const float* offset, F&& fn) const {
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
      kernels::active().pq4_fastscan_select(blocks.codes, books_.code_size(), count, luts_.data() + q0 * lut_bytes_,
                                            lut_bytes_, group, slope + q0, offset + q0, blocks.pair_norm, row_lists,
                                            sum_lists, found);
      for (size_t g = 0; g < group; ++g)
        for (size_t p = 0; p < found[g]; ++p) fn(q0 + g, row_lists[g][p], sum_lists[g][p]);
    }
  }

  // Every row's score: every row is a candidate.
  void score_rows(const Blocks& blocks, size_t count, float* out, size_t ld) const {
    std::vector<float> slope(nq_, 0.0f), offset(nq_, INFINITY);
    for_candidates(blocks, count, slope.data(), offset.data(), [&](size_t q, uint32_t row, uint16_t sum) {
      out[q * ld + row] = score_of(q, sum, row, blocks.row_scale);
    });
  }

  const PqCodebooks& books_;
  Metric metric_;
  size_t nq_, lut_bytes_ = 0;
  const PqScanLayout* layout_;
  std::vector<uint8_t> luts_;  // nq x 2 code_size x 16, zero past m
  std::vector<float> scale_, bias_;
  std::vector<float> centroid_sq_;  // cos: |centroid|^2, m x 16
};

// ------------------------------------------------------------------------------ the codec

class PqQuantizer final : public Quantizer {
 public:
  // Lookup tables per query (m x 2^nbits floats): 128 queries' tables stay in cache.
  size_t query_tile() const override { return 128; }
  PqQuantizer(size_t m, unsigned nbits, bool symmetric) : requested_m_(m), nbits_(nbits), symmetric_(symmetric) {}

  const CodecDescriptor& descriptor() const override { return kPqCodec; }

  // m is spelled once known (given, or chosen in training); sdc only when on, as it changes how
  // queries are scored but not the codes.
  std::string spec() const override {
    const size_t m = trained() ? books_.m() : requested_m_;
    std::string args;
    if (m) args = "m=" + std::to_string(m) + ",nbits=" + std::to_string(nbits_);
    else if (nbits_ != 8) args = "nbits=" + std::to_string(nbits_);
    if (symmetric_) args += std::string(args.empty() ? "" : ",") + "sdc=on";
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
  }

  void encode(const float* x, size_t n, uint8_t* codes) const override { books_.encode(x, n, codes); }
  void decode(const uint8_t* codes, size_t n, float* x) const override { books_.decode(codes, n, x); }

  std::unique_ptr<CodeScorer> make_scorer(const float* queries, size_t nq, Metric metric,
                                          const PqScanLayout* layout) const {
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
    if (books_.nbits() == 4 && books_.m() <= kFastScanMaxM)
      return std::make_unique<PqFastScanScorer>(books_, queries, nq, metric, layout);
    return std::make_unique<PqTableScorer>(books_, queries, nq, metric);
  }

  std::unique_ptr<CodeScorer> scorer(const float* queries, size_t nq, Metric metric) const override {
    return make_scorer(queries, nq, metric, nullptr);
  }

  std::unique_ptr<CodeScorer> layout_scorer(const float* queries, size_t nq, Metric metric,
                                            const ScanLayout& layout) const override {
    return make_scorer(queries, nq, metric, dynamic_cast<const PqScanLayout*>(&layout));
  }

  std::shared_ptr<const ScanLayout> scan_layout(const uint8_t* codes, size_t n) const override {
    if (books_.nbits() != 4 || symmetric_ || books_.m() > kFastScanMaxM) return nullptr;
    auto layout = std::make_shared<PqScanLayout>();
    const size_t cs = books_.code_size(), blocks = (n + kFastScanBlock - 1) / kFastScanBlock;
    layout->codes = codes;
    layout->rows = n;
    layout->blocks.assign(blocks * cs * kFastScanBlock, 0);
    fastscan_transpose(codes, n, cs, layout->blocks.data());
    layout->row_scale.resize(n);
    const std::vector<float> centroid_sq = centroid_squared_norms(books_);
    fastscan_row_scales(codes, n, books_.m(), centroid_sq.data(), layout->row_scale.data());
    layout->pair_norm.resize(blocks * kFastScanBlock / 2);
    fastscan_pair_norms(layout->row_scale.data(), n, layout->pair_norm.data());
    return layout;
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
  }

 private:
  size_t requested_m_;  // 0: chosen from the dimension in training
  unsigned nbits_;
  bool symmetric_;
  PqCodebooks books_;
};

}  // namespace

size_t pq_requested_m(const Stage& stage) {
  const auto* pq = dynamic_cast<const PqQuantizer*>(&stage);
  return pq ? pq->requested_m() : 0;
}

namespace {

std::unique_ptr<Stage> create_pq(const CodecArgs& args) {
  return std::make_unique<PqQuantizer>(static_cast<size_t>(args.integer("m")), static_cast<unsigned>(args.integer("nbits")),
                                       args.flag("sdc"));
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
    },
    &create_pq,
    {"pq", "pq:nbits=4"},
};

}  // namespace vecpack
