// The SIMD kernels, written once as templates on an xsimd architecture. Each kernels_<isa>.cc
// includes this header under its own target flags and instantiates it for one architecture.
// Only loads, narrowing stores and f16 conversions are written per ISA (struct isa_ops); the
// loops, accumulation and tails are shared.
//
// Everything here has internal linkage: the same inline helpers compiled with different target
// flags in different translation units must never be merged by the linker, or an AVX-512 copy
// could end up serving the SSE4.2 table.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>
#include <utility>

// GCC 12's AVX-512 intrinsics use deliberately undefined registers, which -Wuninitialized
// reports wherever they are inlined.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include <xsimd/xsimd.hpp>
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

#include "kernels/kernels.h"
#include "kernels/tables.h"

namespace vecpack::kernels {
namespace {

inline float bits_to_float(uint32_t bits) noexcept {
  float value;
  std::memcpy(&value, &bits, sizeof value);
  return value;
}

// Binary16 to float without F16C; matches F16C bit for bit (NaN payload kept and made quiet).
inline float half_to_float_portable(uint16_t half) noexcept {
  const uint32_t sign = static_cast<uint32_t>(half & 0x8000u) << 16;
  const uint32_t exponent = half & 0x7c00u;
  const uint32_t magnitude = half & 0x7fffu;
  uint32_t bits = (magnitude << 13) + (112u << 23);
  if (exponent == 0x7c00u) {
    bits += 112u << 23;
    if (magnitude != 0x7c00u) bits |= 0x00400000u;
  } else if (exponent == 0) {
    // (2^-14 + m * 2^-24) - 2^-14 is exact and never touches float subnormals (DAZ-safe).
    const float value = bits_to_float(bits + (1u << 23)) - 0x1p-14f;
    return sign != 0 ? -value : value;
  }
  return bits_to_float(sign | bits);
}

// ------------------------------------------------------------------------------------ per-ISA
// For each architecture: loads that widen stored elements into one batch of floats, the matching
// single-element decode for tails, narrowing stores, and optional hardware f32 -> f16.
template <class Arch>
struct isa_ops;

#if defined(__SSE4_2__)
template <>
struct isa_ops<xsimd::sse4_2> {
  using floats = xsimd::batch<float, xsimd::sse4_2>;
  using ints = xsimd::batch<int32_t, xsimd::sse4_2>;
  static constexpr bool has_f16c = false;

  static floats load_u8(const uint8_t* p) noexcept {
    int32_t packed;
    std::memcpy(&packed, p, sizeof packed);
    return _mm_cvtepi32_ps(_mm_cvtepu8_epi32(_mm_cvtsi32_si128(packed)));
  }
  static __m128i load_u16_as_u32(const uint16_t* p) noexcept {
    return _mm_cvtepu16_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
  }
  static floats load_bf16(const uint16_t* p) noexcept {
    return _mm_castsi128_ps(_mm_slli_epi32(load_u16_as_u32(p), 16));
  }
  // Magnitude bits moved into float position and scaled by 2^(127 - 15) decode normals and
  // subnormals alike; infinity/NaN get the all-ones exponent (NaN also the quiet bit, as F16C
  // does); the sign goes back last. Needs DAZ off: see f16_scope.
  static floats load_f16(const uint16_t* p) noexcept {
    const __m128i half = load_u16_as_u32(p);
    const __m128i magnitude = _mm_and_si128(half, _mm_set1_epi32(0x7fff));
    const __m128 scaled = _mm_mul_ps(_mm_castsi128_ps(_mm_slli_epi32(magnitude, 13)), _mm_set1_ps(0x1p112f));
    const __m128i inf_or_nan = _mm_cmpgt_epi32(magnitude, _mm_set1_epi32(0x7bff));
    const __m128i nan = _mm_cmpgt_epi32(magnitude, _mm_set1_epi32(0x7c00));
    const __m128i exponent_fix = _mm_or_si128(_mm_and_si128(inf_or_nan, _mm_set1_epi32(0x7f800000)),
                                              _mm_and_si128(nan, _mm_set1_epi32(0x00400000)));
    const __m128i sign = _mm_slli_epi32(_mm_xor_si128(half, magnitude), 16);
    return _mm_or_ps(scaled, _mm_castsi128_ps(_mm_or_si128(exponent_fix, sign)));
  }
  // The f16 conversions above rely on the default floating-point environment: subnormal
  // operands honoured (code built with -ffast-math may set DAZ process-wide) and
  // round-to-nearest. For the duration of a call, restore both if someone changed them.
  class f16_scope {
   public:
    f16_scope() noexcept : saved_(_mm_getcsr()) {
      if ((saved_ & kNonDefault) != 0) _mm_setcsr(saved_ & ~kNonDefault);
    }
    ~f16_scope() {
      // Exception flags raised meanwhile (bits 0-5) are kept.
      if ((saved_ & kNonDefault) != 0) _mm_setcsr(saved_ | (_mm_getcsr() & 0x3fu));
    }
    f16_scope(const f16_scope&) = delete;
    f16_scope& operator=(const f16_scope&) = delete;

