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

#include "gcn/data/csr.hpp"
#include "gcn/backend/step_state.hpp"

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
  static constexpr int kMax = 32;
  int count = 0;
  ParamBlock block[kMax] = {};
};

// The activation of an activation + dropout layer (act_dropout_*).
enum class Activation : int32_t {
  kRelu = 0,  // max(x, 0)
  kElu = 1,   // x > 0 ? x : exp(x) - 1 (torch.nn.functional.elu, alpha 1), the
              // negative side as gcn::elu_expm1 (gcn/rng.hpp): the same bits on
              // every backend
};

// The edges of a graph-attention layer (GATConv) in backend memory, made once
// per graph (DeviceGraph::attention_edges): PyG's GATConv edges, i.e. the
// graph's edges without self loops plus one self loop per node. Edge e runs
// src(e) -> dst(e); "edge order" is CSR by target: the edges into node i are
// [in_ptr[i], in_ptr[i + 1]), sorted by source. The same edges by source
// (for sums over the edges out of a node in a fixed order, without atomics):
// the edges out of node j are out_edge[out_ptr[j] .. out_ptr[j + 1]), edge
// ids in edge order, ascending.
struct EdgeLists {
  int32_t n_nodes = 0;
  int64_t n_edges = 0;
  const int32_t* in_ptr = nullptr;    // (N + 1)
  const int32_t* in_src = nullptr;    // (E) src(e), edge order
  const int32_t* edge_dst = nullptr;  // (E) dst(e), edge order
  const int32_t* out_ptr = nullptr;   // (N + 1)
  const int32_t* out_edge = nullptr;  // (E) edge ids grouped by source
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

  // The same for any activation and dropout site (relu_dropout_* are
  // act_dropout_* with kRelu at site 0): element i of model k is kept iff
  // dropout_keep(site_seed(steps[k].dropout_seed, site), steps[k].epoch + 1,
  // i, p_k) (gcn/rng.hpp), p_k = steps[k].dropout when rates_from_steps,
  // else p (batch 1, or one rate for every model of the batch). The
  // backward recomputes the mask (an ELU output can be negative or zero
  // where it was kept): dx = dy · act'(x) / (1 - p_k) where kept, else 0,
  // with act'(x) from the forward output y: ReLU y > 0; ELU 1 where y > 0,
  // else y · (1 - p_k) + 1 (= exp(x)).
  void act_dropout_forward(Activation act, ConstMatRef x, MatRef y, float p, const StepState* steps, int batch,
                           bool rates_from_steps, uint32_t site);
  void act_dropout_backward(Activation act, ConstMatRef dy, ConstMatRef y, MatRef dx, float p,
                            const StepState* steps, int batch, bool rates_from_steps, uint32_t site,
                            float* col_sums = nullptr);

  // ---- dropout on sparse inputs (the features) ------------------------------
  // values (batch · nnz(a)): model k's copy of a's values with dropout(p):
  // the entry (r, c) of a is element r · a.cols() + c of the dense matrix
  // (transposed: a is the transpose of the matrix dropped, and its entry
  // (r, c) is that matrix's element c · a.rows() + r), kept iff
  // dropout_keep(site_seed(steps[k].dropout_seed, site), steps[k].epoch + 1,
  // element, p) and then scaled by 1 / (1 - p). So X and Xᵀ (and their
  // restricted copies) drop the same elements, the mask of dense dropout on
  // X. p is one rate for every model; p = 0 copies the values.
  void sparse_dropout(const SparseMatrix& a, bool transposed, float p, const StepState* steps, int batch,
                      uint32_t site, float* values);
  // c (M, batch · n): model k's column block = a with the values
  // values[k · nnz .. (k + 1) · nnz) times b's column block k (each element
  // of a block the bits of spmm of a matrix with those values times that
  // block, on the CPU); prepared as spmm. On CUDA always the project's own
  // deterministic kernel (every model in one launch).
  void spmm_values(const SparseMatrix& a, const float* values, ConstMatRef b, MatRef c, int batch,
                   bool prepared = false);

