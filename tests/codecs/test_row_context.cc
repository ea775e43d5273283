// Codecs that use what a table knows of its rows besides their values (RowContext): subword
// (keys), hash with key=string and feature tables, mixdim with row counts; and the counts
// themselves (the FREQ section).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "../../lib/shared_rows.h"
#include "test_util.h"
#include "vecpack/codec.h"
#include "vecpack/errors.h"
#include "vecpack/table.h"

using namespace vecpack;

namespace {

double cosine(const float* a, const float* b, size_t d) {
  double dot = 0, na = 0, nb = 0;
  for (size_t t = 0; t < d; ++t) dot += double(a[t]) * b[t], na += double(a[t]) * a[t], nb += double(b[t]) * b[t];
  return dot / std::sqrt(na * nb + 1e-30);
}

std::vector<float> all_rows(const Table& t) {
  std::vector<float> out(t.size() * t.dim());
  t.reconstruct(0, t.size(), out.data());
  return out;
}

// Words made of three syllables; a word's vector is the mean of its syllables' vectors, so its
// n-grams carry its meaning. Every seventh word is held out.
struct SyllableWords {
  static constexpr size_t d = 8;
  std::vector<std::string> words, held_words;
  std::vector<float> rows, held_rows;
  SyllableWords() {
    const char* syllables[] = {"ka", "lo", "mi", "nu", "pe", "ra", "si", "to", "vu", "ze", "bo", "da"};
    const size_t count = sizeof(syllables) / sizeof(syllables[0]);
    std::mt19937_64 rng(5);
    std::normal_distribution<float> normal;
    std::vector<std::vector<float>> meaning(count, std::vector<float>(d));
    for (auto& v : meaning)
      for (auto& e : v) e = normal(rng);
    size_t i = 0;
    for (size_t a = 0; a < count; ++a)
      for (size_t b = 0; b < count; ++b)
        for (size_t c = 0; c < count; ++c, ++i) {
          const bool held = i % 7 == 3;
          (held ? held_words : words).push_back(std::string(syllables[a]) + syllables[b] + syllables[c]);
          for (size_t t = 0; t < d; ++t) (held ? held_rows : rows).push_back((meaning[a][t] + meaning[b][t] + meaning[c][t]) / 3);
        }
  }
  Table table() const { return Table::from_rows(rows, d, words); }
};

}  // namespace

