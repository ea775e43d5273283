// Codecs whose rows share parameters: qr (quotient-remainder) and hash (hash embeddings).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "../../lib/shared_rows.h"
#include "test_util.h"
#include "vecpack/codec.h"
#include "vecpack/errors.h"
#include "vecpack/table.h"

using namespace vecpack;

namespace {

double mse(const std::vector<float>& a, const std::vector<float>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
  return s / double(a.size());
}

std::vector<float> decoded(const Codec& codec, size_t n, size_t d, size_t first_row = 0) {
  std::vector<uint8_t> codes(n * codec.code_size());
  std::vector<float> out(n * d);
  codec.decode(codes.data(), n, out.data(), first_row);
  return out;
}

// Clusters whose members are scattered over the row order, as words of one topic are over a
// frequency-sorted vocabulary.
std::vector<float> shuffled_clusters(size_t n, size_t d, size_t clusters, uint64_t seed) {
  auto x = test::clustered_rows(n, d, clusters, seed, 0.15f);
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), size_t(0));
  std::mt19937_64 rng(seed);
  std::shuffle(order.begin(), order.end(), rng);
  std::vector<float> y(n * d);
  for (size_t i = 0; i < n; ++i) std::copy_n(x.data() + order[i] * d, d, y.data() + i * d);
  return y;
}

}  // namespace

TEST_CASE("qr: rows combine their quotient and remainder rows as the op says") {
  const size_t n = 103, d = 6, m = 10;
  auto x = shuffled_clusters(n, d, 5, 3);
  for (const char* op : {"mult", "add", "concat"}) {
    CAPTURE(std::string(op));
    Codec c = test::trained(std::string("qr:m=10,op=") + op, x, d);
    CHECK(c.code_size() == 0);
    CHECK(c.spec() == std::string("qr:m=10") + (std::string(op) == "mult" ? "" : std::string(",op=") + op));
    auto y = decoded(c, n, d);
    // Rows 3, 4 (quotient 0) and 13, 14 (quotient 1) have remainders 3 and 4: the op ties them.
    // add: y3 - y4 = R3 - R4 = y13 - y14;  mult: y3 / y4 = R3 / R4 = y13 / y14.
    const std::string o = op;
    for (size_t t = 0; t < d; ++t) {
      if (o == "add") CHECK(y[3 * d + t] - y[4 * d + t] == doctest::Approx(y[13 * d + t] - y[14 * d + t]).epsilon(1e-4));
      if (o == "mult" && std::fabs(y[4 * d + t]) > 1e-3 && std::fabs(y[14 * d + t]) > 1e-3)
        CHECK(y[3 * d + t] / y[4 * d + t] == doctest::Approx(y[13 * d + t] / y[14 * d + t]).epsilon(1e-3));
      if (o == "concat") {  // first half from the quotient, second from the remainder
        if (t < 3) CHECK(y[21 * d + t] == y[29 * d + t]);
        else CHECK(y[3 * d + t] == y[13 * d + t]);
      }
    }
    // Decoding by position: a block from row 50 equals rows 50.. of the whole.
    auto part = decoded(c, 20, d, 50);
    CHECK(std::equal(part.begin(), part.end(), y.begin() + 50 * d));
    CHECK_THROWS_WITH_AS(decoded(c, 10, d, 100), doctest::Contains("beyond the 103 rows"), NotFoundError);
    // The fit beats the mean row.
    std::vector<float> mean_rows(n * d, 0.f);
    for (size_t t = 0; t < d; ++t) {
      double s = 0;
      for (size_t i = 0; i < n; ++i) s += x[i * d + t];
      for (size_t i = 0; i < n; ++i) mean_rows[i * d + t] = float(s / n);
    }
    CHECK(mse(x, y) < mse(x, mean_rows));
  }
}

