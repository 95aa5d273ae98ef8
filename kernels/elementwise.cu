// Element-wise ops. The activation (ReLU, ELU) and dropout are fused: one
// read of the pre-activation and one write, the keep decision recomputed from
// the counter-based RNG (gcn/rng.hpp) instead of storing a mask. ReLU's
// backward needs only the forward output y (y > 0 exactly where the input
// was positive and kept); ELU's recomputes the mask, and its derivative
// comes from y (exp(x) = y · (1 - p) + 1 where kept and x <= 0).
// The backward also sums the columns of its result (the previous layer's bias
// gradient) while it has them in registers, instead of a second pass.
//
// Per-epoch values (the dropout stream) are read from the step state in
// device memory, so a recorded epoch replays with the current values.
//
// A batch of models (batch.hpp) runs one launch with the model as blockIdx.y:
// each block strides over its model's own (rows, c) elements by their index
// within that model, so the dropout stream, the scale and every rounding are
// the single model's, and each model reads its own rate from its step state.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <type_traits>

#include "check.hpp"
#include "column_chunks.hpp"
#include "elementwise.hpp"
#include "gcn/error.hpp"
#include "gcn/rng.hpp"

namespace gcn::kernels {
namespace {

constexpr int kBlock = 256;
constexpr int64_t kMaxBlocks = 1 << 16;  // grid-stride beyond this

unsigned blocks_for(int64_t n) { return static_cast<unsigned>(std::min<int64_t>((n + kBlock - 1) / kBlock, kMaxBlocks)); }

static __global__ void fill_outputs_kernel(OutputFills fills) {
  const OutputFill f = fills.item[blockIdx.y];
  const int64_t n = f.rows * f.cols;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    f.c[i] = f.bias != nullptr ? f.bias[i % f.cols] : 0.0f;
}

// The scale of kept values at rate p, rounded as the host's 1.0f / (1.0f - p);
// p >= 1 keeps nothing, so its scale is never used.
__device__ __forceinline__ float keep_scale(float p) {
  return p < 1.0f ? __fdiv_rn(1.0f, __fadd_rn(1.0f, -p)) : 0.0f;
}

// The dropout key of a model's step state at a dropout site.
__device__ __forceinline__ uint64_t mask_key(const StepState* step, uint32_t site) {
  return stream_key(site_seed(step->dropout_seed, site), static_cast<uint64_t>(step->epoch + 1));
}

template <int Act>
__device__ __forceinline__ float activate(float x) {
  if constexpr (Act == kActRelu) {
    return x > 0.0f ? x : 0.0f;
  } else {
    return x > 0.0f ? x : elu_expm1(x);  // the CPU's bits (gcn/rng.hpp)
  }
}

// dy · act'(x) · scale where kept, else 0, from the forward output y; the
// CPU's roundings (no fused multiply-add). ReLU's kept && x > 0 is y > 0.
template <int Act>
__device__ __forceinline__ float act_grad(float dy, float y, float scale, float keep_fraction, bool kept) {
  if constexpr (Act == kActRelu) {
    return y > 0.0f ? dy * scale : 0.0f;
  } else {
    if (!kept) return 0.0f;
    const float slope = y > 0.0f ? 1.0f : __fadd_rn(__fmul_rn(y, keep_fraction), 1.0f);
    return __fmul_rn(__fmul_rn(dy, slope), scale);
  }
}

template <int Act>
static __global__ void act_dropout_forward_kernel(const float* __restrict__ x,  // (n)
                                                  float* __restrict__ y,        // (n)
                                                  int64_t n, float p, float scale,
                                                  const StepState* __restrict__ step, uint32_t site) {
  const uint64_t key = p > 0.0f ? mask_key(step, site) : 0;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float v = activate<Act>(x[i]);
    if (p <= 0.0f) {
      y[i] = v;
    } else {
      // v times the mask's 0 or 1 / (1 - p), as the CPU and PyTorch do (an
      // infinite value that is dropped becomes NaN, not 0).
      y[i] = __fmul_rn(v, dropout_keep_keyed(key, static_cast<uint64_t>(i), p) ? scale : 0.0f);
    }
  }
}

// Model blockIdx.y of the batch: its element i = r * cols + c (its own index)
// is at row r, column blockIdx.y * cols + c of the (rows, gridDim.y * cols)
// matrices.
__device__ __forceinline__ int64_t batch_at(int64_t i, int64_t cols) {
  const int64_t r = i / cols;
  return r * cols * gridDim.y + static_cast<int64_t>(blockIdx.y) * cols + (i - r * cols);
}

// A model's rate: its step's (rates: the steps, a batch trained with its own
// rates) or p_all (rates null).
__device__ __forceinline__ float model_rate(const StepState* rates, int64_t model, float p_all) {
  return rates != nullptr ? rates[model].dropout : p_all;
}

template <int Act>
static __global__ void batch_act_dropout_forward_kernel(const float* __restrict__ x,  // (rows, batch * cols)
                                                        float* __restrict__ y,        // (rows, batch * cols)
                                                        int64_t rows, int64_t cols,   // cols: per model
                                                        float p_all, const StepState* __restrict__ rates,
                                                        const StepState* __restrict__ steps,  // (batch)
                                                        uint32_t site) {
  const float p = model_rate(rates, blockIdx.y, p_all);
  const float scale = keep_scale(p);
  const uint64_t key = p > 0.0f ? mask_key(steps + blockIdx.y, site) : 0;
  const int64_t n = rows * cols;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t at = batch_at(i, cols);
    const float v = activate<Act>(x[at]);
    y[at] = p <= 0.0f ? v : __fmul_rn(v, dropout_keep_keyed(key, static_cast<uint64_t>(i), p) ? scale : 0.0f);
  }
}

