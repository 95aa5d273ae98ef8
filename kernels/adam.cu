// Adam (torch.optim.Adam, amsgrad=False): weight decay, both moments, the
// bias-corrected update, fused into one pass over the flat parameter array,
// so each of params, grads, m and v is read once and written at most once.
//
// The step comes from the step state in device memory, and the bias
// corrections are computed from it here, in double as torch does (Python
// floats), so a recorded epoch replays with the right step. Every float
// operation is an explicitly rounded intrinsic in the CPU reference's order:
// nvcc would otherwise contract g + wd * p and friends into FMAs, which the
// CPU build (-ffp-contract=off) never does.
#include <cuda_runtime.h>

#include <algorithm>

#include "adam.hpp"
#include "check.hpp"

namespace gcn::kernels {
namespace {

constexpr int kBlock = 256;
constexpr int64_t kMaxBlocks = 1 << 16;

static __global__ void adam_step_kernel(float* __restrict__ params,       // (n)
                                        const float* __restrict__ grads,  // (n)
                                        float* __restrict__ m,            // (n)
                                        float* __restrict__ v,            // (n)
                                        int64_t n, AdamHyper hp, const StepState* __restrict__ state) {
  if (state->stopped != 0) return;
  const double step = static_cast<double>(state->epoch + 1);
  const double bc1 = 1.0 - pow(static_cast<double>(hp.beta1), step);
  const double bc2 = 1.0 - pow(static_cast<double>(hp.beta2), step);
  const float step_size = static_cast<float>(static_cast<double>(hp.lr) / bc1);
  const float bc2_sqrt = static_cast<float>(sqrt(bc2));
  const float one_minus_b1 = __fadd_rn(1.0f, -hp.beta1);
  const float one_minus_b2 = __fadd_rn(1.0f, -hp.beta2);
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float p = params[i];
    const float g = __fadd_rn(grads[i], __fmul_rn(hp.weight_decay, p));
    const float mi = __fadd_rn(__fmul_rn(m[i], hp.beta1), __fmul_rn(one_minus_b1, g));
    const float vi = __fadd_rn(__fmul_rn(v[i], hp.beta2), __fmul_rn(__fmul_rn(one_minus_b2, g), g));
    m[i] = mi;
    v[i] = vi;
    const float denom = __fadd_rn(__fdiv_rn(__fsqrt_rn(vi), bc2_sqrt), hp.eps);
    params[i] = __fadd_rn(p, -__fmul_rn(step_size, __fdiv_rn(mi, denom)));  // grouped as the CPU reference
  }
}

}  // namespace

void launch_adam_step(float* params, const float* grads, float* m, float* v, int64_t n, const AdamHyper& hp,
                      const StepState* step, cudaStream_t stream) {
  if (n <= 0) return;
  const unsigned blocks = static_cast<unsigned>(std::min<int64_t>((n + kBlock - 1) / kBlock, kMaxBlocks));
  adam_step_kernel<<<blocks, kBlock, 0, stream>>>(params, grads, m, v, n, hp, step);
  GCN_CHECK_LAUNCH("adam_step_kernel");
}

}  // namespace gcn::kernels
