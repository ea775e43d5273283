// qr: compositional (quotient-remainder) embeddings fitted to a table.
#pragma once

#include "vecpack/codec.h"

namespace vecpack {

extern const CodecDescriptor kQrCodec;

}  // namespace vecpack
