// The CPU kernels compiled for x86-64-v4 (AVX-512); see cpu_kernels.hpp.
#include "cpu_kernels_impl.hpp"

namespace gcn::cpu {
const CpuKernels* kernels_avx512() {
  static const CpuKernels table = GCN_CPU_KERNEL_TABLE("avx512");
  return &table;
}
}  // namespace gcn::cpu
