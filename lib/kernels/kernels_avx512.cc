// The kernels compiled for AVX-512 F/BW/DQ/VL (built with -mavx512f -mavx512bw -mavx512dq
// -mavx512vl -mavx2 -mfma -mf16c -mpopcnt), plus binary-code kernels for CPUs that also have
// VPOPCNTDQ (Ice Lake and later), chosen when the table is first asked for.
#include "kernels/kernels_impl.h"

namespace vecpack::kernels {
namespace {

#define VECPACK_VPOPCNT __attribute__((target("avx512vpopcntdq")))

// Four 128-bit rows in one register.
inline __m512i load_four_rows(const uint8_t* row, size_t stride) noexcept {
  if (stride == 16) return _mm512_loadu_si512(row);
  __m512i v = _mm512_castsi128_si512(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row)));
  v = _mm512_inserti32x4(v, _mm_loadu_si128(reinterpret_cast<const __m128i*>(row + stride)), 1);
  v = _mm512_inserti32x4(v, _mm_loadu_si128(reinterpret_cast<const __m128i*>(row + 2 * stride)), 2);
  return _mm512_inserti32x4(v, _mm_loadu_si128(reinterpret_cast<const __m128i*>(row + 3 * stride)), 3);
}

// Per-row sums of word pairs: a holds rows 0-3 (two words each), b rows 4-7; eight row totals out.
inline __m256 row_totals(__m512i a, __m512i b) noexcept {
  const __m512i even = _mm512_setr_epi64(0, 2, 4, 6, 8, 10, 12, 14);
  const __m512i odd = _mm512_setr_epi64(1, 3, 5, 7, 9, 11, 13, 15);
  const __m512i sums = _mm512_add_epi64(_mm512_permutex2var_epi64(a, even, b), _mm512_permutex2var_epi64(a, odd, b));
  return _mm512_cvtepi64_ps(sums);
}

VECPACK_VPOPCNT void hamming_rows_vpopcnt(const uint64_t* query, const uint8_t* codes, size_t stride, size_t count,
                                          size_t words, float scale, float bias, float* out) {
  size_t i = 0;
  if (words == 2) {
    const __m512i q = _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(query)));
    const __m256 vscale = _mm256_set1_ps(scale), vbias = _mm256_set1_ps(bias);
    for (; i + 8 <= count; i += 8) {
      const uint8_t* row = codes + i * stride;
      const __m512i a = _mm512_popcnt_epi64(_mm512_xor_si512(load_four_rows(row, stride), q));
      const __m512i b = _mm512_popcnt_epi64(_mm512_xor_si512(load_four_rows(row + 4 * stride, stride), q));
      _mm256_storeu_ps(out + i, _mm256_fmadd_ps(row_totals(a, b), vscale, vbias));
    }
  } else if (words > 2) {
    for (; i < count; ++i) {
      const uint8_t* row = codes + i * stride;
      __m512i total = _mm512_setzero_si512();
      for (size_t w = 0; w < words; w += 8) {
        const __mmask8 mask = words - w >= 8 ? __mmask8(0xff) : __mmask8((1u << (words - w)) - 1);
        const __m512i x = _mm512_xor_si512(_mm512_maskz_loadu_epi64(mask, query + w), _mm512_maskz_loadu_epi64(mask, row + w * 8));
        total = _mm512_add_epi64(total, _mm512_popcnt_epi64(x));
      }
      out[i] = scale * static_cast<float>(_mm512_reduce_add_epi64(total)) + bias;
    }
  }
  for (; i < count; ++i) out[i] = scale * static_cast<float>(hamming_one(query, codes + i * stride, words)) + bias;
}

VECPACK_VPOPCNT void bitplane_rows_vpopcnt(const uint64_t* planes, size_t nplanes, const uint8_t* codes, size_t stride,
                                           size_t count, size_t words, float* out, float* pop) {
  size_t i = 0;
  if (words == 2 && nplanes <= 8) {
    __m512i plane[8];
    for (size_t k = 0; k < nplanes; ++k)
      plane[k] = _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(planes + 2 * k)));
    for (; i + 8 <= count; i += 8) {
      const uint8_t* row = codes + i * stride;
      const __m512i a = load_four_rows(row, stride), b = load_four_rows(row + 4 * stride, stride);
      __m512i sum_a = _mm512_setzero_si512(), sum_b = _mm512_setzero_si512();
      for (size_t k = 0; k < nplanes; ++k) {
        const __m128i shift = _mm_cvtsi32_si128(static_cast<int>(k));
        sum_a = _mm512_add_epi64(sum_a, _mm512_sll_epi64(_mm512_popcnt_epi64(_mm512_and_si512(a, plane[k])), shift));
        sum_b = _mm512_add_epi64(sum_b, _mm512_sll_epi64(_mm512_popcnt_epi64(_mm512_and_si512(b, plane[k])), shift));
      }
      _mm256_storeu_ps(out + i, row_totals(sum_a, sum_b));
      if (pop) _mm256_storeu_ps(pop + i, row_totals(_mm512_popcnt_epi64(a), _mm512_popcnt_epi64(b)));
    }
  }
  for (; i < count; ++i) bitplane_one(planes, nplanes, codes + i * stride, words, out + i, pop ? pop + i : nullptr);
}

constexpr KernelTable kAvx512Table = make_table<xsimd::avx512bw>(Isa::avx512);

constexpr KernelTable with_vpopcnt(KernelTable table) {
  table.hamming_rows = &hamming_rows_vpopcnt;
  table.bitplane_rows = &bitplane_rows_vpopcnt;
  return table;
}
constexpr KernelTable kAvx512VpopcntTable = with_vpopcnt(kAvx512Table);

}  // namespace

const KernelTable* avx512_table() {
  __builtin_cpu_init();
  static const bool vpopcnt = __builtin_cpu_supports("avx512vpopcntdq");
  return vpopcnt ? &kAvx512VpopcntTable : &kAvx512Table;
}

}  // namespace vecpack::kernels
