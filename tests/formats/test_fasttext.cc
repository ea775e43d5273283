#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "test_util.h"
#include "formats/text_io.h"
#include "vecpack/errors.h"
#include "vecpack/formats.h"
#include "vecpack/table.h"

using namespace vecpack;

namespace {

const std::string kHello = "h\xC3\xA9llo";  // "héllo": n-grams must count é as one character

// A fastText model as the tests want it, written in fastText's exact binary layout.
struct FakeModel {
  int32_t version = 12;
  int32_t dim = 4, model = 2 /* skipgram */, bucket = 16, minn = 2, maxn = 3;
  std::vector<std::string> words = {"</s>", "cat", kHello};
  std::vector<std::string> labels = {"__label__x"};
  int64_t prune_size = -1;
  std::vector<std::pair<int32_t, int32_t>> prune_pairs;
  int64_t ngram_rows = 16;
  std::vector<float> input;  // dense: (words + ngram_rows) x dim

  struct Quantized {
    bool qnorm = false;
    int32_t nsubq = 2, dsub = 3, lastdsub = 1;  // dim 4 = 3 + 1: the last sub-quantizer is narrower
    std::vector<uint8_t> codes;
    std::vector<float> centroids;
    std::vector<uint8_t> norm_codes;
    std::vector<float> norm_centroids;
  };
  std::optional<Quantized> quantized;

  int64_t rows() const { return int64_t(words.size()) + ngram_rows; }

  // Seeded values in [-1, 1) for a dense matrix, or seeded codes and centroids.
  void fill(uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::uniform_real_distribution<float> uniform(-1.f, 1.f);
    if (!quantized) {
      input.resize(size_t(rows()) * size_t(dim));
      for (float& v : input) v = uniform(rng);
      return;
    }
    Quantized& q = *quantized;
    q.codes.resize(size_t(rows()) * size_t(q.nsubq));
    for (uint8_t& c : q.codes) c = uint8_t(rng());
    q.centroids.resize(size_t(dim) * 256);
    for (float& v : q.centroids) v = uniform(rng);
    if (q.qnorm) {
      q.norm_codes.resize(size_t(rows()));
      for (uint8_t& c : q.norm_codes) c = uint8_t(rng());
      q.norm_centroids.resize(256);
      for (float& v : q.norm_centroids) v = 0.5f + uniform(rng) * 0.25f;
    }
  }

  // Input row r as fastText uses it (decoded when quantized).
  std::vector<double> row(size_t r) const {
    std::vector<double> out(static_cast<size_t>(dim), 0.0);
    if (!quantized) {
      for (size_t k = 0; k < out.size(); ++k) out[k] = input[r * size_t(dim) + k];
      return out;
    }
    const Quantized& q = *quantized;
    const double norm = q.qnorm ? q.norm_centroids[q.norm_codes[r]] : 1.0;
    for (int32_t sub = 0; sub < q.nsubq; ++sub) {
      const uint8_t code = q.codes[r * size_t(q.nsubq) + size_t(sub)];
      const bool last = sub == q.nsubq - 1;
      const size_t width = size_t(last ? q.lastdsub : q.dsub);
      const size_t base = last ? size_t(sub) * 256 * size_t(q.dsub) + code * width : (size_t(sub) * 256 + code) * size_t(q.dsub);
      for (size_t i = 0; i < width; ++i) out[size_t(sub) * size_t(q.dsub) + i] = norm * q.centroids[base + i];
    }
    return out;
  }
};

class ByteWriter {
 public:
  void i32(int32_t v) { raw(&v, 4); }
  void i64(int64_t v) { raw(&v, 8); }
  void u8(uint8_t v) { raw(&v, 1); }
  void f64(double v) { raw(&v, 8); }
  void floats(const std::vector<float>& v) { raw(v.data(), v.size() * 4); }
  void bytes(const std::vector<uint8_t>& v) { raw(v.data(), v.size()); }
  void cstring(const std::string& s) { raw(s.c_str(), s.size() + 1); }
  size_t size() const { return data.size(); }
  std::vector<uint8_t> data;

