// Transforms as chain stages (whiten, pca, rotate, l2norm, matryoshka) and funnel search.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "test_util.h"
#include "vecpack/codec.h"
#include "vecpack/errors.h"
#include "vecpack/registry.h"
#include "vecpack/table.h"

using namespace vecpack;

namespace {

const Transform& first_transform(const Codec& c) { return static_cast<const Transform&>(c.stage(0)); }

std::vector<float> applied(const Transform& t, const std::vector<float>& x) {
  const size_t n = x.size() / t.dim_in();
  std::vector<float> y(n * t.dim_out());
  t.apply(x.data(), n, y.data());
  return y;
}

std::vector<float> reconstructed(const Transform& t, const std::vector<float>& y) {
  const size_t n = y.size() / t.dim_out();
  std::vector<float> x(n * t.dim_in());
  t.reconstruct(y.data(), n, x.data());
  return x;
}

double max_abs_difference(const std::vector<float>& a, const std::vector<float>& b) {
  REQUIRE(a.size() == b.size());
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::fabs(double(a[i]) - b[i]));
  return worst;
}

// (1/n) sum (y - mean)(y - mean)^T of n rows of dimension d, row-major d x d.
std::vector<double> covariance(const std::vector<float>& y, size_t d) {
  const size_t n = y.size() / d;
  std::vector<double> mean(d, 0.0), cov(d * d, 0.0);
  for (size_t i = 0; i < n; ++i)
    for (size_t j = 0; j < d; ++j) mean[j] += y[i * d + j] / double(n);
  for (size_t i = 0; i < n; ++i)
    for (size_t a = 0; a < d; ++a)
      for (size_t b = 0; b < d; ++b) cov[a * d + b] += (y[i * d + a] - mean[a]) * (y[i * d + b] - mean[b]) / double(n);
  return cov;
}

// Exact top-k by brute force over rows (n x d) for each query, in double precision.
std::vector<int64_t> brute_force(const std::vector<float>& rows, const std::vector<float>& queries, size_t d, size_t k,
                                 Metric metric) {
  const size_t n = rows.size() / d, nq = queries.size() / d;
  std::vector<int64_t> out;
  for (size_t q = 0; q < nq; ++q) {
    std::vector<std::pair<double, int64_t>> scored;
    for (size_t i = 0; i < n; ++i) {
      double dot = 0, norm = 0, dist = 0;
      for (size_t j = 0; j < d; ++j) {
        const double a = queries[q * d + j], b = rows[i * d + j];
        dot += a * b, norm += b * b, dist += (a - b) * (a - b);
      }
      const double score = metric == Metric::ip ? dot : metric == Metric::cos ? dot / std::sqrt(norm) : -dist;
      scored.emplace_back(-score, int64_t(i));
    }
    std::partial_sort(scored.begin(), scored.begin() + k, scored.end());
    for (size_t i = 0; i < k; ++i) out.push_back(scored[i].second);
  }
  return out;
}

double overlap(const SearchResult& r, const std::vector<int64_t>& expected) {
  double hits = 0;
  for (size_t q = 0; q < r.nq; ++q)
    for (size_t i = 0; i < r.k; ++i)
      for (size_t j = 0; j < r.k; ++j) hits += r.ids_of(q)[i] == expected[q * r.k + j];
  return hits / double(r.nq * r.k);
}

Table compressed(const std::vector<float>& x, size_t d, const char* spec, Metric metric = Metric::cos) {
  CompressOptions options;
  options.train_size = 0;
  return Table::from_rows(x, d, {}, metric).compress(spec, options);
}

}  // namespace

TEST_CASE("whiten: the whitened training rows have identity covariance and reconstruct exactly (k = d)") {
  const size_t n = 3000, d = 12;
  auto x = test::clustered_rows(n, d, 6, 21, 0.4f);
  Codec codec = test::trained("whiten/f32", x, d);
  CHECK(codec.spec() == "whiten:k=12,eps=0,normalize=off/f32");
  const Transform& t = first_transform(codec);
  auto y = applied(t, x);
  auto cov = covariance(y, d);
  double worst = 0;
  for (size_t a = 0; a < d; ++a)
    for (size_t b = 0; b < d; ++b) worst = std::max(worst, std::fabs(cov[a * d + b] - (a == b ? 1.0 : 0.0)));
  CHECK(worst < 1e-3);
  CHECK(max_abs_difference(reconstructed(t, y), x) < 1e-4);
  // decode goes back to the original space, through the inverse of the whitening.
  std::vector<uint8_t> codes(n * codec.code_size());
  codec.encode(x.data(), n, codes.data());
  std::vector<float> back(n * d);
  codec.decode(codes.data(), n, back.data());
  CHECK(max_abs_difference(back, x) < 1e-4);
}

