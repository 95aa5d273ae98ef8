// The CPU backend: the reference every CUDA op is tested against, and the
// fallback. Rows are spread over OpenMP threads; every reduction runs in a
// fixed order (double accumulators), so results do not depend on the thread
// count.
#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <new>
#include <type_traits>
#include <utility>
#include <unordered_map>
#include <vector>

#include <fmt/format.h>

#include "gcn/backend/backend.hpp"
#include "gcn/backend/devices.hpp"
#include "gcn/error.hpp"
#include "gcn/data/dataset.hpp"
#include "gcn/rng.hpp"
#include "cpu_kernels.hpp"
#include "backend/op_checks.hpp"

namespace gcn {
namespace {

// Below about a million element operations an op runs on one thread: a
// parallel region's fork and join cost microseconds on a quiet machine, and
// milliseconds on a loaded one (the second thread waits for a time slice), so
// Cora-sized ops (tens of microseconds of work) lose more than they gain.
constexpr int64_t kParallelMin = 1 << 20;

using detail::require;
using detail::shape;

// Runs fn(begin, end) over [0, n): split into one contiguous range per
// thread when parallel, else one call. Each element's result does not depend
// on the split.
template <class Fn>
void for_ranges(int n_threads, int64_t n, bool parallel, Fn&& fn) {
  if (!parallel || n_threads <= 1 || n < 2) {
    fn(int64_t{0}, n);
    return;
  }
#pragma omp parallel num_threads(n_threads)
  {
    const int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
    fn(n * t / nt, n * (t + 1) / nt);
  }
}

class CpuSparse final : public SparseMatrix {
 public:
  explicit CpuSparse(CsrMatrix m)
      : SparseMatrix(m.n_rows, m.n_cols, m.nnz()), csr(std::move(m)), order(cpu::rows_by_length(csr.indptr)) {
    // The work before each position of `order`: its rows' entries, plus one
    // per row (the row's output), for splits of equal work.
    work.assign(order.size() + 1, 0);
    for (std::size_t g = 0; g < order.size(); ++g) {
      work[g + 1] = work[g] + 1 + (csr.indptr[order[g] + 1] - csr.indptr[order[g]]);
    }
  }
  // Positions [g0, g1) of `order` for part t of n: about equal work, cut at
  // multiples of four (the SpMM's row groups).
  int64_t split(int64_t t, int64_t n) const {
    if (t <= 0) return 0;
    if (t >= n) return static_cast<int64_t>(order.size());
    const int64_t target = work.back() * t / n;
    int64_t g = std::lower_bound(work.begin(), work.end(), target) - work.begin();
    g = std::min<int64_t>(g / 4 * 4, static_cast<int64_t>(order.size()));
    return g;
  }
  CsrMatrix csr;
  std::vector<int32_t> order;  // rows by length: the SpMM takes rows of similar length four at a time
  std::vector<int64_t> work;
};

// MemAvailable from /proc/meminfo (the memory new allocations can get
// without swapping), or 0 where it cannot be read.
std::size_t host_available_bytes() {
  std::FILE* f = std::fopen("/proc/meminfo", "r");
  if (f == nullptr) return 0;
  char line[256];
  unsigned long long kib = 0;
  while (std::fgets(line, sizeof line, f) != nullptr) {
    if (std::sscanf(line, "MemAvailable: %llu kB", &kib) == 1) break;
  }
  std::fclose(f);
  return static_cast<std::size_t>(kib) * 1024;
}

// The unfused baseline gcn-bench compares the fused loss with.
class CpuBenchOps final : public BenchOps {
 public:
  explicit CpuBenchOps(int n_threads) : n_threads_(n_threads) {}
  void nll_loss(ConstMatRef log_probs, const int32_t* labels, const uint8_t* split, uint8_t mask_bit,
                int64_t n_masked, float* loss_out, float* grad) override {
    const int64_t n_cls = log_probs.cols;
    const double inv_count = n_masked > 0 ? 1.0 / static_cast<double>(n_masked) : 0.0;
    double total = 0.0;
    for (int64_t i = 0; i < log_probs.rows; ++i) {
      if ((split[i] & mask_bit) != 0) total -= log_probs.data[i * n_cls + labels[i]];
    }
    *loss_out = static_cast<float>(total * inv_count);
    if (grad == nullptr) return;
#pragma omp parallel for num_threads(n_threads_) schedule(static) if (log_probs.size() > kParallelMin)
    for (int64_t i = 0; i < log_probs.rows; ++i) {
      const float* lp = log_probs.data + i * n_cls;
      float* g = grad + i * n_cls;
      const bool masked = (split[i] & mask_bit) != 0;
      for (int64_t j = 0; j < n_cls; ++j) {
        g[j] = masked ? static_cast<float>((std::exp(lp[j]) - (j == labels[i] ? 1.0f : 0.0f)) * inv_count) : 0.0f;
      }
    }
  }

