// NumPy .npy: a 2-D float array (rows, dim), or a 1-D array (dim,) read as one row. Reads
// float16/32/64 in either byte order, C or Fortran order, header versions 1.0 to 3.0; writes
// little-endian float32 in C order with a version 1.0 header, byte for byte as np.save does.
// Keys are not part of the format: a keyed table is written as its vectors alone.
#pragma once

#include "vecpack/formats.h"

namespace vecpack {

extern const FormatDescriptor kNpy;

}  // namespace vecpack
