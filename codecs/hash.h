// hash: hash embeddings (a shared pool of rows, k per table row) fitted to a table.
#pragma once

#include "vecpack/codec.h"

namespace vecpack {

extern const CodecDescriptor kHashCodec;

}  // namespace vecpack
