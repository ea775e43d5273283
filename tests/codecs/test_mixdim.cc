// mixdim: mixed-dimension blocks of rows fitted to a frequency-ordered table.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <random>

#include "test_util.h"
#include "vecpack/codec.h"
#include "vecpack/errors.h"
#include "vecpack/table.h"

using namespace vecpack;

namespace {

// Rows ordered as a vocabulary by frequency: row i has Gaussian coordinates of decreasing scale,
// all of them for frequent rows, and past its rank r(i) (32 at row 0, 2 at the last row) only
// a little noise: frequent rows are high-rank, rare ones low-rank.
std::vector<float> zipf_rows(size_t n, size_t d, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal;
  std::vector<float> x(n * d);
  for (size_t i = 0; i < n; ++i) {
    const double share = 1.0 - std::log(double(i + 1)) / std::log(double(n));
    const size_t rank = std::max<size_t>(2, size_t(std::lround(double(d) * share)));
    for (size_t t = 0; t < d; ++t)
      x[i * d + t] = 0.3f + normal(rng) * float(1.0 / std::sqrt(1.0 + t)) * (t < rank ? 1.f : 0.05f);
  }
  return x;
}

std::vector<float> decoded(const Codec& codec, size_t n, size_t d, size_t first_row = 0) {
  std::vector<float> out(n * d);
  codec.decode(nullptr, n, out.data(), first_row);
  return out;
}

// Squared error with row i weighted 1 / (i + 1) (Zipf), per weighted row.
double weighted_mse(const std::vector<float>& x, const std::vector<float>& y, size_t d, bool zipf = true) {
  double error = 0, total = 0;
  for (size_t i = 0; i < x.size() / d; ++i) {
    double s = 0;
    for (size_t t = 0; t < d; ++t) s += (double(x[i * d + t]) - y[i * d + t]) * (double(x[i * d + t]) - y[i * d + t]);
    error += zipf ? s / double(i + 1) : s;
    total += zipf ? 1.0 / double(i + 1) : 1.0;
  }
  return error / total;
}

// The blocks of a parameter blob, read by its documented layout (codecs/mixdim.cc, version 1).
struct BlobBlock {
  uint64_t rows = 0, dims = 0;
  std::vector<float> mean, projection, low, step;
  std::vector<uint8_t> coefficients;
};

std::vector<BlobBlock> blob_blocks(const std::vector<uint8_t>& blob, size_t value_bytes) {
  size_t at = 0;
  auto take = [&](void* out, size_t size) {
    REQUIRE(at + size <= blob.size());
    std::memcpy(out, blob.data() + at, size);
    at += size;
  };
  auto u64 = [&] {
    uint64_t v;
    take(&v, 8);
    return v;
  };
  auto floats = [&] {
    std::vector<float> v(u64());
    take(v.data(), v.size() * 4);
    return v;
  };
  uint32_t version;
  take(&version, 4);
  CHECK(version == 2);
  u64();  // d
  u64();  // n
  uint8_t inner;
  take(&inner, 1);
  std::vector<BlobBlock> blocks(u64());
  CHECK(u64() == 0);  // no ranks: the table order is the frequency order
  for (auto& b : blocks) {
    b.rows = u64();
    b.dims = u64();
    b.mean = floats();
    b.projection = floats();
    if (value_bytes == 1) {
      b.low = floats();
      b.step = floats();
    }
    b.coefficients.resize(u64() * value_bytes);
    take(b.coefficients.data(), b.coefficients.size());
  }
  CHECK(at == blob.size());
  return blocks;
}

}  // namespace

