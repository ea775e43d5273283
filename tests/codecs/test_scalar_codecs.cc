#include <doctest/doctest.h>

#include <cmath>
#include <cstring>

#include "test_util.h"
#include "vecpack/codec.h"
#include "vecpack/errors.h"
#include "vecpack/table.h"

using namespace vecpack;

TEST_CASE("scalar codecs: reconstruction error is within each format's bound") {
  const size_t n = 2000, d = 37;
  auto x = test::clustered_rows(n, d, 10, 11, 0.5f);
  struct Case {
    const char* spec;
    size_t code_size;
    double relative;  // per-value bound relative to |x| (floats) ...
  };
  for (Case c : {Case{"f32", 4 * d, 0.0}, Case{"f16", 2 * d, 1.0 / 2048}, Case{"bf16", 2 * d, 1.0 / 256}}) {
    CAPTURE(c.spec);
    Codec codec = test::trained(c.spec, x, d);
    CHECK(codec.code_size() == c.code_size);
    std::vector<uint8_t> codes(n * codec.code_size());
    codec.encode(x.data(), n, codes.data());
    std::vector<float> y(n * d);
    codec.decode(codes.data(), n, y.data());
    // Half the spacing of representable values: relative for normal numbers, plus the
    // absolute spacing of f16 subnormals (2^-24) near zero.
    double worst = 0;
    for (size_t i = 0; i < n * d; ++i)
      worst = std::max(worst, std::fabs(double(y[i]) - x[i]) - c.relative * std::fabs(double(x[i])));
    CHECK(worst <= std::ldexp(1.0, -25));
    if (std::string(c.spec) == "f32") CHECK(std::memcmp(x.data(), y.data(), n * d * sizeof(float)) == 0);
  }

  // int8: at most half a step per value, the step being the dimension's range / 255.
  Codec codec = test::trained("int8", x, d);
  CHECK(codec.code_size() == d);
  std::vector<uint8_t> codes(n * d);
  codec.encode(x.data(), n, codes.data());
  std::vector<float> y(n * d);
  codec.decode(codes.data(), n, y.data());
  for (size_t j = 0; j < d; ++j) {
    float lo = INFINITY, hi = -INFINITY, worst = 0;
    for (size_t i = 0; i < n; ++i) lo = std::min(lo, x[i * d + j]), hi = std::max(hi, x[i * d + j]);
    for (size_t i = 0; i < n; ++i) worst = std::max(worst, std::fabs(y[i * d + j] - x[i * d + j]));
    CHECK(worst <= (hi - lo) / 255.f * 0.5f + 1e-5f);
  }
  // Values outside the trained range clamp; NaN encodes to the low end instead of garbage.
  std::vector<float> odd(d, 1e6f);
  odd[0] = NAN;
  odd[1] = -1e6f;
  std::vector<uint8_t> odd_codes(d);
  codec.encode(odd.data(), 1, odd_codes.data());
  CHECK(odd_codes[0] == 0);
  CHECK(odd_codes[1] == 0);
  CHECK(odd_codes[2] == 255);
}

TEST_CASE("scalar codecs: serialize and load give the same codec; damaged blobs are FormatErrors") {
  const size_t d = 12;
  auto x = test::clustered_rows(300, d, 5, 2);
  for (const char* spec : {"f32", "f16", "bf16", "int8"}) {
    CAPTURE(spec);
    Codec a = test::trained(spec, x, d);
    auto blob = a.serialize();
    Codec b = Codec::load(blob.data(), blob.size());
    CHECK(b.spec() == spec);
    CHECK(b.dim() == d);
    std::vector<uint8_t> ca(300 * a.code_size()), cb(300 * b.code_size());
    a.encode(x.data(), 300, ca.data());
    b.encode(x.data(), 300, cb.data());
    CHECK(ca == cb);
    for (size_t cut = 0; cut < blob.size(); cut += 3) {
      CAPTURE(cut);
      CHECK_THROWS_AS(Codec::load(blob.data(), cut), FormatError);
    }
    auto longer = blob;
    longer.push_back(0);
    CHECK_THROWS_WITH_AS(Codec::load(longer.data(), longer.size()), doctest::Contains("trailing"), FormatError);
  }
  // A blob naming a codec this build does not have.
  Codec a = test::trained("f16", x, d);
  auto blob = a.serialize();
  blob[4 + 4 + 1] = 'x';  // "f16" -> "fx6"
  CHECK_THROWS_WITH_AS(Codec::load(blob.data(), blob.size()), doctest::Contains("not known to this vecpack"), FormatError);
  Codec untrained("int8");
  CHECK_THROWS_WITH_AS(untrained.code_size(), doctest::Contains("not trained"), Error);
}

TEST_CASE("scalar codecs: both scorer paths agree with scoring decoded rows") {
  const size_t n = 700, d = 33;
  auto x = test::clustered_rows(n, d, 8, 5);
  auto q = test::clustered_rows(20, d, 8, 6);
  for (const char* spec : {"f32", "f16", "bf16", "int8"})
    for (Metric metric : {Metric::ip, Metric::cos, Metric::l2})
      for (size_t nq : {size_t(2), size_t(20)}) {  // row kernels below 8 queries, GEMM above
        CAPTURE(spec);
        CAPTURE(metric_name(metric));
        CAPTURE(nq);
        Codec c = test::trained(spec, x, d);
        std::vector<uint8_t> codes(n * c.code_size());
        c.encode(x.data(), n, codes.data());
        std::vector<float> y(n * d);
        c.decode(codes.data(), n, y.data());
        std::vector<float> out(nq * n);
        c.scorer(q.data(), nq, metric)->score({codes.data(), n}, out.data(), n);
        for (size_t a = 0; a < nq; ++a)
          for (size_t i = 0; i < n; i += 7) {
            double dot = 0, sq = 0, qq = 0;
            for (size_t j = 0; j < d; ++j) {
              dot += double(q[a * d + j]) * y[i * d + j];
              sq += double(y[i * d + j]) * y[i * d + j];
              qq += double(q[a * d + j]) * q[a * d + j];
            }
            double want = metric == Metric::ip ? dot : metric == Metric::cos ? dot / std::sqrt(sq) : 2 * dot - sq - qq;
            CHECK(out[a * n + i] == doctest::Approx(want).epsilon(1e-4).scale(std::max(1.0, qq)));
          }
      }
}

TEST_CASE("scalar codecs: recall floors against exact search (fixed seed)") {
  const size_t n = 20000, d = 64, nq = 100, k = 10;
  auto x = test::clustered_rows(n, d, 200, 21, 0.6f);
  auto q = test::clustered_rows(nq, d, 200, 22, 0.6f);
  Table exact = Table::from_rows(x, d);
  SearchOptions o;
  o.k = k;
  SearchResult truth = exact.search(q.data(), nq, o);
  struct Floor {
    const char* spec;
    double recall;
  };
  for (Floor f : {Floor{"f32", 1.0}, Floor{"f16", 0.99}, Floor{"bf16", 0.95}, Floor{"int8", 0.95}}) {
    CAPTURE(f.spec);
    Table c = exact.compress(f.spec);
    double r = test::recall_at(c.search(q.data(), nq, o), truth, k);
    CAPTURE(r);
    CHECK(r >= f.recall);
  }
}
