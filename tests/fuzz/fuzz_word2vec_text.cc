// Fuzz target: the word2vec reader (formats/), then reads of the table it returns.
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  vecpack::fuzz::read_format("word2vec", "word2vec_text", data, size);
  return 0;
}
