// Little-endian byte buffers with bounds-checked reads: every size read from a file or a
// parameter blob passes through ByteReader, which throws FormatError instead of over-reading.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "vecpack/errors.h"

namespace vecpack {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "vecpack files are little-endian; port needed");

class ByteWriter {
 public:
  template <class T>
  void put(T value) {
    static_assert(std::is_trivially_copyable_v<T>);
    const auto* p = reinterpret_cast<const uint8_t*>(&value);
    bytes_.insert(bytes_.end(), p, p + sizeof(T));
  }
  void put_bytes(const void* data, size_t size) {
    const auto* p = static_cast<const uint8_t*>(data);
    bytes_.insert(bytes_.end(), p, p + size);
  }
  template <class T>
  void put_array(const std::vector<T>& values) {
    put<uint64_t>(values.size());
    put_bytes(values.data(), values.size() * sizeof(T));
  }
  void put_string(std::string_view s) {
    put<uint32_t>(static_cast<uint32_t>(s.size()));
    put_bytes(s.data(), s.size());
  }
  std::vector<uint8_t>& bytes() { return bytes_; }
  std::vector<uint8_t> take() { return std::move(bytes_); }

 private:
  std::vector<uint8_t> bytes_;
};

class ByteReader {
 public:
  // what: names the thing being read in error messages, e.g. "codec parameters of 'int8'".
  ByteReader(const uint8_t* data, size_t size, std::string what)
      : data_(data), size_(size), what_(std::move(what)) {}

  template <class T>
  T get() {
    static_assert(std::is_trivially_copyable_v<T>);
    T value;
    std::memcpy(&value, take(sizeof(T)), sizeof(T));
    return value;
  }
  const uint8_t* take(size_t n) {
    if (n > size_ - pos_) fail("needs " + std::to_string(n) + " bytes, " + std::to_string(size_ - pos_) + " remain");
    const uint8_t* p = data_ + pos_;
    pos_ += n;
    return p;
  }
  // An array written by ByteWriter::put_array; count is capped by the bytes that remain.
  template <class T>
  std::vector<T> get_array(uint64_t expected_count) {
    uint64_t count = get<uint64_t>();
    if (count != expected_count)
      fail("array has " + std::to_string(count) + " values, expected " + std::to_string(expected_count));
    if (count > (size_ - pos_) / sizeof(T)) fail("array of " + std::to_string(count) + " values overruns the data");
    std::vector<T> values(count);
    if (count) std::memcpy(values.data(), take(count * sizeof(T)), count * sizeof(T));
    return values;
  }
  std::string get_string(size_t max_size = 1 << 20) {
    uint32_t n = get<uint32_t>();
    if (n > max_size) fail("string of " + std::to_string(n) + " bytes exceeds the limit");
    const uint8_t* p = take(n);
    return std::string(reinterpret_cast<const char*>(p), n);
  }
  size_t remaining() const { return size_ - pos_; }
  size_t position() const { return pos_; }
  void expect_end() {
    if (pos_ != size_) fail(std::to_string(size_ - pos_) + " unexpected trailing bytes");
  }
  [[noreturn]] void fail(const std::string& message) const {
    throw FormatError(what_ + ": " + message + " (at byte " + std::to_string(pos_) + ")", what_, pos_);
  }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
  std::string what_;
};

// a * b, throwing FormatError when the product does not fit in 64 bits.
uint64_t checked_mul(uint64_t a, uint64_t b, const char* what);
uint64_t checked_add(uint64_t a, uint64_t b, const char* what);

uint64_t xxh64(const void* data, size_t size, uint64_t seed = 0);

}  // namespace vecpack
