// The CPU kernels compiled for x86-64-v3 (AVX2); see cpu_kernels.hpp.
#include "cpu_kernels_impl.hpp"

namespace gcn::cpu {
const CpuKernels* kernels_avx2() {
  static const CpuKernels table = GCN_CPU_KERNEL_TABLE("avx2");
  return &table;
}
}  // namespace gcn::cpu
