#include <doctest/doctest.h>

#include <algorithm>
#include <cstring>
#include <filesystem>

#include "subwords.h"
#include "test_util.h"
#include "vecpack/errors.h"
#include "vecpack/table.h"

using namespace vecpack;

namespace {

// FNV-1a written out independently, with fastText's sign extension of bytes >= 0x80.
uint32_t reference_hash(const std::string& text) {
  uint32_t h = 2166136261u;
  for (unsigned char c : text) {
    uint32_t extended = c >= 0x80 ? (0xFFFFFF00u | c) : c;
    h = (h ^ extended) * 16777619u;
  }
  return h;
}

std::vector<uint64_t> buckets_of(const std::vector<std::string>& ngrams, uint64_t buckets) {
  std::vector<uint64_t> out;
  for (const auto& g : ngrams) out.push_back(reference_hash(g) % buckets);
  return out;
}

// A keyed 3-row table of dimension 4 with a 16-bucket pool whose row b is (b, b+1, b+2, b+3).
Table table_with_pool(SubwordScheme scheme, size_t pool_rows = 16) {
  std::vector<float> rows = {1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0};
  Table t = Table::from_rows(rows, 4, {"cat", "dog", "fish"});
  std::vector<float> pool;
  for (size_t b = 0; b < pool_rows; ++b)
    for (size_t j = 0; j < 4; ++j) pool.push_back(float(b + j) / 8);
  return t.with_subwords(std::move(scheme), Table::from_rows(pool, 4));
}

std::vector<float> mean_of_pool_rows(const std::vector<uint64_t>& rows) {
  std::vector<float> sum(4, 0.0f);
  for (uint64_t r : rows)
    for (size_t j = 0; j < 4; ++j) sum[j] += float(r + j) / 8;
  for (float& v : sum) v /= float(rows.size());
  return sum;
}

}  // namespace

TEST_CASE("subwords: FNV-1a with bytes sign-extended, as fastText hashes") {
  CHECK(fasttext_hash("") == 2166136261u);
  CHECK(fasttext_hash("a") == 0xE40C292Cu);  // the published FNV-1a test vector
  // Bytes >= 0x80 differ from plain FNV-1a: the quirk must be reproduced, not fixed.
  CHECK(fasttext_hash("\xC3\xA9") == reference_hash("\xC3\xA9"));
  uint32_t plain = 2166136261u;
  for (unsigned char c : std::string("\xC3\xA9")) plain = (plain ^ c) * 16777619u;
  CHECK(fasttext_hash("\xC3\xA9") != plain);
}

TEST_CASE("subwords: n-grams of the marked word, counted in characters, lone markers excluded") {
  SubwordScheme scheme{.minn = 2, .maxn = 3, .buckets = 1000};
  CHECK(subword_rows(scheme, "ab") == buckets_of({"<a", "<ab", "ab", "ab>", "b>"}, 1000));
  scheme.minn = 1;
  CHECK(subword_rows(scheme, "ab") == buckets_of({"<a", "<ab", "a", "ab", "ab>", "b", "b>"}, 1000));
  // "é" is two bytes but one character: "<é" is a 2-gram, and no n-gram starts inside it.
  scheme = {.minn = 2, .maxn = 2, .buckets = 1000};
  CHECK(subword_rows(scheme, "\xC3\xA9t") == buckets_of({"<\xC3\xA9", "\xC3\xA9t", "t>"}, 1000));
  scheme.maxn = 0;
  CHECK(subword_rows(scheme, "anything").empty());
}

TEST_CASE("subwords: a pruned pool maps kept buckets to rows and drops the others") {
  SubwordScheme scheme{.minn = 2, .maxn = 3, .buckets = 1000};
  auto all = subword_rows(scheme, "ab");
  scheme.is_pruned = true;
  scheme.pruned = {{uint32_t(all[1]), 7}, {uint32_t(all[3]), 2}};
  std::sort(scheme.pruned.begin(), scheme.pruned.end());
  CHECK(subword_rows(scheme, "ab") == std::vector<uint64_t>{7, 2});
}

