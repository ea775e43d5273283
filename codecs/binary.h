// The binary family: codes of sign bits, searched by popcount. One family, one file pair:
//   binary  1 bit per dimension, the sign of the centred row; Hamming or asymmetric scoring
//   rbin    recurrent binarization: b sign vectors of successive residuals with per-row scales
//   rabitq  random rotation + sign bits with an unbiased inner-product estimator and its bound
//   itq     iterative quantization: a learnt rotation (after PCA) that binary codes lose least to
// Bits are packed 64 to a little-endian word: bit j of a row is bit j % 64 of word j / 64, so
// the bytes of a code equal numpy.packbits(bits, bitorder="little") padded to 8-byte words.
#pragma once

#include "vecpack/codec.h"

namespace vecpack {

extern const CodecDescriptor kBinaryCodec;
extern const CodecDescriptor kRbinCodec;
extern const CodecDescriptor kRabitqCodec;
extern const CodecDescriptor kItqTransform;

}  // namespace vecpack