TEST_CASE("subword: rows from the n-grams of their keys; kept rows whole; unseen words answered") {
  const SyllableWords w;
  const size_t d = w.d, n = w.words.size();
  Table table = w.table();
  Table packed = table.compress("subword:rows=4096,minn=2,maxn=4,keep=100,values=f32");
  CHECK(packed.codec().spec() == "subword:rows=4096,minn=2,maxn=4,keep=100,values=f32");
  CHECK(packed.codec().code_size() == 0);
  const std::vector<float> decoded = all_rows(packed);
  // Kept rows are the rows themselves.
  CHECK(std::equal(decoded.begin(), decoded.begin() + 100 * d, w.rows.begin()));
  // The others are what an unseen word with the same n-grams gets, and close to the truth.
  double in_table = 0;
  for (size_t i = 100; i < n; ++i) {
    const auto derived = packed.codec().vector_for_key(w.words[i]);
    REQUIRE(derived);
    CHECK(std::equal(derived->begin(), derived->end(), decoded.begin() + i * d));
    in_table += cosine(decoded.data() + i * d, w.rows.data() + i * d, d);
  }
  CHECK(in_table / double(n - 100) > 0.95);
  double held = 0;
  for (size_t i = 0; i < w.held_words.size(); ++i) held += cosine(packed.get(w.held_words[i]).data(), w.held_rows.data() + i * d, d);
  CAPTURE(held / double(w.held_words.size()));
  CHECK(held / double(w.held_words.size()) > 0.9);
  // The file holds the pool; rows and unseen words decode the same after opening.
  test::TempDir dir;
  packed.save(dir.file("s.vecpack"));
  Table opened = Table::open(dir.file("s.vecpack"));
  CHECK(all_rows(opened) == decoded);
  CHECK(opened.get(w.held_words[3]) == packed.get(w.held_words[3]));
  CHECK(opened.info().parameter_bytes > 4096 * d * 4);
  // Search equals brute force over the decoded rows.
  SearchOptions options;
  options.k = 7;
  const std::vector<float> q(w.held_rows.begin(), w.held_rows.begin() + 4 * d);
  CHECK(opened.search(q.data(), 4, options).ids == Table::from_rows(decoded, d).search(q.data(), 4, options).ids);
  // f16 storage: the same rows within f16 rounding, half the parameters.
  Table half = table.compress("subword:rows=4096,minn=2,maxn=4,keep=100");
  CHECK(half.info().parameter_bytes < opened.info().parameter_bytes * 0.51);
  const std::vector<float> half_rows = all_rows(half);
  for (size_t i : {size_t(0), size_t(99), size_t(100), n - 1})
    CHECK(cosine(half_rows.data() + i * d, decoded.data() + i * d, d) > 0.999);
  // Fitting shows progress by conjugate-gradient iterations (then encoding shows its own).
  struct FirstTask : Progress {
    std::string task;
    uint64_t total = 0, last = 0;
    int begun = 0, ended = 0;
    void begin(std::string_view t, uint64_t n) override {
      if (begun++ == 0) task = t, total = n;
    }
    void advance(uint64_t done) override {
      if (begun == 1) last = done;
    }
    void end() override { ++ended; }
  } progress;
  CompressOptions with_progress;
  with_progress.progress = &progress;
  table.compress("subword:rows=512,minn=2,maxn=4,iterations=7", with_progress);
  CHECK(progress.task == "fitting the n-gram pool");
  CHECK(progress.total == 7);
  CHECK(progress.last >= 1);
  CHECK(progress.last <= 7);
  CHECK(progress.ended == progress.begun);
  // int8 storage: an affine map per column, a quarter of f32's parameters, the same after a save.
  Table quarter = table.compress("subword:rows=4096,minn=2,maxn=4,keep=100,values=int8");
  CHECK(quarter.codec().spec() == "subword:rows=4096,minn=2,maxn=4,keep=100,values=int8");
  CHECK(quarter.info().parameter_bytes < opened.info().parameter_bytes * 0.26);
  const std::vector<float> quarter_rows = all_rows(quarter);
  double worst = 1;
  for (size_t i = 0; i < n; ++i) worst = std::min(worst, cosine(quarter_rows.data() + i * d, decoded.data() + i * d, d));
  CHECK(worst > 0.95);
  quarter.save(dir.file("q.vecpack"));
  CHECK(all_rows(Table::open(dir.file("q.vecpack"))) == quarter_rows);
  // A slice keeps its place (rows decode from the whole table's keys) but is not saved alone.
  Table tail = packed.slice(200, 50);
  CHECK(std::equal(decoded.begin() + 200 * d, decoded.begin() + 250 * d, all_rows(tail).begin()));
  CHECK_THROWS_WITH_AS(tail.save(dir.file("tail.vecpack")), doctest::Contains("compress the slice again"), Error);
}

TEST_CASE("subword: bad input names the argument") {
  const SyllableWords w;
  CHECK_THROWS_WITH_AS(Table::from_rows(w.rows, w.d).compress("subword:rows=64"), doctest::Contains("the table has no keys"),
                       Error);
  CHECK_THROWS_WITH_AS(test::trained("subword:rows=64", w.rows, w.d), doctest::Contains("these rows have none"), Error);
  CHECK_THROWS_WITH_AS(w.table().compress("subword:rows=64,keep=5000"), doctest::Contains("keep=5000 is larger than the"),
                       Error);
  CHECK_THROWS_WITH_AS(Codec("subword:rows=0"), doctest::Contains("rows"), SpecError);
  CHECK_THROWS_WITH_AS(Codec("subword:minn=5,maxn=3"), doctest::Contains("minn=5 is larger than maxn=3"), SpecError);
  // Loaded on its own, the codec needs keys to decode rows (a table binds them), not to answer a word.
  Table packed = w.table().compress("subword:rows=16,minn=2,maxn=3");
  std::vector<uint8_t> chain = packed.codec().serialize();
  Codec loaded = Codec::load(chain.data(), chain.size());
  CHECK((loaded.capabilities() & kNeedsKeys) != 0);
  CHECK(loaded.vector_for_key("kalomi") == packed.codec().vector_for_key("kalomi"));
  std::vector<float> row(w.d);
  CHECK_THROWS_WITH_AS(loaded.decode(nullptr, 1, row.data(), 200), doctest::Contains("use the codec through its table"), Error);
  // A damaged blob is a FormatError.
  chain.resize(chain.size() - 3);
  CHECK_THROWS_AS(Codec::load(chain.data(), chain.size()), FormatError);
}

