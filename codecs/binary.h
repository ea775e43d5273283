// binary: 1 bit per dimension, the sign of the centred row, searched by popcount. Bit layout:
// sign_bits.h.
#pragma once

#include "vecpack/codec.h"

namespace vecpack {

extern const CodecDescriptor kBinaryCodec;

}  // namespace vecpack