 private:
  void raw(const void* p, size_t n) {  // the tests run on little-endian machines, as fastText files are
    const auto* b = static_cast<const uint8_t*>(p);
    data.insert(data.end(), b, b + n);
  }
};

struct ModelFile {
  std::vector<uint8_t> bytes;
  size_t dictionary_offset = 0, first_word_offset = 0, matrix_offset = 0, matrix_data_offset = 0;
};

ModelFile build(const FakeModel& m) {
  ByteWriter w;
  ModelFile file;
  w.i32(793712314);
  w.i32(m.version);
  for (int32_t v : {m.dim, 5, 1, 1, 5, 1, 2 /* ns */, m.model, m.bucket, m.minn, m.maxn, 100}) w.i32(v);
  w.f64(1e-4);
  file.dictionary_offset = w.size();
  w.i32(int32_t(m.words.size() + m.labels.size()));
  w.i32(int32_t(m.words.size()));
  w.i32(int32_t(m.labels.size()));
  w.i64(1000);
  w.i64(m.prune_size);
  file.first_word_offset = w.size();
  for (size_t i = 0; i < m.words.size(); ++i) {
    w.cstring(m.words[i]);
    w.i64(int64_t(70 - 10 * i));  // word counts: 70, 60, 50, ...
    w.u8(0);
  }
  for (const auto& label : m.labels) {
    w.cstring(label);
    w.i64(3);
    w.u8(1);
  }
  for (auto [bucket, row] : m.prune_pairs) {
    w.i32(bucket);
    w.i32(row);
  }
  w.u8(m.quantized ? 1 : 0);
  file.matrix_offset = w.size();
  if (!m.quantized) {
    w.i64(m.rows());
    w.i64(m.dim);
    file.matrix_data_offset = w.size();
    w.floats(m.input);
  } else {
    const auto& q = *m.quantized;
    w.u8(q.qnorm ? 1 : 0);
    w.i64(m.rows());
    w.i64(m.dim);
    w.i32(int32_t(q.codes.size()));
    file.matrix_data_offset = w.size();
    w.bytes(q.codes);
    for (int32_t v : {m.dim, q.nsubq, q.dsub, q.lastdsub}) w.i32(v);
    w.floats(q.centroids);
    if (q.qnorm) {
      w.bytes(q.norm_codes);
      for (int32_t v : {1, 1, 1, 1}) w.i32(v);
      w.floats(q.norm_centroids);
    }
  }
  // The output matrix: not needed for word vectors, present as in a real file.
  w.u8(0);
  w.i64(1);
  w.i64(m.dim);
  w.floats(std::vector<float>(size_t(m.dim), 0.5f));
  file.bytes = std::move(w.data);
  return file;
}

// ---- fastText's n-grams and hash, written out independently of the library.

std::vector<std::string> utf8_characters(const std::string& text) {
  std::vector<std::string> out;
  for (unsigned char c : text) {
    if ((c & 0xC0) == 0x80 && !out.empty()) out.back() += char(c);
    else out.emplace_back(1, char(c));
  }
  return out;
}

std::vector<std::string> char_ngrams(const std::string& word, int32_t minn, int32_t maxn) {
  const std::vector<std::string> chars = utf8_characters("<" + word + ">");
  std::vector<std::string> out;
  for (size_t start = 0; start < chars.size(); ++start) {
    std::string ngram;
    for (size_t n = 1; n <= size_t(maxn) && start + n <= chars.size(); ++n) {
      ngram += chars[start + n - 1];
      const bool lone_boundary = n == 1 && (start == 0 || start + n == chars.size());
      if (n >= size_t(minn) && !lone_boundary) out.push_back(ngram);
    }
  }
  return out;
}

uint32_t fnv1a_sign_extended(const std::string& text) {
  uint32_t h = 2166136261u;
  for (char c : text) {
    h ^= uint32_t(int32_t(int8_t(c)));
    h *= 16777619u;
  }
  return h;
}

// Absolute input rows of the n-grams of `word` that fastText adds up.
std::vector<size_t> ngram_input_rows(const FakeModel& m, const std::string& word) {
  std::vector<size_t> rows;
  const bool old_supervised = m.version == 11 && m.model == 3;
  if (m.maxn == 0 || old_supervised || m.bucket == 0 || word == "</s>" || m.prune_size == 0) return rows;
  std::map<int32_t, int32_t> pruned(m.prune_pairs.begin(), m.prune_pairs.end());
  for (const std::string& ngram : char_ngrams(word, m.minn, m.maxn)) {
    const int32_t bucket = int32_t(fnv1a_sign_extended(ngram) % uint32_t(m.bucket));
    if (m.prune_size < 0) {
      rows.push_back(m.words.size() + size_t(bucket));
    } else if (auto it = pruned.find(bucket); it != pruned.end()) {
      rows.push_back(m.words.size() + size_t(it->second));
    }
  }
  return rows;
}

std::vector<double> mean_of_rows(const FakeModel& m, const std::vector<size_t>& rows) {
  std::vector<double> sum(size_t(m.dim), 0.0);
  for (size_t r : rows) {
    std::vector<double> values = m.row(r);
    for (size_t k = 0; k < sum.size(); ++k) sum[k] += values[k];
  }
  if (!rows.empty()) {
    for (double& v : sum) v /= double(rows.size());
  }
  return sum;
}

std::vector<double> expected_word_vector(const FakeModel& m, size_t word_index) {
  std::vector<size_t> rows{word_index};
  for (size_t r : ngram_input_rows(m, m.words[word_index])) rows.push_back(r);
  return mean_of_rows(m, rows);
}

std::vector<double> expected_unknown_vector(const FakeModel& m, const std::string& word) {
  return mean_of_rows(m, ngram_input_rows(m, word));
}

void check_close(const std::vector<float>& actual, const std::vector<double>& expected) {
  REQUIRE(actual.size() == expected.size());
  for (size_t k = 0; k < expected.size(); ++k) {
    CAPTURE(k);
    CHECK(actual[k] == doctest::Approx(expected[k]).epsilon(1e-6));
  }
}

std::string write_model(const test::TempDir& dir, const std::string& name, const FakeModel& m) {
  std::string path = dir.file(name);
  test::write_bytes(path, build(m).bytes);
  return path;
}

}  // namespace

