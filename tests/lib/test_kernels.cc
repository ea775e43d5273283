// Kernel tables: the scalar reference against hand-computed values and independent oracles,
// then every SIMD table this CPU supports against the scalar reference.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "kernels/kernels.h"
#include "kernels/tables.h"

#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
#endif

using namespace vecpack::kernels;

namespace {

constexpr size_t kDims[] = {1, 3, 7, 8, 15, 16, 17, 31, 32, 33, 100, 128, 257};
constexpr size_t kCounts[] = {1, 5, 33};

uint32_t bits_of(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  return bits;
}

float float_of(uint32_t bits) {
  float value;
  std::memcpy(&value, &bits, sizeof value);
  return value;
}

std::string hex(uint32_t value) {
  char text[16];
  std::snprintf(text, sizeof text, "0x%x", value);
  return text;
}

// The SIMD tables this CPU runs; the scalar table is the reference they are compared with.
std::vector<const KernelTable*> simd_tables() {
  std::vector<const KernelTable*> tables;
  for (Isa isa : supported_isas()) {
    if (isa != Isa::scalar) tables.push_back(table_for(isa));
  }
  return tables;
}

std::vector<float> random_floats(std::mt19937& rng, size_t n, float low, float high) {
  std::uniform_real_distribution<float> dist(low, high);
  std::vector<float> values(n);
  for (float& v : values) v = dist(rng);
  return values;
}

// Value of a binary16 pattern computed in double from the definition of the format.
double half_value(uint16_t half) {
  const int exponent = (half >> 10) & 0x1f;
  const int mantissa = half & 0x3ff;
  const double sign = (half & 0x8000) != 0 ? -1.0 : 1.0;
  if (exponent == 0x1f) return mantissa == 0 ? sign * INFINITY : NAN;
  if (exponent == 0) return sign * std::ldexp(mantissa, -24);
  return sign * std::ldexp(1024 + mantissa, exponent - 25);
}

// Checks that `encoded` is the round-to-nearest-even 16-bit encoding of the non-NaN x, given a
// decoder of positive patterns and the format's infinity pattern.
template <class Decode>
bool is_nearest_even(float x, uint16_t encoded, Decode decode, uint16_t inf_bits) {
  const uint16_t sign = static_cast<uint16_t>((bits_of(x) >> 31) != 0 ? 0x8000 : 0);
  if ((encoded & 0x8000) != sign) return false;
  const uint16_t magnitude = encoded & 0x7fff;
  const double target = std::fabs(static_cast<double>(x));
  if (magnitude > inf_bits) return false;
  if (std::isinf(x)) return magnitude == inf_bits;
  if (magnitude == inf_bits) {
    // Finite x may only become infinity when it is at least halfway past the largest finite.
    const double largest = decode(static_cast<uint16_t>(inf_bits - 1));
    const double next = 2.0 * largest - decode(static_cast<uint16_t>(inf_bits - 2));
    return target >= (largest + next) / 2;
  }
  const double value = decode(magnitude);
  const double error = std::fabs(target - value);
  if (magnitude > 0) {
    const double below = std::fabs(target - decode(static_cast<uint16_t>(magnitude - 1)));
    if (below < error || (below == error && (magnitude & 1) != 0)) return false;
  }
  const double above_value = magnitude + 1 == inf_bits ? 2.0 * value - decode(static_cast<uint16_t>(magnitude - 1))
                                                       : decode(static_cast<uint16_t>(magnitude + 1));
  const double above = std::fabs(target - above_value);
  if (above < error || (above == error && (magnitude & 1) != 0)) return false;
  return true;
}

// Floats covering every exponent and sign of the float format, with low mantissa bits chosen
// to land exactly on, just below and just above the rounding points of f16 (13 dropped bits)
// and bf16 (16 dropped bits), plus a few random ones.
std::vector<float> encode_samples() {
  static const uint32_t kLowBits[] = {0x0000, 0x0001, 0x0fff, 0x1000, 0x1001, 0x1fff, 0x2000,
                                      0x3000, 0x7fff, 0x8000, 0x8001, 0xffff};
  std::mt19937 rng(1234);
  std::vector<float> samples;
  samples.reserve(65536 * 14);
  for (uint32_t high = 0; high < 65536; ++high) {
    for (uint32_t low : kLowBits) samples.push_back(float_of((high << 16) | low));
    samples.push_back(float_of((high << 16) | (rng() & 0xffff)));
    samples.push_back(float_of((high << 16) | (rng() & 0xffff)));
  }
  return samples;
}

std::vector<float> special_values() {
  return {0.0f,
          -0.0f,
          1.0f,
          -1.0f,
          0.1f,
          65504.0f,
          65519.0f,
          65519.996f,
          65520.0f,
          65536.0f,
          -65520.0f,
          1e10f,
          std::numeric_limits<float>::max(),
          std::numeric_limits<float>::lowest(),
          std::numeric_limits<float>::infinity(),
          -std::numeric_limits<float>::infinity(),
          std::numeric_limits<float>::quiet_NaN(),
          -std::numeric_limits<float>::quiet_NaN(),
          std::numeric_limits<float>::signaling_NaN(),
          float_of(0x7f800001),
          float_of(0xffc00001),
          std::numeric_limits<float>::denorm_min(),
          std::numeric_limits<float>::min(),
          0x1p-24f,
          0x1p-25f,
          std::nextafter(0x1p-25f, 1.0f),
          std::nextafter(0x1p-25f, 0.0f),
          3 * 0x1p-25f,
          5 * 0x1p-25f,
          1023 * 0x1p-24f,
          0x1p-14f,
          std::nextafter(0x1p-14f, 0.0f),
          1.0f + 0x1p-11f,
          1.0f + 3 * 0x1p-11f,
          1.0f + 0x1p-8f,
          1.0f + 3 * 0x1p-8f,
          2049.0f,
          2051.0f,
          -2049.0f};
}

template <class Encode>
void check_encode_matches(const KernelTable& table, Encode encode_member, const std::vector<float>& input,
                          const std::string& what) {
  std::vector<uint16_t> expected(input.size()), got(input.size());
  (scalar_table().*encode_member)(input.data(), input.size(), expected.data());
  (table.*encode_member)(input.data(), input.size(), got.data());
  size_t mismatches = 0;
  size_t first = 0;
  for (size_t i = 0; i < input.size(); ++i) {
    if (expected[i] != got[i] && mismatches++ == 0) first = i;
  }
  INFO(std::string(isa_name(table.isa)), " ", what, ": first mismatch for float bits ", hex(bits_of(input[first])),
       ": got ", hex(got[first]), ", expected ", hex(expected[first]));
  CHECK(mismatches == 0);
}

// Relative closeness for sums: the error bound scales with the sum of absolute terms.
bool close_sum(float got, float expected, double abs_terms) {
  return std::fabs(static_cast<double>(got) - expected) <= 1e-5 * abs_terms + 1e-30;
}

struct RowCase {
  std::vector<float> q;
  std::vector<float> low;
  std::vector<float> step;
  std::vector<float> f32_rows;
  std::vector<uint16_t> f16_rows;
  std::vector<uint16_t> bf16_rows;
  std::vector<uint8_t> codes;
};

RowCase make_rows(size_t count, size_t d, uint32_t seed) {
  std::mt19937 rng(seed);
  RowCase c;
  // One leading element so the row data starts off any vector alignment.
  c.q = random_floats(rng, d + 1, -1.0f, 1.0f);
  c.low = random_floats(rng, d + 1, -1.0f, 0.0f);
  c.step = random_floats(rng, d + 1, 0.0f, 0.01f);
  c.f32_rows = random_floats(rng, count * d + 1, -2.0f, 2.0f);
  c.f16_rows.resize(count * d + 1);
  scalar_table().f32_to_f16(c.f32_rows.data(), c.f32_rows.size(), c.f16_rows.data());
  c.bf16_rows.resize(count * d + 1);
  scalar_table().f32_to_bf16(c.f32_rows.data(), c.f32_rows.size(), c.bf16_rows.data());
  c.codes.resize(count * d + 1);
  for (uint8_t& code : c.codes) code = static_cast<uint8_t>(rng());
  return c;
}

// Compares a table's dot (and sq) outputs with the reference's. row_value(i, j) is element j of
// row i as decoded by the reference, which scales the tolerance.
template <class RowValue>
void check_dots(const std::string& what, const KernelTable& table, size_t count, size_t d, const float* q,
                RowValue row_value, const std::vector<float>& expected_dot, const std::vector<float>& expected_sq,
                const std::vector<float>& dot, const std::vector<float>& sq, bool with_sq) {
  for (size_t i = 0; i < count; ++i) {
    double abs_dot = 0.0;
    double sum_sq = 0.0;
    for (size_t j = 0; j < d; ++j) {
      const double x = row_value(i, j);
      abs_dot += std::fabs(q[j] * x);
      sum_sq += x * x;
    }
    INFO(std::string(isa_name(table.isa)), " ", what, " count=", count, " d=", d, " row=", i, " sq=", with_sq);
    CHECK_MESSAGE(close_sum(dot[i], expected_dot[i], abs_dot), "dot ", dot[i], " vs ", expected_dot[i]);
    if (with_sq) CHECK_MESSAGE(close_sum(sq[i], expected_sq[i], sum_sq), "sq ", sq[i], " vs ", expected_sq[i]);
  }
  // Nothing written past count.
  CHECK(dot[count] == -7.0f);
  CHECK(sq[count] == -7.0f);
}

}  // namespace

