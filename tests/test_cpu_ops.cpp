// CPU backend ops against values computed by hand, by PyTorch (noted where),
// and against finite differences; the step state and metrics ring the ops
// read and write; the argument checks; and every CPU kernel variant this CPU
// runs (baseline, AVX2, AVX-512) against the baseline and plain loops, bit
// for bit.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <iostream>
#include <limits>
#include <numeric>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "cpu_kernels.hpp"
#include "gcn/backend/backend.hpp"
#include "gcn/backend/buffer.hpp"
#include "gcn/data/dataset.hpp"
#include "gcn/backend/devices.hpp"
#include "gcn/error.hpp"
#include "gcn/data/graph.hpp"
#include "gcn/rng.hpp"
#include "gcn/backend/step_state.hpp"
#include "test_compare.hpp"
#include "test_random.hpp"
#include "test_step.hpp"

namespace gcn {
namespace {

using test::same_bits;
using test::sentinel_metrics;
using test::StepRing;
using test::step_at;

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();


// The message of the gcn::Error f throws, or "(no error)".
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

class CpuOps : public ::testing::Test {
 protected:
  std::unique_ptr<Backend> be = make_cpu_backend(2);
  MatRef mat(std::vector<float>& v, int64_t rows, int64_t cols) { return {v.data(), rows, cols}; }

  // classifier_loss at epoch 0 into a ring of one slot: the loss.
  float loss_of(ConstMatRef x, const std::vector<int32_t>& labels, const std::vector<uint8_t>& split, uint8_t bit,
                int64_t n_masked, float* grad = nullptr, float* bias_grad = nullptr) {
    StepRing sr(*be, step_at(0));
    const MatRef g = grad != nullptr ? MatRef{grad, x.rows, x.cols} : MatRef{};
    be->classifier_loss(x, labels.data(), split.data(), bit, n_masked, g, bias_grad, sr.state(), sr.ring());
    return sr.slot(0).loss;
  }
  // evaluate at epoch 0 into a ring of one slot (no advance): the slot.
  EpochMetrics evaluate_once(ConstMatRef x, const std::vector<int32_t>& labels, const std::vector<uint8_t>& split) {
    const int64_t n_val = std::count_if(split.begin(), split.end(), [](uint8_t s) { return (s & kValBit) != 0; });
    StepRing sr(*be, step_at(0));
    be->evaluate(x, labels.data(), split.data(), n_val, sr.state(), sr.ring(), false);
    return sr.slot(0);
  }
  std::vector<int32_t> correct_of(ConstMatRef x, const std::vector<int32_t>& labels,
                                  const std::vector<uint8_t>& split) {
    const EpochMetrics m = evaluate_once(x, labels, split);
    return {m.correct[0], m.correct[1], m.correct[2]};
  }
};

// The tutorial's example, with the true values (the tutorial prints wrong ones).
TEST_F(CpuOps, LogSoftmaxTutorialExample) {
  std::vector<float> x = {2.0f, 1.0f, 0.1f, 1.0f, 3.0f, 0.2f};
  std::vector<float> y(6);
  be->log_softmax(mat(x, 2, 3), mat(y, 2, 3));
  const std::vector<float> expected = {-0.4170f, -1.4170f, -2.3170f, -2.1791f, -0.1791f, -2.9791f};
  for (int i = 0; i < 6; ++i) EXPECT_NEAR(y[i], expected[i], 1e-4) << i;
}

// argmax of the rows is [1, 2, 1]: the correct counts per split bit, the
// validation loss of row 2 (-log_softmax([0.6, 0.7, 0.2])[1] = 0.920828) and
// the epoch.
TEST_F(CpuOps, EvaluateTutorialExample) {
  std::vector<float> x = {0.1f, 2.3f, 0.4f, 1.2f, 0.8f, 3.5f, 0.6f, 0.7f, 0.2f};
  const std::vector<uint8_t> split = {kTrainBit, static_cast<uint8_t>(kTrainBit | kTestBit), kValBit};
  // row 0 correct (train), row 1 wrong, row 2 correct (val)
  const EpochMetrics m = evaluate_once(mat(x, 3, 3), {1, 0, 1}, split);
  EXPECT_THAT(m.correct, ::testing::ElementsAre(1, 1, 0));
  EXPECT_NEAR(m.val_loss, 0.920828f, 1e-5);
  EXPECT_EQ(m.epoch, 1);
  // The labels equal to the argmax: every row right (row 1 counts for train and test).
  EXPECT_THAT(correct_of(mat(x, 3, 3), {1, 2, 1}, split), ::testing::ElementsAre(2, 1, 1));
  // One past the argmax: none right.
  EXPECT_THAT(correct_of(mat(x, 3, 3), {2, 0, 2}, split), ::testing::ElementsAre(0, 0, 0));
}

TEST_F(CpuOps, EvaluateArgmaxTiesPickTheFirst) {
  std::vector<float> x = {1.0f, 5.0f, 5.0f, -1.0f, -1.0f, -1.0f};  // argmax [1, 0]
  const std::vector<uint8_t> split = {kTrainBit, kTrainBit};
  EXPECT_THAT(correct_of(mat(x, 2, 3), {1, 0}, split), ::testing::ElementsAre(2, 0, 0));
  EXPECT_THAT(correct_of(mat(x, 2, 3), {2, 1}, split), ::testing::ElementsAre(0, 0, 0));  // the later maxima
}

// torch.argmax(dim=1) (PyTorch 1.13) on these rows gives [1, 0, 1, 0]: a NaN
// counts as the maximum (the first NaN wins), and an all -inf row gives 0.
TEST_F(CpuOps, EvaluateArgmaxTreatsNanAsTorchDoes) {
  std::vector<float> x = {1.0f, kNaN, 3.0f, kNaN,  //
                          kNaN, 1.0f, 2.0f, 0.0f,  //
                          1.0f, 3.0f, 3.0f, -kInf,  //
                          -kInf, -kInf, -kInf, -kInf};
  const std::vector<uint8_t> split(4, kTestBit);
  EXPECT_THAT(correct_of(mat(x, 4, 4), {1, 0, 1, 0}, split), ::testing::ElementsAre(0, 0, 4));
  EXPECT_THAT(correct_of(mat(x, 4, 4), {2, 1, 2, 1}, split), ::testing::ElementsAre(0, 0, 0));
  // Each row alone: only its own expected label counts.
  const std::vector<int32_t> expected = {1, 0, 1, 0};
  for (int r = 0; r < 4; ++r) {
    std::vector<int32_t> labels = {2, 1, 2, 1};
    labels[r] = expected[r];
    EXPECT_THAT(correct_of(mat(x, 4, 4), labels, split), ::testing::ElementsAre(0, 0, 1)) << "row " << r;
  }
}

// nll_loss(log_softmax(x), [2, 1]) = 1.2481 (PyTorch 1.13), i.e. (2.3170 + 0.1791) / 2.
TEST_F(CpuOps, ClassifierLossMatchesHandValues) {
  std::vector<float> x = {2.0f, 1.0f, 0.1f, 1.0f, 3.0f, 0.2f};
  const std::vector<int32_t> labels = {2, 1};
  EXPECT_NEAR(loss_of(mat(x, 2, 3), labels, {kTrainBit, kTrainBit}, kTrainBit, 2), 1.2481f, 1e-4);
  const std::vector<uint8_t> first_only = {kTrainBit, kValBit};
  EXPECT_NEAR(loss_of(mat(x, 2, 3), labels, first_only, kTrainBit, 1), 2.3170f, 1e-4);
  EXPECT_NEAR(loss_of(mat(x, 2, 3), labels, first_only, kValBit, 1), 0.1791f, 1e-4);

  // No masked row: loss 0, gradient 0, bias gradient 0.
  std::vector<float> grad(6, 7.0f), bias_grad(3, 7.0f);
  EXPECT_EQ(loss_of(mat(x, 2, 3), labels, {0, 0}, kTrainBit, 0, grad.data(), bias_grad.data()), 0.0f);
  EXPECT_THAT(grad, ::testing::Each(0.0f));
  EXPECT_THAT(bias_grad, ::testing::Each(0.0f));

  // The evaluation's validation loss is the same masked mean over the kValBit rows.
  const EpochMetrics m = evaluate_once(mat(x, 2, 3), labels, {kValBit, kValBit});
  EXPECT_NEAR(m.val_loss, 1.2481f, 1e-4);
  EXPECT_EQ(m.val_loss, loss_of(mat(x, 2, 3), labels, {kValBit, kValBit}, kValBit, 2));
}

// The loss goes to the running epoch's slot (epoch 5 done, ring of 4: slot
// 1) and nowhere else; the gradient is (softmax - onehot) / n on masked rows;
// the bias gradient is column_sum(grad), bit for bit; without a gradient the
// loss is the same bits; a stopped state writes nothing.
TEST_F(CpuOps, ClassifierLossSlotGradientAndBiasGradient) {
  const int64_t n = 23, c = 5;
  std::vector<float> x = test::random_floats(n * c, 3, -4.0f, 4.0f);
  std::vector<int32_t> labels(n);
  std::vector<uint8_t> split(n);
  int64_t n_masked = 0;
  for (int64_t i = 0; i < n; ++i) {
    labels[i] = static_cast<int32_t>((i * 3) % c);
    split[i] = i % 3 == 1 ? kValBit : kTrainBit;
    n_masked += split[i] == kTrainBit;
  }
  StepRing sr(*be, step_at(5), 4);
  sr.fill_slots(sentinel_metrics());
  std::vector<float> grad(n * c, kNaN), bias_grad(c, kNaN);
  be->classifier_loss(mat(x, n, c), labels.data(), split.data(), kTrainBit, n_masked, mat(grad, n, c),
                      bias_grad.data(), sr.state(), sr.ring());
  const std::vector<EpochMetrics> slots = sr.slots();
  for (int s : {0, 2, 3}) EXPECT_TRUE(test::same_bytes(slots[s], sentinel_metrics())) << "slot " << s << " written";
  // Only the loss field of slot 1.
  EXPECT_EQ(slots[1].val_loss, sentinel_metrics().val_loss);
  EXPECT_EQ(slots[1].epoch, sentinel_metrics().epoch);
  EXPECT_THAT(slots[1].correct, ::testing::Each(-7));
  double ref_loss = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    const float* row = x.data() + i * c;
    const float mx = *std::max_element(row, row + c);
    double sum = 0.0;
    for (int64_t j = 0; j < c; ++j) sum += std::exp(static_cast<double>(row[j]) - mx);
    for (int64_t j = 0; j < c; ++j) {
      const double softmax = std::exp(static_cast<double>(row[j]) - mx) / sum;
      const double expected = split[i] == kTrainBit ? (softmax - (j == labels[i] ? 1.0 : 0.0)) / n_masked : 0.0;
      EXPECT_NEAR(grad[i * c + j], expected, 1e-7) << i << "," << j;
    }
    if (split[i] == kTrainBit) ref_loss += std::log(sum) - (row[labels[i]] - mx);
  }
  EXPECT_NEAR(slots[1].loss, ref_loss / n_masked, 1e-5);
  std::vector<float> sums(c, kNaN);
  be->column_sum(mat(grad, n, c), sums.data());
  EXPECT_TRUE(same_bits(bias_grad, sums));
  // Column 0 by hand.
  double col0 = 0.0;
  for (int64_t i = 0; i < n; ++i) col0 += grad[i * c];
  EXPECT_NEAR(bias_grad[0], col0, 1e-7);