TEST_CASE("qr: three partitions are the digits of the slot in base m") {
  const size_t n = 1000, d = 6;
  auto x = shuffled_clusters(n, d, 20, 4);
  Codec c = test::trained("qr:m=10,parts=3,op=add", x, d);
  CHECK(c.spec() == "qr:m=10,parts=3,op=add");
  auto y = decoded(c, n, d);
  // Slots 123 and 124 differ in digit 0 only, as do 457 and 458 (digits 3 and 4 both times):
  // with add, their differences are the same difference of table 0's rows 3 and 4.
  for (size_t t = 0; t < d; ++t)
    CHECK(y[123 * d + t] - y[124 * d + t] == doctest::Approx(y[453 * d + t] - y[454 * d + t]).epsilon(1e-4));
  // Digit 1 likewise: 213 and 223 against 713 and 723.
  for (size_t t = 0; t < d; ++t)
    CHECK(y[213 * d + t] - y[223 * d + t] == doctest::Approx(y[713 * d + t] - y[723 * d + t]).epsilon(1e-4));
  // Three tables of 10 rows hold fewer parameters than two of 10 and 100, and fit worse.
  CHECK(c.serialize().size() < test::trained("qr:m=10,op=add", x, d).serialize().size());
  CHECK_THROWS_WITH_AS(test::trained("qr:m=10,parts=3,op=concat", std::vector<float>(x.begin(), x.begin() + 2 * 500), 2),
                       doctest::Contains("needs at least 3 dimensions"), Error);
}

TEST_CASE("qr: a learned order fits at least 20% better than the identity order at equal size") {
  const size_t n = 4000, d = 16;
  auto x = shuffled_clusters(n, d, 250, 11);
  for (const char* op : {"add", "mult", "concat"}) {
    CAPTURE(std::string(op));
    const std::string base = std::string("qr:m=16,op=") + op;
    const double identity = mse(x, decoded(test::trained(base, x, d), n, d));
    const double learned = mse(x, decoded(test::trained(base + ",order=learned", x, d), n, d));
    CAPTURE(identity);
    CAPTURE(learned);
    CHECK(learned < 0.8 * identity);
  }
}

TEST_CASE("qr and hash: serialize and load round trip; damaged blobs are FormatErrors") {
  const size_t n = 300, d = 8;
  auto x = shuffled_clusters(n, d, 12, 5);
  for (const char* spec : {"qr:m=17,op=add,order=learned", "qr:op=mult", "qr:m=7,parts=3,op=concat", "hash:rows=64,k=2",
                           "hash:rows=32,k=3,weights=off"}) {
    CAPTURE(std::string(spec));
    test::check_round_trip(test::trained(spec, x, d), x, d, 61);
  }
}

TEST_CASE("hash: rows are weighted sums of the pool rows their position hashes to") {
  const size_t n = 500, d = 8, buckets = 64;
  auto x = shuffled_clusters(n, d, 20, 7);
  Codec c = test::trained("hash:rows=64,k=2", x, d);
  CHECK(c.code_size() == 4);  // two f16 weights
  std::vector<uint8_t> codes(n * 4);
  c.encode(x.data(), n, codes.data());
  std::vector<float> y(n * d);
  c.decode(codes.data(), n, y.data());
  // The pool rows, read back through rows whose codes pick one bucket with weight 1: a row at
  // position i with weights (1, 0) decodes to P[h_0(i)].
  const uint8_t one_zero[4] = {0x00, 0x3c, 0x00, 0x00};  // f16 1.0, 0.0
  for (size_t i : {size_t(0), size_t(17), size_t(499)}) {
    CAPTURE(i);
    float p0[d], p1[d], row[d];
    c.decode(one_zero, 1, p0, i);
    const uint8_t zero_one[4] = {0x00, 0x00, 0x00, 0x3c};
    c.decode(zero_one, 1, p1, i);
    // Another position hashing to the same first bucket decodes to the same pool row.
    for (size_t other = 0; other < 100000; ++other)
      if (other != i && hash_bucket(other, 0, buckets) == hash_bucket(i, 0, buckets)) {
        c.decode(one_zero, 1, row, other);
        CHECK(std::equal(row, row + d, p0));
        break;
      }
    // Row i = w0 P[h0] + w1 P[h1] with its stored weights.
    const uint16_t h0 = uint16_t(codes[i * 4] | codes[i * 4 + 1] << 8), h1 = uint16_t(codes[i * 4 + 2] | codes[i * 4 + 3] << 8);
    float w[2];
    const uint16_t hs[2] = {h0, h1};
    for (int j = 0; j < 2; ++j) {
      uint8_t code[4] = {0, 0, 0, 0};
      code[2 * j] = uint8_t(hs[j]);
      code[2 * j + 1] = uint8_t(hs[j] >> 8);
      float single[d];
      c.decode(code, 1, single, i);
      const float* base = j == 0 ? p0 : p1;
      // single = w_j P[h_j]: recover w_j from the largest coordinate.
      size_t t = std::max_element(base, base + d, [](float a, float b) { return std::fabs(a) < std::fabs(b); }) - base;
      w[j] = single[t] / base[t];
    }
    for (size_t t = 0; t < d; ++t) CHECK(y[i * d + t] == doctest::Approx(w[0] * p0[t] + w[1] * p1[t]).epsilon(1e-4));
  }
}

