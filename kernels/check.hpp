// Error checks shared by the kernel launchers and the CUDA backend's host code:
// one generic check, specialised per library by the macros. Plain C++ (the
// CUDA runtime API header is C), so it compiles with g++ too.
#pragma once

#include <cuda_runtime_api.h>

#include <string>

#include "gcn/error.hpp"

namespace gcn::cuda_detail {

[[noreturn]] inline void throw_device_error(const char* library, const char* call, const char* file,
                                            int line, int code, const char* message) {
  throw DeviceError(std::string(library) + " error " + std::to_string(code) + " (" +
                    (message != nullptr ? message : "unknown") + ") in " + call + " at " + file +
                    ":" + std::to_string(line));
}

// Launch errors (bad configuration, no kernel image for this GPU) surface in
// cudaGetLastError right after the launch, not at the next synchronisation.
inline void check_launch(const char* kernel, const char* file, int line) {
  const cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) throw_device_error("CUDA", kernel, file, line, static_cast<int>(err), cudaGetErrorString(err));
}

}  // namespace gcn::cuda_detail

#define GCN_CHECK_STATUS(lib, call, status_t, success, message_fn)                              \
  do {                                                                                           \
    const status_t gcn_status_ = (call);                                                         \
    if (gcn_status_ != (success))                                                                \
      ::gcn::cuda_detail::throw_device_error(lib, #call, __FILE__, __LINE__,                     \
                                             static_cast<int>(gcn_status_), message_fn(gcn_status_)); \
  } while (0)

#define CUDA_CHECK(call) GCN_CHECK_STATUS("CUDA", call, cudaError_t, cudaSuccess, cudaGetErrorString)

#define GCN_CHECK_LAUNCH(kernel) ::gcn::cuda_detail::check_launch(kernel, __FILE__, __LINE__)