TEST_CASE("fasttext: the independent n-gram rules pin fastText's behaviour") {
  // "<" and ">" alone never count; é is one character.
  CHECK(char_ngrams("ab", 1, 2) == std::vector<std::string>{"<a", "a", "ab", "b", "b>"});
  CHECK(char_ngrams(kHello, 2, 2) ==
        std::vector<std::string>{"<h", "h\xC3\xA9", "\xC3\xA9l", "ll", "lo", "o>"});
  // Bytes are sign-extended before the xor: é's bytes hash differently from a plain FNV-1a.
  uint32_t plain = 2166136261u;
  for (unsigned char c : std::string("\xC3\xA9")) plain = (plain ^ c) * 16777619u;
  CHECK(fnv1a_sign_extended("\xC3\xA9") != plain);
  CHECK(fnv1a_sign_extended("ab") == ((2166136261u ^ 'a') * 16777619u ^ 'b') * 16777619u);
}

TEST_CASE("fasttext: word vectors are the mean of the word's row and its n-gram rows") {
  test::TempDir dir;
  FakeModel m;
  m.fill(1);
  // A .bin name: found by content although word2vec binary owns the extension.
  const std::string path = write_model(dir, "model.bin", m);
  CHECK(std::string(detect_format(path).name) == "fasttext");

  Table table = read_table(path);
  REQUIRE(table.size() == 3);  // the label is not a word
  REQUIRE(table.dim() == 4);
  CHECK(table.meta().source_format == "fasttext");
  CHECK(table.meta().source_path == path);
  CHECK(table.metric() == Metric::cos);
  for (size_t i = 0; i < m.words.size(); ++i) {
    CAPTURE(m.words[i]);
    CHECK(table.key(i) == m.words[i]);
    check_close(table.row(i), expected_word_vector(m, i));
  }
  CHECK(ngram_input_rows(m, kHello).size() == 11);  // 6 bigrams + 5 trigrams
  // "</s>" has only its own row.
  check_close(table.row(0), m.row(0));
  CHECK(!table.find("__label__x"));
  // The dictionary's word counts come along (and rank rows for mixdim).
  REQUIRE(table.counts() != nullptr);
  CHECK(std::vector<uint64_t>(table.counts(), table.counts() + 3) == std::vector<uint64_t>{70, 60, 50});

  REQUIRE(table.has_subwords());
  const SubwordScheme& scheme = table.subword_scheme();
  CHECK(scheme.minn == 2);
  CHECK(scheme.maxn == 3);
  CHECK(scheme.buckets == 16);
  CHECK(!scheme.is_pruned);
  Table pool = table.subword_pool();
  CHECK(pool.size() == 16);
  check_close(pool.row(5), m.row(m.words.size() + 5));

  // Unknown words: the mean of their n-gram rows, as fastText computes them.
  for (std::string word : {"dog", "h\xC3\xA9llos", "\xE6\x97\xA5\xE6\x9C\xAC", "cats"}) {
    CAPTURE(word);
    check_close(table.get(word), expected_unknown_vector(m, word));
  }
  CHECK(table.get("cat") == table.row(1));
}