TEST_CASE("subwords: unknown keys get the mean of their n-gram rows, known keys their own row") {
  SubwordScheme scheme{.minn = 2, .maxn = 3, .buckets = 16};
  Table t = table_with_pool(scheme);
  REQUIRE(t.has_subwords());
  CHECK(t.get("dog") == std::vector<float>{0, 1, 0, 0});
  CHECK_FALSE(t.find("cats").has_value());  // find() is about keys only
  CHECK(t.get("cats") == mean_of_pool_rows(subword_rows(scheme, "cats")));
  CHECK(t.subword_pool().size() == 16);
  CHECK(t.subword_scheme().maxn == 3);

  // A pruned pool that keeps none of a word's n-grams answers zeros, as fastText does.
  SubwordScheme pruned = scheme;
  pruned.is_pruned = true;
  Table p = table_with_pool(pruned, 2);
  CHECK(p.get("cats") == std::vector<float>(4, 0.0f));
}

TEST_CASE("subwords: saved in the file, reopened, compressed with their own codec") {
  test::TempDir dir;
  SubwordScheme scheme{.minn = 2, .maxn = 4, .buckets = 16, .is_pruned = true};
  scheme.pruned = {{1, 0}, {3, 1}, {4, 2}, {9, 3}, {11, 4}, {12, 5}, {15, 6}};
  Table t = table_with_pool(scheme, 7);
  const std::string path = dir.file("t.vecpack");
  t.save(path);
  Table u = Table::open(path);
  REQUIRE(u.has_subwords());
  CHECK(u.subword_scheme().minn == 2);
  CHECK(u.subword_scheme().maxn == 4);
  CHECK(u.subword_scheme().buckets == 16);
  CHECK(u.subword_scheme().pruned == scheme.pruned);
  for (const char* word : {"cats", "dogfish", "x", "\xC3\xA9t\xC3\xA9"}) {
    CAPTURE(word);
    CHECK(u.get(word) == t.get(word));
  }
  TableInfo info = u.info();
  CHECK(info.subword_rows == 7);
  CHECK(info.subword_spec == "f32");
  CHECK(info.subword_bytes == 7 * 16 + u.subword_pool().info().parameter_bytes + 8 + 7 * 8);
  CHECK(Table::verify(path).ok());

  CompressOptions options;
  options.subword_spec = "f16";
  Table c = u.compress("int8", options);
  CHECK(c.spec() == "int8");
  CHECK(c.subword_pool().spec() == "f16");
  c.save(dir.file("c.vecpack"));
  Table reopened = Table::open(dir.file("c.vecpack"));
  auto expected = t.get("cats"), got = reopened.get("cats");
  for (size_t j = 0; j < 4; ++j) CHECK(got[j] == doctest::Approx(expected[j]).epsilon(1e-3));
  CHECK(Table::open(dir.file("c.vecpack")).subword_pool().spec() == "f16");
}

TEST_CASE("subwords: a pool that does not fit the scheme is refused with the reason") {
  Table t = Table::from_rows({1, 2, 3, 4}, 4, {"a"});
  CHECK_THROWS_WITH_AS(t.with_subwords({.buckets = 8}, Table::from_rows(std::vector<float>(12 * 4), 4)),
                       doctest::Contains("an unpruned pool needs one row per bucket: 8 buckets, 12 pool rows"), Error);
  CHECK_THROWS_WITH_AS(t.with_subwords({.buckets = 8}, Table::from_rows(std::vector<float>(8 * 3), 3)),
                       doctest::Contains("the pool has dimension 3, the table 4"), Error);
  SubwordScheme bad{.buckets = 8, .is_pruned = true};
  bad.pruned = {{3, 0}, {2, 1}};
  CHECK_THROWS_WITH_AS(t.with_subwords(bad, Table::from_rows(std::vector<float>(2 * 4), 4)),
                       doctest::Contains("sorted by bucket"), Error);
  bad.pruned = {{2, 0}, {3, 5}};
  CHECK_THROWS_WITH_AS(t.with_subwords(bad, Table::from_rows(std::vector<float>(2 * 4), 4)),
                       doctest::Contains("row 5 is not below the pool's 2 rows"), Error);
  CHECK_THROWS_WITH_AS(t.subword_pool(), doctest::Contains("the table has no subwords"), Error);
}

