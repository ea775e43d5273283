#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

#include "../../codecs/pq.h"
#include "block_scorer.h"
#include "bytes.h"
#include "kernels/kernels.h"
#include "test_util.h"
#include "vecpack/codec.h"
#include "vecpack/errors.h"
#include "vecpack/formats.h"
#include "vecpack/table.h"

using namespace vecpack;

namespace {

// A CODC section holding one pq stage with the given codebook.
std::vector<uint8_t> pq_section(size_t d, size_t m, unsigned nbits, const std::vector<float>& centroids) {
  ByteWriter params;
  params.put<uint32_t>(1);
  params.put<uint64_t>(d);
  params.put<uint32_t>(static_cast<uint32_t>(m));
  params.put<uint32_t>(nbits);
  params.put_array(centroids);
  ByteWriter w;
  w.put<uint32_t>(1);
  w.put_string("pq:m=" + std::to_string(m) + ",nbits=" + std::to_string(nbits));
  w.put<uint64_t>(params.bytes().size());
  w.put_bytes(params.bytes().data(), params.bytes().size());
  return w.take();
}

// Coordinate t of centroid c: 6 bits of c per coordinate, so that every centroid of a
// sub-vector of 3 or more dimensions is distinct and well separated.
float grid_value(size_t c, size_t t) { return t < 3 ? float((c >> (6 * t)) & 63) / 32.0f - 1.0f : 0.25f * float(t); }

}  // namespace

TEST_CASE("pq: sub-vector split sizes differ by at most one, the longer ones first") {
  CHECK(pq_split(10, 3) == std::vector<size_t>{0, 4, 7, 10});
  CHECK(pq_split(8, 4) == std::vector<size_t>{0, 2, 4, 6, 8});
  CHECK(pq_split(5, 5) == std::vector<size_t>{0, 1, 2, 3, 4, 5});
  CHECK(pq_split(7, 1) == std::vector<size_t>{0, 7});
  CHECK(pq_code_size(3, 4) == 2);
  CHECK(pq_code_size(3, 10) == 4);
  CHECK(pq_code_size(25, 8) == 25);
  CHECK(pq_default_m(100) == 25);
  CHECK(pq_default_m(3) == 1);
}

TEST_CASE("pq: packed codes follow the documented bit layout for every code width") {
  for (unsigned nbits : {4u, 5u, 8u, 10u, 12u, 16u}) {
    for (size_t m : {size_t(1), size_t(3), size_t(7)}) {
      CAPTURE(nbits);
      CAPTURE(m);
      std::vector<uint32_t> labels(m);
      for (size_t j = 0; j < m; ++j) labels[j] = static_cast<uint32_t>((0x9e37u * (j + 1) + 0x55u) & ((1u << nbits) - 1));
      labels[0] = (1u << nbits) - 1;  // all ones
      std::vector<uint8_t> expected(pq_code_size(m, nbits), 0);
      for (size_t j = 0; j < m; ++j)
        for (unsigned b = 0; b < nbits; ++b)
          if ((labels[j] >> b) & 1) {
            size_t bit = j * nbits + b;
            expected[bit / 8] |= uint8_t(1u << (bit % 8));
          }
      std::vector<uint8_t> packed(expected.size(), 0xAA);
      pq_pack(labels.data(), 1, m, nbits, packed.data());
      CHECK(packed == expected);
      std::vector<uint32_t> unpacked(m);
      pq_unpack(packed.data(), m, nbits, unpacked.data());
      CHECK(unpacked == labels);
    }
  }
}

TEST_CASE("pq: encode and decode a hand-made codebook exactly (d=10, m=3: sub-vectors 4, 3, 3)") {
  const size_t d = 10, m = 3;
  const std::vector<size_t> offsets = {0, 4, 7, 10};
  for (unsigned nbits : {4u, 8u, 10u, 12u, 16u}) {
    CAPTURE(nbits);
    const size_t ksub = size_t{1} << nbits;
    std::vector<float> centroids;
    for (size_t j = 0; j < m; ++j)
      for (size_t c = 0; c < ksub; ++c)
        for (size_t t = 0; t < offsets[j + 1] - offsets[j]; ++t) centroids.push_back(grid_value(c, t) + float(j));
    auto section = pq_section(d, m, nbits, centroids);
    Codec codec = Codec::load(section.data(), section.size());
    CHECK(codec.spec() == "pq:m=3,nbits=" + std::to_string(nbits));
    REQUIRE(codec.code_size() == (3 * nbits + 7) / 8);

    // Rows made of chosen centroids encode to exactly their labels.
    const uint32_t choices[3][3] = {{0, 1, 2}, {uint32_t(ksub - 1), 5, uint32_t(ksub / 2 + 3)}, {7, uint32_t(ksub - 2), 0}};
    std::vector<float> rows(3 * d);
    for (size_t r = 0; r < 3; ++r)
      for (size_t j = 0; j < m; ++j)
        for (size_t t = 0; t < offsets[j + 1] - offsets[j]; ++t)
          rows[r * d + offsets[j] + t] = grid_value(choices[r][j], t) + float(j);
    std::vector<uint8_t> codes(3 * codec.code_size());
    codec.encode(rows.data(), 3, codes.data());
    for (size_t r = 0; r < 3; ++r) {
      std::vector<uint8_t> expected(codec.code_size(), 0);
      for (size_t j = 0; j < m; ++j)
        for (unsigned b = 0; b < nbits; ++b)
          if ((choices[r][j] >> b) & 1) expected[(j * nbits + b) / 8] |= uint8_t(1u << ((j * nbits + b) % 8));
      CHECK(std::vector<uint8_t>(codes.begin() + r * codec.code_size(), codes.begin() + (r + 1) * codec.code_size()) ==
            expected);
    }
    std::vector<float> decoded(3 * d);
    codec.decode(codes.data(), 3, decoded.data());
    CHECK(decoded == rows);
    // A slightly moved row still picks the same centroids.
    for (float& v : rows) v += 0.002f;
    std::vector<uint8_t> again(codes.size());
    codec.encode(rows.data(), 3, again.data());
    CHECK(again == codes);
  }
}

