#include "gcn/train/trainer.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <utility>

#include <fmt/format.h>

#include "gcn/error.hpp"
#include "gcn/nn/model.hpp"
#include "gcn/rng.hpp"
#include "gcn/suggest.hpp"

namespace gcn {

LossKind parse_loss(const std::string& text) {
  if (text == "nll") return LossKind::kNll;
  if (text == "cross-entropy") return LossKind::kCrossEntropy;
  throw UsageError(fmt::format("--loss: '{}' is not a loss{}; use nll or cross-entropy", text,
                               did_you_mean(text, {"nll", "cross-entropy"})));
}

const char* loss_name(LossKind kind) { return kind == LossKind::kNll ? "nll" : "cross-entropy"; }

Selection parse_selection(const std::string& text) {
  if (text == "last") return Selection::kLast;
  if (text == "best-val") return Selection::kBestVal;
  if (text == "best-val-loss") return Selection::kBestValLoss;
  throw UsageError(fmt::format("--select: '{}' is not a rule{}; use last, best-val or best-val-loss", text,
                               did_you_mean(text, {"last", "best-val", "best-val-loss"})));
}

const char* selection_name(Selection selection) {
  return selection == Selection::kLast ? "last" : selection == Selection::kBestVal ? "best-val" : "best-val-loss";
}

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
  if (early_stopping < 0 || early_stopping > kMaxEarlyStopping) {
    throw UsageError(fmt::format("--early-stopping: {} is not in [0, {}]", early_stopping, kMaxEarlyStopping));
  }
  for (int32_t h : hiddens) {
    if (h < 1 || h > 65536) throw UsageError(fmt::format("--hidden: {} is not in [1, 65536]", h));
  }
  ModelShape s = shape(1, 1);
  s.validate();
}