TEST_CASE("kernels: ISA names round trip") {
  for (Isa isa : {Isa::scalar, Isa::sse42, Isa::avx2, Isa::avx512}) {
    const auto parsed = isa_from_name(isa_name(isa));
    REQUIRE(parsed.has_value());
    CHECK(*parsed == isa);
  }
  CHECK(std::string(isa_name(Isa::sse42)) == "sse4.2");
  CHECK(isa_from_name("sse42") == Isa::sse42);
  CHECK_FALSE(isa_from_name("").has_value());
  CHECK_FALSE(isa_from_name("avx").has_value());
  CHECK_FALSE(isa_from_name("AVX2").has_value());
  CHECK_FALSE(isa_from_name("avx512f").has_value());
}

TEST_CASE("kernels: VECPACK_FORCE_ISA selection") {
  const std::vector<Isa> cpu = {Isa::avx2, Isa::sse42, Isa::scalar};
  std::string note = "stale";
  CHECK(choose_isa(nullptr, cpu, &note) == Isa::avx2);
  CHECK(note.empty());
  CHECK(choose_isa("", cpu, &note) == Isa::avx2);
  CHECK(note.empty());
  CHECK(choose_isa("scalar", cpu, &note) == Isa::scalar);
  CHECK(note.empty());
  CHECK(choose_isa("sse4.2", cpu, &note) == Isa::sse42);
  CHECK(choose_isa("avx2", cpu, &note) == Isa::avx2);
  CHECK(note.empty());

  CHECK(choose_isa("avx512", cpu, &note) == Isa::avx2);
  CHECK(note.find("not supported") != std::string::npos);
  CHECK(note.find("using avx2") != std::string::npos);
  CHECK(choose_isa("neon", cpu, &note) == Isa::avx2);
  CHECK(note.find("neon") != std::string::npos);
  CHECK(choose_isa("avx512", {Isa::scalar}, nullptr) == Isa::scalar);
}