TEST_CASE("pq: table scores equal brute-force scores of decoded rows (ip, l2, cos; adc and sdc)") {
  const size_t n = 600, d = 10;
  auto x = test::clustered_rows(n, d, 12, 31);
  auto q = test::clustered_rows(21, d, 12, 32);
  // nbits=4 scores through the quantized fast scan: see the fast-scan tests below.
  for (const char* spec : {"pq:m=3", "pq:m=3,nbits=5", "pq:m=4,nbits=10", "pq:m=5,sdc=on", "pq:m=3,nbits=12", "pq:m=2,nbits=16"}) {
    Codec c = test::trained(spec, x, d);
    std::vector<uint8_t> codes(n * c.code_size());
    c.encode(x.data(), n, codes.data());
    std::vector<float> y(n * d);
    c.decode(codes.data(), n, y.data());
    const bool symmetric = std::string(spec).find("sdc=on") != std::string::npos;
    for (Metric metric : {Metric::ip, Metric::cos, Metric::l2})
      for (size_t nq : {size_t(1), size_t(7), size_t(21)}) {  // query groups of 16, 8, 4 and 1
        CAPTURE(spec);
        CAPTURE(metric_name(metric));
        CAPTURE(nq);
        std::vector<float> queries(q.begin(), q.begin() + nq * d);
        if (metric == Metric::cos) queries = test::unit_rows(queries, d);  // as the engine hands them over
        // What the rows are compared with: the query, or for sdc its reconstruction (unit length for cos).
        std::vector<float> compared = queries;
        if (symmetric) {
          std::vector<uint8_t> qcodes(nq * c.code_size());
          c.encode(queries.data(), nq, qcodes.data());
          c.decode(qcodes.data(), nq, compared.data());
          if (metric == Metric::cos) compared = test::unit_rows(compared, d);
        }
        std::vector<float> out(nq * (n + 3), NAN);
        auto scorer = c.scorer(queries.data(), nq, metric);
        scorer->score({codes.data(), 250}, out.data(), n + 3);  // two calls: blocks of rows
        scorer->score({codes.data() + 250 * c.code_size(), n - 250}, out.data() + 250, n + 3);
        for (size_t a = 0; a < nq; ++a)
          for (size_t i = 0; i < n; ++i) {
            double dot = 0, sq = 0, qq = 0;
            for (size_t j = 0; j < d; ++j) {
              dot += double(compared[a * d + j]) * y[i * d + j];
              sq += double(y[i * d + j]) * y[i * d + j];
              qq += double(compared[a * d + j]) * compared[a * d + j];
            }
            double want = metric == Metric::ip ? dot : metric == Metric::cos ? dot / std::sqrt(sq) : 2 * dot - sq - qq;
            if (std::fabs(out[a * (n + 3) + i] - want) > 1e-4 * std::max(1.0, std::fabs(want))) {
              CAPTURE(a);
              CAPTURE(i);
              CHECK(out[a * (n + 3) + i] == doctest::Approx(want));
              a = nq;  // one report per case is enough
              break;
            }
          }
      }
  }
}