TEST_CASE("fasttext: unknown words keep their vectors through a saved .vecpack") {
  test::TempDir dir;
  FakeModel m;
  m.fill(2);
  Table table = read_table(write_model(dir, "model.bin", m));
  table.save(dir.file("model.vecpack"));
  Table opened = Table::open(dir.file("model.vecpack"));
  REQUIRE(opened.has_subwords());
  REQUIRE(opened.counts() != nullptr);
  CHECK(opened.counts()[2] == 50);
  check_close(opened.get("zebra"), expected_unknown_vector(m, "zebra"));
  check_close(opened.get(kHello), expected_word_vector(m, 2));
}

TEST_CASE("fasttext: gzip-compressed models read like plain ones") {
  test::TempDir dir;
  FakeModel m;
  m.fill(3);
  {
    io::OutputFile out(dir.file("model.bin.gz"));
    std::vector<uint8_t> bytes = build(m).bytes;
    out.write(bytes.data(), bytes.size());
    out.commit();
  }
  Table table = read_table(dir.file("model.bin.gz"));
  REQUIRE(table.size() == 3);
  check_close(table.row(2), expected_word_vector(m, 2));
  check_close(table.get("dog"), expected_unknown_vector(m, "dog"));
}

TEST_CASE("fasttext: a pruned dictionary keeps only the listed n-gram buckets") {
  test::TempDir dir;
  FakeModel m;
  // Keep the buckets of some of "cat"'s n-grams, mapped to new rows in a shuffled order.
  std::vector<int32_t> buckets;
  for (const std::string& ngram : char_ngrams("cat", m.minn, m.maxn)) {
    buckets.push_back(int32_t(fnv1a_sign_extended(ngram) % uint32_t(m.bucket)));
  }
  REQUIRE(buckets.size() >= 4);
  m.prune_pairs = {{buckets[2], 1}, {buckets[0], 0}, {buckets[3], 2}};
  m.prune_size = int64_t(m.prune_pairs.size());
  m.ngram_rows = 3;
  m.fill(4);
  Table table = read_table(write_model(dir, "pruned.bin", m));
  REQUIRE(table.has_subwords());
  const SubwordScheme& scheme = table.subword_scheme();
  CHECK(scheme.is_pruned);
  REQUIRE(scheme.pruned.size() == 3);
  for (size_t i = 1; i < scheme.pruned.size(); ++i) CHECK(scheme.pruned[i - 1].first < scheme.pruned[i].first);
  CHECK(table.subword_pool().size() == 3);
  for (size_t i = 0; i < m.words.size(); ++i) {
    CAPTURE(m.words[i]);
    check_close(table.row(i), expected_word_vector(m, i));
  }
  CHECK(ngram_input_rows(m, "cat").size() >= 3);
  check_close(table.get("cats"), expected_unknown_vector(m, "cats"));
  // A word none of whose n-grams is kept: fastText answers zeros.
  std::string unseen;
  for (std::string candidate : {"q", "z", "x", "qz", "zq", "xx", "qq", "zz", "jj", "kk", "vv"}) {
    if (ngram_input_rows(m, candidate).empty()) {
      unseen = candidate;
      break;
    }
  }
  REQUIRE(!unseen.empty());
  check_close(table.get(unseen), std::vector<double>(4, 0.0));

  // Pruned to nothing: no n-grams at all, each word is its own row.
  FakeModel bare;
  bare.prune_size = 0;
  bare.ngram_rows = 0;
  bare.fill(5);
  Table plain = read_table(write_model(dir, "bare.bin", bare));
  CHECK(!plain.has_subwords());
  for (size_t i = 0; i < bare.words.size(); ++i) check_close(plain.row(i), bare.row(i));
}

