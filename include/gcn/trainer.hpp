// The training loop of PyG's GCN tutorial, on any backend:
//   for each epoch: train (forward with dropout, loss, backward, Adam step),
//   then evaluate (forward without dropout, argmax, accuracy per split).
// Per-epoch values stay in backend memory and are read back only on the epochs
// that log (log_every), so the GPU never waits for the host in between.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "gcn/backend.hpp"
#include "gcn/dataset.hpp"

namespace gcn {

// Both formulations are the same function of the logits and run through the
// same fused op, so they train bit-identically; the choice is recorded.
enum class LossKind { kNll, kCrossEntropy };
LossKind parse_loss(const std::string& text);  // "nll" | "cross-entropy"; UsageError otherwise
const char* loss_name(LossKind kind);

struct TrainConfig {
  int epochs = 200;
  float lr = 0.01f;
  float weight_decay = 5e-4f;
  int hidden = 16;
  float dropout = 0.5f;
  uint64_t seed = 0;
  LossKind loss = LossKind::kNll;
  int log_every = 1;

  void validate() const;  // UsageError naming the bad option
};

struct EpochStats {
  int epoch = 0;           // from 1
  double loss = 0;         // training loss of this epoch's training forward pass (with dropout)
  double val_loss = 0;     // after the step, without dropout
  double train_acc = 0, val_acc = 0, test_acc = 0;
};

struct TrainResult {
  std::vector<EpochStats> history;  // every epoch
  std::vector<float> params;        // final parameters (ParamLayout order)
  double train_s = 0;               // wall time of the epoch loop
  // Medians over the epochs after a warm-up (the first 5, or 1 for short
  // runs), timed by backend markers (CUDA events on the GPU).
  double epoch_ms_median = 0;       // train step + evaluation
  double train_step_ms_median = 0;  // forward, loss, backward, Adam step
};

// Called for each logged epoch, in order.
using EpochCallback = std::function<void(const EpochStats&)>;

TrainResult train_gcn(Backend& backend, const Dataset& data, const TrainConfig& config,
                      const EpochCallback& on_log = {});

}  // namespace gcn