  // grad = none: the same loss bits.
  StepRing none(*be, step_at(5), 4);
  be->classifier_loss(mat(x, n, c), labels.data(), split.data(), kTrainBit, n_masked, MatRef{}, nullptr,
                      none.state(), none.ring());
  EXPECT_TRUE(same_bits(std::vector<float>{none.slot(1).loss}, std::vector<float>{slots[1].loss}));

  // Stopped: nothing written, the state unchanged.
  StepState stopped = step_at(5);
  stopped.stopped = 1;
  StepRing halted(*be, stopped, 4);
  halted.fill_slots(sentinel_metrics());
  std::vector<float> g2(n * c, 7.0f), b2(c, 7.0f);
  be->classifier_loss(mat(x, n, c), labels.data(), split.data(), kTrainBit, n_masked, mat(g2, n, c), b2.data(),
                      halted.state(), halted.ring());
  for (const EpochMetrics& s : halted.slots()) EXPECT_TRUE(test::same_bytes(s, sentinel_metrics()));
  EXPECT_THAT(g2, ::testing::Each(7.0f));
  EXPECT_THAT(b2, ::testing::Each(7.0f));
  EXPECT_TRUE(test::same_bytes(halted.get(), stopped));
}

// Cross-entropy on the logits (the fused op) equals log_softmax followed by NLL
// computed separately, and its gradient is (softmax - onehot) / n.
TEST_F(CpuOps, FusedLossEqualsLogSoftmaxThenNll) {
  std::mt19937 gen(7);
  std::normal_distribution<float> dist(0.0f, 3.0f);
  const int n = 37, c = 7;
  std::vector<float> x(n * c), logp(n * c), grad(n * c);
  for (float& v : x) v = dist(gen);
  std::vector<int32_t> labels(n);
  std::vector<uint8_t> split(n);
  int n_masked = 0;
  for (int i = 0; i < n; ++i) {
    labels[i] = static_cast<int32_t>(gen() % c);
    split[i] = (i % 3 == 0) ? kTrainBit : kTestBit;
    n_masked += split[i] & kTrainBit;
  }
  const float fused = loss_of(mat(x, n, c), labels, split, kTrainBit, n_masked, grad.data());
  be->log_softmax(mat(x, n, c), mat(logp, n, c));
  double nll = 0.0;
  for (int i = 0; i < n; ++i) {
    if (split[i] & kTrainBit) nll -= logp[i * c + labels[i]];
  }
  nll /= n_masked;
  EXPECT_NEAR(fused, nll, 1e-5);
  for (int i = 0; i < n; ++i) {
    for (int j = 0; j < c; ++j) {
      const double expected =
          (split[i] & kTrainBit) ? (std::exp(logp[i * c + j]) - (j == labels[i] ? 1.0 : 0.0)) / n_masked : 0.0;
      EXPECT_NEAR(grad[i * c + j], expected, 1e-6) << i << "," << j;
    }
  }
  // Finite differences of the fused loss for the logits of a masked row.
  for (int j = 0; j < c; ++j) {
    const int idx = 3 * c + j;
    std::vector<float> xp = x, xm = x;
    const float h = 1e-2f;
    xp[idx] += h;
    xm[idx] -= h;
    const float lp = loss_of(mat(xp, n, c), labels, split, kTrainBit, n_masked);
    const float lm = loss_of(mat(xm, n, c), labels, split, kTrainBit, n_masked);
    EXPECT_NEAR((lp - lm) / (2 * h), grad[idx], 2e-4) << j;
  }
}

// The unfused baseline (log_softmax, then bench_ops()->nll_loss) gives the
// fused op's loss and gradient.
TEST_F(CpuOps, UnfusedNllMatchesTheFusedOp) {
  std::mt19937 gen(11);
  std::normal_distribution<float> dist(0.0f, 2.0f);
  const int n = 29, c = 5;
  std::vector<float> x(n * c), logp(n * c), g_fused(n * c), g_unfused(n * c);
  for (float& v : x) v = dist(gen);
  std::vector<int32_t> labels(n);
  std::vector<uint8_t> split(n);
  int n_masked = 0;
  for (int i = 0; i < n; ++i) {
    labels[i] = static_cast<int32_t>(gen() % c);
    split[i] = (i % 2 == 0) ? kValBit : kTrainBit;
    n_masked += (split[i] & kValBit) ? 1 : 0;
  }
  const float fused = loss_of(mat(x, n, c), labels, split, kValBit, n_masked, g_fused.data());
  be->log_softmax(mat(x, n, c), mat(logp, n, c));
  ASSERT_NE(be->bench_ops(), nullptr);
  float unfused = kNaN;
  be->bench_ops()->nll_loss(mat(logp, n, c), labels.data(), split.data(), kValBit, n_masked, &unfused,
                            g_unfused.data());
  EXPECT_NEAR(unfused, fused, 1e-6);
  for (int i = 0; i < n * c; ++i) EXPECT_NEAR(g_unfused[i], g_fused[i], 1e-7) << i;
}

TEST_F(CpuOps, LossIsFiniteForExtremeLogits) {
  std::vector<float> x = {1e30f, -1e30f, 0.0f, -1e30f, -1e30f, -1e30f + 1e24f, 88.0f, 89.0f, -80.0f};
  std::vector<float> grad(9), bias_grad(3);
  const float loss = loss_of(mat(x, 3, 3), {1, 2, 0}, {kTrainBit, kTrainBit, kTrainBit}, kTrainBit, 3, grad.data(),
                             bias_grad.data());
  EXPECT_TRUE(std::isfinite(loss));
  for (float g : grad) EXPECT_TRUE(std::isfinite(g));
  for (float g : bias_grad) EXPECT_TRUE(std::isfinite(g));
  // Row 0: label 1 sits 2e30 below the max, so its loss is 2e30 (finite in
  // float); rows 1 and 2 add less than 2, lost in the mean of about 6.7e29.
  EXPECT_NEAR(loss / 1e30f, 2.0f / 3.0f, 1e-3);
}

// All-equal huge logits: log_softmax is exactly -log C, not 0.
TEST_F(CpuOps, LogSoftmaxOfHugeUniformRowsIsMinusLogC) {
  std::vector<float> x(8, 1e30f), y(8);
  be->log_softmax(mat(x, 2, 4), mat(y, 2, 4));
  for (float v : y) EXPECT_NEAR(v, -std::log(4.0f), 1e-6);
}

// The validation loss of logits (a, 0) with label 0 is log(1 + e^-a).
float softplus_loss(float a) { return static_cast<float>(std::log1p(std::exp(-static_cast<double>(a)))); }

// The selection, step by step, on hand-made logits: 4 validation rows of
// (a, 0) with label 0 (right when a >= 0), one training row always right and
// one test row always wrong; patience 3, a ring of 4 slots.
TEST_F(CpuOps, EvaluateSelectsTheBestEpochStepByStep) {
  const std::vector<uint8_t> split = {kValBit, kValBit, kValBit, kValBit, kTrainBit, kTestBit};
  const std::vector<int32_t> labels(6, 0);
  auto logits = [](std::vector<float> a) {
    std::vector<float> x;
    a.push_back(3.0f);   // the training row: right
    a.push_back(-3.0f);  // the test row: wrong
    for (float v : a) {
      x.push_back(v);
      x.push_back(0.0f);
    }
    return x;
  };
  auto val_loss = [](const std::vector<float>& a) {
    double s = 0.0;
    for (float v : a) s += softplus_loss(v);
    return static_cast<float>(s / 4.0);
  };
  StepState init = step_at(0);
  init.patience = 3;
  StepRing sr(*be, init, 4);
  struct Epoch {
    std::vector<float> a;
    bool advance;
    int32_t correct;
    int32_t improved, best_epoch, stopped;
    int64_t epoch_after;
  };
  const Epoch epochs[] = {
      {{1, 1, -1, -1}, false, 2, 1, 1, 0, 0},   // epoch 1, not advanced: the first is always the best
      {{1, 1, -1, -1}, true, 2, 0, 1, 0, 1},    // epoch 1 again: the same figures are not better
      {{1, 1, 1, -1}, true, 3, 1, 2, 0, 2},     // epoch 2: more right
      {{2, 2, 2, -1}, true, 3, 1, 3, 0, 3},     // epoch 3: as many right, lower loss
      {{2, 2, 2, -1}, true, 3, 0, 3, 0, 4},     // epoch 4: equal loss is no better
      {{0.5f, 0.5f, 0.5f, -1}, true, 3, 0, 3, 0, 5},  // epoch 5: higher loss (a = 0.5 is still right)
      {{1, -1, -1, 0}, true, 2, 0, 3, 1, 6},    // epoch 6: fewer right; 6 - 3 >= patience 3: stopped
  };
  for (const Epoch& e : epochs) {
    const StepState before = sr.get();
    std::vector<float> x = logits(e.a);
    be->evaluate(mat(x, 6, 2), labels.data(), split.data(), 4, sr.state(), sr.ring(), e.advance);
    const StepState s = sr.get();
    const EpochMetrics m = sr.slot(static_cast<int32_t>(before.epoch % 4));
    const std::string where = "evaluating epoch " + std::to_string(before.epoch + 1);
    EXPECT_EQ(m.epoch, before.epoch + 1) << where;
    EXPECT_THAT(m.correct, ::testing::ElementsAre(1, e.correct, 0)) << where;
    EXPECT_NEAR(m.val_loss, val_loss(e.a), 1e-6) << where;
    EXPECT_EQ(s.improved, e.improved) << where;
    EXPECT_EQ(s.best_epoch, e.best_epoch) << where;
    EXPECT_EQ(s.stopped, e.stopped) << where;
    EXPECT_EQ(s.epoch, e.epoch_after) << where;
    if (e.improved != 0) {
      EXPECT_EQ(s.best_val_correct, e.correct) << where;
      EXPECT_EQ(s.best_val_loss, m.val_loss) << where;
    } else {
      EXPECT_EQ(s.best_val_correct, before.best_val_correct) << where;
      EXPECT_EQ(s.best_val_loss, before.best_val_loss) << where;
    }
    EXPECT_EQ(s.patience, 3);
  }
  // Epochs 1..6 wrote slots 0, 1, 2, 3, 0, 1.
  const std::vector<EpochMetrics> slots = sr.slots();
  EXPECT_EQ(slots[0].epoch, 5);
  EXPECT_EQ(slots[1].epoch, 6);
  EXPECT_EQ(slots[2].epoch, 3);
  EXPECT_EQ(slots[3].epoch, 4);
  // Stopped: another evaluation (all right now) writes nothing and does not advance.
  const StepState stopped = sr.get();
  std::vector<float> x = logits({5, 5, 5, 5});
  be->evaluate(mat(x, 6, 2), labels.data(), split.data(), 4, sr.state(), sr.ring(), true);
  EXPECT_TRUE(test::same_bytes(sr.get(), stopped));
  const std::vector<EpochMetrics> after = sr.slots();
  for (int i = 0; i < 4; ++i) EXPECT_TRUE(test::same_bytes(after[i], slots[i])) << "slot " << i;
  // Nor does the training loss, or Adam.
  std::vector<float> grad(12, 7.0f);
  be->classifier_loss(mat(x, 6, 2), labels.data(), split.data(), kTrainBit, 1, mat(grad, 6, 2), nullptr, sr.state(),
                      sr.ring());
  EXPECT_THAT(grad, ::testing::Each(7.0f));
  EXPECT_TRUE(test::same_bytes(sr.slots()[2], slots[2]));

  // Patience 0 never stops.
  StepRing forever(*be, step_at(0), 2);
  for (int e = 0; e < 6; ++e) {
    std::vector<float> bad = logits({-1, -1, -1, -1});
    be->evaluate(mat(bad, 6, 2), labels.data(), split.data(), 4, forever.state(), forever.ring(), true);
  }
  EXPECT_EQ(forever.get().stopped, 0);
  EXPECT_EQ(forever.get().best_epoch, 1);
  EXPECT_EQ(forever.get().epoch, 6);
}

TEST_F(CpuOps, SpmmSmallByHand) {
  // a = [[1, 0, 2], [0, 0, 0], [0, 3, 0]]
  CsrMatrix a;
  a.n_rows = 3;
  a.n_cols = 3;
  a.indptr = {0, 2, 2, 3};
  a.indices = {0, 2, 1};
  a.values = {1.0f, 2.0f, 3.0f};
  auto dev = be->upload_csr(a);
  std::vector<float> b = {1, 2, 3, 4, 5, 6};  // (3, 2)
  std::vector<float> c(6, -1.0f);
  be->spmm(*dev, mat(b, 3, 2), mat(c, 3, 2));
  EXPECT_THAT(c, ::testing::ElementsAre(11, 14, 0, 0, 9, 12));
  // With a bias on every row (the empty row gets the bias alone).
  std::vector<float> bias = {10, 20};
  std::fill(c.begin(), c.end(), kNaN);
  be->spmm(*dev, mat(b, 3, 2), mat(c, 3, 2), bias.data());
  EXPECT_THAT(c, ::testing::ElementsAre(21, 34, 10, 20, 19, 32));
  // Prepared outputs: whatever prepare_outputs leaves, the product writes every element.
  std::vector<float> c2(6, kNaN);
  const OutputInit inits[] = {{mat(c, 3, 2), bias.data()}, {mat(c2, 3, 2), nullptr}};
  std::fill(c.begin(), c.end(), kNaN);
  be->prepare_outputs(inits, 2);
  be->spmm(*dev, mat(b, 3, 2), mat(c, 3, 2), bias.data(), true);
  be->spmm(*dev, mat(b, 3, 2), mat(c2, 3, 2), nullptr, true);
  EXPECT_THAT(c, ::testing::ElementsAre(21, 34, 10, 20, 19, 32));
  EXPECT_THAT(c2, ::testing::ElementsAre(11, 14, 0, 0, 9, 12));
  be->prepare_outputs(nullptr, 0);  // nothing to prepare
}

TEST_F(CpuOps, GemmAllTransposes) {
  // a = [[1, 2, 3], [4, 5, 6]] (2, 3); b = [[1, 0], [0, 1], [2, -1]] (3, 2); a·b = [[7, -1], [16, -1]]
  std::vector<float> a = {1, 2, 3, 4, 5, 6}, at = {1, 4, 2, 5, 3, 6};
  std::vector<float> b = {1, 0, 0, 1, 2, -1}, bt = {1, 0, 2, 0, 1, -1};
  for (int ta = 0; ta < 2; ++ta) {
    for (int tb = 0; tb < 2; ++tb) {
      std::vector<float> c(4, 99.0f);
      be->gemm(ta ? mat(at, 3, 2) : mat(a, 2, 3), ta, tb ? mat(bt, 2, 3) : mat(b, 3, 2), tb, mat(c, 2, 2));
      EXPECT_THAT(c, ::testing::ElementsAre(7, -1, 16, -1)) << ta << tb;
    }
  }
  std::vector<float> c(4);
  EXPECT_THROW(be->gemm(mat(a, 2, 3), false, mat(a, 2, 3), false, mat(c, 2, 2)), Error);
  // The message (formatted only when the check fails) names the op and the shapes.
  EXPECT_EQ(error_of([&] { be->gemm(mat(a, 2, 3), false, mat(a, 2, 3), true, mat(c, 3, 1)); }),
            "gemm: op(a) (2, 3) x op(b) (2, 3) -> (3, 1) (trans_a=false, trans_b=true)");
  // k = 0: c is zeros.
  std::vector<float> z(4, 99.0f);
  be->gemm({a.data(), 2, 0}, false, {b.data(), 0, 2}, false, mat(z, 2, 2));
  EXPECT_THAT(z, ::testing::Each(0.0f));
}

// A random (rows, cols) matrix with about half its entries zero, as after a ReLU.
std::vector<float> half_zero_matrix(int64_t rows, int64_t cols, uint32_t seed) {
  std::vector<float> m = test::random_floats(static_cast<std::size_t>(rows * cols), seed, -2.0f, 2.0f);
  std::mt19937 gen(seed + 1);
  for (float& v : m) v = gen() % 2 ? 0.0f : v;
  return m;
}

// c = a·b (+ bias) by plain loops in the backend's order: each element sums
// its row's terms in float in stored order, then adds the bias.
std::vector<float> plain_spmm(const CsrMatrix& a, const std::vector<float>& b, int64_t n, const float* bias) {
  std::vector<float> ref(static_cast<std::size_t>(a.n_rows * n), 0.0f);
  for (int32_t i = 0; i < a.n_rows; ++i) {
    for (int32_t e = a.indptr[i]; e < a.indptr[i + 1]; ++e) {
      for (int64_t j = 0; j < n; ++j) ref[i * n + j] += a.values[e] * b[a.indices[e] * n + j];
    }
    if (bias != nullptr) {
      for (int64_t j = 0; j < n; ++j) ref[i * n + j] += bias[j];
    }
  }
  return ref;
}

// The blocked SpMM and GEMM loops (of the variant the backend dispatched to)
// against plain ones that sum in the same order (float for SpMM, double for
// GEMM; a's zeros add nothing in aᵀ·b): bit for bit, at widths on both sides
// of the 16-column blocks, with a transposed b, with a bias, and at sizes
// that take the parallel path, on one thread and on two.
TEST_F(CpuOps, SpmmMatchesPlainLoopsBitForBit) {
  struct Case {
    int32_t rows, cols;
    double density;
    int64_t n;
  };
  const Case cases[] = {{37, 23, 0.15, 1},  {37, 23, 0.15, 3},  {37, 23, 0.15, 7},  {37, 23, 0.15, 8},
                        {37, 23, 0.15, 15}, {37, 23, 0.15, 16}, {37, 23, 0.15, 17}, {37, 23, 0.15, 40},
                        {1, 1, 1.0, 5},     {3000, 900, 0.045, 17}};  // the last: parallel
  for (const Case& cs : cases) {
    const CsrMatrix a = test::random_csr(cs.rows, cs.cols, cs.density, 5, 7);
    std::vector<float> b = test::random_floats(static_cast<std::size_t>(cs.cols * cs.n), 8, -2.0f, 2.0f);
    std::vector<float> bias = test::random_floats(static_cast<std::size_t>(cs.n), 9, -2.0f, 2.0f);
    for (const bool with_bias : {false, true}) {
      const std::vector<float> ref = plain_spmm(a, b, cs.n, with_bias ? bias.data() : nullptr);
      for (int threads : {1, 2}) {
        auto cpu = make_cpu_backend(threads);
        auto dev = cpu->upload_csr(a);
        std::vector<float> c(ref.size(), 99.0f);
        cpu->spmm(*dev, mat(b, cs.cols, cs.n), mat(c, cs.rows, cs.n), with_bias ? bias.data() : nullptr);
        ASSERT_TRUE(same_bits(c, ref, cs.n)) << cs.rows << "x" << cs.cols << " times n=" << cs.n << ", " << threads
                                             << " threads, bias " << with_bias;
      }
    }
  }
}

// c = op(a)·op(b) by plain loops in double in p order; a's zeros skipped when
// a is transposed (the backend's aᵀ·b skips them).
std::vector<float> plain_gemm(const std::vector<float>& a, bool ta, const std::vector<float>& b, bool tb, int64_t m,
                              int64_t n, int64_t k) {
  auto op_a = [&](int64_t i, int64_t p) { return ta ? a[p * m + i] : a[i * k + p]; };
  auto op_b = [&](int64_t p, int64_t j) { return tb ? b[j * k + p] : b[p * n + j]; };
  std::vector<float> ref(static_cast<std::size_t>(m * n));
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      double sum = 0.0;
      for (int64_t p = 0; p < k; ++p) {
        if (ta && op_a(i, p) == 0.0f) continue;
        sum += static_cast<double>(op_a(i, p)) * op_b(p, j);
      }
      ref[i * n + j] = static_cast<float>(sum);
    }
  }
  return ref;
}