template <int Act>
static __global__ void batch_act_dropout_backward_kernel(const float* dy,  // (rows, batch * cols)
                                                         const float* y,   // (rows, batch * cols) forward output
                                                         float* dx,        // (rows, batch * cols), may alias dy
                                                         int64_t rows, int64_t cols,  // cols: per model
                                                         float p_all, const StepState* __restrict__ rates,
                                                         const StepState* __restrict__ steps,  // (batch)
                                                         uint32_t site) {
  const float p = model_rate(rates, blockIdx.y, p_all);
  const float scale = keep_scale(p);
  const float keep_fraction = __fadd_rn(1.0f, -p);
  const bool drop = Act == kActElu && p > 0.0f;  // ReLU's mask is y > 0
  const uint64_t key = drop ? mask_key(steps + blockIdx.y, site) : 0;
  const int64_t n = rows * cols;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t at = batch_at(i, cols);
    const bool kept = !drop || dropout_keep_keyed(key, static_cast<uint64_t>(i), p);
    dx[at] = act_grad<Act>(dy[at], y[at], scale, keep_fraction, kept);
  }
}

static __global__ void relu_dropout_backward_kernel(const float* dy,  // (n)
                                                    const float* y,   // (n) forward output
                                                    float* dx,        // (n), may alias dy
                                                    int64_t n, float scale) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    dx[i] = y[i] > 0.0f ? dy[i] * scale : 0.0f;
}

// The backward with column sums. Block (x: a tile of TX columns, y: a chunk
// of rows); thread (tx, ty) takes column tx of rows ty, ty + TY, ... of the
// chunk, then the TY sums of a column are added in ty order into the chunk's
// partial. The last block to finish (an integer ticket) adds the partials of
// each column in chunk order. Fixed order throughout; no float atomics.
// Column col belongs to model col / model_cols: its rate, and (ELU) its mask.
template <int Act>
static __global__ void act_dropout_backward_sums_kernel(const float* dy, const float* y, float* dx, int64_t rows,
                                                        int64_t cols, float p_all, int64_t model_cols,
                                                        const StepState* __restrict__ rates,
                                                        const StepState* __restrict__ steps, uint32_t site,
                                                        int64_t chunk_rows, float* __restrict__ col_sums,
                                                        double* __restrict__ partial,  // (chunks, cols)
                                                        unsigned* counter) {
  __shared__ double tile[kBlock];
  __shared__ bool last;
  const int tx = static_cast<int>(threadIdx.x), ty = static_cast<int>(threadIdx.y);
  const int tid = ty * static_cast<int>(blockDim.x) + tx;
  const int64_t col = static_cast<int64_t>(blockIdx.x) * blockDim.x + tx;
  const int64_t begin = static_cast<int64_t>(blockIdx.y) * chunk_rows;
  const int64_t end = min(rows, begin + chunk_rows);
  double acc = 0.0;
  if (col < cols) {
    const int64_t model = col / model_cols, model_col = col - model * model_cols;
    const float p = model_rate(rates, model, p_all);
    const float scale = keep_scale(p);
    const float keep_fraction = __fadd_rn(1.0f, -p);
    const bool drop = Act == kActElu && p > 0.0f;  // ReLU's mask is y > 0
    const uint64_t key = drop ? mask_key(steps + model, site) : 0;
    for (int64_t r = begin + ty; r < end; r += blockDim.y) {
      const int64_t i = r * cols + col;
      const bool kept = !drop || dropout_keep_keyed(key, static_cast<uint64_t>(r * model_cols + model_col), p);
      const float g = act_grad<Act>(dy[i], y[i], scale, keep_fraction, kept);
      dx[i] = g;
      acc += g;
    }
  }
  if (!column_chunks::last_block_after_partials(acc, col, cols, tile, &last, partial, counter)) return;
  for (int64_t c = tid; c < cols; c += static_cast<int64_t>(blockDim.x) * blockDim.y) {
    col_sums[c] = static_cast<float>(column_chunks::column_total(partial, c, cols));
  }
  if (tid == 0) *counter = 0u;  // ready for the next launch
}

