// cudasim's stand-in for <cuda_runtime.h>: the runtime API plus the device
// side of CUDA C++ that gcn-train's kernels use, so kernels/*.cu compile with
// the host compiler and run on the CPU (after the build rewrites each
// `kernel<<<grid, block, shmem, stream>>>(args)` into a cudasim::launch call).
#pragma once

#include "cuda_runtime_api.h"
#include "cudasim/device.hpp"
