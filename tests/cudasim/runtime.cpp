// The CUDA runtime API on the CPU: one simulated device (CUDASIM_DEVICES sets
// how many; 0 is a machine without a GPU), device memory from the host heap
// with a capacity (CUDASIM_MEMORY_MIB, default 16384) so that running out of
// it can be tested, lazy streams (sim.hpp), events, and CUDA's error rules:
// the last error is read and cleared by cudaGetLastError, a device fault is
// sticky. Like the CUDA runtime, it tears down at exit (an atexit handler
// registered at its first call frees all device memory), and a call after
// that gets cudaErrorCudartUnloading: a static object created before the
// first CUDA call and destroyed at exit must not own device resources.
//
// Stream capture and graphs follow the CUDA Programming Guide (CUDA Graphs,
// "Prohibited and Unhandled Operations" and "Invalidation") and the runtime
// API reference: while a stream captures, what is enqueued on it is recorded,
// not run; a prohibited call fails, invalidates the capture (what it recorded
// never runs) and cudaStreamEndCapture then returns
// cudaErrorStreamCaptureInvalidated and a null graph. Pinned host memory
// (cudaMallocHost) makes copies to and from it fully asynchronous.
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
#include <thread>
#include <utility>
#include <vector>

#include "cudasim/sim.hpp"

namespace cudasim {
// An operation recorded by a capture: each launch of the graph runs it.
struct GraphNode {
  const char* what;
  std::function<void()> op;
};
}  // namespace cudasim

struct CUstream_st {
  unsigned flags = 0;
  // Its capture, from cudaStreamBeginCapture to cudaStreamEndCapture.
  cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
  cudaStreamCaptureMode mode = cudaStreamCaptureModeGlobal;
  std::thread::id capture_thread{};
  uint64_t capture_id = 0;  // unique per capture in the process
  std::vector<cudasim::GraphNode> recorded;
};

struct CUevent_st {
  bool recorded = false;   // cudaEventRecord was called
  bool completed = false;  // the work queued before the record has run
  std::chrono::steady_clock::time_point when{};
  // Nonzero: last recorded in that capture, where a record only marks a point
  // for other captured streams to wait on; it never completes.
  uint64_t capture_id = 0;
};

struct CUgraph_st {
  std::vector<cudasim::GraphNode> nodes;
};

// Instantiation takes a snapshot of the graph; a queued launch shares it, so
// destroying the graph or the executable graph leaves a launch in flight whole.
struct CUgraphExec_st {
  std::shared_ptr<const std::vector<cudasim::GraphNode>> nodes;
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
  std::map<uintptr_t, std::size_t> pinned;  // live cudaMallocHost blocks: start -> bytes
  std::set<CUstream_st*> streams;
  std::set<CUevent_st*> events;
  std::set<CUgraph_st*> graphs;
  std::set<CUgraphExec_st*> execs;
  uint64_t captures = 0;  // the last capture id handed out
  std::deque<QueuedOp> queue;
  bool draining = false;
  int current_device = 0;
  cudaError_t last_error = cudaSuccess;
  cudaError_t sticky = cudaSuccess;
  bool unloaded = false;
  Stats stats;
};

void unload();

