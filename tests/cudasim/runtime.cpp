// The CUDA runtime API on the CPU: one simulated device (CUDASIM_DEVICES sets
// how many; 0 is a machine without a GPU), device memory from the host heap
// with a capacity (CUDASIM_MEMORY_MIB, default 16384) so that running out of
// it can be tested, lazy streams (sim.hpp), events, and CUDA's error rules:
// the last error is read and cleared by cudaGetLastError, a device fault is
// sticky. Like the CUDA runtime, it tears down at exit (an atexit handler
// registered at its first call frees all device memory), and a call after
// that gets cudaErrorCudartUnloading: a static object created before the
// first CUDA call and destroyed at exit must not own device resources.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "cudasim/sim.hpp"

struct CUstream_st {
  unsigned flags = 0;
};

struct CUevent_st {
  bool recorded = false;   // cudaEventRecord was called
  bool completed = false;  // the work queued before the record has run
  std::chrono::steady_clock::time_point when{};
};

namespace cudasim {
namespace {

struct QueuedOp {
  cudaStream_t stream;
  const char* what;
  std::function<void()> op;
};

struct State {
  std::recursive_mutex mutex;
  std::map<uintptr_t, std::size_t> blocks;  // live cudaMalloc blocks: start -> bytes
  std::size_t in_use = 0;
  std::set<CUstream_st*> streams;
  std::set<CUevent_st*> events;
  std::deque<QueuedOp> queue;
  bool draining = false;
  int current_device = 0;
  cudaError_t last_error = cudaSuccess;
  cudaError_t sticky = cudaSuccess;
  bool unloaded = false;
  Stats stats;
};

void unload();

// Frees every device block, as a context's teardown does.
void free_all_blocks(State& s) {
  for (const auto& block : s.blocks) std::free(reinterpret_cast<void*>(block.first));
  s.blocks.clear();
  s.in_use = 0;
}

// Never destroyed: static destructors may still call in after the teardown.
State& state() {
  static State* s = [] {
    auto* st = new State;
    std::atexit(unload);
    return st;
  }();
  return *s;
}

void unload() {
  State& s = state();
  std::lock_guard<std::recursive_mutex> lock(s.mutex);
  s.queue.clear();
  free_all_blocks(s);
  s.unloaded = true;
}

std::size_t env_size(const char* name, std::size_t fallback) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return fallback;
  char* end = nullptr;
  const unsigned long long n = std::strtoull(v, &end, 10);
  if (end == v || *end != '\0') {
    std::fprintf(stderr, "cudasim: %s=%s is not a number; using %zu\n", name, v, fallback);
    return fallback;
  }
  return static_cast<std::size_t>(n);
}

int device_count() { return static_cast<int>(env_size("CUDASIM_DEVICES", 1)); }
bool tracing() { return env_size("CUDASIM_TRACE", 0) != 0; }  // read each time: tests set it
std::size_t capacity_bytes() { return env_size("CUDASIM_MEMORY_MIB", 16384) << 20; }

// The block containing p (p may be one past its end), or blocks.end().
std::map<uintptr_t, std::size_t>::const_iterator find_block(const State& s, const void* p) {
  const auto addr = reinterpret_cast<uintptr_t>(p);
  auto it = s.blocks.upper_bound(addr);
  if (it == s.blocks.begin()) return s.blocks.end();
  --it;
  return addr <= it->first + it->second ? it : s.blocks.end();
}

// The error a call returns: the sticky one if any.
cudaError_t result(cudaError_t err) {
  State& s = state();
  if (s.unloaded) return cudaErrorCudartUnloading;
  if (s.sticky != cudaSuccess) return s.sticky;
  if (err != cudaSuccess) s.last_error = err;
  return err;
}

bool known_stream(State& s, cudaStream_t stream) { return stream == nullptr || s.streams.count(stream) != 0; }

cudaError_t enqueue_checked(cudaStream_t stream, const char* what, std::function<void()> op) {
  State& s = state();
  std::lock_guard<std::recursive_mutex> lock(s.mutex);
  if (!known_stream(s, stream)) {
    api_error(cudaErrorInvalidResourceHandle, std::string(what) + ": unknown or destroyed stream");
    return result(cudaErrorInvalidResourceHandle);
  }
  enqueue(stream, what, std::move(op));
  return result(cudaSuccess);
}

}  // namespace