TEST_CASE("mixdim: row i of a block decodes to mean_b + E_b[i] P_b; a 1-dimensional block is a line") {
  const size_t n = 3000, d = 16;
  auto x = zipf_rows(n, d, 3);
  // A steep power law leaves the rare blocks at one dimension.
  Codec c = test::trained("mixdim:budget=12,alpha=2,blocks=6,inner=f32,order=file", x, d);
  CHECK(c.code_size() == 0);
  CHECK(c.spec() == "mixdim:budget=12,alpha=2,blocks=6,inner=f32,order=file");
  CHECK((c.capabilities() & kSharedParameters) != 0);
  const auto blocks = blob_blocks(c.quantizer().serialize(), 4);
  REQUIRE(blocks.size() == 6);
  auto y = decoded(c, n, d);
  size_t begin = 0, line_blocks = 0;
  for (size_t b = 0; b < blocks.size(); ++b) {
    const BlobBlock& block = blocks[b];
    CAPTURE(b);
    CHECK(block.rows >= 1);
    if (b > 0) CHECK(block.rows >= blocks[b - 1].rows);  // blocks grow
    for (size_t i : {size_t(0), size_t(block.rows / 2), size_t(block.rows - 1)}) {
      const float* e = reinterpret_cast<const float*>(block.coefficients.data()) + i * block.dims;
      for (size_t t = 0; t < d; ++t) {
        double want = block.mean[t];
        for (size_t k = 0; k < block.dims; ++k) want += double(e[k]) * block.projection[k * d + t];
        CHECK(y[(begin + i) * d + t] == doctest::Approx(want).epsilon(1e-5));
      }
    }
    if (block.dims == 1 && block.rows >= 3) {
      // Every row of the block lies on the line through its first two rows.
      ++line_blocks;
      const float* a = y.data() + begin * d;
      const float* b1 = y.data() + (begin + 1) * d;
      double aa = 0;
      for (size_t t = 0; t < d; ++t) aa += (b1[t] - a[t]) * double(b1[t] - a[t]);
      for (size_t i = 2; i < block.rows; i += 1 + block.rows / 50) {
        const float* p = y.data() + (begin + i) * d;
        double ap = 0, pp = 0;
        for (size_t t = 0; t < d; ++t) ap += (b1[t] - a[t]) * double(p[t] - a[t]), pp += (p[t] - a[t]) * double(p[t] - a[t]);
        CHECK(ap * ap == doctest::Approx(aa * pp).epsilon(1e-4));  // Cauchy-Schwarz with equality
      }
    }
    begin += block.rows;
  }
  CHECK(begin == n);
  CHECK(line_blocks >= 1);
  CHECK(blocks.front().dims > blocks.back().dims);
  // Decoding by position: a run across a block boundary equals those rows of the whole.
  const size_t first = blocks[0].rows + blocks[1].rows - 5;
  auto part = decoded(c, 30, d, first);
  CHECK(std::equal(part.begin(), part.end(), y.begin() + first * d));
  CHECK_THROWS_WITH_AS(decoded(c, 10, d, 2995), doctest::Contains("beyond the 3000 rows"), NotFoundError);
}

