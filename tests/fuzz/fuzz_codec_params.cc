// Fuzz target: codec parameter blobs as stored in CODC (Codec::load and every codec's load()),
// then, when they load as a trained codec, encode and decode a few vectors of its dimension.
#include <vector>

#include "fuzz_common.h"
#include "vecpack/codec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace vecpack;
  fuzz::expect_errors([&] {
    Codec codec = Codec::load(data, size);
    if (!codec.trained()) return;
    (void)codec.vector_for_key("h\xC3\xA9llo");  // codecs that derive rows from keys (before encode, which may need them bound)
    const size_t d = codec.dim(), cs = codec.code_size(), n = 3;
    std::vector<float> x;
    for (size_t i = 0; i < n; ++i) {
      std::vector<float> row = fuzz::probe_vector(d, static_cast<float>(i));
      x.insert(x.end(), row.begin(), row.end());
    }
    std::vector<uint8_t> codes(n * cs);
    codec.encode(x.data(), n, codes.data(), 1);
    std::vector<float> back(n * d);
    codec.decode(codes.data(), n, back.data());
    (void)codec.serialize();
    auto scorer = codec.scorer(x.data(), 1, Metric::l2);
    std::vector<float> scores(n);
    scorer->score({codes.data(), n}, scores.data(), n);
  });
  return 0;
}