void enqueue(cudaStream_t stream, const char* what, std::function<void()> op) {
  State& s = state();
  std::lock_guard<std::recursive_mutex> lock(s.mutex);
  if (s.sticky != cudaSuccess || s.unloaded) return;
  if (tracing()) std::fprintf(stderr, "cudasim: queued %s\n", what);
  s.queue.push_back(QueuedOp{stream, what, std::move(op)});
}

void drain() {
  State& s = state();
  std::lock_guard<std::recursive_mutex> lock(s.mutex);
  if (s.draining) return;  // an op that waits on the queue it runs from
  if (!s.queue.empty()) ++s.stats.host_waits;
  s.draining = true;
  while (!s.queue.empty()) {
    QueuedOp next = std::move(s.queue.front());
    s.queue.pop_front();
    if (s.sticky != cudaSuccess) continue;  // a faulted context runs nothing more
    next.op();
  }
  s.draining = false;
}

bool is_device_range(const void* p, std::size_t bytes) {
  State& s = state();
  std::lock_guard<std::recursive_mutex> lock(s.mutex);
  const auto it = find_block(s, p);
  if (it == s.blocks.end()) return false;
  const auto addr = reinterpret_cast<uintptr_t>(p);
  return bytes <= it->first + it->second - addr;
}

bool is_device_pointer(const void* p) {
  State& s = state();
  std::lock_guard<std::recursive_mutex> lock(s.mutex);
  return find_block(s, p) != s.blocks.end();
}

void fault(cudaError_t err, const std::string& message) {
  State& s = state();
  std::lock_guard<std::recursive_mutex> lock(s.mutex);
  std::fprintf(stderr, "cudasim: %s\n", message.c_str());
  if (s.sticky == cudaSuccess) s.sticky = err;
}

void api_error(cudaError_t err, const std::string& message) {
  State& s = state();
  std::lock_guard<std::recursive_mutex> lock(s.mutex);
  std::fprintf(stderr, "cudasim: %s\n", message.c_str());
  s.last_error = err;
}

cudaError_t sticky_error() { return state().sticky; }

Stats stats() {
  State& s = state();
  std::lock_guard<std::recursive_mutex> lock(s.mutex);
  return s.stats;
}

void count_launch() {
  State& s = state();
  std::lock_guard<std::recursive_mutex> lock(s.mutex);
  ++s.stats.launches;
}

void count_object() {
  State& s = state();
  std::lock_guard<std::recursive_mutex> lock(s.mutex);
  ++s.stats.objects;
}

void reset_for_tests() {
  State& s = state();
  std::lock_guard<std::recursive_mutex> lock(s.mutex);
  s.queue.clear();
  s.sticky = cudaSuccess;
  s.last_error = cudaSuccess;
  free_all_blocks(s);
}

}  // namespace cudasim

using cudasim::result;
using cudasim::state;