   private:
    static constexpr unsigned kNonDefault = 0x0040u | 0x6000u;  // DAZ | rounding control
    unsigned saved_;
  };
  static float f16_one(uint16_t half) noexcept { return half_to_float_portable(half); }
  // Lanes hold values in [0, 0xffff].
  static void store_low_u16(uint16_t* p, ints v) noexcept {
    _mm_storel_epi64(reinterpret_cast<__m128i*>(p), _mm_packus_epi32(v, v));
  }
  static float reduce_min(floats v) noexcept {
    __m128 m = _mm_min_ps(v, _mm_movehl_ps(v, v));
    m = _mm_min_ss(m, _mm_shuffle_ps(m, m, 1));
    return _mm_cvtss_f32(m);
  }
};
#endif

#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
template <>
struct isa_ops<xsimd::fma3<xsimd::avx2>> {
  using floats = xsimd::batch<float, xsimd::fma3<xsimd::avx2>>;
  using ints = xsimd::batch<int32_t, xsimd::fma3<xsimd::avx2>>;
  static constexpr bool has_f16c = true;
  struct f16_scope {};  // F16C ignores DAZ and takes its rounding mode from the instruction

  static floats load_u8(const uint8_t* p) noexcept {
    return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
  }
  static floats load_bf16(const uint16_t* p) noexcept {
    const __m256i widened = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(widened, 16));
  }
  static floats load_f16(const uint16_t* p) noexcept {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
  static float f16_one(uint16_t half) noexcept { return _cvtsh_ss(half); }
  static void store_low_u16(uint16_t* p, ints v) noexcept {
    // packus works within 128-bit lanes; gather the two useful quadwords into the low half.
    const __m256i packed = _mm256_permute4x64_epi64(_mm256_packus_epi32(v, v), 0x08);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm256_castsi256_si128(packed));
  }
  static void store_f16(uint16_t* p, floats v) noexcept {
    const __m128i halves = _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p), halves);
  }
  static float reduce_min(floats v) noexcept {
    __m128 m = _mm_min_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_min_ps(m, _mm_movehl_ps(m, m));
    m = _mm_min_ss(m, _mm_shuffle_ps(m, m, 1));
    return _mm_cvtss_f32(m);
  }
};
#endif

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__F16C__)
template <>
struct isa_ops<xsimd::avx512bw> {
  using floats = xsimd::batch<float, xsimd::avx512bw>;
  using ints = xsimd::batch<int32_t, xsimd::avx512bw>;
  static constexpr bool has_f16c = true;
  struct f16_scope {};  // F16C ignores DAZ and takes its rounding mode from the instruction

  static floats load_u8(const uint8_t* p) noexcept {
    return _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
  }
  static floats load_bf16(const uint16_t* p) noexcept {
    const __m512i widened = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
    return _mm512_castsi512_ps(_mm512_slli_epi32(widened, 16));
  }
  static floats load_f16(const uint16_t* p) noexcept {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  }
  static float f16_one(uint16_t half) noexcept { return _cvtsh_ss(half); }
  static void store_low_u16(uint16_t* p, ints v) noexcept {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), _mm512_cvtepi32_epi16(v));
  }
  static void store_f16(uint16_t* p, floats v) noexcept {
    const __m256i halves = _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), halves);
  }
  static float reduce_min(floats v) noexcept { return _mm512_reduce_min_ps(v); }
};
#endif

