// Helpers shared by codecs: parameter-blob headers and dimension limits.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "bytes.h"
#include "kernels/kernels.h"
#include "vecpack/errors.h"
#include "vecpack/types.h"

namespace vecpack {

inline constexpr uint64_t kMaxDim = kMaxDimension;

// Every codec blob starts with u32 version + u64 dimension; returns the dimension.
// version: set to the blob's version, for codecs that read older layouts too.
inline uint64_t read_blob_header(ByteReader& r, uint32_t supported_version, uint32_t* version_out = nullptr) {
  uint32_t version = r.get<uint32_t>();
  if (version_out) *version_out = version;
  if (version == 0 || version > supported_version)
    r.fail("parameter version " + std::to_string(version) + " is not supported (this vecpack reads up to " +
           std::to_string(supported_version) + ")");
  uint64_t d = r.get<uint64_t>();
  if (d == 0 || d > kMaxDim) r.fail("dimension " + std::to_string(d) + " is out of range 1.." + std::to_string(kMaxDim));
  return d;
}

// Fails unless values is a permutation of 0..size-1 (what: "slots", "ranks").
inline void check_permutation(const ByteReader& r, const std::vector<uint32_t>& values, const char* what) {
  std::vector<bool> seen(values.size(), false);
  for (uint32_t v : values) {
    if (v >= values.size() || seen[v]) r.fail(std::string("the ") + what + " are not a permutation of the rows");
    seen[v] = true;
  }
}

// Codecs that place rows by position decode only the rows they were fitted to.
inline void check_fitted_rows(const char* codec, size_t first_row, size_t n, size_t fitted_rows) {
  if (first_row > fitted_rows || n > fitted_rows - first_row)
    throw NotFoundError(std::string(codec) + ": rows " + std::to_string(first_row) + ".." + std::to_string(first_row + n) +
                        " are beyond the " + std::to_string(fitted_rows) + " rows it was fitted to");
}

inline void check_train_dim(size_t d, const char* codec) {
  if (d == 0 || d > kMaxDim)
    throw Error(std::string(codec) + ": dimension " + std::to_string(d) + " is out of range 1.." + std::to_string(kMaxDim));
}

// One binary16 value through the kernels (blocks of values should call the kernels directly).
// f16_bits saturates at +-65504 instead of overflowing to infinity.
inline float f16_value(uint16_t half) {
  float value;
  kernels::active().f16_to_f32(&half, 1, &value);
  return value;
}
inline uint16_t f16_bits(float value) {
  uint16_t half;
  value = std::clamp(value, -65504.f, 65504.f);
  kernels::active().f32_to_f16(&value, 1, &half);
  return half;
}

}  // namespace vecpack
