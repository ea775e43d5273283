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

// ------------------------------------------------------------------------------ dot products
// A group of Rows consecutive rows shares each load of q (and of the per-column terms); every
// row keeps Unroll independent accumulators per sum so that FMA latency is hidden.
template <class Arch, size_t Rows, size_t Unroll, bool WithSq, class Source>
[[gnu::always_inline]] inline void dot_row_group(const Source& source, const float* q,
                                                 const typename Source::element* first_row, size_t d,
                                                 float* dot, float* sq) {
  using floats = xsimd::batch<float, Arch>;
  constexpr size_t width = floats::size;
  std::array<floats, Rows * Unroll> dot_acc;
  std::array<floats, Rows * Unroll> sq_acc;
  unrolled<Rows * Unroll>([&](auto k) {
    dot_acc[k] = floats(0.0f);
    if constexpr (WithSq) sq_acc[k] = floats(0.0f);
  });

  auto accumulate_column = [&](size_t j, auto u) __attribute__((always_inline)) {
    const floats query = floats::load_unaligned(q + j);
    const auto terms = source.column(j);
    unrolled<Rows>([&](auto r) {
      const floats x = source.load(first_row + r * d, j, terms);
      dot_acc[r * Unroll + u] = xsimd::fma(query, x, dot_acc[r * Unroll + u]);
      if constexpr (WithSq) sq_acc[r * Unroll + u] = xsimd::fma(x, x, sq_acc[r * Unroll + u]);
    });
  };

  size_t j = 0;
  for (; j + Unroll * width <= d; j += Unroll * width) {
    unrolled<Unroll>([&](auto u) { accumulate_column(j + u * width, u); });
  }
  for (; j + width <= d; j += width) accumulate_column(j, index_constant<0>{});

  unrolled<Rows>([&](auto r) {
    const typename Source::element* row = first_row + r * d;
    floats dot_total = dot_acc[r * Unroll];
    unrolled<Unroll - 1>([&](auto u) { dot_total += dot_acc[r * Unroll + u + 1]; });
    float dot_sum = xsimd::hadd(dot_total);
    float sq_sum = 0.0f;
    if constexpr (WithSq) {
      floats sq_total = sq_acc[r * Unroll];
      unrolled<Unroll - 1>([&](auto u) { sq_total += sq_acc[r * Unroll + u + 1]; });
      sq_sum = xsimd::hadd(sq_total);
    }
    for (size_t t = j; t < d; ++t) {
      const float x = source.load_one(row, t);
      dot_sum += q[t] * x;
      if constexpr (WithSq) sq_sum += x * x;
    }
    dot[r] = dot_sum;
    if constexpr (WithSq) sq[r] = sq_sum;
  });
}

template <class Arch, bool WithSq, class Source>
[[gnu::flatten]] void dot_rows_with(const Source& source, const float* q, const typename Source::element* rows,
                                    size_t count, size_t d, float* dot, float* sq) {
  // Four rows at a time; with sq that is already eight independent chains per column step.
  constexpr size_t kGroupRows = 4;
  constexpr size_t kGroupUnroll = WithSq ? 1 : 2;
  constexpr size_t kSingleUnroll = WithSq ? 2 : 4;
  size_t i = 0;
  for (; i + kGroupRows <= count; i += kGroupRows) {
    dot_row_group<Arch, kGroupRows, kGroupUnroll, WithSq>(source, q, rows + i * d, d, dot + i,
                                                          WithSq ? sq + i : nullptr);
  }
  for (; i < count; ++i) {
    dot_row_group<Arch, 1, kSingleUnroll, WithSq>(source, q, rows + i * d, d, dot + i, WithSq ? sq + i : nullptr);
  }
}

template <class Arch, class Source>
void dot_rows(const Source& source, const float* q, const typename Source::element* rows, size_t count, size_t d,
              float* dot, float* sq) {
  if (sq != nullptr) {
    dot_rows_with<Arch, true>(source, q, rows, count, d, dot, sq);
  } else {
    dot_rows_with<Arch, false>(source, q, rows, count, d, dot, sq);
  }
}