TEST_CASE("fasttext: quantized .ftz input, with and without quantized norms") {
  test::TempDir dir;
  for (bool qnorm : {false, true}) {
    CAPTURE(qnorm);
    FakeModel m;
    m.quantized = FakeModel::Quantized{};
    m.quantized->qnorm = qnorm;
    // As fastText's quantize writes it: a pruned n-gram pool.
    m.prune_pairs = {{3, 0}, {7, 1}, {11, 2}, {12, 3}, {15, 4}};
    m.prune_size = 5;
    m.ngram_rows = 5;
    m.fill(qnorm ? 7 : 6);
    const std::string path = write_model(dir, qnorm ? "qnorm.ftz" : "plain.ftz", m);
    CHECK(std::string(detect_format(path).name) == "fasttext");
    Table table = read_table(path);
    REQUIRE(table.size() == 3);
    for (size_t i = 0; i < m.words.size(); ++i) {
      CAPTURE(m.words[i]);
      check_close(table.row(i), expected_word_vector(m, i));
    }
    REQUIRE(table.has_subwords());
    CHECK(table.subword_pool().size() == 5);
    check_close(table.subword_pool().row(4), m.row(m.words.size() + 4));
    for (std::string word : {"dog", "cats", "ab"}) {
      CAPTURE(word);
      check_close(table.get(word), expected_unknown_vector(m, word));
    }
  }
}

TEST_CASE("fasttext: version 11 supervised models use no character n-grams") {
  test::TempDir dir;
  FakeModel old;
  old.version = 11;
  old.model = 3;
  old.fill(8);
  Table table = read_table(write_model(dir, "old.bin", old));
  CHECK(!table.has_subwords());
  for (size_t i = 0; i < old.words.size(); ++i) check_close(table.row(i), old.row(i));
  CHECK_THROWS_AS(table.get("dog"), NotFoundError);

  // The same model as version 12, or version 11 unsupervised, does use them.
  for (auto [version, model] : {std::pair{12, 3}, std::pair{11, 2}}) {
    FakeModel m = old;
    m.version = version;
    m.model = model;
    Table with = read_table(write_model(dir, "new.bin", m));
    CHECK(with.has_subwords());
    check_close(with.row(1), expected_word_vector(m, 1));
    CHECK(ngram_input_rows(m, "cat").size() > 0);
  }
}

TEST_CASE("fasttext: maxn 0 or no buckets mean no n-grams") {
  test::TempDir dir;
  FakeModel m;
  m.maxn = 0;
  m.fill(9);
  Table table = read_table(write_model(dir, "maxn0.bin", m));
  CHECK(!table.has_subwords());
  check_close(table.row(2), m.row(2));
  FakeModel nobucket;
  nobucket.bucket = 0;
  nobucket.ngram_rows = 0;
  nobucket.fill(10);
  Table none = read_table(write_model(dir, "bucket0.bin", nobucket));
  CHECK(!none.has_subwords());
  check_close(none.row(1), nobucket.row(1));
}

