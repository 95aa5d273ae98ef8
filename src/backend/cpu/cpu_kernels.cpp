#include "cpu_kernels.hpp"

#include <algorithm>
#include <cstdlib>
#include <string>

#include <fmt/format.h>

#include "gcn/error.hpp"

namespace gcn::cpu {

#if !defined(GCN_CPU_KERNELS_X86)
const CpuKernels* kernels_avx2() { return nullptr; }
const CpuKernels* kernels_avx512() { return nullptr; }
#endif

namespace {
bool runs_avx2() {
#if defined(GCN_CPU_KERNELS_X86)
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("bmi2");
#else
  return false;
#endif
}
bool runs_avx512() {
#if defined(GCN_CPU_KERNELS_X86)
  return runs_avx2() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
         __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
#else
  return false;
#endif
}
}  // namespace

std::vector<int32_t> rows_by_length(const std::vector<int32_t>& indptr) {
  const int32_t rows = indptr.empty() ? 0 : static_cast<int32_t>(indptr.size()) - 1;
  std::vector<int32_t> order(static_cast<std::size_t>(rows));
  for (int32_t i = 0; i < rows; ++i) order[static_cast<std::size_t>(i)] = i;
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
    return indptr[a + 1] - indptr[a] > indptr[b + 1] - indptr[b];
  });
  return order;
}

std::vector<const CpuKernels*> available_cpu_kernels() {
  std::vector<const CpuKernels*> out{&kernels_baseline()};
  if (kernels_avx2() != nullptr && runs_avx2()) out.push_back(kernels_avx2());
  if (kernels_avx512() != nullptr && runs_avx512()) out.push_back(kernels_avx512());
  return out;
}

const CpuKernels& cpu_kernels() {
  static const CpuKernels* chosen = [] {
    const std::vector<const CpuKernels*> all = available_cpu_kernels();
    const char* env = std::getenv("GCN_CPU_ISA");
    if (env == nullptr || *env == '\0') return all.back();
    for (const CpuKernels* k : all) {
      if (std::string(k->isa) == env) return k;
    }
    throw UsageError(fmt::format("GCN_CPU_ISA={}: this CPU (and build) runs {}", env, [&] {
      std::string names;
      for (const CpuKernels* k : all) names += (names.empty() ? "" : ", ") + std::string(k->isa);
      return names;
    }()));
  }();
  return *chosen;
}

}  // namespace gcn::cpu
