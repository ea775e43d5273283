// Fuzz target: codec spec strings (lib/spec.cc, codecs' argument validation): parse_spec,
// then Codec(spec); the canonical spec of a codec must build the same codec again.
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "fuzz_common.h"
#include "vecpack/codec.h"
#include "vecpack/registry.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace vecpack;
  std::string_view spec(reinterpret_cast<const char*>(data), size);
  fuzz::expect_errors([&] { (void)parse_spec(spec); });
  fuzz::expect_errors([&] {
    Codec codec(spec);
    const std::string canonical = codec.spec();
    (void)codec.capabilities();
    if (Codec(canonical).spec() != canonical) {
      std::fprintf(stderr, "canonical spec '%s' does not reproduce itself\n", canonical.c_str());
      std::abort();
    }
  });
  return 0;
}
