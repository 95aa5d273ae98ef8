// The backend interface: one set of ops with a CPU implementation (the
// reference) and a CUDA implementation. The model and the training loop are
// written once against it.
//
// Conventions
// - Every pointer handed to an op lives in that backend's memory (host memory
//   for the CPU backend, device memory for CUDA), allocated through allocate().
// - Matrices are row-major float32. MatRef/ConstMatRef do not own memory.
// - Ops are asynchronous on CUDA (enqueued on the backend's stream); download()
//   and synchronize() wait. Results are deterministic for a given input.
// - Each op is a public non-virtual function that checks its arguments, the
//   same way on every backend, then calls the backend's implementation
//   (do_<op>). A failed check throws gcn::Error naming the op.
// - Per-epoch values (the epoch, hence Adam's step and the dropout stream; the
//   best epoch so far) are read from a StepState in backend memory, never
//   passed by value, so a recorded epoch (a CUDA graph) can be replayed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "gcn/csr.hpp"
#include "gcn/step_state.hpp"

namespace gcn {

enum class DeviceKind { kCpu, kCuda };

struct MatRef {
  float* data = nullptr;
  int64_t rows = 0;
  int64_t cols = 0;
  int64_t size() const { return rows * cols; }
};

struct ConstMatRef {
  const float* data = nullptr;
  int64_t rows = 0;
  int64_t cols = 0;
  ConstMatRef() = default;
  ConstMatRef(const float* d, int64_t r, int64_t c) : data(d), rows(r), cols(c) {}
  ConstMatRef(MatRef m) : data(m.data), rows(m.rows), cols(m.cols) {}  // NOLINT: implicit by design
  int64_t size() const { return rows * cols; }
};

// A CSR matrix resident on a backend, created by Backend::upload_csr once per
// process. Backends subclass it to keep their own handles (cuSPARSE descriptors).
class SparseMatrix {
 public:
  SparseMatrix(int32_t rows, int32_t cols, int64_t nnz) : rows_(rows), cols_(cols), nnz_(nnz) {}
  virtual ~SparseMatrix() = default;
  SparseMatrix(const SparseMatrix&) = delete;
  SparseMatrix& operator=(const SparseMatrix&) = delete;
  int32_t rows() const { return rows_; }
  int32_t cols() const { return cols_; }
  int64_t nnz() const { return nnz_; }

 private:
  int32_t rows_, cols_;
  int64_t nnz_;
};

// PyTorch's Adam (torch.optim.Adam, amsgrad=False, maximize=False): L2 weight
// decay is added to the gradient, bias correction on both moments.
struct AdamConfig {
  float lr = 0.01f;
  float beta1 = 0.9f;
  float beta2 = 0.999f;
  float eps = 1e-8f;
  float weight_decay = 5e-4f;
};

// The output of a product that will be called with prepared = true, and what
// it must start from: zeros, or `bias` (cols) on every row.
struct OutputInit {
  MatRef c;
  const float* bias = nullptr;
};

// A batch of models of one shape trained side by side (the many-models path):
// every per-model tensor is column-blocked, model k of `batch` owning the
// columns [k·cols, (k+1)·cols) of a (rows, batch·cols) matrix, so the graph's
// products (Â · H, X · W, their transposes) cover every model at once, and
// per-model values (StepState, the metrics ring) are arrays of batch entries.
// A batch of 1 is the single-model layout.
//
// The parameters, gradients and Adam moments of a batch: each parameter
// tensor of one model (rows, cols) is a (rows, batch·cols) block of the flat
// array at `offset`.
struct ParamBlock {
  int64_t offset = 0;
  int64_t rows = 0;
  int64_t cols = 0;  // per model
};
struct ParamBlocks {
  static constexpr int kMax = 8;
  int count = 0;
  ParamBlock block[kMax] = {};
};

// A sequence of queued ops recorded once and replayed (a CUDA graph).
class Recording {
 public:
  virtual ~Recording() = default;
  // Queues the recorded ops again, with the arguments they were recorded with.
  virtual void replay() = 0;
};

// Ops that exist only to be compared in gcn-bench (the unfused baselines of
// fused ops); not part of training.
class BenchOps {
 public:
  virtual ~BenchOps() = default;
  // The unfused second half of log_softmax + NLL: the loss (mean over the
  // masked rows, into *loss_out) and the gradient of the fused classifier_loss,
  // from log_probs = log_softmax(logits).
  virtual void nll_loss(ConstMatRef log_probs, const int32_t* labels, const uint8_t* split, uint8_t mask_bit,
                        int64_t n_masked, float* loss_out, float* grad) = 0;
};

class Backend {
 public:
  static constexpr int kMaxOutputInits = 8;

  virtual ~Backend() = default;

  virtual DeviceKind kind() const = 0;
  // One line for the log, e.g. "cpu (2 threads)" or "cuda:0 NVIDIA H100 80GB HBM3".
  virtual std::string describe() const = 0;

