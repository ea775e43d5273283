// Shared test helpers: temporary folders, generated data, file bytes.
#pragma once

#include <doctest/doctest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "vecpack/codec.h"
#include "vecpack/errors.h"
#include "vecpack/table.h"

namespace vecpack::test {

class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "vecpack-test-XXXXXX").string();
    path_ = mkdtemp(pattern.data());
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string file(const std::string& name) const { return path_ + "/" + name; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// A trained codec's parameters serialized and loaded again give the same spec, codes and
// decoded rows on x; every truncation of the blob (about `cuts` of them) is a FormatError.
inline void check_round_trip(const Codec& a, const std::vector<float>& x, size_t d, size_t cuts = 97) {
  const size_t n = x.size() / d;
  auto blob = a.serialize();
  Codec b = Codec::load(blob.data(), blob.size());
  CHECK(b.spec() == a.spec());
  std::vector<uint8_t> ca(n * a.code_size()), cb(n * b.code_size());
  a.encode(x.data(), n, ca.data());
  b.encode(x.data(), n, cb.data());
  CHECK(ca == cb);
  std::vector<float> ya(n * d), yb(n * d);
  a.decode(ca.data(), n, ya.data());
  b.decode(cb.data(), n, yb.data());
  CHECK(ya == yb);
  for (size_t cut = 0; cut < blob.size(); cut += 1 + blob.size() / cuts) {
    CAPTURE(cut);
    CHECK_THROWS_AS(Codec::load(blob.data(), cut), FormatError);
  }
}

// A codec built from spec and trained on the rows x (dimension d).
// Mean over rows of the squared error of encoding and decoding x (rows of dimension d).
inline double mean_squared_error(const Codec& codec, const std::vector<float>& x, size_t d) {
  const size_t n = x.size() / d;
  std::vector<uint8_t> codes(n * codec.code_size());
  codec.encode(x.data(), n, codes.data());
  std::vector<float> y(n * d);
  codec.decode(codes.data(), n, y.data());
  double s = 0;
  for (size_t i = 0; i < n * d; ++i) s += (double(x[i]) - y[i]) * (double(x[i]) - y[i]);
  return s / double(n);
}

inline Codec trained(const std::string& spec, const std::vector<float>& x, size_t d, unsigned threads = 0) {
  Codec c(spec);
  TrainOptions options;
  options.threads = threads;
  c.train(x.data(), x.size() / d, d, options);
  return c;
}

// The rows scaled to unit length, as the engine hands cos queries to a scorer.
inline std::vector<float> unit_rows(std::vector<float> rows, size_t d) {
  for (size_t i = 0; i < rows.size() / d; ++i) {
    double s = 0;
    for (size_t j = 0; j < d; ++j) s += double(rows[i * d + j]) * rows[i * d + j];
    for (size_t j = 0; j < d; ++j) rows[i * d + j] = float(rows[i * d + j] / std::sqrt(s));
  }
  return rows;
}

// Share of the true top r found in the top r of `found`, over all queries.
inline double recall_at(const SearchResult& found, const SearchResult& truth, size_t r) {
  double hits = 0;
  for (size_t q = 0; q < truth.nq; ++q)
    for (size_t i = 0; i < r; ++i)
      for (size_t j = 0; j < r; ++j) hits += found.ids_of(q)[i] == truth.ids_of(q)[j];
  return hits / double(truth.nq * r);
}

// Brute force in double precision: the reference every search path is held to.
inline std::vector<int64_t> brute_force(const std::vector<float>& x, size_t d, const float* q, Metric metric, size_t k) {
  size_t n = x.size() / d;
  std::vector<double> score(n);
  double qn = 0;
  for (size_t j = 0; j < d; ++j) qn += double(q[j]) * q[j];
  for (size_t i = 0; i < n; ++i) {
    double dot = 0, sq = 0, l2 = 0;
    for (size_t j = 0; j < d; ++j) {
      dot += double(q[j]) * x[i * d + j];
      sq += double(x[i * d + j]) * x[i * d + j];
      l2 += (double(q[j]) - x[i * d + j]) * (double(q[j]) - x[i * d + j]);
    }
    score[i] = metric == Metric::ip ? dot : metric == Metric::cos ? dot / std::sqrt(sq * qn) : -l2;
  }
  std::vector<int64_t> ids(n);
  std::iota(ids.begin(), ids.end(), 0);
  std::stable_sort(ids.begin(), ids.end(), [&](int64_t a, int64_t b) { return score[a] > score[b]; });
  ids.resize(std::min(k, n));
  return ids;
}

// n rows of dimension d around `clusters` Gaussian centres: realistic neighbour structure.
inline std::vector<float> clustered_rows(size_t n, size_t d, size_t clusters, uint64_t seed, float spread = 0.3f) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.f, 1.f);
  std::vector<float> centres(clusters * d);
  for (auto& c : centres) c = normal(rng);
  std::vector<float> x(n * d);
  for (size_t i = 0; i < n; ++i) {
    size_t c = rng() % clusters;
    for (size_t j = 0; j < d; ++j) x[i * d + j] = centres[c * d + j] + spread * normal(rng);
  }
  return x;
}

inline std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
}

inline void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

inline size_t files_in(const std::string& dir) {
  size_t n = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir)) ++n;
  return n;
}

inline void write_text(const std::string& path, const std::string& text) {
  write_bytes(path, std::vector<uint8_t>(text.begin(), text.end()));
}

inline std::string file_text(const std::string& path) {
  auto bytes = read_bytes(path);
  return std::string(bytes.begin(), bytes.end());
}

inline bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// Every row of a table, decoded.
inline std::vector<float> all_rows(const Table& table) {
  std::vector<float> out(table.size() * table.dim());
  if (!out.empty()) table.reconstruct(0, table.size(), out.data());
  return out;
}

// Same keys and bit-identical rows.
inline void check_same_table(const Table& expected, const Table& actual) {
  REQUIRE(actual.size() == expected.size());
  REQUIRE(actual.dim() == expected.dim());
  std::vector<float> a = all_rows(expected), b = all_rows(actual);
  CHECK(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
  REQUIRE(actual.has_keys());
  for (size_t i = 0; i < expected.size(); ++i) CHECK(actual.key(i) == expected.key(i));
}

// The exception of type E that f throws; fails the test when it throws nothing.
template <class E, class F>
E caught(F&& f) {
  try {
    f();
  } catch (const E& e) {
    return e;
  }
  FAIL("expected an exception that was not thrown");
  throw;
}

}  // namespace vecpack::test