template <class Arch>
void dot_f32_rows(const float* q, const float* rows, size_t count, size_t d, float* dot, float* sq) {
  dot_rows<Arch>(f32_source<Arch>{}, q, rows, count, d, dot, sq);
}

template <class Arch>
void dot_f16_rows(const float* q, const uint16_t* rows, size_t count, size_t d, float* dot, float* sq) {
  [[maybe_unused]] const typename isa_ops<Arch>::f16_scope scope;
  dot_rows<Arch>(f16_source<Arch>{}, q, rows, count, d, dot, sq);
}

template <class Arch>
void dot_bf16_rows(const float* q, const uint16_t* rows, size_t count, size_t d, float* dot, float* sq) {
  dot_rows<Arch>(bf16_source<Arch>{}, q, rows, count, d, dot, sq);
}

template <class Arch>
void dot_u8_affine_rows(const float* q, const float* low, const float* step, const uint8_t* codes, size_t count,
                        size_t d, float* dot, float* sq) {
  dot_rows<Arch>(u8_affine_source<Arch>{low, step}, q, codes, count, d, dot, sq);
}

// ------------------------------------------------------------------------------ conversions
// Lane masks built from arithmetic rather than xsimd::select, whose AVX-512 integer version
// does not compile without optimization in xsimd 8.1.

// All ones where a < b, else zero; both operands must lie in [0, 2^31).
template <class Ints>
[[gnu::always_inline]] inline Ints less_than_mask(const Ints& a, const Ints& b) noexcept {
  return (a - b) >> 31;
}
template <class Ints>
[[gnu::always_inline]] inline Ints blend(const Ints& mask, const Ints& if_set, const Ints& if_clear) noexcept {
  return (if_set & mask) | (if_clear & ~mask);
}

// Tails go through the same vector code on a zero-padded copy, so every element of an array is
// converted identically whatever its position.
template <class Arch, class In, class Out, class Convert>
[[gnu::always_inline]] inline void convert_blocks(const In* in, size_t n, Out* out, Convert convert) {
  constexpr size_t width = xsimd::batch<float, Arch>::size;
  size_t i = 0;
  for (; i + width <= n; i += width) convert(in + i, out + i);
  if (i < n) {
    In padded_in[width] = {};
    Out padded_out[width];
    std::memcpy(padded_in, in + i, (n - i) * sizeof(In));
    convert(padded_in, padded_out);
    std::memcpy(out + i, padded_out, (n - i) * sizeof(Out));
  }
}

template <class Arch>
[[gnu::flatten]] void f16_to_f32(const uint16_t* in, size_t n, float* out) {
  [[maybe_unused]] const typename isa_ops<Arch>::f16_scope scope;
  convert_blocks<Arch>(in, n, out, [](const uint16_t* src, float* dst) {
    isa_ops<Arch>::load_f16(src).store_unaligned(dst);
  });
}

template <class Arch>
[[gnu::flatten]] void bf16_to_f32(const uint16_t* in, size_t n, float* out) {
  convert_blocks<Arch>(in, n, out, [](const uint16_t* src, float* dst) {
    isa_ops<Arch>::load_bf16(src).store_unaligned(dst);
  });
}

