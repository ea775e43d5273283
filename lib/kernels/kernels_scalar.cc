// Portable reference implementations. Every SIMD table is tested against these, and they run
// on CPUs without SSE4.2, so they favour obviously correct code over speed.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/kernels.h"
#include "kernels/tables.h"

namespace vecpack::kernels {
namespace {

uint32_t float_bits(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  return bits;
}

float bits_float(uint32_t bits) {
  float value;
  std::memcpy(&value, &bits, sizeof value);
  return value;
}

float half_to_float(uint16_t half) {
  const uint32_t sign = static_cast<uint32_t>(half & 0x8000u) << 16;
  const uint32_t exponent = (half >> 10) & 0x1fu;
  const uint32_t mantissa = half & 0x3ffu;
  if (exponent == 0x1f) {
    // Infinity keeps a zero mantissa; NaN keeps its payload and is made quiet, as F16C does.
    const uint32_t quiet = mantissa != 0 ? 0x00400000u : 0u;
    return bits_float(sign | 0x7f800000u | (mantissa << 13) | quiet);
  }
  if (exponent == 0) {
    // Zero or subnormal: mantissa * 2^-24, exact in float (a normal float for every mantissa).
    return bits_float(sign | float_bits(static_cast<float>(mantissa) * 0x1p-24f));
  }
  return bits_float(sign | ((exponent + 112) << 23) | (mantissa << 13));
}

uint16_t float_to_half(float value) {
  const uint32_t bits = float_bits(value);
  const uint32_t sign = (bits >> 16) & 0x8000u;
  const uint32_t magnitude = bits & 0x7fffffffu;
  if (magnitude > 0x7f800000u) {
    // NaN: quiet, keeping the top payload bits.
    return static_cast<uint16_t>(sign | 0x7e00u | ((magnitude >> 13) & 0x3ffu));
  }
  if (magnitude >= 0x477ff000u) {
    // 65520 is the midpoint between 65504 (largest half) and 65536; from there up it is infinity.
    return static_cast<uint16_t>(sign | 0x7c00u);
  }
  if (magnitude >= 0x38800000u) {
    // Normal half (>= 2^-14): rebias the exponent by -112 and round the 13 dropped bits to
    // nearest even; a mantissa carry correctly bumps the exponent.
    const uint32_t odd = (magnitude >> 13) & 1u;
    const uint32_t rounded = magnitude - (112u << 23) + 0x0fffu + odd;
    return static_cast<uint16_t>(sign | (rounded >> 13));
  }
  if (magnitude <= 0x33000000u) {
    // At most 2^-25, half of the smallest subnormal: rounds to zero (ties to even = zero).
    return static_cast<uint16_t>(sign);
  }
  // Subnormal half: count units of 2^-24. The float is m * 2^(e - 150) with the implicit bit
  // in m, so the unit count is m >> (126 - e) before rounding.
  const uint32_t exponent = magnitude >> 23;
  const uint32_t mantissa = (magnitude & 0x7fffffu) | 0x800000u;
  const uint32_t shift = 126 - exponent;  // 14 .. 24
  uint32_t units = mantissa >> shift;
  const uint32_t remainder = mantissa & ((1u << shift) - 1);
  const uint32_t halfway = 1u << (shift - 1);
  if (remainder > halfway || (remainder == halfway && (units & 1u) != 0)) ++units;
  return static_cast<uint16_t>(sign | units);  // 0x400 after a carry is the smallest normal
}

uint16_t float_to_bfloat(float value) {
  const uint32_t bits = float_bits(value);
  if ((bits & 0x7fffffffu) > 0x7f800000u) {
    return static_cast<uint16_t>((bits >> 16) | 0x0040u);  // quiet NaN, sign and payload top kept
  }
  const uint32_t odd = (bits >> 16) & 1u;
  return static_cast<uint16_t>((bits + 0x7fffu + odd) >> 16);  // carries into infinity on overflow
}

void dot_f32_rows(const float* q, const float* rows, size_t count, size_t d, float* dot, float* sq) {
  for (size_t i = 0; i < count; ++i) {
    const float* row = rows + i * d;
    float dot_sum = 0.0f;
    float sq_sum = 0.0f;
    for (size_t j = 0; j < d; ++j) {
      dot_sum += q[j] * row[j];
      sq_sum += row[j] * row[j];
    }
    dot[i] = dot_sum;
    if (sq != nullptr) sq[i] = sq_sum;
  }
}

void dot_f16_rows(const float* q, const uint16_t* rows, size_t count, size_t d, float* dot, float* sq) {
  for (size_t i = 0; i < count; ++i) {
    const uint16_t* row = rows + i * d;
    float dot_sum = 0.0f;
    float sq_sum = 0.0f;
    for (size_t j = 0; j < d; ++j) {
      const float x = half_to_float(row[j]);
      dot_sum += q[j] * x;
      sq_sum += x * x;
    }
    dot[i] = dot_sum;
    if (sq != nullptr) sq[i] = sq_sum;
  }
}

void dot_bf16_rows(const float* q, const uint16_t* rows, size_t count, size_t d, float* dot, float* sq) {
  for (size_t i = 0; i < count; ++i) {
    const uint16_t* row = rows + i * d;
    float dot_sum = 0.0f;
    float sq_sum = 0.0f;
    for (size_t j = 0; j < d; ++j) {
      const float x = bits_float(static_cast<uint32_t>(row[j]) << 16);
      dot_sum += q[j] * x;
      sq_sum += x * x;
    }
    dot[i] = dot_sum;
    if (sq != nullptr) sq[i] = sq_sum;
  }
}

void dot_u8_affine_rows(const float* q, const float* low, const float* step, const uint8_t* codes,
                        size_t count, size_t d, float* dot, float* sq) {
  for (size_t i = 0; i < count; ++i) {
    const uint8_t* row = codes + i * d;
    float dot_sum = 0.0f;
    float sq_sum = 0.0f;
    for (size_t j = 0; j < d; ++j) {
      const float x = low[j] + step[j] * static_cast<float>(row[j]);
      dot_sum += q[j] * x;
      sq_sum += x * x;
    }
    dot[i] = dot_sum;
    if (sq != nullptr) sq[i] = sq_sum;
  }
}

void f16_to_f32(const uint16_t* in, size_t n, float* out) {
  for (size_t i = 0; i < n; ++i) out[i] = half_to_float(in[i]);
}

void bf16_to_f32(const uint16_t* in, size_t n, float* out) {
  for (size_t i = 0; i < n; ++i) out[i] = bits_float(static_cast<uint32_t>(in[i]) << 16);
}

void f32_to_f16(const float* in, size_t n, uint16_t* out) {
  for (size_t i = 0; i < n; ++i) out[i] = float_to_half(in[i]);
}

void f32_to_bf16(const float* in, size_t n, uint16_t* out) {
  for (size_t i = 0; i < n; ++i) out[i] = float_to_bfloat(in[i]);
}

void u8_affine_decode(const uint8_t* codes, size_t count, size_t d, const float* low, const float* step,
                      float* out) {
  for (size_t i = 0; i < count; ++i) {
    for (size_t j = 0; j < d; ++j) {
      out[i * d + j] = low[j] + step[j] * static_cast<float>(codes[i * d + j]);
    }
  }
}

float max_f32(const float* x, size_t n) {
  float best = x[0];
  for (size_t i = 1; i < n; ++i) {
    if (x[i] > best) best = x[i];
  }
  return best;
}

void nearest_centroids(const float* x, size_t n, size_t stride, size_t d, const float* centroids_t,
                       const float* half_sq, size_t k, uint32_t* labels, float* best) {
  for (size_t i = 0; i < n; ++i) {
    const float* row = x + i * stride;
    float best_value = INFINITY;
    uint32_t best_label = 0;
    for (size_t c = 0; c < k; ++c) {
      float value = half_sq[c];
      for (size_t j = 0; j < d; ++j) value -= row[j] * centroids_t[j * k + c];
      if (value < best_value) {
        best_value = value;
        best_label = static_cast<uint32_t>(c);
      }
    }
    labels[i] = best_label;
    if (best != nullptr) best[i] = best_value;
  }
}

void centroid_dots(const float* x, size_t d, const float* centroids_t, size_t k, float* out) {
  for (size_t c = 0; c < k; ++c) {
    float acc = 0;
    for (size_t j = 0; j < d; ++j) acc += x[j] * centroids_t[j * k + c];
    out[c] = acc;
  }
}

uint32_t anisotropic_argmin(const float* dots, const float* norms, size_t k, float along, float weight) {
  float best_value = INFINITY;
  uint32_t best = 0;
  for (size_t c = 0; c < k; ++c) {
    const float gap = along - dots[c];
    const float loss = norms[c] - 2 * dots[c] + weight * gap * gap;
    if (loss < best_value) best_value = loss, best = static_cast<uint32_t>(c);
  }
  return best;
}

template <class Index>
void pq_scan(const Index* indices, size_t stride, size_t rows, size_t m, size_t ksub, const float* tables,
             size_t lanes, float* out, const void*, size_t) {
  for (size_t i = 0; i < rows; ++i) {
    for (size_t l = 0; l < lanes; ++l) {
      float sum = 0.0f;
      for (size_t j = 0; j < m; ++j) sum += tables[(j * ksub + indices[i * stride + j]) * lanes + l];
      out[i * lanes + l] = sum;
    }
  }
}

void pq4_fastscan_select(const uint8_t* codes, size_t bytes, size_t rows, const uint8_t* luts, size_t stride,
                         size_t nq, const float* slope, const float* offset, const float* pair_norm,
                         uint32_t* const* found_rows, uint16_t* const* found_sums, size_t* found) {
  for (size_t q = 0; q < nq; ++q) {
    const uint8_t* lut = luts + q * stride;
    for (size_t i = 0; i < rows; ++i) {
      const size_t b = i / 64, r = i % 64;
      int32_t sum = 0;
      for (size_t j = 0; j < bytes; ++j) {
        const uint8_t byte = codes[(b * bytes + j) * 64 + r];
        sum += lut[(2 * j) * 16 + (byte & 15)] + lut[(2 * j + 1) * 16 + (byte >> 4)];
      }
      if (sum >= pq4_bound(slope[q], pair_norm ? pair_norm[i / 2] : 1.0f, offset[q])) {
        found_rows[q][found[q]] = static_cast<uint32_t>(i);
        found_sums[q][found[q]] = static_cast<uint16_t>(sum);
        ++found[q];
      }
    }
  }
}

uint64_t load_word(const uint8_t* p) {
  uint64_t word;
  std::memcpy(&word, p, sizeof word);
  return word;
}

void hamming_rows(const uint64_t* query, const uint8_t* codes, size_t stride, size_t count, size_t words, float scale,
                  float bias, float* out) {
  for (size_t i = 0; i < count; ++i) {
    uint32_t distance = 0;
    for (size_t w = 0; w < words; ++w)
      distance += static_cast<uint32_t>(__builtin_popcountll(query[w] ^ load_word(codes + i * stride + w * 8)));
    out[i] = scale * static_cast<float>(distance) + bias;
  }
}

void bitplane_rows(const uint64_t* planes, size_t nplanes, const uint8_t* codes, size_t stride, size_t count,
                   size_t words, float* out, float* pop) {
  for (size_t i = 0; i < count; ++i) {
    uint32_t sum = 0, ones = 0;
    for (size_t w = 0; w < words; ++w) {
      const uint64_t row = load_word(codes + i * stride + w * 8);
      ones += static_cast<uint32_t>(__builtin_popcountll(row));
      for (size_t k = 0; k < nplanes; ++k)
        sum += static_cast<uint32_t>(__builtin_popcountll(row & planes[k * words + w])) << k;
    }
    out[i] = static_cast<float>(sum);
    if (pop) pop[i] = static_cast<float>(ones);
  }
}

size_t select_above(const float* x, size_t n, float threshold, uint32_t* out) {
  size_t found = 0;
  for (size_t i = 0; i < n; ++i)
    if (x[i] > threshold) out[found++] = static_cast<uint32_t>(i);
  return found;
}

constexpr KernelTable kScalarTable{
    Isa::scalar,     &dot_f32_rows, &dot_f16_rows, &dot_bf16_rows,    &dot_u8_affine_rows, &f16_to_f32,
    &bf16_to_f32,    &f32_to_f16,   &f32_to_bf16,  &u8_affine_decode, &max_f32,  &select_above, &nearest_centroids,
    &centroid_dots,  &anisotropic_argmin, &pq_scan<uint8_t>, &pq_scan<uint16_t>, &pq4_fastscan_select, &hamming_rows, &bitplane_rows,
};

}  // namespace

VECPACK_KERNELS_API const KernelTable& scalar_table() { return kScalarTable; }

}  // namespace vecpack::kernels