TEST_CASE("pq: 4-bit fast-scan scores are within m * scale / 2 of the exact table sums (ip, l2, cos)") {
  // Per query, scale = max over sub-quantizers j of (max_c t_j(c) - min_c t_j(c)) / 255 with
  // t_j the float table; each uint8 entry is off by at most scale / 2, so the sum over m
  // sub-quantizers by at most m * scale / 2 (times 1 / |decoded row| for cos).
  const size_t n = 700, d = 24;
  auto x = test::clustered_rows(n, d, 12, 71);
  auto q = test::clustered_rows(9, d, 12, 72);
  for (const char* spec : {"pq:m=6,nbits=4", "pq:m=5,nbits=4", "pq:m=24,nbits=4", "pq:m=3,nbits=4,sdc=on"}) {
    Codec c = test::trained(spec, x, d);
    const size_t m = std::string(spec).find("m=24") != std::string::npos ? 24
                     : std::string(spec).find("m=6") != std::string::npos ? 6
                     : std::string(spec).find("m=5") != std::string::npos ? 5 : 3;
    const bool symmetric = std::string(spec).find("sdc=on") != std::string::npos;
    std::vector<uint8_t> codes(n * c.code_size());
    c.encode(x.data(), n, codes.data());
    std::vector<float> y(n * d);
    c.decode(codes.data(), n, y.data());
    // Centroid k of every sub-quantizer at once: the decoded row whose codes are all k.
    std::vector<float> centroids(16 * d);
    for (size_t k = 0; k < 16; ++k) {
      std::vector<uint8_t> row(c.code_size(), static_cast<uint8_t>(k | k << 4));
      c.decode(row.data(), 1, centroids.data() + k * d);
    }
    const auto split = pq_split(d, m);
    for (Metric metric : {Metric::ip, Metric::cos, Metric::l2})
      for (size_t nq : {size_t(1), size_t(9)}) {
        CAPTURE(spec);
        CAPTURE(metric_name(metric));
        CAPTURE(nq);
        std::vector<float> queries(q.begin(), q.begin() + nq * d);
        if (metric == Metric::cos) queries = test::unit_rows(queries, d);
        std::vector<float> compared = queries;
        if (symmetric) {
          std::vector<uint8_t> qcodes(nq * c.code_size());
          c.encode(queries.data(), nq, qcodes.data());
          c.decode(qcodes.data(), nq, compared.data());
          if (metric == Metric::cos) compared = test::unit_rows(compared, d);
        }
        std::vector<float> out(nq * (n + 3), NAN);
        auto scorer = c.scorer(queries.data(), nq, metric);
        scorer->score({codes.data(), 250}, out.data(), n + 3);  // a partial last block of 32 rows
        scorer->score({codes.data() + 250 * c.code_size(), n - 250}, out.data() + 250, n + 3);
        size_t failures = 0;
        for (size_t a = 0; a < nq; ++a) {
          const float* cq = compared.data() + a * d;
          double scale = 0;
          for (size_t j = 0; j < m; ++j) {
            double lo = INFINITY, hi = -INFINITY;
            for (size_t k = 0; k < 16; ++k) {
              double t = 0;
              for (size_t e = split[j]; e < split[j + 1]; ++e) {
                const double v = centroids[k * d + e];
                t += metric == Metric::l2 ? -(cq[e] - v) * (cq[e] - v) : cq[e] * v;
              }
              lo = std::min(lo, t);
              hi = std::max(hi, t);
            }
            scale = std::max(scale, (hi - lo) / 255);
          }
          for (size_t i = 0; i < n; ++i) {
            double dot = 0, sq = 0, qq = 0;
            for (size_t j = 0; j < d; ++j) {
              dot += double(cq[j]) * y[i * d + j];
              sq += double(y[i * d + j]) * y[i * d + j];
              qq += double(cq[j]) * cq[j];
            }
            double want = metric == Metric::ip ? dot : metric == Metric::cos ? dot / std::sqrt(sq) : 2 * dot - sq - qq;
            double bound = m * scale / 2 * (metric == Metric::cos ? 1 / std::sqrt(sq) : 1.0);
            bound += 1e-4 * std::max(1.0, std::fabs(want));  // float rounding
            if (!(std::fabs(out[a * (n + 3) + i] - want) <= bound) && failures++ == 0) {
              CAPTURE(a);
              CAPTURE(i);
              CAPTURE(bound);
              CHECK(out[a * (n + 3) + i] == doctest::Approx(want));
            }
          }
        }
        CHECK(failures == 0);
      }
  }
}

