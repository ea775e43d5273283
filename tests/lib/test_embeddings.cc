#include <doctest/doctest.h>

#define XXH_INLINE_ALL  // the reference hash below, independent of the library's
#include <xxhash.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <set>

#include "shared_rows.h"
#include "test_util.h"
#include "vecpack/embeddings.h"
#include "vecpack/errors.h"

using namespace vecpack;

namespace {

// Deterministic test numbers (splitmix64), the same on every platform.
struct Rng {
  uint64_t state;
  explicit Rng(uint64_t seed) : state(seed) {}
  uint64_t next() {
    uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  double uniform() { return (double(next() >> 11) + 0.5) * 0x1.0p-53; }
  double normal() { return std::sqrt(-2 * std::log(uniform())) * std::cos(6.283185307179586 * uniform()); }
  size_t below(size_t n) { return size_t(next() % n); }
};

std::vector<float> rows_of(const SharedEmbedding& e, const std::vector<int64_t>& ids) {
  std::vector<float> out(ids.size() * e.dim());
  e.forward(ids.data(), ids.size(), out.data());
  return out;
}

std::map<std::string, ParameterView> views(SharedEmbedding& e) {
  std::map<std::string, ParameterView> out;
  for (const ParameterView& v : e.parameters()) out[v.name] = v;
  return out;
}

std::vector<std::vector<float>> snapshot(SharedEmbedding& e) {
  std::vector<std::vector<float>> out;
  for (const ParameterView& v : e.parameters()) out.emplace_back(v.data, v.data + v.rows * v.cols);
  return out;
}

// Fills every parameter with distinct, seeded values (so that formulas are not checked on ones).
void randomize(SharedEmbedding& e, uint64_t seed) {
  Rng rng(seed);
  for (const ParameterView& v : e.parameters())
    for (size_t i = 0; i < v.rows * v.cols; ++i) v.data[i] = float(rng.normal());
}

template <class E, class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  }
  FAIL("no error thrown");
  return {};
}

// The tables every generic test runs on, small enough to check parameter by parameter.
std::vector<std::pair<std::string, std::function<std::unique_ptr<SharedEmbedding>()>>> small_tables() {
  return {
      {"hash weights", [] { return std::make_unique<HashEmbedding>(40, 5, 11, 3, true, 3); }},
      {"hash plain", [] { return std::make_unique<HashEmbedding>(40, 5, 11, 2, false, 3); }},
      {"qr mult", [] { return std::make_unique<QREmbedding>(40, 5, 7, QROp::mult, 3); }},
      {"qr add", [] { return std::make_unique<QREmbedding>(40, 5, 7, QROp::add, 3); }},
      {"qr concat", [] { return std::make_unique<QREmbedding>(40, 5, 7, QROp::concat, 3); }},
      {"mixdim", [] { return std::make_unique<MixedDimEmbedding>(std::vector<size_t>{6, 14, 20}, std::vector<size_t>{5, 3, 1}, 5, 40, 3); }},
  };
}

}  // namespace

TEST_CASE("shared_rows: hash_bucket is xxh64 of the little-endian id bytes, seed j, modulo buckets") {
  for (uint64_t id : {uint64_t(0), uint64_t(1), uint64_t(255), uint64_t(256), uint64_t(123456789012345ull)}) {
    uint8_t bytes[12];
    for (int b = 0; b < 8; ++b) bytes[b] = uint8_t(id >> (8 * b));
    for (uint32_t j : {0u, 1u, 7u}) {
      CHECK(hash_bucket(id, j, 1000003) == XXH64(bytes, 8, j) % 1000003);
      CHECK(hash_bucket(id, 0u, j, 97) == hash_bucket(id, j, 97));  // table 0: the plain hash
      bytes[8] = 2, bytes[9] = 0, bytes[10] = 0, bytes[11] = 0;
      CHECK(hash_bucket(id, 2u, j, 97) == XXH64(bytes, 12, j) % 97);
    }
  }
  CHECK(hash_bucket(std::string_view("día"), 3, 50) == XXH64("d\xc3\xad" "a", 4, 3) % 50);
  // Different seeds spread an id over different buckets.
  std::set<uint64_t> seen;
  for (uint32_t j = 0; j < 8; ++j) seen.insert(hash_bucket(uint64_t(42), j, 1u << 20));
  CHECK(seen.size() == 8);
}

