// Hot loops, written once (kernels_impl.h, xsimd) and compiled per instruction set; one table of
// function pointers per ISA, chosen once at run time. Callers fetch the table once per batch.
#pragma once

#include <cstddef>
#include <cmath>
#include <cstdint>
#include <vector>

namespace vecpack::kernels {

enum class Isa : uint8_t { scalar = 0, sse42 = 1, avx2 = 2, avx512 = 3 };

const char* isa_name(Isa isa) noexcept;  // "scalar", "sse4.2", "avx2", "avx512"

// A row's sum must be at least this to beat slope * norm - offset: floor(slope * norm - offset
// + 1), computed with one rounding (fma) and capped at 65535 before the conversion, so every ISA
// and the scalar reference agree. -inf gives INT32_MIN (every row), NaN 65535 (none: sums of up
// to 256 sub-quantizers stay below it).
inline int32_t pq4_bound(float slope, float norm, float offset) {
  const float limit = std::fma(slope, norm, -(offset - 1.0f));
  const float capped = limit < 65535.0f ? limit : 65535.0f;  // NaN: 65535, as min_ps does
  return capped >= -2147483648.0f ? static_cast<int32_t>(std::floor(capped)) : INT32_MIN;
}

struct KernelTable {
  Isa isa;
  // For each of count rows x_i (row-major, d values): dot[i] = q . x_i and, when sq is not
  // null, sq[i] = x_i . x_i.
  void (*dot_f32_rows)(const float* q, const float* rows, size_t count, size_t d, float* dot, float* sq);
  // Rows stored as IEEE binary16 / bfloat16 bit patterns.
  void (*dot_f16_rows)(const float* q, const uint16_t* rows, size_t count, size_t d, float* dot, float* sq);
  void (*dot_bf16_rows)(const float* q, const uint16_t* rows, size_t count, size_t d, float* dot, float* sq);
  // Rows stored as uint8 codes c with x_j = low[j] + step[j] * c_j.
  void (*dot_u8_affine_rows)(const float* q, const float* low, const float* step, const uint8_t* codes,
                             size_t count, size_t d, float* dot, float* sq);
  // Conversions of n values (block decode and encode). Encode rounds to nearest even;
  // NaN stays NaN, overflow becomes infinity.
  void (*f16_to_f32)(const uint16_t* in, size_t n, float* out);
  void (*bf16_to_f32)(const uint16_t* in, size_t n, float* out);
  void (*f32_to_f16)(const float* in, size_t n, uint16_t* out);
  void (*f32_to_bf16)(const float* in, size_t n, uint16_t* out);
  // out[i * d + j] = low[j] + step[j] * codes[i * d + j]
  void (*u8_affine_decode)(const uint8_t* codes, size_t count, size_t d, const float* low,
                           const float* step, float* out);
  // Largest of n > 0 values (NaN-free input).
  float (*max_f32)(const float* x, size_t n);
  // Writes the indices i < n (increasing) with x[i] > threshold to out (room for n) and returns
  // how many there are: the candidates of a block that may enter a full top-k heap.
  size_t (*select_above)(const float* x, size_t n, float threshold, uint32_t* out);
  // Nearest centroid of n short rows (row i: x[i * stride + j], j < d) by squared L2 distance.
  // Centroids come transposed, coordinate j of centroid c at centroids_t[j * k + c], with
  // half_sq[c] = |c|^2 / 2; k is a multiple of 16 (pad with half_sq = +infinity).
  // labels[i] = argmin_c (half_sq[c] - x_i . c), the smallest c on ties; best (may be null)
  // receives that minimum, so that |x_i - c|^2 = |x_i|^2 + 2 best[i].
  void (*nearest_centroids)(const float* x, size_t n, size_t stride, size_t d, const float* centroids_t,
                            const float* half_sq, size_t k, uint32_t* labels, float* best);
  // out[c] = x . centroid c for one row of d values, centroids transposed as above (k a multiple
  // of 16): the dot products score-aware pq encoding weighs.
  void (*centroid_dots)(const float* x, size_t d, const float* centroids_t, size_t k, float* out);
  // argmin over c < k (a multiple of 16) of norms[c] - 2 dots[c] + weight (along - dots[c])^2,
  // the smallest c on ties: one coordinate-descent step of pq's anisotropic loss.
  uint32_t (*anisotropic_argmin)(const float* dots, const float* norms, size_t k, float along, float weight);
  // Product-quantizer table scan over `rows` rows of m indices each (row i: indices[i * stride + j]):
  // out[i * lanes + l] = sum over j = 0..m-1, in that order, of tables[(j * ksub + index_ij) * lanes + l],
  // for lanes = 1, 2, 4, 8 or 16 (queries sharing each code read). Meanwhile it prefetches
  // prefetch_lines cache lines from `prefetch` on (null: none), spread over the rows.
  void (*pq_scan_u8)(const uint8_t* indices, size_t stride, size_t rows, size_t m, size_t ksub, const float* tables,
                     size_t lanes, float* out, const void* prefetch, size_t prefetch_lines);
  void (*pq_scan_u16)(const uint16_t* indices, size_t stride, size_t rows, size_t m, size_t ksub,
                      const float* tables, size_t lanes, float* out, const void* prefetch, size_t prefetch_lines);
  // 4-bit product-quantizer fast scan with candidate selection. codes: ceil(rows / 64) blocks
  // of `bytes` runs of 64 bytes; byte r of run j of block b holds, for row 64 b + r, the code of
  // sub-quantizer 2j in its low nibble and of 2j + 1 in its high nibble (rows past `rows` are
  // read but never reported). Table q of the nq tables is at luts + q * stride: 2 * bytes x 16
  // uint8 entries. sum(q, row) = sum over sub-quantizers s of table_q[s * 16 + code(row, s)],
  // exact as uint16 for bytes <= 128. A row is a candidate of table q when its sum is at least
  // pq4_bound(slope[q], norm, offset[q]), norm being pair_norm[row / 2] (null: 1). Candidates
  // are appended in row order: found_rows[q][found[q]] = row, found_sums[q][found[q]] = its sum,
  // ++found[q]; each list needs room for `rows` more entries.
  void (*pq4_fastscan_select)(const uint8_t* codes, size_t bytes, size_t rows, const uint8_t* luts, size_t stride,
                              size_t nq, const float* slope, const float* offset, const float* pair_norm,
                              uint32_t* const* found_rows, uint16_t* const* found_sums, size_t* found);
  // Binary codes: count rows of `words` 64-bit words each (bit j of a row is bit j % 64 of word
  // j / 64, little-endian), rows `stride` bytes apart at any alignment.
  // out[i] = scale * popcount(query XOR row_i) + bias: Hamming distances, exact for any ISA.
  void (*hamming_rows)(const uint64_t* query, const uint8_t* codes, size_t stride, size_t count, size_t words,
                       float scale, float bias, float* out);
  // out[i] = sum over k < nplanes (at most 8) of 2^k popcount(planes[k] AND row_i), planes being
  // nplanes x words bit planes of a query quantized to unsigned nplanes-bit integers; pop[i] =
  // popcount(row_i) when pop is not null. Exact for any ISA.
  void (*bitplane_rows)(const uint64_t* planes, size_t nplanes, const uint8_t* codes, size_t stride, size_t count,
                        size_t words, float* out, float* pop);
};

// The table for the best ISA this CPU supports, or the one named by the environment variable
// VECPACK_FORCE_ISA (scalar, sse4.2, avx2, avx512) when set and supported. Resolved once.
const KernelTable& active();
// The table for one ISA, or nullptr if it is not compiled in or the CPU lacks it.
const KernelTable* table_for(Isa isa);
// Every ISA this CPU can run, best first (always ends with scalar).
std::vector<Isa> supported_isas();

}  // namespace vecpack::kernels
