// Fuzz target: the fasttext reader (formats/), then reads of the table it returns.
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  vecpack::fuzz::read_format("fasttext", "fasttext", data, size);
  return 0;
}