template <class Arch>
[[gnu::flatten]] void f32_to_f16(const float* in, size_t n, uint16_t* out) {
  using floats = xsimd::batch<float, Arch>;
  using ints = xsimd::batch<int32_t, Arch>;
  [[maybe_unused]] const typename isa_ops<Arch>::f16_scope scope;
  if constexpr (isa_ops<Arch>::has_f16c) {
    convert_blocks<Arch>(in, n, out, [](const float* src, uint16_t* dst) {
      isa_ops<Arch>::store_f16(dst, floats::load_unaligned(src));
    });
  } else {
    // Same cases as the scalar reference, but a subnormal result is rounded by the FPU: adding
    // 0.5f (whose ulp is 2^-24, the half subnormal unit) rounds to nearest even, the mode
    // f16_scope guarantees.
    convert_blocks<Arch>(in, n, out, [](const float* src, uint16_t* dst) {
      const floats value = floats::load_unaligned(src);
      const ints bits = xsimd::bitwise_cast<ints>(value);
      const ints magnitude = bits & ints(0x7fffffff);
      const ints sign = (bits >> 16) & ints(0x8000);

      const ints odd = (magnitude >> 13) & ints(1);
      const ints normal = (magnitude + ints(0x0fff - (112 << 23)) + odd) >> 13;
      const floats sub_sum = xsimd::bitwise_cast<floats>(magnitude) + floats(0.5f);
      const ints subnormal = xsimd::bitwise_cast<ints>(sub_sum) - ints(126 << 23);
      const ints quiet_nan = ints(0x7e00) | ((magnitude >> 13) & ints(0x3ff));

      ints result = blend(less_than_mask(magnitude, ints(0x38800000)), subnormal, normal);
      result = blend(less_than_mask(magnitude, ints(0x477ff000)), result, ints(0x7c00));
      result = blend(less_than_mask(ints(0x7f800000), magnitude), quiet_nan, result);
      isa_ops<Arch>::store_low_u16(dst, result | sign);
    });
  }
}

template <class Arch>
[[gnu::flatten]] void f32_to_bf16(const float* in, size_t n, uint16_t* out) {
  using floats = xsimd::batch<float, Arch>;
  using ints = xsimd::batch<int32_t, Arch>;
  convert_blocks<Arch>(in, n, out, [](const float* src, uint16_t* dst) {
    const ints bits = xsimd::bitwise_cast<ints>(floats::load_unaligned(src));
    const ints nan = less_than_mask(ints(0x7f800000), bits & ints(0x7fffffff));
    // NaN is truncated (never rounded into another value) and made quiet. The add may carry
    // into the sign bit; the mask undoes the sign extension of the arithmetic shift.
    const ints rounding = (ints(0x7fff) + ((bits >> 16) & ints(1))) & ~nan;
    const ints rounded = ((bits + rounding) >> 16) & ints(0xffff);
    isa_ops<Arch>::store_low_u16(dst, rounded | (nan & ints(0x0040)));
  });
}

template <class Arch>
[[gnu::flatten]] void u8_affine_decode(const uint8_t* codes, size_t count, size_t d, const float* low,
                                       const float* step, float* out) {
  using floats = xsimd::batch<float, Arch>;
  constexpr size_t width = floats::size;
  for (size_t i = 0; i < count; ++i) {
    const uint8_t* row = codes + i * d;
    float* out_row = out + i * d;
    size_t j = 0;
    for (; j + width <= d; j += width) {
      const floats x = xsimd::fma(floats::load_unaligned(step + j), isa_ops<Arch>::load_u8(row + j),
                                  floats::load_unaligned(low + j));
      x.store_unaligned(out_row + j);
    }
    for (; j < d; ++j) out_row[j] = low[j] + step[j] * static_cast<float>(row[j]);
  }
}

template <class Arch>
size_t select_above(const float* x, size_t n, float threshold, uint32_t* out) {
  size_t found = 0, i = 0;
#if defined(__AVX512F__)
  // Compare 16 scores at once and compress the indices of the winners into place.
  const __m512 limit = _mm512_set1_ps(threshold);
  __m512i index = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  const __m512i sixteen = _mm512_set1_epi32(16);
  for (; i + 16 <= n; i += 16, index = _mm512_add_epi32(index, sixteen)) {
    const __mmask16 above = _mm512_cmp_ps_mask(_mm512_loadu_ps(x + i), limit, _CMP_GT_OQ);
    if (above == 0) continue;
    _mm512_mask_compressstoreu_epi32(out + found, above, index);
    found += static_cast<size_t>(__builtin_popcount(above));
  }
#elif defined(__AVX2__)
  const __m256 limit = _mm256_set1_ps(threshold);
  for (; i + 8 <= n; i += 8) {
    unsigned above = unsigned(_mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(x + i), limit, _CMP_GT_OQ)));
    for (; above; above &= above - 1) out[found++] = static_cast<uint32_t>(i + unsigned(__builtin_ctz(above)));
  }