// Frees every device and pinned block, as a context's teardown does.
void free_all_blocks(State& s) {
  for (const auto& block : s.blocks) std::free(reinterpret_cast<void*>(block.first));
  s.blocks.clear();
  s.in_use = 0;
  for (const auto& block : s.pinned) std::free(reinterpret_cast<void*>(block.first));
  s.pinned.clear();
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
  for (CUgraph_st* g : s.graphs) delete g;
  s.graphs.clear();
  for (CUgraphExec_st* e : s.execs) delete e;
  s.execs.clear();
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

// The block of `blocks` containing p (p may be one past its end), or blocks.end().
std::map<uintptr_t, std::size_t>::const_iterator find_block(const std::map<uintptr_t, std::size_t>& blocks,
                                                            const void* p) {
  const auto addr = reinterpret_cast<uintptr_t>(p);
  auto it = blocks.upper_bound(addr);
  if (it == blocks.begin()) return blocks.end();
  --it;
  return addr <= it->first + it->second ? it : blocks.end();
}

// Whether [p, p + bytes) lies inside one block of `blocks`.
bool in_block(const std::map<uintptr_t, std::size_t>& blocks, const void* p, std::size_t bytes) {
  const auto it = find_block(blocks, p);
  return it != blocks.end() && bytes <= it->first + it->second - reinterpret_cast<uintptr_t>(p);
}

// Whether [p, p + bytes) lies inside one live cudaMallocHost block.
bool is_pinned_range(const void* p, std::size_t bytes) {
  State& s = state();
  std::lock_guard<std::recursive_mutex> lock(s.mutex);
  return in_block(s.pinned, p, bytes);
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

// ---- stream capture ----

bool in_capture(const CUstream_st* st) { return st != nullptr && st->capture != cudaStreamCaptureStatusNone; }

// What it recorded never runs; cudaStreamEndCapture will return
// cudaErrorStreamCaptureInvalidated and no graph.
void invalidate(CUstream_st* st) {
  st->capture = cudaStreamCaptureStatusInvalidated;
  st->recorded.clear();
}

// The captures that bar the calling thread from potentially unsafe calls
// (cudaThreadExchangeStreamCaptureMode, for this thread's default global
// mode): every global-mode capture, and the thread's own thread-local ones.
std::vector<CUstream_st*> barring_captures(const State& s) {
  std::vector<CUstream_st*> out;
  for (CUstream_st* st : s.streams) {
    if (!in_capture(st)) continue;
    if (st->mode == cudaStreamCaptureModeGlobal ||
        (st->mode == cudaStreamCaptureModeThreadLocal && st->capture_thread == std::this_thread::get_id()))
      out.push_back(st);
  }
  return out;
}

// Captures of blocking streams, which the legacy stream encompasses.
std::vector<CUstream_st*> blocking_captures(const State& s) {
  std::vector<CUstream_st*> out;
  for (CUstream_st* st : s.streams)
    if (in_capture(st) && (st->flags & cudaStreamNonBlocking) == 0) out.push_back(st);
  return out;
}

// A potentially unsafe call (cudaMalloc is CUDA's example: not enqueued, so
// not observed by the capture) while a capture bars it: refused with
// cudaErrorStreamCaptureUnsupported, and the captures are invalidated.
cudaError_t check_unsafe_call(State& s, const std::string& call) {
  const std::vector<CUstream_st*> barring = barring_captures(s);
  if (barring.empty()) return cudaSuccess;
  for (CUstream_st* st : barring) invalidate(st);
  api_error(cudaErrorStreamCaptureUnsupported,
            call + " during a global-mode (or this thread's thread-local) stream capture: not permitted; the capture "
                   "is invalidated");
  return cudaErrorStreamCaptureUnsupported;
}

// The legacy stream used while a blocking stream captures: it would depend
// on the capture. cudaErrorStreamCaptureImplicit, the captures invalidated.
cudaError_t check_legacy_use(State& s, const std::string& call) {
  const std::vector<CUstream_st*> blocking = blocking_captures(s);
  if (blocking.empty()) return cudaSuccess;
  for (CUstream_st* st : blocking) invalidate(st);
  api_error(cudaErrorStreamCaptureImplicit,
            call + " on the legacy stream while a blocking stream captures: not permitted; the capture is invalidated");
  return cudaErrorStreamCaptureImplicit;
}

// A capturing stream whose capture was invalidated: any use of it fails
// until cudaStreamEndCapture.
cudaError_t invalidated_use(const std::string& call) {
  api_error(cudaErrorStreamCaptureInvalidated,
            call + " on a stream whose capture was invalidated (cudaStreamEndCapture ends it)");
  return cudaErrorStreamCaptureInvalidated;
}

// The host waiting for `stream` (nullptr: the legacy stream): a capturing
// stream holds no work to wait for, the legacy stream encompasses blocking
// capturing streams, and any other host wait counts as potentially unsafe
// (GPUs refuse cudaEventQuery during a global capture).
cudaError_t check_host_wait(State& s, cudaStream_t stream, const std::string& call) {
  if (!known_stream(s, stream)) {
    api_error(cudaErrorInvalidResourceHandle, call + ": unknown or destroyed stream");
    return cudaErrorInvalidResourceHandle;
  }
  if (in_capture(stream)) {
    if (stream->capture == cudaStreamCaptureStatusInvalidated) return invalidated_use(call);
    invalidate(stream);
    api_error(cudaErrorStreamCaptureUnsupported,
              call + " waits for a capturing stream, whose work is recorded, not run: not permitted; the capture is "
                     "invalidated");
    return cudaErrorStreamCaptureUnsupported;
  }
  if (stream == nullptr) {
    const cudaError_t err = check_legacy_use(s, call);
    if (err != cudaSuccess) return err;
  }
  return check_unsafe_call(s, call);
}

// An event last recorded in a capture: it never completes, so waiting for it
// or timing it is cudaErrorCapturedEvent, and invalidates that capture if it
// is still in progress.
cudaError_t captured_event_use(State& s, cudaEvent_t event, const std::string& call) {
  for (CUstream_st* st : s.streams)
    if (st->capture == cudaStreamCaptureStatusActive && st->capture_id == event->capture_id) invalidate(st);
  api_error(cudaErrorCapturedEvent, call + " of an event last recorded in a capturing stream: it never completes");
  return cudaErrorCapturedEvent;
}

cudaError_t enqueue_checked(cudaStream_t stream, const char* what, std::function<void()> op) {
  return result(enqueue(stream, what, std::move(op)));
}

}  // namespace

cudaError_t enqueue(cudaStream_t stream, const char* what, std::function<void()> op) {
  State& s = state();
  std::lock_guard<std::recursive_mutex> lock(s.mutex);
  if (s.unloaded) return cudaErrorCudartUnloading;
  if (s.sticky != cudaSuccess) return s.sticky;
  if (!known_stream(s, stream)) {
    api_error(cudaErrorInvalidResourceHandle, std::string(what) + ": unknown or destroyed stream");
    return cudaErrorInvalidResourceHandle;
  }
  if (stream == nullptr) {
    const cudaError_t err = check_legacy_use(s, what);
    if (err != cudaSuccess) return err;
  } else if (stream->capture == cudaStreamCaptureStatusInvalidated) {
    return invalidated_use(what);
  } else if (stream->capture == cudaStreamCaptureStatusActive) {
    // Traced with another word, so that counting "queued" lines counts what
    // the streams run.
    if (tracing()) std::fprintf(stderr, "cudasim: captured %s\n", what);
    stream->recorded.push_back(GraphNode{what, std::move(op)});
    return cudaSuccess;
  }
  if (tracing()) std::fprintf(stderr, "cudasim: queued %s\n", what);
  s.queue.push_back(QueuedOp{stream, what, std::move(op)});
  return cudaSuccess;
}

bool capturing(cudaStream_t stream) {
  State& s = state();
  std::lock_guard<std::recursive_mutex> lock(s.mutex);
  return stream != nullptr && s.streams.count(stream) != 0 && in_capture(stream);
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
  return in_block(s.blocks, p, bytes);
}

bool is_device_pointer(const void* p) {
  State& s = state();
  std::lock_guard<std::recursive_mutex> lock(s.mutex);
  return find_block(s.blocks, p) != s.blocks.end();
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
  for (CUstream_st* st : s.streams) {
    st->capture = cudaStreamCaptureStatusNone;
    st->recorded.clear();
  }
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
  auto& s = state();
  std::lock_guard<std::recursive_mutex> lock(s.mutex);
  // The device encompasses every capturing stream, in any capture mode.
  bool any = false;
  for (CUstream_st* st : s.streams) {
    if (!cudasim::in_capture(st)) continue;
    cudasim::invalidate(st);
    any = true;
  }
  if (any) {
    cudasim::api_error(cudaErrorStreamCaptureUnsupported,
                       "cudaDeviceSynchronize while a stream captures: not permitted; the capture is invalidated");
    return result(cudaErrorStreamCaptureUnsupported);
  }
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
    case cudaErrorIllegalState: return "cudaErrorIllegalState";
    case cudaErrorNotReady: return "cudaErrorNotReady";
    case cudaErrorIllegalAddress: return "cudaErrorIllegalAddress";
    case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
    case cudaErrorStreamCaptureUnsupported: return "cudaErrorStreamCaptureUnsupported";
    case cudaErrorStreamCaptureInvalidated: return "cudaErrorStreamCaptureInvalidated";
    case cudaErrorStreamCaptureImplicit: return "cudaErrorStreamCaptureImplicit";
    case cudaErrorCapturedEvent: return "cudaErrorCapturedEvent";
    case cudaErrorStreamCaptureWrongThread: return "cudaErrorStreamCaptureWrongThread";
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
    case cudaErrorIllegalState: return "the operation cannot be performed in the present state";
    case cudaErrorNotReady: return "device not ready";
    case cudaErrorIllegalAddress: return "an illegal memory access was encountered";
    case cudaErrorLaunchFailure: return "unspecified launch failure";
    case cudaErrorStreamCaptureUnsupported: return "operation not permitted when stream is capturing";
    case cudaErrorStreamCaptureInvalidated: return "operation failed due to a previous error during capture";
    case cudaErrorStreamCaptureImplicit:
      return "operation would make the legacy stream depend on a capturing blocking stream";
    case cudaErrorCapturedEvent: return "operation not permitted on an event last recorded in a capturing stream";
    case cudaErrorStreamCaptureWrongThread:
      return "attempt to terminate a thread-local capture sequence from another thread";
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
  if (const cudaError_t err = cudasim::check_unsafe_call(s, "cudaMalloc")) return result(err);
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
  if (const cudaError_t err = cudasim::check_unsafe_call(s, "cudaFree")) return result(err);
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

// Page-locked host memory, not device memory: no kernel may take a pointer to
// it (mapped memory is not simulated), and copies to and from it are fully
// asynchronous.
cudaError_t cudaMallocHost(void** ptr, std::size_t bytes) {
  if (state().unloaded) return cudaErrorCudartUnloading;
  auto& s = state();
  std::lock_guard<std::recursive_mutex> lock(s.mutex);
  if (ptr == nullptr) return result(cudaErrorInvalidValue);
  *ptr = nullptr;
  if (s.sticky != cudaSuccess) return s.sticky;
  if (const cudaError_t err = cudasim::check_unsafe_call(s, "cudaMallocHost")) return result(err);
  if (bytes == 0) return result(cudaSuccess);
  void* p = nullptr;
  if (posix_memalign(&p, 4096, bytes) != 0) return result(cudaErrorMemoryAllocation);  // whole pages
  std::memset(p, 0xff, bytes);  // not zeroed: a read before the copy lands shows
  s.pinned.emplace(reinterpret_cast<uintptr_t>(p), bytes);
  ++s.stats.pinned_mallocs;
  *ptr = p;
  return result(cudaSuccess);
}

cudaError_t cudaFreeHost(void* ptr) {
  if (state().unloaded) return cudaErrorCudartUnloading;
  auto& s = state();
  std::lock_guard<std::recursive_mutex> lock(s.mutex);
  if (const cudaError_t err = cudasim::check_unsafe_call(s, "cudaFreeHost")) return result(err);
  if (ptr == nullptr) return result(cudaSuccess);
  cudasim::drain();  // as cudaFree: a queued copy never sees the block freed
  const auto it = s.pinned.find(reinterpret_cast<uintptr_t>(ptr));
  if (it == s.pinned.end()) {
    cudasim::api_error(cudaErrorInvalidValue, "cudaFreeHost of a pointer that is not a live cudaMallocHost block");
    return result(cudaErrorInvalidValue);
  }
  s.pinned.erase(it);
  std::free(ptr);
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
  auto& s = state();
  std::lock_guard<std::recursive_mutex> lock(s.mutex);
  const void* host = kind == cudaMemcpyHostToDevice ? src : kind == cudaMemcpyDeviceToHost ? dst : nullptr;
  const bool pinned = host != nullptr && cudasim::is_pinned_range(host, bytes);
  // Run when the stream gets to it (or a graph launch does): the memory must
  // still be there then.
  auto copy = [dst, src, bytes, kind, host, pinned]() {
    const bool live = (kind == cudaMemcpyHostToDevice || cudasim::is_device_range(src, bytes)) &&
                      (kind == cudaMemcpyDeviceToHost || cudasim::is_device_range(dst, bytes)) &&
                      (!pinned || cudasim::is_pinned_range(host, bytes));
    if (!live) {
      cudasim::fault(cudaErrorIllegalAddress,
                     "cudaMemcpyAsync of " + std::to_string(bytes) + " bytes: its memory was freed before it ran");
      return;
    }
    std::memmove(dst, src, bytes);
  };
  // CUDA's API synchronization behavior: with pinned host memory the copy is
  // fully asynchronous (the host waits for the stream or an event before it
  // reads or reuses the buffer). With pageable memory, one to the device
  // returns once the source has been staged, one to the host once the copy
  // (and the work queued before it) has completed. A capture records either
  // (CUDA captures pageable copies too); the recorded copy reads and writes
  // the host memory when the graph runs.
  if (pinned || kind == cudaMemcpyDeviceToDevice || cudasim::capturing(stream))
    return cudasim::enqueue_checked(stream, "cudaMemcpyAsync", copy);
  if (kind == cudaMemcpyHostToDevice) {
    auto staged = std::make_shared<std::vector<unsigned char>>(static_cast<const unsigned char*>(src),
                                                              static_cast<const unsigned char*>(src) + bytes);
    return cudasim::enqueue_checked(stream, "cudaMemcpyAsync", [dst, staged]() {
      if (!cudasim::is_device_range(dst, staged->size())) {
        cudasim::fault(cudaErrorIllegalAddress, "cudaMemcpyAsync of " + std::to_string(staged->size()) +
                                                    " bytes: its memory was freed before it ran");
        return;
      }
      std::memcpy(dst, staged->data(), staged->size());
    });
  }
  if (const cudaError_t err = cudasim::check_host_wait(s, stream, "cudaMemcpyAsync to pageable host memory"))
    return result(err);
  const cudaError_t err = cudasim::enqueue_checked(stream, "cudaMemcpyAsync", copy);
  if (err == cudaSuccess) cudasim::drain();
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
  return cudasim::enqueue_checked(stream, "cudaMemsetAsync", [dst, value, bytes]() {
    if (!cudasim::is_device_range(dst, bytes)) {  // freed since (a graph launch can come later)
      cudasim::fault(cudaErrorIllegalAddress,
                     "cudaMemsetAsync of " + std::to_string(bytes) + " bytes: its memory was freed before it ran");
      return;
    }
    std::memset(dst, value, bytes);
  });
}

cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned int flags) {
  if (state().unloaded) return cudaErrorCudartUnloading;
  if (stream == nullptr || (flags & ~1u) != 0) return result(cudaErrorInvalidValue);
  auto& s = state();
  std::lock_guard<std::recursive_mutex> lock(s.mutex);
  auto* st = new CUstream_st;
  st->flags = flags;
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
  if (const cudaError_t err = cudasim::check_host_wait(s, stream, "cudaStreamSynchronize")) return result(err);
  cudasim::drain();
  return result(cudaSuccess);
}

cudaError_t cudaStreamBeginCapture(cudaStream_t stream, cudaStreamCaptureMode mode) {
  if (state().unloaded) return cudaErrorCudartUnloading;
  auto& s = state();
  std::lock_guard<std::recursive_mutex> lock(s.mutex);
  if (s.sticky != cudaSuccess) return s.sticky;
  if (mode != cudaStreamCaptureModeGlobal && mode != cudaStreamCaptureModeThreadLocal &&
      mode != cudaStreamCaptureModeRelaxed)
    return result(cudaErrorInvalidValue);
  if (stream == nullptr) {  // "Capture may not be initiated if stream is cudaStreamLegacy."
    cudasim::api_error(cudaErrorStreamCaptureUnsupported, "cudaStreamBeginCapture on the legacy stream, which CUDA cannot capture");
    return result(cudaErrorStreamCaptureUnsupported);
  }
  if (!cudasim::known_stream(s, stream)) return result(cudaErrorInvalidResourceHandle);
  if (stream->capture != cudaStreamCaptureStatusNone) {
    cudasim::api_error(cudaErrorIllegalState, "cudaStreamBeginCapture on a stream already capturing");
    return result(cudaErrorIllegalState);
  }
  stream->capture = cudaStreamCaptureStatusActive;
  stream->mode = mode;
  stream->capture_thread = std::this_thread::get_id();
  stream->capture_id = ++s.captures;
  stream->recorded.clear();
  ++s.stats.captures_begun;
  return result(cudaSuccess);
}

cudaError_t cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t* graph) {
  if (state().unloaded) return cudaErrorCudartUnloading;
  auto& s = state();
  std::lock_guard<std::recursive_mutex> lock(s.mutex);
  if (graph == nullptr) return result(cudaErrorInvalidValue);
  if (!cudasim::known_stream(s, stream)) return result(cudaErrorInvalidResourceHandle);
  if (!cudasim::in_capture(stream)) {
    cudasim::api_error(cudaErrorIllegalState, "cudaStreamEndCapture on a stream that is not capturing");
    return result(cudaErrorIllegalState);
  }
  if (stream->mode != cudaStreamCaptureModeRelaxed && stream->capture_thread != std::this_thread::get_id()) {
    cudasim::api_error(cudaErrorStreamCaptureWrongThread,
                       "cudaStreamEndCapture from another thread than the one that began the capture (not relaxed)");
    return result(cudaErrorStreamCaptureWrongThread);
  }
  const bool valid = stream->capture == cudaStreamCaptureStatusActive;
  std::vector<cudasim::GraphNode> nodes = std::move(stream->recorded);
  stream->recorded.clear();
  stream->capture = cudaStreamCaptureStatusNone;
  ++s.stats.captures_ended;
  if (!valid) {  // "... will also return an error value and a NULL graph"
    *graph = nullptr;
    cudasim::api_error(cudaErrorStreamCaptureInvalidated,
                       "cudaStreamEndCapture: the capture was invalidated by an earlier error; no graph");
    return result(cudaErrorStreamCaptureInvalidated);
  }
  if (s.sticky != cudaSuccess) return s.sticky;
  auto* g = new CUgraph_st{std::move(nodes)};
  s.graphs.insert(g);
  ++s.stats.objects;
  *graph = g;
  return result(cudaSuccess);
}

