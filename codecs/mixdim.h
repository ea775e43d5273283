// mixdim: mixed-dimension rows fitted to a frequency-ordered table (Ginart et al.).
#pragma once

#include "vecpack/codec.h"

namespace vecpack {

extern const CodecDescriptor kMixdimCodec;

}  // namespace vecpack