#else
  const __m128 limit = _mm_set1_ps(threshold);
  for (; i + 4 <= n; i += 4) {
    unsigned above = unsigned(_mm_movemask_ps(_mm_cmpgt_ps(_mm_loadu_ps(x + i), limit)));
    for (; above; above &= above - 1) out[found++] = static_cast<uint32_t>(i + unsigned(__builtin_ctz(above)));
  }
#endif
  for (; i < n; ++i)
    if (x[i] > threshold) out[found++] = static_cast<uint32_t>(i);
  return found;
}

template <class Arch>
[[gnu::flatten]] float max_f32(const float* x, size_t n) {
  using floats = xsimd::batch<float, Arch>;
  constexpr size_t width = floats::size;
  constexpr size_t kChains = 4;
  float best = x[0];
  size_t i = 0;
  if (n >= width) {
    std::array<floats, kChains> chain;
    unrolled<kChains>([&](auto k) { chain[k] = floats(x[0]); });
    for (; i + kChains * width <= n; i += kChains * width) {
      unrolled<kChains>([&](auto k) { chain[k] = xsimd::max(chain[k], floats::load_unaligned(x + i + k * width)); });
    }
    for (; i + width <= n; i += width) chain[0] = xsimd::max(chain[0], floats::load_unaligned(x + i));
    const floats combined = xsimd::max(xsimd::max(chain[0], chain[1]), xsimd::max(chain[2], chain[3]));
    alignas(64) float lanes[width];
    combined.store_aligned(lanes);
    for (size_t k = 0; k < width; ++k) best = lanes[k] > best ? lanes[k] : best;
  }
  for (; i < n; ++i) best = x[i] > best ? x[i] : best;
  return best;
}

// ------------------------------------------------------------------------- nearest centroid
// Rows rows share each load of a centroid coordinate; every lane tracks the best centroid among
// those it has seen (strict < keeps the earliest), and the lanes are merged at the end by value,
// then by index, so ties resolve to the smallest index as in the scalar reference. Indices are
// kept as floats (exact below 2^24) so that one select serves values and indices alike.
// With FixedD coordinates known at compile time, the negated coordinates of the rows are
// broadcast once, outside the loop over centroids.
template <class Arch, size_t Rows, size_t FixedD>
[[gnu::always_inline]] inline void nearest_row_group(const float* x, size_t stride, size_t runtime_d,
                                                     const float* centroids_t, const float* half_sq, size_t k,
                                                     uint32_t* labels, float* best) {
  using floats = xsimd::batch<float, Arch>;
  constexpr size_t width = floats::size;
  alignas(64) float first_lanes[width];
  for (size_t l = 0; l < width; ++l) first_lanes[l] = static_cast<float>(l);
  floats lane_index = floats::load_aligned(first_lanes);
  std::array<floats, Rows> best_value, best_index;
  unrolled<Rows>([&](auto r) {
    best_value[r] = floats(std::numeric_limits<float>::infinity());
    best_index[r] = floats(0.0f);
  });
  std::array<floats, Rows*(FixedD == 0 ? 1 : FixedD)> negated;
  if constexpr (FixedD != 0) {
    unrolled<Rows>([&](auto r) { unrolled<FixedD>([&](auto j) { negated[r * FixedD + j] = floats(-x[r * stride + j]); }); });
  }
  for (size_t c = 0; c < k; c += width) {
    std::array<floats, Rows> acc;
    const floats norms = floats::load_unaligned(half_sq + c);
    unrolled<Rows>([&](auto r) { acc[r] = norms; });
    if constexpr (FixedD != 0) {
      unrolled<FixedD>([&](auto j) {
        const floats coordinate = floats::load_unaligned(centroids_t + j * k + c);
        unrolled<Rows>([&](auto r) { acc[r] = xsimd::fma(negated[r * FixedD + j], coordinate, acc[r]); });
      });
    } else {
      for (size_t j = 0; j < runtime_d; ++j) {
        const floats coordinate = floats::load_unaligned(centroids_t + j * k + c);
        unrolled<Rows>([&](auto r) { acc[r] = xsimd::fnma(floats(x[r * stride + j]), coordinate, acc[r]); });
      }
    }
    unrolled<Rows>([&](auto r) {
      const auto closer = acc[r] < best_value[r];
      best_value[r] = xsimd::select(closer, acc[r], best_value[r]);
      best_index[r] = xsimd::select(closer, lane_index, best_index[r]);
    });
    lane_index += floats(static_cast<float>(width));
  }
  // Merge of the lanes: the smallest value, then the smallest index among the lanes holding it.
  unrolled<Rows>([&](auto r) {
    const float value = isa_ops<Arch>::reduce_min(best_value[r]);
    const floats candidates = xsimd::select(best_value[r] == floats(value), best_index[r],
                                            floats(std::numeric_limits<float>::infinity()));
    const float index = isa_ops<Arch>::reduce_min(candidates);
    // Every lane NaN (NaN input): no lane matches, and the row gets centroid 0.
    labels[r] = index < std::numeric_limits<float>::infinity() ? static_cast<uint32_t>(index) : 0u;
    if (best != nullptr) best[r] = value;
  });
}