  // ---- memory -------------------------------------------------------------
  // Throws gcn::DeviceError when the allocation fails (naming the size).
  virtual void* allocate(std::size_t bytes) = 0;
  virtual void deallocate(void* ptr) noexcept = 0;
  virtual void upload(void* dst, const void* host_src, std::size_t bytes) = 0;
  // Waits for all queued work, then copies.
  virtual void download(void* host_dst, const void* src, std::size_t bytes) = 0;
  virtual void fill_zero(void* dst, std::size_t bytes) = 0;
  // Copies within backend memory, queued like an op (no wait).
  virtual void copy(void* dst, const void* src, std::size_t bytes) = 0;
  virtual void synchronize() = 0;
  // Host memory that download_async can copy into without waiting (pinned
  // memory on CUDA).
  virtual void* allocate_host(std::size_t bytes) = 0;
  virtual void deallocate_host(void* ptr) noexcept = 0;
  // Queues a copy into allocate_host() memory; the bytes are there once
  // synchronize() returns.
  virtual void download_async(void* host_dst, const void* src, std::size_t bytes) = 0;

  // ---- sparse -------------------------------------------------------------
  virtual std::unique_ptr<SparseMatrix> upload_csr(const CsrMatrix& host) = 0;
  // c (M, N) = a (M, K) · b (K, N), plus bias (N) on every row when given.
  // prepared: c was listed in a prepare_outputs() call since it was last
  // written, so a backend whose products accumulate into c may skip zeroing it.
  void spmm(const SparseMatrix& a, ConstMatRef b, MatRef c, const float* bias = nullptr, bool prepared = false);
  // Makes the outputs of later prepared products ready (at most
  // kMaxOutputInits, one launch on CUDA). A backend whose products write every
  // element of their output does nothing: the contents of c after this call
  // are unspecified until the product runs.
  void prepare_outputs(const OutputInit* outputs, int count);

  // ---- dense --------------------------------------------------------------
  // c (M, N) = op(a) · op(b), op = transpose when the flag is set. With
  // batch > 1 every operand is column-blocked (a batch of models): model k's
  // c block = op(a's block k) · op(b's block k); each block's elements are
  // the bits the same product of that block alone gives.
  void gemm(ConstMatRef a, bool trans_a, ConstMatRef b, bool trans_b, MatRef c, int batch = 1);
  // out (N) = sum over the rows of x (M, N), in a fixed order
  void column_sum(ConstMatRef x, float* out);

  // y = dropout(relu(x)); y must not alias x. p > 0 drops element i with
  // dropout_keep(step->dropout_seed, step->epoch + 1, i, p) (gcn/rng.hpp),
  // identical on every backend; p = 0 is a plain ReLU and step may be null.
  void relu_dropout_forward(ConstMatRef x, MatRef y, float p, const StepState* step);
  // dx = dy ⊙ ∂y/∂x given the forward output y: dy / (1 - p) where y > 0,
  // else 0. col_sums (N), when given, receives the column sums of dx (the
  // previous layer's bias gradient), summed in a fixed order.
  void relu_dropout_backward(ConstMatRef dy, ConstMatRef y, MatRef dx, float p, float* col_sums = nullptr);
  // The training pass of a batch: model k's column block as
  // relu_dropout_forward with p = steps[k].dropout and step = steps + k (the
  // element index i being the index within the model's own (rows, cols)
  // tensor), and the backward likewise; col_sums as above (every column).
  void batch_relu_dropout_forward(ConstMatRef x, MatRef y, const StepState* steps, int batch);
  void batch_relu_dropout_backward(ConstMatRef dy, ConstMatRef y, MatRef dx, const StepState* steps, int batch,
                                   float* col_sums = nullptr);

  // ---- classifier ---------------------------------------------------------
  // y (M, C) = log_softmax(x) row by row (max-subtracted).
  void log_softmax(ConstMatRef x, MatRef y);
  // The training loss: fused log_softmax + NLL over the rows r with
  // (split[r] & mask_bit), n_masked of them:
  //   ring slot of the running epoch .loss = mean_r -log_softmax(logits)[r, labels[r]]  (0 when n_masked == 0)
  //   grad (M, C) = (softmax - onehot) / n_masked on masked rows, 0 elsewhere (may be null)
  //   bias_grad (C) = the column sums of grad (may be null; needs grad)
  // Writes nothing once step->stopped is set.
  // batch > 1: logits, grad and bias_grad are column-blocked and each model
  // k is its own loss, with step + k and its slots of the ring.
  void classifier_loss(ConstMatRef logits, const int32_t* labels, const uint8_t* split, uint8_t mask_bit,
                       int64_t n_masked, MatRef grad, float* bias_grad, const StepState* step, MetricsRing ring,
                       int batch = 1);
  // The evaluation of an epoch, into its ring slot: the validation loss (as
  // classifier_loss over the kValBit rows, n_val of them), the correct
  // predictions (torch.argmax: the first maximum, or the first NaN) among the
  // rows of each of split bits 0..2, and the epoch. Then the selection:
  // whether the epoch is the best so far (higher validation accuracy, ties
  // the lower loss; step->improved), and whether patience has run out
  // (step->stopped). With advance, the epoch counter moves on. Does nothing
  // once step->stopped is set.
  // batch > 1: each model's column block with step + k and its ring slots.
  void evaluate(ConstMatRef logits, const int32_t* labels, const uint8_t* split, int64_t n_val, StepState* step,
                MetricsRing ring, bool advance, int batch = 1);

