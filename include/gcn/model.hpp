// The tutorial's two-layer GCN, written once against the Backend interface:
//   logits = Â · (dropout(relu(Â · X W1 + b1)) W2) + b2
// Weights are stored as [in, out] (PyG's lin.weight transposed) so that both
// layers are plain products; all parameters live in one flat array so that one
// Adam launch updates them all.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "gcn/backend.hpp"
#include "gcn/buffer.hpp"
#include "gcn/dataset.hpp"

namespace gcn {

struct GcnShape {
  int32_t n_features = 0;
  int32_t hidden = 16;
  int32_t n_classes = 0;
};

// Offsets of each parameter in the flat array.
struct ParamLayout {
  explicit ParamLayout(const GcnShape& s);
  int64_t w1 = 0;  // (F, H)
  int64_t b1 = 0;  // (H)
  int64_t w2 = 0;  // (H, C)
  int64_t b2 = 0;  // (C)
  int64_t total = 0;
};

// Glorot-uniform weights (bound sqrt(6 / (fan_in + fan_out)), as PyG's
// glorot), zero biases; deterministic from the seed on every platform.
std::vector<float> glorot_init(const GcnShape& shape, uint64_t seed);

class GcnModel {
 public:
  GcnModel(Backend& backend, const Dataset& data, const GcnShape& shape, float dropout);
  GcnModel(const GcnModel&) = delete;
  GcnModel& operator=(const GcnModel&) = delete;

  const GcnShape& shape() const { return shape_; }
  const ParamLayout& layout() const { return layout_; }
  Backend& backend() { return *backend_; }

  void set_params(const std::vector<float>& host);  // also resets Adam's state
  std::vector<float> params() const;
  std::vector<float> grads() const;
  // Adam's first and second moments, for checkpoints.
  std::vector<float> adam_m() const { return adam_m_.to_host(); }
  std::vector<float> adam_v() const { return adam_v_.to_host(); }
  void set_adam_state(const std::vector<float>& m, const std::vector<float>& v);
  // The parameters as a buffer in backend memory (for snapshots by Backend::copy).
  const Buffer<float>& param_buffer() const { return params_; }
  Buffer<float>& param_buffer() { return params_; }
  // log_softmax of an evaluation forward pass (no dropout), (N, C) on the host.
  std::vector<float> log_probabilities();

  // Forward pass into logits(); dropout only when training (mask from seed and stream).
  void forward(bool training, uint64_t seed, uint64_t stream);
  // Loss over the training rows of the current logits, its gradient, and the
  // parameter gradients (grads()). loss_out: one float in backend memory.
  void backward(float* loss_out);
  // One Adam step (step counts from 1).
  void adam_step(const AdamConfig& config, int64_t step);
  // Validation loss and correct counts (train, val, test) of the current logits.
  void evaluate(float* val_loss_out, int32_t* correct_out);

  ConstMatRef logits() const { return logits_.ref(); }
  const int32_t* labels() const { return labels_.data(); }
  const uint8_t* split() const { return split_.data(); }

 private:
  Backend* backend_;
  GcnShape shape_;
  ParamLayout layout_;
  float dropout_;
  int64_t n_nodes_;
  int64_t n_train_, n_val_;
  std::unique_ptr<SparseMatrix> adj_;      // Â (N, N)
  std::unique_ptr<SparseMatrix> adj_t_;    // Âᵀ, null when Â is symmetric
  std::unique_ptr<SparseMatrix> x_;        // X (N, F)
  std::unique_ptr<SparseMatrix> x_t_;      // Xᵀ (F, N)
  Buffer<int32_t> labels_;                 // (N)
  Buffer<uint8_t> split_;                  // (N)
  Buffer<float> params_, grads_, adam_m_, adam_v_;  // (P)
  Matrix hidden_a_;   // (N, H) X·W1, later dL/d(pre-activation)
  Matrix hidden_b_;   // (N, H) Â·X·W1 + b1 -> dropout(relu(.)), later dL/d(X·W1)
  Matrix out_a_;      // (N, C) D·W2, later Âᵀ·dlogits
  Matrix logits_;     // (N, C)
  Matrix dlogits_;    // (N, C)
  bool dropout_applied_ = false;
};

}  // namespace gcn
