// Test driver: the suite runs once per forced ISA (see tests/CMakeLists.txt); an ISA this CPU
// lacks is reported as skipped (exit 77) rather than silently tested on another one.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "kernels/kernels.h"

int main(int argc, char** argv) {
  const char* forced = std::getenv("VECPACK_FORCE_ISA");
  if (forced && *forced) {
    bool supported = false;
    for (auto isa : vecpack::kernels::supported_isas())
      if (std::string(vecpack::kernels::isa_name(isa)) == forced) supported = true;
    if (!supported) {
      std::printf("VECPACK_FORCE_ISA=%s: this CPU does not support it; skipped\n", forced);
      return 77;
    }
  }
  doctest::Context context(argc, argv);
  return context.run();
}