TEST_CASE("kernels: supported ISAs and the active table") {
  const std::vector<Isa> isas = supported_isas();
  REQUIRE_FALSE(isas.empty());
  CHECK(isas.back() == Isa::scalar);
  for (size_t i = 0; i < isas.size(); ++i) {
    const KernelTable* table = table_for(isas[i]);
    REQUIRE(table != nullptr);
    CHECK(table->isa == isas[i]);
    if (i > 0) CHECK(static_cast<int>(isas[i - 1]) > static_cast<int>(isas[i]));
  }
  CHECK(table_for(Isa::scalar) == &scalar_table());

  const char* forced = std::getenv("VECPACK_FORCE_ISA");
  const std::optional<Isa> requested = forced != nullptr ? isa_from_name(forced) : std::nullopt;
  bool honoured = false;
  for (Isa isa : isas) honoured = honoured || (requested && *requested == isa);
  INFO("active: ", std::string(isa_name(active().isa)), ", VECPACK_FORCE_ISA=", std::string(forced ? forced : ""));
  CHECK(active().isa == (honoured ? *requested : isas.front()));
  CHECK(&active() == &active());
}

TEST_CASE("kernels: scalar reference against hand-computed values") {
  const KernelTable& k = scalar_table();
  float dot[2] = {0, 0};
  float sq[2] = {0, 0};

  const float q[3] = {1, 2, 3};
  const float rows[6] = {4, -5, 6, 0.5f, 0.25f, -1};
  k.dot_f32_rows(q, rows, 2, 3, dot, sq);
  CHECK(dot[0] == 12.0f);
  CHECK(sq[0] == 77.0f);
  CHECK(dot[1] == -2.0f);
  CHECK(sq[1] == 1.3125f);

  const float q16[3] = {1, 2, 4};
  const uint16_t halves[3] = {0x3c00, 0xc000, 0x3800};  // 1, -2, 0.5
  k.dot_f16_rows(q16, halves, 1, 3, dot, nullptr);
  CHECK(dot[0] == -1.0f);
  k.dot_f16_rows(q16, halves, 1, 3, dot, sq);
  CHECK(sq[0] == 5.25f);

  const float qb[3] = {2, 1, 2};
  const uint16_t bfloats[3] = {0x3f80, 0x4040, 0xbf00};  // 1, 3, -0.5
  k.dot_bf16_rows(qb, bfloats, 1, 3, dot, sq);
  CHECK(dot[0] == 4.0f);
  CHECK(sq[0] == 10.25f);

  const float qu[2] = {3, 5};
  const float low[2] = {-1, 0};
  const float step[2] = {0.5f, 0.25f};
  const uint8_t codes[4] = {2, 8, 0, 255};  // rows (0, 2) and (-1, 63.75)
  k.dot_u8_affine_rows(qu, low, step, codes, 2, 2, dot, sq);
  CHECK(dot[0] == 10.0f);
  CHECK(sq[0] == 4.0f);
  CHECK(dot[1] == 315.75f);
  CHECK(sq[1] == 1.0f + 63.75f * 63.75f);
  float decoded[4];
  k.u8_affine_decode(codes, 2, 2, low, step, decoded);
  CHECK(decoded[0] == 0.0f);
  CHECK(decoded[1] == 2.0f);
  CHECK(decoded[2] == -1.0f);
  CHECK(decoded[3] == 63.75f);

  const float values[4] = {-3, 7.5f, 2, 7.25f};
  CHECK(k.max_f32(values, 4) == 7.5f);
  CHECK(k.max_f32(values, 1) == -3.0f);

  struct HalfCase {
    float value;
    uint16_t half;
  };
  const HalfCase encodes[] = {
      {1.0f, 0x3c00},           {-2.0f, 0xc000},          {0.1f, 0x2e66},
      {0.5f, 0x3800},           {65504.0f, 0x7bff},       {65519.0f, 0x7bff},
      {65520.0f, 0x7c00},       {-65520.0f, 0xfc00},      {1e10f, 0x7c00},
      {0.0f, 0x0000},           {-0.0f, 0x8000},          {0x1p-24f, 0x0001},
      {0x1p-25f, 0x0000},       {3 * 0x1p-25f, 0x0002},   {5 * 0x1p-25f, 0x0002},
      {1023 * 0x1p-24f, 0x03ff}, {0x1p-14f, 0x0400},       {1e-10f, 0x0000},
      {-1e-10f, 0x8000},        {1.0f + 0x1p-11f, 0x3c00}, {1.0f + 3 * 0x1p-11f, 0x3c02},
      {2049.0f, 0x6800},        {2051.0f, 0x6802},        {std::nextafter(0x1p-25f, 1.0f), 0x0001},
      {INFINITY, 0x7c00},       {-INFINITY, 0xfc00},
  };
  for (const HalfCase& c : encodes) {
    uint16_t half = 0;
    k.f32_to_f16(&c.value, 1, &half);
    INFO("value ", c.value);
    CHECK(half == c.half);
  }
  const HalfCase decodes[] = {{1.0f, 0x3c00},       {-2.0f, 0xc000},    {65504.0f, 0x7bff}, {0x1p-24f, 0x0001},
                              {0x1p-14f, 0x0400},   {-0.0f, 0x8000},    {INFINITY, 0x7c00}, {-INFINITY, 0xfc00},
                              {0.333251953125f, 0x3555}, {1023 * 0x1p-24f, 0x03ff}};
  for (const HalfCase& c : decodes) {
    float value = 0;
    k.f16_to_f32(&c.half, 1, &value);
    INFO("half ", hex(c.half));
    CHECK(bits_of(value) == bits_of(c.value));
  }

  float nan_in[3] = {NAN, float_of(0x7f800001), float_of(0xffc00001)};
  uint16_t nan_half[3];
  k.f32_to_f16(nan_in, 3, nan_half);
  CHECK(nan_half[0] == 0x7e00);
  CHECK(nan_half[1] == 0x7e00);  // signalling NaN comes out quiet
  CHECK(nan_half[2] == 0xfe00);
  uint16_t nan_bf[3];
  k.f32_to_bf16(nan_in, 3, nan_bf);
  CHECK(nan_bf[0] == 0x7fc0);
  CHECK(nan_bf[1] == 0x7fc0);
  CHECK(nan_bf[2] == 0xffc0);
  const uint16_t half_nans[2] = {0x7c01, 0xfe00};
  float nan_out[2];
  k.f16_to_f32(half_nans, 2, nan_out);
  CHECK(bits_of(nan_out[0]) == 0x7fc02000);  // made quiet, payload kept
  CHECK(bits_of(nan_out[1]) == 0xffc00000);

  const float bf_in[6] = {1.0f, -0.0f, 1.0f + 0x1p-8f, 1.0f + 3 * 0x1p-8f, std::numeric_limits<float>::max(), 3.0f};
  const uint16_t bf_expected[6] = {0x3f80, 0x8000, 0x3f80, 0x3f82, 0x7f80, 0x4040};
  uint16_t bf_out[6];
  k.f32_to_bf16(bf_in, 6, bf_out);
  for (int i = 0; i < 6; ++i) CHECK(bf_out[i] == bf_expected[i]);
  const uint16_t bf_bits[3] = {0x3f80, 0xc040, 0x7f80};
  float bf_values[3];
  k.bf16_to_f32(bf_bits, 3, bf_values);
  CHECK(bf_values[0] == 1.0f);
  CHECK(bf_values[1] == -3.0f);
  CHECK(bf_values[2] == INFINITY);
}

