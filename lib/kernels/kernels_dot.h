// Kernels: dot products of float queries with f32, f16, bf16 and u8-affine rows. Part of
// kernels_impl.h (templates on an xsimd architecture, internal linkage), which includes it after
// the per-ISA helpers; not a header of its own.
#pragma once

namespace vecpack::kernels {
namespace {

// ------------------------------------------------------------------------------ dot products
// A group of Rows consecutive rows shares each load of q (and of the per-column terms); every
// row keeps Unroll independent accumulators per sum so that FMA latency is hidden.
template <class Arch, size_t Rows, size_t Unroll, bool WithSq, class Source>
[[gnu::always_inline]] inline void dot_row_group(const Source& source, const float* q,
                                                 const typename Source::element* first_row, size_t d,
                                                 float* dot, float* sq) {
  using floats = xsimd::batch<float, Arch>;
  constexpr size_t width = floats::size;
  std::array<floats, Rows * Unroll> dot_acc;
  std::array<floats, Rows * Unroll> sq_acc;
  unrolled<Rows * Unroll>([&](auto k) {
    dot_acc[k] = floats(0.0f);
    if constexpr (WithSq) sq_acc[k] = floats(0.0f);
  });

  auto accumulate_column = [&](size_t j, auto u) __attribute__((always_inline)) {
    const floats query = floats::load_unaligned(q + j);
    const auto terms = source.column(j);
    unrolled<Rows>([&](auto r) {
      const floats x = source.load(first_row + r * d, j, terms);
      dot_acc[r * Unroll + u] = xsimd::fma(query, x, dot_acc[r * Unroll + u]);
      if constexpr (WithSq) sq_acc[r * Unroll + u] = xsimd::fma(x, x, sq_acc[r * Unroll + u]);
    });
  };

  size_t j = 0;
  for (; j + Unroll * width <= d; j += Unroll * width) {
    unrolled<Unroll>([&](auto u) { accumulate_column(j + u * width, u); });
  }
  for (; j + width <= d; j += width) accumulate_column(j, index_constant<0>{});

  unrolled<Rows>([&](auto r) {
    const typename Source::element* row = first_row + r * d;
    floats dot_total = dot_acc[r * Unroll];
    unrolled<Unroll - 1>([&](auto u) { dot_total += dot_acc[r * Unroll + u + 1]; });
    float dot_sum = xsimd::hadd(dot_total);
    float sq_sum = 0.0f;
    if constexpr (WithSq) {
      floats sq_total = sq_acc[r * Unroll];
      unrolled<Unroll - 1>([&](auto u) { sq_total += sq_acc[r * Unroll + u + 1]; });
      sq_sum = xsimd::hadd(sq_total);
    }
    for (size_t t = j; t < d; ++t) {
      const float x = source.load_one(row, t);
      dot_sum += q[t] * x;
      if constexpr (WithSq) sq_sum += x * x;
    }
    dot[r] = dot_sum;
    if constexpr (WithSq) sq[r] = sq_sum;
  });
}

template <class Arch, bool WithSq, class Source>
[[gnu::flatten]] void dot_rows_with(const Source& source, const float* q, const typename Source::element* rows,
                                    size_t count, size_t d, float* dot, float* sq) {
  // Four rows at a time; with sq that is already eight independent chains per column step.
  constexpr size_t kGroupRows = 4;
  constexpr size_t kGroupUnroll = WithSq ? 1 : 2;
  constexpr size_t kSingleUnroll = WithSq ? 2 : 4;
  size_t i = 0;
  for (; i + kGroupRows <= count; i += kGroupRows) {
    dot_row_group<Arch, kGroupRows, kGroupUnroll, WithSq>(source, q, rows + i * d, d, dot + i,
                                                          WithSq ? sq + i : nullptr);
  }
  for (; i < count; ++i) {
    dot_row_group<Arch, 1, kSingleUnroll, WithSq>(source, q, rows + i * d, d, dot + i, WithSq ? sq + i : nullptr);
  }
}

template <class Arch, class Source>
void dot_rows(const Source& source, const float* q, const typename Source::element* rows, size_t count, size_t d,
              float* dot, float* sq) {
  if (sq != nullptr) {
    dot_rows_with<Arch, true>(source, q, rows, count, d, dot, sq);
  } else {
    dot_rows_with<Arch, false>(source, q, rows, count, d, dot, sq);
  }
}

template <class Arch>
void dot_f32_rows(const float* q, const float* rows, size_t count, size_t d, float* dot, float* sq) {
  dot_rows<Arch>(f32_source<Arch>{}, q, rows, count, d, dot, sq);
}

template <class Arch>
void dot_f16_rows(const float* q, const uint16_t* rows, size_t count, size_t d, float* dot, float* sq) {
  [[maybe_unused]] const typename isa_ops<Arch>::f16_scope scope;
  dot_rows<Arch>(f16_source<Arch>{}, q, rows, count, d, dot, sq);
}

template <class Arch>
void dot_bf16_rows(const float* q, const uint16_t* rows, size_t count, size_t d, float* dot, float* sq) {
  dot_rows<Arch>(bf16_source<Arch>{}, q, rows, count, d, dot, sq);
}

template <class Arch>
void dot_u8_affine_rows(const float* q, const float* low, const float* step, const uint8_t* codes, size_t count,
                        size_t d, float* dot, float* sq) {
  dot_rows<Arch>(u8_affine_source<Arch>{low, step}, q, codes, count, d, dot, sq);
}

}  // namespace
}  // namespace vecpack::kernels