TEST_CASE("pq: every ISA's 4-bit fast scan selects the candidates of the scalar reference") {
  const auto& reference = *kernels::table_for(kernels::Isa::scalar);
  uint64_t state = 99;
  auto next = [&] {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<uint8_t>(state >> 56);
  };
  using Found = std::vector<std::pair<uint32_t, uint16_t>>;
  auto select = [](const kernels::KernelTable& table, const std::vector<uint8_t>& codes, size_t bytes, size_t rows,
                   const std::vector<uint8_t>& luts, size_t nq, const std::vector<float>& slope,
                   const std::vector<float>& offset, const float* pair_norm) {
    std::vector<uint32_t> row_store(nq * rows);
    std::vector<uint16_t> sum_store(nq * rows);
    std::vector<uint32_t*> row_lists(nq);
    std::vector<uint16_t*> sum_lists(nq);
    std::vector<size_t> found(nq, 0);
    for (size_t q = 0; q < nq; ++q) row_lists[q] = row_store.data() + q * rows, sum_lists[q] = sum_store.data() + q * rows;
    table.pq4_fastscan_select(codes.data(), bytes, rows, luts.data(), bytes * 32, nq, slope.data(), offset.data(),
                              pair_norm, row_lists.data(), sum_lists.data(), found.data());
    std::vector<Found> out(nq);
    for (size_t q = 0; q < nq; ++q)
      for (size_t i = 0; i < found[q]; ++i) out[q].emplace_back(row_lists[q][i], sum_lists[q][i]);
    return out;
  };
  for (size_t bytes : {size_t(1), size_t(2), size_t(25), size_t(128)})
    for (size_t rows : {size_t(1), size_t(63), size_t(64), size_t(130)})
      for (int saturated = 0; saturated < 2; ++saturated) {
        CAPTURE(bytes);
        CAPTURE(rows);
        const size_t blocks = (rows + 63) / 64, nq = 7;
        std::vector<uint8_t> codes(blocks * bytes * 64), luts(nq * bytes * 32);
        for (auto& b : codes) b = next();
        for (auto& b : luts) b = saturated ? 255 : next();
        // Sums from the documented layout.
        std::vector<std::vector<uint32_t>> naive(nq, std::vector<uint32_t>(rows, 0));
        for (size_t q = 0; q < nq; ++q)
          for (size_t i = 0; i < rows; ++i)
            for (size_t s = 0; s < 2 * bytes; ++s) {
              const uint8_t byte = codes[((i / 64) * bytes + s / 2) * 64 + i % 64];
              naive[q][i] += luts[q * bytes * 32 + s * 16 + (s % 2 ? byte >> 4 : byte & 15)];
            }
        if (saturated) CHECK(naive[0][0] == 255u * 2 * bytes);
        std::vector<float> pair_norm(blocks * 32);
        for (auto& v : pair_norm) v = 0.25f + float(next()) / 64.0f;
        // Bounds around the sums, every row (-inf), no row (NaN) and a bound above every sum.
        const float mid = float(bytes) * 255.0f;
        std::vector<float> slope = {0.0f, mid / 2, mid, 1.0f, 0.0f, 1e6f, mid / 3};
        std::vector<float> offset = {INFINITY, 0.0f, mid / 2, 0.5f, NAN, 0.0f, -3.0f};
        for (const float* norms : {static_cast<const float*>(nullptr), static_cast<const float*>(pair_norm.data())}) {
          auto want = select(reference, codes, bytes, rows, luts, nq, slope, offset, norms);
          for (size_t q = 0; q < nq; ++q) {
            CAPTURE(q);
            Found expected;
            for (size_t i = 0; i < rows; ++i)
              if (int64_t(naive[q][i]) >= kernels::pq4_bound(slope[q], norms ? norms[i / 2] : 1.0f, offset[q]))
                expected.emplace_back(uint32_t(i), uint16_t(naive[q][i]));
            CHECK(want[q] == expected);
          }
          CHECK(want[0].size() == rows);  // -inf: every row
          CHECK(want[4].empty());         // NaN: none
          CHECK(want[5].empty());         // above every sum
          for (kernels::Isa isa : kernels::supported_isas()) {
            CAPTURE(kernels::isa_name(isa));
            CHECK(select(*kernels::table_for(isa), codes, bytes, rows, luts, nq, slope, offset, norms) == want);
          }
        }
      }
}

TEST_CASE("pq: serialize and load round trip; damaged blobs are FormatErrors") {
  const size_t n = 500, d = 12;
  auto x = test::clustered_rows(n, d, 6, 41);
  for (const char* spec : {"pq:m=4", "pq:m=5,nbits=6", "opq:m=3,iterations=2/pq:m=3"}) {
    CAPTURE(spec);
    test::check_round_trip(test::trained(spec, x, d), x, d, 97);
  }
  Codec a = test::trained("pq:m=4", x, d);
  CHECK(a.spec() == "pq:m=4,nbits=8");
  CHECK(test::trained("pq", x, d).spec() == "pq:m=3,nbits=8");  // one sub-quantizer per 4 dimensions
  auto blob = a.serialize();
  // The spec says m=4; a blob claiming m=5 is rejected.
  auto spec_end = 4 + 4 + a.spec().size();
  auto m_at = spec_end + 8 + 4 + 8;
  blob[m_at] = 5;
  CHECK_THROWS_WITH_AS(Codec::load(blob.data(), blob.size()), doctest::Contains("differs from the spec's m=4"), FormatError);
  blob[m_at] = 4;
  float bad = NAN;
  std::memcpy(blob.data() + blob.size() - 4, &bad, 4);
  CHECK_THROWS_WITH_AS(Codec::load(blob.data(), blob.size()), doctest::Contains("not finite"), FormatError);
}