TEST_CASE("kernels: scalar f16 decode agrees with the format definition for every pattern") {
  std::vector<uint16_t> all(65536);
  for (uint32_t h = 0; h < 65536; ++h) all[h] = static_cast<uint16_t>(h);
  std::vector<float> out(65536);
  scalar_table().f16_to_f32(all.data(), all.size(), out.data());
  size_t wrong = 0;
  for (uint32_t h = 0; h < 65536; ++h) {
    const double expected = half_value(static_cast<uint16_t>(h));
    bool ok;
    if (std::isnan(expected)) {
      // NaN, made quiet, sign and payload kept.
      ok = bits_of(out[h]) == (((h & 0x8000u) << 16) | 0x7fc00000u | ((h & 0x3ffu) << 13));
    } else {
      ok = static_cast<double>(out[h]) == expected && std::signbit(out[h]) == ((h & 0x8000) != 0);
    }
    if (!ok) ++wrong;
  }
  CHECK(wrong == 0);
}

TEST_CASE("kernels: scalar f16 and bf16 encode round to nearest even") {
  const KernelTable& k = scalar_table();
  std::vector<float> input = encode_samples();
  const std::vector<float> specials = special_values();
  input.insert(input.end(), specials.begin(), specials.end());
  std::vector<uint16_t> halves(input.size()), bfloats(input.size());
  k.f32_to_f16(input.data(), input.size(), halves.data());
  k.f32_to_bf16(input.data(), input.size(), bfloats.data());

  const auto bf16_value = [](uint16_t bits) {
    return static_cast<double>(float_of(static_cast<uint32_t>(bits) << 16));
  };
  size_t wrong_half = 0;
  size_t wrong_bf16 = 0;
  for (size_t i = 0; i < input.size(); ++i) {
    const float x = input[i];
    if (std::isnan(x)) {
      const uint32_t bits = bits_of(x);
      const uint16_t sign = static_cast<uint16_t>((bits >> 16) & 0x8000);
      if (halves[i] != (sign | 0x7e00 | ((bits >> 13) & 0x3ff))) ++wrong_half;
      if (bfloats[i] != ((bits >> 16) | 0x0040)) ++wrong_bf16;
      continue;
    }
    if (!is_nearest_even(x, halves[i], half_value, 0x7c00)) ++wrong_half;
    if (!is_nearest_even(x, bfloats[i], bf16_value, 0x7f80)) ++wrong_bf16;
  }
  CHECK(wrong_half == 0);
  CHECK(wrong_bf16 == 0);
}