  // ---- optimizer ----------------------------------------------------------
  // One Adam step over n contiguous parameters, step step->epoch + 1;
  // nothing once step->stopped is set.
  void adam_step(float* params, const float* grads, float* m, float* v, int64_t n, const AdamConfig& config,
                 const StepState* step);
  // dst = src (bytes) when step->improved is set (the best epoch's weights).
  void copy_if_improved(void* dst, const void* src, std::size_t bytes, const StepState* step);
  // A batch's Adam step: every element of the blocks, model k's with
  // steps[k].lr and steps[k].weight_decay (config's lr and weight_decay are
  // not used), step steps[k].epoch + 1, nothing for a stopped model; each
  // element the bits adam_step gives it alone.
  void batch_adam_step(float* params, const float* grads, float* m, float* v, const ParamBlocks& blocks,
                       const AdamConfig& config, const StepState* steps, int batch);
  // dst = src over model k's columns of the blocks when steps[k].improved.
  void batch_copy_if_improved(float* dst, const float* src, const ParamBlocks& blocks, const StepState* steps,
                              int batch);

  // ---- recording ----------------------------------------------------------
  // Records the ops body queues as one replayable unit (a CUDA graph), or
  // returns nullptr where the backend has none (then run body each time).
  // Nothing recorded runs until replay(). body must not allocate or wait.
  virtual std::unique_ptr<Recording> record(const std::function<void()>& body);

  // ---- timing and accounting ----------------------------------------------
  // Records a point in the backend's work queue (a CUDA event on the stream,
  // a clock reading on the CPU) without waiting; returns its id. Ids count up
  // from 0 until clear_markers().
  virtual int record_marker() = 0;
  // Milliseconds between two recorded markers; waits until both have passed.
  virtual double elapsed_ms(int from, int to) = 0;
  virtual void clear_markers() = 0;
  // The most backend memory held at once by allocate() (and internal
  // workspaces and sparse matrices) since the backend was created, in bytes.
  virtual std::size_t peak_memory_bytes() const = 0;
  // The backend memory free for new allocations now, as the system reports it
  // (MemAvailable on the CPU, cudaMemGetInfo's free bytes on CUDA); what a
  // batch of models plans against.
  virtual std::size_t available_memory_bytes() const = 0;
  // Ops for benchmarks only, or nullptr.
  virtual BenchOps* bench_ops() { return nullptr; }

 protected:
  virtual void do_spmm(const SparseMatrix& a, ConstMatRef b, MatRef c, const float* bias, bool prepared) = 0;
  virtual void do_prepare_outputs(const OutputInit* outputs, int count) = 0;
  virtual void do_gemm(ConstMatRef a, bool trans_a, ConstMatRef b, bool trans_b, MatRef c, int batch) = 0;
  virtual void do_column_sum(ConstMatRef x, float* out) = 0;
  // rates_from_steps: model k's rate is steps[k].dropout (a batch); else
  // every element's is p and batch is 1.
  virtual void do_relu_dropout_forward(ConstMatRef x, MatRef y, float p, const StepState* steps, int batch,
                                       bool rates_from_steps) = 0;
  virtual void do_relu_dropout_backward(ConstMatRef dy, ConstMatRef y, MatRef dx, float p, const StepState* steps,
                                        int batch, bool rates_from_steps, float* col_sums) = 0;
  virtual void do_log_softmax(ConstMatRef x, MatRef y) = 0;
  virtual void do_classifier_loss(ConstMatRef logits, const int32_t* labels, const uint8_t* split, uint8_t mask_bit,
                                  int64_t n_masked, MatRef grad, float* bias_grad, const StepState* step,
                                  MetricsRing ring, int batch) = 0;
  virtual void do_evaluate(ConstMatRef logits, const int32_t* labels, const uint8_t* split, int64_t n_val,
                           StepState* step, MetricsRing ring, bool advance, int batch) = 0;
  // rates_from_steps: model k's lr and weight decay are steps[k]'s (a batch);
  // else config's, for one model (batch 1, one block).
  virtual void do_adam_step(float* params, const float* grads, float* m, float* v, const ParamBlocks& blocks,
                            const AdamConfig& config, const StepState* steps, int batch, bool rates_from_steps) = 0;
  virtual void do_copy_if_improved(void* dst, const void* src, std::size_t bytes, const StepState* step) = 0;
  virtual void do_batch_copy_if_improved(float* dst, const float* src, const ParamBlocks& blocks,
                                         const StepState* steps, int batch) = 0;
};

}  // namespace gcn
