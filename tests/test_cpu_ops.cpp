// CPU backend ops against values computed by hand, by PyTorch (noted where),
// and against finite differences.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "gcn/backend.hpp"
#include "gcn/buffer.hpp"
#include "gcn/dataset.hpp"
#include "gcn/devices.hpp"
#include "gcn/error.hpp"
#include "gcn/graph.hpp"
#include "gcn/rng.hpp"
#include "test_random.hpp"

namespace gcn {
namespace {

class CpuOps : public ::testing::Test {
 protected:
  std::unique_ptr<Backend> be = make_cpu_backend(2);
  MatRef mat(std::vector<float>& v, int64_t rows, int64_t cols) { return {v.data(), rows, cols}; }
};

// The tutorial's example, with the true values (the tutorial prints wrong ones).
TEST_F(CpuOps, LogSoftmaxTutorialExample) {
  std::vector<float> x = {2.0f, 1.0f, 0.1f, 1.0f, 3.0f, 0.2f};
  std::vector<float> y(6);
  be->log_softmax(mat(x, 2, 3), mat(y, 2, 3));
  const std::vector<float> expected = {-0.4170f, -1.4170f, -2.3170f, -2.1791f, -0.1791f, -2.9791f};
  for (int i = 0; i < 6; ++i) EXPECT_NEAR(y[i], expected[i], 1e-4) << i;
}

TEST_F(CpuOps, ArgmaxTutorialExample) {
  std::vector<float> x = {0.1f, 2.3f, 0.4f, 1.2f, 0.8f, 3.5f, 0.6f, 0.7f, 0.2f};
  std::vector<int32_t> labels = {1, 0, 1};
  std::vector<uint8_t> split = {kTrainBit, static_cast<uint8_t>(kTrainBit | kTestBit), kValBit};
  std::vector<int32_t> pred(3), correct(3);
  be->argmax_correct(mat(x, 3, 3), labels.data(), split.data(), pred.data(), correct.data());
  EXPECT_THAT(pred, ::testing::ElementsAre(1, 2, 1));
  // row 0 correct (train), row 1 wrong, row 2 correct (val)
  EXPECT_THAT(correct, ::testing::ElementsAre(1, 1, 0));
}

TEST_F(CpuOps, ArgmaxTiesPickTheFirst) {
  std::vector<float> x = {1.0f, 5.0f, 5.0f, -1.0f, -1.0f, -1.0f};
  std::vector<int32_t> labels = {1, 0};
  std::vector<uint8_t> split = {kTrainBit, kTrainBit};
  std::vector<int32_t> pred(2), correct(3);
  be->argmax_correct(mat(x, 2, 3), labels.data(), split.data(), pred.data(), correct.data());
  EXPECT_THAT(pred, ::testing::ElementsAre(1, 0));
  EXPECT_EQ(correct[0], 2);
}

// torch.argmax(dim=1) (PyTorch 1.13) on these rows gives [1, 0, 1, 0]: a NaN
// counts as the maximum (the first NaN wins), and an all -inf row gives 0.
TEST_F(CpuOps, ArgmaxTreatsNanAsTorchDoes) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  std::vector<float> x = {1.0f, nan, 3.0f, nan,  //
                          nan, 1.0f, 2.0f, 0.0f,  //
                          1.0f, 3.0f, 3.0f, -inf,  //
                          -inf, -inf, -inf, -inf};
  std::vector<int32_t> labels = {1, 0, 1, 0};
  std::vector<uint8_t> split(4, kTestBit);
  std::vector<int32_t> pred(4), correct(3);
  be->argmax_correct(mat(x, 4, 4), labels.data(), split.data(), pred.data(), correct.data());
  EXPECT_THAT(pred, ::testing::ElementsAre(1, 0, 1, 0));
  EXPECT_THAT(correct, ::testing::ElementsAre(0, 0, 4));
}

// nll_loss(log_softmax(x), [2, 1]) = 1.2481 (PyTorch 1.13), i.e. (2.3170 + 0.1791) / 2.
TEST_F(CpuOps, MaskedNllMatchesHandValues) {
  std::vector<float> x = {2.0f, 1.0f, 0.1f, 1.0f, 3.0f, 0.2f};
  std::vector<int32_t> labels = {2, 1};
  std::vector<uint8_t> both = {kTrainBit, kTrainBit};
  float loss = -1.0f;
  be->log_softmax_nll(mat(x, 2, 3), labels.data(), both.data(), kTrainBit, 2, &loss, nullptr);
  EXPECT_NEAR(loss, 1.2481f, 1e-4);

  std::vector<uint8_t> first_only = {kTrainBit, kValBit};
  be->log_softmax_nll(mat(x, 2, 3), labels.data(), first_only.data(), kTrainBit, 1, &loss, nullptr);
  EXPECT_NEAR(loss, 2.3170f, 1e-4);
  be->log_softmax_nll(mat(x, 2, 3), labels.data(), first_only.data(), kValBit, 1, &loss, nullptr);
  EXPECT_NEAR(loss, 0.1791f, 1e-4);

  std::vector<uint8_t> none = {0, 0};
  std::vector<float> grad(6, 7.0f);
  be->log_softmax_nll(mat(x, 2, 3), labels.data(), none.data(), kTrainBit, 0, &loss, grad.data());
  EXPECT_EQ(loss, 0.0f);
  EXPECT_THAT(grad, ::testing::Each(0.0f));
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
  float fused = 0.0f;
  be->log_softmax_nll(mat(x, n, c), labels.data(), split.data(), kTrainBit, n_masked, &fused, grad.data());
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
  // Finite differences of the fused loss for a few logits of a masked row.
  for (int j = 0; j < c; ++j) {
    const int idx = 3 * c + j;
    std::vector<float> xp = x, xm = x;
    const float h = 1e-2f;
    xp[idx] += h;
    xm[idx] -= h;
    float lp = 0, lm = 0;
    be->log_softmax_nll(mat(xp, n, c), labels.data(), split.data(), kTrainBit, n_masked, &lp, nullptr);
    be->log_softmax_nll(mat(xm, n, c), labels.data(), split.data(), kTrainBit, n_masked, &lm, nullptr);
    EXPECT_NEAR((lp - lm) / (2 * h), grad[idx], 2e-4) << j;
  }
}

// The unfused baseline (log_softmax, then nll_loss) gives the fused op's loss
// and gradient.
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
  float fused = 0, unfused = 0;
  be->log_softmax_nll(mat(x, n, c), labels.data(), split.data(), kValBit, n_masked, &fused, g_fused.data());
  be->log_softmax(mat(x, n, c), mat(logp, n, c));
  be->nll_loss(mat(logp, n, c), labels.data(), split.data(), kValBit, n_masked, &unfused, g_unfused.data());
  EXPECT_NEAR(unfused, fused, 1e-6);
  for (int i = 0; i < n * c; ++i) EXPECT_NEAR(g_unfused[i], g_fused[i], 1e-7) << i;
}