TEST_CASE("fasttext: limit keeps the first words and the whole n-gram pool") {
  test::TempDir dir;
  FakeModel m;
  m.fill(11);
  const std::string path = write_model(dir, "model.bin", m);
  ReadOptions options;
  options.limit = 2;
  Table table = read_table(path, {}, options);
  REQUIRE(table.size() == 2);
  CHECK(table.key(1) == "cat");
  check_close(table.row(1), expected_word_vector(m, 1));
  REQUIRE(table.has_subwords());
  CHECK(table.subword_pool().size() == 16);
  // The word left out is now an unknown word.
  check_close(table.get(kHello), expected_unknown_vector(m, kHello));
}

TEST_CASE("fasttext: invalid UTF-8 words: an error by default, else replaced or dropped") {
  test::TempDir dir;
  FakeModel m;
  m.words[2] = "h\xE9llo";  // Latin-1, not UTF-8
  m.fill(12);
  const std::string path = write_model(dir, "latin1.bin", m);
  ParseError strict = test::caught<ParseError>([&] { read_table(path); });
  CHECK(test::contains(strict.what(), "latin1.bin"));
  CHECK(test::contains(strict.what(), "not valid UTF-8"));
  const size_t word_offset = build(m).first_word_offset + 4 + 1 + 8 + 1 + 4 + 8 + 1;  // after "</s>" and "cat"
  CHECK(test::contains(strict.what(), "byte offset " + std::to_string(word_offset)));

  ReadOptions options;
  options.unicode_errors = UnicodeErrors::replace;
  Table replaced = read_table(path, {}, options);
  CHECK(replaced.key(2) == "h\xEF\xBF\xBDllo");
  // The vector is still computed from the word's bytes, as fastText does.
  check_close(replaced.row(2), expected_word_vector(m, 2));
  options.unicode_errors = UnicodeErrors::ignore;
  CHECK(read_table(path, {}, options).key(2) == "hllo");

  // Repaired keys that collide keep the first row.
  FakeModel twins;
  twins.words = {"a\xFF", "a\xFE", "b"};
  twins.fill(13);
  Table merged = read_table(write_model(dir, "twins.bin", twins), {}, options);
  REQUIRE(merged.size() == 2);
  CHECK(merged.key(0) == "a");
  CHECK(merged.key(1) == "b");
  check_close(merged.row(0), expected_word_vector(twins, 0));
  check_close(merged.row(1), expected_word_vector(twins, 2));
}

TEST_CASE("fasttext: NaN in the matrix is an error unless allowed") {
  test::TempDir dir;
  FakeModel m;
  m.fill(14);
  m.input[1 * 4 + 2] = std::nanf("");
  ModelFile file = build(m);
  test::write_bytes(dir.file("nan.bin"), file.bytes);
  ParseError e = test::caught<ParseError>([&] { read_table(dir.file("nan.bin")); });
  CHECK(test::contains(e.what(), "NaN in value 3 of input matrix row 1"));
  CHECK(test::contains(e.what(), "byte offset " + std::to_string(file.matrix_data_offset + (4 + 2) * 4)));
  ReadOptions options;
  options.allow_nan = true;
  CHECK(std::isnan(read_table(dir.file("nan.bin"), {}, options).row(1)[2]));
}