TEST_F(CpuOps, GemmMatchesPlainLoopsBitForBit) {
  struct Case {
    int64_t m, n, k;
  };
  // k > 4096 in aᵀ·b spans several of its fixed row chunks; the large ones run in parallel.
  const Case cases[] = {{1, 1, 1},   {5, 7, 16},   {19, 16, 7},  {19, 3, 4},       {11, 17, 9},
                        {13, 40, 5}, {6, 33, 700}, {5000, 17, 16}, {16, 7, 9000}, {40, 23, 2000}};
  for (const Case& cs : cases) {
    for (int ta = 0; ta < 2; ++ta) {
      for (int tb = 0; tb < 2; ++tb) {
        // op(a) (m, k), op(b) (k, n); half of a zero, as after a ReLU.
        std::vector<float> a = half_zero_matrix(cs.m, cs.k, 11);
        std::vector<float> b = test::random_floats(static_cast<std::size_t>(cs.k * cs.n), 12, -2.0f, 2.0f);
        const std::vector<float> ref = plain_gemm(a, ta, b, tb, cs.m, cs.n, cs.k);
        const MatRef a_ref = ta ? mat(a, cs.k, cs.m) : mat(a, cs.m, cs.k);
        const MatRef b_ref = tb ? mat(b, cs.n, cs.k) : mat(b, cs.k, cs.n);
        for (int threads : {1, 2}) {
          auto cpu = make_cpu_backend(threads);
          std::vector<float> c(ref.size(), 99.0f);
          cpu->gemm(a_ref, ta, b_ref, tb, mat(c, cs.m, cs.n));
          const std::string where = ::testing::PrintToString(std::vector<int64_t>{cs.m, cs.n, cs.k, ta, tb, threads});
          if (!ta || cs.k <= 4096) {
            ASSERT_TRUE(same_bits(c, ref, cs.n)) << "m, n, k, trans_a, trans_b, threads = " << where;
          } else {
            // Chunks of rows summed apart, then in chunk order: the double
            // sum differs in its last bits, the float result by an ulp at most.
            for (std::size_t idx = 0; idx < ref.size(); ++idx) {
              ASSERT_LE(std::fabs(c[idx] - ref[idx]),
                        std::nextafter(std::fabs(ref[idx]), INFINITY) - std::fabs(ref[idx]))
                  << "entry " << idx << ", m, n, k, trans_a, trans_b, threads = " << where;
            }
          }
        }
      }
    }
  }
}