 private:
  int n_threads_;
};

class CpuBackend final : public Backend {
 public:
  explicit CpuBackend(int n_threads)
      : n_threads_(n_threads > 0 ? n_threads : omp_get_max_threads()), bench_(n_threads_) {}

  DeviceKind kind() const override { return DeviceKind::kCpu; }
  std::string describe() const override {
    return fmt::format("cpu ({} thread{}, {})", n_threads_, n_threads_ == 1 ? "" : "s", k_.isa);
  }

  void* allocate(std::size_t bytes) override {
    // 64-byte alignment for vector loads; aligned_alloc needs a multiple of it.
    const std::size_t rounded = (std::max<std::size_t>(bytes, 1) + 63) / 64 * 64;
    void* p = std::aligned_alloc(64, rounded);
    if (p == nullptr) {
      throw DeviceError(fmt::format("cpu: out of memory allocating {} bytes", bytes));
    }
    sizes_[p] = rounded;
    in_use_ += rounded;
    peak_ = std::max(peak_, in_use_);
    return p;
  }
  void deallocate(void* ptr) noexcept override {
    if (ptr == nullptr) return;
    const auto it = sizes_.find(ptr);
    if (it != sizes_.end()) {
      in_use_ -= it->second;
      sizes_.erase(it);
    }
    std::free(ptr);
  }
  void upload(void* dst, const void* src, std::size_t bytes) override { std::memcpy(dst, src, bytes); }
  void download(void* dst, const void* src, std::size_t bytes) override { std::memcpy(dst, src, bytes); }
  void fill_zero(void* dst, std::size_t bytes) override { std::memset(dst, 0, bytes); }
  void copy(void* dst, const void* src, std::size_t bytes) override { std::memmove(dst, src, bytes); }
  void synchronize() override {}
  void* allocate_host(std::size_t bytes) override {
    void* p = std::malloc(std::max<std::size_t>(bytes, 1));
    if (p == nullptr) throw DeviceError(fmt::format("cpu: out of memory allocating {} bytes", bytes));
    return p;
  }
  void deallocate_host(void* ptr) noexcept override { std::free(ptr); }
  void download_async(void* dst, const void* src, std::size_t bytes) override { std::memcpy(dst, src, bytes); }

  std::unique_ptr<SparseMatrix> upload_csr(const CsrMatrix& host) override {
    host.validate("upload_csr");
    return std::make_unique<CpuSparse>(host);
  }

  BenchOps* bench_ops() override { return &bench_; }

 protected:
  // c = a · b (+ bias): each entry sums its row's terms in order, then adds
  // the bias (the same two roundings as a product followed by a bias add).
  // Every element of c is written, so a prepared output needs nothing.
  void do_spmm(const SparseMatrix& a_base, ConstMatRef b, MatRef c, const float* bias, bool /*prepared*/) override {
    const CpuSparse& a = cpu_sparse(a_base, "spmm");
    spmm_blocks(a, a.csr.values.data(), b, c, bias, 1);
  }

  void do_spmm_values(const SparseMatrix& a_base, const float* values, ConstMatRef b, MatRef c, int batch,
                      bool /*prepared*/) override {
    spmm_blocks(cpu_sparse(a_base, "spmm_values"), values, b, c, nullptr, batch);
  }

  // values (batch · nnz): model k's copy of a's values times its mask.
  void do_sparse_dropout(const SparseMatrix& a_base, bool transposed, float p, const StepState* steps, int batch,
                         uint32_t site, float* values) override {
    const CsrMatrix& m = cpu_sparse(a_base, "sparse_dropout").csr;
    const int64_t nnz = m.nnz();
    const float scale = 1.0f / (1.0f - p);
    for (int k = 0; k < batch; ++k) {
      float* out = values + k * nnz;
      if (p == 0.0f) {
        if (nnz > 0) std::memcpy(out, m.values.data(), static_cast<std::size_t>(nnz) * sizeof(float));
        continue;
      }
      const uint64_t key =
          stream_key(site_seed(steps[k].dropout_seed, site), static_cast<uint64_t>(steps[k].epoch + 1));
      for_ranges(n_threads_, m.n_rows, nnz > kParallelMin, [&](int64_t r0, int64_t r1) {
        k_.sparse_dropout(m.indptr.data(), m.indices.data(), m.values.data(), m.n_rows, m.n_cols, transposed, p, scale,
                          key, out, r0, r1);
      });
    }
  }

  void do_prepare_outputs(const OutputInit* /*outputs*/, int /*count*/) override {}