TEST_CASE("HashEmbedding: forward is sum_j w_ij P[h_j(i)]") {
  HashEmbedding e(50, 4, 13, 3, true, 7);
  randomize(e, 11);
  auto p = views(e);
  REQUIRE(p.count("pool"));
  REQUIRE(p.count("weights"));
  CHECK(p["pool"].rows == 13);
  CHECK(p["weights"].rows == 50);
  CHECK(p["weights"].cols == 3);
  std::vector<int64_t> ids = {0, 7, 49, 7};
  auto out = rows_of(e, ids);
  for (size_t i = 0; i < ids.size(); ++i) {
    auto buckets = e.buckets_of(ids[i]);
    REQUIRE(buckets.size() == 3);
    for (size_t c = 0; c < 4; ++c) {
      double expected = 0;
      for (uint32_t j = 0; j < 3; ++j) {
        CHECK(buckets[j] == hash_bucket(uint64_t(ids[i]), j, 13));
        expected += double(p["weights"].data[ids[i] * 3 + j]) * p["pool"].data[hash_bucket(uint64_t(ids[i]), j, 13) * 4 + c];
      }
      CHECK(out[i * 4 + c] == doctest::Approx(expected).epsilon(1e-5));
    }
  }

  // Without weights every w is 1: the plain hashing trick, no parameters per id.
  HashEmbedding plain(50, 4, 13, 2, false, 7);
  CHECK(plain.parameters().size() == 1);
  randomize(plain, 12);
  const float* pool = plain.parameters()[0].data;
  auto row = rows_of(plain, {31});
  for (size_t c = 0; c < 4; ++c)
    CHECK(row[c] == doctest::Approx(double(pool[hash_bucket(31, 0, 13) * 4 + c]) + pool[hash_bucket(31, 1, 13) * 4 + c]));
}

TEST_CASE("HashEmbedding: tables multiplexed in one pool hash the table id in") {
  HashEmbedding e(30, 3, 17, 2, true, 5, 3);
  randomize(e, 13);
  CHECK(views(e)["weights"].rows == 90);  // weights per (table, id)
  std::vector<int64_t> ids = {4, 4, 4};
  std::vector<uint32_t> tables = {0, 1, 2};
  std::vector<float> out(9);
  e.forward(ids.data(), tables.data(), 3, out.data());
  CHECK(std::vector<float>(out.begin(), out.begin() + 3) == rows_of(e, {4}));  // table 0 = no table ids
  auto p = views(e);
  for (uint32_t t = 0; t < 3; ++t) {
    for (size_t c = 0; c < 3; ++c) {
      double expected = 0;
      for (uint32_t j = 0; j < 2; ++j)
        expected += double(p["weights"].data[(t * 30 + 4) * 2 + j]) * p["pool"].data[hash_bucket(4, t, j, 17) * 3 + c];
      CHECK(out[t * 3 + c] == doctest::Approx(expected).epsilon(1e-5));
    }
  }
  CHECK(out[3] != out[6]);
  // reconstruct / to_table: the tables one after another.
  std::vector<float> all(90 * 3);
  e.reconstruct(0, 90, all.data());
  CHECK(std::vector<float>(all.begin() + (30 + 4) * 3, all.begin() + (30 + 5) * 3) == std::vector<float>(out.begin() + 3, out.begin() + 6));
  tables[1] = 3;
  CHECK_THROWS_WITH_AS(e.forward(ids.data(), tables.data(), 3, out.data()), doctest::Contains("table_ids[1] = 3"), NotFoundError);
}