TEST_CASE("whiten: k < d keeps the top principal axes, unit variance each; normalize=on gives unit rows") {
  const size_t n = 2000, d = 16, k = 5;
  auto x = test::clustered_rows(n, d, 8, 22, 0.3f);
  Codec codec = test::trained("whiten:k=5,eps=1e-6/int8", x, d);
  CHECK(codec.stage(0).dim_out() == k);
  CHECK(codec.code_size() == k);
  auto cov = covariance(applied(first_transform(codec), x), k);
  for (size_t a = 0; a < k; ++a)
    for (size_t b = 0; b < k; ++b) CHECK(cov[a * k + b] == doctest::Approx(a == b ? 1.0 : 0.0).epsilon(1e-3).scale(1));

  Codec unit = test::trained("whiten:k=5,normalize=on/f32", x, d);
  auto y = applied(first_transform(unit), x);
  for (size_t i = 0; i < n; i += 97) {
    double s = 0;
    for (size_t j = 0; j < k; ++j) s += double(y[i * k + j]) * y[i * k + j];
    CHECK(s == doctest::Approx(1.0).epsilon(1e-5));
  }
}

TEST_CASE("whiten: chain search is exact search in the whitened space (queries go through the transform)") {
  const size_t n = 1500, d = 16, nq = 20, k = 10;
  auto x = test::clustered_rows(n, d, 10, 23, 0.5f);
  auto queries = test::clustered_rows(nq, d, 10, 24, 0.5f);
  for (Metric metric : {Metric::cos, Metric::l2, Metric::ip}) {
    CAPTURE(std::string(metric_name(metric)));
    Table t = compressed(x, d, "whiten:k=8/f32", metric);
    const Transform& whiten = first_transform(t.codec());
    std::vector<int64_t> expected = brute_force(applied(whiten, x), applied(whiten, queries), 8, k, metric);
    SearchOptions options;
    options.k = k;
    SearchResult r = t.search(queries.data(), nq, options);
    CHECK(overlap(r, expected) >= 0.995);
    // ... which is not exact search in the original space.
    CHECK(overlap(r, brute_force(x, queries, d, k, metric)) < 0.9);
  }
  // A row searched as a query finds itself first, as in any cos table.
  Table t = compressed(x, d, "whiten:k=8/f32", Metric::cos);
  SearchResult self = t.search(x.data() + 77 * d, 1, SearchOptions{});
  CHECK(self.ids_of(0)[0] == 77);
  CHECK(self.scores_of(0)[0] == doctest::Approx(1.0).epsilon(1e-5));
}

