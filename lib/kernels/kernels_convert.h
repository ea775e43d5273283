// Kernels: conversions between f32, f16 and bf16; u8 affine decode; max and threshold selection.
// Part of kernels_impl.h (templates on an xsimd architecture, internal linkage), which includes it
// after the per-ISA helpers; not a header of its own.
#pragma once

namespace vecpack::kernels {
namespace {

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

}  // namespace
}  // namespace vecpack::kernels
