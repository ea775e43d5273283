// The kernels compiled for SSE4.2 (built with -msse4.2 -mpopcnt).
#include "kernels/kernels_impl.h"

namespace vecpack::kernels {
namespace {
constexpr KernelTable kSse42Table = make_table<xsimd::sse4_2>(Isa::sse42);
}  // namespace

const KernelTable* sse42_table() { return &kSse42Table; }

}  // namespace vecpack::kernels