TEST_CASE("subword: a table that already has an n-gram pool gives the pool a codec of its own") {
  const SyllableWords w;
  SubwordFitOptions fit;
  fit.buckets = 256;
  Table with_pool = w.table().fit_subwords(fit);
  // The pool's rows are hash buckets: no keys, no frequencies, no order worth fitting in place.
  for (const char* spec : {"subword:rows=64", "mixdim:budget=64", "qr:m=16", "hash:rows=64"}) {
    CAPTURE(std::string(spec));
    CHECK_THROWS_WITH_AS(with_pool.compress(spec), doctest::Contains("give the pool a codec of its own"), Error);
  }
  CompressOptions options;
  options.subword_spec = "f16";
  Table packed = with_pool.compress("subword:rows=64,minn=2,maxn=4", options);
  CHECK(packed.subword_pool().spec() == "f16");
  // Unseen words come from the table's own pool, as fastText answers them.
  const std::vector<float> from_pool = with_pool.get(w.held_words[0]), got = packed.get(w.held_words[0]);
  CHECK(cosine(got.data(), from_pool.data(), w.d) > 0.999);
}

TEST_CASE("hash: key=string picks pool rows by key, whatever the row order") {
  const SyllableWords w;
  const size_t d = w.d, n = w.words.size();
  Table table = w.table();
  Table packed = table.compress("hash:rows=512,k=2,weights=off,key=string");
  CHECK(packed.codec().spec() == "hash:rows=512,weights=off,key=string");
  const std::vector<float> decoded = all_rows(packed);
  // Row i is the sum of the pool rows its key hashes to: exactly what an unseen key with the
  // same text gets.
  for (size_t i : {size_t(0), size_t(17), n - 1}) {
    const auto derived = packed.codec().vector_for_key(w.words[i]);
    REQUIRE(derived);
    CHECK(std::equal(derived->begin(), derived->end(), decoded.begin() + i * d));
  }
  // Reversing the rows leaves each key's pool rows, so each key's vector barely moves.
  std::vector<std::string> reversed_words(w.words.rbegin(), w.words.rend());
  std::vector<float> reversed_rows(n * d);
  for (size_t i = 0; i < n; ++i) std::copy_n(w.rows.data() + (n - 1 - i) * d, d, reversed_rows.data() + i * d);
  Table reversed = Table::from_rows(reversed_rows, d, reversed_words).compress("hash:rows=512,k=2,weights=off,key=string");
  for (size_t i : {size_t(0), size_t(500), n - 1}) {
    const std::vector<float> a = packed.get(w.words[i]), b = reversed.get(w.words[i]);
    CHECK(cosine(a.data(), b.data(), d) > 0.999);
  }
  // Saved and opened: the keys come from the file.
  test::TempDir dir;
  packed.save(dir.file("h.vecpack"));
  CHECK(all_rows(Table::open(dir.file("h.vecpack"))) == decoded);
  // With weights, or by position, no vector for an unseen key.
  CHECK_FALSE(table.compress("hash:rows=512,key=string").codec().vector_for_key("zzz"));
  CHECK_FALSE(table.compress("hash:rows=512,weights=off").codec().vector_for_key("zzz"));
  CHECK_THROWS_WITH_AS(Table::from_rows(w.rows, d).compress("hash:rows=64,key=string"),
                       doctest::Contains("the table has no keys"), Error);
}