extern "C" {

cudaError_t cudaGetDeviceCount(int* count) {
  if (state().unloaded) return cudaErrorCudartUnloading;
  if (count == nullptr) return result(cudaErrorInvalidValue);
  *count = 0;
  const int n = cudasim::device_count();
  if (n <= 0) return result(cudaErrorNoDevice);
  *count = n;
  return result(cudaSuccess);
}

cudaError_t cudaSetDevice(int device) {
  if (state().unloaded) return cudaErrorCudartUnloading;
  if (device < 0 || device >= cudasim::device_count()) return result(cudaErrorInvalidDevice);
  state().current_device = device;
  return result(cudaSuccess);
}

cudaError_t cudaGetDevice(int* device) {
  if (state().unloaded) return cudaErrorCudartUnloading;
  if (device == nullptr) return result(cudaErrorInvalidValue);
  *device = state().current_device;
  return result(cudaSuccess);
}

cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int device) {
  if (state().unloaded) return cudaErrorCudartUnloading;
  if (prop == nullptr) return result(cudaErrorInvalidValue);
  if (device < 0 || device >= cudasim::device_count()) return result(cudaErrorInvalidDevice);
  *prop = cudaDeviceProp{};
  std::snprintf(prop->name, sizeof prop->name, "cudasim %d (CPU simulation, not a GPU)", device);
  prop->totalGlobalMem = cudasim::capacity_bytes();
  prop->multiProcessorCount = 1;
  prop->warpSize = 32;
  prop->maxThreadsPerBlock = 1024;
  return result(cudaSuccess);
}

cudaError_t cudaDeviceSynchronize(void) {
  if (state().unloaded) return cudaErrorCudartUnloading;
  cudasim::drain();
  return result(cudaSuccess);
}

cudaError_t cudaGetLastError(void) {
  if (state().unloaded) return cudaErrorCudartUnloading;
  auto& s = state();
  if (s.sticky != cudaSuccess) return s.sticky;
  return std::exchange(s.last_error, cudaSuccess);
}

cudaError_t cudaPeekAtLastError(void) {
  if (state().unloaded) return cudaErrorCudartUnloading;
  auto& s = state();
  return s.sticky != cudaSuccess ? s.sticky : s.last_error;
}

const char* cudaGetErrorName(cudaError_t error) {
  switch (error) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorCudartUnloading: return "cudaErrorCudartUnloading";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorNoDevice: return "cudaErrorNoDevice";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorInvalidResourceHandle: return "cudaErrorInvalidResourceHandle";
    case cudaErrorNotReady: return "cudaErrorNotReady";
    case cudaErrorIllegalAddress: return "cudaErrorIllegalAddress";
    case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
  }
  return "cudaErrorUnknown";
}

const char* cudaGetErrorString(cudaError_t error) {
  switch (error) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorCudartUnloading: return "driver shutting down";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorNoDevice: return "no CUDA-capable device is detected";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorInvalidResourceHandle: return "invalid resource handle";
    case cudaErrorNotReady: return "device not ready";
    case cudaErrorIllegalAddress: return "an illegal memory access was encountered";
    case cudaErrorLaunchFailure: return "unspecified launch failure";
  }
  return "unrecognized error code";
}

cudaError_t cudaMalloc(void** ptr, std::size_t bytes) {
  if (state().unloaded) return cudaErrorCudartUnloading;
  auto& s = state();
  std::lock_guard<std::recursive_mutex> lock(s.mutex);
  if (ptr == nullptr) return result(cudaErrorInvalidValue);
  *ptr = nullptr;
  if (s.sticky != cudaSuccess) return s.sticky;
  if (bytes == 0) return result(cudaSuccess);  // as CUDA: a null pointer, no error
  if (bytes > cudasim::capacity_bytes() - s.in_use) return result(cudaErrorMemoryAllocation);
  void* p = nullptr;
  // 256-byte aligned like cudaMalloc; exactly `bytes` long, so that
  // AddressSanitizer sees an access past the end.
  if (posix_memalign(&p, 256, bytes) != 0) return result(cudaErrorMemoryAllocation);
  std::memset(p, 0xff, bytes);  // cudaMalloc does not zero: a float read before a write is NaN
  s.blocks.emplace(reinterpret_cast<uintptr_t>(p), bytes);
  s.in_use += bytes;
  ++s.stats.mallocs;
  *ptr = p;
  return result(cudaSuccess);
}