  // A batch of models (batch 1: one): each model's product with the same
  // kernels at the blocks' strides (the same bits as the block alone), the
  // loops arranged for the cache: a chunk of rows of every model's blocks at
  // a time.
  void do_gemm(ConstMatRef a, bool trans_a, ConstMatRef b, bool trans_b, MatRef c, int batch) override {
    const int64_t ab = a.cols / batch, bb = b.cols / batch, cb = c.cols / batch;
    const int64_t m = c.rows, n = cb, k = trans_a ? a.rows : ab;
    // op(b)'s blocks as (k, n) rows: in place (row stride b.cols), or
    // transposed copies (contiguous, one per model).
    std::vector<float>& bt = b_copy_;
    if (trans_b) {
      bt.resize(static_cast<std::size_t>(batch * k * n));
      for (int j = 0; j < batch; ++j) {
        float* dst = bt.data() + j * k * n;
        for (int64_t i = 0; i < b.rows; ++i) {
          for (int64_t q = 0; q < bb; ++q) dst[q * b.rows + i] = b.data[i * b.cols + j * bb + q];
        }
      }
    }
    auto b_block = [&](int j) { return trans_b ? bt.data() + j * k * n : b.data + j * bb; };
    const int64_t ldb = trans_b ? n : b.cols;
    const bool parallel = n_threads_ > 1 && m * n * k * batch > kParallelMin;
    if (!trans_a) {
      constexpr int64_t kRowChunk = 64;
      const int64_t n_chunks = (m + kRowChunk - 1) / kRowChunk;
      for_ranges(n_threads_, n_chunks, parallel, [&](int64_t q0, int64_t q1) {
        for (int64_t q = q0; q < q1; ++q) {
          const int64_t r0 = q * kRowChunk, r1 = std::min(m, r0 + kRowChunk);
          for (int j = 0; j < batch; ++j) {
            k_.gemm_nn(a.data + j * ab, a.cols, b_block(j), ldb, k, n, c.data + j * cb, c.cols, r0, r1);
          }
        }
      });
      return;
    }
    // c = aᵀ · b: a reduction over K, the long side (the rows of the graph)
    // in the weight gradient. Fixed chunks of 4096 of a's rows are summed on
    // their own and combined in chunk order, each chunk in slices that keep
    // the rows of every model in the cache (each slice continuing the
    // chunk's sums). The rows of c are split over the threads: the chunks'
    // order, and so every bit, stays the same for any thread count.
    constexpr int64_t kChunk = 4096, kSlice = 128;
    const int64_t n_chunks = std::max<int64_t>((k + kChunk - 1) / kChunk, 1);
    const int64_t per_model = n_chunks * m * n;
    std::vector<double>& partial = gemm_partial_;
    partial.assign(static_cast<std::size_t>(batch * per_model), 0.0);
    for_ranges(n_threads_, m, parallel, [&](int64_t r0, int64_t r1) {
      for (int64_t chunk = 0; chunk * kChunk < k; ++chunk) {
        const int64_t p_end = std::min(k, (chunk + 1) * kChunk);
        for (int64_t p = chunk * kChunk; p < p_end; p += kSlice) {
          const int64_t p1 = std::min(p_end, p + kSlice);
          for (int j = 0; j < batch; ++j) {
            k_.gemm_tn(a.data + j * ab, a.cols, m, b_block(j), ldb, n, p, p1, r0, r1,
                       partial.data() + j * per_model + chunk * m * n, p != chunk * kChunk);
          }
        }
      }
    });
    for (int j = 0; j < batch; ++j) {
      const double* mine = partial.data() + j * per_model;
      for (int64_t i = 0; i < m; ++i) {
        for (int64_t q = 0; q < n; ++q) {
          double sum = 0.0;
          for (int64_t chunk = 0; chunk < n_chunks; ++chunk) sum += mine[chunk * m * n + i * n + q];
          c.data[i * c.cols + j * cb + q] = static_cast<float>(sum);
        }
      }
    }
  }

  void do_column_sum(ConstMatRef x, float* out) override {
    column_sum_strided(x.data, x.cols, x.rows, x.cols, out, column_acc_);
  }

  void do_relu_dropout_forward(Activation act, ConstMatRef x, MatRef y, float p, const StepState* steps, int batch,
                               bool rates_from_steps, uint32_t site) override {
    const int64_t cols = x.cols / batch;
    set_rates(p, steps, batch, rates_from_steps, site, true);
    // Rows in chunks, every model's block of a chunk in turn.
    for_row_chunks(x.rows, x.size(), [&](int64_t r0, int64_t r1) {
      for (int k = 0; k < batch; ++k) {
        const auto& r = rates_[k];
        if (act == Activation::kRelu) {
          k_.relu_dropout_forward(x.data + k * cols, y.data + k * cols, x.cols, cols, r0, r1, r.drop, r.p, r.scale,
                                  r.key);
        } else {
          k_.elu_dropout_forward(x.data + k * cols, y.data + k * cols, x.cols, cols, r0, r1, r.drop, r.p, r.scale,
                                 r.key);
        }
      }
    });
  }