TEST_CASE("QREmbedding: forward is op(Q[i / m], R[i % m]) for mult, add and concat") {
  for (QROp op : {QROp::mult, QROp::add, QROp::concat}) {
    CAPTURE(qr_op_name(op));
    QREmbedding e(10, 5, 3, op, 9);
    randomize(e, 21);
    auto p = views(e);
    const size_t qc = op == QROp::concat ? 3 : 5, rc = op == QROp::concat ? 2 : 5;
    CHECK(p["quotient"].rows == 4);  // ceil(10 / 3)
    CHECK(p["quotient"].cols == qc);
    CHECK(p["remainder"].rows == 3);
    CHECK(p["remainder"].cols == rc);
    for (int64_t id : {0, 2, 3, 5, 9}) {
      auto row = rows_of(e, {id});
      const float* q = p["quotient"].data + (id / 3) * qc;
      const float* r = p["remainder"].data + (id % 3) * rc;
      for (size_t c = 0; c < 5; ++c) {
        const float expected = op == QROp::mult ? q[c] * r[c] : op == QROp::add ? q[c] + r[c] : c < 3 ? q[c] : r[c - 3];
        CHECK(row[c] == doctest::Approx(expected));
      }
    }
  }
}

TEST_CASE("MixedDimEmbedding: forward is E_b[i - start_b] P_b") {
  MixedDimEmbedding e({3, 5, 2}, {4, 2, 1}, 4, 10, 5);
  randomize(e, 31);
  CHECK(e.size() == 10);
  auto p = views(e);
  const size_t starts[] = {0, 3, 8}, dims[] = {4, 2, 1};
  for (int64_t id : {0, 2, 3, 7, 8, 9}) {
    const size_t b = id < 3 ? 0 : id < 8 ? 1 : 2;
    const ParameterView& eb = p["block" + std::to_string(b)];
    const ParameterView& pb = p["projection" + std::to_string(b)];
    CHECK(eb.cols == dims[b]);
    CHECK(pb.rows == dims[b]);
    CHECK(pb.cols == 4);
    auto row = rows_of(e, {id});
    for (size_t c = 0; c < 4; ++c) {
      double expected = 0;
      for (size_t l = 0; l < dims[b]; ++l) expected += double(eb.data[(id - starts[b]) * dims[b] + l]) * pb.data[l * 4 + c];
      CHECK(row[c] == doctest::Approx(expected).epsilon(1e-5));
    }
  }
}

TEST_CASE("backward: gradients equal finite differences of a scalar loss, for every table") {
  // L = 0.5 sum_i |row(ids_i) - target_i|^2, so dL/drow = row - target. Each row is linear in
  // each single parameter, so central differences are exact up to rounding.
  const std::vector<int64_t> ids = {3, 1, 3, 38, 19, 6};
  for (auto& entry : small_tables()) {
    // Named references: clang before 16 cannot capture structured bindings (CAPTURE does).
    const auto& name = entry.first;
    auto& make = entry.second;
    CAPTURE(name);
    auto e = make();
    randomize(*e, 41);
    Rng rng(5);
    std::vector<float> target(ids.size() * e->dim());
    for (float& t : target) t = float(rng.normal());
    auto loss = [&] {
      auto rows = rows_of(*e, ids);
      double s = 0;
      for (size_t i = 0; i < rows.size(); ++i) s += 0.5 * (double(rows[i]) - target[i]) * (double(rows[i]) - target[i]);
      return s;
    };
    // Finite differences of every parameter.
    std::vector<std::vector<double>> numeric;
    for (const ParameterView& v : e->parameters()) {
      numeric.emplace_back(v.rows * v.cols);
      for (size_t i = 0; i < v.rows * v.cols; ++i) {
        const float saved = v.data[i];
        const float h = 1e-2f;
        v.data[i] = saved + h;
        const double up = loss();
        v.data[i] = saved - h;
        const double down = loss();
        v.data[i] = saved;
        numeric.back()[i] = (up - down) / (2.0 * h);
      }
    }
    auto rows = rows_of(*e, ids);
    std::vector<float> grad(rows.size());
    for (size_t i = 0; i < rows.size(); ++i) grad[i] = rows[i] - target[i];
    auto before = snapshot(*e);
    e->backward(ids.data(), ids.size(), grad.data(), ids.size(), e->dim());
    e->step(1.0f, Optimizer::sgd);  // p -= g: the gradient is before - after
    auto after = snapshot(*e);
    size_t nonzero = 0;
    for (size_t a = 0; a < before.size(); ++a)
      for (size_t i = 0; i < before[a].size(); ++i) {
        const double analytic = double(before[a][i]) - after[a][i];
        CHECK(analytic == doctest::Approx(numeric[a][i]).epsilon(2e-3).scale(1.0));
        nonzero += numeric[a][i] != 0;
      }
    CHECK(nonzero > 10);
  }
}