TEST_CASE("pca: orthonormal principal axes by decreasing variance; reconstruct is the projection") {
  const size_t n = 2000, d = 10;
  auto x = test::clustered_rows(n, d, 5, 25, 0.5f);
  // k = d: a rotation about the mean, so distances are kept and reconstruction is exact.
  Codec full = test::trained("pca/f32", x, d);
  CHECK(full.spec() == "pca:k=10/f32");
  auto y = applied(first_transform(full), x);
  for (size_t i = 0; i + 1 < 200; ++i) {
    double dx = 0, dy = 0;
    for (size_t j = 0; j < d; ++j) {
      dx += std::pow(double(x[i * d + j]) - x[(i + 1) * d + j], 2);
      dy += std::pow(double(y[i * d + j]) - y[(i + 1) * d + j], 2);
    }
    CHECK(dy == doctest::Approx(dx).epsilon(1e-4));
  }
  CHECK(max_abs_difference(reconstructed(first_transform(full), y), x) < 1e-4);
  auto cov = covariance(y, d);
  for (size_t a = 0; a < d; ++a) {
    if (a + 1 < d) CHECK(cov[a * d + a] >= cov[(a + 1) * d + a + 1]);
    for (size_t b = 0; b < d; ++b)
      if (a != b) CHECK(std::fabs(cov[a * d + b]) < 1e-4 * cov[0]);
  }
  // center=off: axes of the uncentred rows; with k = d a rotation about the origin (norms kept).
  Codec uncentred = test::trained("pca:center=off/f32", x, d);
  CHECK(uncentred.spec() == "pca:k=10,center=off/f32");
  auto r = applied(first_transform(uncentred), x);
  for (size_t i = 0; i < 100; ++i) {
    double nx = 0, nr = 0;
    for (size_t j = 0; j < d; ++j) nx += double(x[i * d + j]) * x[i * d + j], nr += double(r[i * d + j]) * r[i * d + j];
    CHECK(nr == doctest::Approx(nx).epsilon(1e-5));
  }
  CHECK(test::contains(test::caught<Error>([&] { test::trained("pca:center=off/f32", std::vector<float>(x.begin(), x.begin() + 9 * d), d); }).what(),
                       "use k=9 or fewer"));
  // k < d: the residual of reconstruction is the variance of the dropped axes.
  Codec top = test::trained("pca:k=4/f32", x, d);
  auto back = reconstructed(first_transform(top), applied(first_transform(top), x));
  double residual = 0, dropped = 0;
  for (size_t i = 0; i < n * d; ++i) residual += std::pow(double(back[i]) - x[i], 2) / double(n);
  for (size_t a = 4; a < d; ++a) dropped += cov[a * d + a];
  CHECK(residual == doctest::Approx(dropped).epsilon(1e-3));
}

TEST_CASE("rotate: a seeded orthogonal rotation that reconstructs exactly") {
  const size_t n = 300, d = 24;
  auto x = test::clustered_rows(n, d, 4, 26);
  Codec a = test::trained("rotate/f32", x, d), b = test::trained("rotate:seed=1234/f32", x, d), c = test::trained("rotate:seed=7/f32", x, d);
  CHECK(a.spec() == "rotate:seed=1234/f32");
  auto ya = applied(first_transform(a), x), yb = applied(first_transform(b), x), yc = applied(first_transform(c), x);
  CHECK(ya == yb);
  CHECK(max_abs_difference(ya, yc) > 0.1);
  for (size_t i = 0; i + 1 < n; ++i) {
    double dx = 0, dy = 0, nx = 0, ny = 0;
    for (size_t j = 0; j < d; ++j) {
      dx += double(x[i * d + j]) * x[(i + 1) * d + j], dy += double(ya[i * d + j]) * ya[(i + 1) * d + j];
      nx += double(x[i * d + j]) * x[i * d + j], ny += double(ya[i * d + j]) * ya[i * d + j];
    }
    CHECK(dy == doctest::Approx(dx).epsilon(1e-4).scale(1));
    CHECK(ny == doctest::Approx(nx).epsilon(1e-5));
  }
  CHECK(max_abs_difference(reconstructed(first_transform(a), ya), x) < 1e-5);
  // The rotation is stored, not regenerated: a reloaded chain gives the same codes.
  Codec loaded = Codec::load(a.serialize().data(), a.serialize().size());
  CHECK(applied(first_transform(loaded), x) == ya);
}

