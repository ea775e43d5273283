// fastText: .vec text vectors (word2vec text, each value followed by a space) and .bin/.ftz
// models, read as their word vectors plus the character n-gram pool that gives vectors to
// words the model never saw.
#pragma once

#include "vecpack/formats.h"

namespace vecpack {

extern const FormatDescriptor kFasttextVec;
extern const FormatDescriptor kFasttextBin;

}  // namespace vecpack