TEST_CASE("fasttext: damaged files are errors naming the byte offset") {
  test::TempDir dir;
  FakeModel base;
  base.fill(15);
  const ModelFile good = build(base);
  auto set_i32 = [](std::vector<uint8_t>& bytes, size_t offset, int32_t value) { std::memcpy(&bytes[offset], &value, 4); };
  auto set_i64 = [](std::vector<uint8_t>& bytes, size_t offset, int64_t value) { std::memcpy(&bytes[offset], &value, 8); };

  FakeModel quantized = base;
  quantized.quantized = FakeModel::Quantized{};
  quantized.fill(16);
  const ModelFile good_ftz = build(quantized);

  struct Case {
    std::string name;
    std::vector<uint8_t> bytes;
    std::vector<std::string> expected;
  };
  std::vector<Case> cases;
  {
    auto bytes = good.bytes;
    set_i32(bytes, 0, 12345);
    cases.push_back({"wrong magic", bytes, {"not a fastText model: magic 12345, expected 793712314", "(byte offset 0)"}});
  }
  {
    auto bytes = good.bytes;
    set_i32(bytes, 4, 10);
    cases.push_back({"version 10", bytes, {"unsupported fastText model version 10", "(byte offset 4)"}});
  }
  {
    auto bytes = good.bytes;
    bytes.resize(good.first_word_offset + 6);  // inside "cat"
    cases.push_back({"truncated dictionary", bytes, {"truncated", "dictionary", "byte offset"}});
  }
  {
    auto bytes = good.bytes;
    bytes.resize(good.first_word_offset - 3);  // inside the dictionary header
    cases.push_back({"truncated dictionary header", bytes, {"truncated: the pruned n-gram count needs 8 bytes, 5 remain"}});
  }
  {
    auto bytes = good.bytes;
    bytes.resize(good.matrix_data_offset + 40);
    cases.push_back({"truncated matrix",
                     bytes,
                     {"truncated: the input matrix of 19 x 4 float32 needs 304 bytes, 40 remain",
                      "(byte offset " + std::to_string(good.matrix_data_offset) + ")"}});
  }
  {
    auto bytes = good.bytes;
    set_i64(bytes, good.matrix_offset, int64_t{1} << 40);
    cases.push_back({"huge matrix in a small file", bytes, {"truncated: the input matrix of 1099511627776 x 4", "bytes"}});
  }
  {
    auto bytes = good.bytes;
    set_i64(bytes, good.matrix_offset, int64_t{1} << 62);
    cases.push_back({"matrix larger than 2^64 bytes", bytes, {"needs more than 2^64 bytes"}});
  }
  {
    auto bytes = good.bytes;
    set_i32(bytes, good.dictionary_offset, 2000000000);
    set_i32(bytes, good.dictionary_offset + 4, 1999999999);
    set_i32(bytes, good.dictionary_offset + 8, 1);
    cases.push_back({"huge dictionary in a small file", bytes, {"truncated: a dictionary of 2000000000 entries"}});
  }
  {
    auto bytes = good.bytes;
    set_i32(bytes, good.dictionary_offset + 4, 5);
    cases.push_back({"more words than entries", bytes, {"4 entries, of which 5 words"}});
  }
  {
    auto bytes = good.bytes;
    set_i64(bytes, good.matrix_offset + 8, 5);
    cases.push_back({"matrix columns differ from dim", bytes, {"has 5 columns, expected the dimension 4"}});
  }
  {
    auto bytes = good.bytes;
    set_i64(bytes, good.matrix_offset, 10);
    cases.push_back({"fewer n-gram rows than buckets", bytes, {"10 rows, expected 3 words + 16 n-gram buckets"}});
  }
  {
    FakeModel bad = base;
    bad.words[1] = "c\xC3";
    cases.push_back({"invalid UTF-8 word", build(bad).bytes, {"is not valid UTF-8", "byte offset"}});
  }
  {
    FakeModel bad = base;
    bad.words[1] = std::string(70000, 'x');
    cases.push_back({"word without a NUL", build(bad).bytes, {"no NUL within 65536 bytes"}});
  }
  {
    FakeModel bad = quantized;
    bad.quantized->codes.resize(bad.quantized->codes.size() - 2);
    cases.push_back({"code size not rows x nsubq", build(bad).bytes, {"the code size is 36, expected rows x nsubq = 19 x 2"}});
  }
  {
    auto bytes = good_ftz.bytes;
    bytes.resize(good_ftz.matrix_data_offset + quantized.quantized->codes.size() + 16 + 100);
    cases.push_back({"truncated centroids", bytes, {"truncated", "centroid values"}});
  }
  {
    auto bytes = good_ftz.bytes;
    set_i32(bytes, good_ftz.matrix_data_offset + quantized.quantized->codes.size() + 8, 2);  // dsub 2: 2 + 1 != 4
    cases.push_back({"inconsistent quantizer", bytes, {"product quantizer", "dsub 2"}});
  }

  for (const Case& c : cases) {
    CAPTURE(c.name);
    const std::string path = dir.file("bad.bin");
    test::write_bytes(path, c.bytes);
    ParseError e = test::caught<ParseError>([&] { read_table(path, "fasttext"); });
    CHECK(test::contains(e.what(), path + ": "));
    for (const std::string& part : c.expected) {
      CAPTURE(part);
      CHECK(test::contains(e.what(), part));
    }
  }
}

