// Transforms: stages that map vectors to vectors before a quantizer (see docs/TRANSFORMS.md).
// One family in one file pair, one descriptor each:
//   whiten      centre, rotate onto the principal axes and scale each to unit variance
//   pca         centre and project onto the top-k principal axes (no scaling)
//   rotate      a seeded random orthogonal rotation
//   l2norm      scale every row to unit length
//   matryoshka  keep the first m dimensions
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "vecpack/codec.h"

namespace vecpack {

extern const CodecDescriptor kWhitenTransform;
extern const CodecDescriptor kPcaTransform;
extern const CodecDescriptor kRotateTransform;
extern const CodecDescriptor kL2NormTransform;
extern const CodecDescriptor kMatryoshkaTransform;

// The principal axes of n rows: the mean (0 with centre false: axes of the second moments),
// the `keep` largest eigenvalues of the covariance (1/n) sum (x - mean)(x - mean)^T, decreasing
// (round-off below 0 clamped to 0), and their eigenvectors as rows of `axes` (keep x d), each
// sign-fixed (largest component positive) so that fitting is reproducible. Errors name `stage`
// and, for a row that is not finite, its number counted from first_row.
struct PrincipalAxes {
  std::vector<double> mean;    // d
  std::vector<double> values;  // keep
  std::vector<double> axes;    // keep x d
};
PrincipalAxes principal_axes(const float* x, size_t n, size_t d, bool centre, size_t keep, const std::string& stage,
                             size_t first_row = 0);

// A seeded random orthogonal d x d matrix, row-major (QR of a Gaussian matrix, columns
// sign-fixed so that it is uniformly distributed); the same on every platform for a seed.
std::vector<float> random_orthogonal(size_t d, uint64_t seed);

}  // namespace vecpack