TEST_CASE("step: SGD and Adagrad change exactly the parameters the ids touched, then clear the gradients") {
  const std::vector<int64_t> ids = {2, 17, 2, 33};
  for (Optimizer optimizer : {Optimizer::sgd, Optimizer::adagrad}) {
    for (auto& entry : small_tables()) {
      // Named references: clang before 16 cannot capture structured bindings (CAPTURE does).
      const auto& name = entry.first;
      auto& make = entry.second;
      CAPTURE(name);
      CAPTURE(optimizer_name(optimizer));
      auto e = make();
      // Rows each parameter array should change, from the structure of the table.
      std::map<std::string, std::set<size_t>> touched;
      if (auto* h = dynamic_cast<HashEmbedding*>(e.get())) {
        for (int64_t id : ids) {
          for (uint64_t b : h->buckets_of(id)) touched["pool"].insert(b);
          touched["weights"].insert(size_t(id));
        }
      } else if (auto* q = dynamic_cast<QREmbedding*>(e.get())) {
        for (int64_t id : ids) touched["quotient"].insert(id / q->m()), touched["remainder"].insert(id % q->m());
      } else {
        const size_t starts[] = {0, 6, 20, 40}, dims[] = {5, 3, 1};
        for (int64_t id : ids) {
          const size_t b = size_t(std::upper_bound(starts, starts + 4, size_t(id)) - starts) - 1;
          touched["block" + std::to_string(b)].insert(id - starts[b]);
          for (size_t l = 0; l < dims[b]; ++l) touched["projection" + std::to_string(b)].insert(l);
        }
      }
      Rng rng(77);
      std::vector<float> grad(ids.size() * e->dim());
      for (float& g : grad) g = float(rng.normal());
      auto before = snapshot(*e);
      e->backward(ids.data(), ids.size(), grad.data(), ids.size(), e->dim());
      e->step(0.05f, optimizer);
      auto after = snapshot(*e);
      auto params = e->parameters();
      for (size_t a = 0; a < params.size(); ++a) {
        CAPTURE(params[a].name);
        size_t changed = 0;
        for (size_t i = 0; i < before[a].size(); ++i) {
          const bool in_touched_row = touched[params[a].name].count(i / params[a].cols) > 0;
          CHECK((before[a][i] != after[a][i]) == in_touched_row);
          changed += before[a][i] != after[a][i];
          // Adagrad's first step moves every touched parameter by lr g / |g| = lr.
          if (optimizer == Optimizer::adagrad && in_touched_row)
            CHECK(std::abs(double(before[a][i]) - after[a][i]) == doctest::Approx(0.05).epsilon(1e-3));
        }
        CHECK(changed > 0);
      }
      // The gradients are gone: another step changes nothing; so does a step after zero_grad.
      e->step(0.05f, optimizer);
      CHECK(snapshot(*e) == after);
      e->backward(ids.data(), ids.size(), grad.data(), ids.size(), e->dim());
      e->zero_grad();
      e->step(0.05f, optimizer);
      CHECK(snapshot(*e) == after);
    }
  }
}

