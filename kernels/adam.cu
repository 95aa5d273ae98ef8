// Adam (torch.optim.Adam, amsgrad=False): weight decay, both moments, the
// bias-corrected update, fused into one pass over the parameter arrays, so
// each of params, grads, m and v is read once and written at most once.
//
// The step comes from the step state in device memory, and the bias
// corrections are computed from it here, in double as torch does (Python
// floats), so a recorded epoch replays with the right step. Every float
// operation is an explicitly rounded intrinsic in the CPU reference's order:
// nvcc would otherwise contract g + wd * p and friends into FMAs, which the
// CPU build (-ffp-contract=off) never does.
//
// One launch covers every parameter region and every model of a batch
// (blockIdx.y the region, blockIdx.z the model): each block computes its
// model's corrections once and strides over that model's elements of the
// region, so an element gets the bits a single model's step gives it.
#include <cuda_runtime.h>

#include <algorithm>
#include <string>

#include "adam.hpp"
#include "check.hpp"
#include "gcn/error.hpp"

namespace gcn::kernels {
namespace {

constexpr int kBlock = 256;
constexpr int64_t kMaxBlocks = 1 << 16;

static __global__ void adam_step_kernel(float* __restrict__ params,       // the regions' elements
                                        const float* __restrict__ grads,  // (same layout)
                                        float* __restrict__ m,            // (same layout)
                                        float* __restrict__ v,            // (same layout)
                                        ParamRegions regions, AdamHyper hp, const StepState* __restrict__ steps,
                                        bool rates_from_steps) {
  const StepState* state = steps + blockIdx.z;
  if (state->stopped != 0) return;
  const float lr = rates_from_steps ? state->lr : hp.lr;
  const float weight_decay = rates_from_steps ? state->weight_decay : hp.weight_decay;
  const double step = static_cast<double>(state->epoch + 1);
  const double bc1 = 1.0 - pow(static_cast<double>(hp.beta1), step);
  const double bc2 = 1.0 - pow(static_cast<double>(hp.beta2), step);
  const float step_size = static_cast<float>(static_cast<double>(lr) / bc1);
  const float bc2_sqrt = static_cast<float>(sqrt(bc2));
  const float one_minus_b1 = __fadd_rn(1.0f, -hp.beta1);
  const float one_minus_b2 = __fadd_rn(1.0f, -hp.beta2);
  const ParamRegion reg = regions.item[blockIdx.y];
  const int64_t n = reg.rows * reg.cols;
  const int64_t ld = reg.cols * gridDim.z;
  const int64_t first_col = static_cast<int64_t>(blockIdx.z) * reg.cols;
  for (int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < n;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t r = e / reg.cols;
    const int64_t i = reg.offset + r * ld + first_col + (e - r * reg.cols);
    const float p = params[i];
    const float g = __fadd_rn(grads[i], __fmul_rn(weight_decay, p));
    const float mi = __fadd_rn(__fmul_rn(m[i], hp.beta1), __fmul_rn(one_minus_b1, g));
    const float vi = __fadd_rn(__fmul_rn(v[i], hp.beta2), __fmul_rn(__fmul_rn(one_minus_b2, g), g));
    m[i] = mi;
    v[i] = vi;
    const float denom = __fadd_rn(__fdiv_rn(__fsqrt_rn(vi), bc2_sqrt), hp.eps);
    params[i] = __fadd_rn(p, -__fmul_rn(step_size, __fdiv_rn(mi, denom)));  // grouped as the CPU reference
  }
}

}  // namespace

void launch_adam_step(float* params, const float* grads, float* m, float* v, const ParamRegions& regions,
                      const AdamHyper& hp, const StepState* steps, int batch, bool rates_from_steps,
                      cudaStream_t stream) {
  if (batch < 1 || batch > kMaxBatch || (batch > 1 && !rates_from_steps)) {
    throw Error("adam_step: a batch of " + std::to_string(batch) + " models" +
                (rates_from_steps ? "" : " without per-model rates") + " (at most " + std::to_string(kMaxBatch) +
                ")");
  }
  int64_t largest = 0;
  for (int b = 0; b < regions.count; ++b) largest = std::max(largest, regions.item[b].rows * regions.item[b].cols);
  if (largest <= 0) return;
  const unsigned blocks = static_cast<unsigned>(std::min<int64_t>((largest + kBlock - 1) / kBlock, kMaxBlocks));
  adam_step_kernel<<<dim3(blocks, static_cast<unsigned>(regions.count), static_cast<unsigned>(batch)), kBlock, 0,
                     stream>>>(params, grads, m, v, regions, hp, steps, rates_from_steps);
  GCN_CHECK_LAUNCH("adam_step_kernel");
}

}  // namespace gcn::kernels
