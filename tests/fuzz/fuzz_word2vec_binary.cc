// Fuzz target: the word2vec-bin reader (formats/), then reads of the table it returns.
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  vecpack::fuzz::read_format("word2vec-bin", "word2vec_binary", data, size);
  return 0;
}
