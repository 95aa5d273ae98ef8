// Adam (torch.optim.Adam, amsgrad=False): weight decay, both moments, the
// bias-corrected update, fused into one pass over the flat parameter array,
// so each of params, grads, m and v is read once and written at most once.
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
                                        int64_t n, AdamStepParams hp) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float p = params[i];
    const float g = grads[i] + hp.weight_decay * p;
    const float mi = m[i] * hp.beta1 + (1.0f - hp.beta1) * g;
    const float vi = v[i] * hp.beta2 + (1.0f - hp.beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    const float denom = sqrtf(vi) / hp.bc2_sqrt + hp.eps;
    params[i] = p - hp.step_size * (mi / denom);  // grouped as the CPU reference
  }
}

}  // namespace

void launch_adam_step(float* params, const float* grads, float* m, float* v, int64_t n,
                      const AdamStepParams& hp, cudaStream_t stream) {
  if (n <= 0) return;
  const unsigned blocks = static_cast<unsigned>(std::min<int64_t>((n + kBlock - 1) / kBlock, kMaxBlocks));
  adam_step_kernel<<<blocks, kBlock, 0, stream>>>(params, grads, m, v, n, hp);
  GCN_CHECK_LAUNCH("adam_step_kernel");
}

}  // namespace gcn::kernels
