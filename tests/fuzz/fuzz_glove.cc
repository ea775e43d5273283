// Fuzz target: the glove reader (formats/), then reads of the table it returns.
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  vecpack::fuzz::read_format("glove", "glove", data, size);
  return 0;
}