TEST_CASE("pq: training is deterministic across thread counts; tiny samples become the codebook") {
  const size_t d = 16;
  auto x = test::clustered_rows(1500, d, 10, 51);
  CHECK(test::trained("pq:m=4,nbits=6", x, d, 1).serialize() == test::trained("pq:m=4,nbits=6", x, d, 2).serialize());
  CHECK(test::trained("opq:m=4,iterations=2/pq:m=4,nbits=6", x, d, 1).serialize() ==
        test::trained("opq:m=4,iterations=2/pq:m=4,nbits=6", x, d, 2).serialize());

  // 40 rows for 256 centroids: the rows are the centroids, so they decode exactly.
  std::vector<float> few(x.begin(), x.begin() + 40 * d);
  Codec c = test::trained("pq:m=4", few, d);
  std::vector<uint8_t> codes(40 * c.code_size());
  c.encode(few.data(), 40, codes.data());
  std::vector<float> y(40 * d);
  c.decode(codes.data(), 40, y.data());
  CHECK(y == few);
}

TEST_CASE("pq: every ISA's table scan and nearest-centroid search match the scalar reference") {
  const auto& reference = *kernels::table_for(kernels::Isa::scalar);
  auto values = test::clustered_rows(16 * 256 * 7, 1, 4, 91);
  const size_t rows = 37, m = 7, stride = 9;  // stride > m: indices of a row need not be packed
  for (kernels::Isa isa : kernels::supported_isas()) {
    const auto& table = *kernels::table_for(isa);
    CAPTURE(kernels::isa_name(isa));
    for (size_t ksub : {size_t(16), size_t(256), size_t(1024)})
      for (size_t lanes : {size_t(1), size_t(2), size_t(4), size_t(8), size_t(16)}) {
        CAPTURE(ksub);
        CAPTURE(lanes);
        if (m * ksub * lanes > values.size()) continue;
        std::vector<uint8_t> bytes(rows * stride);
        std::vector<uint16_t> wide(rows * stride);
        for (size_t i = 0; i < bytes.size(); ++i) {
          bytes[i] = static_cast<uint8_t>((i * 7919) % std::min<size_t>(ksub, 256));
          wide[i] = static_cast<uint16_t>((i * 7919) % ksub);
        }
        std::vector<float> want(rows * lanes), got(rows * lanes);
        if (ksub <= 256) {
          reference.pq_scan_u8(bytes.data(), stride, rows, m, ksub, values.data(), lanes, want.data(), nullptr, 0);
          table.pq_scan_u8(bytes.data(), stride, rows, m, ksub, values.data(), lanes, got.data(), values.data(), 40);
          CHECK(std::memcmp(want.data(), got.data(), want.size() * sizeof(float)) == 0);
        }
        reference.pq_scan_u16(wide.data(), stride, rows, m, ksub, values.data(), lanes, want.data(), nullptr, 0);
        table.pq_scan_u16(wide.data(), stride, rows, m, ksub, values.data(), lanes, got.data(), nullptr, 0);
        CHECK(std::memcmp(want.data(), got.data(), want.size() * sizeof(float)) == 0);
      }
    // Nearest centroid: the same choice wherever the distances are not too close to call.
    for (size_t d : {size_t(1), size_t(2), size_t(4), size_t(5), size_t(8), size_t(11)}) {
      CAPTURE(d);
      const size_t k = 48, n = 23;
      auto x = test::clustered_rows(n, d + 2, 5, 92 + d);  // rows d + 2 apart
      auto centroids = test::clustered_rows(k, d, 5, 93 + d);
      std::vector<float> transposed(d * k), half_sq(k);
      for (size_t c = 0; c < k; ++c) {
        half_sq[c] = 0;
        for (size_t j = 0; j < d; ++j) {
          transposed[j * k + c] = centroids[c * d + j];
          half_sq[c] += 0.5f * centroids[c * d + j] * centroids[c * d + j];
        }
      }
      std::vector<uint32_t> want(n), got(n);
      std::vector<float> want_best(n), got_best(n);
      reference.nearest_centroids(x.data(), n, d + 2, d, transposed.data(), half_sq.data(), k, want.data(), want_best.data());
      table.nearest_centroids(x.data(), n, d + 2, d, transposed.data(), half_sq.data(), k, got.data(), got_best.data());
      for (size_t i = 0; i < n; ++i) {
        CHECK(got_best[i] == doctest::Approx(want_best[i]).epsilon(1e-5).scale(1));
        if (want[i] != got[i]) CHECK(std::fabs(got_best[i] - want_best[i]) < 1e-5f);
      }
    }
  }
}

TEST_CASE("pq: recall floor on clustered data (fixed seed)") {
  const size_t n = 12000, d = 32, nq = 100, k = 10;
  auto x = test::clustered_rows(n, d, 100, 61, 0.6f);
  auto q = test::clustered_rows(nq, d, 100, 62, 0.6f);
  Table exact = Table::from_rows(x, d);
  SearchOptions o;
  o.k = k;
  SearchResult truth = exact.search(q.data(), nq, o);
  CompressOptions compress;
  compress.train_size = 5000;
  struct Floor {
    const char* spec;
    double recall;
  };
  // Measured 0.502, 0.479 and 0.807 on every ISA; the floors leave a margin for rounding. The
  // 4-bit specs score through the quantized fast scan (0.479 as with float tables before it).
  for (Floor f : {Floor{"pq:m=8", 0.45}, Floor{"pq:m=16,nbits=4", 0.43}, Floor{"pq:m=32,nbits=4", 0.77}}) {
    CAPTURE(f.spec);
    Table c = exact.compress(f.spec, compress);
    double r = test::recall_at(c.search(q.data(), nq, o), truth, k);
    CHECK(r >= f.recall);
  }
}