TEST_CASE("Adagrad keeps its accumulators across steps; the optimizer is chosen at construction") {
  // op=add: dQ = dR = grad, independent of the parameters. Steps of the same g move by
  // lr g / sqrt(g^2), then lr g / sqrt(2 g^2).
  QREmbedding e(20, 3, 4, QROp::add, 1, {.optimizer = Optimizer::adagrad});
  CHECK(e.optimizer() == Optimizer::adagrad);
  const int64_t id = 5;
  const float grad[3] = {0.5f, -2.0f, 0.01f};
  const float* q = views(e)["quotient"].data + 1 * 3;
  float before[3];
  std::copy_n(q, 3, before);
  e.backward(&id, 1, grad, 1, 3);
  e.step(0.1f);
  for (int c = 0; c < 3; ++c) CHECK(before[c] - q[c] == doctest::Approx(0.1 * (grad[c] > 0 ? 1 : -1)).epsilon(1e-4));
  std::copy_n(q, 3, before);
  e.backward(&id, 1, grad, 1, 3);
  e.step(0.1f);
  for (int c = 0; c < 3; ++c)
    CHECK(before[c] - q[c] == doctest::Approx(0.1 / std::sqrt(2.0) * (grad[c] > 0 ? 1 : -1)).epsilon(1e-4));
  e.set_optimizer(Optimizer::sgd);
  std::copy_n(q, 3, before);
  e.backward(&id, 1, grad, 1, 3);
  e.step(0.1f);
  for (int c = 0; c < 3; ++c) CHECK(before[c] - q[c] == doctest::Approx(0.1 * grad[c]).epsilon(1e-4));
}

TEST_CASE("errors name the argument at fault") {
  CHECK(test::contains(error_of<SpecError>([] { HashEmbedding(10, 4, 0, 1); }), "buckets"));
  CHECK(test::contains(error_of<SpecError>([] { HashEmbedding(10, 4, 8, 0); }), "k (hashes per id)"));
  CHECK(test::contains(error_of<SpecError>([] { HashEmbedding(10, 4, 8, 9); }), "k (hashes per id) must be 1..buckets (8), not 9"));
  CHECK(test::contains(error_of<SpecError>([] { HashEmbedding(10, 4, 8, 2, true, 1, 0); }), "tables"));
  CHECK(test::contains(error_of<SpecError>([] { HashEmbedding(0, 4, 8, 2); }), "n_ids"));
  CHECK(test::contains(error_of<SpecError>([] { HashEmbedding(10, 0, 8, 2); }), "dim"));
  CHECK(test::contains(error_of<SpecError>([] { QREmbedding(10, 4, 0); }), "m (remainder rows) must be 1..n_ids (10), not 0"));
  CHECK(test::contains(error_of<SpecError>([] { QREmbedding(10, 4, 11); }), "m (remainder rows)"));
  CHECK(test::contains(error_of<SpecError>([] { QREmbedding(10, 1, 2, QROp::concat); }), "concat"));
  CHECK(test::contains(error_of<SpecError>([] { MixedDimEmbedding({3, 5}, {4, 2}, 4, 9); }), "block_rows add up to 8, not n_ids = 9"));
  CHECK(test::contains(error_of<SpecError>([] { MixedDimEmbedding({3, 5}, {4, 0}, 4); }), "block_dims[1] must be 1..dim (4), not 0"));
  CHECK(test::contains(error_of<SpecError>([] { MixedDimEmbedding({3, 5}, {5, 2}, 4); }), "block_dims[0] must be 1..dim (4), not 5"));
  CHECK(test::contains(error_of<SpecError>([] { MixedDimEmbedding({3, 5}, {4}, 4); }), "block_dims"));
  CHECK(test::contains(error_of<SpecError>([] { MixedDimEmbedding({3, 0}, {4, 2}, 4); }), "block_rows[1]"));
  CHECK(test::contains(error_of<SpecError>([] { parse_qr_op("mul"); }), "op"));
  CHECK(test::contains(error_of<SpecError>([] { HashEmbedding(10, 4, 8, 2, true, 1, 1, {.init_std = -1}); }), "init_std"));

  QREmbedding e(10, 4, 3);
  std::vector<float> out(8), grad(8);
  const std::vector<int64_t> bad = {2, 10}, negative = {-1, 0};
  CHECK_THROWS_WITH_AS(e.forward(bad.data(), 2, out.data()), doctest::Contains("ids[1] = 10 is out of range [0, 10)"), NotFoundError);
  CHECK_THROWS_WITH_AS(e.forward(negative.data(), 2, out.data()), doctest::Contains("ids[0] = -1"), NotFoundError);
  CHECK_THROWS_WITH_AS(e.backward(bad.data(), 2, grad.data(), 2, 4), doctest::Contains("ids[1] = 10"), NotFoundError);
  const std::vector<int64_t> good = {2, 3};
  CHECK_THROWS_WITH_AS(e.backward(good.data(), 2, grad.data(), 2, 3), doctest::Contains("grad has shape (2, 3); expected (2, 4)"), Error);
  CHECK_THROWS_WITH_AS(e.backward(good.data(), 2, grad.data(), 1, 4), doctest::Contains("grad has shape (1, 4)"), Error);
  // A rejected batch accumulates nothing.
  auto before = snapshot(e);
  e.step(1.0f);
  CHECK(snapshot(e) == before);
}