TEST_F(CpuOps, ColumnSum) {
  std::vector<float> x = {11, 22, 33, 14, 25, 36};
  std::vector<float> sum(3, kNaN);
  be->column_sum(mat(x, 2, 3), sum.data());
  EXPECT_THAT(sum, ::testing::ElementsAre(25, 47, 69));
  // Summed in double, rounded once: 1 + 2^-24 + 2^-24 is 1 + 2^-23 (float left to right would give 1).
  std::vector<float> fine = {1.0f, 0x1p-24f, 0x1p-24f};
  be->column_sum(mat(fine, 3, 1), sum.data());
  EXPECT_EQ(sum[0], 1.0f + 0x1p-23f);
  // No rows: zeros.
  std::fill(sum.begin(), sum.end(), kNaN);
  be->column_sum({nullptr, 0, 3}, sum.data());
  EXPECT_THAT(sum, ::testing::Each(0.0f));
}

TEST_F(CpuOps, ReluDropout) {
  std::vector<float> x = {-1, 2, 0, 3};
  std::vector<float> y(4);
  be->relu_dropout_forward(mat(x, 2, 2), mat(y, 2, 2), 0.0f, nullptr);  // p = 0 needs no step state
  EXPECT_THAT(y, ::testing::ElementsAre(0, 2, 0, 3));
  std::vector<float> dy = {5, 6, 7, 8}, dx(4), sums(2, kNaN);
  be->relu_dropout_backward(mat(dy, 2, 2), mat(y, 2, 2), mat(dx, 2, 2), 0.0f, sums.data());
  EXPECT_THAT(dx, ::testing::ElementsAre(0, 6, 0, 8));
  EXPECT_THAT(sums, ::testing::ElementsAre(0, 14));

  // p = 0.5 on positive inputs: about half kept, kept ones doubled, the mask
  // dropout_keep(seed, epoch + 1, i) read from the step state: the same for
  // the same (seed, epoch), different for another epoch or seed.
  const int n = 100000;
  StepRing s3(*be, step_at(2, 42)), s3b(*be, step_at(2, 42)), s4(*be, step_at(3, 42)), seed43(*be, step_at(2, 43));
  std::vector<float> ones(n, 1.0f), a(n), b(n), other(n), reseeded(n);
  be->relu_dropout_forward(mat(ones, 1, n), mat(a, 1, n), 0.5f, s3.state());
  be->relu_dropout_forward(mat(ones, 1, n), mat(b, 1, n), 0.5f, s3b.state());
  be->relu_dropout_forward(mat(ones, 1, n), mat(other, 1, n), 0.5f, s4.state());
  be->relu_dropout_forward(mat(ones, 1, n), mat(reseeded, 1, n), 0.5f, seed43.state());
  EXPECT_EQ(a, b);
  EXPECT_NE(a, other);
  EXPECT_NE(a, reseeded);
  int kept = 0;
  for (int i = 0; i < n; ++i) {
    ASSERT_TRUE(a[i] == 0.0f || a[i] == 2.0f);
    kept += a[i] == 2.0f;
    ASSERT_EQ(a[i] == 2.0f, dropout_keep(42, 3, i, 0.5f)) << i;
    ASSERT_EQ(other[i] == 2.0f, dropout_keep(42, 4, i, 0.5f)) << i;
  }
  EXPECT_NEAR(kept / static_cast<double>(n), 0.5, 0.01);
  EXPECT_TRUE(test::same_bytes(s3.get(), step_at(2, 42)));  // the forward reads the state, never writes it
  std::vector<float> g(n, 1.0f), dg(n);
  be->relu_dropout_backward(mat(g, 1, n), mat(a, 1, n), mat(dg, 1, n), 0.5f);
  for (int i = 0; i < n; ++i) ASSERT_EQ(dg[i], a[i]);  // 1 * 2 where kept, else 0

  // NaN, -0, -inf and +inf inputs: ReLU gives 0, 0, 0 and inf; p = 0.
  std::vector<float> odd = {kNaN, -0.0f, -kInf, kInf}, out(4, 7.0f);
  be->relu_dropout_forward(mat(odd, 1, 4), mat(out, 1, 4), 0.0f, nullptr);
  EXPECT_THAT(out, ::testing::ElementsAre(0.0f, 0.0f, 0.0f, kInf));
  EXPECT_FALSE(std::signbit(out[1]));
}