TEST_CASE("kernels: every ISA decodes all f16 and bf16 patterns exactly like the reference") {
  std::vector<uint16_t> all(65536);
  for (uint32_t h = 0; h < 65536; ++h) all[h] = static_cast<uint16_t>(h);
  std::vector<float> expected_f16(65536), expected_bf16(65536);
  scalar_table().f16_to_f32(all.data(), all.size(), expected_f16.data());
  scalar_table().bf16_to_f32(all.data(), all.size(), expected_bf16.data());
  for (uint32_t h = 0; h < 65536; ++h) REQUIRE(bits_of(expected_bf16[h]) == h << 16);

  for (const KernelTable* table : simd_tables()) {
    std::vector<float> got(65536);
    table->f16_to_f32(all.data(), all.size(), got.data());
    size_t wrong = 0;
    for (uint32_t h = 0; h < 65536; ++h) wrong += bits_of(got[h]) != bits_of(expected_f16[h]);
    INFO(std::string(isa_name(table->isa)), " f16");
    CHECK(wrong == 0);

    table->bf16_to_f32(all.data(), all.size(), got.data());
    wrong = 0;
    for (uint32_t h = 0; h < 65536; ++h) wrong += bits_of(got[h]) != bits_of(expected_bf16[h]);
    INFO(std::string(isa_name(table->isa)), " bf16");
    CHECK(wrong == 0);

    // Short and odd lengths go through the tail path; nothing past n may be written.
    for (size_t n = 1; n <= 40; ++n) {
      std::vector<float> out(n + 1, -7.0f);
      table->f16_to_f32(all.data() + 0x3bf0, n, out.data());
      for (size_t i = 0; i < n; ++i) CHECK(bits_of(out[i]) == bits_of(expected_f16[0x3bf0 + i]));
      CHECK(out[n] == -7.0f);
      table->bf16_to_f32(all.data() + 0xbf70, n, out.data());
      for (size_t i = 0; i < n; ++i) CHECK(bits_of(out[i]) == bits_of(expected_bf16[0xbf70 + i]));
      CHECK(out[n] == -7.0f);
    }
  }
}

