// The kernels compiled for AVX-512 F/BW/DQ/VL (built with -mavx512f -mavx512bw -mavx512dq
// -mavx512vl -mavx2 -mfma -mf16c -mpopcnt).
#include "kernels/kernels_impl.h"

namespace vecpack::kernels {
namespace {
constexpr KernelTable kAvx512Table = make_table<xsimd::avx512bw>(Isa::avx512);
}  // namespace

const KernelTable* avx512_table() { return &kAvx512Table; }

}  // namespace vecpack::kernels
