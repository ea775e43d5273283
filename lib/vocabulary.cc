#include "vocabulary.h"

#include <cstring>

#include "bytes.h"
#include "vecpack/errors.h"

namespace vecpack {

static constexpr uint64_t kVocabHeader = 32;

std::vector<uint8_t> build_vocabulary(const std::vector<std::string>& keys) {
  const uint64_t count = keys.size();
  uint64_t buckets = 16;
  while (buckets < 2 * count) buckets *= 2;  // load factor <= 0.5 keeps probes short
  uint64_t blob_size = 0;
  for (const auto& k : keys) blob_size += k.size();

  std::vector<uint8_t> out(kVocabHeader + 8 * (count + 1) + 8 * buckets + blob_size);
  auto* header = reinterpret_cast<uint64_t*>(out.data());
  header[0] = count;
  header[1] = buckets;
  header[2] = blob_size;
  header[3] = 0;
  auto* offsets = reinterpret_cast<uint64_t*>(out.data() + kVocabHeader);
  auto* table = offsets + count + 1;
  char* blob = reinterpret_cast<char*>(table + buckets);
  uint64_t pos = 0;
  for (uint64_t i = 0; i < count; ++i) {
    offsets[i] = pos;
    std::memcpy(blob + pos, keys[i].data(), keys[i].size());
    pos += keys[i].size();
    uint64_t slot = xxh64(keys[i].data(), keys[i].size()) & (buckets - 1);
    while (table[slot] != 0) slot = (slot + 1) & (buckets - 1);
    table[slot] = i + 1;
  }
  offsets[count] = pos;
  return out;
}

VocabularyView::VocabularyView(const uint8_t* data, uint64_t size, uint64_t expected_count, std::string where)
    : where_(std::move(where)) {
  ByteReader r(data, size, where_);
  count_ = r.get<uint64_t>();
  uint64_t buckets = r.get<uint64_t>();
  blob_size_ = r.get<uint64_t>();
  r.get<uint64_t>();
  if (count_ != expected_count)
    r.fail("has " + std::to_string(count_) + " keys for " + std::to_string(expected_count) + " rows");
  if (buckets == 0 || (buckets & (buckets - 1)) != 0 || buckets < count_)
    r.fail("hash index size " + std::to_string(buckets) + " is not a power of two >= the key count");
  uint64_t need = checked_add(kVocabHeader, checked_mul(8, checked_add(count_, 1, "VOCB"), "VOCB"), "VOCB");
  need = checked_add(need, checked_mul(8, buckets, "VOCB"), "VOCB");
  need = checked_add(need, blob_size_, "VOCB");
  if (need != size) r.fail("section is " + std::to_string(size) + " bytes, its counts need " + std::to_string(need));
  offsets_ = reinterpret_cast<const uint64_t*>(data + kVocabHeader);
  buckets_ = offsets_ + count_ + 1;
  blob_ = reinterpret_cast<const char*>(buckets_ + buckets);
  bucket_mask_ = buckets - 1;
}

std::string_view VocabularyView::key(uint64_t row) const {
  if (row >= count_) throw NotFoundError("row " + std::to_string(row) + " is out of range (" + std::to_string(count_) + " keys)");
  uint64_t begin = offsets_[row], end = offsets_[row + 1];
  if (begin > end || end > blob_size_)
    throw FormatError(where_ + ": offsets of key " + std::to_string(row) + " are damaged", "VOCB", 32 + 8 * row);
  return {blob_ + begin, static_cast<size_t>(end - begin)};
}

std::optional<uint64_t> VocabularyView::find(std::string_view key_text) const {
  if (count_ == 0) return std::nullopt;
  uint64_t slot = xxh64(key_text.data(), key_text.size()) & bucket_mask_;
  // Bounded probing: a damaged index without empty slots cannot loop forever.
  for (uint64_t probes = 0; probes <= bucket_mask_; ++probes) {
    uint64_t entry = buckets_[slot];
    if (entry == 0) return std::nullopt;
    if (entry - 1 < count_ && key(entry - 1) == key_text) return entry - 1;
    slot = (slot + 1) & bucket_mask_;
  }
  return std::nullopt;
}

}  // namespace vecpack