// The column sums of the backward are column_sum(dx), bit for bit, with the
// gradient in place (dx = dy) too.
TEST_F(CpuOps, ReluDropoutBackwardColumnSums) {
  for (const auto& [rows, cols] : std::vector<std::pair<int64_t, int64_t>>{{1, 1}, {37, 16}, {301, 7}, {5, 33}}) {
    const std::vector<float> x = test::random_floats(rows * cols, 5, -1.0f, 1.0f);
    std::vector<float> y(rows * cols), dy = test::random_floats(rows * cols, 6, -3.0f, 3.0f), dx(rows * cols, kNaN);
    StepRing sr(*be, step_at(4, 17));
    std::vector<float> xc = x;
    be->relu_dropout_forward(mat(xc, rows, cols), mat(y, rows, cols), 0.3f, sr.state());
    std::vector<float> sums(cols, kNaN), ref(cols, kNaN);
    be->relu_dropout_backward(mat(dy, rows, cols), mat(y, rows, cols), mat(dx, rows, cols), 0.3f, sums.data());
    const float scale = 1.0f / (1.0f - 0.3f);
    for (int64_t i = 0; i < rows * cols; ++i) ASSERT_EQ(dx[i], y[i] > 0.0f ? dy[i] * scale : 0.0f) << i;
    be->column_sum(mat(dx, rows, cols), ref.data());
    EXPECT_TRUE(same_bits(sums, ref)) << rows << "x" << cols;
    // In place: the same bits.
    std::vector<float> inplace = dy, sums2(cols, kNaN);
    be->relu_dropout_backward(mat(inplace, rows, cols), mat(y, rows, cols), mat(inplace, rows, cols), 0.3f,
                              sums2.data());
    EXPECT_TRUE(same_bits(inplace, dx)) << rows << "x" << cols;
    EXPECT_TRUE(same_bits(sums2, sums)) << rows << "x" << cols;
  }
}

// Three steps of torch.optim.Adam(lr=0.1, weight_decay=0.01), values printed
// by PyTorch 1.13; step k read from the step state (epoch = k - 1).
TEST_F(CpuOps, AdamMatchesPyTorch) {
  std::vector<float> p = {1.0f, -2.0f, 0.0f, 3.0f}, m(4, 0.0f), v(4, 0.0f);
  const std::vector<std::vector<float>> grads = {
      {0.5f, -0.25f, 0.0f, 2.0f}, {0.5f, 0.75f, -1.0f, -2.0f}, {-0.1f, 0.2f, 0.3f, 0.4f}};
  const std::vector<std::vector<float>> expected = {{0.900000036f, -1.89999998f, 0.0f, 2.9000001f},
                                                    {0.800005198f, -1.9466027f, 0.0744136795f, 2.90378833f},
                                                    {0.73142904f, -1.99612153f, 0.111089796f, 2.89709926f}};
  AdamConfig cfg;
  cfg.lr = 0.1f;
  cfg.weight_decay = 0.01f;
  StepRing sr(*be, step_at(0));
  for (int step = 1; step <= 3; ++step) {
    sr.set(step_at(step - 1));
    be->adam_step(p.data(), grads[step - 1].data(), m.data(), v.data(), 4, cfg, sr.state());
    for (int i = 0; i < 4; ++i) EXPECT_NEAR(p[i], expected[step - 1][i], 2e-7) << "step " << step << " i " << i;
    EXPECT_EQ(sr.get().epoch, step - 1);  // Adam reads the step, never advances it
  }
  // Stopped: parameters and moments unchanged.
  StepState stopped = step_at(3);
  stopped.stopped = 1;
  sr.set(stopped);
  const std::vector<float> p0 = p, m0 = m, v0 = v;
  be->adam_step(p.data(), grads[0].data(), m.data(), v.data(), 4, cfg, sr.state());
  EXPECT_TRUE(same_bits(p, p0));
  EXPECT_TRUE(same_bits(m, m0));
  EXPECT_TRUE(same_bits(v, v0));
  // The step changes the bias corrections: step 1 and step 10 from the same state differ.
  std::vector<float> p1 = p0, m1 = m0, v1 = v0, p10 = p0, m10 = m0, v10 = v0;
  sr.set(step_at(0));
  be->adam_step(p1.data(), grads[0].data(), m1.data(), v1.data(), 4, cfg, sr.state());
  sr.set(step_at(9));
  be->adam_step(p10.data(), grads[0].data(), m10.data(), v10.data(), 4, cfg, sr.state());
  EXPECT_TRUE(same_bits(m1, m10));  // the moments do not depend on the step
  EXPECT_NE(p1, p10);
}

TEST_F(CpuOps, CopyIfImproved) {
  std::vector<float> src = {1, 2, 3, 4, 5}, dst(5, -1.0f);
  StepState s = step_at(3);
  s.improved = 0;
  StepRing sr(*be, s);
  be->copy_if_improved(dst.data(), src.data(), 5 * sizeof(float), sr.state());
  EXPECT_THAT(dst, ::testing::Each(-1.0f));
  s.improved = 1;
  sr.set(s);
  be->copy_if_improved(dst.data(), src.data(), 5 * sizeof(float), sr.state());
  EXPECT_EQ(dst, src);
  EXPECT_EQ(error_of([&] { be->copy_if_improved(dst.data(), src.data(), 4, nullptr); }),
            "copy_if_improved: no step state");
}

// Every check is in the shared front end (src/backend/backend.cpp): these messages
// are the CUDA backend's too (test_cuda_ops compares them).
TEST_F(CpuOps, ArgumentChecksNameTheOpAndTheProblem) {
  std::vector<float> x(12, 1.0f), y(12), g(12);
  std::vector<int32_t> labels(4, 0);
  std::vector<uint8_t> split(4, kTrainBit);
  StepRing sr(*be, step_at(0));
  CsrMatrix a;
  a.n_rows = 3;
  a.n_cols = 3;
  a.indptr = {0, 1, 2, 3};
  a.indices = {0, 1, 2};
  a.values = {1, 1, 1};
  auto dev = be->upload_csr(a);
  EXPECT_EQ(error_of([&] { be->relu_dropout_forward(mat(x, 4, 3), mat(y, 4, 3), 1.0f, sr.state()); }),
            "relu_dropout_forward: p = 1 outside [0, 1)");
  EXPECT_EQ(error_of([&] { be->relu_dropout_forward(mat(x, 4, 3), mat(y, 4, 3), -0.5f, sr.state()); }),
            "relu_dropout_forward: p = -0.5 outside [0, 1)");
  EXPECT_EQ(error_of([&] { be->relu_dropout_forward(mat(x, 4, 3), mat(x, 4, 3), 0.5f, sr.state()); }),
            "relu_dropout_forward: the output aliases the input");
  EXPECT_EQ(error_of([&] { be->relu_dropout_forward(mat(x, 4, 3), mat(y, 3, 4), 0.5f, sr.state()); }),
            "relu_dropout_forward: (4, 3) -> (3, 4)");
  EXPECT_EQ(error_of([&] { be->relu_dropout_forward(mat(x, 4, 3), mat(y, 4, 3), 0.5f, nullptr); }),
            "relu_dropout_forward: dropout without a step state");
  EXPECT_EQ(error_of([&] { be->relu_dropout_backward(mat(x, 4, 3), mat(y, 4, 3), mat(g, 4, 3), 1.0f); }),
            "relu_dropout_backward: p = 1 outside [0, 1)");
  EXPECT_EQ(error_of([&] { be->relu_dropout_backward(mat(x, 4, 3), mat(y, 4, 3), mat(g, 3, 3), 0.5f); }),
            "relu_dropout_backward: (4, 3), (4, 3) -> (3, 3)");
  EXPECT_EQ(error_of([&] {
              be->classifier_loss(mat(x, 4, 3), labels.data(), split.data(), kTrainBit, 5, mat(g, 4, 3), nullptr,
                                  sr.state(), sr.ring());
            }),
            "classifier_loss: n_masked = 5 for 4 rows");
  EXPECT_EQ(error_of([&] {
              be->classifier_loss(mat(x, 4, 3), labels.data(), split.data(), kTrainBit, -1, mat(g, 4, 3), nullptr,
                                  sr.state(), sr.ring());
            }),
            "classifier_loss: n_masked = -1 for 4 rows");
  EXPECT_EQ(error_of([&] {
              be->classifier_loss(mat(x, 4, 3), labels.data(), split.data(), kTrainBit, 4, mat(g, 3, 4), nullptr,
                                  sr.state(), sr.ring());
            }),
            "classifier_loss: (4, 3) -> gradient (3, 4)");
  EXPECT_EQ(error_of([&] {
              be->classifier_loss(mat(x, 4, 3), labels.data(), split.data(), kTrainBit, 4, mat(x, 4, 3), nullptr,
                                  sr.state(), sr.ring());
            }),
            "classifier_loss: the gradient aliases the logits");
  EXPECT_EQ(error_of([&] {
              be->classifier_loss(mat(x, 4, 3), labels.data(), split.data(), kTrainBit, 4, MatRef{}, y.data(),
                                  sr.state(), sr.ring());
            }),
            "classifier_loss: a bias gradient needs the gradient");
  EXPECT_EQ(error_of([&] {
              be->classifier_loss(mat(x, 4, 3), labels.data(), split.data(), kTrainBit, 4, MatRef{}, nullptr,
                                  nullptr, sr.ring());
            }),
            "classifier_loss: no step state");
  EXPECT_EQ(error_of([&] {
              be->evaluate(mat(x, 4, 3), labels.data(), split.data(), 5, sr.state(), sr.ring(), true);
            }),
            "evaluate: n_val = 5 for 4 rows");
  EXPECT_EQ(error_of([&] {
              be->evaluate(mat(x, 4, 3), labels.data(), split.data(), 0, sr.state(), MetricsRing{}, true);
            }),
            "evaluate: a metrics ring of 0 slots");
  EXPECT_EQ(error_of([&] {
              be->evaluate(mat(x, 12, 0), labels.data(), split.data(), 0, sr.state(), sr.ring(), true);
            }),
            "evaluate: 0 classes");
  EXPECT_EQ(error_of([&] { be->spmm(*dev, mat(x, 4, 3), mat(y, 3, 3)); }), "spmm: shapes (3, 3) x (4, 3) -> (3, 3)");
  EXPECT_EQ(error_of([&] { be->spmm(*dev, mat(x, 3, 4), mat(x, 3, 4)); }),
            "spmm: the output aliases the dense operand");
  EXPECT_EQ(error_of([&] { be->adam_step(x.data(), g.data(), y.data(), y.data(), -1, AdamConfig{}, sr.state()); }),
            "adam_step: n = -1");
  EXPECT_EQ(error_of([&] { be->adam_step(x.data(), g.data(), y.data(), y.data(), 4, AdamConfig{}, nullptr); }),
            "adam_step: no step state");
  const OutputInit nine[9] = {};
  EXPECT_EQ(error_of([&] { be->prepare_outputs(nine, 9); }), "prepare_outputs: 9 outputs (at most 8)");
  // A failed check changed nothing.
  EXPECT_THAT(y, ::testing::Each(0.0f));
  EXPECT_TRUE(test::same_bytes(sr.get(), step_at(0)));
}

