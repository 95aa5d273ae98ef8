// The device side of CUDA C++ on the CPU: the qualifiers, the built-in
// indices, __syncthreads, the warp shuffle, integer atomics, __threadfence, the
// rounding intrinsics, and kernel launches.
//
// A launch runs its blocks one after another; the threads of a block run as
// fibers on the launching thread (launch.cpp), one at a time, switching only
// at __syncthreads and warp shuffles. Those are checked as the CUDA
// programming guide states them: a shuffle's mask names lanes that exist and
// that all reach the same shuffle with the same mask and width, a
// __syncthreads is reached by every thread of the block; a breach is
// a device fault (a sticky cudaErrorLaunchFailure naming the kernel), not a
// silent result. Every pointer argument of a kernel must point into device
// memory (cudaMalloc), else cudaErrorIllegalAddress.
//
// Memory is the host's: out-of-bounds accesses are for AddressSanitizer to
// find (scripts/sanitize.sh builds the simulator with it). Not simulated:
// timing, concurrency between threads outside the synchronisation points
// (a data race that a real GPU would expose runs in one fixed order here), and
// the GPU's floating-point library (expf, logf are the host's).
#pragma once

#include <math.h>

#include <cstdint>
#include <cstring>
#include <functional>
#include <tuple>
#include <type_traits>
#include <utility>

#include "cuda_runtime_api.h"
#include "cudasim/sim.hpp"

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
// Blocks run one at a time, so one static array per kernel is each block's
// shared memory in turn (uninitialised at a block's start in CUDA too).
#define __shared__ static

namespace cudasim {

struct ThreadContext {
  uint3 thread_idx;
  uint3 block_idx;
  dim3 block_dim;
  dim3 grid_dim;
};

// The simulated thread that is running (only valid inside a kernel).
const ThreadContext& ctx();

void syncthreads();
// The value of lane (lane ^ lane_mask) as __shfl_xor_sync defines it.
uint64_t shfl_xor(unsigned mask, uint64_t bits, int lane_mask, int width);

struct LaunchConfig {
  dim3 grid;
  dim3 block;
  std::size_t shared_bytes = 0;
  cudaStream_t stream = nullptr;
};

// Checks the launch configuration against CUDA's limits; a bad one is the
// launch's error (cudaErrorInvalidConfiguration from cudaGetLastError) and
// nothing runs.
bool valid_launch(const char* kernel, const LaunchConfig& cfg);
// Runs body once per thread of every block of cfg.grid.
void run_grid(const char* kernel, const LaunchConfig& cfg, const std::function<void()>& body);
// A pointer argument that is neither null nor device memory is a fault.
bool check_pointer_argument(const char* kernel, int index, const void* p);

template <class... Params>
class Launcher {
 public:
  Launcher(void (*kernel)(Params...), const char* name, LaunchConfig cfg) : kernel_(kernel), name_(name), cfg_(cfg) {}

  template <class... Args>
  void operator()(Args&&... args) const {
    static_assert(sizeof...(Args) == sizeof...(Params), "kernel launched with the wrong number of arguments");
    // Converted to the parameter types now, as a launch copies its arguments.
    std::tuple<std::decay_t<Params>...> values(std::forward<Args>(args)...);
    if (!valid_launch(name_, cfg_)) return;
    // A capture records the launch with these argument values; each graph
    // launch reruns it with them.
    const bool recorded = capturing(cfg_.stream);
    const cudaError_t err = enqueue(cfg_.stream, name_, [kernel = kernel_, name = name_, cfg = cfg_, values]() {
      if (!pointers_ok(name, values, std::index_sequence_for<Params...>{})) return;
      run_grid(name, cfg, [&]() { std::apply(kernel, values); });
    });
    if (err == cudaSuccess && !recorded) count_launch();
  }

 private:
  template <class Tuple, std::size_t... I>
  static bool pointers_ok(const char* name, const Tuple& values, std::index_sequence<I...>) {
    bool ok = true;
    (void)std::initializer_list<int>{(ok = ok && pointer_ok(name, static_cast<int>(I), std::get<I>(values)), 0)...};
    return ok;
  }
  template <class T>
  static bool pointer_ok(const char* name, int index, const T& value) {
    if constexpr (std::is_pointer_v<T>) {
      return check_pointer_argument(name, index, static_cast<const void*>(value));
    } else {
      (void)name, (void)index, (void)value;
      return true;
    }
  }

  void (*kernel_)(Params...);
  const char* name_;
  LaunchConfig cfg_;
};

template <class... Params>
Launcher<Params...> launch(void (*kernel)(Params...), const char* name, LaunchConfig cfg) {
  return Launcher<Params...>(kernel, name, cfg);
}

}  // namespace cudasim

#define threadIdx (::cudasim::ctx().thread_idx)
#define blockIdx (::cudasim::ctx().block_idx)
#define blockDim (::cudasim::ctx().block_dim)
#define gridDim (::cudasim::ctx().grid_dim)

inline void __syncthreads() { ::cudasim::syncthreads(); }

template <class T>
inline T __shfl_xor_sync(unsigned mask, T var, int lane_mask, int width = 32) {
  static_assert(std::is_trivially_copyable_v<T> && sizeof(T) <= sizeof(uint64_t), "shuffle of a 1..8-byte value");
  uint64_t bits = 0;
  std::memcpy(&bits, &var, sizeof(T));
  bits = ::cudasim::shfl_xor(mask, bits, lane_mask, width);
  T out;
  std::memcpy(&out, &bits, sizeof(T));
  return out;
}

// One simulated thread runs at a time, so a plain read-modify-write is atomic.
inline int atomicAdd(int* address, int value) {
  const int old = *address;
  *address = old + value;
  return old;
}
inline unsigned atomicAdd(unsigned* address, unsigned value) {
  const unsigned old = *address;
  *address = old + value;
  return old;
}
inline unsigned long long atomicAdd(unsigned long long* address, unsigned long long value) {
  const unsigned long long old = *address;
  *address = old + value;
  return old;
}
// As the CUDA guide defines it: stores ((old >= val) ? 0 : (old + 1)), returns old.
inline unsigned atomicInc(unsigned* address, unsigned val) {
  const unsigned old = *address;
  *address = old >= val ? 0u : old + 1u;
  return old;
}

// A no-op here: blocks run one after another and threads one at a time, so
// every write is seen by every later read, fence or not. (On a GPU it orders a
// thread's writes before its later ones as other blocks see them, as in a
// "last block done" reduction; a missing fence cannot show here.)
inline void __threadfence() {}

// Correctly rounded, never contracted (the simulator's kernels build with
// -ffp-contract=off).
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __fsqrt_rn(float a) { return sqrtf(a); }

// CUDA's device min for integers (the kernels' only use of it).
template <class T>
inline T min(T a, T b) {
  return b < a ? b : a;
}
