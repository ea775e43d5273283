// Run-time choice of the kernel table. Compiled for baseline x86-64: nothing here may use
// instructions the CPU has not been checked for.
#include <cpuid.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "kernels/kernels.h"
#include "kernels/tables.h"

namespace vecpack::kernels {
namespace {

// __builtin_cpu_supports also checks that the OS saves the wider registers (XGETBV), which a
// bare CPUID check would miss.
// F16C by CPUID leaf 1 (ECX bit 29): clang before 15 has no "f16c" for __builtin_cpu_supports.
// The AVX checks that accompany it cover the OS side.
bool has_f16c() {
  unsigned a = 0, b = 0, c = 0, d = 0;
  return __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C) != 0;
}

bool cpu_supports(Isa isa) {
  __builtin_cpu_init();  // needed when called before libgcc's own constructor has run
  switch (isa) {
    case Isa::scalar:
      return true;
    case Isa::sse42:
      return __builtin_cpu_supports("sse4.2") && __builtin_cpu_supports("popcnt");
    case Isa::avx2:
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && has_f16c() &&
             __builtin_cpu_supports("popcnt");
    case Isa::avx512:
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
             __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && has_f16c() &&
             __builtin_cpu_supports("popcnt");
  }
  return false;
}

const KernelTable* compiled_table(Isa isa) {
  switch (isa) {
    case Isa::scalar:
      return &scalar_table();
    case Isa::sse42:
      return sse42_table();
    case Isa::avx2:
      return avx2_table();
    case Isa::avx512:
      return avx512_table();
  }
  return nullptr;
}

const KernelTable& resolve_active() {
  std::string note;
  const Isa isa = choose_isa(std::getenv("VECPACK_FORCE_ISA"), supported_isas(), &note);
  if (!note.empty()) std::fprintf(stderr, "vecpack: %s\n", note.c_str());
  return *table_for(isa);
}

}  // namespace

VECPACK_KERNELS_API const char* isa_name(Isa isa) noexcept {
  switch (isa) {
    case Isa::scalar:
      return "scalar";
    case Isa::sse42:
      return "sse4.2";
    case Isa::avx2:
      return "avx2";
    case Isa::avx512:
      return "avx512";
  }
  return "unknown";
}

VECPACK_KERNELS_API std::optional<Isa> isa_from_name(std::string_view name) noexcept {
  for (Isa isa : {Isa::scalar, Isa::sse42, Isa::avx2, Isa::avx512}) {
    if (name == isa_name(isa)) return isa;
  }
  if (name == "sse42") return Isa::sse42;
  return std::nullopt;
}

VECPACK_KERNELS_API Isa choose_isa(const char* forced, const std::vector<Isa>& supported, std::string* note) {
  if (note != nullptr) note->clear();
  const Isa best = supported.empty() ? Isa::scalar : supported.front();
  if (forced == nullptr || *forced == '\0') return best;

  const std::optional<Isa> requested = isa_from_name(forced);
  std::string problem;
  if (!requested) {
    problem = std::string("VECPACK_FORCE_ISA=") + forced +
              " is not one of scalar, sse4.2, avx2, avx512";
  } else {
    for (Isa isa : supported) {
      if (isa == *requested) return isa;
    }
    problem = std::string("VECPACK_FORCE_ISA=") + forced + " is not supported by this CPU";
  }
  if (note != nullptr) *note = problem + "; using " + isa_name(best);
  return best;
}

VECPACK_KERNELS_API const KernelTable* table_for(Isa isa) {
  const KernelTable* table = compiled_table(isa);
  if (table == nullptr || !cpu_supports(isa)) return nullptr;
  return table;
}

VECPACK_KERNELS_API std::vector<Isa> supported_isas() {
  std::vector<Isa> isas;
  for (Isa isa : {Isa::avx512, Isa::avx2, Isa::sse42, Isa::scalar}) {
    if (table_for(isa) != nullptr) isas.push_back(isa);
  }
  return isas;
}

VECPACK_KERNELS_API const KernelTable& active() {
  static const KernelTable& table = resolve_active();
  return table;
}

}  // namespace vecpack::kernels