TEST_CASE("subwords: a pool fitted to a word table answers held-out words from their n-grams") {
  // Words are strings of syllables, and a word's vector is the mean of its syllables' vectors:
  // n-grams carry what a word means, so held-out words can be predicted from them.
  const char* syllables[] = {"ka", "lo", "mi", "nu", "pe", "ra", "si", "to", "vu", "ze", "bo", "da"};
  const size_t d = 8, count = sizeof(syllables) / sizeof(syllables[0]);
  std::mt19937_64 rng(5);
  std::normal_distribution<float> normal;
  std::vector<std::vector<float>> meaning(count, std::vector<float>(d));
  for (auto& v : meaning)
    for (auto& e : v) e = normal(rng);
  std::vector<std::string> words;
  std::vector<float> rows;
  for (size_t a = 0; a < count; ++a)
    for (size_t b = 0; b < count; ++b)
      for (size_t c = 0; c < count; ++c) {
        words.push_back(std::string(syllables[a]) + syllables[b] + syllables[c]);
        for (size_t t = 0; t < d; ++t) rows.push_back((meaning[a][t] + meaning[b][t] + meaning[c][t]) / 3);
      }
  // Every seventh word is held out of the table.
  std::vector<std::string> kept_words, held_words;
  std::vector<float> kept_rows, held_rows;
  for (size_t i = 0; i < words.size(); ++i) {
    auto& w = i % 7 == 3 ? held_words : kept_words;
    auto& r = i % 7 == 3 ? held_rows : kept_rows;
    w.push_back(words[i]);
    r.insert(r.end(), rows.begin() + i * d, rows.begin() + (i + 1) * d);
  }
  Table table = Table::from_rows(kept_rows, d, kept_words);
  SubwordFitOptions options;
  options.buckets = 4096;
  options.minn = 2;
  options.maxn = 4;
  Table fitted = table.fit_subwords(options);
  CHECK(fitted.has_subwords());
  CHECK(fitted.subword_scheme().buckets == 4096);
  CHECK(fitted.get(kept_words[10]) == table.get(kept_words[10]));  // known words keep their rows
  double total = 0;
  for (size_t i = 0; i < held_words.size(); ++i) {
    std::vector<float> got = fitted.get(held_words[i]);
    double dot = 0, a = 0, b = 0;
    for (size_t t = 0; t < d; ++t) dot += got[t] * held_rows[i * d + t], a += got[t] * got[t], b += held_rows[i * d + t] * held_rows[i * d + t];
    total += dot / std::sqrt(a * b + 1e-30);
  }
  const double mean_cosine = total / double(held_words.size());
  CAPTURE(mean_cosine);
  CHECK(mean_cosine > 0.9);
  // Saved and reopened, compressed: still answers.
  test::TempDir dir;
  fitted.compress("f16").save(dir.file("w.vecpack"));
  Table opened = Table::open(dir.file("w.vecpack"));
  std::vector<float> again = opened.get(held_words[0]), before = fitted.get(held_words[0]);
  for (size_t t = 0; t < d; ++t) CHECK(again[t] == doctest::Approx(before[t]).epsilon(0.01));
  // keep_rows: the pool is fitted to every word, then the rows from keep_rows on are dropped
  // and those words are answered from their n-grams.
  options.keep_rows = 500;
  Table kept = table.fit_subwords(options);
  CHECK(kept.size() == 500);
  CHECK(kept.find(kept_words[499]).has_value());
  CHECK_FALSE(kept.find(kept_words[700]).has_value());
  std::vector<float> from_ngrams = kept.get(kept_words[700]);
  CHECK(from_ngrams != table.get(kept_words[700]));  // no longer its own row
  {
    double dot = 0, a = 0, b = 0;
    for (size_t t = 0; t < d; ++t) {
      const float truth = kept_rows[700 * d + t];
      dot += from_ngrams[t] * truth, a += from_ngrams[t] * from_ngrams[t], b += truth * truth;
    }
    CHECK(dot / std::sqrt(a * b) > 0.9);
  }
  options.keep_rows = 0;
  // Bad arguments.
  options.minn = 5;
  CHECK_THROWS_WITH_AS(table.fit_subwords(options), doctest::Contains("minn=5, maxn=4"), Error);
  CHECK_THROWS_WITH_AS(Table::from_rows(kept_rows, d).fit_subwords(), doctest::Contains("no keys"), Error);
}
