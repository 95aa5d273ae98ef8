#include "gcn/trainer.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>

#include <fmt/format.h>

#include "gcn/buffer.hpp"
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
double median_after_warmup(std::vector<double> ms) {
  const std::size_t warmup = ms.size() > 20 ? 5 : (ms.size() > 1 ? 1 : 0);
  ms.erase(ms.begin(), ms.begin() + static_cast<std::ptrdiff_t>(warmup));
  if (ms.empty()) return 0.0;
  std::nth_element(ms.begin(), ms.begin() + static_cast<std::ptrdiff_t>(ms.size() / 2), ms.end());
  return ms[ms.size() / 2];
}

// Validation improved: higher accuracy, or the same accuracy at a lower loss.
bool better(const EpochStats& a, const EpochStats& b) {
  return a.val_acc > b.val_acc || (a.val_acc == b.val_acc && a.val_loss < b.val_loss);
}

}  // namespace

TrainResult train_gcn(Backend& backend, const Dataset& data, const TrainConfig& config,
                      const TrainOptions& options) {
  config.validate();
  const GcnShape shape{data.n_features, config.hidden, data.n_classes};
  GcnModel model(backend, data, shape, config.dropout);
  const TrainState* resume = options.resume;
  if (resume != nullptr) {
    if (resume->epoch < 0 || resume->epoch > config.epochs ||
        static_cast<int>(resume->history.size()) != resume->epoch) {
      throw UsageError(fmt::format("--resume: the checkpoint is at epoch {} with {} history entries; --epochs is {}",
                                   resume->epoch, resume->history.size(), config.epochs));
    }
    model.set_params(resume->params);
    model.set_adam_state(resume->adam_m, resume->adam_v);
  } else if (options.init_params != nullptr) {
    model.set_params(*options.init_params);
  } else {
    model.set_params(glorot_init(shape, mix64(config.seed ^ kInitDomain)));
  }
  const uint64_t dropout_seed = mix64(config.seed ^ kDropoutDomain);
  const AdamConfig adam{config.lr, 0.9f, 0.999f, 1e-8f, config.weight_decay};
  const bool best_val = config.select == Selection::kBestVal;
  // Early stopping and best-epoch snapshots decide after every epoch, so the
  // values come back every epoch (one small read per epoch).
  const bool every_epoch = best_val || config.patience > 0;

  const int n_epochs = config.epochs;
  Buffer<float> loss_dev(backend, n_epochs);
  Buffer<float> val_loss_dev(backend, n_epochs);
  Buffer<int32_t> correct_dev(backend, 3 * static_cast<int64_t>(n_epochs));
  Buffer<float> best_params;  // snapshot of the best validation epoch's parameters
  if (best_val) best_params = Buffer<float>(backend, model.layout().total);
  const int32_t n_train = data.count(kTrainBit), n_val = data.count(kValBit), n_test = data.count(kTestBit);

  TrainResult result;
  result.history.reserve(static_cast<std::size_t>(n_epochs));
  int first_epoch = 1;
  if (resume != nullptr) {
    result.history = resume->history;
    result.best_epoch = resume->best_epoch;
    first_epoch = resume->epoch + 1;
    if (best_val && resume->best_epoch > 0) {
      if (resume->best_params.size() != static_cast<std::size_t>(model.layout().total)) {
        throw UsageError("--resume: the checkpoint holds no best-epoch parameters; it was not made with --select "
                         "best-val");
      }
      best_params.from_host(resume->best_params);
    }
  }
  std::vector<double> epoch_ms, step_ms;  // per epoch: train + eval, train step alone
  using Clock = std::chrono::steady_clock;
  backend.synchronize();
  backend.clear_markers();
  const auto t_start = Clock::now();
  int fetched = first_epoch - 1;  // epochs whose values are on the host
  // Markers: three per epoch (start, after the Adam step, after evaluation),
  // read back with the logged values. A read-back at least every
  // kMaxUnread epochs bounds the marker pool without touching the log.
  constexpr int kMaxUnread = 1000;

  for (int epoch = first_epoch; epoch <= n_epochs; ++epoch) {
    const int e = epoch - 1;
    backend.record_marker();
    model.forward(/*training=*/true, dropout_seed, static_cast<uint64_t>(epoch));
    model.backward(loss_dev.data() + e);
    model.adam_step(adam, epoch);
    backend.record_marker();
    model.forward(/*training=*/false, 0, 0);
    model.evaluate(val_loss_dev.data() + e, correct_dev.data() + 3 * e);
    backend.record_marker();

    const bool log_now = epoch % config.log_every == 0 || epoch == n_epochs;
    const bool checkpoint_now = options.checkpoint_every > 0 && epoch % options.checkpoint_every == 0;
    if (!log_now && !every_epoch && !checkpoint_now && epoch - fetched < kMaxUnread) continue;
    const int n_new = epoch - fetched;
    std::vector<float> loss(n_new), val_loss(n_new);
    std::vector<int32_t> correct(3 * static_cast<std::size_t>(n_new));
    backend.download(loss.data(), loss_dev.data() + fetched, loss.size() * sizeof(float));
    backend.download(val_loss.data(), val_loss_dev.data() + fetched, val_loss.size() * sizeof(float));
    backend.download(correct.data(), correct_dev.data() + 3 * fetched, correct.size() * sizeof(int32_t));
    for (int i = 0; i < n_new; ++i) {
      step_ms.push_back(backend.elapsed_ms(3 * i, 3 * i + 1));
      epoch_ms.push_back(backend.elapsed_ms(3 * i, 3 * i + 2));
    }
    backend.clear_markers();
    for (int i = 0; i < n_new; ++i) {
      if (!std::isfinite(loss[i]) && !config.allow_nonfinite) {
        throw NumericError(fmt::format("epoch {}: the training loss is {}; lower --lr, check the input features, or pass "
                                       "--allow-nonfinite to continue anyway",
                                       fetched + i + 1, loss[i]));
      }
      EpochStats s;
      s.epoch = fetched + i + 1;
      s.loss = loss[i];
      s.val_loss = val_loss[i];
      s.train_acc = ratio(correct[3 * i + 0], n_train);
      s.val_acc = ratio(correct[3 * i + 1], n_val);
      s.test_acc = ratio(correct[3 * i + 2], n_test);
      result.history.push_back(s);
      // With every_epoch set this runs right after the epoch, while the
      // parameters are still that epoch's.
      if (result.best_epoch == 0 || better(s, result.history[result.best_epoch - 1])) {
        result.best_epoch = s.epoch;
        if (best_val) backend.copy(best_params.data(), model.param_buffer().data(), best_params.bytes());
      }
    }
    fetched = epoch;
    if (log_now && options.on_log) options.on_log(result.history.back());
    const bool stop = config.patience > 0 && epoch - result.best_epoch >= config.patience;
    if (stop) result.stopped_early = epoch < n_epochs;
    if (checkpoint_now && options.on_checkpoint) {
      TrainState state;
      state.epoch = epoch;
      state.params = model.params();
      state.adam_m = model.adam_m();
      state.adam_v = model.adam_v();
      state.history = result.history;
      state.best_epoch = result.best_epoch;
      if (best_val) state.best_params = best_params.to_host();
      options.on_checkpoint(state);
    }
    if (stop) {
      if (!log_now && options.on_log) options.on_log(result.history.back());
      break;
    }
  }
  result.train_s = std::chrono::duration<double>(Clock::now() - t_start).count();
  result.epoch_ms_median = median_after_warmup(epoch_ms);
  result.train_step_ms_median = median_after_warmup(step_ms);
  if (best_val) {
    result.selected_epoch = result.best_epoch;
    backend.copy(model.param_buffer().data(), best_params.data(), best_params.bytes());
  } else {
    result.selected_epoch = static_cast<int>(result.history.size());
  }
  result.params = model.params();
  if (options.want_log_probs) result.log_probs = model.log_probabilities();
  return result;
}

EpochStats evaluate_params(Backend& backend, const Dataset& data, int hidden, const std::vector<float>& params,
                           std::vector<float>* log_probs) {
  const GcnShape shape{data.n_features, hidden, data.n_classes};
  GcnModel model(backend, data, shape, /*dropout=*/0.0f);
  model.set_params(params);
  Buffer<float> losses(backend, 2);
  Buffer<int32_t> correct(backend, 3);
  model.forward(/*training=*/false, 0, 0);
  model.backward(losses.data());  // the training loss (gradients unused)
  model.evaluate(losses.data() + 1, correct.data());
  const std::vector<float> l = losses.to_host();
  const std::vector<int32_t> c = correct.to_host();
  EpochStats s;
  s.epoch = 0;
  s.loss = l[0];
  s.val_loss = l[1];
  s.train_acc = ratio(c[0], data.count(kTrainBit));
  s.val_acc = ratio(c[1], data.count(kValBit));
  s.test_acc = ratio(c[2], data.count(kTestBit));
  if (log_probs != nullptr) *log_probs = model.log_probabilities();
  return s;
}

}  // namespace gcn
