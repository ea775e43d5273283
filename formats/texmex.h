// TEXMEX vector files (the SIFT/GIST ANN benchmarks): per record a little-endian int32
// dimension d, then d values: float32 (.fvecs), uint8 (.bvecs) or int32 (.ivecs). Every record
// has the same d. Values are read as float; writing .bvecs/.ivecs needs integral values in
// range. Keys are not part of the format: a keyed table is written as its vectors alone.
// There is no magic number: the format comes from the extension or an explicit name.
#pragma once

#include "vecpack/formats.h"

namespace vecpack {

extern const FormatDescriptor kFvecs;
extern const FormatDescriptor kBvecs;
extern const FormatDescriptor kIvecs;

}  // namespace vecpack