TEST_CASE("opq: the rotation is orthogonal and lowers the error of pq on correlated data") {
  const size_t n = 3000, d = 16;
  // Correlated rows: independent Gaussian factors with decaying scales, mixed by a fixed matrix.
  auto factors = test::clustered_rows(n, d, 1, 71, 1.0f);
  auto mixing = test::clustered_rows(d, d, 1, 72, 1.0f);
  std::vector<float> x(n * d, 0.0f);
  for (size_t i = 0; i < n; ++i)
    for (size_t a = 0; a < d; ++a) {
      const float scaled = (factors[i * d + a] - factors[a]) * std::exp(-0.25f * float(a));
      for (size_t b = 0; b < d; ++b) x[i * d + b] += scaled * mixing[a * d + b];
    }
  Codec plain = test::trained("pq:m=4,nbits=6", x, d);
  Codec rotated = test::trained("opq:m=4,iterations=8/pq:m=4,nbits=6", x, d);
  CHECK(rotated.spec() == "opq:m=4,iterations=8/pq:m=4,nbits=6");
  const double plain_error = test::mean_squared_error(plain, x, d), rotated_error = test::mean_squared_error(rotated, x, d);
  CAPTURE(plain_error);
  CAPTURE(rotated_error);
  CHECK(rotated_error < 0.9 * plain_error);

  // R from the transform applied to the identity; R R^T must be the identity.
  const auto& opq = dynamic_cast<const Transform&>(rotated.stage(0));
  std::vector<float> identity(d * d, 0.0f), r(d * d);
  for (size_t j = 0; j < d; ++j) identity[j * d + j] = 1.0f;
  opq.apply(identity.data(), d, r.data());
  double worst = 0;
  for (size_t a = 0; a < d; ++a)
    for (size_t b = 0; b < d; ++b) {
      double s = 0;
      for (size_t t = 0; t < d; ++t) s += double(r[a * d + t]) * r[b * d + t];
      worst = std::max(worst, std::fabs(s - (a == b ? 1.0 : 0.0)));
    }
  CHECK(worst < 1e-4);
  std::vector<float> back(d * d);
  opq.reconstruct(r.data(), d, back.data());
  for (size_t i = 0; i < d * d; ++i) CHECK(back[i] == doctest::Approx(identity[i]).scale(1).epsilon(1e-4));
}

TEST_CASE("pq and opq: bad arguments give clear errors") {
  auto x = test::clustered_rows(100, 10, 3, 81);
  CHECK_THROWS_WITH_AS(Codec("pq:nbits=3"), doctest::Contains("'pq': nbits=3 is out of range (4..16)"), SpecError);
  CHECK_THROWS_WITH_AS(Codec("pq:nbits=17"), doctest::Contains("'pq': nbits=17 is out of range (4..16)"), SpecError);
  CHECK_THROWS_WITH_AS(Codec("pq:m=-1"), doctest::Contains("m=-1 is out of range"), SpecError);
  CHECK_THROWS_WITH_AS(Codec("opq:m=4"), doctest::Contains("'opq' is a transform"), SpecError);
  CHECK_THROWS_WITH_AS(Codec("pq/pq"), doctest::Contains("only the last stage"), SpecError);
  CHECK_THROWS_WITH_AS(test::trained("pq:m=11", x, 10), doctest::Contains("pq: m=11 sub-quantizers exceed the dimension 10 (m must be in 1..10)"), Error);
  CHECK_THROWS_WITH_AS(test::trained("opq:m=12/pq:m=12", x, 10), doctest::Contains("opq: m=12 sub-vectors exceed the dimension 10"), Error);
  // A rotation fitted for another split: refused when the chain is built, naming both.
  CHECK_THROWS_WITH_AS(Codec("opq:m=8/pq:m=16"), doctest::Contains("opq:m=8 is followed by pq:m=16"), SpecError);
  CHECK_THROWS_WITH_AS(Codec("opq:m=8/pq:m=16"), doctest::Contains("codec spec 'opq:m=8/pq:m=16'"), SpecError);
  CHECK(Codec("opq:m=8/pq:m=8").spec() == "opq:m=8,iterations=20/pq:m=8,nbits=8");
  Codec empty("pq:m=2");
  CHECK_THROWS_WITH_AS(empty.train(x.data(), 0, 10), doctest::Contains("0 training rows"), Error);
  CHECK(Codec("pq").spec() == "pq");
  CHECK(Codec("pq:nbits=4,sdc=on").spec() == "pq:nbits=4,sdc=on");
  CHECK(Codec("opq/pq").spec() == "opq/pq");
}

