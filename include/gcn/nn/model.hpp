// The model as a list of layers over a DeviceGraph (made by its type's
// factory, gcn/nn/registry.hpp), and the epoch as a program of backend ops
// over one planned Workspace.
//
// The tutorial's GCN is three layers and a head:
//   conv1 = GCNConv(F, H)   out = Â · (X · W1) + b1        (X sparse)
//   act1  = ReLU + dropout  out = dropout(relu(in))
//   conv2 = GCNConv(H, C)   out = Â · (in · W2) + b2       (the logits)
//   head: log_softmax + NLL over the training nodes; evaluation over all.
// Every layer names its tensors in the workspace (conv1.xw, conv1.out,
// act1.out.train, ...) and its parameters in one flat array, in PyG's
// state_dict order (conv1.lin.weight, conv1.bias, conv2.lin.weight,
// conv2.bias), weights stored [in, out] (PyG's transposed) so that each
// layer is a plain product.
//
// Less work per epoch: the layers before the first one whose forward depends
// on the pass (dropout) compute the same thing in the evaluation after step t
// and in the training pass of step t + 1 (same weights, no randomness), so
// their outputs are one tensor, written by the evaluation and read by the
// next training pass. For the GCN that is conv1: its two products (the
// largest, X · W1 over the sparse features) run once per epoch, not twice.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "gcn/backend/backend.hpp"
#include "gcn/backend/buffer.hpp"
#include "gcn/nn/device_graph.hpp"
#include "gcn/nn/layer.hpp"
#include "gcn/nn/params.hpp"
#include "gcn/nn/registry.hpp"
#include "gcn/backend/step_state.hpp"
#include "gcn/nn/workspace.hpp"

namespace gcn {

// One model's own rates in a batch.
struct ModelRates {
  float lr = 0.01f;
  float weight_decay = 5e-4f;
  float dropout = 0.5f;
};

// The tutorial's model over a graph: layers, the workspace, the parameters
// and Adam's moments, the step state and the metrics ring, all in backend
// memory. The epoch's pieces queue ops and never wait.
//
// A batch of models of one shape trains as one: every tensor holds the
// batch's models side by side (column blocks), the graph's products run once
// for all of them, and each model keeps its own rates, step state, best
// epoch and metrics; a model that stops early is masked (its parameters and
// metrics stop changing). Each model's results are the bits it gets trained
// alone.
class GcnModel {
 public:
  static constexpr int kRingSlots = 1024;

  // restrict_training: the training pass multiplies only by the parts of
  // Â, Âᵀ and Xᵀ that reach the training rows (see model.cpp); false
  // multiplies by all of them (the same bits, for tests). One model: its
  // lr and weight decay come with each adam_step/epoch call.
  GcnModel(const DeviceGraph& graph, const ModelShape& shape, float dropout, bool restrict_training = true);
  // A batch of rates.size() models (each with its own rates; the AdamConfig
  // given to adam_step/epoch then supplies only the betas and eps).
  // allocate = false only plans (workspace_bytes(), nothing else).
  GcnModel(const DeviceGraph& graph, const ModelShape& shape, const std::vector<ModelRates>& rates,
           bool restrict_training = true, bool allocate = true);
  ~GcnModel();
  GcnModel(const GcnModel&) = delete;
  GcnModel& operator=(const GcnModel&) = delete;

  const ModelShape& shape() const { return shape_; }
  const ParamLayout& layout() const { return layout_; }
  Backend& backend() const { return *backend_; }
  const Workspace& workspace() const { return ws_; }
  const std::vector<std::unique_ptr<Layer>>& layers() const { return layers_; }
  int batch() const { return batch_; }
  // The backend memory of the model's workspace (parameters, Adam, tensors).
  std::size_t workspace_bytes() const { return ws_.total_bytes(); }
  // The parameter tensors in the batch layout (what Adam runs over).
  const ParamBlocks& param_blocks() const { return blocks_; }
  // "GCNConv(1433, 16) -> ReLU -> dropout(0.5) -> GCNConv(16, 7)"
  std::string describe() const;

