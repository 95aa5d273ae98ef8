// The training loop of PyG's GCN tutorial, on any backend:
//   for each epoch: train (forward with dropout, loss, backward, Adam step),
//   then evaluate (forward without dropout, argmax, accuracy per split).
// Per-epoch figures go to a ring in backend memory and are read back with one
// copy every --log-every epochs (and at checkpoints and the end); the host
// waits for the device only then. The best-epoch decision, the copy of the
// best weights and early stopping are made in backend memory too, so
// --select best-val and --patience need no read-back per epoch. On CUDA,
// after one warm-up epoch the epoch is recorded as a CUDA graph and
// replayed (TrainConfig::cuda_graph).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "gcn/backend/backend.hpp"
#include "gcn/data/dataset.hpp"
#include "gcn/nn/device_graph.hpp"
#include "gcn/nn/params.hpp"
#include "gcn/nn/registry.hpp"

namespace gcn {

// Both formulations are the same function of the logits and run through the
// same fused op, so they train bit-identically; the choice is recorded.
enum class LossKind { kNll, kCrossEntropy };
LossKind parse_loss(const std::string& text);  // "nll" | "cross-entropy"; UsageError otherwise
const char* loss_name(LossKind kind);

// Which epoch's model a run reports (and saves): the last one, the one with
// the best validation accuracy (ties: the lower validation loss), or the one
// with the lowest validation loss (ties: the earlier epoch; PyG's
// benchmark/citation).
enum class Selection { kLast, kBestVal, kBestValLoss };
// "last" | "best-val" | "best-val-loss"; UsageError otherwise
Selection parse_selection(const std::string& text);
const char* selection_name(Selection selection);

struct TrainConfig {
  int epochs = 200;
  float lr = 0.01f;
  float weight_decay = 5e-4f;
  int hidden = 16;
  float dropout = 0.5f;
  // The architecture beyond the hidden width (ModelShape): the model type
  // (the registry's), the depth, per-layer widths (empty: `hidden` each), the
  // dropout on the input features, and the type's own hyperparameters
  // (every one it declares: GAT's heads and attention dropout, ...).
  const ModelType* model = &find_model_type("gcn");
  int layers = 2;
  std::vector<int32_t> hiddens;
  float input_dropout = 0.0f;
  HyperValues hyper;
  uint64_t seed = 0;
  LossKind loss = LossKind::kNll;
  int log_every = 1;
  Selection select = Selection::kLast;
  // Stop when validation (accuracy, ties: lower loss) has not improved for
  // this many epochs; 0 trains all epochs.
  int patience = 0;
  // benchmark/citation's early stopping: after half the epochs, stop at the
  // first epoch whose validation loss exceeds the mean of the validation
  // losses of the early_stopping epochs before it; 0: never. At most
  // kMaxEarlyStopping (the metrics ring holds that many epochs back).
  int early_stopping = 0;
  static constexpr int kMaxEarlyStopping = 1000;
  // A NaN or infinite training loss ends the run with gcn::NumericError naming
  // the epoch, unless this is set.
  bool allow_nonfinite = false;
  // Record the epoch once and replay it (a CUDA graph) where the backend can;
  // the same results either way.
  bool cuda_graph = true;

  void validate() const;  // UsageError naming the bad option
  // The model this configuration trains on a graph of these dimensions.
  ModelShape shape(int32_t n_features, int32_t n_classes) const;
};

struct EpochStats {
  int epoch = 0;           // from 1
  double loss = 0;         // training loss of this epoch's training forward pass (with dropout)
  double val_loss = 0;     // after the step, without dropout
  double train_acc = 0, val_acc = 0, test_acc = 0;
};

// Everything a run needs to continue after `epoch` epochs, on the host.
struct TrainState {
  int epoch = 0;                       // epochs completed; also Adam's step count
  std::vector<float> params;           // ParamLayout order
  std::vector<float> adam_m, adam_v;   // Adam's moments, same order
  std::vector<EpochStats> history;     // epochs 1..epoch
  int best_epoch = 0;                  // best validation epoch so far (0: none)
  std::vector<float> best_params;      // parameters after best_epoch (kBestVal, kBestValLoss only)
};

struct TrainResult {
  std::vector<EpochStats> history;  // every epoch that ran (from epoch 1 when resumed)
  std::vector<float> params;        // the selected epoch's parameters (ParamLayout order)
  int selected_epoch = 0;           // the last epoch, or the best validation epoch
  int best_epoch = 0;               // best validation epoch (by the Selection's rule; kLast: accuracy)
  bool stopped_early = false;       // --patience or early stopping ended the run before --epochs
  double train_s = 0;               // wall time of the epoch loop
  // Train step + evaluation: the median over the epochs after a warm-up (the
  // first 5, or 1 for short runs) of each epoch's time, timed by backend
  // markers (CUDA events on the GPU) around each group of epochs between
  // read-backs (--log-every), an epoch's time being its group's mean.
  double epoch_ms_median = 0;
  bool graph_replayed = false;      // the epochs after the first were CUDA graph replays
  bool interrupted = false;         // TrainOptions::interrupt ended the run before --epochs
  std::vector<float> log_probs;     // (N, C) of the selected parameters, if asked for
  std::vector<float> embeddings;    // (N, hidden) of the selected parameters, if asked for

