// rq: residual quantization with beam search, an additive quantizer for 8-16 bytes a row.
#pragma once

#include "vecpack/codec.h"

namespace vecpack {

extern const CodecDescriptor kRqCodec;

}  // namespace vecpack