TEST_F(CpuOps, LossIsFiniteForExtremeLogits) {
  std::vector<float> x = {1e30f, -1e30f, 0.0f, -1e30f, -1e30f, -1e30f + 1e24f, 88.0f, 89.0f, -80.0f};
  std::vector<int32_t> labels = {1, 2, 0};
  std::vector<uint8_t> split = {kTrainBit, kTrainBit, kTrainBit};
  std::vector<float> grad(9);
  float loss = 0.0f;
  be->log_softmax_nll(mat(x, 3, 3), labels.data(), split.data(), kTrainBit, 3, &loss, grad.data());
  EXPECT_TRUE(std::isfinite(loss));
  for (float g : grad) EXPECT_TRUE(std::isfinite(g));
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
  try {
    be->gemm(mat(a, 2, 3), false, mat(a, 2, 3), true, mat(c, 3, 1));
    ADD_FAILURE() << "gemm with mismatched shapes did not throw";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "gemm: op(a) (2, 3) x op(b) (2, 3) -> (3, 1) (trans_a=false, trans_b=true)");
  }
}

// The blocked SpMM and GEMM loops against plain ones that sum in the same
// order (float for SpMM, double for GEMM; a's zeros add nothing in aᵀ·b): bit
// for bit, at widths on both sides of the 16-column blocks, with a transposed
// b, and at sizes that take the parallel path, on one thread and on two.
// A random (rows, cols) matrix with about half its entries zero, as after a ReLU.
std::vector<float> half_zero_matrix(int64_t rows, int64_t cols, uint32_t seed) {
  std::vector<float> m = test::random_floats(static_cast<std::size_t>(rows * cols), seed, -2.0f, 2.0f);
  std::mt19937 gen(seed + 1);
  for (float& v : m) v = gen() % 2 ? 0.0f : v;
  return m;
}

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
    std::vector<float> ref(static_cast<std::size_t>(cs.rows * cs.n), 0.0f);
    for (int32_t i = 0; i < cs.rows; ++i) {
      for (int32_t e = a.indptr[i]; e < a.indptr[i + 1]; ++e) {
        for (int64_t j = 0; j < cs.n; ++j) ref[i * cs.n + j] += a.values[e] * b[a.indices[e] * cs.n + j];
      }
    }
    for (int threads : {1, 2}) {
      auto cpu = make_cpu_backend(threads);
      auto dev = cpu->upload_csr(a);
      std::vector<float> c(ref.size(), 99.0f);
      cpu->spmm(*dev, mat(b, cs.cols, cs.n), mat(c, cs.rows, cs.n));
      ASSERT_EQ(c, ref) << cs.rows << "x" << cs.cols << " times n=" << cs.n << ", " << threads << " threads";
    }
  }
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
        auto op_a = [&](int64_t i, int64_t p) { return ta ? a[p * cs.m + i] : a[i * cs.k + p]; };
        auto op_b = [&](int64_t p, int64_t j) { return tb ? b[j * cs.k + p] : b[p * cs.n + j]; };
        std::vector<float> ref(static_cast<std::size_t>(cs.m * cs.n));
        for (int64_t i = 0; i < cs.m; ++i) {
          for (int64_t j = 0; j < cs.n; ++j) {
            double sum = 0.0;
            for (int64_t p = 0; p < cs.k; ++p) {
              if (ta && op_a(i, p) == 0.0f) continue;
              sum += static_cast<double>(op_a(i, p)) * op_b(p, j);
            }
            ref[i * cs.n + j] = static_cast<float>(sum);
          }
        }
        const MatRef a_ref = ta ? mat(a, cs.k, cs.m) : mat(a, cs.m, cs.k);
        const MatRef b_ref = tb ? mat(b, cs.n, cs.k) : mat(b, cs.k, cs.n);
        for (int threads : {1, 2}) {
          auto cpu = make_cpu_backend(threads);
          std::vector<float> c(ref.size(), 99.0f);
          cpu->gemm(a_ref, ta, b_ref, tb, mat(c, cs.m, cs.n));
          const std::string where = ::testing::PrintToString(std::vector<int64_t>{cs.m, cs.n, cs.k, ta, tb, threads});
          if (!ta || cs.k <= 4096) {
            ASSERT_EQ(c, ref) << "m, n, k, trans_a, trans_b, threads = " << where;
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

TEST_F(CpuOps, BiasAndColumnSum) {
  std::vector<float> x = {1, 2, 3, 4, 5, 6};
  std::vector<float> bias = {10, 20, 30};
  be->add_bias(mat(x, 2, 3), bias.data());
  EXPECT_THAT(x, ::testing::ElementsAre(11, 22, 33, 14, 25, 36));
  std::vector<float> sum(3);
  be->column_sum(mat(x, 2, 3), sum.data());
  EXPECT_THAT(sum, ::testing::ElementsAre(25, 47, 69));
}

TEST_F(CpuOps, ReluDropout) {
  std::vector<float> x = {-1, 2, 0, 3};
  std::vector<float> y(4);
  be->relu_dropout_forward(mat(x, 2, 2), mat(y, 2, 2), 0.0f, 1, 1);
  EXPECT_THAT(y, ::testing::ElementsAre(0, 2, 0, 3));
  std::vector<float> dy = {5, 6, 7, 8}, dx(4);
  be->relu_dropout_backward(mat(dy, 2, 2), mat(y, 2, 2), mat(dx, 2, 2), 0.0f);
  EXPECT_THAT(dx, ::testing::ElementsAre(0, 6, 0, 8));

  // p = 0.5 on positive inputs: about half kept, kept ones doubled, the mask
  // reproducible from (seed, stream) and different for another stream.
  const int n = 100000;
  std::vector<float> ones(n, 1.0f), a(n), b(n), other(n);
  be->relu_dropout_forward(mat(ones, 1, n), mat(a, 1, n), 0.5f, 42, 3);
  be->relu_dropout_forward(mat(ones, 1, n), mat(b, 1, n), 0.5f, 42, 3);
  be->relu_dropout_forward(mat(ones, 1, n), mat(other, 1, n), 0.5f, 42, 4);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, other);
  int kept = 0;
  for (int i = 0; i < n; ++i) {
    ASSERT_TRUE(a[i] == 0.0f || a[i] == 2.0f);
    kept += a[i] == 2.0f;
    EXPECT_EQ(a[i] == 2.0f, dropout_keep(42, 3, i, 0.5f));
  }
  EXPECT_NEAR(kept / static_cast<double>(n), 0.5, 0.01);
  std::vector<float> g(n, 1.0f), dg(n);
  be->relu_dropout_backward(mat(g, 1, n), mat(a, 1, n), mat(dg, 1, n), 0.5f);
  for (int i = 0; i < n; ++i) ASSERT_EQ(dg[i], a[i]);  // 1 * 2 where kept, else 0
}

// Three steps of torch.optim.Adam(lr=0.1, weight_decay=0.01), values printed by PyTorch 1.13.
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
  for (int step = 1; step <= 3; ++step) {
    be->adam_step(p.data(), grads[step - 1].data(), m.data(), v.data(), 4, cfg, step);
    for (int i = 0; i < 4; ++i) EXPECT_NEAR(p[i], expected[step - 1][i], 2e-7) << "step " << step << " i " << i;
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

}  // namespace
}  // namespace gcn
