// Every CUDA op against the CPU reference on the same seeded inputs: edge
// shapes (one row, one column, sizes off multiples of 32, empty inputs),
// extreme logits, all class counts the row mappings switch between, exact
// dropout masks and argmax, and bit-identical results run to run.
//
// Without a usable GPU every test is skipped with the reason, unless
// GCN_REQUIRE_GPU=1 (a GPU session), where that is a failure.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "gcn/backend.hpp"
#include "gcn/buffer.hpp"
#include "gcn/csr.hpp"
#include "gcn/devices.hpp"
#include "gcn/error.hpp"
#include "test_compare.hpp"
#include "test_random.hpp"
#include "test_util.hpp"

namespace {

using gcn::Backend;
using gcn::Buffer;
using gcn::ConstMatRef;
using gcn::MatRef;
using gcn::test::all_close;
using gcn::test::all_equal;
using gcn::test::random_csr;
using gcn::test::random_floats;
using gcn::test::Tolerance;

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
const std::vector<int64_t> kClassCounts = {1, 2, 3, 7, 16, 31, 32, 33, 64, 100, 1000, 4096};

// Logits in [-5, 5] with the extreme rows the classifier kernels must survive.
std::vector<float> classifier_logits(int64_t rows, int64_t cols, uint32_t seed) {
  std::vector<float> x = random_floats(static_cast<std::size_t>(rows * cols), seed, -5.0f, 5.0f);
  std::mt19937 rng(seed + 1);
  auto row = [&](int64_t r) { return x.data() + r * cols; };
  if (rows > 0) row(0)[rng() % cols] = 1e30f;  // one huge logit
  if (rows > 1) row(1)[rng() % cols] = -1e30f;  // one very negative logit
  if (rows > 2)
    for (int64_t j = 0; j < cols; ++j) row(2)[j] += 80.0f;  // large but ordinary
  if (rows > 3)
    for (int64_t j = 0; j < cols; ++j) row(3)[j] -= 80.0f;
  if (rows > 4 && cols > 1) {  // a huge logit that is not the label's
    row(4)[0] = 1e30f;
    row(4)[1] = -1e30f;
  }
  return x;
}

std::vector<int32_t> random_labels(int64_t rows, int64_t cols, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<int32_t> labels(static_cast<std::size_t>(rows));
  for (auto& l : labels) l = static_cast<int32_t>(rng() % static_cast<uint32_t>(cols));
  return labels;
}

std::vector<uint8_t> random_split(int64_t rows, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> split(static_cast<std::size_t>(rows));
  for (auto& s : split) s = static_cast<uint8_t>(rng() & 7u);
  return split;
}

class CudaOps : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    if (gcn::cuda_device_count(&why) == 0) {
      if (gcn::test::require_gpu()) FAIL() << "GCN_REQUIRE_GPU=1 but there is no usable CUDA GPU: " << why;
      GTEST_SKIP() << "no usable CUDA GPU: " << why;
    }
    gpu_ = gcn::make_cuda_backend(0);
    cpu_ = gcn::make_cpu_backend(0);
  }

  // f(Backend&) -> a host result; run on the CPU (reference) and the GPU.
  template <class F>
  auto on_both(F&& f) {
    auto ref = f(*cpu_);
    auto got = f(*gpu_);
    return std::make_pair(std::move(got), std::move(ref));
  }

  // argmax_correct on both devices: {predictions, correct counts} each.
  auto argmax_on_both(const std::vector<float>& x_host, int64_t rows, int64_t cols,
                      const std::vector<int32_t>& labels_host, const std::vector<uint8_t>& split_host) {
    return on_both([&](Backend& be) {
      Buffer<float> x(be, x_host);
      Buffer<int32_t> labels(be, labels_host);
      Buffer<uint8_t> split(be, split_host);
      Buffer<int32_t> pred(be, rows), correct(be, 3);
      be.argmax_correct({x.data(), rows, cols}, labels.data(), split.data(), pred.data(), correct.data());
      return std::vector<std::vector<int32_t>>{pred.to_host(), correct.to_host()};
    });
  }

  std::unique_ptr<Backend> cpu_;
  std::unique_ptr<Backend> gpu_;
};

