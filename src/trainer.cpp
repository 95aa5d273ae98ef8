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

void TrainConfig::validate() const {
  if (epochs < 1 || epochs > 10'000'000) throw UsageError(fmt::format("--epochs: {} is not in [1, 10000000]", epochs));
  if (!(std::isfinite(lr) && lr > 0.0f)) throw UsageError(fmt::format("--lr: {} is not a positive number", lr));
  if (!(std::isfinite(weight_decay) && weight_decay >= 0.0f)) {
    throw UsageError(fmt::format("--weight-decay: {} is not a non-negative number", weight_decay));
  }
  if (hidden < 1 || hidden > 65536) throw UsageError(fmt::format("--hidden: {} is not in [1, 65536]", hidden));
  if (!(dropout >= 0.0f && dropout < 1.0f)) throw UsageError(fmt::format("--dropout: {} is not in [0, 1)", dropout));
  if (log_every < 1) throw UsageError(fmt::format("--log-every: {} is not a positive number", log_every));
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

}  // namespace

TrainResult train_gcn(Backend& backend, const Dataset& data, const TrainConfig& config,
                      const EpochCallback& on_log) {
  config.validate();
  const GcnShape shape{data.n_features, config.hidden, data.n_classes};
  GcnModel model(backend, data, shape, config.dropout);
  model.set_params(glorot_init(shape, mix64(config.seed ^ kInitDomain)));
  const uint64_t dropout_seed = mix64(config.seed ^ kDropoutDomain);
  const AdamConfig adam{config.lr, 0.9f, 0.999f, 1e-8f, config.weight_decay};

  const int n_epochs = config.epochs;
  Buffer<float> loss_dev(backend, n_epochs);
  Buffer<float> val_loss_dev(backend, n_epochs);
  Buffer<int32_t> correct_dev(backend, 3 * static_cast<int64_t>(n_epochs));
  const int32_t n_train = data.count(kTrainBit), n_val = data.count(kValBit), n_test = data.count(kTestBit);

  TrainResult result;
  result.history.reserve(static_cast<std::size_t>(n_epochs));
  std::vector<double> epoch_ms, step_ms;  // per epoch: train + eval, train step alone
  using Clock = std::chrono::steady_clock;
  backend.synchronize();
  backend.clear_markers();
  const auto t_start = Clock::now();
  int fetched = 0;  // epochs whose values are on the host
  // Markers: three per epoch (start, after the Adam step, after evaluation),
  // read back with the logged values. A read-back at least every
  // kMaxUnread epochs bounds the marker pool without touching the log.
  constexpr int kMaxUnread = 1000;

  for (int epoch = 1; epoch <= n_epochs; ++epoch) {
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
    if (!log_now && epoch - fetched < kMaxUnread) continue;
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
      if (!std::isfinite(loss[i])) {
        throw NumericError(fmt::format("epoch {}: the training loss is {}; lower --lr or check the input features",
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
    }
    fetched = epoch;
    if (log_now && on_log) on_log(result.history.back());
  }
  result.train_s = std::chrono::duration<double>(Clock::now() - t_start).count();
  result.epoch_ms_median = median_after_warmup(epoch_ms);
  result.train_step_ms_median = median_after_warmup(step_ms);
  result.params = model.params();
  return result;
}

}  // namespace gcn