cudaError_t cudaStreamIsCapturing(cudaStream_t stream, cudaStreamCaptureStatus* status) {
  if (state().unloaded) return cudaErrorCudartUnloading;
  auto& s = state();
  std::lock_guard<std::recursive_mutex> lock(s.mutex);
  if (status == nullptr) return result(cudaErrorInvalidValue);
  if (!cudasim::known_stream(s, stream)) return result(cudaErrorInvalidResourceHandle);
  // On the legacy stream while a blocking stream captures: an error, but
  // (unlike other uses of it) the capture is not invalidated.
  if (stream == nullptr && !cudasim::blocking_captures(s).empty()) {
    cudasim::api_error(cudaErrorStreamCaptureImplicit, "cudaStreamIsCapturing of the legacy stream while a "
                                                       "blocking stream captures");
    return result(cudaErrorStreamCaptureImplicit);
  }
  *status = stream == nullptr ? cudaStreamCaptureStatusNone : stream->capture;
  return result(cudaSuccess);
}

cudaError_t cudaGraphInstantiate(cudaGraphExec_t* exec, cudaGraph_t graph, unsigned long long flags) {
  if (state().unloaded) return cudaErrorCudartUnloading;
  auto& s = state();
  std::lock_guard<std::recursive_mutex> lock(s.mutex);
  if (exec == nullptr || graph == nullptr || s.graphs.count(graph) == 0) return result(cudaErrorInvalidValue);
  if (flags != 0) {
    cudasim::api_error(cudaErrorInvalidValue,
                       "cudaGraphInstantiate with flags " + std::to_string(flags) + ": only 0 is simulated");
    return result(cudaErrorInvalidValue);
  }
  if (s.sticky != cudaSuccess) return s.sticky;
  auto* e = new CUgraphExec_st{std::make_shared<const std::vector<cudasim::GraphNode>>(graph->nodes)};
  s.execs.insert(e);
  ++s.stats.objects;
  *exec = e;
  return result(cudaSuccess);
}