TEST(CudaDevices, UnusableDeviceThrowsOneClearLine) {
  ASSERT_TRUE(gcn::cuda_compiled());
  std::string why;
  const int n = gcn::cuda_device_count(&why);
  if (n == 0) {
    EXPECT_FALSE(why.empty());
    EXPECT_EQ(why.find('\n'), std::string::npos);
    try {
      gcn::make_cuda_backend(0);
      ADD_FAILURE() << "make_cuda_backend(0) did not throw without a GPU";
    } catch (const gcn::DeviceError& e) {
      EXPECT_NE(std::string(e.what()).find("no usable CUDA GPU"), std::string::npos) << e.what();
    }
  } else {
    EXPECT_THROW(gcn::make_cuda_backend(n), gcn::DeviceError);
  }
  EXPECT_THROW(gcn::make_cuda_backend(-1), gcn::DeviceError);
}

TEST_F(CudaOps, Describe) {
  EXPECT_EQ(gpu_->kind(), gcn::DeviceKind::kCuda);
  const std::string d = gpu_->describe();
  EXPECT_EQ(d.rfind("cuda:0 ", 0), 0u) << d;
  EXPECT_NE(d.find(" SMs, "), std::string::npos) << d;
  if (std::getenv("GCN_SPMM_ALG") == nullptr) EXPECT_NE(d.find(", SpMM CSR_ALG3)"), std::string::npos) << d;
}

TEST_F(CudaOps, UploadDownloadRoundTrip) {
  const std::vector<float> host = random_floats(1001, 1);
  Buffer<float> b(*gpu_, host);
  EXPECT_TRUE(all_equal(b.to_host(), host));
  b.zero();
  EXPECT_TRUE(all_equal(b.to_host(), std::vector<float>(host.size(), 0.0f)));
}

TEST_F(CudaOps, GemmAllTransposes) {
  struct Shape {
    int64_t m, k, n;
  };
  for (const Shape s : {Shape{1, 1, 1}, Shape{37, 19, 5}, Shape{64, 33, 7}, Shape{130, 1, 70}, Shape{3, 300, 1}}) {
    for (const bool ta : {false, true}) {
      for (const bool tb : {false, true}) {
        const int64_t a_rows = ta ? s.k : s.m, a_cols = ta ? s.m : s.k;
        const int64_t b_rows = tb ? s.n : s.k, b_cols = tb ? s.k : s.n;
        const auto a_host = random_floats(static_cast<std::size_t>(s.m * s.k), 10);
        const auto b_host = random_floats(static_cast<std::size_t>(s.k * s.n), 11);
        auto [got, ref] = on_both([&](Backend& be) {
          Buffer<float> a(be, a_host), b(be, b_host);
          Buffer<float> c(be, std::vector<float>(static_cast<std::size_t>(s.m * s.n), kNaN));
          be.gemm({a.data(), a_rows, a_cols}, ta, {b.data(), b_rows, b_cols}, tb, {c.data(), s.m, s.n});
          return c.to_host();
        });
        EXPECT_TRUE(all_close(got, ref, {1e-5, 1e-4}, s.n))
            << "m=" << s.m << " k=" << s.k << " n=" << s.n << " trans_a=" << ta << " trans_b=" << tb;
      }
    }
  }
}

TEST_F(CudaOps, SpmmRandomCsrWithEmptyRows) {
  struct Case {
    int32_t rows, cols;
    double density;
    int empty_every;
    int64_t n;
  };
  for (const Case cs : {Case{1, 1, 1.0, 0, 1}, Case{50, 40, 0.1, 7, 1}, Case{50, 40, 0.1, 7, 7},
                        Case{50, 40, 0.1, 3, 16}, Case{200, 150, 0.05, 5, 33}, Case{33, 64, 0.3, 2, 64},
                        Case{20, 20, 0.0, 0, 5}}) {
    const gcn::CsrMatrix csr = random_csr(cs.rows, cs.cols, cs.density, cs.empty_every, 20);
    const auto b_host = random_floats(static_cast<std::size_t>(cs.cols * cs.n), 21);
    auto [got, ref] = on_both([&](Backend& be) {
      auto a = be.upload_csr(csr);
      Buffer<float> b(be, b_host);
      Buffer<float> c(be, std::vector<float>(static_cast<std::size_t>(cs.rows * cs.n), kNaN));
      be.spmm(*a, {b.data(), cs.cols, cs.n}, {c.data(), cs.rows, cs.n});
      return c.to_host();
    });
    EXPECT_TRUE(all_close(got, ref, {1e-5, 1e-5}, cs.n))
        << "rows=" << cs.rows << " cols=" << cs.cols << " nnz=" << csr.nnz() << " n=" << cs.n;
  }
}