TEST_CASE("l2norm and matryoshka: unit rows, and the first m dimensions") {
  const size_t n = 50, d = 9;
  auto x = test::clustered_rows(n, d, 3, 27);
  std::fill(x.begin(), x.begin() + d, 0.f);  // a zero row stays zero
  Codec norm = test::trained("l2norm/f32", x, d);
  auto u = applied(first_transform(norm), x);
  for (size_t j = 0; j < d; ++j) CHECK(u[j] == 0.f);
  for (size_t i = 1; i < n; ++i) {
    double s = 0;
    for (size_t j = 0; j < d; ++j) s += double(u[i * d + j]) * u[i * d + j];
    CHECK(s == doctest::Approx(1.0).epsilon(1e-6));
  }
  CHECK(reconstructed(first_transform(norm), u) == u);  // norms are not restored

  Codec cut = test::trained("matryoshka:dim=4/f32", x, d);
  CHECK(cut.spec() == "matryoshka:dim=4,normalize=off/f32");
  CHECK(cut.code_size() == 16);
  auto y = applied(first_transform(cut), x);
  REQUIRE(y.size() == n * 4);
  for (size_t i = 0; i < n; ++i)
    for (size_t j = 0; j < 4; ++j) CHECK(y[i * 4 + j] == x[i * d + j]);
  auto padded = reconstructed(first_transform(cut), y);
  for (size_t i = 0; i < n; ++i)
    for (size_t j = 0; j < d; ++j) CHECK(padded[i * d + j] == (j < 4 ? x[i * d + j] : 0.f));

  Codec unit = test::trained("matryoshka:dim=4,normalize=on/f32", x, d);
  auto v = applied(first_transform(unit), x);
  double s = 0;
  for (size_t j = 0; j < 4; ++j) s += double(v[4 + j]) * v[4 + j];
  CHECK(s == doctest::Approx(1.0).epsilon(1e-6));
}

TEST_CASE("transform chains serialize, reload from a file and search identically") {
  test::TempDir dir;
  std::vector<const char*> specs = {"pca:k=8/int8", "whiten:k=6/f16", "matryoshka:dim=10/int8", "rotate/int8",
                                    "l2norm/bf16", "pca/matryoshka:dim=5,normalize=on/f32"};
  const size_t n = 800, d = 16, nq = 12;
  auto x = test::clustered_rows(n, d, 8, 28);
  auto queries = test::clustered_rows(nq, d, 8, 29);
  if (find_codec("pq")) specs.push_back("pca:k=64/pq:m=16,nbits=4");
  for (const char* spec : specs) {
    CAPTURE(std::string(spec));
    const bool wide = std::string(spec).find("k=64") != std::string::npos;
    const size_t dd = wide ? 96 : d;
    auto rows = wide ? test::clustered_rows(n, dd, 8, 30) : x;
    auto qs = wide ? test::clustered_rows(nq, dd, 8, 31) : queries;
    Table t = compressed(rows, dd, spec);
    CHECK(t.codec().stage_count() >= 2);
    t.save(dir.file("t.vecpack"));
    Table back = Table::open(dir.file("t.vecpack"));
    CHECK(back.spec() == t.spec());
    CHECK(back.dim() == dd);
    SearchOptions options;
    options.k = 7;
    SearchResult a = t.search(qs.data(), nq, options), b = back.search(qs.data(), nq, options);
    CHECK(a.ids == b.ids);
    CHECK(a.scores == b.scores);
    CHECK(test::all_rows(back) == test::all_rows(t));
  }
}

TEST_CASE("transform errors name the stage, the argument and the allowed range") {
  const size_t d = 16;
  auto x = test::clustered_rows(400, d, 4, 32);
  auto message = [&](const char* spec, const std::vector<float>& rows) {
    return std::string(test::caught<Error>([&] { test::trained(spec, rows, d); }).what());
  };
  std::string m = message("whiten:k=20/f32", x);
  CHECK(test::contains(m, "whiten: k=20 is out of range for input dimension 16 (1..16)"));
  m = message("pca:k=17/f32", x);
  CHECK(test::contains(m, "pca: k=17"));
  m = message("matryoshka:dim=17/f32", x);
  CHECK(test::contains(m, "matryoshka: dim=17 is out of range for input dimension 16 (1..16)"));
  CHECK_THROWS_AS(test::trained("matryoshka:dim=17/f32", x, d), SpecError);

  // Fewer rows than dimensions: the covariance is singular.
  std::vector<float> few(x.begin(), x.begin() + 10 * d);
  m = message("whiten/f32", few);
  CHECK(test::contains(m, "whiten: 10 training rows for input dimension 16"));
  CHECK(test::contains(m, "k=9 or fewer"));
  CHECK(test::contains(m, "eps"));
  m = message("pca/f32", few);
  CHECK(test::contains(m, "pca: 10 training rows for input dimension 16"));
  CHECK_NOTHROW(test::trained("pca:k=8/f32", few, d));
  CHECK_NOTHROW(test::trained("whiten:eps=1e-3/f32", few, d));  // regularised
  // A dimension without variance makes whitening singular too, whatever the row count.
  auto flat = x;
  for (size_t i = 0; i < 400; ++i) flat[i * d + 3] = 2.f;
  m = message("whiten/f32", flat);
  CHECK(test::contains(m, "singular"));
  CHECK(test::contains(m, "at most 15"));

  // Spec errors before any data.
  CHECK(test::contains(test::caught<SpecError>([] { Codec c("matryoshka/f32"); }).what(), "dim is required"));
  CHECK(test::contains(test::caught<SpecError>([] { Codec c("matryoshka:dim=0/f32"); }).what(), "(1..65536)"));
  CHECK(test::contains(test::caught<SpecError>([] { Codec c("whiten:k=-1/f32"); }).what(), "out of range"));
  CHECK(test::contains(test::caught<SpecError>([] { Codec c("pca:k=8"); }).what(), "is a transform"));
  CHECK(test::contains(test::caught<SpecError>([] { Codec c("whiten:normalize=maybe/f32"); }).what(), "on or off"));
}

