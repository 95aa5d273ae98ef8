// Stand-ins for the CUDA entry points in a build without CUDA.
#include "gcn/backend/devices.hpp"
#include "gcn/error.hpp"

namespace gcn {

bool cuda_compiled() { return false; }

int cuda_device_count(std::string* why) {
  if (why != nullptr) *why = "this gcn-train was built without CUDA support (rebuild with nvcc on PATH)";
  return 0;
}

std::unique_ptr<Backend> make_cuda_backend(int /*device_index*/) {
  throw DeviceError(
      "--device cuda: this gcn-train was built without CUDA support; rebuild with the CUDA "
      "toolkit (nvcc on PATH) or use --device cpu");
}

}  // namespace gcn