  void do_relu_dropout_backward(Activation act, ConstMatRef dy, ConstMatRef y, MatRef dx, float p,
                                const StepState* steps, int batch, bool rates_from_steps, uint32_t site,
                                float* col_sums) override {
    const int64_t cols = y.cols / batch;
    // ReLU's mask is y > 0; ELU recomputes it.
    set_rates(p, steps, batch, rates_from_steps, site, act == Activation::kElu);
    for_row_chunks(y.rows, y.size(), [&](int64_t r0, int64_t r1) {
      for (int k = 0; k < batch; ++k) {
        const auto& r = rates_[k];
        if (act == Activation::kRelu) {
          k_.relu_dropout_backward(dy.data + k * cols, y.data + k * cols, dx.data + k * cols, y.cols, cols, r0, r1,
                                   r.scale);
        } else {
          k_.elu_dropout_backward(dy.data + k * cols, y.data + k * cols, dx.data + k * cols, y.cols, cols, r0, r1,
                                  r.drop, r.p, r.scale, r.key);
        }
      }
    });
    if (col_sums != nullptr) do_column_sum(ConstMatRef(dx.data, y.rows, y.cols), col_sums);
  }

  // ---- graph attention (cpu_kernels_gat.hpp) --------------------------------
  void do_gat_attention(const EdgeLists& g, ConstMatRef xw, const float* att_src, const float* att_dst, int heads,
                        MatRef s_src, MatRef s_dst, MatRef alpha, int batch) override {
    const cpu::GatShape d = gat_shape(g, xw, heads, batch);
    const bool parallel = gat_parallel(g, d);
    for_node_ranges(g.in_ptr, g.n_nodes, parallel, [&](int64_t i0, int64_t i1) {
      k_.gat_scores(d, xw.data, att_src, att_dst, s_src.data, s_dst.data, i0, i1);
    });
    // Every score first: a node's softmax reads its sources' scores.
    for_node_ranges(g.in_ptr, g.n_nodes, parallel, [&](int64_t i0, int64_t i1) {
      k_.gat_softmax(d, s_src.data, s_dst.data, alpha.data, i0, i1);
    });
  }

  void do_gat_aggregate(const EdgeLists& g, ConstMatRef alpha, ConstMatRef xw, int heads, const float* bias,
                        MatRef out, float p, const StepState* steps, uint32_t site, int batch) override {
    const cpu::GatShape d = gat_shape(g, xw, heads, batch);
    const float* mask = attention_mask(g, d, p, steps, site, batch);
    for_node_ranges(g.in_ptr, g.n_nodes, gat_parallel(g, d), [&](int64_t i0, int64_t i1) {
      k_.gat_aggregate(d, alpha.data, mask, xw.data, bias, out.data, i0, i1);
    });
  }

  void do_gat_backward(const EdgeLists& g, ConstMatRef dout, ConstMatRef xw, const float* att_src,
                       const float* att_dst, ConstMatRef s_src, ConstMatRef s_dst, ConstMatRef alpha, int heads, float p,
                       const StepState* steps, uint32_t site, MatRef dxw, float* d_att_src, float* d_att_dst,
                       MatRef d_alpha, MatRef ds_src, MatRef ds_dst, int batch) override {
    const cpu::GatShape d = gat_shape(g, xw, heads, batch);
    const float* mask = attention_mask(g, d, p, steps, site, batch);
    const bool parallel = gat_parallel(g, d);
    gat_dots_.resize(static_cast<std::size_t>(g.n_edges * d.bh));
    for_node_ranges(g.in_ptr, g.n_nodes, parallel, [&](int64_t i0, int64_t i1) {
      k_.gat_backward_targets(d, dout.data, xw.data, s_src.data, s_dst.data, alpha.data, mask, gat_dots_.data(),
                              d_alpha.data, ds_dst.data, i0, i1);
    });
    // Every edge's gradient first: a source sums those of its out-edges.
    for_node_ranges(g.out_ptr, g.n_nodes, parallel, [&](int64_t j0, int64_t j1) {
      k_.gat_backward_sources(d, dout.data, att_src, att_dst, alpha.data, mask, d_alpha.data, ds_dst.data,
                              ds_src.data, dxw.data, j0, j1);
    });
    column_acc_.resize(static_cast<std::size_t>(d.ld));
    k_.gat_attention_grad(d, g.n_nodes, ds_src.data, xw.data, d_att_src, column_acc_.data());
    k_.gat_attention_grad(d, g.n_nodes, ds_dst.data, xw.data, d_att_dst, column_acc_.data());
  }