TEST_CASE("pq: 4-bit fast-scan search (scan layout, candidate bounds) equals the top-k of every row's score") {
  // The engine asks the scorer only for rows above each heap's threshold; the fast-scan scorer
  // answers from its integer bounds. Whatever it rules out must be rows that could not enter:
  // ids and scores equal the best k of score() over all rows, ties by smaller id.
  const size_t n = 3000, d = 32;
  auto x = test::clustered_rows(n, d, 40, 81);
  for (size_t i = 0; i < n; ++i)  // uneven norms, so that cos bounds differ from row to row
    for (size_t j = 0; j < d; ++j) x[i * d + j] *= 0.2f + float(i % 13);
  auto q = test::clustered_rows(37, d, 40, 82);
  for (const char* spec : {"pq:m=16,nbits=4", "pq:m=7,nbits=4"})
    for (Metric metric : {Metric::cos, Metric::ip, Metric::l2}) {
      CAPTURE(std::string(spec));
      CAPTURE(std::string(metric_name(metric)));
      Table table = Table::from_rows(x, d, {}, metric).compress(spec);
      std::vector<uint8_t> codes(n * table.codec().code_size());
      table.codec().encode(x.data(), n, codes.data());
      const size_t nq = q.size() / d;
      std::vector<float> prepared = q;  // as the engine prepares them
      if (metric == Metric::cos) normalize_rows(prepared.data(), nq, d);
      std::vector<float> all(nq * n);
      table.codec().scorer(prepared.data(), nq, metric)->score({codes.data(), n}, all.data(), n);
      for (size_t k : {size_t(1), size_t(10), size_t(200)})
        for (unsigned threads : {1u, 2u}) {
          CAPTURE(k);
          CAPTURE(threads);
          SearchOptions options;
          options.k = k;
          options.threads = threads;
          SearchResult got = table.search(q.data(), nq, options);
          size_t mismatches = 0;
          for (size_t a = 0; a < nq; ++a) {
            std::vector<int64_t> ids(n);
            std::iota(ids.begin(), ids.end(), 0);
            const float* s = all.data() + a * n;
            std::stable_sort(ids.begin(), ids.end(), [&](int64_t i, int64_t j) { return s[i] > s[j]; });
            for (size_t r = 0; r < k; ++r) {
              const float want = metric == Metric::l2 ? std::max(0.f, -s[ids[r]]) : s[ids[r]];
              mismatches += got.ids[a * k + r] != ids[r] || got.scores[a * k + r] != want;
            }
          }
          CHECK(mismatches == 0);
        }
    }
}

namespace {

// The anisotropic loss of a reconstruction y of x: |r|^2 + (eta - 1) (r . x)^2 / |x|^2, r = x - y.
double anisotropic_loss(const float* x, const float* y, size_t d, double eta, double* along_sq) {
  double r_sq = 0, r_x = 0, x_sq = 0;
  for (size_t j = 0; j < d; ++j) {
    const double r = double(x[j]) - y[j];
    r_sq += r * r;
    r_x += r * x[j];
    x_sq += double(x[j]) * x[j];
  }
  *along_sq = r_x * r_x / x_sq;
  return r_sq + (eta - 1) * *along_sq;
}

}  // namespace

TEST_CASE("pq: every ISA's centroid dots and anisotropic argmin match the scalar reference") {
  const auto& reference = *kernels::table_for(kernels::Isa::scalar);
  for (kernels::Isa isa : kernels::supported_isas()) {
    const auto& table = *kernels::table_for(isa);
    CAPTURE(kernels::isa_name(isa));
    for (size_t k : {size_t(16), size_t(256), size_t(1024)})
      for (size_t d : {size_t(1), size_t(3), size_t(4), size_t(9)}) {
        CAPTURE(k);
        CAPTURE(d);
        auto centroids_t = test::clustered_rows(k, d, 7, 300 + d);  // read as d x k
        auto x = test::clustered_rows(1, d, 1, 400 + d);
        std::vector<float> want(k), got(k), norms(k);
        reference.centroid_dots(x.data(), d, centroids_t.data(), k, want.data());
        table.centroid_dots(x.data(), d, centroids_t.data(), k, got.data());
        for (size_t c = 0; c < k; ++c) CHECK(got[c] == doctest::Approx(want[c]).epsilon(1e-5).scale(1));
        for (size_t c = 0; c < k; ++c) {
          norms[c] = 0;
          for (size_t j = 0; j < d; ++j) norms[c] += centroids_t[j * k + c] * centroids_t[j * k + c];
        }
        for (float weight : {0.0f, 0.5f, 3.1f}) {
          const uint32_t a = reference.anisotropic_argmin(want.data(), norms.data(), k, 0.7f, weight);
          const uint32_t b = table.anisotropic_argmin(want.data(), norms.data(), k, 0.7f, weight);
          const auto loss = [&](uint32_t c) { return norms[c] - 2 * want[c] + weight * (0.7f - want[c]) * (0.7f - want[c]); };
          if (a != b) CHECK(std::fabs(loss(a) - loss(b)) < 1e-5f);
          for (size_t c = 0; c < k; ++c) CHECK(loss(b) <= loss(static_cast<uint32_t>(c)) + 1e-5f);
        }
        // Ties go to the smallest index, as in the reference.
        std::vector<float> flat(k, 1.0f), ones(k, 1.0f);
        CHECK(table.anisotropic_argmin(flat.data(), ones.data(), k, 0.0f, 1.0f) == 0);
      }
  }
}