// Every SpMM implementation GCN_SPMM_ALG can pick (cuSPARSE CSR_ALG3, the
// default; CSR_ALG2; CSR_ALG1; our own kernel) against the CPU, on a
// Cora-sized graph and on the awkward shapes above; the ones we rely on for
// bit-identical reruns (alg3 and the kernel) also twice to the same bytes.
TEST_F(CudaOps, SpmmEveryAlgorithmMatchesTheCpu) {
  const gcn::CsrMatrix big = random_csr(2708, 2708, 0.0015, 13, 30);
  const gcn::CsrMatrix tall = random_csr(300, 1433, 0.013, 0, 31);  // like X (18 nnz per row)
  const gcn::CsrMatrix odd = random_csr(33, 64, 0.3, 2, 32);
  struct Case {
    const gcn::CsrMatrix* a;
    int64_t n;
  };
  const Case cases[] = {{&big, 16}, {&big, 7}, {&tall, 16}, {&odd, 1}, {&odd, 33}};
  for (const char* alg : {"alg3", "alg2", "alg1", "kernel"}) {
    const gcn::test::ScopedEnv env("GCN_SPMM_ALG", alg);
    const std::unique_ptr<Backend> gpu = gcn::make_cuda_backend(0);
    for (const Case& cs : cases) {
      const int64_t rows = cs.a->n_rows, inner = cs.a->n_cols;
      const auto b_host = random_floats(static_cast<std::size_t>(inner * cs.n), 33);
      auto run = [&](Backend& be) {
        auto a = be.upload_csr(*cs.a);
        Buffer<float> b(be, b_host);
        Buffer<float> c(be, std::vector<float>(static_cast<std::size_t>(rows * cs.n), kNaN));
        be.spmm(*a, {b.data(), inner, cs.n}, {c.data(), rows, cs.n});
        return c.to_host();
      };
      const std::vector<float> ref = run(*cpu_);
      const std::vector<float> got = run(*gpu);
      EXPECT_TRUE(all_close(got, ref, {1e-5, 1e-5}, cs.n))
          << alg << ": rows=" << rows << " inner=" << inner << " n=" << cs.n;
      if (std::string(alg) == "alg3" || std::string(alg) == "kernel") {
        const std::vector<float> again = run(*gpu);
        EXPECT_EQ(std::memcmp(got.data(), again.data(), got.size() * sizeof(float)), 0)
            << alg << " is not bit-identical run to run: rows=" << rows << " n=" << cs.n;
      }
    }
  }
  const gcn::test::ScopedEnv bad("GCN_SPMM_ALG", "alg9");
  EXPECT_THROW(gcn::make_cuda_backend(0), gcn::UsageError);
}

// The backend makes cuSPARSE's descriptors and workspace size once per
// product (A, B's buffer, C's buffer, columns) and reuses them. The product
// must stay right whatever the caller does between calls: new contents in the
// same buffers, more products than the backend keeps (it starts over), and
// buffers freed and allocated again, possibly at the same addresses.
TEST_F(CudaOps, SpmmStaysRightAsItsSetupIsReused) {
  const gcn::CsrMatrix csr = random_csr(50, 40, 0.1, 7, 40);
  constexpr int64_t kMaxN = 80;  // more products than the backend keeps set up
  auto a_gpu = gpu_->upload_csr(csr);
  auto a_cpu = cpu_->upload_csr(csr);
  auto check_pass = [&](Buffer<float>& b, Buffer<float>& c, uint32_t seed, const std::vector<int64_t>& ns) {
    for (const int64_t n : ns) {
      const auto b_host = random_floats(static_cast<std::size_t>(csr.n_cols * n), seed + static_cast<uint32_t>(n));
      gpu_->upload(b.data(), b_host.data(), b_host.size() * sizeof(float));
      gpu_->spmm(*a_gpu, {b.data(), csr.n_cols, n}, {c.data(), csr.n_rows, n});
      std::vector<float> got = c.to_host();
      got.resize(static_cast<std::size_t>(csr.n_rows * n));
      std::vector<float> ref(got.size());
      cpu_->spmm(*a_cpu, {b_host.data(), csr.n_cols, n}, {ref.data(), csr.n_rows, n});
      ASSERT_TRUE(all_close(got, ref, {1e-5, 1e-5}, n)) << "seed " << seed << ", n=" << n;
    }
  };
  std::vector<int64_t> all_n(kMaxN);
  std::iota(all_n.begin(), all_n.end(), int64_t{1});
  for (uint32_t round = 0; round < 3; ++round) {  // fresh buffers each round
    Buffer<float> b(*gpu_, csr.n_cols * kMaxN), c(*gpu_, csr.n_rows * kMaxN);
    check_pass(b, c, 100 * round, {7, 16, 7, 16});  // the same products again, new contents
    check_pass(b, c, 100 * round + 50, all_n);
    check_pass(b, c, 100 * round + 70, {16, 1, 80});
  }
}

