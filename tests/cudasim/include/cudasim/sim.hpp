// cudasim's internals shared by the fake runtime, cuBLAS, cuSPARSE and the
// kernel launcher: device memory bookkeeping, stream queues, errors.
//
// Streams run lazily: an operation queued on a stream (a memset, a kernel, a
// library call, a copy to the device) runs only when the host waits for it
// (cudaStreamSynchronize, cudaEventSynchronize, cudaDeviceSynchronize,
// cudaFree, cudaFreeHost, a copy to pageable host memory), all queued work in
// the order it was queued. So an event is not complete until the host has
// waited for it, as on a GPU.
//
// While a stream captures (cudaStreamBeginCapture), what is enqueued on it is
// recorded into its graph instead of queued; cudaGraphLaunch queues one
// operation that runs the recorded ones in order.
#pragma once

#include <cstddef>
#include <functional>
#include <string>

#include "cuda_runtime_api.h"

namespace cudasim {

// Queues op on stream (nullptr: the legacy default stream), or records it
// into the stream's graph while the stream captures; what names it in
// messages and the CUDASIM_TRACE lines. Returns the call's error, also left
// for cudaGetLastError: an unknown stream, use of the legacy stream while a
// blocking stream captures (cudaErrorStreamCaptureImplicit, which invalidates
// that capture), a stream whose capture was invalidated. Dropped (never run)
// once a sticky error has occurred, which it returns.
cudaError_t enqueue(cudaStream_t stream, const char* what, std::function<void()> op);
// Whether stream is capturing (its work is recorded, not queued).
bool capturing(cudaStream_t stream);
// Runs all queued work (every stream, in queue order).
void drain();

// Whether [p, p + bytes) lies inside one live cudaMalloc block.
bool is_device_range(const void* p, std::size_t bytes);
// Whether p points into (or one past the end of) a live cudaMalloc block.
bool is_device_pointer(const void* p);

// A device-side fault (illegal address, misuse of a warp or block
// primitive): prints "cudasim: <message>" to stderr and makes err sticky, as
// a kernel fault corrupts a real CUDA context: every later call returns it.
void fault(cudaError_t err, const std::string& message);
// A non-sticky error of the last call (bad launch configuration, bad
// argument): printed, then returned by the next cudaGetLastError.
void api_error(cudaError_t err, const std::string& message);
// The sticky error, cudaSuccess while there is none.
cudaError_t sticky_error();

// Counts since the process started, for tests of what the host code does.
struct Stats {
  uint64_t host_waits = 0;  // times the host waited while device work was queued
  uint64_t mallocs = 0;     // successful cudaMalloc calls
  uint64_t launches = 0;    // kernels queued (not those recorded by a capture)
  uint64_t objects = 0;     // streams, events, cuBLAS/cuSPARSE handles and descriptors, graphs and
                            // executable graphs created
  uint64_t pinned_mallocs = 0;  // successful cudaMallocHost calls
  uint64_t captures_begun = 0;  // successful cudaStreamBeginCapture calls
  uint64_t captures_ended = 0;  // captures ended by cudaStreamEndCapture (invalidated ones included)
  uint64_t graph_launches = 0;  // cudaGraphLaunch calls queued
};
Stats stats();
void count_launch();
void count_object();

// For tests of the simulator: drops queued work, both errors, every capture
// in progress and every device and pinned block, as a fresh process would
// start (a real CUDA context cannot recover from a fault). Outside it, a block
// never freed is a leak LeakSanitizer reports.
void reset_for_tests();

}  // namespace cudasim
