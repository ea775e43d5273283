#include <string>

#include "vecpack/errors.h"
#include "vecpack/types.h"

namespace vecpack {

const char* metric_name(Metric metric) noexcept {
  switch (metric) {
    case Metric::ip: return "ip";
    case Metric::cos: return "cos";
    case Metric::l2: return "l2";
  }
  return "?";
}

Metric parse_metric(std::string_view name) {
  if (name == "ip" || name == "dot" || name == "inner_product") return Metric::ip;
  if (name == "cos" || name == "cosine" || name == "angular") return Metric::cos;
  if (name == "l2" || name == "euclidean") return Metric::l2;
  throw SpecError("unknown metric '" + std::string(name) + "' (expected ip, cos or l2)");
}

}  // namespace vecpack

#include "kernels/kernels.h"
#include "vecpack/vecpack.h"

#ifndef VECPACK_VERSION
#define VECPACK_VERSION "0.0.0"
#endif

namespace vecpack {

const char* version() noexcept { return VECPACK_VERSION; }
const char* kernel_isa() noexcept { return kernels::isa_name(kernels::active().isa); }

}  // namespace vecpack