TEST_CASE("pq: the anisotropic loss trades error along each row for error across it, and lifts ip recall") {
  // The GloVe sample, rows scaled to unit length and searched by inner product (where the loss
  // pays; Gaussian clusters show no gain, real embeddings do), 200 of its rows as queries.
  const Table glove = read_table(std::string(VECPACK_TEST_DATA) + "/glove.6B.100d.15k.txt.gz");
  const size_t n = glove.size(), d = glove.dim(), m = 25, nq = 200, k = 10;
  std::vector<float> x = test::unit_rows(test::all_rows(glove), d);
  std::vector<float> q(x.begin() + 1000 * d, x.begin() + (1000 + nq) * d);
  Codec plain = test::trained("pq:m=25", x, d, 1);
  Codec aniso("pq:m=25,loss=aniso");  // t = 0.2: eta = 99 * 0.04 / 0.96 = 4.125
  aniso.train(x.data(), n, d, TrainOptions{});
  const double eta = 4.125;
  std::vector<uint8_t> plain_codes(n * m), aniso_codes(n * m);
  plain.encode(x.data(), n, plain_codes.data());
  aniso.encode(x.data(), n, aniso_codes.data());
  std::vector<float> plain_rows(n * d), aniso_rows(n * d);
  plain.decode(plain_codes.data(), n, plain_rows.data());
  aniso.decode(aniso_codes.data(), n, aniso_rows.data());
  double plain_along = 0, aniso_along = 0;
  size_t worse = 0;
  for (size_t i = 0; i < n; ++i) {
    double a1, a2;
    // Same codebooks (same seed and rows): descent from the nearest centroids never raises the loss.
    const double from_plain = anisotropic_loss(x.data() + i * d, plain_rows.data() + i * d, d, eta, &a1);
    const double from_aniso = anisotropic_loss(x.data() + i * d, aniso_rows.data() + i * d, d, eta, &a2);
    worse += from_aniso > from_plain * (1 + 1e-5) + 1e-9;
    plain_along += a1;
    aniso_along += a2;
  }
  CHECK(worse == 0);
  CAPTURE(plain_along / n);
  CAPTURE(aniso_along / n);
  CHECK(aniso_along < 0.5 * plain_along);  // measured 0.16x

  Table exact = Table::from_rows(x, d, {}, Metric::ip);
  SearchOptions o;
  o.k = k;
  const SearchResult truth = exact.search(q.data(), nq, o);
  CompressOptions compress;
  compress.threads = 1;
  const double plain_recall = test::recall_at(exact.compress("pq:m=25", compress).search(q.data(), nq, o), truth, k);
  const double aniso_recall = test::recall_at(exact.compress("pq:m=25,loss=aniso", compress).search(q.data(), nq, o), truth, k);
  CAPTURE(plain_recall);
  CAPTURE(aniso_recall);
  MESSAGE("ip recall@10: mse " << plain_recall << ", aniso " << aniso_recall);
  CHECK(aniso_recall > plain_recall + 0.02);
}

TEST_CASE("pq: the loss is part of the spec; t and eta need loss=aniso") {
  CHECK(Codec("pq:m=4,loss=aniso").spec() == "pq:m=4,nbits=8,loss=aniso");
  CHECK(Codec("pq:m=4,loss=aniso,t=0.3").spec() == "pq:m=4,nbits=8,loss=aniso,t=0.3");
  CHECK(Codec("pq:m=4,loss=aniso,eta=5").spec() == "pq:m=4,nbits=8,loss=aniso,eta=5");
  CHECK(Codec("pq:m=4,loss=mse").spec() == "pq:m=4,nbits=8");
  CHECK_THROWS_WITH_AS(Codec("pq:m=4,t=0.3"), doctest::Contains("give them with loss=aniso"), SpecError);
  CHECK_THROWS_WITH_AS(Codec("pq:m=4,loss=angle"), doctest::Contains("loss"), SpecError);
  CHECK_THROWS_WITH_AS(Codec("pq:m=4,loss=aniso,t=1"), doctest::Contains("t=1 is out of range"), SpecError);
  // A file keeps the loss, so that rows encoded later are encoded the same way.
  auto x = test::clustered_rows(600, 8, 5, 511);
  Table t = Table::from_rows(x, 8).compress("pq:m=2,loss=aniso,eta=3");
  CHECK(t.spec() == "pq:m=2,nbits=8,loss=aniso,eta=3");
  test::TempDir dir;
  const std::string path = dir.file("aniso.vecpack");
  t.save(path);
  CHECK(Table::open(path).spec() == "pq:m=2,nbits=8,loss=aniso,eta=3");
}
