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
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "gcn/csr.hpp"

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
// run. Backends subclass it to keep their own handles (cuSPARSE descriptors).
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

class Backend {
 public:
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

  // ---- sparse -------------------------------------------------------------
  virtual std::unique_ptr<SparseMatrix> upload_csr(const CsrMatrix& host) = 0;
  // c (M, N) = a (M, K) · b (K, N)
  virtual void spmm(const SparseMatrix& a, ConstMatRef b, MatRef c) = 0;

  // ---- dense --------------------------------------------------------------
  // c (M, N) = op(a) · op(b), op = transpose when the flag is set.
  virtual void gemm(ConstMatRef a, bool trans_a, ConstMatRef b, bool trans_b, MatRef c) = 0;
  // x (M, N) += bias (N) on every row
  virtual void add_bias(MatRef x, const float* bias) = 0;
  // out (N) = sum over the rows of x (M, N), in a fixed order
  virtual void column_sum(ConstMatRef x, float* out) = 0;

  // y = dropout(relu(x)); y may alias x. The keep decision for element i is
  // dropout_keep(seed, stream, i, p) (gcn/rng.hpp), identical on every backend.
  // p = 0 is a plain ReLU.
  virtual void relu_dropout_forward(ConstMatRef x, MatRef y, float p, uint64_t seed,
                                    uint64_t stream) = 0;
  // dx = dy ⊙ ∂y/∂x given the forward output y: dy / (1 - p) where y > 0, else 0.
  // dx may alias dy.
  virtual void relu_dropout_backward(ConstMatRef dy, ConstMatRef y, MatRef dx, float p) = 0;

  // ---- classifier ---------------------------------------------------------
  // y (M, C) = log_softmax(x) row by row (max-subtracted). Unfused reference
  // and the source of probabilities for predictions.
  virtual void log_softmax(ConstMatRef x, MatRef y) = 0;
  // Fused log_softmax + NLL over the rows r with (split[r] & mask_bit):
  //   *loss_out = mean_r -log_softmax(logits)[r, labels[r]]   (0 when n_masked == 0)
  //   grad (M, C) = (softmax - onehot) / n_masked on masked rows, 0 elsewhere
  // n_masked must equal the number of masked rows (known to the caller).
  // grad may be null (evaluation). loss_out is one float in backend memory.
  virtual void log_softmax_nll(ConstMatRef logits, const int32_t* labels, const uint8_t* split,
                               uint8_t mask_bit, int64_t n_masked, float* loss_out,
                               float* grad) = 0;
  // The unfused second half of log_softmax + NLL (the baseline the fused op is
  // measured against): the same loss and gradient as log_softmax_nll, given
  // log_probs = log_softmax(logits) from log_softmax().
  virtual void nll_loss(ConstMatRef log_probs, const int32_t* labels, const uint8_t* split,
                        uint8_t mask_bit, int64_t n_masked, float* loss_out, float* grad) = 0;
  // Row argmax as torch.argmax (the first maximum, or the first NaN if the row
  // has one) and, for bits 0..2 of split, the number of rows with split bit
  // set and argmax == label: correct_out[3] in backend memory.
  // pred (M) may be null.
  virtual void argmax_correct(ConstMatRef logits, const int32_t* labels, const uint8_t* split,
                              int32_t* pred, int32_t* correct_out) = 0;

  // ---- optimizer ----------------------------------------------------------
  // One Adam step over n contiguous parameters; step counts from 1.
  virtual void adam_step(float* params, const float* grads, float* m, float* v, int64_t n,
                         const AdamConfig& config, int64_t step) = 0;

  // ---- timing and accounting ----------------------------------------------
  // Records a point in the backend's work queue (a CUDA event on the stream,
  // a clock reading on the CPU) without waiting; returns its id. Ids count up
  // from 0 until clear_markers().
  virtual int record_marker() = 0;
  // Milliseconds between two recorded markers; waits until both have passed.
  virtual double elapsed_ms(int from, int to) = 0;
  virtual void clear_markers() = 0;
  // The most backend memory held at once by allocate() (and internal
  // workspaces) since the backend was created, in bytes.
  virtual std::size_t peak_memory_bytes() const = 0;
  // The device's peak memory bandwidth in GB/s when known (a table of GPUs),
  // else 0.
  virtual double peak_bandwidth_gbs() const { return 0.0; }
};

}  // namespace gcn
