#include <bit>
#include <string>

#include "vecpack/errors.h"
#include "vecpack/types.h"

namespace vecpack {

RowFilter::RowFilter(std::shared_ptr<const std::vector<uint64_t>> words, size_t rows) : words_(std::move(words)), rows_(rows) {
  for (uint64_t word : *words_) allowed_ += static_cast<size_t>(std::popcount(word));
}

static std::vector<uint64_t> bits_of(const int64_t* ids, size_t count, size_t rows, const char* what) {
  std::vector<uint64_t> words((rows + 63) / 64, 0);
  for (size_t i = 0; i < count; ++i) {
    if (ids[i] < 0 || static_cast<uint64_t>(ids[i]) >= rows)
      throw Error(std::string(what) + ": row id " + std::to_string(ids[i]) + " is outside the table's " + std::to_string(rows) +
                  " rows");
    words[static_cast<uint64_t>(ids[i]) >> 6] |= uint64_t{1} << (ids[i] & 63);
  }
  return words;
}

RowFilter RowFilter::allow(const int64_t* ids, size_t count, size_t rows) {
  return RowFilter(std::make_shared<const std::vector<uint64_t>>(bits_of(ids, count, rows, "allow")), rows);
}

RowFilter RowFilter::deny(const int64_t* ids, size_t count, size_t rows) {
  std::vector<uint64_t> words = bits_of(ids, count, rows, "deny");
  for (uint64_t& word : words) word = ~word;
  if (rows % 64) words.back() &= (uint64_t{1} << (rows % 64)) - 1;
  return RowFilter(std::make_shared<const std::vector<uint64_t>>(std::move(words)), rows);
}

RowFilter RowFilter::all(size_t rows) { return deny(nullptr, 0, rows); }

// Mask of bits [low, high) of one word, 0 <= low < high <= 64.
static uint64_t bit_range(unsigned low, unsigned high) {
  const uint64_t upto = high == 64 ? ~uint64_t{0} : (uint64_t{1} << high) - 1;
  return upto & ~((uint64_t{1} << low) - 1);
}

bool RowFilter::any_in(int64_t first, size_t count) const {
  if (!words_) return true;
  if (first < 0 || count == 0) return false;
  const uint64_t begin = static_cast<uint64_t>(first), end = std::min<uint64_t>(begin + count, rows_);
  for (uint64_t at = begin; at < end;) {
    const uint64_t word = at >> 6, stop = std::min<uint64_t>(end, (word + 1) * 64);
    if ((*words_)[word] & bit_range(unsigned(at & 63), unsigned(stop - word * 64))) return true;
    at = stop;
  }
  return false;
}

bool RowFilter::all_in(int64_t first, size_t count) const {
  if (!words_) return true;
  if (first < 0 || static_cast<uint64_t>(first) + count > rows_) return false;
  const uint64_t begin = static_cast<uint64_t>(first), end = begin + count;
  for (uint64_t at = begin; at < end;) {
    const uint64_t word = at >> 6, stop = std::min<uint64_t>(end, (word + 1) * 64);
    const uint64_t mask = bit_range(unsigned(at & 63), unsigned(stop - word * 64));
    if (((*words_)[word] & mask) != mask) return false;
    at = stop;
  }
  return true;
}

RowFilter RowFilter::intersect(const RowFilter& other) const {
  if (!words_) return other;
  if (!other.words_) return *this;
  const size_t rows = std::min(rows_, other.rows_);
  std::vector<uint64_t> words((rows + 63) / 64);
  for (size_t w = 0; w < words.size(); ++w) words[w] = (*words_)[w] & (*other.words_)[w];
  if (rows % 64) words.back() &= (uint64_t{1} << (rows % 64)) - 1;
  return RowFilter(std::make_shared<const std::vector<uint64_t>>(std::move(words)), rows);
}

std::vector<int64_t> RowFilter::ids() const {
  std::vector<int64_t> out;
  if (!words_) return out;
  out.reserve(allowed_);
  for (size_t w = 0; w < words_->size(); ++w)
    for (uint64_t word = (*words_)[w]; word; word &= word - 1)
      out.push_back(static_cast<int64_t>(w * 64 + static_cast<size_t>(std::countr_zero(word))));
  return out;
}

}  // namespace vecpack