ModelShape TrainConfig::shape(int32_t n_features, int32_t n_classes) const {
  ModelShape s;
  s.n_features = n_features;
  s.hidden = hidden;
  s.n_classes = n_classes;
  s.type = model;
  s.layers = layers;
  s.hiddens = hiddens;
  s.input_dropout = input_dropout;
  s.hyper = hyper;
  return s;
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
bool better(const EpochStats& a, const EpochStats& b, Selection select) {
  if (select == Selection::kBestValLoss) return a.val_loss < b.val_loss;
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
    : Trainer(graph, ModelShape{graph.n_features(), hidden, graph.n_classes()}, dropout) {}

Trainer::Trainer(const DeviceGraph& graph, int hidden, int batch, bool with_dropout)
    : Trainer(graph, ModelShape{graph.n_features(), hidden, graph.n_classes()}, batch, with_dropout) {}

Trainer::Trainer(const DeviceGraph& graph, const ModelShape& shape, float dropout)
    : graph_(&graph), shape_(shape), dropout_(dropout), batch_(0) {
  model_ = std::make_unique<GcnModel>(graph, shape, dropout);
  host_ring_ = static_cast<EpochMetrics*>(graph.backend().allocate_host(sizeof(EpochMetrics) * GcnModel::kRingSlots));
}

Trainer::Trainer(const DeviceGraph& graph, const ModelShape& shape, int batch, bool with_dropout)
    : graph_(&graph), shape_(shape), dropout_(0.0f), batch_(batch), with_dropout_(with_dropout) {
  if (batch < 1) throw UsageError(fmt::format("--batch: {} is not a positive number", batch));
  host_ring_ = static_cast<EpochMetrics*>(
      graph.backend().allocate_host(sizeof(EpochMetrics) * GcnModel::kRingSlots * static_cast<std::size_t>(batch)));
}

Trainer::~Trainer() {
  recording_.reset();
  graph_->backend().deallocate_host(host_ring_);
}

std::size_t Trainer::planned_bytes(const DeviceGraph& graph, int hidden, int batch, bool with_dropout) {
  return planned_bytes(graph, ModelShape{graph.n_features(), hidden, graph.n_classes()}, batch, with_dropout);
}

std::size_t Trainer::planned_bytes(const DeviceGraph& graph, const ModelShape& shape, int batch, bool with_dropout) {
  const std::vector<ModelRates> rates(static_cast<std::size_t>(batch), ModelRates{0.01f, 0.0f, with_dropout ? 0.5f : 0.0f});
  const GcnModel plan(graph, shape, rates, /*restrict_training=*/true, /*allocate=*/false);
  return plan.workspace_bytes();
}

TrainResult Trainer::train(const TrainConfig& config, const TrainOptions& options) {
  return std::move(run({config}, options).front());
}

std::vector<TrainResult> Trainer::train_batch(const std::vector<TrainConfig>& configs, const TrainOptions& options) {
  if (batch_ == 0) throw Error("train_batch: this trainer trains one model at a time");
  if (configs.empty() || static_cast<int>(configs.size()) > batch_) {
    throw Error(fmt::format("train_batch: {} models for a batch of at most {}", configs.size(), batch_));
  }
  if (options.resume != nullptr || options.checkpoint_every > 0 || options.checkpoint_at_end ||
      options.want_log_probs || options.want_embeddings) {
    throw UsageError("--resume, checkpoints, predictions and embeddings are for one model at a time (--batch 1)");
  }
  return run(configs, options);
}

namespace {

// The models of one run fit the trainer (its shape; a single-model trainer's
// dropout; dropout only where the batch planned it) and share what a batch
// shares.
void check_configs(const std::vector<TrainConfig>& configs, const ModelShape& shape, int batch, float dropout,
                   bool with_dropout) {
  const TrainConfig& config = configs.front();  // the shared options
  for (const TrainConfig& c : configs) {
    c.validate();
    const ModelShape wanted = c.shape(shape.n_features, shape.n_classes);
    if (wanted != shape) {
      throw UsageError(fmt::format("this trainer's model is {}, not {}", shape.describe(), wanted.describe()));
    }
    if (c.epochs != config.epochs || c.loss != config.loss || c.log_every != config.log_every ||
        c.select != config.select || c.patience != config.patience || c.early_stopping != config.early_stopping ||
        c.allow_nonfinite != config.allow_nonfinite || c.cuda_graph != config.cuda_graph) {
      throw Error("train_batch: the models of a batch share epochs, loss, log_every, select, patience, "
                  "early_stopping, allow_nonfinite and cuda_graph");
    }
    if (batch == 0 && c.dropout != dropout) {
      throw UsageError(fmt::format("this trainer's model has dropout {}, not {}", dropout, c.dropout));
    }
    if (batch > 0 && c.dropout > 0.0f && !with_dropout) {
      throw Error("train_batch: dropout in a batch trainer made without dropout");
    }
  }
}

// A batch trainer's model for these models: rebuilt when their count, or a
// single model's dropout (planned in), changes.
void prepare_batch_model(const DeviceGraph& graph, const ModelShape& shape, bool with_dropout,
                         const std::vector<TrainConfig>& configs, const std::vector<ModelRates>& rates,
                         std::unique_ptr<GcnModel>& model, std::unique_ptr<Recording>& recording) {
  const int n_models = static_cast<int>(configs.size());
  const bool rebuild = !model || model->batch() != n_models ||
                       (n_models == 1 && model->rates().front().dropout != configs.front().dropout);
  if (!rebuild) return;
  recording.reset();
  model.reset();
  if (n_models == 1) {
    model = std::make_unique<GcnModel>(graph, shape, configs.front().dropout);
  } else {
    // Planned with the dropout layer whenever the trainer may drop, so
    // later batches of this size reuse the plan (a model without
    // dropout trains to the same bits either way).
    std::vector<ModelRates> planned = rates;
    if (with_dropout) planned.front().dropout = 0.5f;
    model = std::make_unique<GcnModel>(graph, shape, planned);
  }
}

// --resume: the one model continues after resume.epoch epochs (its
// parameters, Adam's moments, history and best epoch); returns the first
// epoch to run.
int resume_model(const TrainState& resume, const TrainConfig& config, const DeviceGraph& graph, GcnModel& model,
                 StepState& step, TrainResult& result) {
  if (resume.epoch < 0 || resume.epoch > config.epochs || static_cast<int>(resume.history.size()) != resume.epoch) {
    throw UsageError(fmt::format("--resume: the checkpoint is at epoch {} with {} history entries; --epochs is {}",
                                 resume.epoch, resume.history.size(), config.epochs));
  }
  if (resume.best_epoch < 0 || resume.best_epoch > resume.epoch) {
    throw UsageError(fmt::format("--resume: the checkpoint's best epoch {} is not one of its {} epochs",
                                 resume.best_epoch, resume.epoch));
  }
  model.set_params(resume.params);
  model.set_adam_state(resume.adam_m, resume.adam_v);
  result.history = resume.history;
  result.best_epoch = resume.best_epoch;
  step.epoch = resume.epoch;
  // Early stopping reads the epochs before the running one from the ring.
  const MetricsRing ring = model.ring();
  for (int e = std::max(1, resume.epoch - config.early_stopping); config.early_stopping > 0 && e <= resume.epoch; ++e) {
    EpochMetrics m{};
    m.val_loss = static_cast<float>(resume.history[static_cast<std::size_t>(e - 1)].val_loss);
    m.epoch = e;
    graph.backend().upload(ring.slots + ring_index(ring.size, e - 1, 0, 1), &m, sizeof m);
  }
  if (resume.best_epoch > 0) {
    const EpochStats& b = resume.history[static_cast<std::size_t>(resume.best_epoch - 1)];
    step.best_epoch = resume.best_epoch;
    step.best_val_correct = static_cast<int32_t>(std::llround(b.val_acc * graph.n_val()));
    step.best_val_loss = static_cast<float>(b.val_loss);
    if (config.select != Selection::kLast) {
      if (resume.best_params.size() != static_cast<std::size_t>(model.layout().total)) {
        throw UsageError(fmt::format("--resume: the checkpoint holds no best-epoch parameters; it was not made with "
                                     "--select {}",
                                     selection_name(config.select)));
      }
      model.set_best_params(resume.best_params);
    }
  }
  return resume.epoch + 1;
}

// Epochs (fetched, epoch] of every model from the backend's ring into the
// host's (in at most two pieces where the ring wraps).
void download_ring(Backend& backend, EpochMetrics* host_ring, const MetricsRing& ring, int fetched, int epoch,
                   int n_models) {
  const int n_new = epoch - fetched;
  for (int done = 0; done < n_new;) {
    const int slot = (fetched + done) % ring.size;
    const int count = std::min(n_new - done, ring.size - slot);
    backend.download_async(host_ring + static_cast<std::size_t>(slot) * n_models,
                           ring.slots + static_cast<std::size_t>(slot) * n_models,
                           sizeof(EpochMetrics) * static_cast<std::size_t>(count) * n_models);
    done += count;
  }
}

// The downloaded figures of epochs (fetched, epoch] into each running
// model's history, with its best epoch; a model whose patience ran out
// stops (the backend stopped it at the same epoch, by the same rule).
void take_figures(const EpochMetrics* host_ring, int ring_size, int fetched, int epoch,
                  const std::vector<TrainConfig>& configs, const DeviceGraph& graph,
                  std::vector<TrainResult>& results, std::vector<char>& stopped, int& running) {
  const TrainConfig& config = configs.front();
  const int n_models = static_cast<int>(configs.size());
  for (int k = 0; k < n_models; ++k) {
    if (stopped[k]) continue;
    TrainResult& result = results[k];
    for (int e = fetched + 1; e <= epoch; ++e) {
      const EpochMetrics& m = host_ring[ring_index(ring_size, e - 1, k, n_models)];
      if (m.epoch != e) {
        throw Error(fmt::format("epoch {}: the metrics ring holds epoch {} (a read-back fell behind)", e, m.epoch));
      }
      if (!std::isfinite(m.loss) && !config.allow_nonfinite) {
        throw NumericError(fmt::format("{}epoch {}: the training loss is {}; lower --lr, check the input features, "
                                       "or pass --allow-nonfinite to continue anyway",
                                       n_models > 1 ? fmt::format("model {} (seed {}, lr {}): ", k, configs[k].seed,
                                                                  configs[k].lr)
                                                    : "",
                                       e, m.loss));
      }
      result.history.push_back(stats_from(m, e, graph));
      if (result.best_epoch == 0 ||
          better(result.history.back(), result.history[result.best_epoch - 1], config.select)) {
        result.best_epoch = e;
      }
      // The backend stopped at this epoch too (the same rules on the same
      // figures): nothing after it changed the model.
      const bool early = config.early_stopping > 0 && e > config.epochs / 2 &&
                         exceeds_recent_mean(e, m.val_loss, config.early_stopping, [&](int32_t j) {
                           return static_cast<float>(result.history[static_cast<std::size_t>(j - 1)].val_loss);
                         });
      if ((config.patience > 0 && e - result.best_epoch >= config.patience) || early) {
        stopped[k] = 1;
        --running;
        result.stopped_early = e < config.epochs;
        break;
      }
    }
  }
}

// One model, after a read-back: its log line, and its training state when a
// checkpoint is due (every checkpoint_every epochs; at the end; on an
// interrupt).
void log_and_checkpoint(const TrainOptions& options, const TrainResult& result, GcnModel& model, bool best_val,
                        int n_epochs, bool log_now, bool checkpoint_now, bool stop, bool interrupted) {
  const int last = result.history.back().epoch;
  if ((log_now || stop || interrupted) && options.on_log) options.on_log(result.history.back());
  const bool periodic =
      (checkpoint_now || stop) && options.checkpoint_every > 0 && last % options.checkpoint_every == 0;
  const bool at_end = (options.checkpoint_at_end && (stop || last == n_epochs)) ||
                      (interrupted && (options.checkpoint_at_end || options.checkpoint_every > 0));
  if ((periodic || at_end) && options.on_checkpoint) {
    TrainState state;
    state.epoch = last;
    state.params = model.params();
    state.adam_m = model.adam_m();
    state.adam_v = model.adam_v();
    state.history = result.history;
    state.best_epoch = result.best_epoch;
    if (best_val) state.best_params = model.best_params();
    options.on_checkpoint(state);
  }
}

// The run's end: the host's best epochs agree with the backend's; each
// result gets its selected epoch's parameters and the run's timings.
void finish_results(GcnModel& model, bool best_val, double train_s, double epoch_ms_median, bool graph_replayed,
                    std::vector<TrainResult>& results) {
  const int n_models = static_cast<int>(results.size());
  const std::vector<StepState> final_steps = model.steps();
  for (int k = 0; k < n_models; ++k) {
    if (final_steps[k].best_epoch != results[k].best_epoch) {
      throw Error(fmt::format("internal: the backend's best epoch {} differs from the host's {}",
                              final_steps[k].best_epoch, results[k].best_epoch));
    }
    if (results[k].stopped_early && final_steps[k].stopped == 0) {
      throw Error(fmt::format("internal: the host stopped at epoch {}, the backend did not",
                              results[k].history.back().epoch));
    }
  }
  std::vector<std::vector<float>> selected;
  if (n_models == 1) {
    if (best_val) model.use_best_params();
    selected.push_back(model.params());
  } else {
    selected = best_val ? model.model_best_params() : model.model_params();
  }
  for (int k = 0; k < n_models; ++k) {
    TrainResult& result = results[k];
    result.train_s = train_s;
    result.epoch_ms_median = epoch_ms_median;
    result.graph_replayed = graph_replayed;
    result.selected_epoch = best_val ? result.best_epoch : static_cast<int>(result.history.size());
    result.params = std::move(selected[k]);
  }
}

}  // namespace

std::vector<TrainResult> Trainer::run(const std::vector<TrainConfig>& configs, const TrainOptions& options) {
  const TrainConfig& config = configs.front();  // the shared options
  const int n_models = static_cast<int>(configs.size());
  check_configs(configs, shape_, batch_, dropout_, with_dropout_);
  Backend& backend = graph_->backend();
  const ModelShape& shape = shape_;
  std::vector<ModelRates> rates;
  for (const TrainConfig& c : configs) rates.push_back(ModelRates{c.lr, c.weight_decay, c.dropout});
  if (batch_ > 0) prepare_batch_model(*graph_, shape, with_dropout_, configs, rates, model_, recording_);
  GcnModel& model = *model_;
  if (n_models > 1) model.set_rates(rates);  // one model takes its rates as arguments
  const bool best_val = config.select != Selection::kLast;  // keeps the best epoch's weights
  const int n_epochs = config.epochs;

  std::vector<StepState> steps(static_cast<std::size_t>(n_models), StepState{});
  std::vector<TrainResult> results(static_cast<std::size_t>(n_models));
  for (int k = 0; k < n_models; ++k) {
    steps[k].dropout_seed = mix64(configs[k].seed ^ kDropoutDomain);
    steps[k].patience = config.patience;
    steps[k].select_loss = config.select == Selection::kBestValLoss ? 1 : 0;
    steps[k].early_stopping = config.early_stopping;
    steps[k].early_after = config.epochs / 2;
    results[k].history.reserve(static_cast<std::size_t>(std::min(n_epochs, 100'000)));
  }
  int first_epoch = 1;
  if (options.resume != nullptr) {
    first_epoch = resume_model(*options.resume, config, *graph_, model, steps.front(), results.front());
  } else if (options.init_params != nullptr) {
    // Every model starts from them (the seeds still differ in the dropout masks).
    model.set_model_params(std::vector<std::vector<float>>(static_cast<std::size_t>(n_models), *options.init_params));
  } else {
    std::vector<std::vector<float>> init;
    for (const TrainConfig& c : configs) init.push_back(init_params(shape, mix64(c.seed ^ kInitDomain)));
    model.set_model_params(init);
  }
  model.set_steps(steps);
  // lr and weight decay: the single model's here; a batch's from each step state.
  const AdamConfig adam{config.lr, 0.9f, 0.999f, 1e-8f, config.weight_decay};
  const std::string key = n_models == 1 ? hyperparameter_key(config) : fmt::format("batch {}", static_cast<int>(config.select));
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
  std::vector<char> stopped(static_cast<std::size_t>(n_models), 0);
  int running = n_models;
  bool graph_replayed = false;

  for (int epoch = first_epoch; epoch <= n_epochs && running > 0; ++epoch) {
    // The first epoch of a run runs op by op (it makes the cuSPARSE plans
    // and workspaces); then the epoch is recorded once and replayed.
    if (config.cuda_graph && !recording_ && epoch > first_epoch) {
      recording_ = backend.record([&] { model.epoch(adam, best_val); });
      recording_key_ = key;
    }
    if (recording_ && epoch > first_epoch) {
      recording_->replay();
      graph_replayed = true;
    } else {
      model.epoch(adam, best_val);
    }

    const bool log_now = epoch % config.log_every == 0 || epoch == n_epochs;
    const bool checkpoint_now = options.checkpoint_every > 0 && epoch % options.checkpoint_every == 0;
    // Timing groups end at read-backs; one more at the end of the warm-up
    // keeps its epochs (planning, the recording) out of the steady-state figure.
    const bool warmup_end = epoch == kWarmupEpochs && n_epochs > 4 * kWarmupEpochs;
    const bool interrupted = options.interrupt != nullptr && options.interrupt->load(std::memory_order_relaxed);
    if (!log_now && !checkpoint_now && !warmup_end && !interrupted && epoch - fetched < read_every) continue;

    // One read-back: the new slots of every model.
    const int group_end = backend.record_marker();
    const int n_new = epoch - fetched;
    download_ring(backend, host_ring_, ring, fetched, epoch, n_models);
    backend.synchronize();
    const double group_ms = backend.elapsed_ms(group_start, group_end);
    backend.clear_markers();
    group_start = backend.record_marker();
    for (int i = 0; i < n_new; ++i) epoch_ms.push_back(group_ms / n_new);

    take_figures(host_ring_, ring.size, fetched, epoch, configs, *graph_, results, stopped, running);
    fetched = epoch;
    if (interrupted) {
      for (int k = 0; k < n_models; ++k) results[k].interrupted = !stopped[k] && epoch < n_epochs;
    }
    if (n_models == 1) {
      log_and_checkpoint(options, results.front(), model, best_val, n_epochs, log_now, checkpoint_now,
                         /*stop=*/running == 0, interrupted);
    }
    if (options.on_progress) options.on_progress(epoch, running);
    if (interrupted) break;
  }
  const double train_s = std::chrono::duration<double>(Clock::now() - t_start).count();
  finish_results(model, best_val, train_s, median_after_warmup(epoch_ms), graph_replayed, results);
  if (options.want_log_probs) results.front().log_probs = model.log_probabilities();
  if (options.want_embeddings) results.front().embeddings = model.hidden_output(nullptr);
  return results;
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
  Trainer trainer(graph, config.shape(data.n_features, data.n_classes), config.dropout);
  return trainer.train(config, options);
}

EpochStats evaluate_params(Backend& backend, const Dataset& data, const ModelShape& shape,
                           const std::vector<float>& params, std::vector<float>* log_probs) {
  const DeviceGraph graph(backend, data);
  Trainer trainer(graph, shape, 0.0f);
  return trainer.evaluate(params, log_probs);
}

EpochStats evaluate_params(Backend& backend, const Dataset& data, int hidden, const std::vector<float>& params,
                           std::vector<float>* log_probs) {
  return evaluate_params(backend, data, ModelShape{data.n_features, hidden, data.n_classes}, params, log_probs);
}

}  // namespace gcn