TEST_CASE("fasttext: a truncated gzip model is an error, not a short table") {
  test::TempDir dir;
  FakeModel m;
  m.fill(17);
  std::vector<uint8_t> bytes = build(m).bytes;
  bytes.resize(bytes.size() - 60);  // into the input matrix
  io::OutputFile out(dir.file("cut.bin.gz"));
  out.write(bytes.data(), bytes.size());
  out.commit();
  ParseError e = test::caught<ParseError>([&] { read_table(dir.file("cut.bin.gz")); });
  CHECK(test::contains(e.what(), "truncated: the input matrix"));
  CHECK(test::contains(e.what(), "byte offset"));
}

TEST_CASE("fasttext: models cannot be written") {
  test::TempDir dir;
  Table table = Table::from_rows({1, 2}, 2, {"a"});
  CHECK_THROWS_WITH_AS(write_table(table, dir.file("x.ftz")), doctest::Contains("cannot be written"), Error);
}

TEST_CASE("fasttext-vec: written with a space after every value, read back exactly") {
  test::TempDir dir;
  Table table = Table::from_rows({1.f, 0.5f, -2.f, 3.f, 0.1f, -0.f}, 2, {"a", "caf\xC3\xA9", "b"});
  const std::string path = dir.file("t.vec");
  write_table(table, path, "fasttext-vec");
  CHECK(test::file_text(path) == "3 2\na 1 0.5 \ncaf\xC3\xA9 -2 3 \nb 0.1 -0 \n");
  Table back = read_table(path, "fasttext-vec");
  test::check_same_table(table, back);
  CHECK(back.meta().source_format == "fasttext-vec");
  // Found by content, a .vec file is word2vec text: the same rows either way.
  test::check_same_table(table, read_table(path));

  // As fastText writes them (fewer digits), with the limit honoured.
  test::write_text(dir.file("ft.vec"), "2 3\n</s> 0.1 0.2 0.3 \nw -1 2.5e-05 7 \n");
  ReadOptions options;
  options.limit = 1;
  Table first = read_table(dir.file("ft.vec"), "fasttext-vec", options);
  REQUIRE(first.size() == 1);
  CHECK(first.row(0) == std::vector<float>{0.1f, 0.2f, 0.3f});
  Table both = read_table(dir.file("ft.vec"), "fasttext-vec");
  CHECK(both.get("w") == std::vector<float>{-1.f, 2.5e-05f, 7.f});
}

TEST_CASE("fasttext: a quantized model that expands past the memory limit is refused before decoding") {
  // 1.2 MB on disk: 200,003 one-byte codes and one sub-quantizer of 1,000 dimensions, which
  // decode to 200,003 rows x 1,000 floats (763 MiB).
  test::TempDir dir;
  FakeModel m;
  m.dim = 1000;
  m.bucket = 200000;
  m.ngram_rows = 200000;
  m.quantized = FakeModel::Quantized{};
  m.quantized->nsubq = 1;
  m.quantized->dsub = 1000;
  m.quantized->lastdsub = 1000;
  m.fill(3);
  const std::string path = write_model(dir, "bomb.ftz", m);
  CHECK(test::read_bytes(path).size() < (uint64_t{2} << 20));
  ReadOptions options;
  options.max_memory = uint64_t{64} << 20;
  MemoryLimitError e = test::caught<MemoryLimitError>([&] { read_table(path, "", options); });
  CHECK_MESSAGE(test::contains(e.what(), path + ": the table would need 763.0 MiB (the model's 3 word rows and "
                                                "200000 n-gram rows x 1000 floats), more than the memory limit of "
                                                "64.0 MiB; raise it with --max-memory"),
                e.what());
}
