// Kernels: pq table scans: float tables (8- and 16-bit indices) and 4-bit fast scan. Part of
// kernels_impl.h (templates on an xsimd architecture, internal linkage), which includes it after
// the per-ISA helpers; not a header of its own.
#pragma once

namespace vecpack::kernels {
namespace {

// ------------------------------------------------------------------------- pq table scan
// Each code read selects `Lanes` consecutive floats (one per query of a group), added as whole
// batches: of the ISA's width, or of a narrower ISA the CPU also has when a group is smaller
// (four lanes are one SSE register even on AVX-512). Fewer than four lanes are added as scalars.
// Rows rows are summed at once, giving independent chains of additions, which run in the same
// order as in the reference, so every ISA gives the same sums bit for bit.
template <class Arch, size_t Lanes>
using lane_arch = std::conditional_t<(Lanes >= xsimd::batch<float, Arch>::size), Arch,
                                     std::conditional_t<(Lanes >= 8), xsimd::avx2, xsimd::sse4_2>>;

template <class Arch, size_t Lanes, size_t Rows, class Index>
[[gnu::always_inline]] inline void pq_scan_rows(const Index* indices, size_t stride, size_t m, size_t ksub,
                                                const float* tables, float* out) {
  if constexpr (Lanes < 4) {
    float acc[Rows][Lanes] = {};
    const float* table = tables;
    for (size_t j = 0; j < m; ++j, table += ksub * Lanes)
      for (size_t r = 0; r < Rows; ++r) {
        const float* entry = table + static_cast<size_t>(indices[r * stride + j]) * Lanes;
        for (size_t l = 0; l < Lanes; ++l) acc[r][l] += entry[l];
      }
    for (size_t r = 0; r < Rows; ++r)
      for (size_t l = 0; l < Lanes; ++l) out[r * Lanes + l] = acc[r][l];
  } else {
    using floats = xsimd::batch<float, lane_arch<Arch, Lanes>>;
    constexpr size_t width = floats::size, parts = Lanes / width;
    std::array<floats, Rows * parts> acc;
    unrolled<Rows * parts>([&](auto a) { acc[a] = floats(0.0f); });
    const float* table = tables;
    for (size_t j = 0; j < m; ++j, table += ksub * Lanes) {
      unrolled<Rows>([&](auto r) {
        const float* entry = table + static_cast<size_t>(indices[r * stride + j]) * Lanes;
        unrolled<parts>([&](auto p) { acc[r * parts + p] += floats::load_unaligned(entry + p * width); });
      });
    }
    unrolled<Rows>([&](auto r) {
      unrolled<parts>([&](auto p) { acc[r * parts + p].store_unaligned(out + r * Lanes + p * width); });
    });
  }
}

template <class Arch, size_t Lanes, class Index>
void pq_scan_lanes(const Index* indices, size_t stride, size_t rows, size_t m, size_t ksub, const float* tables,
                   float* out, const char* prefetch, size_t prefetch_lines) {
  constexpr size_t kRows = Lanes >= 8 ? 2 : 4;
  constexpr size_t kLine = 64;
  const size_t lines_per_step = rows ? (prefetch_lines + rows - 1) / rows * kRows : 0;
  const char* prefetch_end = prefetch ? prefetch + prefetch_lines * kLine : nullptr;
  size_t i = 0;
  for (; i + kRows <= rows; i += kRows) {
    for (size_t p = 0; p < lines_per_step && prefetch < prefetch_end; ++p, prefetch += kLine)
      __builtin_prefetch(prefetch, 0, 2);
    pq_scan_rows<Arch, Lanes, kRows>(indices + i * stride, stride, m, ksub, tables, out + i * Lanes);
  }
  for (; i < rows; ++i) pq_scan_rows<Arch, Lanes, 1>(indices + i * stride, stride, m, ksub, tables, out + i * Lanes);
  for (; prefetch < prefetch_end; prefetch += kLine) __builtin_prefetch(prefetch, 0, 2);
}

template <class Arch, class Index>
[[gnu::flatten]] void pq_scan(const Index* indices, size_t stride, size_t rows, size_t m, size_t ksub,
                              const float* tables, size_t lanes, float* out, const void* prefetch,
                              size_t prefetch_lines) {
  const char* next = static_cast<const char*>(prefetch);
  switch (lanes) {
    case 16: return pq_scan_lanes<Arch, 16>(indices, stride, rows, m, ksub, tables, out, next, prefetch_lines);
    case 8: return pq_scan_lanes<Arch, 8>(indices, stride, rows, m, ksub, tables, out, next, prefetch_lines);
    case 4: return pq_scan_lanes<Arch, 4>(indices, stride, rows, m, ksub, tables, out, next, prefetch_lines);
    case 2: return pq_scan_lanes<Arch, 2>(indices, stride, rows, m, ksub, tables, out, next, prefetch_lines);
    default: return pq_scan_lanes<Arch, 1>(indices, stride, rows, m, ksub, tables, out, next, prefetch_lines);
  }
}

// 4-bit fast scan. Blocks of 64 rows; byte j of the 64 rows is one 64-byte run, its low nibble
// the code of sub-quantizer 2j and its high nibble that of 2j + 1. A query's 16-entry uint8
// table for one sub-quantizer sits in every 128-bit lane, so one byte shuffle (pshufb) looks it
// up for a register's worth of rows at once. The looked-up bytes are summed as 16-bit lanes
// (even row + 256 * odd row, wrapping) and, apart, the odd rows' bytes shifted down; the even
// rows' sums are recovered at the end. Neither overflows for up to 256 sub-quantizers. The code
// bytes are loaded and split into nibbles once for NQ queries.
template <size_t NQ>
inline void pq4_select_group(const uint8_t* codes, size_t bytes, size_t rows, const uint8_t* luts, size_t stride,
                             const float* slope, const float* offset, const float* pair_norm,
                             uint32_t* const* found_rows, uint16_t* const* found_sums, size_t* found) {
#if defined(__AVX512BW__)
  using V = __m512i;
  const V nibble = _mm512_set1_epi8(0x0f);
  auto load = [](const uint8_t* p) { return _mm512_loadu_si512(p); };
  auto table = [](const uint8_t* p) { return _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); };
  auto zero = [] { return _mm512_setzero_si512(); };
  auto band = [](V a, V b) { return _mm512_and_si512(a, b); };
  auto shr4 = [](V a) { return _mm512_srli_epi16(a, 4); };
  auto shr8 = [](V a) { return _mm512_srli_epi16(a, 8); };
  auto shl8 = [](V a) { return _mm512_slli_epi16(a, 8); };
  auto add = [](V a, V b) { return _mm512_add_epi16(a, b); };
  auto sub = [](V a, V b) { return _mm512_sub_epi16(a, b); };
  auto shuffle = [](V t, V i) { return _mm512_shuffle_epi8(t, i); };
  auto set16 = [](uint16_t v) { return _mm512_set1_epi16(static_cast<short>(v)); };
  // Bits 2i and 2i + 1 set when 16-bit lane i is at least the bound: one bit per byte (row).
  auto at_least = [](V a, V b) -> uint64_t { return _mm512_movepi8_mask(_mm512_movm_epi16(_mm512_cmpge_epu16_mask(a, b))); };
  auto store = [](uint16_t* p, V a) { _mm512_storeu_si512(p, a); };
  // Lane bounds from 32 pair norms (see pq4_bound), saturated to 0..65535 by packus.
  auto lane_bounds = [](const float* norm, float slope, float offset) {
    const __m512 s = _mm512_set1_ps(slope), o = _mm512_set1_ps(offset - 1.0f), top = _mm512_set1_ps(65535.0f);
    auto bound = [&](const float* n) {
      const __m512 limit = _mm512_min_ps(_mm512_fmsub_ps(s, _mm512_loadu_ps(n), o), top);
      return _mm512_cvttps_epi32(_mm512_roundscale_ps(limit, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC));
    };
    const __m512i a = bound(norm), b = bound(norm + 16);
    // packus interleaves the 128-bit lanes of a and b; the permutation puts them back in order.
    return _mm512_permutexvar_epi64(_mm512_setr_epi64(0, 2, 4, 6, 1, 3, 5, 7), _mm512_packus_epi32(a, b));
  };
#elif defined(__AVX2__)
  using V = __m256i;
  const V nibble = _mm256_set1_epi8(0x0f);
  auto load = [](const uint8_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); };
  auto table = [](const uint8_t* p) { return _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); };
  auto zero = [] { return _mm256_setzero_si256(); };
  auto band = [](V a, V b) { return _mm256_and_si256(a, b); };
  auto shr4 = [](V a) { return _mm256_srli_epi16(a, 4); };
  auto shr8 = [](V a) { return _mm256_srli_epi16(a, 8); };
  auto shl8 = [](V a) { return _mm256_slli_epi16(a, 8); };
  auto add = [](V a, V b) { return _mm256_add_epi16(a, b); };
  auto sub = [](V a, V b) { return _mm256_sub_epi16(a, b); };
  auto shuffle = [](V t, V i) { return _mm256_shuffle_epi8(t, i); };
  auto set16 = [](uint16_t v) { return _mm256_set1_epi16(static_cast<short>(v)); };
  auto at_least = [](V a, V b) -> uint64_t {
    const V yes = _mm256_cmpeq_epi16(_mm256_subs_epu16(b, a), _mm256_setzero_si256());
    return static_cast<uint32_t>(_mm256_movemask_epi8(yes));
  };
  auto store = [](uint16_t* p, V a) { _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), a); };
  auto lane_bounds = [](const float* norm, float slope, float offset) {
    const __m256 s = _mm256_set1_ps(slope), o = _mm256_set1_ps(offset - 1.0f), top = _mm256_set1_ps(65535.0f);
    auto bound = [&](const float* n) {
      return _mm256_cvttps_epi32(_mm256_floor_ps(_mm256_min_ps(_mm256_fmsub_ps(s, _mm256_loadu_ps(n), o), top)));
    };
    const __m256i a = bound(norm), b = bound(norm + 8);
    return _mm256_permute4x64_epi64(_mm256_packus_epi32(a, b), 0xd8);
  };