template <class Arch, size_t FixedD>
void nearest_centroids_with(const float* x, size_t n, size_t stride, size_t d, const float* centroids_t,
                            const float* half_sq, size_t k, uint32_t* labels, float* best) {
  constexpr size_t kGroupRows = 4;
  size_t i = 0;
  for (; i + kGroupRows <= n; i += kGroupRows)
    nearest_row_group<Arch, kGroupRows, FixedD>(x + i * stride, stride, d, centroids_t, half_sq, k, labels + i,
                                                best != nullptr ? best + i : nullptr);
  for (; i < n; ++i)
    nearest_row_group<Arch, 1, FixedD>(x + i * stride, stride, d, centroids_t, half_sq, k, labels + i,
                                       best != nullptr ? best + i : nullptr);
}

// Short rows (the usual product-quantizer sub-vectors) get a fully unrolled coordinate loop.
template <class Arch>
void nearest_centroids(const float* x, size_t n, size_t stride, size_t d, const float* centroids_t,
                       const float* half_sq, size_t k, uint32_t* labels, float* best) {
  switch (d) {
    case 1: return nearest_centroids_with<Arch, 1>(x, n, stride, d, centroids_t, half_sq, k, labels, best);
    case 2: return nearest_centroids_with<Arch, 2>(x, n, stride, d, centroids_t, half_sq, k, labels, best);
    case 3: return nearest_centroids_with<Arch, 3>(x, n, stride, d, centroids_t, half_sq, k, labels, best);
    case 4: return nearest_centroids_with<Arch, 4>(x, n, stride, d, centroids_t, half_sq, k, labels, best);
    case 5: return nearest_centroids_with<Arch, 5>(x, n, stride, d, centroids_t, half_sq, k, labels, best);
    case 6: return nearest_centroids_with<Arch, 6>(x, n, stride, d, centroids_t, half_sq, k, labels, best);
    case 7: return nearest_centroids_with<Arch, 7>(x, n, stride, d, centroids_t, half_sq, k, labels, best);
    case 8: return nearest_centroids_with<Arch, 8>(x, n, stride, d, centroids_t, half_sq, k, labels, best);
    default: return nearest_centroids_with<Arch, 0>(x, n, stride, d, centroids_t, half_sq, k, labels, best);
  }
}

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
      &pq_scan<Arch, uint8_t>,
      &pq_scan<Arch, uint16_t>,
      &pq4_fastscan_select<Arch>,
      &hamming_rows<Arch>,
      &bitplane_rows<Arch>,
  };
}

}  // namespace
}  // namespace vecpack::kernels