TEST_CASE("transform parameter blobs: damage is a FormatError") {
  const size_t d = 8;
  auto x = test::clustered_rows(200, d, 3, 33);
  for (const char* spec : {"whiten:k=4/f32", "pca:k=4/f32", "rotate/f32", "l2norm/f32", "matryoshka:dim=3/f32"}) {
    CAPTURE(std::string(spec));
    auto blob = test::trained(spec, x, d).serialize();
    CHECK_NOTHROW(Codec::load(blob.data(), blob.size()));
    for (size_t cut : {blob.size() - 1, blob.size() / 2, size_t(30)}) {
      auto part = blob;
      part.resize(cut);
      CHECK_THROWS_AS(Codec::load(part.data(), part.size()), FormatError);
    }
  }
  // A NaN in the stored mean is caught on load.
  Codec c = test::trained("pca:k=4/f32", x, d);
  auto blob = c.serialize();
  const std::string spec = c.stage(0).spec();
  // CODC: u32 count, u32 length + spec, u64 length, then the pca blob: u32 version, u64 d, u64 k, u64 count, mean.
  const size_t mean_at = 4 + 4 + spec.size() + 8 + 4 + 8 + 8 + 8;
  const float nan = NAN;
  std::memcpy(&blob[mean_at], &nan, 4);
  CHECK(test::contains(test::caught<FormatError>([&] { Codec::load(blob.data(), blob.size()); }).what(), "not finite"));
}

TEST_CASE("funnel: parse the stage list; bad stages are SpecErrors") {
  auto stages = parse_funnel("32:1000, 128:100,full");
  REQUIRE(stages.size() == 3);
  CHECK(stages[0].dims == 32);
  CHECK(stages[0].candidates == 1000);
  CHECK(stages[1].dims == 128);
  CHECK(stages[1].candidates == 100);
  CHECK(stages[2].dims == 0);
  CHECK(stages[2].candidates == 0);
  CHECK(parse_funnel("16").at(0).candidates == 0);
  for (const char* bad : {"", "32:", ":10", "x", "32:0", "0:10", "32,,full", "32:10:5"})
    CHECK_THROWS_AS(parse_funnel(bad), SpecError);
}