// ---- the kernel variants ---------------------------------------------------

TEST(CpuKernels, TheBaselineComesFirstAndTheDispatchedOneIsAvailable) {
  const std::vector<const cpu::CpuKernels*> all = cpu::available_cpu_kernels();
  ASSERT_FALSE(all.empty());
  EXPECT_EQ(all[0], &cpu::kernels_baseline());
  EXPECT_STREQ(all[0]->isa, "baseline");
  std::set<std::string> names;
  for (const cpu::CpuKernels* k : all) names.insert(k->isa);
  EXPECT_EQ(names.size(), all.size());
  EXPECT_NE(std::find(all.begin(), all.end(), &cpu::cpu_kernels()), all.end());
  const std::string d = make_cpu_backend(1)->describe();
  EXPECT_NE(d.find(cpu::cpu_kernels().isa), std::string::npos) << d;
  std::string listed;
  for (const cpu::CpuKernels* k : all) listed += std::string(k->isa) + " ";
  std::cout << "[          ] CPU kernel variants on this machine: " << listed << "\n";
}

// Which special values awkward inputs hold besides zeros of both signs. A
// NaN arithmetic makes (inf * 0, inf - inf: x86's default NaN, sign bit set)
// meeting an input NaN (sign bit clear) gives either one depending on the
// operand order the compiler picked, so only inputs with both kinds compare
// their NaNs by position rather than by bits.
enum class Specials { kNone, kNan, kInf, kBoth };
const Specials kAllSpecials[] = {Specials::kNone, Specials::kNan, Specials::kInf, Specials::kBoth};
const char* name_of(Specials s) {
  switch (s) {
    case Specials::kNone: return "zeros only";
    case Specials::kNan: return "NaN";
    case Specials::kInf: return "inf";
    case Specials::kBoth: return "NaN and inf";
  }
  return "?";
}

// Random floats in [-2, 2] with about a quarter zeros (of either sign) and,
// as asked, a few NaN, inf, -inf: the zero-skip and the special values in
// every lane position.
std::vector<float> awkward_floats(std::size_t n, uint32_t seed, Specials specials = Specials::kBoth) {
  std::vector<float> v = test::random_floats(n, seed, -2.0f, 2.0f);
  std::mt19937 gen(seed * 7 + 1);
  const bool nan = specials == Specials::kNan || specials == Specials::kBoth;
  const bool inf = specials == Specials::kInf || specials == Specials::kBoth;
  for (float& x : v) {
    const uint32_t r = gen() % 64;
    if (r < 8) x = 0.0f;
    else if (r < 16) x = -0.0f;
    else if (nan && r == 16) x = kNaN;
    else if (inf && r == 17) x = kInf;
    else if (inf && r == 18) x = -kInf;
  }
  return v;
}

// Every NaN made the same NaN (for inputs with both kinds of NaN, above).
template <class T>
std::vector<T> one_nan(std::vector<T> v) {
  for (T& x : v) {
    if (std::isnan(x)) x = std::numeric_limits<T>::quiet_NaN();
  }
  return v;
}
// The same bits, NaNs compared by position only when the inputs held both kinds.
template <class T>
::testing::AssertionResult variant_bits(const std::vector<T>& got, const std::vector<T>& ref, int64_t cols,
                                        Specials specials) {
  if (specials == Specials::kBoth) return same_bits(one_nan(got), one_nan(ref), cols);
  return same_bits(got, ref, cols);
}

// A CSR matrix whose rows hold 0..max_len entries, values with zeros (and the
// special values asked for; the backend's upload refuses them, the kernels
// take them).
CsrMatrix awkward_csr(int32_t rows, int32_t cols, uint32_t seed, Specials specials, int32_t max_len = 8) {
  std::mt19937 gen(seed);
  CsrMatrix m;
  m.n_rows = rows;
  m.n_cols = cols;
  m.indptr.push_back(0);
  for (int32_t i = 0; i < rows; ++i) {
    const int32_t count = static_cast<int32_t>(gen() % static_cast<uint32_t>(max_len + 1));
    std::vector<int32_t> idx(count);
    for (auto& j : idx) j = static_cast<int32_t>(gen() % cols);
    std::sort(idx.begin(), idx.end());
    const std::vector<float> vals = awkward_floats(idx.size(), seed + 100 + static_cast<uint32_t>(i), specials);
    m.indices.insert(m.indices.end(), idx.begin(), idx.end());
    m.values.insert(m.values.end(), vals.begin(), vals.end());
    m.indptr.push_back(static_cast<int32_t>(m.indices.size()));
  }
  return m;
}

std::string isa_of(const cpu::CpuKernels* k) { return std::string("variant ") + k->isa; }

// rows_by_length: the rows by number of entries, longest first, ties by index.
TEST(CpuKernels, RowsByLengthLongestFirstTiesByIndex) {
  // Row lengths 2, 0, 3, 2, 3, 1.
  const std::vector<int32_t> indptr = {0, 2, 2, 5, 7, 10, 11};
  EXPECT_THAT(cpu::rows_by_length(indptr), ::testing::ElementsAre(2, 4, 0, 3, 5, 1));
  EXPECT_TRUE(cpu::rows_by_length({0}).empty());
}

// Every variant against the baseline, bit for bit: SpMM (1..37 columns, with
// and without bias, rows of 0..8 and of up to 40 entries taken four at a
// time in length order, a range of the order that starts past 0 and is not
// a multiple of four), zeros of both signs, NaN and inf in a, b and the bias.
TEST(CpuKernels, SpmmVariantsGiveTheBaselinesBits) {
  const cpu::CpuKernels& base = cpu::kernels_baseline();
  for (const Specials sp : kAllSpecials) {
    for (const int32_t max_len : {8, 40}) {
      const CsrMatrix a = awkward_csr(45, 29, 1, sp, max_len);
      const std::vector<int32_t> order = cpu::rows_by_length(a.indptr);
      for (int64_t n = 1; n <= 37; ++n) {
        const std::vector<float> b = awkward_floats(static_cast<std::size_t>(a.n_cols * n), 2 + n, sp);
        const std::vector<float> bias = awkward_floats(static_cast<std::size_t>(n), 3 + n, sp);
        for (const bool with_bias : {false, true}) {
          for (const auto& [g0, g1] : std::vector<std::pair<int64_t, int64_t>>{{0, 45}, {3, 40}}) {
            std::vector<float> ref(static_cast<std::size_t>(45 * n), 99.0f);
            base.spmm(a.indptr.data(), a.indices.data(), a.values.data(), order.data(), b.data(), n,
                      with_bias ? bias.data() : nullptr, ref.data(), g0, g1);
            for (int64_t g = 0; g < 45; ++g) {  // only the rows order[g0..g1) are written
              if (g >= g0 && g < g1) continue;
              for (int64_t j = 0; j < n; ++j) ASSERT_EQ(ref[order[g] * n + j], 99.0f) << "row " << order[g];
            }
            for (const cpu::CpuKernels* k : cpu::available_cpu_kernels()) {
              std::vector<float> c(ref.size(), 99.0f);
              k->spmm(a.indptr.data(), a.indices.data(), a.values.data(), order.data(), b.data(), n,
                      with_bias ? bias.data() : nullptr, c.data(), g0, g1);
              ASSERT_TRUE(variant_bits(c, ref, n, sp))
                  << isa_of(k) << ", " << name_of(sp) << ", rows up to " << max_len << ", n=" << n << ", bias "
                  << with_bias << ", order [" << g0 << ", " << g1 << ")";
            }
          }
        }
      }
    }
  }
}