TEST_F(CudaOps, AddBias) {
  for (const auto& shape : {std::pair<int64_t, int64_t>{1, 1}, {37, 33}, {100, 7}, {1, 100}}) {
    const int64_t rows = shape.first, cols = shape.second;
    const auto x_host = random_floats(static_cast<std::size_t>(rows * cols), 30);
    const auto bias_host = random_floats(static_cast<std::size_t>(cols), 31);
    auto [got, ref] = on_both([&](Backend& be) {
      Buffer<float> x(be, x_host), bias(be, bias_host);
      be.add_bias({x.data(), rows, cols}, bias.data());
      return x.to_host();
    });
    EXPECT_TRUE(all_equal(got, ref, cols)) << rows << "x" << cols;
  }
}

TEST_F(CudaOps, ColumnSum) {
  for (const auto& shape :
       {std::pair<int64_t, int64_t>{1, 1}, {1, 40}, {300, 1}, {1000, 7}, {2708, 16}, {70001, 3}, {257, 129}}) {
    const int64_t rows = shape.first, cols = shape.second;
    const auto x_host = random_floats(static_cast<std::size_t>(rows * cols), 40);
    auto [got, ref] = on_both([&](Backend& be) {
      Buffer<float> x(be, x_host);
      Buffer<float> out(be, std::vector<float>(static_cast<std::size_t>(cols), kNaN));
      be.column_sum({x.data(), rows, cols}, out.data());
      return out.to_host();
    });
    EXPECT_TRUE(all_close(got, ref, {1e-6, 1e-6}, cols)) << rows << "x" << cols;
  }
}

TEST_F(CudaOps, ReluDropoutMasksMatchExactly) {
  for (const float p : {0.0f, 0.5f, 0.9f}) {
    for (const auto& shape : {std::pair<int64_t, int64_t>{1, 1}, {37, 33}, {300, 17}, {2708, 16}}) {
      const int64_t rows = shape.first, cols = shape.second;
      const auto x_host = random_floats(static_cast<std::size_t>(rows * cols), 50);
      const auto dy_host = random_floats(static_cast<std::size_t>(rows * cols), 51);
      // Forward out of place and in place, then backward (in place on dy).
      auto [got, ref] = on_both([&](Backend& be) {
        Buffer<float> x(be, x_host), y(be, rows * cols), dy(be, dy_host);
        be.relu_dropout_forward({x.data(), rows, cols}, {y.data(), rows, cols}, p, 1234, 7);
        be.relu_dropout_forward({x.data(), rows, cols}, {x.data(), rows, cols}, p, 1234, 7);
        be.relu_dropout_backward({dy.data(), rows, cols}, {y.data(), rows, cols}, {dy.data(), rows, cols}, p);
        return std::vector<std::vector<float>>{y.to_host(), x.to_host(), dy.to_host()};
      });
      EXPECT_TRUE(all_equal(got[0], ref[0], cols)) << "forward p=" << p << " " << rows << "x" << cols;
      EXPECT_TRUE(all_equal(got[1], ref[1], cols)) << "forward in place p=" << p << " " << rows << "x" << cols;
      EXPECT_TRUE(all_equal(got[2], ref[2], cols)) << "backward p=" << p << " " << rows << "x" << cols;
    }
  }
}