TEST_CASE("funnel: with a full last stage and large shortlists it equals full search") {
  const size_t n = 1200, d = 32, nq = 6, k = 10;
  auto x = test::clustered_rows(n, d, 12, 34, 0.6f);
  auto queries = test::clustered_rows(nq, d, 12, 35, 0.6f);
  for (const char* spec : {"f32", "f16", "bf16", "int8", "pca/f16"}) {
    for (Metric metric : {Metric::cos, Metric::l2, Metric::ip}) {
      CAPTURE(std::string(spec));
      CAPTURE(std::string(metric_name(metric)));
      Table t = compressed(x, d, spec, metric);
      SearchOptions plain;
      plain.k = k;
      SearchOptions funnel = plain;
      funnel.funnel = {{8, n}, {16, n}, {0, 0}};
      SearchResult a = t.search(queries.data(), nq, plain), b = t.search(queries.data(), nq, funnel);
      CHECK(b.k == k);
      CHECK(a.ids == b.ids);
      for (size_t i = 0; i < a.scores.size(); ++i) CHECK(b.scores[i] == doctest::Approx(a.scores[i]).epsilon(1e-5));
    }
  }
  // The full stage is implied; default shortlists (here 200, then 100) keep most neighbours of
  // rows whose leading dimensions carry most of the variance, as Matryoshka models' do.
  auto decaying = x, decaying_queries = queries;
  for (size_t i = 0; i < n * d; ++i) decaying[i] *= std::pow(0.8f, float(i % d));
  for (size_t i = 0; i < nq * d; ++i) decaying_queries[i] *= std::pow(0.8f, float(i % d));
  Table t = compressed(decaying, d, "f32", Metric::l2);
  SearchOptions options;
  SearchResult exact = t.search(decaying_queries.data(), nq, options);
  options.funnel = {{8, 0}, {16, 0}};
  SearchResult by_default = t.search(decaying_queries.data(), nq, options);
  CHECK(overlap(by_default, exact.ids) >= 0.95);
  options.funnel = {{8, 200}, {16, 100}, {0, 0}};
  CHECK(t.search(decaying_queries.data(), nq, options).ids == by_default.ids);
}

TEST_CASE("funnel: codecs without per-dimension codes and bad stage lists are clear errors") {
  const size_t n = 600, d = 16;
  auto x = test::clustered_rows(n, d, 6, 36);
  SearchOptions options;
  options.funnel = {{4, 100}};
  if (find_codec("pq")) {
    Table pq = compressed(x, d, "pq:m=4,nbits=4");
    std::string m = test::caught<Error>([&] { pq.search(x.data(), 1, options); }).what();
    CHECK(test::contains(m, "funnel search needs codes that decode dimension by dimension"));
    CHECK(test::contains(m, "pq"));
  }
  Table t = compressed(x, d, "matryoshka:dim=8/f32");
  for (auto [stages, expected] : std::vector<std::pair<std::vector<FunnelStage>, const char*>>{
           {{{9, 100}}, "9 dimensions exceed the 8 of the codes (1..8, or full)"},
           {{{0, 0}, {4, 10}}, "only the last stage may use all dimensions"},
           {{{4, 10}, {4, 10}}, "do not exceed the previous stage's 4"},
           {{{4, 10}, {0, 5}}, "leave out its candidate count"}}) {
    options.funnel = stages;
    CHECK(test::contains(test::caught<Error>([&] { t.search(x.data(), 1, options); }).what(), expected));
  }
  options.funnel = {{4, 100}};
  options.rerank = 50;
  CHECK(test::contains(test::caught<Error>([&] { t.search(x.data(), 1, options); }).what(), "cannot be combined"));
}

TEST_CASE("funnel: equal scores keep the smaller row, as a full search does") {
  // 1,200 rows: 150 distinct integer rows, each 8 times; dimensions 8..15 are zero, so the first
  // stage (8 dimensions) ranks exactly as the full search, ties included.
  const size_t distinct = 150, copies = 8, d = 16, n = distinct * copies, nq = 4;
  std::mt19937_64 rng(37);
  std::vector<float> x(n * d, 0.f), queries(nq * d, 0.f);
  for (size_t r = 0; r < distinct; ++r)
    for (size_t j = 0; j < 8; ++j) {
      const float v = float(int(rng() % 7) - 3);
      for (size_t c = 0; c < copies; ++c) x[(c * distinct + r) * d + j] = v;
    }
  for (size_t i = 0; i < nq * 8; ++i) queries[(i / 8) * d + i % 8] = float(int(rng() % 7) - 3);
  for (Metric metric : {Metric::ip, Metric::l2, Metric::cos}) {
    CAPTURE(std::string(metric_name(metric)));
    Table t = compressed(x, d, "f32", metric);
    SearchOptions plain;
    plain.k = 20;
    SearchOptions funnel = plain;
    funnel.funnel = {{8, 20}};
    CHECK(t.search(queries.data(), nq, funnel).ids == t.search(queries.data(), nq, plain).ids);
  }
}