TEST_CASE("kernels: every ISA encodes f16 and bf16 exactly like the reference") {
  const std::vector<float> samples = encode_samples();
  const std::vector<float> specials = special_values();
  for (const KernelTable* table : simd_tables()) {
    check_encode_matches(*table, &KernelTable::f32_to_f16, specials, "f16 specials");
    check_encode_matches(*table, &KernelTable::f32_to_bf16, specials, "bf16 specials");
    check_encode_matches(*table, &KernelTable::f32_to_f16, samples, "f16 samples");
    check_encode_matches(*table, &KernelTable::f32_to_bf16, samples, "bf16 samples");
    for (size_t n = 1; n <= specials.size(); ++n) {
      std::vector<uint16_t> out(n + 1, 0xabcd), expected(n);
      scalar_table().f32_to_f16(specials.data(), n, expected.data());
      table->f32_to_f16(specials.data(), n, out.data());
      for (size_t i = 0; i < n; ++i) CHECK(out[i] == expected[i]);
      CHECK(out[n] == 0xabcd);
      scalar_table().f32_to_bf16(specials.data(), n, expected.data());
      table->f32_to_bf16(specials.data(), n, out.data());
      for (size_t i = 0; i < n; ++i) CHECK(out[i] == expected[i]);
      CHECK(out[n] == 0xabcd);
    }
  }
}

TEST_CASE("kernels: every ISA's dot products match the reference") {
  const KernelTable& ref = scalar_table();
  for (const KernelTable* table : simd_tables()) {
    for (size_t d : kDims) {
      for (size_t count : kCounts) {
        const RowCase c = make_rows(count, d, static_cast<uint32_t>(d * 1000 + count));
        const float* q = c.q.data() + 1;
        const float* low = c.low.data() + 1;
        const float* step = c.step.data() + 1;
        const float* f32_rows = c.f32_rows.data() + 1;
        const uint16_t* f16_rows = c.f16_rows.data() + 1;
        const uint16_t* bf16_rows = c.bf16_rows.data() + 1;
        const uint8_t* codes = c.codes.data() + 1;

        for (bool with_sq : {false, true}) {
          std::vector<float> expected_dot(count + 1), expected_sq(count + 1);
          std::vector<float> dot(count + 1, -7.0f), sq(count + 1, -7.0f);
          float* sq_out = with_sq ? sq.data() : nullptr;

          auto run = [&](auto fn_ref, auto fn) {
            std::fill(dot.begin(), dot.end(), -7.0f);
            std::fill(sq.begin(), sq.end(), -7.0f);
            fn_ref(expected_dot.data(), expected_sq.data());
            fn(dot.data(), sq_out);
          };

          run([&](float* o, float* s) { ref.dot_f32_rows(q, f32_rows, count, d, o, s); },
              [&](float* o, float* s) { table->dot_f32_rows(q, f32_rows, count, d, o, s); });
          check_dots("f32", *table, count, d, q, [&](size_t i, size_t j) { return f32_rows[i * d + j]; },
                     expected_dot, expected_sq, dot, sq, with_sq);

          std::vector<float> decoded(count * d);
          ref.f16_to_f32(f16_rows, count * d, decoded.data());
          run([&](float* o, float* s) { ref.dot_f16_rows(q, f16_rows, count, d, o, s); },
              [&](float* o, float* s) { table->dot_f16_rows(q, f16_rows, count, d, o, s); });
          check_dots("f16", *table, count, d, q, [&](size_t i, size_t j) { return decoded[i * d + j]; },
                     expected_dot, expected_sq, dot, sq, with_sq);

          ref.bf16_to_f32(bf16_rows, count * d, decoded.data());
          run([&](float* o, float* s) { ref.dot_bf16_rows(q, bf16_rows, count, d, o, s); },
              [&](float* o, float* s) { table->dot_bf16_rows(q, bf16_rows, count, d, o, s); });
          check_dots("bf16", *table, count, d, q, [&](size_t i, size_t j) { return decoded[i * d + j]; },
                     expected_dot, expected_sq, dot, sq, with_sq);

          ref.u8_affine_decode(codes, count, d, low, step, decoded.data());
          run([&](float* o, float* s) { ref.dot_u8_affine_rows(q, low, step, codes, count, d, o, s); },
              [&](float* o, float* s) { table->dot_u8_affine_rows(q, low, step, codes, count, d, o, s); });
          check_dots("u8", *table, count, d, q, [&](size_t i, size_t j) { return decoded[i * d + j]; },
                     expected_dot, expected_sq, dot, sq, with_sq);
        }
      }
    }
  }
}