TEST_CASE("parameter_count and parameter_bytes follow the formulas") {
  CHECK(HashEmbedding(1000, 16, 100, 2).parameter_bytes() == 4 * (100 * 16 + 1000 * 2));
  CHECK(HashEmbedding(1000, 16, 100, 2, false).parameter_bytes() == 4 * (100 * 16));
  CHECK(HashEmbedding(1000, 16, 100, 3, true, 1, 4).parameter_count() == 100 * 16 + 4 * 1000 * 3);
  CHECK(QREmbedding(1000, 16, 64, QROp::mult).parameter_bytes() == 4 * (16 * 16 + 64 * 16));   // ceil(1000/64) = 16
  CHECK(QREmbedding(1000, 16, 64, QROp::add).parameter_count() == 16 * 16 + 64 * 16);
  CHECK(QREmbedding(1000, 15, 64, QROp::concat).parameter_count() == 16 * 8 + 64 * 7);
  CHECK(MixedDimEmbedding({100, 900}, {16, 4}, 16).parameter_bytes() == 4 * (100 * 16 + 16 * 16 + 900 * 4 + 4 * 16));
  for (auto& entry : small_tables()) {
    // Named references: clang before 16 cannot capture structured bindings (CAPTURE does).
    const auto& name = entry.first;
    auto& make = entry.second;
    auto e = make();
    uint64_t floats = 0;
    for (const ParameterView& v : e->parameters()) floats += v.rows * v.cols;
    CHECK(e->parameter_count() == floats);
    CHECK(e->parameter_bytes() == 4 * floats);
  }
}

TEST_CASE("initialisation is seeded, and rows of every type start at the same scale") {
  CHECK(snapshot(*small_tables()[0].second()) == snapshot(*small_tables()[0].second()));
  HashEmbedding seed3(40, 5, 11, 3, true, 3), seed4(40, 5, 11, 3, true, 4);
  CHECK(snapshot(seed3) != snapshot(seed4));
  const size_t n = 4000, d = 32;
  std::vector<std::unique_ptr<SharedEmbedding>> tables;
  tables.push_back(std::make_unique<HashEmbedding>(n, d, 500, 2));
  tables.push_back(std::make_unique<HashEmbedding>(n, d, 500, 3, false));
  for (QROp op : {QROp::mult, QROp::add, QROp::concat}) tables.push_back(std::make_unique<QREmbedding>(n, d, 100, op));
  tables.push_back(std::make_unique<MixedDimEmbedding>(std::vector<size_t>{100, 900, 3000}, std::vector<size_t>{32, 8, 2}, d));
  for (auto& e : tables) {
    std::vector<float> rows(n * d);
    e->reconstruct(0, n, rows.data());
    double s = 0;
    for (float v : rows) s += double(v) * v;
    const double std = std::sqrt(s / rows.size());
    CHECK(std > 0.7 / std::sqrt(double(d)));
    CHECK(std < 1.4 / std::sqrt(double(d)));
  }
}

TEST_CASE("save writes the decoded rows as a .vecpack table") {
  test::TempDir dir;
  MixedDimEmbedding e({10, 30}, {8, 2}, 8);
  std::vector<float> rows(40 * 8);
  e.reconstruct(0, 40, rows.data());
  e.save(dir.file("mix.vecpack"));
  Table f16 = Table::open(dir.file("mix.vecpack"));
  CHECK(f16.spec() == "f16");
  CHECK(f16.size() == 40);
  CHECK(f16.dim() == 8);
  CHECK(f16.metric() == Metric::ip);
  auto back = test::all_rows(f16);
  for (size_t i = 0; i < rows.size(); ++i) CHECK(back[i] == doctest::Approx(rows[i]).epsilon(2e-3).scale(1e-3));
  e.save(dir.file("mix.f32.vecpack"), "f32");
  CHECK(test::all_rows(Table::open(dir.file("mix.f32.vecpack"))) == rows);
  CHECK_THROWS_AS(e.save(dir.file("bad.vecpack"), "nosuchcodec"), SpecError);
}