cudaError_t cudaFree(void* ptr) {
  if (state().unloaded) return cudaErrorCudartUnloading;
  auto& s = state();
  std::lock_guard<std::recursive_mutex> lock(s.mutex);
  if (ptr == nullptr) return result(cudaSuccess);
  cudasim::drain();  // cudaFree waits for the device, so queued work never sees freed memory
  const auto it = s.blocks.find(reinterpret_cast<uintptr_t>(ptr));
  if (it == s.blocks.end()) {
    cudasim::api_error(cudaErrorInvalidValue, "cudaFree of a pointer that is not a live cudaMalloc block");
    return result(cudaErrorInvalidValue);
  }
  s.in_use -= it->second;
  s.blocks.erase(it);
  std::free(ptr);
  return result(cudaSuccess);
}

cudaError_t cudaMemGetInfo(std::size_t* free_bytes, std::size_t* total_bytes) {
  if (state().unloaded) return cudaErrorCudartUnloading;
  if (free_bytes == nullptr || total_bytes == nullptr) return result(cudaErrorInvalidValue);
  auto& s = state();
  *total_bytes = cudasim::capacity_bytes();
  *free_bytes = *total_bytes - s.in_use;
  return result(cudaSuccess);
}

cudaError_t cudaMemcpyAsync(void* dst, const void* src, std::size_t bytes, cudaMemcpyKind kind, cudaStream_t stream) {
  if (state().unloaded) return cudaErrorCudartUnloading;
  if (bytes == 0) return result(cudaSuccess);
  const bool dst_dev = cudasim::is_device_range(dst, bytes), src_dev = cudasim::is_device_range(src, bytes);
  bool ok = dst != nullptr && src != nullptr;
  switch (kind) {
    case cudaMemcpyHostToDevice: ok = ok && dst_dev && !cudasim::is_device_pointer(src); break;
    case cudaMemcpyDeviceToHost: ok = ok && src_dev && !cudasim::is_device_pointer(dst); break;
    case cudaMemcpyDeviceToDevice: ok = ok && dst_dev && src_dev; break;
    default: ok = false; break;
  }
  if (!ok) {
    cudasim::api_error(cudaErrorInvalidValue,
                       "cudaMemcpyAsync of " + std::to_string(bytes) + " bytes, kind " + std::to_string(kind) +
                           ": the pointers are not the host and device memory (of that size) the kind names");
    return result(cudaErrorInvalidValue);
  }
  // Host memory here is pageable (the simulator has no pinned memory), and
  // CUDA documents pageable copies as synchronous for the host buffer: one
  // to the device returns once the source has been staged, one to the host
  // returns once the copy (and the work queued before it) has completed.
  if (kind == cudaMemcpyHostToDevice) {
    auto staged = std::make_shared<std::vector<unsigned char>>(static_cast<const unsigned char*>(src),
                                                              static_cast<const unsigned char*>(src) + bytes);
    return cudasim::enqueue_checked(stream, "cudaMemcpyAsync",
                                    [dst, staged]() { std::memcpy(dst, staged->data(), staged->size()); });
  }
  const cudaError_t err =
      cudasim::enqueue_checked(stream, "cudaMemcpyAsync", [dst, src, bytes]() { std::memmove(dst, src, bytes); });
  if (err == cudaSuccess && kind == cudaMemcpyDeviceToHost) cudasim::drain();
  return err;
}

cudaError_t cudaMemsetAsync(void* dst, int value, std::size_t bytes, cudaStream_t stream) {
  if (state().unloaded) return cudaErrorCudartUnloading;
  if (bytes == 0) return result(cudaSuccess);
  if (!cudasim::is_device_range(dst, bytes)) {
    cudasim::api_error(cudaErrorInvalidValue,
                       "cudaMemsetAsync of " + std::to_string(bytes) + " bytes outside device memory");
    return result(cudaErrorInvalidValue);
  }
  return cudasim::enqueue_checked(stream, "cudaMemsetAsync", [dst, value, bytes]() { std::memset(dst, value, bytes); });
}

cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned int flags) {
  if (state().unloaded) return cudaErrorCudartUnloading;
  if (stream == nullptr || (flags & ~1u) != 0) return result(cudaErrorInvalidValue);
  auto& s = state();
  std::lock_guard<std::recursive_mutex> lock(s.mutex);
  auto* st = new CUstream_st{flags};
  s.streams.insert(st);
  ++s.stats.objects;
  *stream = st;
  return result(cudaSuccess);
}

cudaError_t cudaStreamDestroy(cudaStream_t stream) {
  if (state().unloaded) return cudaErrorCudartUnloading;
  auto& s = state();
  std::lock_guard<std::recursive_mutex> lock(s.mutex);
  if (stream == nullptr || s.streams.erase(stream) == 0) return result(cudaErrorInvalidResourceHandle);
  cudasim::drain();  // work queued on it still completes
  delete stream;
  return result(cudaSuccess);
}

cudaError_t cudaStreamSynchronize(cudaStream_t stream) {
  if (state().unloaded) return cudaErrorCudartUnloading;
  auto& s = state();
  std::lock_guard<std::recursive_mutex> lock(s.mutex);
  if (!cudasim::known_stream(s, stream)) return result(cudaErrorInvalidResourceHandle);
  cudasim::drain();
  return result(cudaSuccess);
}

cudaError_t cudaEventCreate(cudaEvent_t* event) {
  if (state().unloaded) return cudaErrorCudartUnloading;
  if (event == nullptr) return result(cudaErrorInvalidValue);
  auto& s = state();
  std::lock_guard<std::recursive_mutex> lock(s.mutex);
  auto* e = new CUevent_st{};
  s.events.insert(e);
  ++s.stats.objects;
  *event = e;
  return result(cudaSuccess);
}

cudaError_t cudaEventDestroy(cudaEvent_t event) {
  if (state().unloaded) return cudaErrorCudartUnloading;
  auto& s = state();
  std::lock_guard<std::recursive_mutex> lock(s.mutex);
  if (event == nullptr || s.events.count(event) == 0) return result(cudaErrorInvalidResourceHandle);
  cudasim::drain();  // a queued record must not touch a deleted event
  s.events.erase(event);
  delete event;
  return result(cudaSuccess);
}

cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream) {
  if (state().unloaded) return cudaErrorCudartUnloading;
  auto& s = state();
  std::lock_guard<std::recursive_mutex> lock(s.mutex);
  if (event == nullptr || s.events.count(event) == 0) return result(cudaErrorInvalidResourceHandle);
  event->recorded = true;
  event->completed = false;
  return cudasim::enqueue_checked(stream, "cudaEventRecord", [event]() {
    event->completed = true;
    event->when = std::chrono::steady_clock::now();
  });
}

cudaError_t cudaEventSynchronize(cudaEvent_t event) {
  if (state().unloaded) return cudaErrorCudartUnloading;
  auto& s = state();
  std::lock_guard<std::recursive_mutex> lock(s.mutex);
  if (event == nullptr || s.events.count(event) == 0) return result(cudaErrorInvalidResourceHandle);
  cudasim::drain();
  return result(cudaSuccess);
}

cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end) {
  if (state().unloaded) return cudaErrorCudartUnloading;
  auto& s = state();
  std::lock_guard<std::recursive_mutex> lock(s.mutex);
  if (ms == nullptr) return result(cudaErrorInvalidValue);
  for (cudaEvent_t e : {start, end}) {
    if (e == nullptr || s.events.count(e) == 0 || !e->recorded) return result(cudaErrorInvalidResourceHandle);
  }
  // As CUDA: not ready until the work before both records has run.
  if (!start->completed || !end->completed) return result(cudaErrorNotReady);
  *ms = std::chrono::duration<float, std::milli>(end->when - start->when).count();
  return result(cudaSuccess);
}

}  // extern "C"
