// The kernels compiled for AVX2 + FMA + F16C (built with -mavx2 -mfma -mf16c -mpopcnt).
#include "kernels/kernels_impl.h"

namespace vecpack::kernels {
namespace {
constexpr KernelTable kAvx2Table = make_table<xsimd::fma3<xsimd::avx2>>(Isa::avx2);
}  // namespace

const KernelTable* avx2_table() { return &kAvx2Table; }

}  // namespace vecpack::kernels
