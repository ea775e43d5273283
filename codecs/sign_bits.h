// Pieces shared by the sign-bit codecs (binary, rbin, rabitq, itq): bit packing, f16 fields
// of a code, the training centre, query bit planes, and blob reading. Bits are packed 64 to a
// little-endian word: bit j of a row is bit j % 64 of word j / 64, so the bytes of a code equal
// numpy.packbits(bits, bitorder="little") padded to 8-byte words.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "codec_util.h"
#include "kernels/kernels.h"
#include "vecpack/errors.h"

namespace vecpack::sign_bits {

inline std::string str(size_t v) { return std::to_string(v); }

// "name" or "name:a=1,b=2" from the arguments that differ from their defaults (the convention
// of canonical specs: a codec built from its bare name prints as its bare name).
inline std::string spec_of(const char* name, const std::vector<std::pair<std::string, bool>>& arguments) {
  std::string args;
  for (const auto& [text, is_default] : arguments)
    if (!is_default) args += (args.empty() ? "" : ",") + text;
  return args.empty() ? name : std::string(name) + ":" + args;
}

inline size_t words_for(size_t d) { return (d + 63) / 64; }

// Bit j set when v[j] > 0; out receives words_for(d) little-endian words (padding bits zero).
inline void pack_signs(const float* v, size_t d, uint8_t* out) {
  const size_t words = words_for(d);
  for (size_t w = 0; w < words; ++w) {
    uint64_t word = 0;
    for (size_t j = w * 64; j < std::min(d, w * 64 + 64); ++j) word |= uint64_t(v[j] > 0) << (j % 64);
    std::memcpy(out + w * 8, &word, sizeof word);
  }
}

inline float sign_of(const uint8_t* bits, size_t j) { return (bits[j / 8] >> (j % 8)) & 1u ? 1.f : -1.f; }

// Gathers `fields` consecutive f16 values starting at byte `offset` of each of count codes into
// out (count x fields floats).
inline void gather_f16(const uint8_t* codes, size_t stride, size_t count, size_t offset, size_t fields, float* out) {
  thread_local std::vector<uint16_t> halves;
  halves.resize(count * fields);
  for (size_t i = 0; i < count; ++i) std::memcpy(&halves[i * fields], codes + i * stride + offset, fields * 2);
  kernels::active().f16_to_f32(halves.data(), count * fields, out);
}

// The mean of n > 0 rows (the centre every codec of the family subtracts), summed in double.
inline std::vector<float> column_means(const float* x, size_t n, size_t d, const char* codec) {
  if (n == 0) throw Error(std::string(codec) + ": cannot learn the centre from 0 training rows");
  std::vector<double> sum(d, 0.0);
  for (size_t i = 0; i < n; ++i)
    for (size_t j = 0; j < d; ++j) sum[j] += x[i * d + j];
  std::vector<float> mean(d);
  for (size_t j = 0; j < d; ++j) mean[j] = float(sum[j] / double(n));
  return mean;
}

inline double dot(const float* a, const float* b, size_t d) {
  double s = 0;
  for (size_t j = 0; j < d; ++j) s += double(a[j]) * b[j];
  return s;
}

// A query quantized to unsigned `bits`-bit integers u_j, v_j ~ low + step * u_j, as bit planes
// for bitplane_rows: <b, v> ~ low * popcount(b) + step * sum_k 2^k popcount(b AND plane_k).
struct QueryPlanes {
  std::vector<uint64_t> planes;  // bits x words
  float low = 0, step = 0;
  QueryPlanes(const float* v, size_t d, unsigned bits) : planes(size_t(bits) * words_for(d), 0) {
    const size_t words = words_for(d);
    float high = -INFINITY;
    low = INFINITY;
    for (size_t j = 0; j < d; ++j) low = std::min(low, v[j]), high = std::max(high, v[j]);
    const float levels = float((1u << bits) - 1);
    step = high > low ? (high - low) / levels : 0.f;
    for (size_t j = 0; j < d; ++j) {
      const uint32_t u = step > 0 ? uint32_t(std::lround(std::clamp((v[j] - low) / step, 0.f, levels))) : 0;
      for (unsigned k = 0; k < bits; ++k)
        if ((u >> k) & 1u) planes[k * words + j / 64] |= uint64_t(1) << (j % 64);
    }
  }
};

inline std::vector<float> read_finite(ByteReader& r, uint64_t count, const char* what) {
  auto values = r.get_array<float>(count);
  for (size_t i = 0; i < values.size(); ++i)
    if (!std::isfinite(values[i])) r.fail(std::string(what) + " value " + str(i) + " is not finite");
  return values;
}

}  // namespace vecpack::sign_bits