TEST_F(CudaOps, LogSoftmax) {
  for (const int64_t cols : kClassCounts) {
    for (const int64_t rows : {int64_t{1}, int64_t{5}, int64_t{67}}) {
      const auto x_host = classifier_logits(rows, cols, 60 + static_cast<uint32_t>(cols));
      auto [got, ref] = on_both([&](Backend& be) {
        Buffer<float> x(be, x_host);
        Buffer<float> y(be, std::vector<float>(x_host.size(), kNaN));
        be.log_softmax({x.data(), rows, cols}, {y.data(), rows, cols});
        return y.to_host();
      });
      EXPECT_TRUE(all_close(got, ref, {3e-5, 1e-5}, cols)) << rows << "x" << cols;
    }
  }
}

TEST_F(CudaOps, LogSoftmaxNllLossAndGradient) {
  enum class Mask { kEmpty, kFull, kRandom };
  for (const int64_t cols : kClassCounts) {
    for (const int64_t rows : {int64_t{1}, int64_t{5}, int64_t{67}, int64_t{300}}) {
      for (const Mask mask : {Mask::kEmpty, Mask::kFull, Mask::kRandom}) {
        const auto x_host = classifier_logits(rows, cols, 70 + static_cast<uint32_t>(cols));
        const auto labels_host = random_labels(rows, cols, 71);
        std::vector<uint8_t> split_host = random_split(rows, 72);
        if (mask == Mask::kEmpty) std::fill(split_host.begin(), split_host.end(), uint8_t{0});
        if (mask == Mask::kFull) std::fill(split_host.begin(), split_host.end(), uint8_t{1});
        const uint8_t bit = 1;
        const int64_t n_masked = std::count_if(split_host.begin(), split_host.end(), [](uint8_t s) { return (s & 1) != 0; });
        for (const bool with_grad : {true, false}) {
          auto [got, ref] = on_both([&](Backend& be) {
            Buffer<float> x(be, x_host);
            Buffer<int32_t> labels(be, labels_host);
            Buffer<uint8_t> split(be, split_host);
            Buffer<float> loss(be, std::vector<float>{kNaN});
            Buffer<float> grad(be, std::vector<float>(x_host.size(), kNaN));
            be.log_softmax_nll({x.data(), rows, cols}, labels.data(), split.data(), bit, n_masked, loss.data(),
                               with_grad ? grad.data() : nullptr);
            return std::vector<std::vector<float>>{loss.to_host(), grad.to_host()};
          });
          const std::string what = std::to_string(rows) + "x" + std::to_string(cols) + " mask=" +
                                   std::to_string(static_cast<int>(mask)) + " n_masked=" + std::to_string(n_masked) +
                                   " grad=" + std::to_string(with_grad);
          EXPECT_TRUE(all_close(got[0], ref[0], {1e-5, 1e-5})) << "loss " << what;
          ASSERT_TRUE(std::isfinite(got[0][0])) << what;
          if (mask == Mask::kEmpty) {
            EXPECT_EQ(got[0][0], 0.0f) << what;
          }
          if (with_grad) EXPECT_TRUE(all_close(got[1], ref[1], {1e-7, 1e-4}, cols)) << "grad " << what;
        }
      }
    }
  }
}

// The unfused baseline gcn-bench compares against: nll_loss of log-probs,
// against the CPU and against the fused op on the GPU itself.
TEST_F(CudaOps, UnfusedNllMatchesTheCpuAndTheFusedOp) {
  for (const int64_t cols : {int64_t{2}, int64_t{7}, int64_t{33}, int64_t{1000}}) {
    const int64_t rows = 211;
    const auto x_host = classifier_logits(rows, cols, 90 + static_cast<uint32_t>(cols));
    const auto labels_host = random_labels(rows, cols, 91);
    const std::vector<uint8_t> split_host = random_split(rows, 92);
    const int64_t n_masked =
        std::count_if(split_host.begin(), split_host.end(), [](uint8_t s) { return (s & 1) != 0; });
    auto [got, ref] = on_both([&](Backend& be) {
      Buffer<float> x(be, x_host), logp(be, rows * cols);
      Buffer<int32_t> labels(be, labels_host);
      Buffer<uint8_t> split(be, split_host);
      Buffer<float> loss(be, std::vector<float>{kNaN}), fused_loss(be, std::vector<float>{kNaN});
      Buffer<float> grad(be, std::vector<float>(x_host.size(), kNaN)), fused_grad(be, rows * cols);
      be.log_softmax({x.data(), rows, cols}, {logp.data(), rows, cols});
      be.nll_loss({logp.data(), rows, cols}, labels.data(), split.data(), 1, n_masked, loss.data(), grad.data());
      be.log_softmax_nll({x.data(), rows, cols}, labels.data(), split.data(), 1, n_masked, fused_loss.data(),
                         fused_grad.data());
      return std::vector<std::vector<float>>{loss.to_host(), grad.to_host(), fused_loss.to_host(),
                                             fused_grad.to_host()};
    });
    EXPECT_TRUE(all_close(got[0], ref[0], {1e-5, 1e-5})) << cols;
    EXPECT_TRUE(all_close(got[1], ref[1], {1e-7, 1e-4}, cols)) << cols;
    EXPECT_TRUE(all_close(got[0], got[2], {1e-5, 1e-5})) << cols;
    EXPECT_TRUE(all_close(got[1], got[3], {1e-7, 1e-4}, cols)) << cols;
  }
}

