// Launcher for one Adam step over the parameter arrays of one model or of a
// batch of models.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "batch.hpp"
#include "gcn/backend/step_state.hpp"

namespace gcn::kernels {

struct AdamHyper {
  float lr, beta1, beta2, eps, weight_decay;
};

// params, m, v updated in place from grads over every element of the regions
// (batch.hpp), model k's with step steps[k].epoch + 1 (read on the device,
// with the bias corrections computed there from it), nothing for a model
// whose steps[k].stopped is set. With rates_from_steps model k's lr and
// weight decay are steps[k].lr and steps[k].weight_decay, else hp's (then
// batch is 1). One model's flat array of n parameters is the region
// {0, n, 1} with batch 1. At most kMaxBatch models.
void launch_adam_step(float* params, const float* grads, float* m, float* v, const ParamRegions& regions,
                      const AdamHyper& hp, const StepState* steps, int batch, bool rates_from_steps,
                      cudaStream_t stream);

}  // namespace gcn::kernels
