// Choosing and creating a backend: "cpu", "cuda", "cuda:N" or "auto".
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "gcn/backend/backend.hpp"

namespace gcn {

struct DeviceSpec {
  enum class Kind { kCpu, kCuda, kAuto } kind = Kind::kCpu;
  int index = 0;  // for kCuda
};

// Throws gcn::UsageError for anything but cpu, cuda, cuda:N (N >= 0) or auto.
DeviceSpec parse_device(const std::string& text);

// The CPU backend; n_threads <= 0 uses OpenMP's default.
std::unique_ptr<Backend> make_cpu_backend(int n_threads = 0);
// The threads a CPU backend made with n_threads uses (0: OpenMP's default).
int cpu_thread_count(int n_threads);
// One core's L2 cache in bytes (1 MiB where the system does not say): the
// CPU's batches of models are sized to fit it (gcn/train/batch_plan.hpp).
std::size_t cpu_cache_bytes();

// ---- CUDA (implemented in cuda_loader.cpp, which loads the CUDA backend
// module libgcn_cuda.so on the first call of either function below, or in
// cuda_unavailable.cpp when the build has no CUDA) ----------------------------
bool cuda_compiled();
// Number of usable CUDA devices. When 0, *why (if given) holds one line saying
// why (no CUDA in this build, no NVIDIA driver, the module not loadable, no
// device, ...).
int cuda_device_count(std::string* why);
// Throws gcn::DeviceError with one clear line when the device is not usable.
std::unique_ptr<Backend> make_cuda_backend(int device_index);

// cpu -> CPU; cuda[:N] -> that GPU or DeviceError; auto -> CUDA device 0 when
// usable, else the CPU (the choice is logged).
std::unique_ptr<Backend> make_backend(const DeviceSpec& spec, int cpu_threads = 0);

}  // namespace gcn