TEST_CASE("kernels: every ISA's u8 affine decode and max match the reference") {
  for (const KernelTable* table : simd_tables()) {
    for (size_t d : kDims) {
      for (size_t count : kCounts) {
        const RowCase c = make_rows(count, d, static_cast<uint32_t>(d * 7 + count));
        const float* low = c.low.data() + 1;
        const float* step = c.step.data() + 1;
        const uint8_t* codes = c.codes.data() + 1;
        std::vector<float> expected(count * d), got(count * d + 1, -7.0f);
        scalar_table().u8_affine_decode(codes, count, d, low, step, expected.data());
        table->u8_affine_decode(codes, count, d, low, step, got.data());
        size_t wrong = 0;
        for (size_t i = 0; i < count * d; ++i) {
          // A fused multiply-add may differ from the reference by the rounding of the product.
          const size_t j = i % d;
          const double scale = std::fabs(low[j]) + std::fabs(step[j] * codes[i]);
          wrong += std::fabs(static_cast<double>(got[i]) - expected[i]) > 0x1p-23 * scale;
        }
        INFO(std::string(isa_name(table->isa)), " d=", d, " count=", count);
        CHECK(wrong == 0);
        CHECK(got[count * d] == -7.0f);
      }
    }

    std::mt19937 rng(99);
    for (size_t n = 1; n <= 300; n += (n < 40 ? 1 : 13)) {
      for (size_t trial = 0; trial < 4; ++trial) {
        std::vector<float> x = random_floats(rng, n, -100.0f, 100.0f);
        // Put the maximum at the first, last and a random position.
        const size_t where = trial == 0 ? 0 : trial == 1 ? n - 1 : rng() % n;
        x[where] = 1000.0f + static_cast<float>(trial);
        INFO(std::string(isa_name(table->isa)), " n=", n, " where=", where);
        CHECK(table->max_f32(x.data(), n) == scalar_table().max_f32(x.data(), n));
        CHECK(table->max_f32(x.data(), n) == x[where]);
      }
    }
    const float negatives[5] = {-5, -4, -9, -3.5f, -8};
    CHECK(table->max_f32(negatives, 5) == -3.5f);
  }
}

#if defined(__x86_64__) || defined(__i386__)
TEST_CASE("kernels: f16 and bf16 conversions ignore DAZ, FTZ and the rounding mode") {
  // Libraries built with -ffast-math set DAZ and FTZ for the whole process; callers may also
  // change the rounding mode. Conversions must give the same bits regardless.
  std::vector<uint16_t> all(65536);
  for (uint32_t h = 0; h < 65536; ++h) all[h] = static_cast<uint16_t>(h);
  std::vector<float> samples = encode_samples();
  const std::vector<float> specials = special_values();
  samples.insert(samples.end(), specials.begin(), specials.end());

  std::vector<float> expected_f16(65536), expected_bf16(65536);
  std::vector<uint16_t> expected_half(samples.size()), expected_bfloat(samples.size());
  scalar_table().f16_to_f32(all.data(), all.size(), expected_f16.data());
  scalar_table().bf16_to_f32(all.data(), all.size(), expected_bf16.data());
  scalar_table().f32_to_f16(samples.data(), samples.size(), expected_half.data());
  scalar_table().f32_to_bf16(samples.data(), samples.size(), expected_bfloat.data());

  const unsigned saved = _mm_getcsr();
  const auto control_kept = [](unsigned mode) { return (_mm_getcsr() & ~0x3fu) == (mode & ~0x3fu); };
  const unsigned modes[] = {saved | 0x8040u,                      // FTZ | DAZ
                            (saved & ~0x6000u) | 0x6000u,         // round toward zero
                            (saved & ~0x6000u) | 0x2000u | 0x8040u};  // round down, FTZ | DAZ
  for (unsigned mode : modes) {
    for (Isa isa : supported_isas()) {
      const KernelTable& table = *table_for(isa);
      std::vector<float> decoded(65536);
      std::vector<uint16_t> encoded(samples.size());
      size_t wrong_f16 = 0, wrong_bf16 = 0, wrong_half = 0, wrong_bfloat = 0;
      bool mode_kept = true;

      _mm_setcsr(mode);
      table.f16_to_f32(all.data(), all.size(), decoded.data());
      mode_kept = mode_kept && control_kept(mode);
      for (uint32_t h = 0; h < 65536; ++h) wrong_f16 += bits_of(decoded[h]) != bits_of(expected_f16[h]);
      table.bf16_to_f32(all.data(), all.size(), decoded.data());
      for (uint32_t h = 0; h < 65536; ++h) wrong_bf16 += bits_of(decoded[h]) != bits_of(expected_bf16[h]);
      table.f32_to_f16(samples.data(), samples.size(), encoded.data());
      mode_kept = mode_kept && control_kept(mode);
      for (size_t i = 0; i < samples.size(); ++i) wrong_half += encoded[i] != expected_half[i];
      table.f32_to_bf16(samples.data(), samples.size(), encoded.data());
      for (size_t i = 0; i < samples.size(); ++i) wrong_bfloat += encoded[i] != expected_bfloat[i];
      _mm_setcsr(saved);

      INFO(std::string(isa_name(isa)), " mxcsr=", hex(mode));
      CHECK(wrong_f16 == 0);
      CHECK(wrong_bf16 == 0);
      CHECK(wrong_half == 0);
      CHECK(wrong_bfloat == 0);
      CHECK(mode_kept);
    }
  }
}
#endif

