// vecpack: store, compress and search embedding tables.
//
// Stable API: errors.h, types.h, table.h, formats.h, and Codec in codec.h.
// Extension API (may change between minor versions): Stage, Transform, Quantizer, CodeScorer,
// CodecDescriptor and registry.h, for writing codecs.
#pragma once

#include "vecpack/codec.h"
#include "vecpack/embeddings.h"
#include "vecpack/errors.h"
#include "vecpack/formats.h"
#include "vecpack/registry.h"
#include "vecpack/table.h"
#include "vecpack/types.h"

namespace vecpack {

// The library version, e.g. "0.1.0".
const char* version() noexcept;
// The instruction set the kernels use on this CPU, e.g. "avx512" (VECPACK_FORCE_ISA overrides).
const char* kernel_isa() noexcept;

}  // namespace vecpack
