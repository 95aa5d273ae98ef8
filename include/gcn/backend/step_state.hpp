// The values of a run that change from epoch to epoch, kept in backend memory
// and read there by the ops (the CUDA kernels and their CPU twins), so that no
// per-epoch value is baked into a launch and a captured epoch replays
// unchanged. Plain structs with a fixed layout: the kernels include this file.
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define GCN_STEP_HD __host__ __device__ __forceinline__
#else
#define GCN_STEP_HD inline
#endif

namespace gcn {

// One run's step state. The host writes it only before the first epoch (a new
// run, or a resumed one); after that the ops advance it.
struct StepState {
  int64_t epoch;           // epochs completed; the running epoch is epoch + 1: Adam's step and the dropout stream
  uint64_t dropout_seed;   // dropout masks: dropout_keep(dropout_seed, epoch + 1, index, p)
  int32_t best_epoch;      // best validation epoch so far (0: none), by select_loss's rule
  int32_t best_val_correct;
  float best_val_loss;
  int32_t patience;        // stop after this many epochs without a better one (0: never)
  int32_t stopped;         // 1 once patience or early stopping ended the run: no later epoch changes anything
  int32_t improved;        // 1 when the epoch just evaluated became the best (the best-weights copy reads it)
  // The model's own rates, read by the batched ops (Backend::batch_*): a
  // batch of models trains each with its own. The single-model ops take
  // theirs as arguments and ignore these.
  float lr;
  float weight_decay;
  float dropout;
  // The best epoch: 0 the highest validation accuracy (ties: the lower
  // validation loss); 1 the lowest validation loss (ties: the earlier epoch),
  // PyG's benchmark/citation.
  int32_t select_loss;
  // benchmark/citation's early stopping (0: none): an epoch after
  // early_after whose validation loss exceeds the mean of the (up to)
  // early_stopping epochs before it ends the run. The ring must hold
  // early_stopping + 1 epochs.
  int32_t early_stopping;
  int32_t early_after;
};

// One epoch's figures. Epoch e writes slot (e - 1) % size of a ring in
// backend memory: the training loss during its training pass, the rest in its
// evaluation; the host reads the ring every few epochs.
struct EpochMetrics {
  float loss;          // training loss (with dropout)
  float val_loss;      // validation loss after the step (no dropout)
  int32_t correct[3];  // correct predictions among the train, val and test nodes
  int32_t epoch;       // the epoch these figures belong to (1-based)
};

// The ring of a batch of `models` models (1 for one model) holds size ·
// models slots, slot-major: model k's figures of epoch e are at
// slots[((e - 1) % size) · models + k], so the new epochs of every model of a
// batch come back in one copy.
struct MetricsRing {
  EpochMetrics* slots = nullptr;  // backend memory
  int32_t size = 0;
};

GCN_STEP_HD int64_t ring_index(int32_t size, int64_t epoch0, int32_t model, int32_t models) {
  return (epoch0 % size) * models + model;  // epoch0: the epoch counter before it advances (epoch - 1)
}

// Early stopping's test for epoch `epoch` with validation loss `val_loss`:
// above the mean of the validation losses of the (up to) `window` epochs
// before it, summed in double from the earliest; previous(j) gives epoch j's
// (1-based). Shared by the host's history and the backends' rings.
template <typename Previous>
GCN_STEP_HD bool exceeds_recent_mean(int32_t epoch, float val_loss, int32_t window, Previous previous) {
  const int32_t first = epoch - window > 1 ? epoch - window : 1;
  if (first >= epoch) return false;  // no epoch before it (torch's mean of nothing is NaN)
  double sum = 0.0;
  for (int32_t e = first; e < epoch; ++e) sum += static_cast<double>(previous(e));
  return static_cast<double>(val_loss) > sum / static_cast<double>(epoch - first);
}

// After an epoch's evaluation wrote `slot` (model `model` of `models` in the
// ring): is it the best epoch so far (select_loss's rule; the first epoch
// always), has patience run out or early stopping struck, and (advance) the
// epoch counter moves on. The same code runs on the host and in the CUDA
// evaluation kernel.
GCN_STEP_HD void select_epoch(StepState& s, const EpochMetrics& slot, bool advance, MetricsRing ring, int32_t model,
                              int32_t models) {
  const int32_t correct = slot.correct[1];
  const bool better = s.best_epoch == 0 ||
                      (s.select_loss != 0 ? slot.val_loss < s.best_val_loss
                                          : correct > s.best_val_correct ||
                                                (correct == s.best_val_correct && slot.val_loss < s.best_val_loss));
  s.improved = better ? 1 : 0;
  if (better) {
    s.best_epoch = slot.epoch;
    s.best_val_correct = correct;
    s.best_val_loss = slot.val_loss;
  }
  if (s.patience > 0 && slot.epoch - s.best_epoch >= s.patience) s.stopped = 1;
  if (s.early_stopping > 0 && slot.epoch > s.early_after &&
      exceeds_recent_mean(slot.epoch, slot.val_loss, s.early_stopping, [&](int32_t e) {
        return ring.slots[ring_index(ring.size, e - 1, model, models)].val_loss;
      })) {
    s.stopped = 1;
  }
  if (advance) s.epoch += 1;
}

}  // namespace gcn