TEST_CASE("mixdim: the greedy fit beats uniform dimensions at equal bytes, frequency-weighted") {
  const size_t n = 8000, d = 32;
  // Frequent rows high-rank and rare ones low-rank; and rows alike all over the order, where
  // only the Zipf weights tell the blocks apart.
  const std::vector<float> ranked = zipf_rows(n, d, 5), alike = test::clustered_rows(n, d, 50, 5, 0.5f);
  for (const auto* x : {&ranked, &alike}) {
    for (const char* inner : {"f16", "int8"}) {
      CAPTURE(x == &ranked);
      CAPTURE(std::string(inner));
      const std::string budget = std::string(inner) == "f16" ? "16" : "8";
      const std::string tail = ",inner=" + std::string(inner) + ",order=file";
      Codec mixed = test::trained("mixdim:budget=" + budget + tail, *x, d);
      Codec power = test::trained("mixdim:budget=" + budget + ",alpha=0.5" + tail, *x, d);
      // Uniform: one block (one PCA for all rows), or 8 blocks of (nearly) equal dimensions.
      Codec one = test::trained("mixdim:budget=" + budget + ",blocks=1" + tail, *x, d);
      Codec flat = test::trained("mixdim:budget=" + budget + ",alpha=0.000001" + tail, *x, d);
      const auto flat_blocks = blob_blocks(flat.quantizer().serialize(), std::string(inner) == "f16" ? 2 : 1);
      for (const auto& block : flat_blocks) CHECK(block.dims + 1 >= flat_blocks.back().dims);
      const double e_mixed = weighted_mse(*x, decoded(mixed, n, d), d), e_power = weighted_mse(*x, decoded(power, n, d), d);
      const double e_one = weighted_mse(*x, decoded(one, n, d), d), e_flat = weighted_mse(*x, decoded(flat, n, d), d);
      const size_t b_mixed = mixed.quantizer().serialize().size(), b_one = one.quantizer().serialize().size();
      const size_t b_flat = flat.quantizer().serialize().size();
      CAPTURE(e_mixed);
      CAPTURE(e_power);
      CAPTURE(e_one);
      CAPTURE(e_flat);
      CAPTURE(b_mixed);
      CAPTURE(b_one);
      CAPTURE(b_flat);
      CHECK(e_mixed < 0.7 * std::min(e_one, e_flat));
      CHECK(e_power < std::min(e_one, e_flat));
      CHECK(e_mixed <= e_power * 1.05);
      // Equal bytes: all within the budget, the greedy fit within 1 byte per row of it (one
      // more dimension of a block of all rows costs a whole value per row).
      const double limit = std::stod(budget) * double(n);
      for (size_t bytes : {b_mixed, b_one, b_flat}) {
        CHECK(double(bytes) <= limit);
        CHECK(double(bytes) >= 0.8 * limit);
      }
      CHECK(double(b_mixed + n) >= limit);
    }
  }
}

TEST_CASE("mixdim: the blob meets the budget; f32, f16 and int8 round trip; damaged blobs are FormatErrors") {
  const size_t n = 2000, d = 16;
  auto x = zipf_rows(n, d, 7);
  for (const char* spec : {"mixdim:budget=20,inner=f32,order=file", "mixdim:budget=10,order=file", "mixdim:budget=6,inner=int8,order=file",
                           "mixdim:budget=10,alpha=0.3,blocks=5,order=file", "mixdim:budget=5,alpha=1,inner=int8,order=file"}) {
    CAPTURE(std::string(spec));
    Codec a = test::trained(spec, x, d);
    CHECK(Codec(a.spec()).spec() == a.spec());
    const double budget = std::stod(std::string(spec).substr(std::string(spec).find('=') + 1));
    const double per_row = double(a.quantizer().serialize().size()) / double(n);
    CAPTURE(per_row);
    CHECK(per_row <= budget);
    CHECK(per_row >= 0.8 * budget);
    test::check_round_trip(a, x, d, 61);
    // Better than the mean row.
    std::vector<float> mean_rows(n * d, 0.f);
    for (size_t t = 0; t < d; ++t) {
      double s = 0;
      for (size_t i = 0; i < n; ++i) s += x[i * d + t];
      for (size_t i = 0; i < n; ++i) mean_rows[i * d + t] = float(s / n);
    }
    CHECK(weighted_mse(x, decoded(a, n, d), d) < 0.5 * weighted_mse(x, mean_rows, d));
  }
}

