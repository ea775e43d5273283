// rabitq: random rotation + sign bits with an unbiased inner-product estimator and its bound.
#pragma once

#include "vecpack/codec.h"

namespace vecpack {

extern const CodecDescriptor kRabitqCodec;

}  // namespace vecpack
