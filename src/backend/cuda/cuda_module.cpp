// The entry point of libgcn_cuda.so, the CUDA backend loaded on first use
// (see cuda_module.hpp). The only symbol the module exports.
#include "cuda_module.hpp"

#ifndef GCN_CUDA_MODULE_INTERFACE
#error "GCN_CUDA_MODULE_INTERFACE is set by src/CMakeLists.txt"
#endif

extern "C" __attribute__((visibility("default"))) const gcn::cuda_module::TableV1* gcn_cuda_module_v1() {
  static const gcn::cuda_module::TableV1 table = {
      gcn::cuda_module::kAbiVersion,
      static_cast<std::uint32_t>(sizeof(gcn::cuda_module::TableV1)),
      GCN_CUDA_MODULE_INTERFACE,
      &gcn::cuda_module::device_count,
      &gcn::cuda_module::make_backend,
  };
  return &table;
}
