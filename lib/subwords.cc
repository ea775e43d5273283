#include "subwords.h"

#include <algorithm>

#include "bytes.h"
#include "sparse_least_squares.h"
#include "vecpack/errors.h"

namespace vecpack {

uint32_t fasttext_hash(std::string_view bytes) noexcept {
  uint32_t h = 2166136261u;
  for (char c : bytes) {
    h ^= static_cast<uint32_t>(static_cast<int32_t>(static_cast<int8_t>(c)));
    h *= 16777619u;
  }
  return h;
}

namespace {

bool is_continuation(char c) { return (static_cast<unsigned char>(c) & 0xC0) == 0x80; }

std::optional<uint64_t> pool_row(const SubwordScheme& scheme, uint32_t bucket) {
  if (!scheme.is_pruned) return bucket;
  auto it = std::lower_bound(scheme.pruned.begin(), scheme.pruned.end(), bucket,
                             [](const std::pair<uint32_t, uint32_t>& entry, uint32_t b) { return entry.first < b; });
  if (it == scheme.pruned.end() || it->first != bucket) return std::nullopt;
  return it->second;
}

}  // namespace

std::vector<uint64_t> subword_rows(const SubwordScheme& scheme, std::string_view word) {
  std::vector<uint64_t> rows;
  if (scheme.maxn == 0 || scheme.buckets == 0) return rows;
  std::string marked;
  marked.reserve(word.size() + 2);
  marked += '<';
  marked += word;
  marked += '>';
  std::string ngram;
  for (size_t start = 0; start < marked.size(); ++start) {
    if (is_continuation(marked[start])) continue;  // n-grams start on character boundaries
    ngram.clear();
    size_t end = start;
    for (uint32_t chars = 1; end < marked.size() && chars <= scheme.maxn; ++chars) {
      ngram += marked[end++];
      while (end < marked.size() && is_continuation(marked[end])) ngram += marked[end++];
      // A lone '<' or '>' says nothing about the word.
      bool lone_marker = chars == 1 && (start == 0 || end == marked.size());
      if (chars >= scheme.minn && !lone_marker) {
        uint32_t bucket = static_cast<uint32_t>(fasttext_hash(ngram) % scheme.buckets);
        if (auto row = pool_row(scheme, bucket)) rows.push_back(*row);
      }
    }
  }
  return rows;
}

void check_subword_scheme(const SubwordScheme& scheme, size_t pool_rows) {
  auto fail = [](const std::string& message) { throw Error("subwords: " + message); };
  if (scheme.minn > kMaxSubwordLength || scheme.maxn > kMaxSubwordLength)
    fail("n-gram lengths " + std::to_string(scheme.minn) + ".." + std::to_string(scheme.maxn) + " exceed " +
         std::to_string(kMaxSubwordLength) + " characters");
  if (scheme.buckets > (uint64_t{1} << 32)) fail("bucket count " + std::to_string(scheme.buckets) + " exceeds 2^32");
  if (!scheme.is_pruned) {
    if (!scheme.pruned.empty()) fail("a bucket map is given but the scheme is not pruned");
    if (pool_rows != scheme.buckets)
      fail("an unpruned pool needs one row per bucket: " + std::to_string(scheme.buckets) + " buckets, " +
           std::to_string(pool_rows) + " pool rows");
    return;
  }
  for (size_t i = 0; i < scheme.pruned.size(); ++i) {
    auto [bucket, row] = scheme.pruned[i];
    if (bucket >= scheme.buckets)
      fail("pruned entry " + std::to_string(i) + ": bucket " + std::to_string(bucket) + " is not below the bucket count " +
           std::to_string(scheme.buckets));
    if (row >= pool_rows)
      fail("pruned entry " + std::to_string(i) + ": row " + std::to_string(row) + " is not below the pool's " +
           std::to_string(pool_rows) + " rows");
    if (i && scheme.pruned[i - 1].first >= bucket)
      fail("pruned entries must be sorted by bucket without repeats (entry " + std::to_string(i) + ")");
  }
}

std::vector<uint8_t> serialize_pruned_buckets(const SubwordScheme& scheme) {
  ByteWriter out;
  out.put<uint64_t>(scheme.pruned.size());
  for (auto [bucket, row] : scheme.pruned) {
    out.put<uint32_t>(bucket);
    out.put<uint32_t>(row);
  }
  return out.take();
}

std::vector<std::pair<uint32_t, uint32_t>> parse_pruned_buckets(const uint8_t* data, uint64_t size,
                                                                const std::string& where, uint64_t offset) {
  ByteReader in(data, size, where);
  uint64_t count = in.get<uint64_t>();
  if (count > in.remaining() / 8 || in.remaining() != count * 8)
    throw FormatError(where + ": " + std::to_string(count) + " entries need " + std::to_string(8 + count * 8) +
                          " bytes, the section has " + std::to_string(size),
                      "SUBM", offset);
  std::vector<std::pair<uint32_t, uint32_t>> entries(count);
  for (auto& [bucket, row] : entries) {
    bucket = in.get<uint32_t>();
    row = in.get<uint32_t>();
  }
  return entries;
}

std::vector<float> fit_ngram_pool(const SubwordScheme& scheme, const KeyLookup& key, const float* x, size_t n, size_t d,
                                  const NgramFit& options) {
  // A: row w holds w's n-gram rows, each weighted 1 / (their count), as a word's vector averages them.
  SparseRows a;
  a.begin.reserve(n + 1);
  a.begin.push_back(0);
  for (size_t i = 0; i < n; ++i) {
    const std::vector<uint64_t> rows = subword_rows(scheme, key(i));
    for (uint64_t r : rows) {
      a.column.push_back(static_cast<uint32_t>(r));
      a.weight.push_back(1.0f / float(rows.size()));
    }
    a.begin.push_back(a.column.size());
  }
  std::vector<float> pool;
  SparseFitOptions fit;
  fit.ridge = options.ridge;
  fit.max_iterations = options.iterations;
  fit.threads = options.threads;
  fit.progress = options.progress;
  if (options.progress) options.progress->begin("fitting the n-gram pool", options.iterations);
  fit_sparse_rows(a, x, d, scheme.buckets, pool, fit);
  if (options.progress) options.progress->end();
  return pool;
}

Table Table::fit_subwords(const SubwordFitOptions& options) const {
  if (!has_keys()) throw Error("fit_subwords: the table has no keys (words) to take n-grams from");
  if (options.buckets == 0) throw Error("fit_subwords: buckets must be at least 1");
  if (options.minn == 0 || options.minn > options.maxn)
    throw Error("fit_subwords: minn=" + std::to_string(options.minn) + ", maxn=" + std::to_string(options.maxn) +
                " (need 1 <= minn <= maxn)");
  SubwordScheme scheme;
  scheme.minn = options.minn;
  scheme.maxn = options.maxn;
  scheme.buckets = options.buckets;
  check_subword_scheme(scheme, options.buckets);
  const size_t n = size(), d = dim();
  std::vector<float> x(n * d);
  reconstruct(0, n, x.data());
  NgramFit fit;
  fit.ridge = options.ridge;
  fit.iterations = options.iterations;
  fit.threads = options.threads;
  fit.progress = options.progress;
  std::vector<float> pool = fit_ngram_pool(scheme, [this](size_t row) { return key(row); }, x.data(), n, d, fit);
  const Table kept = options.keep_rows && options.keep_rows < n ? slice(0, options.keep_rows) : *this;
  return kept.with_subwords(std::move(scheme), Table::from_rows(std::move(pool), d));
}

}  // namespace vecpack
