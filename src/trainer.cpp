#include "gcn/trainer.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>

#include <fmt/format.h>

#include "gcn/error.hpp"
#include "gcn/model.hpp"
#include "gcn/rng.hpp"

namespace gcn {

LossKind parse_loss(const std::string& text) {
  if (text == "nll") return LossKind::kNll;
  if (text == "cross-entropy") return LossKind::kCrossEntropy;
  throw UsageError(fmt::format("--loss: '{}' is not a loss; use nll or cross-entropy", text));
}

const char* loss_name(LossKind kind) { return kind == LossKind::kNll ? "nll" : "cross-entropy"; }

Selection parse_selection(const std::string& text) {
  if (text == "last") return Selection::kLast;
  if (text == "best-val") return Selection::kBestVal;
  throw UsageError(fmt::format("--select: '{}' is not a rule; use last or best-val", text));
}

const char* selection_name(Selection selection) { return selection == Selection::kLast ? "last" : "best-val"; }

void TrainConfig::validate() const {
  if (epochs < 1 || epochs > 10'000'000) throw UsageError(fmt::format("--epochs: {} is not in [1, 10000000]", epochs));
  if (!(std::isfinite(lr) && lr > 0.0f)) throw UsageError(fmt::format("--lr: {} is not a positive number", lr));
  if (!(std::isfinite(weight_decay) && weight_decay >= 0.0f)) {
    throw UsageError(fmt::format("--weight-decay: {} is not a non-negative number", weight_decay));
  }
  if (hidden < 1 || hidden > 65536) throw UsageError(fmt::format("--hidden: {} is not in [1, 65536]", hidden));
  if (!(dropout >= 0.0f && dropout < 1.0f)) throw UsageError(fmt::format("--dropout: {} is not in [0, 1)", dropout));
  if (log_every < 1) throw UsageError(fmt::format("--log-every: {} is not a positive number", log_every));
  if (patience < 0) throw UsageError(fmt::format("--patience: {} is negative", patience));
}

namespace {

double ratio(int32_t correct, int32_t total) { return total > 0 ? static_cast<double>(correct) / total : 0.0; }

// Derived seeds keep the initialisation and the dropout masks independent.
constexpr uint64_t kInitDomain = 0x1'0000'0001ull;
constexpr uint64_t kDropoutDomain = 0x2'0000'0002ull;

// PyG's benchmarks drop the first epochs (allocations, first launches, caches).
constexpr int kWarmupEpochs = 5;
double median_after_warmup(std::vector<double> ms) {
  const std::size_t warmup = ms.size() > 4 * kWarmupEpochs ? kWarmupEpochs : (ms.size() > 1 ? 1 : 0);
  ms.erase(ms.begin(), ms.begin() + static_cast<std::ptrdiff_t>(warmup));
  if (ms.empty()) return 0.0;
  std::nth_element(ms.begin(), ms.begin() + static_cast<std::ptrdiff_t>(ms.size() / 2), ms.end());
  return ms[ms.size() / 2];
}

// Validation improved: higher accuracy, or the same accuracy at a lower loss
// (the rule Backend::evaluate applies in backend memory).
bool better(const EpochStats& a, const EpochStats& b) {
  return a.val_acc > b.val_acc || (a.val_acc == b.val_acc && a.val_loss < b.val_loss);
}

std::string hyperparameter_key(const TrainConfig& c) {
  return fmt::format("{:a} {:a} {}", c.lr, c.weight_decay, static_cast<int>(c.select));
}

EpochStats stats_from(const EpochMetrics& m, int epoch, const DeviceGraph& g) {
  EpochStats s;
  s.epoch = epoch;
  s.loss = m.loss;
  s.val_loss = m.val_loss;
  s.train_acc = ratio(m.correct[0], g.n_train());
  s.val_acc = ratio(m.correct[1], g.n_val());
  s.test_acc = ratio(m.correct[2], g.n_test());
  return s;
}

}  // namespace

Trainer::Trainer(const DeviceGraph& graph, int hidden, float dropout)
    : graph_(&graph), hidden_(hidden), dropout_(dropout) {
  const GcnShape shape{graph.n_features(), hidden, graph.n_classes()};
  model_ = std::make_unique<GcnModel>(graph, shape, dropout);
  host_ring_ = static_cast<EpochMetrics*>(graph.backend().allocate_host(sizeof(EpochMetrics) * GcnModel::kRingSlots));
}

Trainer::~Trainer() {
  recording_.reset();
  graph_->backend().deallocate_host(host_ring_);
}

TrainResult Trainer::train(const TrainConfig& config, const TrainOptions& options) {
  config.validate();
  if (config.hidden != hidden_ || config.dropout != dropout_) {
    throw UsageError(fmt::format("this trainer's model has hidden {} and dropout {}, not {} and {}", hidden_, dropout_,
                                 config.hidden, config.dropout));
  }
  Backend& backend = graph_->backend();
  GcnModel& model = *model_;
  const GcnShape& shape = model.shape();
  const TrainState* resume = options.resume;
  const bool best_val = config.select == Selection::kBestVal;
  const int n_epochs = config.epochs;

  StepState step{};
  step.dropout_seed = mix64(config.seed ^ kDropoutDomain);
  step.patience = config.patience;
  TrainResult result;
  result.history.reserve(static_cast<std::size_t>(n_epochs));
  int first_epoch = 1;
  if (resume != nullptr) {
    if (resume->epoch < 0 || resume->epoch > config.epochs ||
        static_cast<int>(resume->history.size()) != resume->epoch) {
      throw UsageError(fmt::format("--resume: the checkpoint is at epoch {} with {} history entries; --epochs is {}",
                                   resume->epoch, resume->history.size(), config.epochs));
    }
    if (resume->best_epoch < 0 || resume->best_epoch > resume->epoch) {
      throw UsageError(fmt::format("--resume: the checkpoint's best epoch {} is not one of its {} epochs",
                                   resume->best_epoch, resume->epoch));
    }
    model.set_params(resume->params);
    model.set_adam_state(resume->adam_m, resume->adam_v);
    result.history = resume->history;
    result.best_epoch = resume->best_epoch;
    first_epoch = resume->epoch + 1;
    step.epoch = resume->epoch;
    if (resume->best_epoch > 0) {
      const EpochStats& b = resume->history[static_cast<std::size_t>(resume->best_epoch - 1)];
      step.best_epoch = resume->best_epoch;
      step.best_val_correct = static_cast<int32_t>(std::llround(b.val_acc * graph_->n_val()));
      step.best_val_loss = static_cast<float>(b.val_loss);
      if (best_val) {
        if (resume->best_params.size() != static_cast<std::size_t>(model.layout().total)) {
          throw UsageError("--resume: the checkpoint holds no best-epoch parameters; it was not made with --select "
                           "best-val");
        }
        model.set_best_params(resume->best_params);
      }
    }
  } else if (options.init_params != nullptr) {
    model.set_params(*options.init_params);
  } else {
    model.set_params(glorot_init(shape, mix64(config.seed ^ kInitDomain)));
  }
  model.set_step(step);
  const AdamConfig adam{config.lr, 0.9f, 0.999f, 1e-8f, config.weight_decay};
  const std::string key = hyperparameter_key(config);
  if (recording_ && recording_key_ != key) recording_.reset();  // recorded with other kernel arguments

  const MetricsRing ring = model.ring();
  // Read back at least once a ring's worth of epochs, so no slot is
  // overwritten before it was read.
  const int read_every = std::min(config.log_every, ring.size);
  std::vector<double> epoch_ms;  // per epoch: its group's mean
  using Clock = std::chrono::steady_clock;
  backend.synchronize();
  backend.clear_markers();
  const auto t_start = Clock::now();
  int group_start = backend.record_marker();
  int fetched = first_epoch - 1;  // epochs whose figures are on the host
  bool stop = false;

  for (int epoch = first_epoch; epoch <= n_epochs && !stop; ++epoch) {
    // The first epoch of a run runs op by op (it makes the cuSPARSE plans
    // and workspaces); then the epoch is recorded once and replayed.
    if (config.cuda_graph && !recording_ && epoch > first_epoch) {
      recording_ = backend.record([&] { model.epoch(adam, best_val); });
      recording_key_ = key;
    }
    if (recording_ && epoch > first_epoch) {
      recording_->replay();
      result.graph_replayed = true;
    } else {
      model.epoch(adam, best_val);
    }

    const bool log_now = epoch % config.log_every == 0 || epoch == n_epochs;
    const bool checkpoint_now = options.checkpoint_every > 0 && epoch % options.checkpoint_every == 0;
    // Timing groups end at read-backs; one more at the end of the warm-up
    // keeps its epochs (planning, the recording) out of the steady-state figure.
    const bool warmup_end = epoch == kWarmupEpochs && n_epochs > 4 * kWarmupEpochs;
    if (!log_now && !checkpoint_now && !warmup_end && epoch - fetched < read_every) continue;

    // One read-back: the new slots (in at most two pieces where the ring wraps).
    const int group_end = backend.record_marker();
    const int n_new = epoch - fetched;
    for (int done = 0; done < n_new;) {
      const int slot = (fetched + done) % ring.size;
      const int count = std::min(n_new - done, ring.size - slot);
      backend.download_async(host_ring_ + slot, ring.slots + slot, sizeof(EpochMetrics) * static_cast<std::size_t>(count));
      done += count;
    }
    backend.synchronize();
    const double group_ms = backend.elapsed_ms(group_start, group_end);
    backend.clear_markers();
    group_start = backend.record_marker();
    for (int i = 0; i < n_new; ++i) epoch_ms.push_back(group_ms / n_new);

    for (int e = fetched + 1; e <= epoch; ++e) {
      const EpochMetrics& m = host_ring_[(e - 1) % ring.size];
      if (m.epoch != e) {
        throw Error(fmt::format("epoch {}: the metrics ring holds epoch {} (a read-back fell behind)", e, m.epoch));
      }
      if (!std::isfinite(m.loss) && !config.allow_nonfinite) {
        throw NumericError(fmt::format("epoch {}: the training loss is {}; lower --lr, check the input features, or pass "
                                       "--allow-nonfinite to continue anyway",
                                       e, m.loss));
      }
      result.history.push_back(stats_from(m, e, *graph_));
      if (result.best_epoch == 0 || better(result.history.back(), result.history[result.best_epoch - 1])) {
        result.best_epoch = e;
      }
      // The backend stopped at this epoch too (the same rule on the same
      // figures): nothing after it changed the model.
      if (config.patience > 0 && e - result.best_epoch >= config.patience) {
        stop = true;
        result.stopped_early = e < n_epochs;
        break;
      }
    }
    fetched = result.history.back().epoch;
    if ((log_now || stop) && options.on_log) options.on_log(result.history.back());
    if ((checkpoint_now || stop) && options.checkpoint_every > 0 && options.on_checkpoint &&
        fetched % options.checkpoint_every == 0) {
      TrainState state;
      state.epoch = fetched;
      state.params = model.params();
      state.adam_m = model.adam_m();
      state.adam_v = model.adam_v();
      state.history = result.history;
      state.best_epoch = result.best_epoch;
      if (best_val) state.best_params = model.best_params();
      options.on_checkpoint(state);
    }
  }
  result.train_s = std::chrono::duration<double>(Clock::now() - t_start).count();
  result.epoch_ms_median = median_after_warmup(epoch_ms);
  const StepState final_step = model.step();
  if (final_step.best_epoch != result.best_epoch) {
    throw Error(fmt::format("internal: the backend's best epoch {} differs from the host's {}", final_step.best_epoch,
                            result.best_epoch));
  }
  if (best_val) {
    result.selected_epoch = result.best_epoch;
    model.use_best_params();
  } else {
    result.selected_epoch = static_cast<int>(result.history.size());
  }
  result.params = model.params();
  if (options.want_log_probs) result.log_probs = model.log_probabilities();
  return result;
}

EpochStats Trainer::evaluate(const std::vector<float>& params, std::vector<float>* log_probs) {
  GcnModel& model = *model_;
  model.set_params(params);
  model.set_step(StepState{});
  model.eval_pass(/*advance=*/false);
  model.eval_training_loss();
  EpochMetrics m{};
  graph_->backend().download(&m, model.ring().slots, sizeof(EpochMetrics));
  EpochStats s = stats_from(m, 0, *graph_);
  if (log_probs != nullptr) *log_probs = model.log_probabilities();
  return s;
}

TrainResult train_gcn(Backend& backend, const Dataset& data, const TrainConfig& config, const TrainOptions& options) {
  config.validate();
  const DeviceGraph graph(backend, data);
  Trainer trainer(graph, config.hidden, config.dropout);
  return trainer.train(config, options);
}

EpochStats evaluate_params(Backend& backend, const Dataset& data, int hidden, const std::vector<float>& params,
                           std::vector<float>* log_probs) {
  const DeviceGraph graph(backend, data);
  Trainer trainer(graph, hidden, 0.0f);
  return trainer.evaluate(params, log_probs);
}

}  // namespace gcn
