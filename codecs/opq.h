// opq: a learnt rotation that prepares vectors for a product quantizer with the same m.
#pragma once

#include "vecpack/codec.h"

namespace vecpack {

extern const CodecDescriptor kOpqCodec;

}  // namespace vecpack
