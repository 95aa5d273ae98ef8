// Launcher for one Adam step over a flat parameter array.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "gcn/step_state.hpp"

namespace gcn::kernels {

struct AdamHyper {
  float lr, beta1, beta2, eps, weight_decay;
};

// params, m, v (n) updated in place from grads (n), step step->epoch + 1
// (read on the device, with the bias corrections computed there from it);
// nothing once step->stopped is set.
void launch_adam_step(float* params, const float* grads, float* m, float* v, int64_t n, const AdamHyper& hp,
                      const StepState* step, cudaStream_t stream);

}  // namespace gcn::kernels