// gemm_nn (a not transposed) with row strides past the row length, row
// counts off multiples of 4 and a row range that starts past 0.
TEST(CpuKernels, GemmNnVariantsGiveTheBaselinesBits) {
  const cpu::CpuKernels& base = cpu::kernels_baseline();
  for (const Specials sp : kAllSpecials) {
    for (const int64_t m : {1, 3, 7, 13}) {
      for (const int64_t k : {1, 2, 9, 33}) {
        for (int64_t n = 1; n <= 37; ++n) {
          const int64_t lda = k + 3, ldb = n + 5;
          const std::vector<float> a =
              awkward_floats(static_cast<std::size_t>(m * lda), static_cast<uint32_t>(m * 100 + k), sp);
          const std::vector<float> b =
              awkward_floats(static_cast<std::size_t>(k * ldb), static_cast<uint32_t>(k * 100 + n), sp);
          for (const int64_t r0 : {int64_t{0}, m / 2}) {
            std::vector<float> ref(static_cast<std::size_t>(m * n), 99.0f);
            base.gemm_nn(a.data(), lda, b.data(), ldb, k, n, ref.data(), n, r0, m);
            for (const cpu::CpuKernels* kv : cpu::available_cpu_kernels()) {
              std::vector<float> c(ref.size(), 99.0f);
              kv->gemm_nn(a.data(), lda, b.data(), ldb, k, n, c.data(), n, r0, m);
              ASSERT_TRUE(variant_bits(c, ref, n, sp))
                  << isa_of(kv) << ", " << name_of(sp) << ", m=" << m << " k=" << k << " n=" << n << " r0=" << r0;
            }
          }
        }
      }
    }
  }
}

// gemm_tn (a transposed: the weight gradient's reduction over rows) with m
// off multiples of 8, zeros of both signs in a (skipped), a range [p0, p1) of
// a's rows that starts past 0, and output rows [r0, r1) that start past 0
// (rows outside the range not written).
TEST(CpuKernels, GemmTnVariantsGiveTheBaselinesBits) {
  const cpu::CpuKernels& base = cpu::kernels_baseline();
  for (const Specials sp : kAllSpecials) {
    for (const int64_t m : {1, 5, 8, 11, 17}) {
      for (const int64_t k : {1, 7, 30}) {
        for (int64_t n = 1; n <= 37; ++n) {
          const int64_t ldb = n + 2;
          const std::vector<float> a =
              awkward_floats(static_cast<std::size_t>(k * m), static_cast<uint32_t>(m * 1000 + k), sp);
          const std::vector<float> b =
              awkward_floats(static_cast<std::size_t>(k * ldb), static_cast<uint32_t>(k * 1000 + n), sp);
          for (const int64_t p0 : {int64_t{0}, k / 3}) {
            for (const auto& [r0, r1] : std::vector<std::pair<int64_t, int64_t>>{{0, m}, {m / 3, m - m / 4}}) {
              std::vector<double> ref(static_cast<std::size_t>(m * n), 99.0);
              base.gemm_tn(a.data(), m, m, b.data(), ldb, n, p0, k, r0, r1, ref.data(), false);
              for (int64_t i = 0; i < m * n; ++i) {
                if (i / n < r0 || i / n >= r1) ASSERT_EQ(ref[i], 99.0) << "row " << i / n << " outside the range";
              }
              for (const cpu::CpuKernels* kv : cpu::available_cpu_kernels()) {
                std::vector<double> acc(ref.size(), 99.0);
                kv->gemm_tn(a.data(), m, m, b.data(), ldb, n, p0, k, r0, r1, acc.data(), false);
                ASSERT_TRUE(variant_bits(acc, ref, n, sp)) << isa_of(kv) << ", " << name_of(sp) << ", m=" << m
                                                           << " k=" << k << " n=" << n << " p0=" << p0 << " rows ["
                                                           << r0 << ", " << r1 << ")";
                // The same range in two pieces, the second continuing the
                // first's sums (accumulate): the same bits.
                const int64_t mid = p0 + (k - p0) / 2;
                std::vector<double> pieces(ref.size(), 99.0);
                kv->gemm_tn(a.data(), m, m, b.data(), ldb, n, p0, mid, r0, r1, pieces.data(), false);
                kv->gemm_tn(a.data(), m, m, b.data(), ldb, n, mid, k, r0, r1, pieces.data(), true);
                ASSERT_TRUE(variant_bits(pieces, ref, n, sp)) << isa_of(kv) << " in pieces, m=" << m << " k=" << k
                                                              << " n=" << n;
              }
            }
          }
        }
      }
    }
  }
}

TEST(CpuKernels, ReluDropoutAndAdamVariantsGiveTheBaselinesBits) {
  const cpu::CpuKernels& base = cpu::kernels_baseline();
  for (const Specials sp : kAllSpecials) {
    for (const int64_t n : {int64_t{1}, int64_t{7}, int64_t{37}, int64_t{1001}}) {
      const std::vector<float> x = awkward_floats(static_cast<std::size_t>(n), static_cast<uint32_t>(n), sp);
      const std::vector<float> dy = awkward_floats(static_cast<std::size_t>(n), static_cast<uint32_t>(n + 1), sp);
      for (const float p : {0.0f, 0.3f, 0.5f}) {
        const bool drop = p > 0.0f;
        const float scale = 1.0f / (1.0f - p);
        const uint64_t key = stream_key(12345, 7);
        std::vector<float> y_ref(x.size(), 9.0f), dx_ref(x.size(), 9.0f);
        base.relu_dropout_forward(x.data(), y_ref.data(), n, n, 0, 1, drop, p, scale, key);
        base.relu_dropout_backward(dy.data(), y_ref.data(), dx_ref.data(), n, n, 0, 1, scale);
        // The baseline against the definition: ReLU, then kept (and scaled)
        // where dropout_keep holds, else 0.
        for (int64_t i = 0; i < n; ++i) {
          const float relu = x[i] > 0.0f ? x[i] : 0.0f;
          if (!drop || dropout_keep(12345, 7, static_cast<uint64_t>(i), p)) {
            ASSERT_EQ(y_ref[i], relu * scale) << i;
          } else if (std::isfinite(relu)) {
            ASSERT_EQ(y_ref[i], 0.0f) << i;
          }
          ASSERT_EQ(std::isnan(dx_ref[i]), y_ref[i] > 0.0f && std::isnan(dy[i])) << i;
        }
        for (const cpu::CpuKernels* k : cpu::available_cpu_kernels()) {
          std::vector<float> y(x.size(), 9.0f), dx(x.size(), 9.0f);
          k->relu_dropout_forward(x.data(), y.data(), n, n, 0, 1, drop, p, scale, key);
          k->relu_dropout_backward(dy.data(), y_ref.data(), dx.data(), n, n, 0, 1, scale);
          ASSERT_TRUE(variant_bits(y, y_ref, 0, sp)) << isa_of(k) << ", " << name_of(sp) << " forward, n=" << n
                                                     << " p=" << p;
          ASSERT_TRUE(variant_bits(dx, dx_ref, 0, sp)) << isa_of(k) << ", " << name_of(sp) << " backward, n=" << n
                                                       << " p=" << p;
          // A sub-range writes only its elements, the same bits.
          if (n > 4) {
            std::vector<float> part(x.size(), 9.0f);
            k->relu_dropout_forward(x.data(), part.data(), 1, 1, 2, n - 1, drop, p, scale, key);  // n rows of 1
            std::vector<float> want = y_ref;
            want[0] = want[1] = want[n - 1] = 9.0f;
            ASSERT_TRUE(variant_bits(part, want, 0, sp)) << isa_of(k) << ", " << name_of(sp) << " range, n=" << n;
          }
        }
      }
      // Adam: four steps, every variant on its own copy of the state.
      std::vector<float> p_ref = awkward_floats(static_cast<std::size_t>(n), 50 + static_cast<uint32_t>(n), sp);
      std::vector<float> m_ref(p_ref.size(), 0.0f), v_ref(p_ref.size(), 0.0f);
      const std::vector<const cpu::CpuKernels*> all = cpu::available_cpu_kernels();
      std::vector<std::vector<float>> ps(all.size(), p_ref), ms(all.size(), m_ref), vs(all.size(), v_ref);
      for (int step = 1; step <= 4; ++step) {
        const std::vector<float> g = awkward_floats(static_cast<std::size_t>(n), 60 + step, sp);
        cpu::AdamScalars s{};
        s.beta1 = 0.9f;
        s.beta2 = 0.999f;
        s.one_minus_b1 = 1.0f - s.beta1;
        s.one_minus_b2 = 1.0f - s.beta2;
        s.eps = 1e-8f;
        s.weight_decay = 5e-4f;
        s.step_size = static_cast<float>(0.01 / (1.0 - std::pow(0.9, step)));
        s.bc2_sqrt = static_cast<float>(std::sqrt(1.0 - std::pow(0.999, step)));
        base.adam(p_ref.data(), g.data(), m_ref.data(), v_ref.data(), 0, n, s);
        for (std::size_t i = 0; i < all.size(); ++i) {
          all[i]->adam(ps[i].data(), g.data(), ms[i].data(), vs[i].data(), 0, n, s);
          ASSERT_TRUE(variant_bits(ps[i], p_ref, 0, sp)) << isa_of(all[i]) << ", " << name_of(sp)
                                                         << " adam params, n=" << n << " step " << step;
          ASSERT_TRUE(variant_bits(ms[i], m_ref, 0, sp)) << isa_of(all[i]) << ", " << name_of(sp)
                                                         << " adam m, n=" << n << " step " << step;
          ASSERT_TRUE(variant_bits(vs[i], v_ref, 0, sp)) << isa_of(all[i]) << ", " << name_of(sp)
                                                         << " adam v, n=" << n << " step " << step;
        }
      }
      if (sp == Specials::kNone) {
        for (float v : p_ref) ASSERT_TRUE(std::isfinite(v));
      }
    }
  }
}

