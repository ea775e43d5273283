#include <doctest/doctest.h>

#include <cmath>
#include <cstring>

#include "bytes.h"
#include "test_util.h"
#include "vecpack/codec.h"
#include "vecpack/errors.h"
#include "vecpack/formats.h"
#include "vecpack/table.h"

using namespace vecpack;

namespace {

// The parameter blob as docs/FORMAT.md lays it out.
struct RqBlob {
  uint64_t d = 0;
  uint32_t m = 0, centroids = 0;
  float log_low = 0, log_high = 0;
  std::vector<float> values;  // m x 256 x d
};

RqBlob parse_blob(const Codec& codec) {
  // The codec blob: u32 version, the spec string, u64 size, then the stage's parameters.
  const auto blob = codec.serialize();
  ByteReader outer(blob.data(), blob.size(), "test");
  outer.get<uint32_t>();
  const std::string spec = outer.get_string();
  const uint64_t size = outer.get<uint64_t>();
  ByteReader r(blob.data() + blob.size() - size, size, "rq parameters");
  RqBlob out;
  CHECK(r.get<uint32_t>() == 1);
  out.d = r.get<uint64_t>();
  out.m = r.get<uint32_t>();
  out.centroids = r.get<uint32_t>();
  out.log_low = r.get<float>();
  out.log_high = r.get<float>();
  out.values = r.get_array<float>(out.d * out.m * out.centroids);
  r.expect_end();
  return out;
}

}  // namespace

TEST_CASE("rq: byte layout of codes and parameters; decode is the sum of one centroid per stage") {
  const size_t n = 900, d = 12;
  auto x = test::clustered_rows(n, d, 9, 701);
  Codec c = test::trained("rq:m=3,beam=4", x, d);
  CHECK(c.spec() == "rq:m=3,beam=4");
  CHECK(c.code_size() == 4);  // three stage bytes, then the norm byte
  const RqBlob blob = parse_blob(c);
  CHECK(blob.d == d);
  CHECK(blob.m == 3);
  CHECK(blob.centroids == 256);
  CHECK(blob.log_low < blob.log_high);
  std::vector<uint8_t> codes(n * 4);
  c.encode(x.data(), n, codes.data());
  std::vector<float> y(n * d);
  c.decode(codes.data(), n, y.data());
  for (size_t i = 0; i < n; i += 37) {
    double sq = 0;
    for (size_t t = 0; t < d; ++t) {
      float want = 0;
      for (size_t s = 0; s < 3; ++s) want += blob.values[(s * 256 + codes[i * 4 + s]) * d + t];
      CHECK(y[i * d + t] == doctest::Approx(want).epsilon(1e-5));
      sq += double(y[i * d + t]) * y[i * d + t];
    }
    // The norm byte: log(|y|^2) on 255 even steps from log_low to log_high.
    const double level = (std::log(sq) - blob.log_low) / (blob.log_high - blob.log_low) * 255;
    CHECK(std::fabs(codes[i * 4 + 3] - level) <= 0.5 + 1e-3);
  }
}

TEST_CASE("rq: the error falls with every stage, and the beam lowers it further") {
  const size_t n = 3000, d = 24;
  auto x = test::clustered_rows(n, d, 40, 711, 0.6f);
  double previous = INFINITY;
  for (int m = 1; m <= 5; ++m) {
    CAPTURE(m);
    const double error = test::mean_squared_error(test::trained("rq:m=" + std::to_string(m) + ",beam=1", x, d), x, d);
    CHECK(error < 0.97 * previous);
    previous = error;
  }
  // Same codebooks (training does not depend on the beam): only the encoding differs.
  const double greedy = test::mean_squared_error(test::trained("rq:m=4,beam=1", x, d), x, d);
  const double beam = test::mean_squared_error(test::trained("rq:m=4,beam=8", x, d), x, d);
  CAPTURE(greedy);
  CAPTURE(beam);
  CHECK(beam < 0.995 * greedy);  // measured 0.991 on this data
}

TEST_CASE("rq: table scores equal the scores of decoded rows (ip exactly; cos and l2 up to the norm byte)") {
  const size_t n = 500, d = 10, nq = 9;
  auto x = test::clustered_rows(n, d, 12, 721);
  auto q = test::unit_rows(test::clustered_rows(nq, d, 12, 722), d);  // as the engine hands cos queries over
  Codec c = test::trained("rq:m=4", x, d);
  const RqBlob blob = parse_blob(c);
  // The norm byte rounds log(|y|^2) to a step of (log_high - log_low) / 255: |y|^2 is off by at most
  // half a step, relatively.
  const double norm_error = std::expm1((blob.log_high - blob.log_low) / 255 / 2) + 1e-5;
  std::vector<uint8_t> codes(n * c.code_size());
  c.encode(x.data(), n, codes.data());
  std::vector<float> y(n * d);
  c.decode(codes.data(), n, y.data());
  for (Metric metric : {Metric::ip, Metric::cos, Metric::l2}) {
    CAPTURE(metric_name(metric));
    std::vector<float> out(nq * n);
    c.scorer(q.data(), nq, metric)->score({codes.data(), n}, out.data(), n);
    size_t wrong = 0;
    for (size_t a = 0; a < nq; ++a)
      for (size_t i = 0; i < n; ++i) {
        double dot = 0, sq = 0, qq = 0;
        for (size_t t = 0; t < d; ++t) {
          dot += double(q[a * d + t]) * y[i * d + t];
          sq += double(y[i * d + t]) * y[i * d + t];
          qq += double(q[a * d + t]) * q[a * d + t];
        }
        const double got = out[a * n + i];
        double tolerance = 1e-4 * std::max(1.0, std::fabs(dot));
        double want = dot;
        if (metric == Metric::cos) {
          want = dot / std::sqrt(sq);
          tolerance += std::fabs(want) * norm_error / 2;
        } else if (metric == Metric::l2) {
          want = 2 * dot - sq - qq;
          tolerance += sq * norm_error;
        }
        wrong += std::fabs(got - want) > tolerance;
      }
    CHECK(wrong == 0);
  }
}