  // ---- state (host <-> backend; these wait) ----
  void set_params(const std::vector<float>& host);  // also zeroes Adam's moments
  std::vector<float> params() const;
  std::vector<float> grads() const;
  std::vector<float> adam_m() const;
  std::vector<float> adam_v() const;
  void set_adam_state(const std::vector<float>& m, const std::vector<float>& v);
  std::vector<float> best_params() const;
  void set_best_params(const std::vector<float>& host);
  void use_best_params();  // params = the best epoch's (queued copy)
  void set_step(const StepState& state);
  StepState step() const;
  // ---- a batch (one entry per model; params in ParamLayout order each) ----
  void set_model_params(const std::vector<std::vector<float>>& per_model);  // also zeroes Adam's moments
  std::vector<std::vector<float>> model_params() const;
  std::vector<std::vector<float>> model_best_params() const;
  // The models' rates from now on (applied by the next set_steps); a batch
  // of 1 keeps the dropout rate it was made with.
  void set_rates(const std::vector<ModelRates>& rates);
  const std::vector<ModelRates>& rates() const { return rates_; }
  // The models' step states; the rates fields are set from the model's rates.
  void set_steps(std::vector<StepState> states);
  std::vector<StepState> steps() const;
  MetricsRing ring() const;
  // The logits of the last training or evaluation pass (backend memory).
  ConstMatRef logits(Pass pass) const;
  // The ring slot of epoch `epoch` (1-based; epoch 0 is the evaluation of
  // evaluate_params) of model k, downloaded (waits).
  EpochMetrics metrics(int64_t epoch, int k = 0) const;

  // ---- the epoch program (queue ops, never wait) ----
  // The training pass: forward with dropout (the reused prefix as the last
  // evaluation left it), loss into the ring, backward into grads().
  void train_forward_backward();
  void adam_step(const AdamConfig& config);
  // The evaluation pass: forward without dropout, then Backend::evaluate
  // (advance: the epoch counter moves on). It also leaves the prefix ready
  // for the next training pass.
  void eval_pass(bool advance);
  // The training loss of the evaluation pass's logits (no dropout, no
  // gradient) into the ring slot (evaluate_params).
  void eval_training_loss();
  // With best-val selection: copy the parameters when the epoch just
  // evaluated became the best.
  void keep_best();
  // One epoch: train_forward_backward, adam_step, eval_pass(true), keep_best
  // (when copy_best).
  void epoch(const AdamConfig& config, bool copy_best);
  // The evaluation pass's log-probabilities (N, C), on the host (waits).
  std::vector<float> log_probabilities();
  // The evaluation pass's last hidden layer (the input of the last layer):
  // (N, its width) per node, on the host (waits). A batch of 1 only.
  std::vector<float> hidden_output(int64_t* cols);

 private:
  void plan(bool restrict_training, bool allocate);
  std::vector<std::vector<float>> gather(Workspace::Id id) const;
  void prepare(Pass pass);
  void forward(Pass pass);
  LayerContext context() const;

  Backend* backend_;
  const DeviceGraph* graph_;
  ModelShape shape_;
  ParamLayout layout_;  // one model's
  int batch_ = 1;
  std::vector<ModelRates> rates_;
  ParamBlocks blocks_;
  std::vector<std::unique_ptr<Layer>> layers_;
  int prefix_ = 0;  // layers [0, prefix_) are computed by the evaluation pass only
  bool prefix_fresh_ = false;  // the prefix outputs match the current parameters
  Workspace ws_;
  // Tensor ids (see plan()).
  Workspace::Id params_ = -1, grads_ = -1, adam_m_ = -1, adam_v_ = -1, best_ = -1, step_ = -1, ring_ = -1;
  Workspace::Id scratch_ = -1;
  std::vector<Workspace::Id> out_[2];  // per pass, per layer
  std::vector<Workspace::Id> grad_;    // dL/d(out of layer k), train pass
  // The backward's fused column sums, planned once: layer k's backward also
  // writes the bias gradient at grads offset col_sums (-1: none), and layer
  // k's own bias gradient was written by whoever produced its dL/d out.
  struct Fusion {
    int64_t col_sums = -1;
    bool bias_grad_done = false;
  };
  std::vector<Fusion> fusion_;
  std::vector<OutputInit> prepare_[2];
};

}  // namespace gcn