TEST_CASE("mixdim: damaged contents are FormatErrors that say what is wrong; threads do not change the fit") {
  const size_t n = 1000, d = 8;
  auto x = zipf_rows(n, d, 17);
  Codec a = test::trained("mixdim:budget=16,inner=f32,order=file", x, d, 1);
  struct Counting : Progress {
    uint64_t total = 0, last = 0;
    int begun = 0, ended = 0;
    void begin(std::string_view, uint64_t t) override { total = t, ++begun; }
    void advance(uint64_t done) override { last = done; }
    void end() override { ++ended; }
  } progress;
  Codec b("mixdim:budget=16,inner=f32,order=file");
  TrainOptions options;
  options.threads = 3;
  options.progress = &progress;
  b.train(x.data(), n, d, options);
  CHECK(a.serialize() == b.serialize());
  CHECK(progress.begun == 1);
  CHECK(progress.ended == 1);
  CHECK(progress.total > 0);
  CHECK(progress.last == progress.total);
  const auto blob = a.serialize();
  // Codec blob: u32 stages, u32 spec length, spec, u64 parameter bytes, parameters.
  const size_t at = 4 + 4 + a.spec().size() + 8;
  auto damaged = [&](size_t offset, const void* value, size_t size) {
    auto copy = blob;
    std::memcpy(copy.data() + at + offset, value, size);
    return copy;
  };
  auto load = [](const std::vector<uint8_t>& bytes) { return Codec::load(bytes.data(), bytes.size()); };
  const uint8_t f16 = 1;
  CHECK_THROWS_WITH_AS(load(damaged(20, &f16, 1)), doctest::Contains("inner differs from the spec's inner=f32"), FormatError);
  const uint64_t seven = 7, many = 1ull << 40, zero = 0;
  CHECK_THROWS_WITH_AS(load(damaged(21, &seven, 8)), doctest::Contains("blocks=7 differs from the spec's blocks=8"), FormatError);
  CHECK_THROWS_WITH_AS(load(damaged(29, &many, 8)), doctest::Contains("rank count 1099511627776 is neither 0 nor the"),
                       FormatError);
  CHECK_THROWS_WITH_AS(load(damaged(37, &many, 8)), doctest::Contains("does not fit"), FormatError);
  CHECK_THROWS_WITH_AS(load(damaged(45, &zero, 8)), doctest::Contains("block dimension 0 is out of range"), FormatError);
  const float nan = std::nanf("");
  CHECK_THROWS_WITH_AS(load(damaged(blob.size() - at - 4, &nan, 4)), doctest::Contains("not finite"), FormatError);
  auto longer = blob;
  longer.push_back(0);
  CHECK_THROWS_AS(load(longer), FormatError);
}

TEST_CASE("mixdim: the greedy fit gives frequent blocks at least the dimensions of rare ones") {
  const size_t n = 6000, d = 24;
  auto x = zipf_rows(n, d, 9);
  for (const char* spec : {"mixdim:budget=14,inner=f32,order=file", "mixdim:budget=8,order=file", "mixdim:budget=5,inner=int8,blocks=10,order=file"}) {
    CAPTURE(std::string(spec));
    Codec c = test::trained(spec, x, d);
    const size_t value_bytes = std::string(spec).find("f32") != std::string::npos ? 4 : std::string(spec).find("int8") != std::string::npos ? 1 : 2;
    const auto blocks = blob_blocks(c.quantizer().serialize(), value_bytes);
    CHECK(blocks.front().dims >= blocks.back().dims);
    CHECK(blocks.front().dims > 1);
    for (const auto& b : blocks) CHECK(b.dims <= d);
  }
}

TEST_CASE("mixdim: bad arguments name the argument") {
  auto x = zipf_rows(500, 8, 1);
  CHECK_THROWS_WITH_AS(Codec("mixdim:budget=0"), doctest::Contains("budget=0 is out of range"), SpecError);
  CHECK_THROWS_WITH_AS(Codec("mixdim"), doctest::Contains("budget is required"), SpecError);
  CHECK_THROWS_WITH_AS(Codec("mixdim:budget=8,inner=f64"), doctest::Contains("inner"), SpecError);
  CHECK_THROWS_WITH_AS(Codec("mixdim:budget=8,blocks=0"), doctest::Contains("blocks"), SpecError);
  CHECK_THROWS_WITH_AS(test::trained("mixdim:budget=8,blocks=501,order=file", x, 8), doctest::Contains("blocks=501 is larger than the 500 rows"), Error);
  // 500 rows of 8 dimensions in 8 blocks at 1 dimension each: 29 + 8 x 104 + 500 x 2 = 1861 bytes.
  CHECK_THROWS_WITH_AS(test::trained("mixdim:budget=3,order=file", x, 8), doctest::Contains("budget must be at least 4"), Error);
  CHECK_NOTHROW(test::trained("mixdim:budget=4,order=file", x, 8));
}
