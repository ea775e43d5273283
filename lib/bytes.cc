#include "bytes.h"

#include <xxhash.h>

namespace vecpack {

uint64_t checked_mul(uint64_t a, uint64_t b, const char* what) {
  uint64_t r;
  if (__builtin_mul_overflow(a, b, &r)) throw FormatError(std::string(what) + ": size overflows 64 bits", what);
  return r;
}

uint64_t checked_add(uint64_t a, uint64_t b, const char* what) {
  uint64_t r;
  if (__builtin_add_overflow(a, b, &r)) throw FormatError(std::string(what) + ": size overflows 64 bits", what);
  return r;
}

uint64_t xxh64(const void* data, size_t size, uint64_t seed) { return XXH64(data, size, seed); }

}  // namespace vecpack