TEST_CASE("kernels: Hamming and bit-plane popcounts of every ISA equal a bit-by-bit count") {
  std::mt19937_64 rng(42);
  for (size_t words : {1, 2, 3, 9, 17}) {
    for (size_t stride_extra : {0, 6}) {  // packed rows, and rows with trailing bytes (unaligned)
      const size_t stride = words * 8 + stride_extra, count = 37;
      std::vector<uint8_t> codes(stride * count + 8);
      for (auto& byte : codes) byte = static_cast<uint8_t>(rng());
      std::vector<uint64_t> query(words), planes(8 * words);
      for (auto& w : query) w = rng();
      for (auto& w : planes) w = rng();
      auto bit = [&](const uint8_t* row, size_t j) { return (row[j / 8] >> (j % 8)) & 1u; };
      auto query_bit = [&](const uint64_t* q, size_t j) { return (q[j / 64] >> (j % 64)) & 1u; };
      std::vector<float> expect_hamming(count), expect_planes(count), expect_pop(count);
      for (size_t i = 0; i < count; ++i) {
        const uint8_t* row = codes.data() + i * stride;
        uint32_t h = 0, sum = 0, pop = 0;
        for (size_t j = 0; j < words * 64; ++j) {
          h += bit(row, j) ^ query_bit(query.data(), j);
          pop += bit(row, j);
          for (size_t k = 0; k < 5; ++k) sum += (bit(row, j) & query_bit(planes.data() + k * words, j)) << k;
        }
        expect_hamming[i] = -2.f * h + 1.f;
        expect_planes[i] = float(sum);
        expect_pop[i] = float(pop);
      }
      std::vector<const KernelTable*> tables = {&scalar_table()};
      for (Isa isa : supported_isas())
        if (isa != Isa::scalar) tables.push_back(table_for(isa));
      for (const KernelTable* table : tables) {
        CAPTURE(isa_name(table->isa));
        CAPTURE(words);
        CAPTURE(stride);
        std::vector<float> out(count), pop(count);
        table->hamming_rows(query.data(), codes.data(), stride, count, words, -2.f, 1.f, out.data());
        CHECK(out == expect_hamming);
        table->bitplane_rows(planes.data(), 5, codes.data(), stride, count, words, out.data(), pop.data());
        CHECK(out == expect_planes);
        CHECK(pop == expect_pop);
      }
    }
  }
}

TEST_CASE("kernels: every ISA selects exactly the scores above a threshold, in order") {
  std::mt19937 rng(3);
  std::uniform_int_distribution<int> level(-8, 8);  // many ties with the threshold
  for (size_t n : {1, 7, 16, 17, 64, 100, 1000}) {
    std::vector<float> x(n);
    for (auto& v : x) v = float(level(rng));
    x[n / 2] = NAN;  // never selected
    for (float threshold : {-9.f, 0.f, 3.f, 8.f}) {
      std::vector<uint32_t> expect;
      for (size_t i = 0; i < n; ++i)
        if (x[i] > threshold) expect.push_back(uint32_t(i));
      std::vector<const KernelTable*> tables = {&scalar_table()};
      for (Isa isa : supported_isas())
        if (isa != Isa::scalar) tables.push_back(table_for(isa));
      for (const KernelTable* table : tables) {
        CAPTURE(isa_name(table->isa));
        CAPTURE(n);
        std::vector<uint32_t> got(n);
        got.resize(table->select_above(x.data(), n, threshold, got.data()));
        CHECK(got == expect);
      }
    }
  }
}
