// The VOCB section: keys as one UTF-8 blob with offsets, plus an open-addressing hash index,
// so find(key) touches a handful of pages of a mapped file and nothing is loaded up front.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace vecpack {

// Layout (little-endian): u64 count, u64 bucket_count (power of two), u64 blob_size,
// u64 reserved, u64 offsets[count + 1], u64 buckets[bucket_count] (row + 1, 0 = empty;
// slot = xxh64(key) & (bucket_count - 1), linear probing), blob.
// Keys must be unique; the caller drops duplicates.
std::vector<uint8_t> build_vocabulary(const std::vector<std::string>& keys);

class VocabularyView {
 public:
  VocabularyView() = default;
  // Checks the section's sizes against each other in O(1); throws FormatError naming where.
  VocabularyView(const uint8_t* data, uint64_t size, uint64_t expected_count, std::string where);

  bool empty() const { return count_ == 0; }
  uint64_t size() const { return count_; }
  std::string_view key(uint64_t row) const;             // FormatError on damaged offsets
  std::optional<uint64_t> find(std::string_view key) const;

 private:
  const uint64_t* offsets_ = nullptr;
  const uint64_t* buckets_ = nullptr;
  const char* blob_ = nullptr;
  uint64_t count_ = 0, bucket_mask_ = 0, blob_size_ = 0;
  std::string where_;
};

}  // namespace vecpack
