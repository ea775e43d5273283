// Kernels: nearest centroid of each row (k-means assignment, pq encoding). Part of kernels_impl.h
// (templates on an xsimd architecture, internal linkage), which includes it after the per-ISA
// helpers; not a header of its own.
#pragma once

namespace vecpack::kernels {
namespace {

// ------------------------------------------------------------------------- nearest centroid
// Rows rows share each load of a centroid coordinate; every lane tracks the best centroid among
// those it has seen (strict < keeps the earliest), and the lanes are merged at the end by value,
// then by index, so ties resolve to the smallest index as in the scalar reference. Indices are
// kept as floats (exact below 2^24) so that one select serves values and indices alike.
// With FixedD coordinates known at compile time, the negated coordinates of the rows are
// broadcast once, outside the loop over centroids.
template <class Arch, size_t Rows, size_t FixedD>
[[gnu::always_inline]] inline void nearest_row_group(const float* x, size_t stride, size_t runtime_d,
                                                     const float* centroids_t, const float* half_sq, size_t k,
                                                     uint32_t* labels, float* best) {
  using floats = xsimd::batch<float, Arch>;
  constexpr size_t width = floats::size;
  alignas(64) float first_lanes[width];
  for (size_t l = 0; l < width; ++l) first_lanes[l] = static_cast<float>(l);
  floats lane_index = floats::load_aligned(first_lanes);
  std::array<floats, Rows> best_value, best_index;
  unrolled<Rows>([&](auto r) {
    best_value[r] = floats(std::numeric_limits<float>::infinity());
    best_index[r] = floats(0.0f);
  });
  std::array<floats, Rows*(FixedD == 0 ? 1 : FixedD)> negated;
  if constexpr (FixedD != 0) {
    unrolled<Rows>([&](auto r) { unrolled<FixedD>([&](auto j) { negated[r * FixedD + j] = floats(-x[r * stride + j]); }); });
  }
  for (size_t c = 0; c < k; c += width) {
    std::array<floats, Rows> acc;
    const floats norms = floats::load_unaligned(half_sq + c);
    unrolled<Rows>([&](auto r) { acc[r] = norms; });
    if constexpr (FixedD != 0) {
      unrolled<FixedD>([&](auto j) {
        const floats coordinate = floats::load_unaligned(centroids_t + j * k + c);
        unrolled<Rows>([&](auto r) { acc[r] = xsimd::fma(negated[r * FixedD + j], coordinate, acc[r]); });
      });
    } else {
      for (size_t j = 0; j < runtime_d; ++j) {
        const floats coordinate = floats::load_unaligned(centroids_t + j * k + c);
        unrolled<Rows>([&](auto r) { acc[r] = xsimd::fnma(floats(x[r * stride + j]), coordinate, acc[r]); });
      }
    }
    unrolled<Rows>([&](auto r) {
      const auto closer = acc[r] < best_value[r];
      best_value[r] = xsimd::select(closer, acc[r], best_value[r]);
      best_index[r] = xsimd::select(closer, lane_index, best_index[r]);
    });
    lane_index += floats(static_cast<float>(width));
  }
  // Merge of the lanes: the smallest value, then the smallest index among the lanes holding it.
  unrolled<Rows>([&](auto r) {
    const float value = isa_ops<Arch>::reduce_min(best_value[r]);
    const floats candidates = xsimd::select(best_value[r] == floats(value), best_index[r],
                                            floats(std::numeric_limits<float>::infinity()));
    const float index = isa_ops<Arch>::reduce_min(candidates);
    // Every lane NaN (NaN input): no lane matches, and the row gets centroid 0.
    labels[r] = index < std::numeric_limits<float>::infinity() ? static_cast<uint32_t>(index) : 0u;
    if (best != nullptr) best[r] = value;
  });
}

template <class Arch, size_t FixedD>
void nearest_centroids_with(const float* x, size_t n, size_t stride, size_t d, const float* centroids_t,
                            const float* half_sq, size_t k, uint32_t* labels, float* best) {
  constexpr size_t kGroupRows = 4;
  size_t i = 0;
  for (; i + kGroupRows <= n; i += kGroupRows)
    nearest_row_group<Arch, kGroupRows, FixedD>(x + i * stride, stride, d, centroids_t, half_sq, k, labels + i,
                                                best != nullptr ? best + i : nullptr);
  for (; i < n; ++i)
    nearest_row_group<Arch, 1, FixedD>(x + i * stride, stride, d, centroids_t, half_sq, k, labels + i,
                                       best != nullptr ? best + i : nullptr);
}

// Short rows (the usual product-quantizer sub-vectors) get a fully unrolled coordinate loop.
template <class Arch>
void nearest_centroids(const float* x, size_t n, size_t stride, size_t d, const float* centroids_t,
                       const float* half_sq, size_t k, uint32_t* labels, float* best) {
  switch (d) {
    case 1: return nearest_centroids_with<Arch, 1>(x, n, stride, d, centroids_t, half_sq, k, labels, best);
    case 2: return nearest_centroids_with<Arch, 2>(x, n, stride, d, centroids_t, half_sq, k, labels, best);
    case 3: return nearest_centroids_with<Arch, 3>(x, n, stride, d, centroids_t, half_sq, k, labels, best);
    case 4: return nearest_centroids_with<Arch, 4>(x, n, stride, d, centroids_t, half_sq, k, labels, best);
    case 5: return nearest_centroids_with<Arch, 5>(x, n, stride, d, centroids_t, half_sq, k, labels, best);
    case 6: return nearest_centroids_with<Arch, 6>(x, n, stride, d, centroids_t, half_sq, k, labels, best);
    case 7: return nearest_centroids_with<Arch, 7>(x, n, stride, d, centroids_t, half_sq, k, labels, best);
    case 8: return nearest_centroids_with<Arch, 8>(x, n, stride, d, centroids_t, half_sq, k, labels, best);
    default: return nearest_centroids_with<Arch, 0>(x, n, stride, d, centroids_t, half_sq, k, labels, best);
  }
}

// ------------------------------------------------------------------------- anisotropic encoding
template <class Arch>
void centroid_dots(const float* x, size_t d, const float* centroids_t, size_t k, float* out) {
  using floats = xsimd::batch<float, Arch>;
  constexpr size_t width = floats::size;
  for (size_t c = 0; c < k; c += width) {
    floats acc(0.0f);
    for (size_t j = 0; j < d; ++j) acc = xsimd::fma(floats(x[j]), floats::load_unaligned(centroids_t + j * k + c), acc);
    acc.store_unaligned(out + c);
  }
}

// Two passes: the losses go to a buffer while two running minima (independent chains) find the
// smallest value; then the first position holding it is the answer, the smallest c on ties.
template <class Arch>
uint32_t anisotropic_argmin(const float* dots, const float* norms, size_t k, float along, float weight) {
  using floats = xsimd::batch<float, Arch>;
  constexpr size_t width = floats::size;
  constexpr size_t kChunk = 256;  // losses buffered per pass
  const floats a(along), w(weight), two(2.0f);
  const auto loss_at = [&](size_t c) {
    const floats dot = floats::load_unaligned(dots + c);
    const floats gap = a - dot;
    return xsimd::fma(w * gap, gap, xsimd::fnma(two, dot, floats::load_unaligned(norms + c)));
  };
  float best_value = std::numeric_limits<float>::infinity();
  uint32_t best = 0;
  alignas(64) float losses[kChunk];
  for (size_t base = 0; base < k; base += kChunk) {
    const size_t count = std::min(kChunk, k - base);  // a multiple of 16
    floats low0(std::numeric_limits<float>::infinity()), low1 = low0;
    size_t c = 0;
    for (; c + 2 * width <= count; c += 2 * width) {
      const floats first = loss_at(base + c), second = loss_at(base + c + width);
      first.store_aligned(losses + c);
      second.store_aligned(losses + c + width);
      low0 = xsimd::min(low0, first);
      low1 = xsimd::min(low1, second);
    }
    for (; c < count; c += width) {
      const floats loss = loss_at(base + c);
      loss.store_aligned(losses + c);
      low0 = xsimd::min(low0, loss);
    }
    const float value = isa_ops<Arch>::reduce_min(xsimd::min(low0, low1));
    if (!(value < best_value)) continue;  // strict: an equal value in a later chunk keeps the earlier index
    best_value = value;
    const floats target(value);
    for (c = 0; c < count; c += width) {
      if (!xsimd::any(floats::load_aligned(losses + c) == target)) continue;
      size_t i = c;
      while (losses[i] != value) ++i;
      best = static_cast<uint32_t>(base + i);
      break;
    }
  }
  return best;
}

}  // namespace
}  // namespace vecpack::kernels
