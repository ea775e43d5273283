// Character n-gram subwords (SubwordScheme in vecpack/table.h): hashing, the pruned bucket map
// and its SUBM section.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "vecpack/table.h"

namespace vecpack {

inline constexpr uint32_t kMaxSubwordLength = 64;  // minn and maxn, in characters

// 32-bit FNV-1a over bytes sign-extended to 32 bits, as fastText hashes n-grams.
uint32_t fasttext_hash(std::string_view bytes) noexcept;

// Throws Error when the scheme cannot describe a pool of pool_rows rows.
void check_subword_scheme(const SubwordScheme& scheme, size_t pool_rows);

// The unpruned n-gram pool (scheme.buckets x d) whose mean over each word's n-gram rows best
// approximates the word's row, by ridge least squares over the n rows x (row-major) with keys
// key(0..n-1): Table::fit_subwords and the subword codec.
struct NgramFit {
  double ridge = 1e-3;      // relative to the mean diagonal of the normal equations
  size_t iterations = 40;   // conjugate-gradient steps at most
  unsigned threads = 0;
  Progress* progress = nullptr;  // shows "fitting the n-gram pool" by iterations; may be null
};
std::vector<float> fit_ngram_pool(const SubwordScheme& scheme, const KeyLookup& key, const float* x, size_t n, size_t d,
                                  const NgramFit& options);

// SUBM: u64 count, then count x (u32 bucket, u32 row), sorted by bucket.
std::vector<uint8_t> serialize_pruned_buckets(const SubwordScheme& scheme);
std::vector<std::pair<uint32_t, uint32_t>> parse_pruned_buckets(const uint8_t* data, uint64_t size,
                                                                const std::string& where, uint64_t offset);

}  // namespace vecpack