// One operation on the stream, traced as "cudaGraphLaunch", that runs the
// recorded operations in order with the arguments they were captured with.
cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t stream) {
  if (state().unloaded) return cudaErrorCudartUnloading;
  auto& s = state();
  std::lock_guard<std::recursive_mutex> lock(s.mutex);
  if (exec == nullptr || s.execs.count(exec) == 0) return result(cudaErrorInvalidValue);
  if (cudasim::capturing(stream)) {  // a child graph node: not simulated
    if (stream->capture == cudaStreamCaptureStatusInvalidated) return result(cudasim::invalidated_use("cudaGraphLaunch"));
    cudasim::invalidate(stream);
    cudasim::api_error(cudaErrorStreamCaptureUnsupported,
                       "cudaGraphLaunch into a capturing stream is not simulated; the capture is invalidated");
    return result(cudaErrorStreamCaptureUnsupported);
  }
  const cudaError_t err = cudasim::enqueue(stream, "cudaGraphLaunch", [nodes = exec->nodes]() {
    for (const cudasim::GraphNode& node : *nodes) {
      if (cudasim::sticky_error() != cudaSuccess) return;  // a fault stops the rest, as in a stream
      node.op();
    }
  });
  if (err == cudaSuccess) ++s.stats.graph_launches;
  return result(err);
}

cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec) {
  if (state().unloaded) return cudaErrorCudartUnloading;
  auto& s = state();
  std::lock_guard<std::recursive_mutex> lock(s.mutex);
  if (exec == nullptr || s.execs.erase(exec) == 0) return result(cudaErrorInvalidValue);
  delete exec;  // a queued launch keeps its own reference to the nodes
  return result(cudaSuccess);
}

cudaError_t cudaGraphDestroy(cudaGraph_t graph) {
  if (state().unloaded) return cudaErrorCudartUnloading;
  auto& s = state();
  std::lock_guard<std::recursive_mutex> lock(s.mutex);
  if (graph == nullptr || s.graphs.erase(graph) == 0) return result(cudaErrorInvalidValue);
  delete graph;
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
  if (cudasim::capturing(stream)) {
    // A record in a capture makes no node: it marks a point other captured
    // streams may wait on, and the event never completes.
    if (stream->capture == cudaStreamCaptureStatusInvalidated)
      return result(cudasim::invalidated_use("cudaEventRecord"));
    if (cudasim::tracing()) std::fprintf(stderr, "cudasim: captured cudaEventRecord\n");
    event->recorded = true;
    event->completed = false;
    event->capture_id = stream->capture_id;
    return result(cudaSuccess);
  }
  const cudaError_t err = cudasim::enqueue_checked(stream, "cudaEventRecord", [event]() {
    event->completed = true;
    event->when = std::chrono::steady_clock::now();
  });
  if (err == cudaSuccess) {
    event->recorded = true;
    event->completed = false;
    event->capture_id = 0;
  }
  return err;
}

cudaError_t cudaEventSynchronize(cudaEvent_t event) {
  if (state().unloaded) return cudaErrorCudartUnloading;
  auto& s = state();
  std::lock_guard<std::recursive_mutex> lock(s.mutex);
  if (event == nullptr || s.events.count(event) == 0) return result(cudaErrorInvalidResourceHandle);
  if (event->capture_id != 0) return result(cudasim::captured_event_use(s, event, "cudaEventSynchronize"));
  if (const cudaError_t err = cudasim::check_unsafe_call(s, "cudaEventSynchronize")) return result(err);
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
  for (cudaEvent_t e : {start, end})
    if (e->capture_id != 0) return result(cudasim::captured_event_use(s, e, "cudaEventElapsedTime"));
  // As CUDA: not ready until the work before both records has run.
  if (!start->completed || !end->completed) return result(cudaErrorNotReady);
  *ms = std::chrono::duration<float, std::milli>(end->when - start->when).count();
  return result(cudaSuccess);
}

}  // extern "C"