  void do_log_softmax(ConstMatRef x, MatRef y) override {
#pragma omp parallel for num_threads(n_threads_) schedule(static) if (x.size() > kParallelMin)
    for (int64_t i = 0; i < x.rows; ++i) {
      const float* in = x.data + i * x.cols;
      const RowStats st = row_stats(in, x.cols);
      float* out = y.data + i * x.cols;
      for (int64_t j = 0; j < x.cols; ++j) out[j] = (in[j] - st.max) - st.log_sum;
    }
  }

  void do_classifier_loss(ConstMatRef logits, const int32_t* labels, const uint8_t* split, uint8_t mask_bit,
                          int64_t n_masked, MatRef grad, float* bias_grad, const StepState* steps, MetricsRing ring,
                          int batch) override {
    const int64_t cls = logits.cols / batch;
    for_models(batch, logits.size(), [&](int k, Scratch& scratch) {
      const StepState& step = steps[k];
      if (step.stopped != 0) return;
      EpochMetrics& slot = ring.slots[ring_index(ring.size, step.epoch, k, batch)];
      float* g = grad.data != nullptr ? grad.data + k * cls : nullptr;
      slot.loss = masked_nll(logits.data + k * cls, logits.cols, logits.rows, cls, labels, split, mask_bit, n_masked, g,
                             scratch.terms, batch == 1);
      if (bias_grad != nullptr) column_sum_strided(g, grad.cols, logits.rows, cls, bias_grad + k * cls, scratch.acc);
    });
  }

  void do_evaluate(ConstMatRef logits, const int32_t* labels, const uint8_t* split, int64_t n_val, StepState* steps,
                   MetricsRing ring, bool advance, int batch) override {
    const int64_t cls = logits.cols / batch;
    for_models(batch, logits.size(), [&](int k, Scratch& scratch) {
      StepState& step = steps[k];
      if (step.stopped != 0) return;
      EpochMetrics& slot = ring.slots[ring_index(ring.size, step.epoch, k, batch)];
      const float* in = logits.data + k * cls;
      slot.val_loss = masked_nll(in, logits.cols, logits.rows, cls, labels, split, kValBit, n_val, nullptr,
                                 scratch.terms, batch == 1);
      argmax_correct(in, logits.cols, logits.rows, cls, labels, split, slot.correct);
      slot.epoch = static_cast<int32_t>(step.epoch + 1);
      select_epoch(step, slot, advance, ring, k, batch);
    });
  }

  void do_adam_step(float* params, const float* grads, float* m, float* v, const ParamBlocks& blocks,
                    const AdamConfig& cfg, const StepState* steps, int batch, bool rates_from_steps) override {
    adam_scalars_.resize(static_cast<std::size_t>(batch));
    adam_skip_.resize(static_cast<std::size_t>(batch));
    bool any = false;
    for (int k = 0; k < batch; ++k) {
      const StepState& st = steps[k];
      adam_skip_[static_cast<std::size_t>(k)] = st.stopped != 0 ? 1 : 0;
      any = any || st.stopped == 0;
      const int64_t step = st.epoch + 1;
      const float lr = rates_from_steps ? st.lr : cfg.lr;
      const float wd = rates_from_steps ? st.weight_decay : cfg.weight_decay;
      // As torch.optim.Adam (single-tensor path): the bias corrections are
      // Python floats (double), the element-wise update runs in float32.
      const double bc1 = 1.0 - std::pow(static_cast<double>(cfg.beta1), static_cast<double>(step));
      const double bc2 = 1.0 - std::pow(static_cast<double>(cfg.beta2), static_cast<double>(step));
      cpu::AdamScalars& s = adam_scalars_[static_cast<std::size_t>(k)];
      s.beta1 = cfg.beta1;
      s.beta2 = cfg.beta2;
      s.one_minus_b1 = 1.0f - cfg.beta1;
      s.one_minus_b2 = 1.0f - cfg.beta2;
      s.eps = cfg.eps;
      s.weight_decay = wd;
      s.step_size = static_cast<float>(static_cast<double>(lr) / bc1);
      s.bc2_sqrt = static_cast<float>(std::sqrt(bc2));
    }
    if (!any) return;
    for (int b = 0; b < blocks.count; ++b) {
      const ParamBlock& blk = blocks.block[b];
      const int64_t off = blk.offset;
      if (batch == 1) {  // one model: the flat range, split over the threads
        const int64_t n = blk.rows * blk.cols;
        for_ranges(n_threads_, n, n > kParallelMin, [&](int64_t i0, int64_t i1) {
          k_.adam(params + off, grads + off, m + off, v + off, i0, i1, adam_scalars_[0]);
        });
        continue;
      }
      for_ranges(n_threads_, blk.rows, blk.rows * blk.cols * batch > kParallelMin, [&](int64_t r0, int64_t r1) {
        k_.adam_block(params + off, grads + off, m + off, v + off, blk.cols, batch, r0, r1, adam_scalars_.data(),
                      adam_skip_.data());
      });
    }
  }

