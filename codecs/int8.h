// int8: one byte per value with a per-dimension range learnt in training.
#pragma once

#include "vecpack/codec.h"

namespace vecpack {

extern const CodecDescriptor kInt8Codec;

}  // namespace vecpack