#else
  using V = __m128i;
  const V nibble = _mm_set1_epi8(0x0f);
  auto load = [](const uint8_t* p) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p)); };
  auto table = load;
  auto zero = [] { return _mm_setzero_si128(); };
  auto band = [](V a, V b) { return _mm_and_si128(a, b); };
  auto shr4 = [](V a) { return _mm_srli_epi16(a, 4); };
  auto shr8 = [](V a) { return _mm_srli_epi16(a, 8); };
  auto shl8 = [](V a) { return _mm_slli_epi16(a, 8); };
  auto add = [](V a, V b) { return _mm_add_epi16(a, b); };
  auto sub = [](V a, V b) { return _mm_sub_epi16(a, b); };
  auto shuffle = [](V t, V i) { return _mm_shuffle_epi8(t, i); };
  auto set16 = [](uint16_t v) { return _mm_set1_epi16(static_cast<short>(v)); };
  auto at_least = [](V a, V b) -> uint64_t {
    const V yes = _mm_cmpeq_epi16(_mm_subs_epu16(b, a), _mm_setzero_si128());
    return static_cast<uint32_t>(_mm_movemask_epi8(yes));
  };
  auto store = [](uint16_t* p, V a) { _mm_storeu_si128(reinterpret_cast<__m128i*>(p), a); };
  // Without FMA the bounds are computed one by one, rounded as the other ISAs round them.
  auto lane_bounds = [](const float* norm, float slope, float offset) {
    alignas(16) int32_t b[8];
    for (size_t i = 0; i < 8; ++i) b[i] = pq4_bound(slope, norm[i], offset);
    return _mm_packus_epi32(_mm_load_si128(reinterpret_cast<const __m128i*>(b)),
                            _mm_load_si128(reinterpret_cast<const __m128i*>(b + 4)));
  };
