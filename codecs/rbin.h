// rbin: recurrent binarization, b bits per dimension as b scaled sign vectors of successive
// residuals.
#pragma once

#include "vecpack/codec.h"

namespace vecpack {

extern const CodecDescriptor kRbinCodec;

}  // namespace vecpack
