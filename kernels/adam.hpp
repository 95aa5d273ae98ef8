// Launcher for one Adam step over a flat parameter array.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace gcn::kernels {

struct AdamStepParams {
  float beta1, beta2, eps, weight_decay;
  float step_size;  // lr / (1 - beta1^step), computed on the host in double
  float bc2_sqrt;   // sqrt(1 - beta2^step), computed on the host in double
};

// params, m, v (n) updated in place from grads (n).
void launch_adam_step(float* params, const float* grads, float* m, float* v, int64_t n,
                      const AdamStepParams& hp, cudaStream_t stream);

}  // namespace gcn::kernels
