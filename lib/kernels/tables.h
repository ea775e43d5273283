// Internal to lib/kernels: the per-ISA tables and the pieces of run-time selection that tests
// exercise directly.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "kernels/kernels.h"

// The kernel sources are compiled with hidden visibility; the entry points used from outside
// lib/kernels (the rest of the shared library's users, and the tests) are exported explicitly.
#define VECPACK_KERNELS_API __attribute__((visibility("default")))

namespace vecpack::kernels {

// Each returns a table whose functions may only be called once the CPU is known to support the
// instruction set; the tables themselves are plain constant data.
const KernelTable* sse42_table();
const KernelTable* avx2_table();
const KernelTable* avx512_table();
const KernelTable& scalar_table();

// Inverse of isa_name(); also accepts "sse42". Empty when the name is unknown.
std::optional<Isa> isa_from_name(std::string_view name) noexcept;

// The ISA to use given the value of VECPACK_FORCE_ISA (null or empty when unset) and the ISAs
// this CPU supports, best first. When the request cannot be honoured, the best supported ISA is
// chosen and *note (when not null) receives a one-line explanation; otherwise *note is cleared.
Isa choose_isa(const char* forced, const std::vector<Isa>& supported, std::string* note);

}  // namespace vecpack::kernels