#endif
  constexpr size_t kWidth = sizeof(V);  // rows per register
  constexpr uint64_t kEvenRows = 0x5555555555555555ull;
  const size_t blocks = (rows + 63) / 64;
  alignas(64) uint16_t even_sums[kWidth / 2], odd_sums[kWidth / 2];
  // Without pair norms every lane of table q has one bound (norm 1).
  V flat_bound[NQ];
  for (size_t q = 0; q < NQ; ++q)
    flat_bound[q] = set16(static_cast<uint16_t>(std::clamp<int32_t>(pq4_bound(slope[q], 1.0f, offset[q]), 0, 65535)));
  for (size_t b = 0; b < blocks; ++b) {
    const uint8_t* block = codes + b * bytes * 64;
    for (size_t part = 0; part < 64 && b * 64 + part < rows; part += kWidth) {
      // The accumulators stay in registers only when the loops over q are unrolled.
      V even[NQ], odd[NQ];
#pragma GCC unroll 8
      for (size_t q = 0; q < NQ; ++q) even[q] = odd[q] = zero();
      for (size_t j = 0; j < bytes; ++j) {
        const V c = load(block + j * 64 + part);
        const V low = band(c, nibble), high = band(shr4(c), nibble);
#pragma GCC unroll 8
        for (size_t q = 0; q < NQ; ++q) {
          const uint8_t* lut = luts + q * stride + j * 32;
          const V a = shuffle(table(lut), low), h = shuffle(table(lut + 16), high);
          even[q] = add(even[q], add(a, h));
          odd[q] = add(odd[q], add(shr8(a), shr8(h)));
        }
      }
      const size_t here = std::min<size_t>(kWidth, rows - b * 64 - part);
      const uint64_t valid = here == 64 ? ~uint64_t{0} : (uint64_t{1} << here) - 1;
      const float* norms = pair_norm ? pair_norm + (b * 64 + part) / 2 : nullptr;
#pragma GCC unroll 8
      for (size_t q = 0; q < NQ; ++q) {
        even[q] = sub(even[q], shl8(odd[q]));
        const V bound = norms ? lane_bounds(norms, slope[q], offset[q]) : flat_bound[q];
        uint64_t mask = ((at_least(even[q], bound) & kEvenRows) | (at_least(odd[q], bound) & ~kEvenRows)) & valid;
        if (!mask) continue;
        store(even_sums, even[q]);
        store(odd_sums, odd[q]);
        size_t n = found[q];
        do {
          const unsigned r = static_cast<unsigned>(__builtin_ctzll(mask));
          mask &= mask - 1;
          found_rows[q][n] = static_cast<uint32_t>(b * 64 + part + r);
          found_sums[q][n] = (r & 1) ? odd_sums[r / 2] : even_sums[r / 2];
          ++n;
        } while (mask);
        found[q] = n;
      }
    }
  }
}

template <class Arch>
void pq4_fastscan_select(const uint8_t* codes, size_t bytes, size_t rows, const uint8_t* luts, size_t stride, size_t nq,
                         const float* slope, const float* offset, const float* pair_norm,
                         uint32_t* const* found_rows, uint16_t* const* found_sums, size_t* found) {
  // Two accumulators per query: four queries share each code load (more gained nothing here).
  constexpr size_t kMaxGroup = 4;
  for (size_t q = 0; q < nq;) {
    const size_t left = std::min(kMaxGroup, nq - q);
    const size_t group = left >= 8 ? 8 : left >= 4 ? 4 : left >= 2 ? 2 : 1;
    auto run = [&](auto size) {
      pq4_select_group<decltype(size)::value>(codes, bytes, rows, luts + q * stride, stride, slope + q, offset + q,
                                              pair_norm, found_rows + q, found_sums + q, found + q);
    };
    if (group == 8) run(std::integral_constant<size_t, 8>{});
    else if (group == 4) run(std::integral_constant<size_t, 4>{});
    else if (group == 2) run(std::integral_constant<size_t, 2>{});
    else run(std::integral_constant<size_t, 1>{});
    q += group;
  }
}

}  // namespace
}  // namespace vecpack::kernels