TEST_CASE("hash: feature tables share one pool; each table's ids hash apart") {
  // Two feature tables (users, items) with the same ids: rows 0..n/2 are users 0.., the rest items 0...
  const size_t n = 1200, d = 6, half = n / 2;
  auto x = test::clustered_rows(n, d, 30, 21);
  Table table = Table::from_rows(x, d);
  std::vector<uint32_t> tables(n, 0);
  std::fill(tables.begin() + half, tables.end(), 7u);
  CompressOptions options;
  options.row_tables = tables;
  Table packed = table.compress("hash:rows=128,k=2,weights=off", options);
  const std::vector<float> decoded = all_rows(packed);
  // Item i (table 7) sums the pool rows of h_j(i, 7), user i those of h_j(i) = h_j(i, 0).
  Table plain = table.compress("hash:rows=128,k=2,weights=off");
  CHECK(all_rows(plain) != decoded);  // the item rows hash elsewhere
  for (size_t id : {size_t(0), size_t(5), size_t(321)}) {
    bool same_user = true, same_item = true;
    for (uint32_t j = 0; j < 2; ++j) {
      same_user &= hash_bucket(uint64_t(id), 0u, j, 128) == hash_bucket(uint64_t(id), j, 128);
      same_item &= hash_bucket(uint64_t(half + id), 7u, j, 128) == hash_bucket(uint64_t(half + id), j, 128);
    }
    CHECK(same_user);
    CAPTURE(id);
    CHECK_FALSE(same_item);
  }
  // The table ids are part of the parameters: the opened file decodes the same rows.
  test::TempDir dir;
  packed.save(dir.file("t.vecpack"));
  CHECK(all_rows(Table::open(dir.file("t.vecpack"))) == decoded);
  // Errors: a codec that takes no table ids, a wrong count, a trained codec.
  CHECK_THROWS_WITH_AS(table.compress("int8", options), doctest::Contains("takes no feature table per row"), Error);
  CompressOptions short_options;
  short_options.row_tables.assign(n - 1, 0);
  CHECK_THROWS_WITH_AS(table.compress("hash:rows=64", short_options), doctest::Contains("1199 values for a table of 1200 rows"),
                       Error);
  CHECK_THROWS_WITH_AS(table.compress(packed.codec(), options), doctest::Contains("trained already"), Error);
  // A fit in place encodes no other rows, not even these again.
  CHECK_THROWS_WITH_AS(table.compress(packed.codec()), doctest::Contains("fitted in place to the rows it was trained on"),
                       Error);
}

TEST_CASE("counts: attached, saved in FREQ, opened in place, sliced and carried through compress") {
  const size_t n = 300, d = 4;
  auto x = test::clustered_rows(n, d, 5, 3);
  std::vector<uint64_t> counts(n);
  for (size_t i = 0; i < n; ++i) counts[i] = 1000 * (i % 17) + i;
  Table table = Table::from_rows(x, d);
  CHECK(table.counts() == nullptr);
  Table counted = table.with_counts(counts);
  REQUIRE(counted.counts() != nullptr);
  CHECK(std::equal(counts.begin(), counts.end(), counted.counts()));
  test::TempDir dir;
  counted.compress("int8").save(dir.file("c.vecpack"));
  Table opened = Table::open(dir.file("c.vecpack"));
  REQUIRE(opened.counts() != nullptr);
  CHECK(std::equal(counts.begin(), counts.end(), opened.counts()));
  const auto sections = opened.info().sections;
  CHECK(std::any_of(sections.begin(), sections.end(), [](const SectionInfo& s) { return s.type == "FREQ" && s.length == 300 * 8; }));
  CHECK(Table::verify(dir.file("c.vecpack")).ok());
  CHECK(opened.slice(10, 5).counts()[0] == counts[10]);
  CHECK_THROWS_WITH_AS(table.with_counts({1, 2}), doctest::Contains("2 counts for a table of 300 rows"), Error);
}