// Whole 4-byte words where both ends are aligned, byte by byte otherwise.
static __global__ void copy_if_improved_kernel(unsigned char* __restrict__ dst, const unsigned char* __restrict__ src,
                                               int64_t bytes, bool words, const StepState* __restrict__ step) {
  if (step->improved == 0) return;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int64_t first = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t n_words = words ? bytes / 4 : 0;
  for (int64_t i = first; i < n_words; i += stride)
    reinterpret_cast<uint32_t*>(dst)[i] = reinterpret_cast<const uint32_t*>(src)[i];
  for (int64_t i = n_words * 4 + first; i < bytes; i += stride) dst[i] = src[i];
}

// Region blockIdx.y, model blockIdx.z: its (rows, cols) elements by their
// index within the model.
static __global__ void batch_copy_if_improved_kernel(float* __restrict__ dst, const float* __restrict__ src,
                                                     ParamRegions regions, const StepState* __restrict__ steps) {
  if (steps[blockIdx.z].improved == 0) return;
  const ParamRegion reg = regions.item[blockIdx.y];
  const int64_t n = reg.rows * reg.cols;
  const int64_t ld = reg.cols * gridDim.z;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t r = i / reg.cols;
    const int64_t at = reg.offset + r * ld + static_cast<int64_t>(blockIdx.z) * reg.cols + (i - r * reg.cols);
    dst[at] = src[at];
  }
}

int column_tile(int64_t cols) {
  int tx = 1;
  while (tx < 32 && tx < cols) tx *= 2;
  return tx;
}

using column_chunks::chunk_rows_for;

}  // namespace

void launch_fill_outputs(const OutputFills& fills, cudaStream_t stream) {
  if (fills.count <= 0) return;
  int64_t largest = 0;
  for (int i = 0; i < fills.count; ++i) largest = std::max(largest, fills.item[i].rows * fills.item[i].cols);
  if (largest <= 0) return;
  fill_outputs_kernel<<<dim3(blocks_for(largest), static_cast<unsigned>(fills.count)), kBlock, 0, stream>>>(fills);
  GCN_CHECK_LAUNCH("fill_outputs_kernel");
}

namespace {
void require_batch(int batch, const char* op) {
  if (batch < 1 || batch > kMaxBatch) {
    throw Error(std::string(op) + ": a batch of " + std::to_string(batch) + " models (at most " +
                std::to_string(kMaxBatch) + ")");
  }
}

template <class F>
void dispatch_act(int act, const char* op, F&& f) {
  if (act == kActRelu) {
    f(std::integral_constant<int, kActRelu>{});
  } else if (act == kActElu) {
    f(std::integral_constant<int, kActElu>{});
  } else {
    throw Error(std::string(op) + ": unknown activation " + std::to_string(act));
  }
}
}  // namespace

void launch_act_dropout_forward(int act, const float* x, float* y, int64_t rows, int64_t cols, int batch, float p,
                                const StepState* steps, bool rates_from_steps, uint32_t site, cudaStream_t stream) {
  require_batch(batch, "act_dropout_forward");
  const int64_t n = rows * cols;
  if (n <= 0) return;
  dispatch_act(act, "act_dropout_forward", [&](auto a) {
    constexpr int A = decltype(a)::value;
    if (batch > 1 || rates_from_steps) {
      batch_act_dropout_forward_kernel<A><<<dim3(blocks_for(n / batch), static_cast<unsigned>(batch)), kBlock, 0,
                                            stream>>>(x, y, rows, cols / batch, p, rates_from_steps ? steps : nullptr,
                                                      steps, site);
      GCN_CHECK_LAUNCH("batch_act_dropout_forward_kernel");
      return;
    }
    // p >= 1 keeps nothing (uniform01 < 1 <= p), so the scale is never used.
    const float scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
    act_dropout_forward_kernel<A><<<blocks_for(n), kBlock, 0, stream>>>(x, y, n, p, scale, p > 0.0f ? steps : nullptr,
                                                                        site);
    GCN_CHECK_LAUNCH("act_dropout_forward_kernel");
  });
}