// The plain-loop tests above run through the backend, i.e. the dispatched
// variant; these hold every variant to the same plain loops, calling its
// table the way the backend does.
TEST(CpuKernels, EveryVariantMatchesPlainLoopsBitForBit) {
  for (const cpu::CpuKernels* k : cpu::available_cpu_kernels()) {
    // SpMM, 1..40 columns, with and without bias.
    const CsrMatrix a = test::random_csr(37, 23, 0.15, 5, 7);
    for (const int64_t n : {1, 3, 7, 8, 15, 16, 17, 33, 40}) {
      std::vector<float> b = test::random_floats(static_cast<std::size_t>(a.n_cols * n), 8, -2.0f, 2.0f);
      std::vector<float> bias = test::random_floats(static_cast<std::size_t>(n), 9, -2.0f, 2.0f);
      for (const bool with_bias : {false, true}) {
        const std::vector<float> ref = plain_spmm(a, b, n, with_bias ? bias.data() : nullptr);
        std::vector<float> c(ref.size(), 99.0f);
        const std::vector<int32_t> order = cpu::rows_by_length(a.indptr);
        k->spmm(a.indptr.data(), a.indices.data(), a.values.data(), order.data(), b.data(), n,
                with_bias ? bias.data() : nullptr, c.data(), 0, a.n_rows);
        ASSERT_TRUE(same_bits(c, ref, n)) << isa_of(k) << " spmm n=" << n << " bias " << with_bias;
      }
    }
    // GEMM, all transposes, as the backend composes it: bᵀ copied to rows;
    // a not transposed: gemm_nn; a transposed: gemm_tn into doubles, then float.
    struct Case {
      int64_t m, n, k;
    };
    for (const Case cs : {Case{1, 1, 1}, Case{5, 7, 16}, Case{19, 16, 7}, Case{19, 3, 4}, Case{11, 17, 9},
                          Case{13, 40, 5}, Case{6, 33, 700}, Case{9, 37, 31}}) {
      for (int ta = 0; ta < 2; ++ta) {
        for (int tb = 0; tb < 2; ++tb) {
          const std::vector<float> a_m = half_zero_matrix(cs.m, cs.k, 11);
          const std::vector<float> b_m = test::random_floats(static_cast<std::size_t>(cs.k * cs.n), 12, -2.0f, 2.0f);
          const std::vector<float> ref = plain_gemm(a_m, ta, b_m, tb, cs.m, cs.n, cs.k);
          std::vector<float> b_rows = b_m;  // op(b) as (k, n) rows
          if (tb) {
            for (int64_t p = 0; p < cs.k; ++p)
              for (int64_t j = 0; j < cs.n; ++j) b_rows[p * cs.n + j] = b_m[j * cs.k + p];
          }
          std::vector<float> c(ref.size(), 99.0f);
          if (!ta) {
            k->gemm_nn(a_m.data(), cs.k, b_rows.data(), cs.n, cs.k, cs.n, c.data(), cs.n, 0, cs.m);
          } else {
            std::vector<double> acc(ref.size(), 0.0);
            k->gemm_tn(a_m.data(), cs.m, cs.m, b_rows.data(), cs.n, cs.n, 0, cs.k, 0, cs.m, acc.data(), false);
            for (std::size_t i = 0; i < acc.size(); ++i) c[i] = static_cast<float>(acc[i]);
          }
          ASSERT_TRUE(same_bits(c, ref, cs.n)) << isa_of(k) << " gemm m=" << cs.m << " n=" << cs.n << " k=" << cs.k
                                               << " trans_a=" << ta << " trans_b=" << tb;
        }
      }
    }
  }
}

// Path 0 - 1 - 2 (both directions): degrees with self loops 2, 3, 2.
TEST(GcnNorm, PathGraphByHand) {
  const CsrMatrix a = gcn_norm(3, {0, 1, 1, 2}, {1, 0, 2, 1});
  EXPECT_THAT(a.indptr, ::testing::ElementsAre(0, 2, 5, 7));
  EXPECT_THAT(a.indices, ::testing::ElementsAre(0, 1, 0, 1, 2, 1, 2));
  const float s6 = 1.0f / std::sqrt(6.0f);
  const std::vector<float> expected = {0.5f, s6, s6, 1.0f / 3.0f, s6, s6, 0.5f};
  for (std::size_t i = 0; i < expected.size(); ++i) EXPECT_NEAR(a.values[i], expected[i], 1e-7) << i;
}

// One directed edge 0 -> 1: in-degrees (with loops) 1 and 2; row = target.
// An existing self loop and a duplicate edge behave as in PyG.
TEST(GcnNorm, DirectedSelfLoopsAndDuplicates) {
  const CsrMatrix a = gcn_norm(2, {0, 0, 1}, {1, 0, 1});
  EXPECT_THAT(a.indptr, ::testing::ElementsAre(0, 1, 3));
  EXPECT_THAT(a.indices, ::testing::ElementsAre(0, 0, 1));
  EXPECT_NEAR(a.values[0], 1.0f, 1e-7);
  EXPECT_NEAR(a.values[1], 1.0f / std::sqrt(2.0f), 1e-7);
  EXPECT_NEAR(a.values[2], 0.5f, 1e-7);

  const CsrMatrix d = gcn_norm(2, {0, 0}, {1, 1});  // edge 0 -> 1 twice: deg(1) = 3
  EXPECT_THAT(d.indices, ::testing::ElementsAre(0, 0, 1));
  EXPECT_NEAR(d.values[1], 2.0f / std::sqrt(3.0f), 1e-6);
  EXPECT_NEAR(d.values[2], 1.0f / 3.0f, 1e-7);
  EXPECT_THROW(gcn_norm(2, {0}, {2}), DataError);
}

// PyG's gcn_norm with edge_weight: weighted in-degrees (self loop
// included), deg(j)^-1/2 · w · deg(i)^-1/2, a given self loop's weight kept
// (add_remaining_self_loops), a zero degree giving zeros.
TEST(GcnNorm, WeightedByHand) {
  // 0 <-> 1 weight 2, 1 <-> 2 weight 0.5, 2 -> 2 weight 3; node 3: a self loop of weight 0, nothing else.
  const CsrMatrix a = gcn_norm(4, {0, 1, 1, 2, 2, 3}, {1, 0, 2, 1, 2, 3}, {2, 2, 0.5f, 0.5f, 3, 0});
  // Degrees: 0: 1 + 2 = 3; 1: 1 + 2 + 0.5 = 3.5; 2: 3 + 0.5 = 3.5; 3: 0.
  EXPECT_THAT(a.indptr, ::testing::ElementsAre(0, 2, 5, 7, 8));
  EXPECT_THAT(a.indices, ::testing::ElementsAre(0, 1, 0, 1, 2, 1, 2, 3));
  const double r = 1.0 / std::sqrt(3.0 * 3.5);
  const std::vector<double> expected = {1.0 / 3, 2 * r, 2 * r, 1.0 / 3.5, 0.5 / 3.5, 0.5 / 3.5, 3.0 / 3.5, 0.0};
  for (std::size_t i = 0; i < expected.size(); ++i) EXPECT_NEAR(a.values[i], expected[i], 1e-7) << i;
  // All ones: the unweighted matrix, bit for bit.
  const CsrMatrix u = gcn_norm(3, {0, 1, 1, 2}, {1, 0, 2, 1});
  const CsrMatrix w = gcn_norm(3, {0, 1, 1, 2}, {1, 0, 2, 1}, {1, 1, 1, 1});
  EXPECT_EQ(w.values, u.values);
  EXPECT_EQ(w.indices, u.indices);
  EXPECT_THROW(gcn_norm(3, {0, 1}, {1, 0}, {1}), DataError);
}

}  // namespace
}  // namespace gcn
