// GloVe text: no header, "word v1 ... vd" per line; words may contain spaces (GloVe 840B).
#pragma once

#include "vecpack/formats.h"

namespace vecpack {

extern const FormatDescriptor kGlove;

}  // namespace vecpack