  void do_copy_if_improved(void* dst, const void* src, std::size_t bytes, const StepState* step) override {
    if (step->improved != 0) std::memmove(dst, src, bytes);
  }

  void do_batch_copy_if_improved(float* dst, const float* src, const ParamBlocks& blocks, const StepState* steps,
                                 int batch) override {
    for (int b = 0; b < blocks.count; ++b) {
      const ParamBlock& blk = blocks.block[b];
      const int64_t ld = blk.cols * batch;
      for (int k = 0; k < batch; ++k) {
        if (steps[k].improved == 0) continue;
        for (int64_t r = 0; r < blk.rows; ++r) {
          const int64_t i = blk.offset + r * ld + k * blk.cols;
          std::memmove(dst + i, src + i, static_cast<std::size_t>(blk.cols) * sizeof(float));
        }
      }
    }
  }

 public:
  int record_marker() override {
    markers_.push_back(std::chrono::steady_clock::now());
    return static_cast<int>(markers_.size()) - 1;
  }
  double elapsed_ms(int from, int to) override {
    require(from >= 0 && to >= 0 && static_cast<std::size_t>(std::max(from, to)) < markers_.size(), "elapsed_ms",
            [&] { return fmt::format("markers {} and {} of {}", from, to, markers_.size()); });
    return std::chrono::duration<double, std::milli>(markers_[to] - markers_[from]).count();
  }
  void clear_markers() override { markers_.clear(); }
  std::size_t peak_memory_bytes() const override { return peak_; }
  std::size_t available_memory_bytes() const override { return host_available_bytes(); }

 private:
  static const CpuSparse& cpu_sparse(const SparseMatrix& a, const char* op) {
    const auto* m = dynamic_cast<const CpuSparse*>(&a);
    require(m != nullptr, op, "sparse matrix belongs to another backend");
    return *m;
  }

  // c = a · b with a's values replaced per model: model k's column block of c
  // = a with values[k · nnz ..) times b's block k (+ bias), each block the
  // bits of the product of that block alone.
  void spmm_blocks(const CpuSparse& a, const float* values, ConstMatRef b, MatRef c, const float* bias, int batch) {
    const CsrMatrix& m = a.csr;
    const int64_t n = b.cols / batch;
    auto part = [&](int64_t g0, int64_t g1) {
      for (int k = 0; k < batch; ++k) {
        k_.spmm_strided(m.indptr.data(), m.indices.data(), values + k * a.nnz(), a.order.data(), b.data + k * n, b.cols,
                        n, bias, c.data + k * n, c.cols, g0, g1);
      }
    };
    if (n_threads_ <= 1 || a.nnz() * b.cols <= kParallelMin || m.n_rows < 8) {
      part(0, m.n_rows);
      return;
    }
    // Equal work per thread (the rows are sorted by length, so equal counts
    // of rows would not be).
#pragma omp parallel num_threads(n_threads_)
    {
      const int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
      part(a.split(t, nt), a.split(t + 1, nt));
    }
  }

  // rates_[k] for the activation + dropout ops: model k's rate, scale and
  // (with keys, when it drops) its mask's key at `site`.
  void set_rates(float p, const StepState* steps, int batch, bool rates_from_steps, uint32_t site, bool keys) {
    rates_.resize(static_cast<std::size_t>(batch));
    for (int k = 0; k < batch; ++k) {
      const float pk = rates_from_steps ? steps[k].dropout : p;
      const bool drop = pk > 0.0f;
      rates_[k] = {pk, 1.0f / (1.0f - pk), drop,
                   drop && keys ? stream_key(site_seed(steps[k].dropout_seed, site),
                                             static_cast<uint64_t>(steps[k].epoch + 1))
                                : 0};
    }
  }

  static cpu::GatShape gat_shape(const EdgeLists& g, ConstMatRef xw, int heads, int batch) {
    const int64_t bh = int64_t{batch} * heads;
    return {heads, bh, xw.cols / bh, xw.cols, g.in_ptr, g.in_src, g.edge_dst, g.out_ptr, g.out_edge};
  }

  // Whether a graph-attention op runs in parallel. Its work per edge (and
  // per node) is its ld columns plus a fixed part worth about 64 more (the
  // softmax's exp and division, the index loads, the loops): gcn-bench's
  // gat_*_h1x7 ops, 7 columns, take a third to two thirds of the time of
  // the gat_*_h8x8 ones, 64. Both of Cora's GAT layers (64 and 7 columns,
  // 13k edges) run on every thread, as Cora's SpMMs do.
  static bool gat_parallel(const EdgeLists& g, const cpu::GatShape& d) {
    constexpr int64_t kRowWork = 64;
    return (g.n_edges + g.n_nodes) * (d.ld + kRowWork) > kParallelMin;
  }

