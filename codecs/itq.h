// itq: iterative quantization, a learnt rotation (after PCA) that binary codes lose least to.
#pragma once

#include "vecpack/codec.h"

namespace vecpack {

extern const CodecDescriptor kItqTransform;

}  // namespace vecpack
