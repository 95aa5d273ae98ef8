// The model and the training loop: finite-difference gradients of the whole
// model, determinism, and end-to-end training on Cora and CiteSeer.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <numeric>
#include <random>
#include <vector>

#include "gcn/checkpoint.hpp"
#include "gcn/devices.hpp"
#include "gcn/error.hpp"
#include "gcn/model.hpp"
#include "gcn/planetoid.hpp"
#include "gcn/report.hpp"
#include "gcn/trainer.hpp"
#include "test_util.hpp"

namespace gcn {
namespace {

// A small graph with a directed edge (so Âᵀ differs from Â), an isolated node,
// sparse non-negative features and all three splits.
Dataset tiny_dataset() {
  Dataset d;
  d.name = "tiny";
  d.n_nodes = 7;
  d.n_features = 5;
  d.n_classes = 3;
  d.edge_src = {0, 0, 1, 1, 2, 3, 3, 4, 5};
  d.edge_dst = {1, 3, 0, 2, 1, 0, 4, 3, 4};  // 5 -> 4 has no reverse; 6 is isolated
  std::mt19937 gen(3);
  std::uniform_real_distribution<float> u(0.1f, 1.0f);
  d.features.n_rows = 7;
  d.features.n_cols = 5;
  d.features.indptr = {0};
  for (int i = 0; i < 7; ++i) {
    for (int j = 0; j < 5; ++j) {
      if ((i + 2 * j) % 3 != 0) {
        d.features.indices.push_back(j);
        d.features.values.push_back(u(gen));
      }
    }
    d.features.indptr.push_back(static_cast<int32_t>(d.features.indices.size()));
  }
  d.labels = {0, 1, 2, 1, 0, 2, 1};
  d.split = {kTrainBit, kTrainBit, kTrainBit, kTrainBit, kValBit, kTestBit, kTestBit};
  return d;
}

class ModelGradient : public ::testing::TestWithParam<float> {};

// The analytic gradient of every parameter against central differences of the
// training loss; with dropout the mask is fixed by (seed, stream).
TEST_P(ModelGradient, MatchesFiniteDifferences) {
  const float dropout = GetParam();
  auto be = make_cpu_backend(1);
  const Dataset d = tiny_dataset();
  const GcnShape shape{5, 4, 3};
  GcnModel model(*be, d, shape, dropout);
  std::vector<float> p = glorot_init(shape, 11);
  const ParamLayout layout(shape);
  std::mt19937 gen(5);
  std::uniform_real_distribution<float> u(-0.3f, 0.3f);
  for (int64_t i = layout.b1; i < layout.w2; ++i) p[i] = u(gen);  // non-zero biases
  for (int64_t i = layout.b2; i < layout.total; ++i) p[i] = u(gen);

  auto loss_at = [&](const std::vector<float>& params) {
    model.set_params(params);
    model.forward(true, 99, 1);
    float loss = 0.0f;
    model.backward(&loss);
    return static_cast<double>(loss);
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
  EXPECT_THROW(GcnModel(*be, d, GcnShape{6, 4, 3}, 0.5f), UsageError);
  EXPECT_THROW(GcnModel(*be, d, GcnShape{5, 4, 3}, 1.0f), UsageError);
}

TEST(Model, GlorotInitBoundsAndDeterminism) {
  const GcnShape shape{1433, 16, 7};
  const ParamLayout layout(shape);
  const std::vector<float> a = glorot_init(shape, 1), b = glorot_init(shape, 1), c = glorot_init(shape, 2);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  const float bound1 = std::sqrt(6.0f / (1433 + 16)), bound2 = std::sqrt(6.0f / (16 + 7));
  double sum_sq = 0.0;
  for (int64_t i = layout.w1; i < layout.b1; ++i) {
    ASSERT_LE(std::abs(a[i]), bound1);
    sum_sq += static_cast<double>(a[i]) * a[i];
  }
  // Var of U(-b, b) is b^2 / 3.
  EXPECT_NEAR(sum_sq / (layout.b1 - layout.w1), bound1 * bound1 / 3.0, 0.02 * bound1 * bound1);
  for (int64_t i = layout.w2; i < layout.b2; ++i) ASSERT_LE(std::abs(a[i]), bound2);
  for (int64_t i = layout.b1; i < layout.w2; ++i) ASSERT_EQ(a[i], 0.0f);
  for (int64_t i = layout.b2; i < layout.total; ++i) ASSERT_EQ(a[i], 0.0f);
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

// An interrupted run resumed from a checkpoint file ends exactly where the
// uninterrupted run does: the state round-trips through safetensors bytes.
TEST(Trainer, ResumeFromACheckpointReachesTheUninterruptedResult) {
  auto be = make_cpu_backend(1);
  const Dataset d = tiny_dataset();
  const GcnShape shape{5, 8, 3};
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
  const std::vector<float> init = glorot_init(GcnShape{5, 8, 3}, 777);
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
  GcnModel m0(*be, d, GcnShape{5, 8, 3}, 0.0f);
  m0.set_params(init);
  m0.forward(true, 0, 1);
  float loss = 0;
  m0.backward(&loss);
  m0.adam_step(AdamConfig{defaults.lr, 0.9f, 0.999f, 1e-8f, defaults.weight_decay}, 1);
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