TEST_CASE("hash: a bigger pool, more hashes and weights each fit better") {
  const size_t n = 3000, d = 16;
  auto x = shuffled_clusters(n, d, 100, 9);
  auto error = [&](const char* spec) {
    Codec c = test::trained(spec, x, d);
    std::vector<uint8_t> codes(n * c.code_size());
    c.encode(x.data(), n, codes.data());
    std::vector<float> y(n * d);
    c.decode(codes.data(), n, y.data());
    return mse(x, y);
  };
  const double small = error("hash:rows=256,k=2"), big = error("hash:rows=1024,k=2");
  const double plain = error("hash:rows=1024,k=2,weights=off"), three = error("hash:rows=1024,k=3");
  CAPTURE(small);
  CAPTURE(big);
  CAPTURE(plain);
  CAPTURE(three);
  CHECK(big < small);
  CHECK(big < plain);
  CHECK(three < big);
  double variance = 0;
  for (size_t t = 0; t < d; ++t) {
    double s = 0, s2 = 0;
    for (size_t i = 0; i < n; ++i) s += x[i * d + t], s2 += double(x[i * d + t]) * x[i * d + t];
    variance += s2 / n - (s / n) * (s / n);
  }
  CHECK(big < 0.6 * variance / double(d));
}

TEST_CASE("qr, hash and mixdim tables: compress, save, open, get and search by position") {
  const size_t n = 2000, d = 12;
  auto x = shuffled_clusters(n, d, 40, 13);
  test::TempDir dir;
  for (const char* spec : {"qr:m=40,op=add,order=learned", "hash:rows=256,k=2", "mixdim:budget=12,order=file",
                           "mixdim:budget=6,alpha=0.5,inner=int8,order=file"}) {
    CAPTURE(std::string(spec));
    Table table = Table::from_rows(x, d, {}, Metric::cos).compress(spec);
    table.save(dir.file("t.vecpack"));
    Table opened = Table::open(dir.file("t.vecpack"));
    CHECK(opened.codec().spec() == table.codec().spec());
    std::vector<float> all(n * d), row(d);
    opened.reconstruct(0, n, all.data());
    for (size_t i : {size_t(0), size_t(999), size_t(1999)}) {
      opened.reconstruct(i, 1, row.data());
      CHECK(std::equal(row.begin(), row.end(), all.begin() + i * d));
    }
    // Search equals brute force over the decoded rows, also through a slice (rows keep their place).
    auto q = test::clustered_rows(5, d, 40, 14);
    SearchOptions options;
    options.k = 5;
    SearchResult got = opened.search(q.data(), 5, options);
    Table exact = Table::from_rows(all, d, {}, Metric::cos);
    SearchResult want = exact.search(q.data(), 5, options);
    CHECK(got.ids == want.ids);
    Table tail = opened.slice(1000, 1000);
    std::vector<float> tail_rows(1000 * d);
    tail.reconstruct(0, 1000, tail_rows.data());
    CHECK(std::equal(tail_rows.begin(), tail_rows.end(), all.begin() + 1000 * d));
  }
}

TEST_CASE("qr and hash: bad arguments name the argument") {
  auto x = shuffled_clusters(50, 4, 3, 1);
  CHECK_THROWS_WITH_AS(Codec("hash:rows=0"), doctest::Contains("rows"), SpecError);
  CHECK_THROWS_WITH_AS(Codec("hash:rows=4,k=5"), doctest::Contains("k=5 is larger than rows=4"), SpecError);
  CHECK_THROWS_WITH_AS(test::trained("qr:m=51", x, 4), doctest::Contains("m=51 is larger than the 50 rows"), Error);
  CHECK_THROWS_WITH_AS(Codec("qr:op=sub"), doctest::Contains("op"), SpecError);
}
