// subword: rows built from the character n-grams of their keys, fastText-style.
#pragma once

#include "vecpack/codec.h"

namespace vecpack {

extern const CodecDescriptor kSubwordCodec;

}  // namespace vecpack
