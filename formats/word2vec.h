// word2vec text ("count dim" header, then "word v1 ... vd" per line; also fastText .vec) and
// word2vec binary (the same header, then per row the word, a space and d little-endian float32).
#pragma once

#include "vecpack/formats.h"

namespace vecpack {

extern const FormatDescriptor kWord2vecText;
extern const FormatDescriptor kWord2vecBinary;

}  // namespace vecpack