TEST_CASE("rq: beats pq at equal bytes on the GloVe sample (cos, recall@10, fixed seed)") {
  const Table glove = read_table(std::string(VECPACK_TEST_DATA) + "/glove.6B.100d.15k.txt.gz");
  const size_t nq = 200, d = glove.dim();
  std::vector<float> all = test::all_rows(glove);
  std::vector<float> q(all.begin() + 2000 * d, all.begin() + (2000 + nq) * d);
  SearchOptions o;
  o.k = 10;
  const SearchResult truth = glove.search(q.data(), nq, o);
  CompressOptions compress;
  const double pq = test::recall_at(glove.compress("pq:m=10", compress).search(q.data(), nq, o), truth, 10);
  const Table rq_table = glove.compress("rq:m=9", compress);  // 9 stages + the norm byte: 10 bytes
  CHECK(rq_table.info().code_bytes == glove.size() * 10);
  const double rq = test::recall_at(rq_table.search(q.data(), nq, o), truth, 10);
  MESSAGE("recall@10 at 10 bytes: pq:m=10 " << pq << ", rq:m=9 " << rq);
  CHECK(rq > pq + 0.01);
}

TEST_CASE("rq: serialize and load round trip; damaged blobs are FormatErrors; training ignores the thread count") {
  const size_t n = 700, d = 8;
  auto x = test::clustered_rows(n, d, 6, 731);
  Codec a = test::trained("rq:m=3,beam=2", x, d, 1);
  test::check_round_trip(a, x, d, 97);
  CHECK(test::trained("rq:m=3,beam=2", x, d, 2).serialize() == a.serialize());
  auto blob = a.serialize();
  const size_t params = blob.size() - (4 + 4 + a.spec().size() + 8);
  const size_t m_at = blob.size() - params + 4 + 8;
  blob[m_at] = 4;
  CHECK_THROWS_WITH_AS(Codec::load(blob.data(), blob.size()), doctest::Contains("differs from the spec's m=3"), FormatError);
  blob[m_at] = 3;
  float bad = NAN;
  std::memcpy(blob.data() + blob.size() - 4, &bad, 4);
  CHECK_THROWS_WITH_AS(Codec::load(blob.data(), blob.size()), doctest::Contains("not finite"), FormatError);
  std::memcpy(blob.data() + m_at + 8, &bad, 4);  // log_low
  CHECK_THROWS_WITH_AS(Codec::load(blob.data(), blob.size()), doctest::Contains("norm scale"), FormatError);

  // Fewer rows than centroids: the first stage holds the rows themselves, so they decode exactly.
  std::vector<float> few(x.begin(), x.begin() + 50 * d);
  Codec tiny = test::trained("rq:m=2", few, d);
  std::vector<uint8_t> codes(50 * tiny.code_size());
  tiny.encode(few.data(), 50, codes.data());
  std::vector<float> y(50 * d);
  tiny.decode(codes.data(), 50, y.data());
  for (size_t i = 0; i < y.size(); ++i) CHECK(y[i] == doctest::Approx(few[i]).scale(1).epsilon(1e-5));
}

TEST_CASE("rq: bad arguments give clear errors") {
  CHECK_THROWS_WITH_AS(Codec("rq:m=0"), doctest::Contains("'rq': m=0 is out of range (1..32)"), SpecError);
  CHECK_THROWS_WITH_AS(Codec("rq:m=33"), doctest::Contains("'rq': m=33 is out of range (1..32)"), SpecError);
  CHECK_THROWS_WITH_AS(Codec("rq:beam=0"), doctest::Contains("'rq': beam=0 is out of range (1..64)"), SpecError);
  CHECK_THROWS_WITH_AS(Codec("rq:nbits=4"), doctest::Contains("nbits"), SpecError);
  Codec empty("rq:m=2");
  std::vector<float> none;
  CHECK_THROWS_WITH_AS(empty.train(none.data(), 0, 4), doctest::Contains("0 training rows"), Error);
  CHECK(Codec("rq").spec() == "rq");
  CHECK(Codec("rq:m=9,beam=8").spec() == "rq:m=9");
}
