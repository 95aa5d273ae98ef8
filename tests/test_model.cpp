// The model and the training loop: finite-difference gradients of the whole
// model, determinism, and end-to-end training on Cora and CiteSeer.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstring>
#include <cmath>
#include <map>
#include <numeric>
#include <random>
#include <vector>

#include "gcn/train/checkpoint.hpp"
#include "gcn/nn/device_graph.hpp"
#include "gcn/backend/devices.hpp"
#include "gcn/error.hpp"
#include "gcn/nn/model.hpp"
#include "gcn/data/planetoid.hpp"
#include "gcn/train/report.hpp"
#include "gcn/train/trainer.hpp"
#include "test_models.hpp"
#include "test_step.hpp"
#include "test_util.hpp"

namespace gcn {
namespace {

// The restricted sparse products of the training pass, by hand.
TEST(DeviceGraph, RestrictedMatricesByHand) {
  CsrMatrix m;
  m.n_rows = 3;
  m.n_cols = 4;
  m.indptr = {0, 2, 2, 5};
  m.indices = {0, 3, 1, 2, 3};
  m.values = {1, 2, 3, 4, 5};
  const CsrMatrix rows = keep_rows(m, {0, 1, 1});
  EXPECT_EQ(rows.indptr, (std::vector<int32_t>{0, 0, 0, 3}));
  EXPECT_EQ(rows.values, (std::vector<float>{3, 4, 5}));
  const CsrMatrix cols = keep_columns(m, {0, 0, 1, 1});
  EXPECT_EQ(cols.indptr, (std::vector<int32_t>{0, 1, 1, 3}));
  EXPECT_EQ(cols.indices, (std::vector<int32_t>{3, 2, 3}));
  EXPECT_EQ(cols.values, (std::vector<float>{2, 4, 5}));
  EXPECT_EQ(rows_reaching(m, {1, 0, 0, 0}), (RowMask{1, 0, 0}));
  EXPECT_EQ(rows_reaching(m, {0, 1, 0, 0}), (RowMask{0, 0, 1}));
  EXPECT_EQ(rows_reaching(m, {0, 0, 0, 0}), (RowMask{0, 0, 0}));
}

class ModelGradient : public ::testing::TestWithParam<float> {};

// The analytic gradient of every parameter against central differences of the
// training loss; with dropout the mask is fixed by (seed, stream).
TEST_P(ModelGradient, MatchesFiniteDifferences) {
  const float dropout = GetParam();
  auto be = make_cpu_backend(1);
  const Dataset d = tiny_dataset();
  const ModelShape shape{5, 4, 3};
  const DeviceGraph graph(*be, d);
  GcnModel model(graph, shape, dropout);
  std::vector<float> p = init_params(shape, 11);
  const ParamLayout layout(shape);
  std::mt19937 gen(5);
  std::uniform_real_distribution<float> u(-0.3f, 0.3f);
  for (const char* bias : {"conv1.bias", "conv2.bias"}) {  // non-zero biases
    const ParamTensor& b = *layout.find(bias);
    for (int64_t i = b.offset; i < b.offset + b.size(); ++i) p[i] = u(gen);
  }

  auto loss_at = [&](const std::vector<float>& params) {
    model.set_params(params);
    model.set_step(test::step_at(0, 99));  // epoch 1: dropout stream 1 of seed 99
    model.train_forward_backward();
    return static_cast<double>(model.metrics(1).loss);
  };
  loss_at(p);
  const std::vector<float> grad = model.grads();
  ASSERT_EQ(static_cast<int64_t>(grad.size()), layout.total);
  int checked_nonzero = 0;
  for (int64_t i = 0; i < layout.total; ++i) {
    const float h = 1e-3f;
    std::vector<float> plus = p, minus = p;
    plus[i] += h;
    minus[i] -= h;
    const double fd = (loss_at(plus) - loss_at(minus)) / (2.0 * h);
    EXPECT_NEAR(grad[i], fd, 5e-4 + 1e-2 * std::abs(fd)) << "parameter " << i;
    checked_nonzero += std::abs(fd) > 1e-3;
  }
  EXPECT_GT(checked_nonzero, layout.total / 3);  // the check is not vacuous
}

INSTANTIATE_TEST_SUITE_P(Dropout, ModelGradient, ::testing::Values(0.0f, 0.5f));

TEST(Model, RejectsMismatchedShapes) {
  auto be = make_cpu_backend(1);
  const Dataset d = tiny_dataset();
  const DeviceGraph graph(*be, d);
  EXPECT_THROW(GcnModel(graph, ModelShape{6, 4, 3}, 0.5f), UsageError);
  EXPECT_THROW(GcnModel(graph, ModelShape{5, 4, 3}, 1.0f), UsageError);
}

// The training pass multiplies only by the parts of Â, Âᵀ and Xᵀ that reach
// the training rows; every dropped term is an exact +0, so epochs give the
// same bits as with the full matrices: on the tiny graph (a directed edge:
// Âᵀ differs from Â; an isolated node; a node outside every split), with
// dropout and without (then the whole forward is shared with the evaluation).
TEST(Model, RestrictedTrainingProductsChangeNoBit) {
  auto be = make_cpu_backend(1);
  for (const Dataset& d : {tiny_dataset(), [] {
         Dataset t = tiny_dataset();
         t.split = {kTrainBit, 0, kValBit, 0, kValBit, kTestBit, kTrainBit};  // two training rows far apart
         return t;
       }()}) {
    const DeviceGraph graph(*be, d);
    for (float dropout : {0.0f, 0.5f}) {
      GcnModel restricted(graph, ModelShape{5, 4, 3}, dropout, /*restrict_training=*/true);
      GcnModel full(graph, ModelShape{5, 4, 3}, dropout, /*restrict_training=*/false);
      std::vector<float> p = init_params(ModelShape{5, 4, 3}, 21);
      for (float& b : p) b += 0.01f;  // non-zero biases too
      for (GcnModel* m : {&restricted, &full}) {
        m->set_params(p);
        m->set_step(test::step_at(0, 5));
      }
      const AdamConfig adam{0.05f, 0.9f, 0.999f, 1e-8f, 5e-4f};
      for (int epoch = 1; epoch <= 12; ++epoch) {
        restricted.epoch(adam, false);
        full.epoch(adam, false);
        ASSERT_EQ(restricted.grads(), full.grads()) << "epoch " << epoch << ", dropout " << dropout;
        ASSERT_EQ(restricted.params(), full.params()) << "epoch " << epoch;
        const EpochMetrics a = restricted.metrics(epoch), b = full.metrics(epoch);
        ASSERT_EQ(a.loss, b.loss) << "epoch " << epoch;
        ASSERT_EQ(a.val_loss, b.val_loss) << "epoch " << epoch;
      }
    }
  }
}

// The model's plan: PyG's layers, a named tensor per meaning, and the reused
// prefix (conv1 is computed once per epoch, by the evaluation pass).
TEST(Model, PlansNamedTensorsAndReusesTheFirstLayer) {
  auto be = make_cpu_backend(1);
  const Dataset d = tiny_dataset();
  const DeviceGraph graph(*be, d);
  const GcnModel model(graph, ModelShape{5, 4, 3}, 0.5f);
  EXPECT_EQ(model.describe(), "GCNConv(5, 4) -> ReLU -> dropout(0.5) -> GCNConv(4, 3)");
  const Workspace& ws = model.workspace();
  // conv1's output is one tensor for both passes; the later layers have one per pass.
  for (const char* name : {"conv1.xw", "conv1.out", "act1.out.train", "act1.out.eval", "conv2.xw.train",
                           "conv2.out.train", "conv2.xw.eval", "conv2.out.eval", "conv1.out.grad", "act1.out.train.grad",
                           "conv2.out.train.grad", "conv1.xw.grad", "conv2.xw.grad", "params", "grads", "adam.m",
                           "adam.v", "best.params", "step", "metrics"}) {
    EXPECT_GE(ws.find(name), 0) << name;
  }
  EXPECT_LT(ws.find("conv1.out.train"), 0);
  EXPECT_EQ(ws.mat(ws.find("conv1.out")).rows, 7);
  EXPECT_EQ(ws.mat(ws.find("conv1.out")).cols, 4);
  EXPECT_EQ(ws.mat(ws.find("params")).rows, ParamLayout(ModelShape{5, 4, 3}).total);
  // Without dropout nothing depends on the pass: the whole forward is shared.
  const GcnModel no_dropout(graph, ModelShape{5, 4, 3}, 0.0f);
  EXPECT_EQ(no_dropout.describe(), "GCNConv(5, 4) -> ReLU -> GCNConv(4, 3)");
  EXPECT_GE(no_dropout.workspace().find("conv2.out"), 0);
  EXPECT_LT(no_dropout.workspace().find("conv2.out.train"), 0);
}

TEST(Model, GlorotInitBoundsAndDeterminism) {
  const ModelShape shape{1433, 16, 7};
  const ParamLayout layout(shape);
  const std::vector<float> a = init_params(shape, 1), b = init_params(shape, 1), c = init_params(shape, 2);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  const float bound1 = std::sqrt(6.0f / (1433 + 16)), bound2 = std::sqrt(6.0f / (16 + 7));
  const int64_t w1 = layout.find("conv1.lin.weight")->offset, b1 = layout.find("conv1.bias")->offset;
  const int64_t w2 = layout.find("conv2.lin.weight")->offset, b2 = layout.find("conv2.bias")->offset;
  double sum_sq = 0.0;
  for (int64_t i = w1; i < b1; ++i) {
    ASSERT_LE(std::abs(a[i]), bound1);
    sum_sq += static_cast<double>(a[i]) * a[i];
  }
  // Var of U(-b, b) is b^2 / 3.
  EXPECT_NEAR(sum_sq / (b1 - w1), bound1 * bound1 / 3.0, 0.02 * bound1 * bound1);
  for (int64_t i = w2; i < b2; ++i) ASSERT_LE(std::abs(a[i]), bound2);
  for (int64_t i = b1; i < w2; ++i) ASSERT_EQ(a[i], 0.0f);
  for (int64_t i = b2; i < layout.total; ++i) ASSERT_EQ(a[i], 0.0f);
}

TEST(Trainer, TinyDatasetLearnsAndIsDeterministic) {
  auto be = make_cpu_backend(2);
  const Dataset d = tiny_dataset();
  TrainConfig cfg;
  cfg.epochs = 60;
  cfg.hidden = 8;
  const TrainResult a = train_gcn(*be, d, cfg);
  const TrainResult b = train_gcn(*be, d, cfg);
  ASSERT_EQ(a.history.size(), 60u);
  EXPECT_LT(a.history.back().loss, a.history.front().loss);
  EXPECT_EQ(a.params, b.params);
  EXPECT_EQ(a.history.back().loss, b.history.back().loss);
  cfg.epochs = 0;
  EXPECT_THROW(train_gcn(*be, d, cfg), UsageError);
}

TEST(Trainer, LogEveryKeepsTheFullHistory) {
  auto be = make_cpu_backend(1);
  const Dataset d = tiny_dataset();
  TrainConfig cfg;
  cfg.epochs = 10;
  std::vector<int> logged;
  const TrainResult every = train_gcn(*be, d, cfg, [&](const EpochStats& s) { logged.push_back(s.epoch); });
  EXPECT_EQ(logged.size(), 10u);
  logged.clear();
  cfg.log_every = 4;
  const TrainResult sparse = train_gcn(*be, d, cfg, [&](const EpochStats& s) { logged.push_back(s.epoch); });
  EXPECT_THAT(logged, ::testing::ElementsAre(4, 8, 10));
  ASSERT_EQ(sparse.history.size(), 10u);
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(sparse.history[i].epoch, i + 1);
    EXPECT_EQ(sparse.history[i].loss, every.history[i].loss);
    EXPECT_EQ(sparse.history[i].test_acc, every.history[i].test_acc);
  }
}

// Epoch selection by validation: the selected epoch is the best one by
// accuracy (ties: lower loss), and its parameters are exactly what training
// for that many epochs gives.
TEST(Trainer, BestValSelectsTheBestEpochAndItsParameters) {
  auto be = make_cpu_backend(1);
  const Dataset d = tiny_dataset();
  TrainConfig cfg;
  cfg.epochs = 40;
  cfg.hidden = 8;
  cfg.select = Selection::kBestVal;
  const TrainResult r = train_gcn(*be, d, cfg);
  int best = 1;
  for (const EpochStats& s : r.history) {
    const EpochStats& b = r.history[best - 1];
    if (s.val_acc > b.val_acc || (s.val_acc == b.val_acc && s.val_loss < b.val_loss)) best = s.epoch;
  }
  EXPECT_EQ(r.selected_epoch, best);
  EXPECT_EQ(r.best_epoch, best);
  EXPECT_EQ(r.history.size(), 40u);
  TrainConfig shorter = cfg;
  shorter.epochs = best;
  shorter.select = Selection::kLast;
  EXPECT_EQ(train_gcn(*be, d, shorter).params, r.params);
}

TEST(Trainer, PatienceStopsAfterKEpochsWithoutImprovement) {
  auto be = make_cpu_backend(1);
  const Dataset d = tiny_dataset();
  TrainConfig cfg;
  cfg.epochs = 500;
  cfg.hidden = 8;
  cfg.patience = 5;
  const TrainResult r = train_gcn(*be, d, cfg);
  ASSERT_TRUE(r.stopped_early);
  EXPECT_EQ(static_cast<int>(r.history.size()), r.best_epoch + 5);
  for (const EpochStats& s : r.history) {
    if (s.epoch <= r.best_epoch) continue;
    const EpochStats& b = r.history[r.best_epoch - 1];
    EXPECT_FALSE(s.val_acc > b.val_acc || (s.val_acc == b.val_acc && s.val_loss < b.val_loss)) << s.epoch;
  }
  cfg.patience = -1;
  EXPECT_THROW(train_gcn(*be, d, cfg), UsageError);
}

// benchmark/citation's procedure, computed here from the history: the first
// epoch of lowest validation loss, and the first epoch after half the epochs
// whose validation loss exceeds the mean of the `window` epochs before it.
struct Procedure {
  int best = 0, stop = 0;
};
Procedure benchmark_procedure(const std::vector<EpochStats>& h, int epochs, int window) {
  Procedure p;
  for (const EpochStats& s : h) {
    if (p.best == 0 || s.val_loss < h[static_cast<std::size_t>(p.best - 1)].val_loss) p.best = s.epoch;
    p.stop = s.epoch;
    if (s.epoch > epochs / 2) {
      double sum = 0.0;
      int n = 0;
      for (int e = std::max(1, s.epoch - window); e < s.epoch; ++e, ++n) sum += h[static_cast<std::size_t>(e - 1)].val_loss;
      if (n > 0 && s.val_loss > sum / n) break;
    }
  }
  return p;
}

TEST(Trainer, BestValLossAndEarlyStoppingFollowTheBenchmarkProcedure) {
  auto be = make_cpu_backend(1);
  const Dataset d = tiny_dataset();
  TrainConfig cfg;
  cfg.epochs = 300;
  cfg.hidden = 8;
  cfg.lr = 0.05f;
  cfg.select = Selection::kBestValLoss;
  cfg.early_stopping = 10;
  const TrainResult r = train_gcn(*be, d, cfg);
  ASSERT_TRUE(r.stopped_early);
  ASSERT_LT(r.history.size(), 300u);
  // The same epochs, uninterrupted: the procedure on the full history.
  TrainConfig all = cfg;
  all.early_stopping = 0;
  const TrainResult full = train_gcn(*be, d, all);
  const Procedure p = benchmark_procedure(full.history, 300, 10);
  EXPECT_EQ(static_cast<int>(r.history.size()), p.stop);
  EXPECT_EQ(r.selected_epoch, p.best);
  EXPECT_EQ(r.best_epoch, p.best);
  for (std::size_t i = 0; i < r.history.size(); ++i) EXPECT_EQ(r.history[i].val_loss, full.history[i].val_loss);
  // The selected parameters are those of training for that many epochs.
  TrainConfig shorter = all;
  shorter.epochs = p.best;
  shorter.select = Selection::kLast;
  EXPECT_EQ(train_gcn(*be, d, shorter).params, r.params);
  // A batch of three (each its own rates) stops each model where it stops alone.
  std::vector<TrainConfig> configs;
  for (float lr : {0.05f, 0.02f, 0.1f}) {
    configs.push_back(cfg);
    configs.back().lr = lr;
    configs.back().seed = static_cast<uint64_t>(lr * 100);
  }
  const DeviceGraph graph(*be, d);
  Trainer batch(graph, 8, 3, true);
  const std::vector<TrainResult> b = batch.train_batch(configs);
  for (std::size_t k = 0; k < configs.size(); ++k) {
    const TrainResult alone = train_gcn(*be, d, configs[k]);
    EXPECT_EQ(b[k].history.size(), alone.history.size()) << k;
    EXPECT_EQ(b[k].selected_epoch, alone.selected_epoch) << k;
    EXPECT_EQ(b[k].params, alone.params) << k;
  }
  cfg.early_stopping = -1;
  EXPECT_THROW(train_gcn(*be, d, cfg), UsageError);
  cfg.early_stopping = TrainConfig::kMaxEarlyStopping + 1;
  EXPECT_THROW(train_gcn(*be, d, cfg), UsageError);
}

// Resumed inside the early-stopping window (the ring refilled from the
// checkpoint's history), the run stops where the uninterrupted one does.
TEST(Trainer, EarlyStoppingSurvivesAResume) {
  auto be = make_cpu_backend(1);
  const Dataset d = tiny_dataset();
  const ModelShape shape{5, 8, 3};
  TrainConfig cfg;
  cfg.epochs = 300;
  cfg.hidden = 8;
  cfg.lr = 0.05f;
  cfg.select = Selection::kBestValLoss;
  cfg.early_stopping = 10;
  const TrainResult full = train_gcn(*be, d, cfg);
  ASSERT_TRUE(full.stopped_early);
  const int at = static_cast<int>(full.history.size()) - 3;  // three epochs before the stop
  ASSERT_GT(at, 150);
  std::string bytes;
  TrainOptions first;
  first.checkpoint_every = 1;
  first.on_checkpoint = [&](const TrainState& s) {
    if (s.epoch == at) bytes = serialize_safetensors(train_state_to_safetensors(shape, s, {{"k", "v"}}));
  };
  train_gcn(*be, d, cfg, first);
  ASSERT_FALSE(bytes.empty());
  const TrainState state = train_state_from_safetensors(parse_safetensors(bytes, "ckpt"), shape, "ckpt");
  // Another run first, so that memory the resumed run reuses holds other figures.
  TrainConfig other = cfg;
  other.lr = 0.2f;
  other.early_stopping = 0;
  train_gcn(*be, d, other);
  TrainOptions second;
  second.resume = &state;
  const TrainResult resumed = train_gcn(*be, d, cfg, second);
  EXPECT_EQ(resumed.history.size(), full.history.size());
  EXPECT_EQ(resumed.selected_epoch, full.selected_epoch);
  EXPECT_EQ(resumed.params, full.params);
}

// An interrupted run resumed from a checkpoint file ends exactly where the
// uninterrupted run does: the state round-trips through safetensors bytes.
TEST(Trainer, ResumeFromACheckpointReachesTheUninterruptedResult) {
  auto be = make_cpu_backend(1);
  const Dataset d = tiny_dataset();
  const ModelShape shape{5, 8, 3};
  for (Selection select : {Selection::kLast, Selection::kBestVal}) {
    TrainConfig cfg;
    cfg.epochs = 30;
    cfg.hidden = 8;
    cfg.select = select;
    const TrainResult full = train_gcn(*be, d, cfg);

    std::string bytes;
    TrainOptions first;
    first.checkpoint_every = 12;
    first.on_checkpoint = [&](const TrainState& s) {
      if (s.epoch == 12) bytes = serialize_safetensors(train_state_to_safetensors(shape, s, {{"k", "v"}}));
    };
    train_gcn(*be, d, cfg, first);
    ASSERT_FALSE(bytes.empty());
    const TrainState state = train_state_from_safetensors(parse_safetensors(bytes, "ckpt"), shape, "ckpt");
    EXPECT_EQ(state.epoch, 12);
    TrainOptions second;
    second.resume = &state;
    const TrainResult resumed = train_gcn(*be, d, cfg, second);
    EXPECT_EQ(resumed.params, full.params) << selection_name(select);
    EXPECT_EQ(resumed.selected_epoch, full.selected_epoch);
    ASSERT_EQ(resumed.history.size(), full.history.size());
    for (std::size_t i = 0; i < full.history.size(); ++i) {
      EXPECT_EQ(resumed.history[i].loss, full.history[i].loss) << i;
      EXPECT_EQ(resumed.history[i].val_acc, full.history[i].val_acc) << i;
    }
  }
}

// --init: training starts from the given weights, not from Glorot.
TEST(Trainer, InitParamsAreTheStartingPoint) {
  auto be = make_cpu_backend(1);
  const Dataset d = tiny_dataset();
  TrainConfig cfg;
  cfg.epochs = 3;
  cfg.hidden = 8;
  const std::vector<float> init = init_params(ModelShape{5, 8, 3}, 777);
  TrainOptions with_init;
  with_init.init_params = &init;
  const TrainResult a = train_gcn(*be, d, cfg, with_init);
  const TrainResult b = train_gcn(*be, d, cfg);
  EXPECT_NE(a.params, b.params);
  // One epoch from `init` equals one manual step of the model from `init`.
  cfg.epochs = 1;
  TrainOptions one;
  one.init_params = &init;
  const TrainResult c = train_gcn(*be, d, cfg, one);
  EXPECT_NE(c.params, init);
  TrainConfig defaults;
  cfg.dropout = 0.0f;  // the trainer's dropout seed is its own; compare without dropout
  const TrainResult c0 = train_gcn(*be, d, cfg, one);
  const DeviceGraph graph(*be, d);
  GcnModel m0(graph, ModelShape{5, 8, 3}, 0.0f);
  m0.set_params(init);
  m0.set_step(test::step_at(0));
  m0.train_forward_backward();
  const float loss = m0.metrics(1).loss;
  m0.adam_step(AdamConfig{defaults.lr, 0.9f, 0.999f, 1e-8f, defaults.weight_decay});
  EXPECT_EQ(c0.params, m0.params());
  EXPECT_EQ(c0.history[0].loss, loss);
}

// A diverging run stops with an error naming the epoch, unless asked to go on.
TEST(Trainer, NonFiniteLossStopsTraining) {
  auto be = make_cpu_backend(1);
  const Dataset d = tiny_dataset();
  TrainConfig cfg;
  cfg.epochs = 50;
  cfg.hidden = 8;
  cfg.lr = 1e30f;
  cfg.weight_decay = 1e30f;
  try {
    train_gcn(*be, d, cfg);
    FAIL() << "no NumericError";
  } catch (const NumericError& e) {
    EXPECT_THAT(e.what(), ::testing::MatchesRegex("epoch [0-9]+: the training loss is .*"));
  }
  cfg.allow_nonfinite = true;
  const TrainResult r = train_gcn(*be, d, cfg);
  EXPECT_EQ(r.history.size(), 50u);
  EXPECT_FALSE(std::isfinite(r.history.back().loss));
}

// Evaluating trained parameters reproduces the last epoch's evaluation exactly.
TEST(Trainer, EvaluateParamsMatchesTheLastEpochsEvaluation) {
  auto be = make_cpu_backend(1);
  const Dataset d = tiny_dataset();
  TrainConfig cfg;
  cfg.epochs = 15;
  cfg.hidden = 8;
  const TrainResult r = train_gcn(*be, d, cfg);
  std::vector<float> log_probs;
  const EpochStats e = evaluate_params(*be, d, 8, r.params, &log_probs);
  EXPECT_EQ(e.epoch, 0);
  EXPECT_EQ(e.val_loss, r.final_stats().val_loss);
  EXPECT_EQ(e.train_acc, r.final_stats().train_acc);
  EXPECT_EQ(e.val_acc, r.final_stats().val_acc);
  EXPECT_EQ(e.test_acc, r.final_stats().test_acc);
  EXPECT_TRUE(std::isfinite(e.loss));
  ASSERT_EQ(log_probs.size(), 7u * 3u);
  for (int i = 0; i < 7; ++i) {
    double sum = 0;
    for (int k = 0; k < 3; ++k) sum += std::exp(log_probs[i * 3 + k]);
    EXPECT_NEAR(sum, 1.0, 1e-5);
  }
}

// Read-backs every K epochs (or every ring's worth) change nothing: the same
// history, the same early stop, the same selected weights as reading every
// epoch, because the best-epoch decision, the weight copy and the stop are
// made in backend memory.
TEST(Trainer, SparseReadBacksGiveTheSameRun) {
  auto be = make_cpu_backend(1);
  const Dataset d = tiny_dataset();
  TrainConfig cfg;
  cfg.epochs = 300;
  cfg.hidden = 8;
  cfg.select = Selection::kBestVal;
  cfg.patience = 25;
  const TrainResult every = train_gcn(*be, d, cfg);
  ASSERT_TRUE(every.stopped_early);
  for (int log_every : {7, 1000}) {
    cfg.log_every = log_every;
    std::vector<int> logged;
    TrainOptions opts;
    opts.on_log = [&](const EpochStats& s) { logged.push_back(s.epoch); };
    const TrainResult sparse = train_gcn(*be, d, cfg, opts);
    EXPECT_EQ(sparse.params, every.params) << log_every;
    EXPECT_EQ(sparse.best_epoch, every.best_epoch);
    EXPECT_EQ(sparse.selected_epoch, every.selected_epoch);
    EXPECT_TRUE(sparse.stopped_early);
    ASSERT_EQ(sparse.history.size(), every.history.size());
    for (std::size_t i = 0; i < every.history.size(); ++i) {
      EXPECT_EQ(sparse.history[i].loss, every.history[i].loss) << i;
      EXPECT_EQ(sparse.history[i].val_acc, every.history[i].val_acc) << i;
    }
    ASSERT_FALSE(logged.empty());
    EXPECT_EQ(logged.back(), static_cast<int>(every.history.size()));  // the stop is logged
  }
}

// More epochs than the metrics ring has slots, read back once at the end:
// the trainer reads every ring's worth, and no epoch is lost.
TEST(Trainer, MetricsRingWrapsWithoutLosingEpochs) {
  auto be = make_cpu_backend(1);
  const Dataset d = tiny_dataset();
  TrainConfig cfg;
  cfg.epochs = GcnModel::kRingSlots * 2 + 37;
  cfg.hidden = 4;
  cfg.log_every = cfg.epochs;
  const TrainResult sparse = train_gcn(*be, d, cfg);
  cfg.log_every = 1;
  const TrainResult every = train_gcn(*be, d, cfg);
  ASSERT_EQ(sparse.history.size(), static_cast<std::size_t>(cfg.epochs));
  for (std::size_t i = 0; i < every.history.size(); ++i) {
    ASSERT_EQ(sparse.history[i].epoch, static_cast<int>(i) + 1);
    ASSERT_EQ(sparse.history[i].loss, every.history[i].loss) << i;
  }
  EXPECT_EQ(sparse.params, every.params);
}

// Runs share one upload of the graph: a Trainer trains seed after seed on
// one DeviceGraph without uploading it again, and each run equals a run on a
// graph of its own.
TEST(Trainer, RunsShareTheGraphUploadedOnce) {
  auto be = make_cpu_backend(1);
  const Dataset d = tiny_dataset();
  const DeviceGraph graph(*be, d);
  Trainer trainer(graph, 8, 0.5f);
  const int uploads = graph.uploads();
  EXPECT_GE(uploads, 5);  // features, their transpose, labels, split, Â
  TrainConfig cfg;
  cfg.epochs = 20;
  cfg.hidden = 8;
  for (uint64_t seed = 0; seed < 3; ++seed) {
    cfg.seed = seed;
    const TrainResult shared = trainer.train(cfg);
    EXPECT_EQ(graph.uploads(), uploads);
    const TrainResult alone = train_gcn(*be, d, cfg);
    EXPECT_EQ(shared.params, alone.params) << seed;
    EXPECT_EQ(shared.history.back().loss, alone.history.back().loss);
  }
}

TEST(Report, SeedSummaryByHand) {
  const SeedSummary s = summarize({0.80, 0.81, 0.82});
  EXPECT_EQ(s.n, 3);
  EXPECT_NEAR(s.mean, 0.81, 1e-12);
  EXPECT_NEAR(s.std, 0.01, 1e-12);
  EXPECT_NEAR(s.ci95_high - s.mean, 4.303 * 0.01 / std::sqrt(3.0), 1e-12);
  EXPECT_NEAR(s.mean - s.ci95_low, 4.303 * 0.01 / std::sqrt(3.0), 1e-12);
  const SeedSummary one = summarize({0.5});
  EXPECT_EQ(one.std, 0.0);
  EXPECT_EQ(one.ci95_low, 0.5);
}

class PlanetoidTraining : public ::testing::Test {
 protected:
  static const Dataset& load(const std::string& name) {
    static std::map<std::string, Dataset> cache;
    auto it = cache.find(name);
    if (it == cache.end()) it = cache.emplace(name, load_planetoid(name, test::data_root())).first;
    return it->second;
  }
};

// ---- many models in one batch -------------------------------------------------

// Seeds, learning rates, weight decays and dropout rates (0 among them) mixed
// in one batch; best-val selection and patience, so models stop at different
// epochs (one of them masked for most of the run).
std::vector<TrainConfig> mixed_batch(int epochs, int patience) {
  std::vector<TrainConfig> out;
  const float lrs[] = {0.01f, 0.05f, 0.002f, 0.2f, 0.01f};
  const float wds[] = {5e-4f, 0.0f, 5e-3f, 5e-4f, 1e-2f};
  const float drops[] = {0.5f, 0.0f, 0.8f, 0.3f, 0.5f};
  for (int k = 0; k < 5; ++k) {
    TrainConfig c;
    c.epochs = epochs;
    c.seed = static_cast<uint64_t>(7 * k + 1);
    c.lr = lrs[k];
    c.weight_decay = wds[k];
    c.dropout = drops[k];
    c.select = Selection::kBestVal;
    c.patience = patience;
    c.log_every = 7;
    out.push_back(c);
  }
  return out;
}

TEST(Batch, EveryModelOfABatchIsItsSingleRunBitForBit) {
  auto be = make_cpu_backend(0);
  const Dataset d = tiny_dataset();
  const DeviceGraph graph(*be, d);
  const std::vector<TrainConfig> configs = mixed_batch(60, 20);
  Trainer batch(graph, 4, static_cast<int>(configs.size()), /*with_dropout=*/true);
  std::vector<TrainConfig> cs = configs;
  for (TrainConfig& c : cs) c.hidden = 4;
  const std::vector<TrainResult> results = batch.train_batch(cs);
  ASSERT_EQ(results.size(), cs.size());
  int stopped = 0;
  for (std::size_t k = 0; k < cs.size(); ++k) {
    Trainer alone(graph, 4, cs[k].dropout);
    const TrainResult single = alone.train(cs[k]);
    expect_same_run(results[k], single, "model " + std::to_string(k));
    stopped += single.stopped_early ? 1 : 0;
  }
  EXPECT_GE(stopped, 1) << "no model stopped early: the masking goes untested";
  EXPECT_LE(stopped, 4) << "every model stopped early";
}

TEST_F(PlanetoidTraining, CoraBatchOfMixedModelsEqualsSingleRunsBitForBit) {
  GCN_REQUIRE_DATA();
  auto be = make_cpu_backend(0);
  const DeviceGraph graph(*be, load("cora"));
  const std::vector<TrainConfig> configs = mixed_batch(80, 25);
  Trainer batch(graph, 16, static_cast<int>(configs.size()), /*with_dropout=*/true);
  const std::vector<TrainResult> results = batch.train_batch(configs);
  int stopped = 0;
  for (std::size_t k = 0; k < configs.size(); ++k) {
    Trainer alone(graph, 16, configs[k].dropout);
    const TrainResult single = alone.train(configs[k]);
    expect_same_run(results[k], single, "model " + std::to_string(k));
    stopped += single.stopped_early ? 1 : 0;
  }
  EXPECT_GE(stopped, 1) << "no model stopped early: the masking goes untested";
  // The same batch again, on the same trainer: the same bits.
  const std::vector<TrainResult> again = batch.train_batch(configs);
  for (std::size_t k = 0; k < configs.size(); ++k) expect_same_run(again[k], results[k], "rerun " + std::to_string(k));
}

// A batch trainer's smaller last batch (a new plan) and a batch of one.
TEST(Batch, PartialAndSingleBatchesMatchToo) {
  auto be = make_cpu_backend(0);
  const Dataset d = tiny_dataset();
  const DeviceGraph graph(*be, d);
  std::vector<TrainConfig> configs = mixed_batch(30, 0);
  for (TrainConfig& c : configs) c.hidden = 3;
  Trainer batch(graph, 3, 4, /*with_dropout=*/true);
  const std::vector<TrainConfig> two(configs.begin(), configs.begin() + 2), one(configs.begin() + 2, configs.begin() + 3);
  const std::vector<TrainResult> r2 = batch.train_batch(two);
  const std::vector<TrainResult> r1 = batch.train_batch(one);
  for (std::size_t k = 0; k < 2; ++k) {
    Trainer alone(graph, 3, two[k].dropout);
    expect_same_run(r2[k], alone.train(two[k]), "pair " + std::to_string(k));
  }
  Trainer alone(graph, 3, one[0].dropout);
  expect_same_run(r1[0], alone.train(one[0]), "single");
  EXPECT_THROW(batch.train_batch(configs), Error);  // 5 models for a batch of 4
}

// The tutorial's run: 200 epochs, Adam(0.01, 5e-4), dropout 0.5, hidden 16.
TEST_F(PlanetoidTraining, CoraReachesTheTutorialAccuracyDeterministically) {
  GCN_REQUIRE_DATA();
  auto be = make_cpu_backend(0);
  const Dataset& cora = load("cora");
  TrainConfig cfg;
  cfg.seed = 0;
  const TrainResult a = train_gcn(*be, cora, cfg);
  const TrainResult b = train_gcn(*be, cora, cfg);
  EXPECT_GE(a.history.back().test_acc, 0.79);
  EXPECT_LT(a.history.back().loss, a.history.front().loss * 0.5);
  EXPECT_EQ(a.params, b.params);
  for (std::size_t i = 0; i < a.history.size(); ++i) {
    ASSERT_EQ(a.history[i].loss, b.history[i].loss) << "epoch " << i + 1;
    ASSERT_EQ(a.history[i].test_acc, b.history[i].test_acc) << "epoch " << i + 1;
  }
}

// The refactor into layers, a workspace and a step state (and the evaluation
// pass computing the first layer for the next training step) changed no bit
// of the CPU's results: these are the figures the earlier model computed for
// Cora, seed 0 (gcn-train 8ab191e, --json), as float bit patterns.
TEST_F(PlanetoidTraining, CoraEpochsAreBitIdenticalToThePreviousModel) {
  GCN_REQUIRE_DATA();
  auto be = make_cpu_backend(0);
  const TrainResult r = train_gcn(*be, load("cora"), TrainConfig{});
  struct Pinned {
    int epoch;
    float loss, val_loss;
    double train_acc, val_acc, test_acc;
  };
  const Pinned pinned[] = {
      {1, 0x1.f1e9a4p+0f, 0x1.f019acp+0f, 32.0 / 140, 108.0 / 500, 211.0 / 1000},
      {2, 0x1.f0569ap+0f, 0x1.efe6d4p+0f, 76.0 / 140, 147.0 / 500, 314.0 / 1000},
      {3, 0x1.edf534p+0f, 0x1.ef88d4p+0f, 113.0 / 140, 236.0 / 500, 492.0 / 1000},
      {50, 0x1.11dea8p+0f, 0x1.65d62ap+0f, 137.0 / 140, 385.0 / 500, 790.0 / 1000},
      {200, 0x1.451c60p-2f, 0x1.a0d7f6p-1f, 139.0 / 140, 395.0 / 500, 815.0 / 1000},
  };
  ASSERT_EQ(r.history.size(), 200u);
  for (const Pinned& p : pinned) {
    const EpochStats& s = r.history[static_cast<std::size_t>(p.epoch - 1)];
    EXPECT_EQ(static_cast<float>(s.loss), p.loss) << "epoch " << p.epoch;
    EXPECT_EQ(static_cast<float>(s.val_loss), p.val_loss) << "epoch " << p.epoch;
    EXPECT_EQ(s.train_acc, p.train_acc) << "epoch " << p.epoch;
    EXPECT_EQ(s.val_acc, p.val_acc) << "epoch " << p.epoch;
    EXPECT_EQ(s.test_acc, p.test_acc) << "epoch " << p.epoch;
  }
}

// log_softmax + nll_loss and cross_entropy on the logits go through the same
// fused op and must train bit-identically.
TEST_F(PlanetoidTraining, NllAndCrossEntropyTrainBitIdentically) {
  GCN_REQUIRE_DATA();
  auto be = make_cpu_backend(0);
  const Dataset& cora = load("cora");
  TrainConfig cfg;
  cfg.epochs = 50;
  cfg.loss = LossKind::kNll;
  const TrainResult nll = train_gcn(*be, cora, cfg);
  cfg.loss = LossKind::kCrossEntropy;
  const TrainResult ce = train_gcn(*be, cora, cfg);
  EXPECT_EQ(nll.params, ce.params);
  for (std::size_t i = 0; i < nll.history.size(); ++i) ASSERT_EQ(nll.history[i].loss, ce.history[i].loss);
}

// The thread count changes nothing: every reduction runs in a fixed order.
TEST_F(PlanetoidTraining, ResultsDoNotDependOnThreadCount) {
  GCN_REQUIRE_DATA();
  const Dataset& cora = load("cora");
  TrainConfig cfg;
  cfg.epochs = 30;
  auto one = make_cpu_backend(1);
  auto two = make_cpu_backend(2);
  EXPECT_EQ(train_gcn(*one, cora, cfg).params, train_gcn(*two, cora, cfg).params);
}

// Mean test accuracy over seeds 0-9 (PyG's tutorial model: about 0.80-0.815 on
// Cora, 0.70 on CiteSeer).
TEST_F(PlanetoidTraining, MeanAccuracyOverTenSeeds) {
  GCN_REQUIRE_DATA();
  auto be = make_cpu_backend(0);
  for (const auto& [name, floor] : std::vector<std::pair<std::string, double>>{{"cora", 0.80}, {"citeseer", 0.68}}) {
    const Dataset& data = load(name);
    double sum = 0.0;
    for (uint64_t seed = 0; seed < 10; ++seed) {
      TrainConfig cfg;
      cfg.seed = seed;
      sum += train_gcn(*be, data, cfg).history.back().test_acc;
    }
    EXPECT_GE(sum / 10.0, floor) << name;
  }
}

}  // namespace
}  // namespace gcn