  // fn(i0, i1) over the nodes [0, n): one range per thread when parallel,
  // cut where the work (the edges in ptr, as EdgeLists::in_ptr or out_ptr,
  // plus one per node) is even. Each node's result does not depend on the
  // split.
  template <class Fn>
  void for_node_ranges(const int32_t* ptr, int64_t n, bool parallel, Fn&& fn) {
    if (!parallel || n_threads_ <= 1 || n < 2) {
      fn(int64_t{0}, n);
      return;
    }
    // The first node i with ptr[i] + i >= the part's share of ptr[n] + n.
    auto cut = [&](int64_t part, int64_t parts) {
      const int64_t target = (ptr[n] + n) * part / parts;
      int64_t lo = 0, hi = n;
      while (lo < hi) {
        const int64_t mid = (lo + hi) / 2;
        if (ptr[mid] + mid < target) {
          lo = mid + 1;
        } else {
          hi = mid;
        }
      }
      return lo;
    };
#pragma omp parallel num_threads(n_threads_)
    {
      const int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
      fn(cut(t, nt), cut(t + 1, nt));
    }
  }

  // The attention dropout's factors (E, bh) of a call (null without
  // dropout): model k's coefficient (e, h) is multiplied by
  // mask[e · bh + k · heads + h], 0 or 1 / (1 - p), drawn for the element
  // e · heads + h of model k's stream. Computed once per call (the kernels
  // read each factor up to twice), into scratch reused from call to call.
  const float* attention_mask(const EdgeLists& g, const cpu::GatShape& d, float p, const StepState* steps,
                              uint32_t site, int batch) {
    if (p <= 0.0f) return nullptr;
    const float scale = 1.0f / (1.0f - p);
    attention_mask_.resize(static_cast<std::size_t>(g.n_edges * d.bh));
    for (int k = 0; k < batch; ++k) {
      const uint64_t key =
          stream_key(site_seed(steps[k].dropout_seed, site), static_cast<uint64_t>(steps[k].epoch + 1));
      for_ranges(n_threads_, g.n_edges, g.n_edges * d.heads > kParallelMin, [&](int64_t e0, int64_t e1) {
        k_.dropout_factors(attention_mask_.data() + k * d.heads, d.bh, d.heads, e0, e1, p, scale, key);
      });
    }
    return attention_mask_.data();
  }

  // fn(r0, r1) over [0, rows) in chunks of rows (one call per thread's range
  // when parallel): each element's result does not depend on the split.
  template <class Fn>
  void for_row_chunks(int64_t rows, int64_t work, Fn&& fn) {
    for_ranges(n_threads_, rows, work > kParallelMin, [&](int64_t r0, int64_t r1) {
      constexpr int64_t kChunk = 32;
      for (int64_t r = r0; r < r1; r += kChunk) fn(r, std::min(r1, r + kChunk));
    });
  }

  // Per-thread scratch of the ops that run a batch's models in parallel.
  struct Scratch {
    std::vector<double> terms, acc;
  };

  // fn(k, scratch) for each model k of a batch: in parallel over the models
  // when the work is large enough (each model's result does not depend on
  // which thread ran it), else in order on this thread.
  template <class Fn>
  void for_models(int batch, int64_t work, Fn&& fn) {
    const int n_workers = batch > 1 && work > kParallelMin ? std::min(n_threads_, batch) : 1;
    scratch_.resize(static_cast<std::size_t>(n_workers));
    if (n_workers == 1) {
      for (int k = 0; k < batch; ++k) fn(k, scratch_[0]);
      return;
    }
#pragma omp parallel for num_threads(n_workers) schedule(static)
    for (int k = 0; k < batch; ++k) fn(k, scratch_[static_cast<std::size_t>(omp_get_thread_num())]);
  }

  // out (cols) = the column sums of x's (rows, cols) block at row stride ld,
  // each in row order in double: do_column_sum's bits for the block alone.
  void column_sum_strided(const float* x, int64_t ld, int64_t rows, int64_t cols, float* out,
                          std::vector<double>& acc) {
    acc.assign(static_cast<std::size_t>(cols), 0.0);
    k_.column_sum(x, ld, cols, 0, rows, acc.data());
    for (int64_t j = 0; j < cols; ++j) out[j] = static_cast<float>(acc[static_cast<std::size_t>(j)]);
  }

