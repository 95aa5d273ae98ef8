// The CPU kernels for any CPU the build targets (cpu_kernels.hpp).
#include "cpu_kernels_impl.hpp"

namespace gcn::cpu {
const CpuKernels& kernels_baseline() {
  static const CpuKernels table = GCN_CPU_KERNEL_TABLE("baseline");
  return table;
}
}  // namespace gcn::cpu
