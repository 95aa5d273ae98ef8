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
  std::vector<double> interval_ms;
  using Clock = std::chrono::steady_clock;
  backend.synchronize();
  const auto t_start = Clock::now();
  auto t_last = t_start;
  int fetched = 0;  // epochs whose values are on the host

  for (int epoch = 1; epoch <= n_epochs; ++epoch) {
    const int e = epoch - 1;
    model.forward(/*training=*/true, dropout_seed, static_cast<uint64_t>(epoch));
    model.backward(loss_dev.data() + e);
    model.adam_step(adam, epoch);
    model.forward(/*training=*/false, 0, 0);
    model.evaluate(val_loss_dev.data() + e, correct_dev.data() + 3 * e);

    if (epoch % config.log_every != 0 && epoch != n_epochs) continue;
    const int n_new = epoch - fetched;
    std::vector<float> loss(n_new), val_loss(n_new);
    std::vector<int32_t> correct(3 * static_cast<std::size_t>(n_new));
    backend.download(loss.data(), loss_dev.data() + fetched, loss.size() * sizeof(float));
    backend.download(val_loss.data(), val_loss_dev.data() + fetched, val_loss.size() * sizeof(float));
    backend.download(correct.data(), correct_dev.data() + 3 * fetched, correct.size() * sizeof(int32_t));
    const auto now = Clock::now();
    interval_ms.push_back(std::chrono::duration<double, std::milli>(now - t_last).count() / n_new);
    t_last = now;
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
    if (on_log) on_log(result.history.back());
  }
  result.train_s = std::chrono::duration<double>(Clock::now() - t_start).count();
  // The first interval holds the warm-up (allocations, first launches).
  if (interval_ms.size() > 1) interval_ms.erase(interval_ms.begin());
  std::sort(interval_ms.begin(), interval_ms.end());
  result.epoch_ms_median = interval_ms.empty() ? 0.0 : interval_ms[interval_ms.size() / 2];
  result.params = model.params();
  return result;
}

}  // namespace gcn