// Rows whose logits are all equal and huge (or hugely negative): the exact
// answer is -log(C) everywhere. Checked against that, not the CPU, whose
// max + log(sum) rounds log(C) away next to 1e30.
TEST_F(CudaOps, ClassifierStaysFiniteOnExtremeUniformRows) {
  for (const int64_t cols : kClassCounts) {
    const int64_t rows = 2;
    std::vector<float> x_host(static_cast<std::size_t>(rows * cols), 1e30f);
    std::fill(x_host.begin() + cols, x_host.end(), -1e30f);
    Buffer<float> x(*gpu_, x_host), y(*gpu_, rows * cols), loss(*gpu_, 1), grad(*gpu_, rows * cols);
    Buffer<int32_t> labels(*gpu_, std::vector<int32_t>{0, static_cast<int32_t>(cols - 1)});
    Buffer<uint8_t> split(*gpu_, std::vector<uint8_t>{1, 1});
    gpu_->log_softmax({x.data(), rows, cols}, {y.data(), rows, cols});
    gpu_->log_softmax_nll({x.data(), rows, cols}, labels.data(), split.data(), 1, 2, loss.data(), grad.data());
    const float expected = -std::log(static_cast<float>(cols));
    EXPECT_TRUE(all_close(y.to_host(), std::vector<float>(x_host.size(), expected), {1e-5, 1e-5}, cols)) << cols;
    EXPECT_NEAR(loss.to_host()[0], -expected, 1e-5) << cols;
    for (const float g : grad.to_host()) ASSERT_TRUE(std::isfinite(g)) << cols;
  }
}

TEST_F(CudaOps, ArgmaxTieFreeShuffledRowsMatchExactly) {
  for (const int64_t cols : kClassCounts) {
    const int64_t rows = 131;
    std::mt19937 rng(80 + static_cast<uint32_t>(cols));
    std::vector<float> x_host(static_cast<std::size_t>(rows * cols));
    std::vector<int32_t> labels_host(static_cast<std::size_t>(rows));
    for (int64_t r = 0; r < rows; ++r) {
      std::vector<float> row(static_cast<std::size_t>(cols));
      for (int64_t j = 0; j < cols; ++j) row[j] = 0.25f * static_cast<float>(j) - 3.0f;  // distinct
      std::shuffle(row.begin(), row.end(), rng);
      std::copy(row.begin(), row.end(), x_host.begin() + r * cols);
      const auto argmax = std::max_element(row.begin(), row.end()) - row.begin();
      // Half the labels right, so every split bit has correct rows to count.
      labels_host[r] = (r % 2 == 0) ? static_cast<int32_t>(argmax) : static_cast<int32_t>(rng() % cols);
    }
    const auto split_host = random_split(rows, 81);
    for (const bool with_pred : {true, false}) {
      auto [got, ref] = on_both([&](Backend& be) {
        Buffer<float> x(be, x_host);
        Buffer<int32_t> labels(be, labels_host);
        Buffer<uint8_t> split(be, split_host);
        Buffer<int32_t> pred(be, std::vector<int32_t>(static_cast<std::size_t>(rows), -7));
        Buffer<int32_t> correct(be, std::vector<int32_t>{-1, -1, -1});
        be.argmax_correct({x.data(), rows, cols}, labels.data(), split.data(), with_pred ? pred.data() : nullptr,
                          correct.data());
        return std::vector<std::vector<int32_t>>{pred.to_host(), correct.to_host()};
      });
      EXPECT_TRUE(all_equal(got[0], ref[0])) << "pred, C=" << cols;
      EXPECT_TRUE(all_equal(got[1], ref[1])) << "correct counts, C=" << cols;
    }
  }
}

