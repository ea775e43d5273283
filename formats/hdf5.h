// HDF5: the "train" dataset of an ann-benchmarks file, or any 2-D float dataset named as
// FILE:/group/name; keys from a "words_<name>" string dataset beside it.
#pragma once

#include "vecpack/formats.h"

namespace vecpack {

extern const FormatDescriptor kHdf5;

}  // namespace vecpack