TEST_CASE("mixdim: ranks rows by their counts; without counts, only a frequency-sorted source will do") {
  // Rows in frequency order, then the same rows shuffled with counts that give that order back.
  const size_t n = 1500, d = 10;
  auto sorted = test::clustered_rows(n, d, 12, 8);
  std::vector<uint64_t> sorted_counts(n);
  for (size_t i = 0; i < n; ++i) sorted_counts[i] = 10 * (n - i);
  std::vector<size_t> where(n);  // shuffled row i holds sorted row where[i]
  std::iota(where.begin(), where.end(), size_t(0));
  std::shuffle(where.begin(), where.end(), std::mt19937_64(4));
  std::vector<float> shuffled(n * d);
  std::vector<uint64_t> shuffled_counts(n);
  for (size_t i = 0; i < n; ++i) {
    std::copy_n(sorted.data() + where[i] * d, d, shuffled.data() + i * d);
    shuffled_counts[i] = sorted_counts[where[i]];
  }
  const std::string spec = "mixdim:budget=12,inner=f32";
  Table by_counts = Table::from_rows(shuffled, d).with_counts(shuffled_counts).compress(spec);
  // The ranks (4 bytes a row) are paid from the budget: the sorted rows, which need none, fit
  // the same blocks in 12 - 4 bytes a row.
  Table in_order = Table::from_rows(sorted, d).with_counts(sorted_counts).compress("mixdim:budget=8,inner=f32");
  // The same blocks, dimensions and coefficients: shuffled row i decodes as sorted row where[i].
  const std::vector<float> a = all_rows(by_counts), b = all_rows(in_order);
  for (size_t i = 0; i < n; ++i) CHECK(std::equal(a.begin() + i * d, a.begin() + (i + 1) * d, b.begin() + where[i] * d));
  CHECK(by_counts.codec().quantizer().serialize().size() <= 12 * n);
  const uint64_t rank_bytes = by_counts.info().parameter_bytes - in_order.info().parameter_bytes;
  CHECK(rank_bytes >= 4 * n);
  CHECK(rank_bytes <= 4 * n + 1);  // the spec strings differ by a digit
  test::TempDir dir;
  by_counts.save(dir.file("m.vecpack"));
  CHECK(all_rows(Table::open(dir.file("m.vecpack"))) == a);
  // The file order of a frequency-sorted source is the frequency order; order=file says so too.
  Table glove = Table::from_rows(sorted, d);
  glove.set_source("glove", "words.txt", /*rows_by_frequency=*/true);
  const std::vector<float> from_source = all_rows(glove.compress(spec));
  CHECK(from_source == all_rows(Table::from_rows(sorted, d).compress(spec + ",order=file")));
  // Without counts or such a source: a clear error naming what is missing and the way out.
  CHECK_THROWS_WITH_AS(Table::from_rows(sorted, d).compress(spec),
                       doctest::Contains("frequencies missing: the rows have no counts (FREQ section) and come from an "
                                         "unknown source"),
                       Error);
  Table hdf5 = Table::from_rows(sorted, d);
  hdf5.set_source("hdf5", "x.hdf5");
  CHECK_THROWS_WITH_AS(hdf5.compress(spec), doctest::Contains("come from 'hdf5', which does not list rows by frequency"), Error);
  CHECK_THROWS_WITH_AS(hdf5.compress(spec), doctest::Contains("order=file"), Error);
  CHECK_THROWS_WITH_AS(glove.compress(spec + ",order=counts"), doctest::Contains("order=counts needs row counts"), Error);
  // Only relative counts matter, however large (alpha's powers of raw counts would overflow the
  // search for the dimensions and leave every block at one).
  std::vector<uint64_t> huge = shuffled_counts;
  for (uint64_t& c : huge) c *= uint64_t(1e12);
  const std::string steep = "mixdim:budget=40,alpha=7,inner=f32";
  CHECK(all_rows(Table::from_rows(shuffled, d).with_counts(huge).compress(steep)) ==
        all_rows(Table::from_rows(shuffled, d).with_counts(shuffled_counts).compress(steep)));
  // order=file ignores the counts.
  CHECK(all_rows(Table::from_rows(shuffled, d).with_counts(shuffled_counts).compress(spec + ",order=file")) ==
        all_rows(Table::from_rows(shuffled, d).compress(spec + ",order=file")));
}