TEST_F(CudaOps, ArgmaxTiesPickTheFirstMaximum) {
  for (const int64_t cols : kClassCounts) {
    const int64_t rows = 64;
    std::mt19937 rng(90 + static_cast<uint32_t>(cols));
    std::vector<float> x_host = random_floats(static_cast<std::size_t>(rows * cols), 91, -1.0f, 1.0f);
    std::vector<int32_t> expected(static_cast<std::size_t>(rows));
    for (int64_t r = 0; r < rows; ++r) {
      float* row = x_host.data() + r * cols;
      // Put the maximum 2.0 at up to four random places; the first one wins.
      int64_t first = cols;
      for (int t = 0; t < 4; ++t) {
        const int64_t j = rng() % cols;
        row[j] = 2.0f;
        first = std::min(first, j);
      }
      if (r == 0) std::fill(row, row + cols, 2.0f);  // all tied: column 0
      if (r == 0) first = 0;
      expected[r] = static_cast<int32_t>(first);
    }
    const std::vector<int32_t> labels_host = expected;
    const std::vector<uint8_t> split_host(static_cast<std::size_t>(rows), uint8_t{7});
    auto [got, ref] = argmax_on_both(x_host, rows, cols, labels_host, split_host);
    EXPECT_TRUE(all_equal(got[0], expected)) << "C=" << cols;
    EXPECT_TRUE(all_equal(got[0], ref[0])) << "C=" << cols;
    const int32_t n = static_cast<int32_t>(rows);
    EXPECT_TRUE(all_equal(got[1], std::vector<int32_t>{n, n, n})) << "C=" << cols;
  }
}

// NaN logits (a run continued with --allow-nonfinite): the first NaN of a
// row is its argmax on both devices (torch.argmax), wherever it falls
// relative to the row's maximum and to the lanes that share the row.
TEST_F(CudaOps, ArgmaxNanRowsMatchTheCpu) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (const int64_t cols : kClassCounts) {
    const int64_t rows = 96;
    std::mt19937 rng(120 + static_cast<uint32_t>(cols));
    std::vector<float> x_host = random_floats(static_cast<std::size_t>(rows * cols), 121, -1.0f, 1.0f);
    for (int64_t r = 0; r < rows; ++r) {
      float* row = x_host.data() + r * cols;
      row[rng() % cols] = 2.0f;                           // a maximum somewhere
      const int n_nans = static_cast<int>(r % 4);         // 0 to 3 NaNs
      for (int t = 0; t < n_nans; ++t) row[rng() % cols] = nan;
      if (r == 1) row[0] = nan;                           // NaN in column 0
      if (r == 2) std::fill(row, row + cols, nan);        // all NaN
    }
    std::vector<int32_t> expected(static_cast<std::size_t>(rows));
    for (int64_t r = 0; r < rows; ++r) {
      const float* row = x_host.data() + r * cols;
      const float* first_nan = std::find_if(row, row + cols, [](float v) { return std::isnan(v); });
      expected[r] = static_cast<int32_t>(first_nan != row + cols ? first_nan - row
                                                                  : std::max_element(row, row + cols) - row);
    }
    const std::vector<int32_t> labels_host(static_cast<std::size_t>(rows), 0);
    const std::vector<uint8_t> split_host(static_cast<std::size_t>(rows), uint8_t{7});
    auto [got, ref] = argmax_on_both(x_host, rows, cols, labels_host, split_host);
    EXPECT_TRUE(all_equal(ref[0], expected)) << "CPU, C=" << cols;
    EXPECT_TRUE(all_equal(got[0], expected)) << "C=" << cols;
    EXPECT_TRUE(all_equal(got[1], ref[1])) << "C=" << cols;
  }
}