  // ---- graph attention (GATConv) ------------------------------------------
  // A batch of `batch` models of `heads` heads each; xw (N, batch · heads ·
  // ch) holds model k's head h in the columns ((k · heads + h) · ch, + ch).
  // att_src, att_dst (batch · heads · ch): PyG's [1, heads, ch] parameters in
  // the same column order. Per model and head (k, h):
  //   s_src[j, kh] = Σ_c att_src[kh, c] · xw[j, kh, c]   (N, batch · heads)
  //   s_dst[i, kh] = Σ_c att_dst[kh, c] · xw[i, kh, c]
  //   alpha[e, kh] = softmax over the edges e into i = dst(e) of
  //                  leaky_relu(s_src[src(e), kh] + s_dst[i, kh], 0.2),
  //                  max-subtracted                       (E, batch · heads)
  void gat_attention(const EdgeLists& g, ConstMatRef xw, const float* att_src, const float* att_dst, int heads,
                     MatRef s_src, MatRef s_dst, MatRef alpha, int batch);
  // out[i, kh, :] = Σ over the edges e into i of drop(alpha[e, kh]) ·
  // xw[src(e), kh, :], plus bias (batch · heads · ch; may be null) on every
  // row. drop: with p > 0 (training) alpha is kept iff
  // dropout_keep(site_seed(steps[k].dropout_seed, site), steps[k].epoch + 1,
  // e · heads + h, p) and scaled by 1 / (1 - p); one p for every model.
  // Sums over each row's edges in edge order.
  void gat_aggregate(const EdgeLists& g, ConstMatRef alpha, ConstMatRef xw, int heads, const float* bias, MatRef out,
                     float p, const StepState* steps, uint32_t site, int batch);
  // The backward of gat_attention + gat_aggregate (the same p, steps and
  // site) from dout = dL/d out (N, batch · heads · ch):
  //   dxw (N, batch · heads · ch) = dL/d xw, through the aggregation and the
  //     scores (written whole);
  //   d_att_src, d_att_dst (batch · heads · ch) = dL/d att_src, att_dst
  //     (written, not accumulated);
  //   d_alpha (E, batch · heads), ds_src, ds_dst (N, batch · heads): scratch
  //     (left holding dL/d(leaky_relu's input) per edge, dL/d s_src and
  //     dL/d s_dst).
  // Every sum in a fixed order (sums over a node's out-edges through
  // EdgeLists::out_edge): no floating-point atomics, the same bits each run;
  // each model's block of a batch is the same op on that model alone (bit
  // for bit on the CPU). Sums over a node's edges are float, in edge (or
  // out_edge) order; the attention gradients sum over the nodes in double.
  void gat_backward(const EdgeLists& g, ConstMatRef dout, ConstMatRef xw, const float* att_src, const float* att_dst,
                    ConstMatRef s_src, ConstMatRef s_dst, ConstMatRef alpha, int heads, float p,
                    const StepState* steps, uint32_t site, MatRef dxw, float* d_att_src, float* d_att_dst,
                    MatRef d_alpha, MatRef ds_src, MatRef ds_dst, int batch);

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
  // act_dropout_* (relu_dropout_* are kRelu at site 0). rates_from_steps:
  // model k's rate is steps[k].dropout; else every model's is p. steps may be
  // null when no model drops (p = 0 and not rates_from_steps); the ReLU
  // backward needs no steps (y > 0 is its mask).
  virtual void do_relu_dropout_forward(Activation act, ConstMatRef x, MatRef y, float p, const StepState* steps,
                                       int batch, bool rates_from_steps, uint32_t site) = 0;
  virtual void do_relu_dropout_backward(Activation act, ConstMatRef dy, ConstMatRef y, MatRef dx, float p,
                                        const StepState* steps, int batch, bool rates_from_steps, uint32_t site,
                                        float* col_sums) = 0;
  virtual void do_sparse_dropout(const SparseMatrix& a, bool transposed, float p, const StepState* steps, int batch,
                                 uint32_t site, float* values) = 0;
  virtual void do_spmm_values(const SparseMatrix& a, const float* values, ConstMatRef b, MatRef c, int batch,
                              bool prepared) = 0;
  virtual void do_gat_attention(const EdgeLists& g, ConstMatRef xw, const float* att_src, const float* att_dst,
                                int heads, MatRef s_src, MatRef s_dst, MatRef alpha, int batch) = 0;
  virtual void do_gat_aggregate(const EdgeLists& g, ConstMatRef alpha, ConstMatRef xw, int heads, const float* bias,
                                MatRef out, float p, const StepState* steps, uint32_t site, int batch) = 0;
  virtual void do_gat_backward(const EdgeLists& g, ConstMatRef dout, ConstMatRef xw, const float* att_src,
                               const float* att_dst, ConstMatRef s_src, ConstMatRef s_dst, ConstMatRef alpha,
                               int heads, float p, const StepState* steps, uint32_t site, MatRef dxw,
                               float* d_att_src, float* d_att_dst, MatRef d_alpha, MatRef ds_src, MatRef ds_dst,
                               int batch) = 0;
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
