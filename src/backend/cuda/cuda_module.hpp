// The CUDA backend as a module loaded on first use (libgcn_cuda.so): the one
// entry point it exports and the table it returns. Internal to gcn-train:
// src/backend/cuda/cuda_module.cpp (in the module) fills the table, src/backend/cuda/cuda_loader.cpp (in
// gcn_core, i.e. in every executable) finds the module, dlopens it and checks
// the table before using it.
//
// Only gcn_cuda_module_v1 is exported (src/backend/cuda/cuda_module.map); everything else in
// the module, gcn-train's own code included, is hidden and bound inside the
// module, so no symbol of the module and of the executable stands in for the
// other. The table passes C++ types (std::string, std::unique_ptr<Backend>,
// exceptions): the module and the executable come from the same build, which
// the loader checks (the ABI version and the interface fingerprint).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "gcn/backend/backend.hpp"

namespace gcn::cuda_module {

// Bump when the table below changes (and rename the entry point with it).
inline constexpr std::uint32_t kAbiVersion = 1;

struct TableV1 {
  std::uint32_t abi_version;  // kAbiVersion
  std::uint32_t table_size;   // sizeof(TableV1)
  // A hash of the headers both sides compile against (include/gcn/*.hpp and
  // this file), made at configure time (src/CMakeLists.txt): a module built
  // from other headers is refused instead of crashing on a changed vtable.
  const char* interface_id;
  // Number of usable CUDA devices; when 0, *why (if given) says why in one line.
  int (*device_count)(std::string* why);
  // The backend on that device; throws gcn::DeviceError (no such device, no
  // usable GPU), gcn::UsageError (a bad GCN_SPMM_ALG).
  std::unique_ptr<Backend> (*make_backend)(int device_index);
};

// Inside the module (src/backend/cuda/cuda_backend.cpp): what the table points to. Hidden,
// and named apart from the loader's gcn::cuda_device_count/make_cuda_backend.
int device_count(std::string* why);
std::unique_ptr<Backend> make_backend(int device_index);

}  // namespace gcn::cuda_module

// The module's one exported symbol.
#define GCN_CUDA_MODULE_ENTRY "gcn_cuda_module_v1"
extern "C" const gcn::cuda_module::TableV1* gcn_cuda_module_v1();