TEST_F(CudaOps, AdamSeveralSteps) {
  gcn::AdamConfig cfg;
  for (const int64_t n : {int64_t{1}, int64_t{1000}, int64_t{4099}}) {
    const auto p0 = random_floats(static_cast<std::size_t>(n), 100);
    auto [got, ref] = on_both([&](Backend& be) {
      Buffer<float> params(be, p0), m(be, n), v(be, n), grads(be, n);
      m.zero();
      v.zero();
      for (int64_t step = 1; step <= 5; ++step) {
        grads.from_host(random_floats(static_cast<std::size_t>(n), 200 + static_cast<uint32_t>(step)));
        be.adam_step(params.data(), grads.data(), m.data(), v.data(), n, cfg, step);
      }
      return std::vector<std::vector<float>>{params.to_host(), m.to_host(), v.to_host()};
    });
    EXPECT_TRUE(all_close(got[0], ref[0], {1e-6, 1e-5})) << "params n=" << n;
    EXPECT_TRUE(all_close(got[1], ref[1], {1e-7, 1e-5})) << "m n=" << n;
    EXPECT_TRUE(all_close(got[2], ref[2], {1e-9, 1e-5})) << "v n=" << n;
  }
}

TEST_F(CudaOps, EmptyInputs) {
  Buffer<float> loss(*gpu_, std::vector<float>{kNaN});
  Buffer<int32_t> correct(*gpu_, std::vector<int32_t>{-1, -1, -1});
  gpu_->log_softmax_nll({nullptr, 0, 7}, nullptr, nullptr, 1, 0, loss.data(), nullptr);
  gpu_->argmax_correct({nullptr, 0, 7}, nullptr, nullptr, nullptr, correct.data());
  gpu_->add_bias({nullptr, 0, 7}, nullptr);
  gpu_->relu_dropout_forward({nullptr, 0, 7}, {nullptr, 0, 7}, 0.5f, 1, 2);
  gpu_->log_softmax({nullptr, 0, 7}, {nullptr, 0, 7});
  EXPECT_EQ(loss.to_host()[0], 0.0f);
  EXPECT_TRUE(all_equal(correct.to_host(), std::vector<int32_t>{0, 0, 0}));
  Buffer<float> sums(*gpu_, std::vector<float>(4, kNaN));
  gpu_->column_sum({nullptr, 0, 4}, sums.data());
  EXPECT_TRUE(all_equal(sums.to_host(), std::vector<float>(4, 0.0f)));
}

// Same inputs twice -> the same bytes (no floating-point atomics, a
// deterministic SpMM algorithm, fixed reduction orders).
TEST_F(CudaOps, RunToRunBitIdentical) {
  const int64_t rows = 2708;
  const gcn::CsrMatrix csr = random_csr(static_cast<int32_t>(rows), static_cast<int32_t>(rows), 0.002, 11, 110);
  auto a = gpu_->upload_csr(csr);
  for (const int64_t cols : {int64_t{7}, int64_t{100}}) {
    const auto x_host = classifier_logits(rows, cols, 111);
    const auto labels_host = random_labels(rows, cols, 112);
    const auto split_host = random_split(rows, 113);
    const int64_t n_masked = std::count_if(split_host.begin(), split_host.end(), [](uint8_t s) { return (s & 2) != 0; });
    auto run = [&]() {
      Buffer<float> x(*gpu_, x_host), loss(*gpu_, 1), grad(*gpu_, rows * cols), ax(*gpu_, rows * cols),
          sums(*gpu_, cols);
      Buffer<int32_t> labels(*gpu_, labels_host);
      Buffer<uint8_t> split(*gpu_, split_host);
      gpu_->log_softmax_nll({x.data(), rows, cols}, labels.data(), split.data(), 2, n_masked, loss.data(), grad.data());
      gpu_->spmm(*a, {x.data(), rows, cols}, {ax.data(), rows, cols});
      gpu_->column_sum({grad.data(), rows, cols}, sums.data());
      return std::vector<std::vector<float>>{loss.to_host(), grad.to_host(), ax.to_host(), sums.to_host()};
    };
    const auto first = run();
    const auto second = run();
    for (std::size_t i = 0; i < first.size(); ++i) {
      ASSERT_EQ(first[i].size(), second[i].size());
      EXPECT_EQ(std::memcmp(first[i].data(), second[i].data(), first[i].size() * sizeof(float)), 0)
          << "output " << i << " (loss, grad, spmm, column_sum) differs between runs, C=" << cols;
    }
  }
}

}  // namespace