  const EpochStats& final_stats() const { return history.back(); }
  const EpochStats& selected() const { return history[static_cast<std::size_t>(selected_epoch - 1)]; }
};

// Called for each logged epoch, in order.
using EpochCallback = std::function<void(const EpochStats&)>;

struct TrainOptions {
  EpochCallback on_log;
  // A batch: called after each read-back with the last epoch read and the
  // number of models still training.
  std::function<void(int epoch, int running)> on_progress;
  const std::vector<float>* init_params = nullptr;  // instead of Glorot (ParamLayout order)
  const TrainState* resume = nullptr;               // continue after resume->epoch epochs
  int checkpoint_every = 0;                         // call on_checkpoint every K epochs
  bool checkpoint_at_end = false;                   // and (or only) after the last epoch
  std::function<void(const TrainState&)> on_checkpoint;
  // Set (by a signal handler, say) to end the run after the running epoch:
  // its figures are read back, on_checkpoint is called when checkpoints were
  // asked for, and the result is marked interrupted.
  const std::atomic<bool>* interrupt = nullptr;
  bool want_log_probs = false;
  bool want_embeddings = false;      // the last hidden layer per node (TrainResult::embeddings)
};

class GcnModel;

// Trains models of one shape over one DeviceGraph; runs (seeds) share the
// graph, the model's workspace and, while the hyperparameters stay the same,
// the recorded epoch.
//
// A batch trainer trains up to `batch` models at once, each with its own
// seed, learning rate, weight decay and dropout rate (the rest of the
// configuration is shared): each model's results are the bits it gets
// trained alone on the CPU.
class Trainer {
 public:
  Trainer(const DeviceGraph& graph, const ModelShape& shape, float dropout);
  // A batch of `batch` models; with_dropout: whether any model will drop
  // (a model without dropout trains the same either way).
  Trainer(const DeviceGraph& graph, const ModelShape& shape, int batch, bool with_dropout);
  // The tutorial GCN of this hidden width.
  Trainer(const DeviceGraph& graph, int hidden, float dropout);
  Trainer(const DeviceGraph& graph, int hidden, int batch, bool with_dropout);
  ~Trainer();
  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;

  TrainResult train(const TrainConfig& config, const TrainOptions& options = {});
  // Trains configs.size() models (at most the batch; they agree on epochs,
  // hidden, loss, log_every, select, patience, allow_nonfinite and
  // cuda_graph) as one batch. options: on_log, on_progress only (init,
  // resume, checkpoints and log-probabilities are for one model).
  std::vector<TrainResult> train_batch(const std::vector<TrainConfig>& configs, const TrainOptions& options = {});
  // The backend memory a batch trainer of `batch` models takes (its
  // workspace; the graph not included), planned without allocating.
  static std::size_t planned_bytes(const DeviceGraph& graph, const ModelShape& shape, int batch, bool with_dropout);
  static std::size_t planned_bytes(const DeviceGraph& graph, int hidden, int batch, bool with_dropout);
  // See evaluate_params.
  EpochStats evaluate(const std::vector<float>& params, std::vector<float>* log_probs = nullptr);
  GcnModel& model() { return *model_; }

 private:
  std::vector<TrainResult> run(const std::vector<TrainConfig>& configs, const TrainOptions& options);

  const DeviceGraph* graph_;
  ModelShape shape_;
  float dropout_;   // one model's (batch_ == 1 trainers)
  int batch_ = 1;   // 0: a single-model trainer
  bool with_dropout_ = true;
  std::unique_ptr<GcnModel> model_;
  std::unique_ptr<Recording> recording_;
  std::string recording_key_;  // the hyperparameters the recording was made with
  EpochMetrics* host_ring_ = nullptr;  // pinned mirror of the metrics ring
};

// One run on a graph uploaded for it (tests; gcn-train shares one DeviceGraph
// between runs).
TrainResult train_gcn(Backend& backend, const Dataset& data, const TrainConfig& config,
                      const TrainOptions& options);

// Evaluates given parameters without training (gcn-train --epochs 0 --init):
// epoch 0, loss = the training loss without dropout, and the validation loss
// and accuracies exactly as a training epoch's evaluation computes them.
// log_probs (N, C), when given, receives the log-probabilities.
EpochStats evaluate_params(Backend& backend, const Dataset& data, const ModelShape& shape,
                           const std::vector<float>& params, std::vector<float>* log_probs = nullptr);
EpochStats evaluate_params(Backend& backend, const Dataset& data, int hidden, const std::vector<float>& params,
                           std::vector<float>* log_probs = nullptr);
inline TrainResult train_gcn(Backend& backend, const Dataset& data, const TrainConfig& config,
                             const EpochCallback& on_log = {}) {
  TrainOptions options;
  options.on_log = on_log;
  return train_gcn(backend, data, config, options);
}

}  // namespace gcn
