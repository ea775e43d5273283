// Kernels: binary codes: Hamming distances and query bit planes. Part of kernels_impl.h (templates
// on an xsimd architecture, internal linkage), which includes it after the per-ISA helpers; not a
// header of its own.
#pragma once

namespace vecpack::kernels {
namespace {

// ------------------------------------------------------------------------------ binary codes
// Every TU that includes this header is compiled with -mpopcnt, so __builtin_popcountll is one
// instruction here.
inline uint64_t load_u64(const uint8_t* p) noexcept {
  uint64_t word;
  std::memcpy(&word, p, sizeof word);
  return word;
}

inline uint32_t hamming_one(const uint64_t* query, const uint8_t* row, size_t words) noexcept {
  uint32_t distance = 0;
  for (size_t w = 0; w < words; ++w) distance += static_cast<uint32_t>(__builtin_popcountll(query[w] ^ load_u64(row + w * 8)));
  return distance;
}

inline void bitplane_one(const uint64_t* planes, size_t nplanes, const uint8_t* row, size_t words, float* out,
                         float* pop) noexcept {
  uint32_t sum = 0, ones = 0;
  for (size_t w = 0; w < words; ++w) {
    const uint64_t word = load_u64(row + w * 8);
    ones += static_cast<uint32_t>(__builtin_popcountll(word));
    for (size_t k = 0; k < nplanes; ++k)
      sum += static_cast<uint32_t>(__builtin_popcountll(word & planes[k * words + w])) << k;
  }
  *out = static_cast<float>(sum);
  if (pop) *pop = static_cast<float>(ones);
}

#if defined(__AVX2__)
// Popcounts of the four 64-bit lanes: two 16-entry nibble lookups per byte, summed by SAD.
inline __m256i popcount_lanes_avx2(__m256i v) noexcept {
  const __m256i lut = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4, 0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3,
                                       2, 3, 3, 4);
  const __m256i low = _mm256_set1_epi8(0x0f);
  const __m256i counts = _mm256_add_epi8(_mm256_shuffle_epi8(lut, _mm256_and_si256(v, low)),
                                         _mm256_shuffle_epi8(lut, _mm256_and_si256(_mm256_srli_epi16(v, 4), low)));
  return _mm256_sad_epu8(counts, _mm256_setzero_si256());
}

inline __m256i load_two_rows(const uint8_t* row, size_t stride) noexcept {
  const __m128i first = _mm_loadu_si128(reinterpret_cast<const __m128i*>(row));
  const __m128i second = _mm_loadu_si128(reinterpret_cast<const __m128i*>(row + stride));
  return _mm256_inserti128_si256(_mm256_castsi128_si256(first), second, 1);
}
#endif

template <class Arch>
void hamming_rows(const uint64_t* query, const uint8_t* codes, size_t stride, size_t count, size_t words, float scale,
                  float bias, float* out) {
  size_t i = 0;
#if defined(__AVX2__)
  if (words == 2) {
    // 128-bit codes (the common d <= 128): two rows per register, four per step.
    const __m256i q = _mm256_setr_epi64x(static_cast<long long>(query[0]), static_cast<long long>(query[1]),
                                         static_cast<long long>(query[0]), static_cast<long long>(query[1]));
    for (; i + 4 <= count; i += 4) {
      const uint8_t* row = codes + i * stride;
      const __m256i a = popcount_lanes_avx2(_mm256_xor_si256(load_two_rows(row, stride), q));
      const __m256i b = popcount_lanes_avx2(_mm256_xor_si256(load_two_rows(row + 2 * stride, stride), q));
      // Lanes of a: row 0 word 0, row 0 word 1, row 1 word 0, row 1 word 1; b: rows 2 and 3.
      alignas(32) int64_t sums[4];
      _mm256_store_si256(reinterpret_cast<__m256i*>(sums),
                         _mm256_add_epi64(_mm256_unpacklo_epi64(a, b), _mm256_unpackhi_epi64(a, b)));
      out[i] = scale * static_cast<float>(sums[0]) + bias;      // row 0
      out[i + 1] = scale * static_cast<float>(sums[2]) + bias;  // row 1
      out[i + 2] = scale * static_cast<float>(sums[1]) + bias;  // row 2
      out[i + 3] = scale * static_cast<float>(sums[3]) + bias;  // row 3
    }
  }
#endif
  for (; i < count; ++i) out[i] = scale * static_cast<float>(hamming_one(query, codes + i * stride, words)) + bias;
}

template <class Arch>
void bitplane_rows(const uint64_t* planes, size_t nplanes, const uint8_t* codes, size_t stride, size_t count,
                   size_t words, float* out, float* pop) {
  for (size_t i = 0; i < count; ++i)
    bitplane_one(planes, nplanes, codes + i * stride, words, out + i, pop ? pop + i : nullptr);
}

}  // namespace
}  // namespace vecpack::kernels