int64_t relu_dropout_backward_scratch(int64_t rows, int64_t cols) {
  if (rows <= 0 || cols <= 0) return 0;
  const int64_t chunk = chunk_rows_for(rows);
  return (rows + chunk - 1) / chunk * cols;
}

void launch_act_dropout_backward(int act, const float* dy, const float* y, float* dx, int64_t rows, int64_t cols,
                                 int batch, float p, const StepState* steps, bool rates_from_steps, uint32_t site,
                                 float* col_sums, double* partial, unsigned* counter, cudaStream_t stream) {
  require_batch(batch, "act_dropout_backward");
  // Multiplied by 1 / (1 - p) like the CPU reference; p >= 1 leaves every y
  // at 0, so the scale is never used. A batch's scales come from its steps.
  const StepState* rates = rates_from_steps ? steps : nullptr;
  const float p_all = rates_from_steps ? 0.0f : p;
  const int64_t n = rows * cols;
  const int64_t model_cols = cols / batch;
  dispatch_act(act, "act_dropout_backward", [&](auto a) {
    constexpr int A = decltype(a)::value;
    if (col_sums == nullptr) {
      if (n <= 0) return;
      if (A == kActRelu && batch == 1 && rates == nullptr) {
        const float scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
        relu_dropout_backward_kernel<<<blocks_for(n), kBlock, 0, stream>>>(dy, y, dx, n, scale);
        GCN_CHECK_LAUNCH("relu_dropout_backward_kernel");
        return;
      }
      batch_act_dropout_backward_kernel<A><<<dim3(blocks_for(n / batch), static_cast<unsigned>(batch)), kBlock, 0,
                                             stream>>>(dy, y, dx, rows, model_cols, p_all, rates, steps, site);
      GCN_CHECK_LAUNCH("batch_act_dropout_backward_kernel");
      return;
    }
    if (cols <= 0) return;
    if (rows <= 0) {
      CUDA_CHECK(cudaMemsetAsync(col_sums, 0, static_cast<size_t>(cols) * sizeof(float), stream));
      return;
    }
    // The tile width (hence each column's summation order) from one model's
    // columns: a batch's sums are each model's own bits.
    const int tx = column_tile(model_cols);
    const dim3 block(static_cast<unsigned>(tx), static_cast<unsigned>(kBlock / tx));
    const int64_t chunk = chunk_rows_for(rows);
    const dim3 grid(static_cast<unsigned>((cols + tx - 1) / tx), static_cast<unsigned>((rows + chunk - 1) / chunk));
    act_dropout_backward_sums_kernel<A><<<grid, block, 0, stream>>>(dy, y, dx, rows, cols, p_all, model_cols, rates,
                                                                    steps, site, chunk, col_sums, partial, counter);
    GCN_CHECK_LAUNCH("act_dropout_backward_sums_kernel");
  });
}

void launch_copy_if_improved(void* dst, const void* src, std::size_t bytes, const StepState* step,
                             cudaStream_t stream) {
  const auto n = static_cast<int64_t>(bytes);
  if (n <= 0) return;
  const bool words = reinterpret_cast<uintptr_t>(dst) % 4 == 0 && reinterpret_cast<uintptr_t>(src) % 4 == 0;
  copy_if_improved_kernel<<<blocks_for(words ? (n + 3) / 4 : n), kBlock, 0, stream>>>(
      static_cast<unsigned char*>(dst), static_cast<const unsigned char*>(src), n, words, step);
  GCN_CHECK_LAUNCH("copy_if_improved_kernel");
}

void launch_batch_copy_if_improved(float* dst, const float* src, const ParamRegions& regions, const StepState* steps,
                                   int batch, cudaStream_t stream) {
  require_batch(batch, "batch_copy_if_improved");
  int64_t largest = 0;
  for (int b = 0; b < regions.count; ++b) largest = std::max(largest, regions.item[b].rows * regions.item[b].cols);
  if (largest <= 0) return;
  batch_copy_if_improved_kernel<<<dim3(blocks_for(largest), static_cast<unsigned>(regions.count),
                                       static_cast<unsigned>(batch)),
                                  kBlock, 0, stream>>>(dst, src, regions, steps);
  GCN_CHECK_LAUNCH("batch_copy_if_improved_kernel");
}

}  // namespace gcn::kernels
