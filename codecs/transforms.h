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
#include <vector>

#include "vecpack/codec.h"

namespace vecpack {

extern const CodecDescriptor kWhitenTransform;
extern const CodecDescriptor kPcaTransform;
extern const CodecDescriptor kRotateTransform;
extern const CodecDescriptor kL2NormTransform;
extern const CodecDescriptor kMatryoshkaTransform;

// A seeded random orthogonal d x d matrix, row-major (QR of a Gaussian matrix, columns
// sign-fixed so that it is uniformly distributed); the same on every platform for a seed.
std::vector<float> random_orthogonal(size_t d, uint64_t seed);

}  // namespace vecpack
