// f32, f16, bf16: one row per code, stored as floating point. One family, one descriptor each.
#pragma once

#include "vecpack/codec.h"

namespace vecpack {

extern const CodecDescriptor kF32Codec;
extern const CodecDescriptor kF16Codec;
extern const CodecDescriptor kBf16Codec;

}  // namespace vecpack