// ---------------------------------------------------------------- training

namespace {

// Interactions (user, item, score) with items drawn from a Zipf-like law (item i with weight
// 1 / (i + 1)^1.05, so ids are frequency ranks) and users uniformly, scored by a planted rank-4
// model plus noise: y = <a_u, b_i> / 2 + N(0, 0.1^2), variance about 1.
struct Interactions {
  std::vector<int64_t> users, items;
  std::vector<float> y;
};

Interactions power_law_interactions(size_t n_users, size_t n_items, size_t count, uint64_t seed) {
  const size_t rank = 4;
  Rng rng(seed);
  std::vector<double> a(n_users * rank), b(n_items * rank), cdf(n_items);
  for (double& v : a) v = rng.normal();
  for (double& v : b) v = rng.normal();
  double total = 0;
  for (size_t i = 0; i < n_items; ++i) cdf[i] = total += std::pow(double(i + 1), -1.05);
  Interactions out;
  for (size_t s = 0; s < count; ++s) {
    const size_t u = rng.below(n_users);
    const size_t i = std::min(n_items - 1, size_t(std::lower_bound(cdf.begin(), cdf.end(), rng.uniform() * total) - cdf.begin()));
    double score = 0;
    for (size_t r = 0; r < rank; ++r) score += a[u * rank + r] * b[i * rank + r];
    out.users.push_back(int64_t(u));
    out.items.push_back(int64_t(i));
    out.y.push_back(float(score / std::sqrt(double(rank)) + 0.1 * rng.normal()));
  }
  return out;
}

struct TrainResult {
  double initial_loss = 0, final_loss = 0;            // on the training interactions
  double initial_heldout = 0, final_heldout = 0;      // on interactions never trained on
};

// Matrix factorisation, prediction <user_u, item(i)>, squared loss 0.5 (prediction - y)^2 averaged
// over the interactions; a full user table and `items` as the item table, both Adagrad.
// train_items = false freezes the item table (the control: users alone fitting fixed items).
TrainResult train_mf(SharedEmbedding& items, const Interactions& data, const Interactions& heldout, size_t n_users,
                     size_t epochs, float lr, bool train_items = true) {
  const size_t d = items.dim(), n = data.y.size(), batch = 256;
  Rng rng(99);
  std::vector<float> users(n_users * d), users_accum(n_users * d, 0.0f);
  for (float& v : users) v = float(rng.normal() / std::sqrt(double(d)));
  auto loss = [&](const Interactions& set) {
    const size_t count = set.y.size();
    std::vector<float> v(count * d);
    items.forward(set.items.data(), count, v.data());
    double s = 0;
    for (size_t t = 0; t < count; ++t) {
      double p = 0;
      for (size_t c = 0; c < d; ++c) p += double(users[set.users[t] * d + c]) * v[t * d + c];
      s += 0.5 * (p - set.y[t]) * (p - set.y[t]);
    }
    return s / double(count);
  };
  TrainResult result;
  result.initial_loss = loss(data);
  result.initial_heldout = loss(heldout);
  std::vector<size_t> order(n);
  for (size_t t = 0; t < n; ++t) order[t] = t;
  std::vector<int64_t> ids(batch);
  std::vector<float> v(batch * d), grad_v(batch * d), grad_u(batch * d);
  for (size_t epoch = 0; epoch < epochs; ++epoch) {
    for (size_t t = n - 1; t > 0; --t) std::swap(order[t], order[rng.below(t + 1)]);
    for (size_t begin = 0; begin < n; begin += batch) {
      const size_t m = std::min(batch, n - begin);
      for (size_t b = 0; b < m; ++b) ids[b] = data.items[order[begin + b]];
      items.forward(ids.data(), m, v.data());
      for (size_t b = 0; b < m; ++b) {
        const size_t t = order[begin + b];
        const float* u = &users[data.users[t] * d];
        double p = 0;
        for (size_t c = 0; c < d; ++c) p += double(u[c]) * v[b * d + c];
        const float err = float(p - data.y[t]);
        for (size_t c = 0; c < d; ++c) {
          grad_v[b * d + c] = err * u[c];
          grad_u[b * d + c] = err * v[b * d + c];
        }
      }
      if (train_items) {
        items.backward(ids.data(), m, grad_v.data(), m, d);
        items.step(lr, Optimizer::adagrad);
      }
      for (size_t b = 0; b < m; ++b) {  // Adagrad on the user rows, one lookup at a time
        float* u = &users[data.users[order[begin + b]] * d];
        float* acc = &users_accum[data.users[order[begin + b]] * d];
        for (size_t c = 0; c < d; ++c) {
          acc[c] += grad_u[b * d + c] * grad_u[b * d + c];
          u[c] -= lr * grad_u[b * d + c] / (std::sqrt(acc[c]) + 1e-10f);
        }
      }
    }
  }
  result.final_loss = loss(data);
  result.final_heldout = loss(heldout);
  return result;
}

}  // namespace