// A compile-time index. Like std::integral_constant, but with internal linkage, so that its
// out-of-line copies in unoptimized builds stay private to each ISA's translation unit.
template <size_t I>
struct index_constant {
  constexpr operator size_t() const noexcept { return I; }
};

// Calls f(index_constant<I>{}) for I = 0 .. N-1, so that accumulator arrays are only ever
// indexed by constants and stay in registers.
template <size_t... I, class F>
[[gnu::always_inline]] inline void unrolled(std::index_sequence<I...>, F&& f) {
  (f(index_constant<I>{}), ...);
}
template <size_t N, class F>
[[gnu::always_inline]] inline void unrolled(F&& f) {
  unrolled(std::make_index_sequence<N>{}, static_cast<F&&>(f));
}

// ------------------------------------------------------------------------------ row sources
// A source turns stored row elements into floats: a batch at column j (given the per-column
// terms shared by every row of a group) or one value for the tail.
template <class Arch>
struct f32_source {
  using element = float;
  using floats = xsimd::batch<float, Arch>;
  struct column_terms {};
  column_terms column(size_t) const noexcept { return {}; }
  floats load(const float* row, size_t j, column_terms) const noexcept { return floats::load_unaligned(row + j); }
  float load_one(const float* row, size_t j) const noexcept { return row[j]; }
};

template <class Arch>
struct f16_source {
  using element = uint16_t;
  using floats = xsimd::batch<float, Arch>;
  struct column_terms {};
  column_terms column(size_t) const noexcept { return {}; }
  floats load(const uint16_t* row, size_t j, column_terms) const noexcept { return isa_ops<Arch>::load_f16(row + j); }
  float load_one(const uint16_t* row, size_t j) const noexcept { return isa_ops<Arch>::f16_one(row[j]); }
};

template <class Arch>
struct bf16_source {
  using element = uint16_t;
  using floats = xsimd::batch<float, Arch>;
  struct column_terms {};
  column_terms column(size_t) const noexcept { return {}; }
  floats load(const uint16_t* row, size_t j, column_terms) const noexcept { return isa_ops<Arch>::load_bf16(row + j); }
  float load_one(const uint16_t* row, size_t j) const noexcept {
    return bits_to_float(static_cast<uint32_t>(row[j]) << 16);
  }
};

template <class Arch>
struct u8_affine_source {
  using element = uint8_t;
  using floats = xsimd::batch<float, Arch>;
  const float* low;
  const float* step;
  struct column_terms {
    floats low;
    floats step;
  };
  column_terms column(size_t j) const noexcept {
    return {floats::load_unaligned(low + j), floats::load_unaligned(step + j)};
  }
  floats load(const uint8_t* row, size_t j, const column_terms& terms) const noexcept {
    return xsimd::fma(terms.step, isa_ops<Arch>::load_u8(row + j), terms.low);
  }
  float load_one(const uint8_t* row, size_t j) const noexcept { return low[j] + step[j] * static_cast<float>(row[j]); }
};

}  // namespace
}  // namespace vecpack::kernels

// The kernel families, one header each; they use the helpers above and are included only here.
#include "kernels/kernels_dot.h"
#include "kernels/kernels_convert.h"
#include "kernels/kernels_centroid.h"
#include "kernels/kernels_pq.h"
#include "kernels/kernels_binary.h"

namespace vecpack::kernels {
namespace {

template <class Arch>
constexpr KernelTable make_table(Isa isa) {
  return KernelTable{
      isa,
      &dot_f32_rows<Arch>,
      &dot_f16_rows<Arch>,
      &dot_bf16_rows<Arch>,
      &dot_u8_affine_rows<Arch>,
      &f16_to_f32<Arch>,
      &bf16_to_f32<Arch>,
      &f32_to_f16<Arch>,
      &f32_to_bf16<Arch>,
      &u8_affine_decode<Arch>,
      &max_f32<Arch>,
      &select_above<Arch>,
      &nearest_centroids<Arch>,
      &centroid_dots<Arch>,
      &anisotropic_argmin<Arch>,
      &pq_scan<Arch, uint8_t>,
      &pq_scan<Arch, uint16_t>,
      &pq4_fastscan_select<Arch>,
      &hamming_rows<Arch>,
      &bitplane_rows<Arch>,
  };
}

}  // namespace
}  // namespace vecpack::kernels