  // The mean over the masked rows of -log_softmax(logits)[r, label] (per-row
  // terms summed in row order, in double), and its gradient when grad is set:
  // (softmax - onehot) / n_masked on masked rows, 0 elsewhere. logits and
  // grad: (n_rows, n_cls) at row stride ld. parallel: over the rows.
  float masked_nll(const float* logits, int64_t ld, int64_t n_rows, int64_t n_cls, const int32_t* labels,
                   const uint8_t* split, uint8_t mask_bit, int64_t n_masked, float* grad, std::vector<double>& terms,
                   bool parallel) {
    const double inv_count = n_masked > 0 ? 1.0 / static_cast<double>(n_masked) : 0.0;
    // Per-row terms first, summed afterwards in row order: the same total for any thread count.
    terms.assign(static_cast<std::size_t>(n_rows), 0.0);
#pragma omp parallel for num_threads(n_threads_) schedule(static) if (parallel && n_rows * n_cls > kParallelMin)
    for (int64_t i = 0; i < n_rows; ++i) {
      const float* in = logits + i * ld;
      float* g = grad != nullptr ? grad + i * ld : nullptr;
      if ((split[i] & mask_bit) == 0) {
        if (g != nullptr) std::fill(g, g + n_cls, 0.0f);
        continue;
      }
      const int32_t label = labels[i];
      const RowStats st = row_stats(in, n_cls);
      terms[static_cast<std::size_t>(i)] = -(static_cast<double>(in[label] - st.max) - st.log_sum);
      if (g != nullptr) {
        for (int64_t j = 0; j < n_cls; ++j) {
          const float prob = std::exp((in[j] - st.max) - st.log_sum);
          g[j] = static_cast<float>(((j == label ? prob - 1.0f : prob)) * inv_count);
        }
      }
    }
    double total = 0.0;
    for (int64_t i = 0; i < n_rows; ++i) total += terms[static_cast<std::size_t>(i)];
    return static_cast<float>(total * inv_count);
  }

  // torch.argmax per row (the first maximum, or the first NaN) and the
  // correct counts per split bit.
  static void argmax_correct(const float* logits, int64_t ld, int64_t rows, int64_t cols, const int32_t* labels,
                             const uint8_t* split, int32_t* correct_out) {
    int32_t correct[3] = {0, 0, 0};
    for (int64_t i = 0; i < rows; ++i) {
      const float* in = logits + i * ld;
      int32_t best = 0;
      for (int64_t j = 1; j < cols && !std::isnan(in[best]); ++j) {
        if (in[j] > in[best] || std::isnan(in[j])) best = static_cast<int32_t>(j);
      }
      if (best == labels[i]) {
        for (int bit = 0; bit < 3; ++bit) correct[bit] += (split[i] >> bit) & 1;
      }
    }
    std::copy(correct, correct + 3, correct_out);
  }

  // log_softmax(x)_j = (x_j - max) - log_sum: subtracting the max first keeps
  // the shift exact even when |max| is so large that max + log_sum == max.
  struct RowStats {
    float max;
    float log_sum;
  };
  static RowStats row_stats(const float* in, int64_t n) {
    float mx = -std::numeric_limits<float>::infinity();
    for (int64_t j = 0; j < n; ++j) mx = std::max(mx, in[j]);
    double sum = 0.0;
    for (int64_t j = 0; j < n; ++j) sum += std::exp(static_cast<double>(in[j] - mx));
    return {mx, static_cast<float>(std::log(sum))};
  }

  int n_threads_;
  std::unordered_map<void*, std::size_t> sizes_;  // live allocations
  std::size_t in_use_ = 0, peak_ = 0;
  std::vector<std::chrono::steady_clock::time_point> markers_;
  std::vector<float> b_copy_;         // a transposed gemm operand
  std::vector<double> gemm_partial_;  // the transposed product's per-chunk sums
  std::vector<double> column_acc_;    // do_column_sum's sums
  std::vector<float> attention_mask_;  // the attention dropout's factors of a call
  std::vector<float> gat_dots_;        // gat_backward_targets' scratch
  std::vector<Scratch> scratch_;      // per thread, for a batch's models
  struct DropoutRate {
    float p = 0, scale = 1;
    bool drop = false;
    uint64_t key = 0;
  };
  std::vector<DropoutRate> rates_;    // per model, for the activation + dropout ops
  std::vector<cpu::AdamScalars> adam_scalars_;  // per model
  std::vector<uint8_t> adam_skip_;              // per model: stopped
  const cpu::CpuKernels& k_ = cpu::cpu_kernels();
  CpuBenchOps bench_;
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend(int n_threads) { return std::make_unique<CpuBackend>(n_threads); }

int cpu_thread_count(int n_threads) { return n_threads > 0 ? n_threads : omp_get_max_threads(); }

std::size_t cpu_cache_bytes() {
  const long l2 = ::sysconf(_SC_LEVEL2_CACHE_SIZE);
  return l2 > 0 ? static_cast<std::size_t>(l2) : std::size_t{1} << 20;
}

}  // namespace gcn