TEST_CASE("training: matrix factorisation on power-law data learns with every table as the item table") {
  const size_t n_users = 2000, n_items = 5000, d = 32;
  const Interactions all = power_law_interactions(n_users, n_items, 110000, 2024);
  Interactions data, heldout;  // the last 10,000 interactions are never trained on
  for (size_t t = 0; t < all.y.size(); ++t) {
    Interactions& to = t < 100000 ? data : heldout;
    to.users.push_back(all.users[t]), to.items.push_back(all.items[t]), to.y.push_back(all.y[t]);
  }
  const uint64_t full_bytes = uint64_t(n_items) * d * 4;
  std::vector<std::pair<std::string, std::unique_ptr<SharedEmbedding>>> tables;
  tables.emplace_back("hash B=500 k=2 weights", std::make_unique<HashEmbedding>(n_items, d, 500, 2));
  tables.emplace_back("hash B=500 k=2 plain", std::make_unique<HashEmbedding>(n_items, d, 500, 2, false));
  for (QROp op : {QROp::mult, QROp::add, QROp::concat})
    tables.emplace_back(std::string("qr m=250 ") + qr_op_name(op), std::make_unique<QREmbedding>(n_items, d, 250, op));
  tables.emplace_back("mixdim 100x32 900x8 4000x2",
                      std::make_unique<MixedDimEmbedding>(std::vector<size_t>{100, 900, 4000}, std::vector<size_t>{32, 8, 2}, d));
  // The control: the item table frozen at its initial values, users alone fitting fixed items. It
  // fits the training interactions somewhat, but not the held-out ones: the held-out check below
  // fails unless the item table learns.
  HashEmbedding frozen(n_items, d, 500, 2);
  const TrainResult control = train_mf(frozen, data, heldout, n_users, 5, 0.05f, false);
  MESSAGE("control, items frozen: train loss " << control.initial_loss << " -> " << control.final_loss
                                               << ", held-out " << control.initial_heldout << " -> " << control.final_heldout);
  CHECK(control.final_heldout > 0.75 * control.initial_heldout);
  for (auto& entry : tables) {
    // Named references: clang before 16 cannot capture structured bindings (CAPTURE does).
    const auto& name = entry.first;
    auto& items = entry.second;
    CAPTURE(name);
    const TrainResult r = train_mf(*items, data, heldout, n_users, 5, 0.05f);
    MESSAGE(name << ": train loss " << r.initial_loss << " -> " << r.final_loss << ", held-out " << r.initial_heldout
                 << " -> " << r.final_heldout << ", item parameters " << items->parameter_bytes()
                 << " bytes (full table " << full_bytes << ")");
    CHECK(items->parameter_bytes() < full_bytes);
    CHECK(r.final_loss < 0.7 * r.initial_loss);
    CHECK(r.final_heldout < 0.7 * r.initial_heldout);
  }
}
