// Every CUDA op against the CPU reference on the same seeded inputs: edge
// shapes (one row, one column, sizes off multiples of 32, empty inputs),
// extreme logits, all class counts the row mappings switch between, exact
// dropout masks and correct counts, every SpMM implementation (with a bias,
// prepared outputs, rows cut into segments), the step state and metrics ring,
// batches of models (each model's block against the CPU's batched op and
// against the single op on that model alone, bit for bit), the argument
// checks, and bit-identical results run to run.
//
// Without a usable GPU every test is skipped with the reason, unless
// GCN_REQUIRE_GPU=1 (a GPU session), where that is a failure. Without a GPU
// the cudasim build (-DGCN_CUDA=SIM) runs them on the CPU, where a kernel is
// slow: the inputs stay at a few thousand elements.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <numeric>
#include <random>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "gcn/backend/backend.hpp"
#include "gcn/backend/buffer.hpp"
#include "gcn/data/csr.hpp"
#include "gcn/data/dataset.hpp"
#include "gcn/backend/devices.hpp"
#include "gcn/error.hpp"
#include "gcn/rng.hpp"
#include "gcn/backend/step_state.hpp"
#include "test_compare.hpp"
#include "test_random.hpp"
#include "test_step.hpp"
#include "test_util.hpp"

namespace {

using gcn::Backend;
using gcn::Buffer;
using gcn::ConstMatRef;
using gcn::EpochMetrics;
using gcn::MatRef;
using gcn::StepState;
using gcn::test::all_close;
using gcn::test::all_equal;
using gcn::test::random_csr;
using gcn::test::random_floats;
using gcn::test::same_bits;
using gcn::test::sentinel_metrics;
using gcn::test::step_at;
using gcn::test::StepRing;
using gcn::test::Tolerance;

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();
const std::vector<int64_t> kClassCounts = {1, 2, 3, 7, 16, 31, 32, 33, 64, 100, 256, 257, 1000, 4096};
const char* const kSpmmAlgs[] = {"alg3", "alg2", "alg1", "kernel"};

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

int64_t count_bit(const std::vector<uint8_t>& split, uint8_t bit) {
  return std::count_if(split.begin(), split.end(), [bit](uint8_t s) { return (s & bit) != 0; });
}

// Each row's label shifted by one class: wrong wherever the label was right.
std::vector<int32_t> shifted(std::vector<int32_t> labels, int64_t cols) {
  for (auto& l : labels) l = static_cast<int32_t>((l + 1) % cols);
  return labels;
}

// The correct counts when exactly the rows with right[r] are right.
std::vector<int32_t> expected_counts(const std::vector<uint8_t>& split, const std::vector<bool>& right) {
  std::vector<int32_t> c(3, 0);
  for (std::size_t r = 0; r < split.size(); ++r) {
    for (int b = 0; b < 3; ++b) c[b] += right[r] && ((split[r] >> b) & 1) ? 1 : 0;
  }
  return c;
}

std::vector<int32_t> counts_of(const EpochMetrics& m) { return {m.correct[0], m.correct[1], m.correct[2]}; }


// The message of the gcn::Error f throws, or "(no error)".
std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const gcn::Error& e) {
    return e.what();
  }
  return "(no error)";
}

// A CSR matrix whose rows hold exactly the given numbers of non-zeros
// (sorted distinct columns), values in [-1, 1].
gcn::CsrMatrix csr_with_row_lengths(const std::vector<int32_t>& lengths, int32_t cols, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> value(-1.0f, 1.0f);
  gcn::CsrMatrix m;
  m.n_rows = static_cast<int32_t>(lengths.size());
  m.n_cols = cols;
  m.indptr.push_back(0);
  std::vector<int32_t> all(static_cast<std::size_t>(cols));
  std::iota(all.begin(), all.end(), 0);
  for (const int32_t len : lengths) {
    if (len > cols) throw std::invalid_argument("csr_with_row_lengths: a row longer than the columns");
    std::shuffle(all.begin(), all.end(), rng);
    std::vector<int32_t> idx(all.begin(), all.begin() + len);
    std::sort(idx.begin(), idx.end());
    for (const int32_t j : idx) {
      m.indices.push_back(j);
      m.values.push_back(value(rng));
    }
    m.indptr.push_back(static_cast<int32_t>(m.indices.size()));
  }
  return m;
}

// Rows of 0, 1, 128, 129, 300 and 1000 non-zeros (and a few between): our
// kernel cuts the rows longer than kernels::kSegmentNnz = 128 into segments.
const std::vector<int32_t> kCutRowLengths = {0, 1, 128, 129, 300, 1000, 5, 127, 256, 257, 0, 3};

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

  // evaluate on one backend at epoch 0 into a ring of one slot: the slot.
  static EpochMetrics evaluate_on(Backend& be, const std::vector<float>& x_host, int64_t rows, int64_t cols,
                                  const std::vector<int32_t>& labels_host, const std::vector<uint8_t>& split_host) {
    Buffer<float> x(be, x_host);
    Buffer<int32_t> labels(be, labels_host);
    Buffer<uint8_t> split(be, split_host);
    StepRing sr(be, step_at(0));
    sr.fill_slots(sentinel_metrics());
    be.evaluate({x.data(), rows, cols}, labels.data(), split.data(), count_bit(split_host, gcn::kValBit), sr.state(),
                sr.ring(), false);
    return sr.slot(0);
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

// The free device memory a batch plans against: there, and an allocation
// takes at least its size out of it.
TEST_F(CudaOps, AvailableMemoryShrinksByAnAllocation) {
  constexpr std::size_t kBytes = std::size_t{64} << 20;
  const std::size_t before = gpu_->available_memory_bytes();
  ASSERT_GT(before, kBytes);
  void* p = gpu_->allocate(kBytes);
  EXPECT_LE(gpu_->available_memory_bytes(), before - kBytes);
  gpu_->deallocate(p);
}

TEST_F(CudaOps, UploadDownloadRoundTrip) {
  const std::vector<float> host = random_floats(1001, 1);
  Buffer<float> b(*gpu_, host);
  EXPECT_TRUE(all_equal(b.to_host(), host));
  // Into pinned host memory, there once synchronize() returns.
  auto* pinned = static_cast<float*>(gpu_->allocate_host(host.size() * sizeof(float)));
  gpu_->download_async(pinned, b.data(), host.size() * sizeof(float));
  gpu_->synchronize();
  EXPECT_TRUE(all_equal(std::vector<float>(pinned, pinned + host.size()), host));
  gpu_->deallocate_host(pinned);
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
    const auto bias_host = random_floats(static_cast<std::size_t>(cs.n), 22);
    for (const bool with_bias : {false, true}) {
      auto [got, ref] = on_both([&](Backend& be) {
        auto a = be.upload_csr(csr);
        Buffer<float> b(be, b_host), bias(be, bias_host);
        Buffer<float> c(be, std::vector<float>(static_cast<std::size_t>(cs.rows * cs.n), kNaN));
        be.spmm(*a, {b.data(), cs.cols, cs.n}, {c.data(), cs.rows, cs.n}, with_bias ? bias.data() : nullptr);
        return c.to_host();
      });
      EXPECT_TRUE(all_close(got, ref, {1e-5, 1e-5}, cs.n)) << "rows=" << cs.rows << " cols=" << cs.cols
                                                            << " nnz=" << csr.nnz() << " n=" << cs.n
                                                            << " bias=" << with_bias;
    }
  }
}

// Compares a product with the CPU's: rows of at most kSegmentNnz (128)
// entries bit for bit when our kernel computed it (it sums a row in stored
// order with separate multiply and add roundings, as the CPU does), the rows
// it cut into segments (partial sums added in segment order) and cuSPARSE's
// products within a tolerance.
::testing::AssertionResult spmm_matches_cpu(const std::vector<float>& got, const std::vector<float>& ref,
                                            const gcn::CsrMatrix& a, int64_t n, bool our_kernel) {
  std::vector<float> got_short, ref_short, got_long, ref_long;
  for (int32_t r = 0; r < a.n_rows; ++r) {
    const bool cut = a.indptr[r + 1] - a.indptr[r] > 128;
    auto& g = (our_kernel && !cut) ? got_short : got_long;
    auto& f = (our_kernel && !cut) ? ref_short : ref_long;
    g.insert(g.end(), got.begin() + r * n, got.begin() + (r + 1) * n);
    f.insert(f.end(), ref.begin() + r * n, ref.begin() + (r + 1) * n);
  }
  const ::testing::AssertionResult exact = same_bits(got_short, ref_short, n);
  if (!exact) return ::testing::AssertionFailure() << "rows of at most 128 entries (bit for bit): " << exact.message();
  const ::testing::AssertionResult close = all_close(got_long, ref_long, {1e-4, 1e-5}, n);
  if (!close) return ::testing::AssertionFailure() << "cut rows or cuSPARSE: " << close.message();
  return ::testing::AssertionSuccess();
}

// Every SpMM implementation GCN_SPMM_ALG can pick (cuSPARSE CSR_ALG3, the
// default; CSR_ALG2; CSR_ALG1; our own kernel) against the CPU, with and
// without a bias, on a Cora-like graph, a features-like matrix, awkward
// shapes and a matrix of rows long enough to be cut; one column always takes
// our kernel. The ones we rely on for bit-identical reruns (alg3 and the
// kernel) also twice to the same bytes.
TEST_F(CudaOps, SpmmEveryAlgorithmMatchesTheCpu) {
  const gcn::CsrMatrix big = random_csr(700, 700, 0.006, 13, 30);   // about 4 non-zeros per row
  const gcn::CsrMatrix tall = random_csr(120, 1433, 0.013, 0, 31);  // like X (18 non-zeros per row)
  const gcn::CsrMatrix odd = random_csr(33, 64, 0.3, 2, 32);
  const gcn::CsrMatrix cut = csr_with_row_lengths(kCutRowLengths, 1100, 33);
  struct Case {
    const gcn::CsrMatrix* a;
    const char* name;
    int64_t n;
  };
  const Case cases[] = {{&big, "graph", 16}, {&big, "graph", 7}, {&tall, "features", 16}, {&odd, "odd", 1},
                        {&odd, "odd", 33},   {&cut, "cut", 1},   {&cut, "cut", 7},        {&cut, "cut", 16},
                        {&cut, "cut", 33}};
  for (const char* alg : kSpmmAlgs) {
    const gcn::test::ScopedEnv env("GCN_SPMM_ALG", alg);
    const std::unique_ptr<Backend> gpu = gcn::make_cuda_backend(0);
    for (const Case& cs : cases) {
      const int64_t rows = cs.a->n_rows, inner = cs.a->n_cols;
      const auto b_host = random_floats(static_cast<std::size_t>(inner * cs.n), 33);
      const auto bias_host = random_floats(static_cast<std::size_t>(cs.n), 34);
      for (const bool with_bias : {false, true}) {
        auto run = [&](Backend& be) {
          auto a = be.upload_csr(*cs.a);
          Buffer<float> b(be, b_host), bias(be, bias_host);
          Buffer<float> c(be, std::vector<float>(static_cast<std::size_t>(rows * cs.n), kNaN));
          be.spmm(*a, {b.data(), inner, cs.n}, {c.data(), rows, cs.n}, with_bias ? bias.data() : nullptr);
          return c.to_host();
        };
        const std::vector<float> ref = run(*cpu_);
        const std::vector<float> got = run(*gpu);
        const bool our_kernel = std::string(alg) == "kernel" || cs.n == 1;
        EXPECT_TRUE(spmm_matches_cpu(got, ref, *cs.a, cs.n, our_kernel))
            << alg << ": " << cs.name << " rows=" << rows << " inner=" << inner << " n=" << cs.n
            << " bias=" << with_bias;
        if (std::string(alg) == "alg3" || our_kernel) {
          EXPECT_TRUE(same_bits(run(*gpu), got, cs.n))
              << alg << " is not bit-identical run to run: " << cs.name << " n=" << cs.n << " bias=" << with_bias;
        }
      }
    }
  }
  const gcn::test::ScopedEnv bad("GCN_SPMM_ALG", "alg9");
  EXPECT_THROW(gcn::make_cuda_backend(0), gcn::UsageError);
}

// Our kernel on rows cut into segments: products one after another in the
// same buffers (new column counts in between, bias on and off) give the same
// bits each time, which they would not if a row's completion counter were
// left non-zero or a partial sum read stale; rows of at most 128 entries are
// the CPU's bits.
TEST_F(CudaOps, SpmmKernelCutRowsLeaveItsCountersAtZero) {
  const gcn::test::ScopedEnv env("GCN_SPMM_ALG", "kernel");
  const std::unique_ptr<Backend> gpu = gcn::make_cuda_backend(0);
  const gcn::CsrMatrix a_host = csr_with_row_lengths(kCutRowLengths, 1100, 40);
  auto a = gpu->upload_csr(a_host);
  auto a_cpu = cpu_->upload_csr(a_host);
  constexpr int64_t kMaxN = 33;
  const auto b_host = random_floats(static_cast<std::size_t>(a_host.n_cols * kMaxN), 41);
  const auto bias_host = random_floats(kMaxN, 42);
  Buffer<float> b(*gpu, b_host), bias(*gpu, bias_host), c(*gpu, a_host.n_rows * kMaxN);
  std::vector<std::vector<float>> first(kMaxN + 1);
  for (int pass = 0; pass < 3; ++pass) {
    for (const int64_t n : {int64_t{7}, int64_t{1}, int64_t{33}, int64_t{16}, int64_t{2}}) {
      const float* bias_ptr = (pass == 1) ? bias.data() : nullptr;
      gpu->spmm(*a, {b.data(), a_host.n_cols, n}, {c.data(), a_host.n_rows, n}, bias_ptr);
      std::vector<float> got = c.to_host();
      got.resize(static_cast<std::size_t>(a_host.n_rows * n));
      if (pass == 1) {
        std::vector<float> ref(got.size());
        cpu_->spmm(*a_cpu, {b_host.data(), a_host.n_cols, n}, {ref.data(), a_host.n_rows, n}, bias_host.data());
        EXPECT_TRUE(spmm_matches_cpu(got, ref, a_host, n, true)) << "with bias, n=" << n;
        continue;
      }
      std::vector<float> ref(got.size());
      cpu_->spmm(*a_cpu, {b_host.data(), a_host.n_cols, n}, {ref.data(), a_host.n_rows, n});
      EXPECT_TRUE(spmm_matches_cpu(got, ref, a_host, n, true)) << "pass " << pass << ", n=" << n;
      if (pass == 0) {
        first[n] = got;
      } else {
        EXPECT_TRUE(same_bits(got, first[n], n)) << "n=" << n << " differs from its first product";
      }
    }
  }
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
  const auto bias_host = random_floats(kMaxN, 43);
  Buffer<float> bias(*gpu_, bias_host);
  auto check_pass = [&](Buffer<float>& b, Buffer<float>& c, uint32_t seed, const std::vector<int64_t>& ns) {
    for (const int64_t n : ns) {
      const auto b_host = random_floats(static_cast<std::size_t>(csr.n_cols * n), seed + static_cast<uint32_t>(n));
      const bool with_bias = n % 3 == 0;
      gpu_->upload(b.data(), b_host.data(), b_host.size() * sizeof(float));
      gpu_->spmm(*a_gpu, {b.data(), csr.n_cols, n}, {c.data(), csr.n_rows, n}, with_bias ? bias.data() : nullptr);
      std::vector<float> got = c.to_host();
      got.resize(static_cast<std::size_t>(csr.n_rows * n));
      std::vector<float> ref(got.size());
      cpu_->spmm(*a_cpu, {b_host.data(), csr.n_cols, n}, {ref.data(), csr.n_rows, n},
                 with_bias ? bias_host.data() : nullptr);
      ASSERT_TRUE(all_close(got, ref, {1e-5, 1e-5}, n)) << "seed " << seed << ", n=" << n << " bias=" << with_bias;
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

// prepare_outputs fills (in one launch on CUDA) the outputs of the products
// that follow with prepared = true: zeros, or the bias on every row. Outputs
// that held NaN come out right on every algorithm, with the products in any
// order, the most outputs at once (8), one-column products (our kernel) and
// an empty matrix among them.
TEST_F(CudaOps, SpmmPreparedOutputsOnEveryAlgorithm) {
  const gcn::CsrMatrix graph = random_csr(90, 90, 0.05, 9, 50);
  const gcn::CsrMatrix cut = csr_with_row_lengths({3, 200, 0, 129, 17}, 400, 51);
  const gcn::CsrMatrix empty = random_csr(12, 30, 0.0, 0, 52);
  struct Product {
    const gcn::CsrMatrix* a;
    int64_t n;
    bool bias;
  };
  const Product products[gcn::Backend::kMaxOutputInits] = {{&graph, 16, true}, {&graph, 7, false}, {&cut, 16, true},
                                                           {&cut, 5, false},   {&graph, 1, true},  {&cut, 1, false},
                                                           {&empty, 8, true},  {&empty, 3, false}};
  for (const char* alg : kSpmmAlgs) {
    const gcn::test::ScopedEnv env("GCN_SPMM_ALG", alg);
    const std::unique_ptr<Backend> gpu = gcn::make_cuda_backend(0);
    auto run = [&](Backend& be) {
      std::vector<std::unique_ptr<gcn::SparseMatrix>> as;
      std::vector<Buffer<float>> bs, cs, biases;
      gcn::OutputInit inits[gcn::Backend::kMaxOutputInits];
      for (int i = 0; i < gcn::Backend::kMaxOutputInits; ++i) {
        const Product& p = products[i];
        as.push_back(be.upload_csr(*p.a));
        bs.emplace_back(be, random_floats(static_cast<std::size_t>(p.a->n_cols * p.n), 60 + i));
        biases.emplace_back(be, random_floats(static_cast<std::size_t>(p.n), 70 + i));
        cs.emplace_back(be, std::vector<float>(static_cast<std::size_t>(p.a->n_rows * p.n), kNaN));
        inits[i] = {{cs[i].data(), p.a->n_rows, p.n}, p.bias ? biases[i].data() : nullptr};
      }
      be.prepare_outputs(inits, gcn::Backend::kMaxOutputInits);
      for (int i = gcn::Backend::kMaxOutputInits - 1; i >= 0; --i) {  // the products in another order
        const Product& p = products[i];
        be.spmm(*as[i], {bs[i].data(), p.a->n_cols, p.n}, {cs[i].data(), p.a->n_rows, p.n},
                p.bias ? biases[i].data() : nullptr, true);
      }
      std::vector<std::vector<float>> out;
      for (auto& c : cs) out.push_back(c.to_host());
      return out;
    };
    const auto ref = run(*cpu_);
    const auto got = run(*gpu);
    for (int i = 0; i < gcn::Backend::kMaxOutputInits; ++i) {
      const Product& p = products[i];
      const bool our_kernel = std::string(alg) == "kernel" || p.n == 1;
      EXPECT_TRUE(spmm_matches_cpu(got[i], ref[i], *p.a, p.n, our_kernel))
          << alg << ": prepared product " << i << " (n=" << p.n << ", bias=" << p.bias << ")";
    }
  }
}

TEST_F(CudaOps, ColumnSum) {
  for (const auto& shape :
       {std::pair<int64_t, int64_t>{1, 1}, {1, 40}, {300, 1}, {1000, 7}, {700, 16}, {9001, 3}, {257, 129}}) {
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

// The same step state (seed, epoch) gives the same dropout mask on both
// devices, exactly; the backward (out of place and in place) the same
// gradient, and its column sums the CPU's within rounding.
TEST_F(CudaOps, ReluDropoutMasksMatchExactly) {
  for (const float p : {0.0f, 0.5f, 0.9f}) {
    for (const auto& shape : {std::pair<int64_t, int64_t>{1, 1}, {37, 33}, {300, 17}, {130, 16}, {70, 1}}) {
      const int64_t rows = shape.first, cols = shape.second;
      const auto x_host = random_floats(static_cast<std::size_t>(rows * cols), 50);
      const auto dy_host = random_floats(static_cast<std::size_t>(rows * cols), 51);
      auto [got, ref] = on_both([&](Backend& be) {
        StepRing sr(be, step_at(6, 1234));
        Buffer<float> x(be, x_host), y(be, rows * cols), dy(be, dy_host), dx(be, rows * cols);
        Buffer<float> sums(be, std::vector<float>(static_cast<std::size_t>(cols), kNaN));
        Buffer<float> sums_inplace(be, std::vector<float>(static_cast<std::size_t>(cols), kNaN));
        be.relu_dropout_forward({x.data(), rows, cols}, {y.data(), rows, cols}, p, sr.state());
        be.relu_dropout_backward({dy.data(), rows, cols}, {y.data(), rows, cols}, {dx.data(), rows, cols}, p,
                                 sums.data());
        be.relu_dropout_backward({dy.data(), rows, cols}, {y.data(), rows, cols}, {dy.data(), rows, cols}, p,
                                 sums_inplace.data());
        return std::vector<std::vector<float>>{y.to_host(), dx.to_host(), dy.to_host(), sums.to_host(),
                                               sums_inplace.to_host()};
      });
      const std::string what = "p=" + std::to_string(p) + " " + std::to_string(rows) + "x" + std::to_string(cols);
      EXPECT_TRUE(same_bits(got[0], ref[0], cols)) << "forward " << what;
      EXPECT_TRUE(same_bits(got[1], ref[1], cols)) << "backward " << what;
      EXPECT_TRUE(same_bits(got[2], ref[2], cols)) << "backward in place " << what;
      EXPECT_TRUE(all_close(got[3], ref[3], {1e-6, 1e-6})) << "column sums " << what;
      EXPECT_TRUE(same_bits(got[4], got[3])) << "column sums in place " << what;
      if (p > 0.0f) {  // the mask is dropout_keep(seed, epoch + 1, i)
        for (int64_t i = 0; i < rows * cols; ++i) {
          if (x_host[i] > 0.0f) {
            ASSERT_EQ(got[0][i] != 0.0f, gcn::dropout_keep(1234, 7, static_cast<uint64_t>(i), p)) << what << " i=" << i;
          }
        }
      }
    }
  }
  // Another epoch, another mask.
  const int64_t n = 2000;
  const std::vector<float> ones(n, 1.0f);
  std::vector<std::vector<float>> masks;
  for (const int64_t epoch : {int64_t{3}, int64_t{4}}) {
    StepRing sr(*gpu_, step_at(epoch, 99));
    Buffer<float> x(*gpu_, ones), y(*gpu_, n);
    gpu_->relu_dropout_forward({x.data(), 1, n}, {y.data(), 1, n}, 0.5f, sr.state());
    masks.push_back(y.to_host());
  }
  EXPECT_NE(masks[0], masks[1]);
}

// Special inputs: NaN, -0 and -inf become 0; +inf stays +inf where kept.
// Where a +inf is dropped the devices must agree too.
TEST_F(CudaOps, ReluDropoutSpecialValuesMatchTheCpu) {
  const int64_t n = 64;
  std::vector<float> x_host = random_floats(n, 55, -1.0f, 1.0f);
  for (int64_t i = 0; i < n; i += 4) {
    x_host[i] = kNaN;
    x_host[i + 1] = -0.0f;
    x_host[i + 2] = -kInf;
    x_host[i + 3] = kInf;
  }
  for (const float p : {0.0f, 0.5f}) {
    auto [got, ref] = on_both([&](Backend& be) {
      StepRing sr(be, step_at(0, 5));
      Buffer<float> x(be, x_host), y(be, std::vector<float>(n, 7.0f));
      be.relu_dropout_forward({x.data(), 1, n}, {y.data(), 1, n}, p, sr.state());
      return y.to_host();
    });
    EXPECT_TRUE(same_bits(got, ref)) << "p=" << p;
    for (int64_t i = 0; i < n; i += 4) {
      EXPECT_EQ(got[i], 0.0f) << i;
      EXPECT_EQ(got[i + 1], 0.0f) << i;
      EXPECT_EQ(got[i + 2], 0.0f) << i;
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

// The training loss against the CPU for every class count (the bias gradient
// summed by the kernel up to 256 classes, by a separate column sum beyond),
// masks empty, full and random, with and without the gradient; into the
// running epoch's slot (epoch 5 done, 4 slots: slot 1) and no other.
TEST_F(CudaOps, ClassifierLossLossGradientAndBiasGradient) {
  enum class Mask { kEmpty, kFull, kRandom };
  for (const int64_t cols : kClassCounts) {
    const std::vector<int64_t> row_counts =
        cols <= 256 ? std::vector<int64_t>{1, 5, 67, 300} : std::vector<int64_t>{1, 5, 40};
    for (const int64_t rows : row_counts) {
      for (const Mask mask : {Mask::kEmpty, Mask::kFull, Mask::kRandom}) {
        const auto x_host = classifier_logits(rows, cols, 70 + static_cast<uint32_t>(cols));
        const auto labels_host = random_labels(rows, cols, 71);
        std::vector<uint8_t> split_host = random_split(rows, 72);
        if (mask == Mask::kEmpty) std::fill(split_host.begin(), split_host.end(), uint8_t{0});
        if (mask == Mask::kFull) std::fill(split_host.begin(), split_host.end(), uint8_t{1});
        const uint8_t bit = 1;
        const int64_t n_masked = count_bit(split_host, bit);
        for (const bool with_grad : {true, false}) {
          auto [got, ref] = on_both([&](Backend& be) {
            Buffer<float> x(be, x_host);
            Buffer<int32_t> labels(be, labels_host);
            Buffer<uint8_t> split(be, split_host);
            Buffer<float> grad(be, std::vector<float>(x_host.size(), kNaN));
            Buffer<float> bias_grad(be, std::vector<float>(static_cast<std::size_t>(cols), kNaN));
            StepRing sr(be, step_at(5), 4);
            sr.fill_slots(sentinel_metrics());
            be.classifier_loss({x.data(), rows, cols}, labels.data(), split.data(), bit, n_masked,
                               with_grad ? MatRef{grad.data(), rows, cols} : MatRef{},
                               with_grad ? bias_grad.data() : nullptr, sr.state(), sr.ring());
            std::vector<float> slot_figures;
            for (const EpochMetrics& m : sr.slots()) {
              slot_figures.push_back(m.loss);
              slot_figures.push_back(m.val_loss);
              slot_figures.push_back(static_cast<float>(m.epoch));
            }
            return std::vector<std::vector<float>>{slot_figures, grad.to_host(), bias_grad.to_host()};
          });
          const std::string what = std::to_string(rows) + "x" + std::to_string(cols) + " mask=" +
                                   std::to_string(static_cast<int>(mask)) + " n_masked=" + std::to_string(n_masked) +
                                   " grad=" + std::to_string(with_grad);
          const float loss = got[0][3];  // slot 1's loss
          EXPECT_TRUE(all_close(std::vector<float>{loss}, std::vector<float>{ref[0][3]}, {1e-5, 1e-5})) << what;
          ASSERT_TRUE(std::isfinite(loss)) << what;
          if (mask == Mask::kEmpty) EXPECT_EQ(loss, 0.0f) << what;
          // Slots 0, 2, 3 and the other fields of slot 1 untouched.
          std::vector<float> untouched = got[0];
          untouched[3] = sentinel_metrics().loss;
          for (int s = 0; s < 4; ++s) {
            EXPECT_EQ(untouched[s * 3], sentinel_metrics().loss) << what << " slot " << s;
            EXPECT_EQ(untouched[s * 3 + 1], sentinel_metrics().val_loss) << what << " slot " << s;
            EXPECT_EQ(untouched[s * 3 + 2], static_cast<float>(sentinel_metrics().epoch)) << what << " slot " << s;
          }
          if (with_grad) {
            EXPECT_TRUE(all_close(got[1], ref[1], {1e-7, 1e-4}, cols)) << "grad " << what;
            EXPECT_TRUE(all_close(got[2], ref[2], {1e-5, 1e-4})) << "bias grad " << what;
          }
        }
      }
    }
  }
}

// A stopped state: no loss, no gradient, no bias gradient written.
TEST_F(CudaOps, ClassifierLossWritesNothingWhenStopped) {
  for (const int64_t cols : {int64_t{7}, int64_t{1000}}) {
    const int64_t rows = 37;
    const auto x_host = classifier_logits(rows, cols, 75);
    StepState stopped = step_at(2);
    stopped.stopped = 1;
    StepRing sr(*gpu_, stopped, 3);
    sr.fill_slots(sentinel_metrics());
    Buffer<float> x(*gpu_, x_host), grad(*gpu_, std::vector<float>(x_host.size(), 7.0f));
    Buffer<float> bias_grad(*gpu_, std::vector<float>(static_cast<std::size_t>(cols), 7.0f));
    Buffer<int32_t> labels(*gpu_, random_labels(rows, cols, 76));
    Buffer<uint8_t> split(*gpu_, std::vector<uint8_t>(rows, 1));
    gpu_->classifier_loss({x.data(), rows, cols}, labels.data(), split.data(), 1, rows, {grad.data(), rows, cols},
                          bias_grad.data(), sr.state(), sr.ring());
    for (const EpochMetrics& m : sr.slots()) EXPECT_TRUE(gcn::test::same_bytes(m, sentinel_metrics())) << cols;
    EXPECT_TRUE(all_equal(grad.to_host(), std::vector<float>(x_host.size(), 7.0f))) << cols;
    EXPECT_TRUE(all_equal(bias_grad.to_host(), std::vector<float>(static_cast<std::size_t>(cols), 7.0f))) << cols;
    EXPECT_TRUE(gcn::test::same_bytes(sr.get(), stopped));
  }
}

// The unfused baseline gcn-bench compares against: nll_loss of log-probs,
// against the CPU and against the fused op on the GPU itself.
TEST_F(CudaOps, UnfusedNllMatchesTheCpuAndTheFusedOp) {
  for (const int64_t cols : {int64_t{2}, int64_t{7}, int64_t{33}, int64_t{1000}}) {
    const int64_t rows = cols == 1000 ? 23 : 211;
    const auto x_host = classifier_logits(rows, cols, 90 + static_cast<uint32_t>(cols));
    const auto labels_host = random_labels(rows, cols, 91);
    const std::vector<uint8_t> split_host = random_split(rows, 92);
    const int64_t n_masked = count_bit(split_host, 1);
    auto [got, ref] = on_both([&](Backend& be) {
      Buffer<float> x(be, x_host), logp(be, rows * cols);
      Buffer<int32_t> labels(be, labels_host);
      Buffer<uint8_t> split(be, split_host);
      Buffer<float> loss(be, std::vector<float>{kNaN});
      Buffer<float> grad(be, std::vector<float>(x_host.size(), kNaN)), fused_grad(be, rows * cols);
      StepRing sr(be, step_at(0));
      be.log_softmax({x.data(), rows, cols}, {logp.data(), rows, cols});
      be.bench_ops()->nll_loss({logp.data(), rows, cols}, labels.data(), split.data(), 1, n_masked, loss.data(),
                               grad.data());
      be.classifier_loss({x.data(), rows, cols}, labels.data(), split.data(), 1, n_masked,
                         {fused_grad.data(), rows, cols}, nullptr, sr.state(), sr.ring());
      return std::vector<std::vector<float>>{loss.to_host(), grad.to_host(), {sr.slot(0).loss},
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
    Buffer<float> x(*gpu_, x_host), y(*gpu_, rows * cols), grad(*gpu_, rows * cols), bias_grad(*gpu_, cols);
    Buffer<int32_t> labels(*gpu_, std::vector<int32_t>{0, static_cast<int32_t>(cols - 1)});
    Buffer<uint8_t> split(*gpu_, std::vector<uint8_t>{1, 1});
    StepRing sr(*gpu_, step_at(0));
    gpu_->log_softmax({x.data(), rows, cols}, {y.data(), rows, cols});
    gpu_->classifier_loss({x.data(), rows, cols}, labels.data(), split.data(), 1, 2, {grad.data(), rows, cols},
                          bias_grad.data(), sr.state(), sr.ring());
    const float expected = -std::log(static_cast<float>(cols));
    EXPECT_TRUE(all_close(y.to_host(), std::vector<float>(x_host.size(), expected), {1e-5, 1e-5}, cols)) << cols;
    EXPECT_NEAR(sr.slot(0).loss, -expected, 1e-5) << cols;
    for (const float g : grad.to_host()) ASSERT_TRUE(std::isfinite(g)) << cols;
    for (const float g : bias_grad.to_host()) ASSERT_TRUE(std::isfinite(g)) << cols;
  }
}

// Distinct shuffled values per row: the argmax is unambiguous. Labels equal
// to it make every row right, labels one past it none, random labels the
// CPU's counts; the validation loss the CPU's; the epoch 1.
TEST_F(CudaOps, EvaluateShuffledRowsCountExactly) {
  for (const int64_t cols : kClassCounts) {
    const int64_t rows = cols <= 256 ? 131 : 19;
    std::mt19937 rng(80 + static_cast<uint32_t>(cols));
    std::vector<float> x_host(static_cast<std::size_t>(rows * cols));
    std::vector<int32_t> argmax(static_cast<std::size_t>(rows));
    for (int64_t r = 0; r < rows; ++r) {
      std::vector<float> row(static_cast<std::size_t>(cols));
      for (int64_t j = 0; j < cols; ++j) row[j] = 0.25f * static_cast<float>(j) - 3.0f;  // distinct
      std::shuffle(row.begin(), row.end(), rng);
      std::copy(row.begin(), row.end(), x_host.begin() + r * cols);
      argmax[r] = static_cast<int32_t>(std::max_element(row.begin(), row.end()) - row.begin());
    }
    const auto split_host = random_split(rows, 81);
    const std::vector<bool> all_right(static_cast<std::size_t>(rows), true);
    const EpochMetrics right = evaluate_on(*gpu_, x_host, rows, cols, argmax, split_host);
    EXPECT_EQ(counts_of(right), expected_counts(split_host, all_right)) << "C=" << cols;
    EXPECT_EQ(right.epoch, 1) << "C=" << cols;
    if (cols > 1) {
      const EpochMetrics wrong = evaluate_on(*gpu_, x_host, rows, cols, shifted(argmax, cols), split_host);
      EXPECT_EQ(counts_of(wrong), std::vector<int32_t>({0, 0, 0})) << "C=" << cols;
    }
    // Half the labels right, the rest random: the CPU's counts and loss.
    std::vector<int32_t> mixed = argmax;
    for (int64_t r = 1; r < rows; r += 2) mixed[r] = static_cast<int32_t>(rng() % cols);
    const EpochMetrics got = evaluate_on(*gpu_, x_host, rows, cols, mixed, split_host);
    const EpochMetrics ref = evaluate_on(*cpu_, x_host, rows, cols, mixed, split_host);
    EXPECT_EQ(counts_of(got), counts_of(ref)) << "C=" << cols;
    EXPECT_TRUE(all_close(std::vector<float>{got.val_loss}, std::vector<float>{ref.val_loss}, {1e-5, 1e-5}))
        << "C=" << cols;
    EXPECT_EQ(got.epoch, ref.epoch);
    EXPECT_EQ(got.loss, sentinel_metrics().loss) << "evaluate wrote the training loss, C=" << cols;
  }
}

// Ties: the first maximum is the argmax (torch.argmax), wherever the tied
// values fall among the lanes sharing the row.
TEST_F(CudaOps, EvaluateTiesPickTheFirstMaximum) {
  for (const int64_t cols : kClassCounts) {
    const int64_t rows = cols <= 256 ? 64 : 16;
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
    const std::vector<uint8_t> split_host(static_cast<std::size_t>(rows), uint8_t{7});
    const int32_t n = static_cast<int32_t>(rows);
    for (Backend* be : {cpu_.get(), gpu_.get()}) {
      const char* dev = be == cpu_.get() ? "CPU" : "GPU";
      EXPECT_EQ(counts_of(evaluate_on(*be, x_host, rows, cols, expected, split_host)), std::vector<int32_t>({n, n, n}))
          << dev << ", C=" << cols;
      if (cols > 1) {
        EXPECT_EQ(counts_of(evaluate_on(*be, x_host, rows, cols, shifted(expected, cols), split_host)),
                  std::vector<int32_t>({0, 0, 0}))
            << dev << ", C=" << cols;
      }
    }
  }
}

// NaN logits (a run continued with --allow-nonfinite): the first NaN of a
// row is its argmax on both devices (torch.argmax), wherever it falls
// relative to the row's maximum and to the lanes that share the row.
TEST_F(CudaOps, EvaluateNanRowsMatchTheCpu) {
  for (const int64_t cols : kClassCounts) {
    const int64_t rows = cols <= 256 ? 96 : 16;
    std::mt19937 rng(120 + static_cast<uint32_t>(cols));
    std::vector<float> x_host = random_floats(static_cast<std::size_t>(rows * cols), 121, -1.0f, 1.0f);
    for (int64_t r = 0; r < rows; ++r) {
      float* row = x_host.data() + r * cols;
      row[rng() % cols] = 2.0f;                    // a maximum somewhere
      const int n_nans = static_cast<int>(r % 4);  // 0 to 3 NaNs
      for (int t = 0; t < n_nans; ++t) row[rng() % cols] = kNaN;
      if (r == 1) row[0] = kNaN;                     // NaN in column 0
      if (r == 2) std::fill(row, row + cols, kNaN);  // all NaN
    }
    std::vector<int32_t> expected(static_cast<std::size_t>(rows));
    for (int64_t r = 0; r < rows; ++r) {
      const float* row = x_host.data() + r * cols;
      const float* first_nan = std::find_if(row, row + cols, [](float v) { return std::isnan(v); });
      expected[r] = static_cast<int32_t>(first_nan != row + cols ? first_nan - row
                                                                  : std::max_element(row, row + cols) - row);
    }
    const std::vector<uint8_t> split_host = random_split(rows, 122);
    const std::vector<bool> all_right(static_cast<std::size_t>(rows), true);
    for (Backend* be : {cpu_.get(), gpu_.get()}) {
      const char* dev = be == cpu_.get() ? "CPU" : "GPU";
      EXPECT_EQ(counts_of(evaluate_on(*be, x_host, rows, cols, expected, split_host)),
                expected_counts(split_host, all_right))
          << dev << ", C=" << cols;
      if (cols > 1) {
        EXPECT_EQ(counts_of(evaluate_on(*be, x_host, rows, cols, shifted(expected, cols), split_host)),
                  std::vector<int32_t>({0, 0, 0}))
            << dev << ", C=" << cols;
      }
    }
  }
}

// The selection, step by step, on both devices: the hand-made sequence of
// test_cpu_ops (4 validation rows of (a, 0) with label 0; patience 3; a ring
// of 4 slots), each state and slot compared with the CPU's and the expected.
TEST_F(CudaOps, EvaluateSelectionMatchesTheCpuStepByStep) {
  const std::vector<uint8_t> split = {gcn::kValBit, gcn::kValBit, gcn::kValBit, gcn::kValBit, gcn::kTrainBit,
                                      gcn::kTestBit};
  const std::vector<int32_t> labels_host(6, 0);
  auto logits = [](std::vector<float> a) {
    std::vector<float> x;
    a.push_back(3.0f);
    a.push_back(-3.0f);
    for (float v : a) {
      x.push_back(v);
      x.push_back(0.0f);
    }
    return x;
  };
  struct Epoch {
    std::vector<float> a;
    bool advance;
    int32_t correct, improved, best_epoch, stopped;
    int64_t epoch_after;
  };
  const std::vector<Epoch> epochs = {
      {{1, 1, -1, -1}, false, 2, 1, 1, 0, 0},         {{1, 1, -1, -1}, true, 2, 0, 1, 0, 1},
      {{1, 1, 1, -1}, true, 3, 1, 2, 0, 2},           {{2, 2, 2, -1}, true, 3, 1, 3, 0, 3},
      {{2, 2, 2, -1}, true, 3, 0, 3, 0, 4},           {{0.5f, 0.5f, 0.5f, -1}, true, 3, 0, 3, 0, 5},
      {{1, -1, -1, 0}, true, 2, 0, 3, 1, 6},          {{5, 5, 5, 5}, true, 4, 0, 3, 1, 6},  // stopped: nothing
  };
  auto run = [&](Backend& be) {
    StepState init = step_at(0);
    init.patience = 3;
    StepRing sr(be, init, 4);
    Buffer<int32_t> labels(be, labels_host);
    Buffer<uint8_t> sp(be, split);
    std::vector<std::pair<StepState, std::vector<EpochMetrics>>> trace;
    for (const Epoch& e : epochs) {
      Buffer<float> x(be, logits(e.a));
      be.evaluate({x.data(), 6, 2}, labels.data(), sp.data(), 4, sr.state(), sr.ring(), e.advance);
      trace.emplace_back(sr.get(), sr.slots());
    }
    return trace;
  };
  auto [got, ref] = on_both(run);
  for (std::size_t i = 0; i < epochs.size(); ++i) {
    const Epoch& e = epochs[i];
    const StepState& s = got[i].first;
    const std::string where = "evaluation " + std::to_string(i);
    EXPECT_EQ(s.improved, e.improved) << where;
    EXPECT_EQ(s.best_epoch, e.best_epoch) << where;
    EXPECT_EQ(s.stopped, e.stopped) << where;
    EXPECT_EQ(s.epoch, e.epoch_after) << where;
    EXPECT_EQ(s.patience, 3) << where;
    EXPECT_EQ(s.best_val_correct, ref[i].first.best_val_correct) << where;
    EXPECT_NEAR(s.best_val_loss, ref[i].first.best_val_loss, 1e-6) << where;
    for (int k = 0; k < 4; ++k) {
      const EpochMetrics& g = got[i].second[k];
      const EpochMetrics& r = ref[i].second[k];
      EXPECT_EQ(g.epoch, r.epoch) << where << " slot " << k;
      EXPECT_EQ(counts_of(g), counts_of(r)) << where << " slot " << k;
      EXPECT_NEAR(g.val_loss, r.val_loss, 1e-6) << where << " slot " << k;
    }
  }
  // The last evaluation (stopped) changed nothing at all.
  const std::size_t last = epochs.size() - 1;
  EXPECT_TRUE(gcn::test::same_bytes(got[last].first, got[last - 1].first));
  for (int k = 0; k < 4; ++k) EXPECT_TRUE(gcn::test::same_bytes(got[last].second[k], got[last - 1].second[k])) << k;
  // Slots hold epochs 5, 6, 3, 4.
  EXPECT_EQ(got[last].second[0].epoch, 5);
  EXPECT_EQ(got[last].second[1].epoch, 6);
  EXPECT_EQ(got[last].second[2].epoch, 3);
  EXPECT_EQ(got[last].second[3].epoch, 4);
}

// Three steps of torch.optim.Adam(lr=0.1, weight_decay=0.01), values printed
// by PyTorch 1.13, step k from the step state; a stopped state changes nothing.
TEST_F(CudaOps, AdamMatchesPyTorch) {
  const std::vector<std::vector<float>> grads = {
      {0.5f, -0.25f, 0.0f, 2.0f}, {0.5f, 0.75f, -1.0f, -2.0f}, {-0.1f, 0.2f, 0.3f, 0.4f}};
  const std::vector<std::vector<float>> expected = {{0.900000036f, -1.89999998f, 0.0f, 2.9000001f},
                                                    {0.800005198f, -1.9466027f, 0.0744136795f, 2.90378833f},
                                                    {0.73142904f, -1.99612153f, 0.111089796f, 2.89709926f}};
  gcn::AdamConfig cfg;
  cfg.lr = 0.1f;
  cfg.weight_decay = 0.01f;
  Buffer<float> p(*gpu_, std::vector<float>{1.0f, -2.0f, 0.0f, 3.0f}), m(*gpu_, 4), v(*gpu_, 4), g(*gpu_, 4);
  m.zero();
  v.zero();
  StepRing sr(*gpu_, step_at(0));
  for (int step = 1; step <= 3; ++step) {
    sr.set(step_at(step - 1));
    g.from_host(grads[step - 1]);
    gpu_->adam_step(p.data(), g.data(), m.data(), v.data(), 4, cfg, sr.state());
    EXPECT_TRUE(all_close(p.to_host(), expected[step - 1], {2e-7, 1e-7})) << "step " << step;
  }
  StepState stopped = step_at(3);
  stopped.stopped = 1;
  sr.set(stopped);
  const auto p0 = p.to_host(), m0 = m.to_host(), v0 = v.to_host();
  gpu_->adam_step(p.data(), g.data(), m.data(), v.data(), 4, cfg, sr.state());
  EXPECT_TRUE(same_bits(p.to_host(), p0));
  EXPECT_TRUE(same_bits(m.to_host(), m0));
  EXPECT_TRUE(same_bits(v.to_host(), v0));
}

TEST_F(CudaOps, AdamSeveralStepsMatchTheCpu) {
  gcn::AdamConfig cfg;
  for (const int64_t n : {int64_t{1}, int64_t{1000}, int64_t{4099}}) {
    const auto p0 = random_floats(static_cast<std::size_t>(n), 100);
    auto [got, ref] = on_both([&](Backend& be) {
      Buffer<float> params(be, p0), m(be, n), v(be, n), grads(be, n);
      m.zero();
      v.zero();
      StepRing sr(be, step_at(0));
      for (int64_t step = 1; step <= 5; ++step) {
        sr.set(step_at(step - 1));
        grads.from_host(random_floats(static_cast<std::size_t>(n), 200 + static_cast<uint32_t>(step)));
        be.adam_step(params.data(), grads.data(), m.data(), v.data(), n, cfg, sr.state());
      }
      return std::vector<std::vector<float>>{params.to_host(), m.to_host(), v.to_host()};
    });
    EXPECT_TRUE(all_close(got[0], ref[0], {1e-6, 1e-5})) << "params n=" << n;
    EXPECT_TRUE(all_close(got[1], ref[1], {1e-7, 1e-5})) << "m n=" << n;
    EXPECT_TRUE(all_close(got[2], ref[2], {1e-9, 1e-5})) << "v n=" << n;
  }
}

TEST_F(CudaOps, CopyIfImproved) {
  const std::vector<float> src_host = random_floats(1001, 130);
  const std::vector<float> dst_host(1001, -1.0f);
  for (const int32_t improved : {0, 1}) {
    auto [got, ref] = on_both([&](Backend& be) {
      StepState s = step_at(4);
      s.improved = improved;
      StepRing sr(be, s);
      Buffer<float> src(be, src_host), dst(be, dst_host);
      be.copy_if_improved(dst.data(), src.data(), src.bytes(), sr.state());
      return dst.to_host();
    });
    EXPECT_TRUE(same_bits(got, improved != 0 ? src_host : dst_host)) << "improved=" << improved;
    EXPECT_TRUE(same_bits(got, ref)) << "improved=" << improved;
  }
}

TEST_F(CudaOps, EmptyInputs) {
  StepRing sr(*gpu_, step_at(0, 1));
  gpu_->relu_dropout_forward({nullptr, 0, 7}, {nullptr, 0, 7}, 0.5f, sr.state());
  gpu_->relu_dropout_backward({nullptr, 0, 7}, {nullptr, 0, 7}, {nullptr, 0, 7}, 0.5f);
  gpu_->log_softmax({nullptr, 0, 7}, {nullptr, 0, 7});
  gpu_->adam_step(nullptr, nullptr, nullptr, nullptr, 0, gcn::AdamConfig{}, sr.state());
  Buffer<float> sums(*gpu_, std::vector<float>(4, kNaN)), bsums(*gpu_, std::vector<float>(4, kNaN));
  gpu_->column_sum({nullptr, 0, 4}, sums.data());
  gpu_->relu_dropout_backward({nullptr, 0, 4}, {nullptr, 0, 4}, {nullptr, 0, 4}, 0.5f, bsums.data());
  EXPECT_TRUE(all_equal(sums.to_host(), std::vector<float>(4, 0.0f)));
  EXPECT_TRUE(all_equal(bsums.to_host(), std::vector<float>(4, 0.0f)));
  // A product with no rows, and one with no columns.
  const gcn::CsrMatrix none = random_csr(0, 5, 0.5, 0, 1);
  auto a0 = gpu_->upload_csr(none);
  Buffer<float> b(*gpu_, std::vector<float>(15, 1.0f));
  gpu_->spmm(*a0, {b.data(), 5, 3}, {nullptr, 0, 3});
  gpu_->prepare_outputs(nullptr, 0);
  EXPECT_TRUE(gcn::test::same_bytes(sr.get(), step_at(0, 1)));
}

// Edge cases where the backends must behave alike: an empty classifier
// input (no rows), and a byte count that is not whole floats.
TEST_F(CudaOps, BackendsAgreeOnEdgeCases) {
  auto outcome = [](Backend& be, const std::function<std::string(Backend&, StepRing&)>& f) {
    StepRing sr(be, step_at(0), 2);
    try {
      return f(be, sr);
    } catch (const gcn::Error& e) {
      return std::string("error: ") + e.what();
    }
  };
  auto describe = [](const EpochMetrics& m, const StepState& s) {
    return "loss " + std::to_string(m.loss) + ", val_loss " + std::to_string(m.val_loss) + ", correct " +
           std::to_string(m.correct[0]) + "/" + std::to_string(m.correct[1]) + "/" + std::to_string(m.correct[2]) +
           ", epoch " + std::to_string(m.epoch) + "; best " + std::to_string(s.best_epoch) + ", step " +
           std::to_string(s.epoch);
  };
  const std::function<std::string(Backend&, StepRing&)> cases[] = {
      [&](Backend& be, StepRing& sr) {  // the training loss over no rows
        be.classifier_loss({nullptr, 0, 7}, nullptr, nullptr, 1, 0, MatRef{}, nullptr, sr.state(), sr.ring());
        return "classifier_loss of no rows: " + describe(sr.slot(0), sr.get());
      },
      [&](Backend& be, StepRing& sr) {  // the evaluation of no rows
        be.evaluate({nullptr, 0, 7}, nullptr, nullptr, 0, sr.state(), sr.ring(), true);
        return "evaluate of no rows: " + describe(sr.slot(0), sr.get());
      },
      [&](Backend& be, StepRing& sr) {  // a copy of 6 bytes
        StepState s = step_at(0);
        s.improved = 1;
        sr.set(s);
        Buffer<uint8_t> src(be, std::vector<uint8_t>{1, 2, 3, 4, 5, 6}), dst(be, std::vector<uint8_t>(6, 0));
        be.copy_if_improved(dst.data(), src.data(), 6, sr.state());
        const std::vector<uint8_t> out = dst.to_host();
        return "copy_if_improved of 6 bytes: " + std::to_string(out[5]);
      },
  };
  for (const auto& f : cases) {
    const std::string cpu = outcome(*cpu_, f);
    const std::string gpu = outcome(*gpu_, f);
    EXPECT_EQ(gpu, cpu);
  }
}

// The argument checks live in the shared front end (src/backend/backend.cpp): the
// same bad call gets the same message from both backends, and changes nothing.
TEST_F(CudaOps, ArgumentChecksGiveTheSameMessageOnBothBackends) {
  struct BadCall {
    const char* expected;
    std::function<void(Backend&, float*, float*, float*, int32_t*, uint8_t*, StepRing&, gcn::SparseMatrix&)> call;
  };
  const std::vector<BadCall> calls = {
      {"relu_dropout_forward: p = 1 outside [0, 1)",
       [](Backend& be, float* x, float* y, float*, int32_t*, uint8_t*, StepRing& sr, gcn::SparseMatrix&) {
         be.relu_dropout_forward({x, 4, 3}, {y, 4, 3}, 1.0f, sr.state());
       }},
      {"relu_dropout_forward: the output aliases the input",
       [](Backend& be, float* x, float*, float*, int32_t*, uint8_t*, StepRing& sr, gcn::SparseMatrix&) {
         be.relu_dropout_forward({x, 4, 3}, {x, 4, 3}, 0.5f, sr.state());
       }},
      {"relu_dropout_forward: (4, 3) -> (3, 4)",
       [](Backend& be, float* x, float* y, float*, int32_t*, uint8_t*, StepRing& sr, gcn::SparseMatrix&) {
         be.relu_dropout_forward({x, 4, 3}, {y, 3, 4}, 0.5f, sr.state());
       }},
      {"relu_dropout_backward: p = 1 outside [0, 1)",
       [](Backend& be, float* x, float* y, float* g, int32_t*, uint8_t*, StepRing&, gcn::SparseMatrix&) {
         be.relu_dropout_backward({x, 4, 3}, {y, 4, 3}, {g, 4, 3}, 1.0f, g);
       }},
      {"classifier_loss: n_masked = 5 for 4 rows",
       [](Backend& be, float* x, float*, float* g, int32_t* l, uint8_t* s, StepRing& sr, gcn::SparseMatrix&) {
         be.classifier_loss({x, 4, 3}, l, s, 1, 5, {g, 4, 3}, nullptr, sr.state(), sr.ring());
       }},
      {"classifier_loss: (4, 3) -> gradient (4, 2)",
       [](Backend& be, float* x, float*, float* g, int32_t* l, uint8_t* s, StepRing& sr, gcn::SparseMatrix&) {
         be.classifier_loss({x, 4, 3}, l, s, 1, 4, {g, 4, 2}, nullptr, sr.state(), sr.ring());
       }},
      {"classifier_loss: a bias gradient needs the gradient",
       [](Backend& be, float* x, float* y, float*, int32_t* l, uint8_t* s, StepRing& sr, gcn::SparseMatrix&) {
         be.classifier_loss({x, 4, 3}, l, s, 1, 4, MatRef{}, y, sr.state(), sr.ring());
       }},
      {"evaluate: n_val = -1 for 4 rows",
       [](Backend& be, float* x, float*, float*, int32_t* l, uint8_t* s, StepRing& sr, gcn::SparseMatrix&) {
         be.evaluate({x, 4, 3}, l, s, -1, sr.state(), sr.ring(), true);
       }},
      {"evaluate: no step state",
       [](Backend& be, float* x, float*, float*, int32_t* l, uint8_t* s, StepRing& sr, gcn::SparseMatrix&) {
         be.evaluate({x, 4, 3}, l, s, 0, nullptr, sr.ring(), true);
       }},
      {"spmm: shapes (3, 3) x (4, 3) -> (3, 3)",
       [](Backend& be, float* x, float* y, float*, int32_t*, uint8_t*, StepRing&, gcn::SparseMatrix& a) {
         be.spmm(a, {x, 4, 3}, {y, 3, 3});
       }},
      {"spmm: the output aliases the dense operand",
       [](Backend& be, float* x, float*, float*, int32_t*, uint8_t*, StepRing&, gcn::SparseMatrix& a) {
         be.spmm(a, {x, 3, 4}, {x, 3, 4});
       }},
      {"gemm: op(a) (4, 3) x op(b) (4, 3) -> (4, 4) (trans_a=false, trans_b=false)",
       [](Backend& be, float* x, float* y, float* g, int32_t*, uint8_t*, StepRing&, gcn::SparseMatrix&) {
         be.gemm({x, 4, 3}, false, {y, 4, 3}, false, {g, 4, 4});
       }},
      {"adam_step: n = -4",
       [](Backend& be, float* x, float* y, float* g, int32_t*, uint8_t*, StepRing& sr, gcn::SparseMatrix&) {
         be.adam_step(x, g, y, y, -4, gcn::AdamConfig{}, sr.state());
       }},
      {"prepare_outputs: 9 outputs (at most 8)",
       [](Backend& be, float*, float*, float*, int32_t*, uint8_t*, StepRing&, gcn::SparseMatrix&) {
         const gcn::OutputInit nine[9] = {};
         be.prepare_outputs(nine, 9);
       }},
  };
  gcn::CsrMatrix eye;
  eye.n_rows = 3;
  eye.n_cols = 3;
  eye.indptr = {0, 1, 2, 3};
  eye.indices = {0, 1, 2};
  eye.values = {1, 1, 1};
  const std::vector<float> x_host = random_floats(16, 140);
  for (const BadCall& bad : calls) {
    auto [got, ref] = on_both([&](Backend& be) {
      Buffer<float> x(be, x_host), y(be, std::vector<float>(16, 5.0f)), g(be, std::vector<float>(16, 6.0f));
      Buffer<int32_t> labels(be, std::vector<int32_t>(4, 0));
      Buffer<uint8_t> split(be, std::vector<uint8_t>(4, 1));
      StepRing sr(be, step_at(2, 3));
      auto a = be.upload_csr(eye);
      const std::string message =
          error_of([&] { bad.call(be, x.data(), y.data(), g.data(), labels.data(), split.data(), sr, *a); });
      const bool unchanged = all_equal(x.to_host(), x_host) && all_equal(y.to_host(), std::vector<float>(16, 5.0f)) &&
                             all_equal(g.to_host(), std::vector<float>(16, 6.0f)) &&
                             gcn::test::same_bytes(sr.get(), step_at(2, 3));
      return std::make_pair(message, unchanged);
    });
    EXPECT_EQ(got.first, bad.expected);
    EXPECT_EQ(ref.first, bad.expected);
    EXPECT_TRUE(got.second) << bad.expected << ": the GPU call changed its arguments";
    EXPECT_TRUE(ref.second) << bad.expected << ": the CPU call changed its arguments";
  }
}

// Same inputs twice -> the same bytes (no floating-point atomics, a
// deterministic SpMM algorithm, fixed reduction orders): the loss, its
// gradient and bias gradient, the evaluation, SpMM with a bias (rows cut
// into segments included), column sums and the backward's column sums.
TEST_F(CudaOps, RunToRunBitIdentical) {
  const int64_t rows = 700;
  const gcn::CsrMatrix csr = random_csr(static_cast<int32_t>(rows), static_cast<int32_t>(rows), 0.006, 11, 110);
  const gcn::CsrMatrix cut = csr_with_row_lengths({0, 1, 128, 129, 300, 650, 5}, static_cast<int32_t>(rows), 111);
  auto a = gpu_->upload_csr(csr);
  auto a_cut = gpu_->upload_csr(cut);
  for (const int64_t cols : {int64_t{7}, int64_t{300}}) {
    const int64_t r = cols == 7 ? rows : 60;  // fewer rows for the wide case
    const auto x_host = classifier_logits(rows, cols, 111);
    const auto labels_host = random_labels(rows, cols, 112);
    const auto split_host = random_split(rows, 113);
    const int64_t n_masked = count_bit(std::vector<uint8_t>(split_host.begin(), split_host.begin() + r), 2);
    const int64_t n_val = n_masked;
    const auto bias_host = random_floats(static_cast<std::size_t>(cols), 114);
    auto run = [&]() {
      Buffer<float> x(*gpu_, x_host), grad(*gpu_, rows * cols), bias_grad(*gpu_, cols), ax(*gpu_, rows * cols),
          cx(*gpu_, cut.n_rows * cols), sums(*gpu_, cols), dx(*gpu_, rows * cols), dsums(*gpu_, cols),
          bias(*gpu_, bias_host);
      Buffer<int32_t> labels(*gpu_, labels_host);
      Buffer<uint8_t> split(*gpu_, split_host);
      StepRing sr(*gpu_, step_at(0), 2);
      gpu_->classifier_loss({x.data(), r, cols}, labels.data(), split.data(), 2, n_masked, {grad.data(), r, cols},
                            bias_grad.data(), sr.state(), sr.ring());
      gpu_->evaluate({x.data(), r, cols}, labels.data(), split.data(), n_val, sr.state(), sr.ring(), true);
      gpu_->spmm(*a, {x.data(), rows, cols}, {ax.data(), rows, cols}, bias.data());
      gpu_->spmm(*a_cut, {x.data(), rows, cols}, {cx.data(), cut.n_rows, cols}, bias.data());
      gpu_->column_sum({grad.data(), r, cols}, sums.data());
      gpu_->relu_dropout_backward({grad.data(), r, cols}, {x.data(), r, cols}, {dx.data(), r, cols}, 0.5f,
                                  dsums.data());
      const EpochMetrics m = sr.slot(0);
      return std::vector<std::vector<float>>{{m.loss, m.val_loss, static_cast<float>(m.correct[0]),
                                              static_cast<float>(m.correct[1]), static_cast<float>(m.correct[2])},
                                             grad.to_host(),
                                             bias_grad.to_host(),
                                             ax.to_host(),
                                             cx.to_host(),
                                             sums.to_host(),
                                             dsums.to_host()};
    };
    const auto first = run();
    const auto second = run();
    const char* names[] = {"loss and evaluation", "grad", "bias grad", "spmm", "spmm of cut rows",
                           "column_sum",          "backward column sums"};
    for (std::size_t i = 0; i < first.size(); ++i) {
      EXPECT_TRUE(same_bits(second[i], first[i])) << names[i] << " differs between runs, C=" << cols;
    }
  }
}

// ---- a batch of models (column blocks, per-model step states) --------------

constexpr int kBatch = 3;

// The step states of a batch of models and their metrics ring (`size` slots
// per model, slot-major: gcn::ring_index) in a backend's memory, every slot
// starting as the sentinel.
class BatchSteps {
 public:
  BatchSteps(Backend& be, const std::vector<StepState>& states, int32_t size = 1)
      : be_(&be), n_(static_cast<int32_t>(states.size())),
        states_(be, static_cast<int64_t>(sizeof(StepState) * states.size())),
        ring_(be, static_cast<int64_t>(sizeof(EpochMetrics) * states.size()) * size), size_(size) {
    set(states);
    const std::vector<EpochMetrics> all(static_cast<std::size_t>(size_ * n_), sentinel_metrics());
    be_->upload(ring_.data(), all.data(), all.size() * sizeof(EpochMetrics));
  }
  StepState* states() { return reinterpret_cast<StepState*>(states_.data()); }
  gcn::MetricsRing ring() { return {reinterpret_cast<EpochMetrics*>(ring_.data()), size_}; }
  void set(const std::vector<StepState>& s) { be_->upload(states_.data(), s.data(), s.size() * sizeof(StepState)); }
  std::vector<StepState> get() const {
    std::vector<StepState> s(static_cast<std::size_t>(n_));
    be_->download(s.data(), states_.data(), s.size() * sizeof(StepState));
    return s;
  }
  std::vector<EpochMetrics> slots() const {
    std::vector<EpochMetrics> all(static_cast<std::size_t>(size_ * n_));
    be_->download(all.data(), ring_.data(), all.size() * sizeof(EpochMetrics));
    return all;
  }

 private:
  Backend* be_;
  int32_t n_;
  Buffer<uint8_t> states_, ring_;
  int32_t size_;
};

// Three models with their own rates, dropout streams and epochs: model 1
// stopped, model 2 without dropout.
std::vector<StepState> batch_states() {
  const float dropout[kBatch] = {0.5f, 0.9f, 0.0f};
  const float lr[kBatch] = {0.01f, 0.1f, 0.003f};
  const float weight_decay[kBatch] = {5e-4f, 0.0f, 0.01f};
  const int64_t epoch[kBatch] = {6, 4, 9};
  const uint64_t seed[kBatch] = {1234, 77, 5};
  std::vector<StepState> s;
  for (int k = 0; k < kBatch; ++k) {
    StepState st = step_at(epoch[k], seed[k]);
    st.dropout = dropout[k];
    st.lr = lr[k];
    st.weight_decay = weight_decay[k];
    st.stopped = k == 1 ? 1 : 0;
    s.push_back(st);
  }
  return s;
}

// Model k's block (rows, cols) of a (rows, batch · cols) matrix.
std::vector<float> block_of(const std::vector<float>& m, int64_t rows, int64_t cols, int k, int batch = kBatch) {
  std::vector<float> out;
  for (int64_t r = 0; r < rows; ++r) {
    const auto row = m.begin() + (r * batch + k) * cols;
    out.insert(out.end(), row, row + cols);
  }
  return out;
}

// The batched product on both devices, and each block of the GPU's the bits
// of the same product of that block alone.
TEST_F(CudaOps, BatchGemmMatchesTheCpuAndEachBlockAlone) {
  struct Shape {
    int64_t m, k, n;
  };
  for (const Shape s : {Shape{1, 1, 1}, Shape{37, 19, 5}, Shape{64, 33, 7}, Shape{130, 1, 70}, Shape{3, 300, 1}}) {
    for (const bool ta : {false, true}) {
      for (const bool tb : {false, true}) {
        const int64_t a_rows = ta ? s.k : s.m, a_cols = ta ? s.m : s.k;
        const int64_t b_rows = tb ? s.n : s.k, b_cols = tb ? s.k : s.n;
        const auto a_host = random_floats(static_cast<std::size_t>(s.m * s.k * kBatch), 12);
        const auto b_host = random_floats(static_cast<std::size_t>(s.k * s.n * kBatch), 13);
        auto [got, ref] = on_both([&](Backend& be) {
          Buffer<float> a(be, a_host), b(be, b_host);
          Buffer<float> c(be, std::vector<float>(static_cast<std::size_t>(s.m * s.n * kBatch), kNaN));
          be.gemm({a.data(), a_rows, a_cols * kBatch}, ta, {b.data(), b_rows, b_cols * kBatch}, tb,
                  {c.data(), s.m, s.n * kBatch}, kBatch);
          return c.to_host();
        });
        const std::string what = "m=" + std::to_string(s.m) + " k=" + std::to_string(s.k) + " n=" +
                                 std::to_string(s.n) + " trans_a=" + std::to_string(ta) +
                                 " trans_b=" + std::to_string(tb);
        EXPECT_TRUE(all_close(got, ref, {1e-5, 1e-4}, s.n * kBatch)) << what;
        for (int k = 0; k < kBatch; ++k) {
          Buffer<float> a(*gpu_, block_of(a_host, a_rows, a_cols, k)), b(*gpu_, block_of(b_host, b_rows, b_cols, k));
          Buffer<float> c(*gpu_, s.m * s.n);
          gpu_->gemm({a.data(), a_rows, a_cols}, ta, {b.data(), b_rows, b_cols}, tb, {c.data(), s.m, s.n});
          EXPECT_TRUE(same_bits(block_of(got, s.m, s.n, k), c.to_host(), s.n)) << what << " model " << k;
        }
      }
    }
  }
}

// The training pass of a batch: each model's dropout with its own rate and
// stream (the masks exact on both devices), the backward with and without
// column sums and in place; each model's block the bits of the single ops on
// that model alone, its column sums included. Those are checked on sums that
// change with the order of their terms too ("wide": every input positive,
// even rows of ±2^60 between ordinary ones, which cancel where nothing is
// dropped, as in model 2, while whatever ordinary terms a partial sum
// absorbed are lost); the CPU sums in another order, so there only the
// element-wise results are compared.
TEST_F(CudaOps, BatchReluDropoutMatchesTheCpuAndEachModelAlone) {
  const std::vector<StepState> states = batch_states();
  struct Case {
    int64_t rows, cols;
    bool wide;
  };
  for (const Case cs : {Case{1, 1, false}, Case{37, 11, false}, Case{130, 16, false}, Case{70, 33, false},
                        Case{37, 11, true}, Case{130, 16, true}, Case{300, 5, true}}) {
    const int64_t rows = cs.rows, cols = cs.cols, width = cols * kBatch;
    const bool wide = cs.wide;
    auto x_host = random_floats(static_cast<std::size_t>(rows * width), 52);
    auto dy_host = random_floats(static_cast<std::size_t>(rows * width), 53);
    if (wide) {
      for (float& v : x_host) v = std::fabs(v) + 0.125f;
      for (int64_t i = 0; i < std::min<int64_t>(rows, 64) * width; ++i) {
        const int64_t r = i / width;
        if (r % 2 == 0) dy_host[static_cast<std::size_t>(i)] = r % 4 == 0 ? 0x1p60f : -0x1p60f;
      }
    }
    auto [got, ref] = on_both([&](Backend& be) {
      BatchSteps bs(be, states);
      Buffer<float> x(be, x_host), y(be, rows * width), dy(be, dy_host), dx(be, rows * width),
          dx_plain(be, rows * width);
      Buffer<float> sums(be, std::vector<float>(static_cast<std::size_t>(width), kNaN));
      Buffer<float> sums_inplace(be, std::vector<float>(static_cast<std::size_t>(width), kNaN));
      be.batch_relu_dropout_forward({x.data(), rows, width}, {y.data(), rows, width}, bs.states(), kBatch);
      be.batch_relu_dropout_backward({dy.data(), rows, width}, {y.data(), rows, width}, {dx.data(), rows, width},
                                     bs.states(), kBatch, sums.data());
      be.batch_relu_dropout_backward({dy.data(), rows, width}, {y.data(), rows, width},
                                     {dx_plain.data(), rows, width}, bs.states(), kBatch);
      be.batch_relu_dropout_backward({dy.data(), rows, width}, {y.data(), rows, width}, {dy.data(), rows, width},
                                     bs.states(), kBatch, sums_inplace.data());
      return std::vector<std::vector<float>>{y.to_host(),    dx.to_host(),   dx_plain.to_host(),
                                             dy.to_host(),   sums.to_host(), sums_inplace.to_host()};
    });
    const std::string what = std::to_string(rows) + "x" + std::to_string(kBatch) + "*" + std::to_string(cols) +
                             (wide ? " wide" : "");
    EXPECT_TRUE(same_bits(got[0], ref[0], width)) << "forward " << what;
    EXPECT_TRUE(same_bits(got[1], ref[1], width)) << "backward " << what;
    EXPECT_TRUE(same_bits(got[2], ref[1], width)) << "backward without sums " << what;
    EXPECT_TRUE(same_bits(got[3], ref[3], width)) << "backward in place " << what;
    if (!wide) EXPECT_TRUE(all_close(got[4], ref[4], {1e-6, 1e-6})) << "column sums " << what;
    EXPECT_TRUE(same_bits(got[5], got[4])) << "column sums in place " << what;
    for (int k = 0; k < kBatch; ++k) {
      const float p = states[k].dropout;
      StepRing sr(*gpu_, states[k]);
      Buffer<float> x(*gpu_, block_of(x_host, rows, cols, k)), y(*gpu_, rows * cols),
          dy(*gpu_, block_of(dy_host, rows, cols, k)), dx(*gpu_, rows * cols), sums(*gpu_, cols);
      gpu_->relu_dropout_forward({x.data(), rows, cols}, {y.data(), rows, cols}, p, sr.state());
      gpu_->relu_dropout_backward({dy.data(), rows, cols}, {y.data(), rows, cols}, {dx.data(), rows, cols}, p,
                                  sums.data());
      const std::string model = what + " model " + std::to_string(k);
      EXPECT_TRUE(same_bits(block_of(got[0], rows, cols, k), y.to_host(), cols)) << "forward " << model;
      EXPECT_TRUE(same_bits(block_of(got[1], rows, cols, k), dx.to_host(), cols)) << "backward " << model;
      EXPECT_TRUE(same_bits(block_of(got[4], 1, cols, k), sums.to_host())) << "column sums " << model;
    }
  }
}

// Model k's slot of its running epoch in a batch's ring of `size` slots per model.
std::size_t batch_slot(const StepState& s, int k, int32_t size) {
  return static_cast<std::size_t>(gcn::ring_index(size, s.epoch, k, kBatch));
}

// The training loss of a batch: each model's loss into its own slot, its
// gradient block and bias gradient, against the CPU and against the fused op
// on that model alone; the stopped model (1) gets nothing written, and no
// other slot is touched.
TEST_F(CudaOps, BatchClassifierLossMatchesTheCpuAndEachModelAlone) {
  const std::vector<StepState> states = batch_states();
  constexpr int32_t kSlots = 4;
  struct Out {
    std::vector<EpochMetrics> slots;
    std::vector<float> grad, bias_grad;
  };
  for (const int64_t cols : {int64_t{1}, int64_t{7}, int64_t{33}, int64_t{300}}) {
    for (const int64_t rows : {int64_t{5}, int64_t{67}}) {
      const int64_t width = cols * kBatch;
      const auto x_host = classifier_logits(rows, width, 170 + static_cast<uint32_t>(cols));
      const auto labels_host = random_labels(rows, cols, 171);
      const auto split_host = random_split(rows, 172);
      const int64_t n_masked = count_bit(split_host, 1);
      auto [got, ref] = on_both([&](Backend& be) {
        BatchSteps bs(be, states, kSlots);
        Buffer<float> x(be, x_host), grad(be, std::vector<float>(x_host.size(), 7.0f)),
            bias_grad(be, std::vector<float>(static_cast<std::size_t>(width), 7.0f));
        Buffer<int32_t> labels(be, labels_host);
        Buffer<uint8_t> split(be, split_host);
        be.classifier_loss({x.data(), rows, width}, labels.data(), split.data(), 1, n_masked,
                           {grad.data(), rows, width}, bias_grad.data(), bs.states(), bs.ring(), kBatch);
        EXPECT_TRUE(gcn::test::same_bytes(bs.get()[1], states[1]));
        return Out{bs.slots(), grad.to_host(), bias_grad.to_host()};
      });
      const std::string what = std::to_string(rows) + "x" + std::to_string(kBatch) + "*" + std::to_string(cols);
      EXPECT_TRUE(all_close(got.grad, ref.grad, {1e-7, 1e-4}, width)) << "grad " << what;
      EXPECT_TRUE(all_close(got.bias_grad, ref.bias_grad, {1e-5, 1e-4})) << "bias grad " << what;
      EXPECT_TRUE(all_equal(block_of(got.grad, rows, cols, 1), std::vector<float>(rows * cols, 7.0f))) << what;
      EXPECT_TRUE(all_equal(block_of(got.bias_grad, 1, cols, 1), std::vector<float>(cols, 7.0f))) << what;
      for (std::size_t i = 0; i < got.slots.size(); ++i) {
        const bool written = (i == batch_slot(states[0], 0, kSlots) || i == batch_slot(states[2], 2, kSlots));
        EpochMetrics g = got.slots[i], r = ref.slots[i];
        if (written) {
          EXPECT_TRUE(all_close(std::vector<float>{g.loss}, std::vector<float>{r.loss}, {1e-5, 1e-5}))
              << what << " slot " << i;
          g.loss = r.loss = sentinel_metrics().loss;  // the other fields untouched
        }
        EXPECT_TRUE(gcn::test::same_bytes(g, sentinel_metrics())) << what << " slot " << i;
        EXPECT_TRUE(gcn::test::same_bytes(r, sentinel_metrics())) << what << " CPU slot " << i;
      }
      for (const int k : {0, 2}) {
        StepRing sr(*gpu_, states[k], kSlots);
        Buffer<float> x(*gpu_, block_of(x_host, rows, width / kBatch, k)), grad(*gpu_, rows * cols),
            bias_grad(*gpu_, cols);
        Buffer<int32_t> labels(*gpu_, labels_host);
        Buffer<uint8_t> split(*gpu_, split_host);
        gpu_->classifier_loss({x.data(), rows, cols}, labels.data(), split.data(), 1, n_masked,
                              {grad.data(), rows, cols}, bias_grad.data(), sr.state(), sr.ring());
        const std::string model = what + " model " + std::to_string(k);
        const float alone = sr.slot(static_cast<int32_t>(states[k].epoch % kSlots)).loss;
        EXPECT_TRUE(same_bits(std::vector<float>{got.slots[batch_slot(states[k], k, kSlots)].loss},
                              std::vector<float>{alone}))
            << "loss " << model;
        EXPECT_TRUE(same_bits(block_of(got.grad, rows, cols, k), grad.to_host(), cols)) << "grad " << model;
        EXPECT_TRUE(same_bits(block_of(got.bias_grad, 1, cols, k), bias_grad.to_host())) << "bias grad " << model;
      }
    }
  }
}

// Two evaluations of a batch (the second advancing): each model's figures in
// its slot and its own selection (model 0's first is its best; model 2, patience 1 with
// a better epoch behind it, stops; model 1 is stopped and changes nothing),
// against the CPU and against the evaluation of that model alone.
TEST_F(CudaOps, BatchEvaluateMatchesTheCpuAndEachModelAlone) {
  std::vector<StepState> states = batch_states();
  states[0].patience = 2;
  states[2].patience = 1;
  states[2].best_epoch = 9;
  states[2].best_val_correct = 1000;  // more than any epoch here gets
  states[2].best_val_loss = 0.5f;
  constexpr int32_t kSlots = 4;
  struct Out {
    std::vector<std::vector<StepState>> states;
    std::vector<std::vector<EpochMetrics>> slots;
  };
  for (const int64_t cols : {int64_t{7}, int64_t{33}}) {
    const int64_t rows = 131, width = cols * kBatch;
    const std::vector<std::vector<float>> logits = {classifier_logits(rows, width, 180 + static_cast<uint32_t>(cols)),
                                                    classifier_logits(rows, width, 190 + static_cast<uint32_t>(cols))};
    const auto labels_host = random_labels(rows, cols, 181);
    const auto split_host = random_split(rows, 182);
    const int64_t n_val = count_bit(split_host, gcn::kValBit);
    auto [got, ref] = on_both([&](Backend& be) {
      BatchSteps bs(be, states, kSlots);
      Buffer<int32_t> labels(be, labels_host);
      Buffer<uint8_t> split(be, split_host);
      Out out;
      for (std::size_t e = 0; e < logits.size(); ++e) {
        Buffer<float> x(be, logits[e]);
        be.evaluate({x.data(), rows, width}, labels.data(), split.data(), n_val, bs.states(), bs.ring(),
                    /*advance=*/e == 1, kBatch);
        out.states.push_back(bs.get());
        out.slots.push_back(bs.slots());
      }
      return out;
    });
    const std::string what = "C=" + std::to_string(cols);
    for (std::size_t e = 0; e < logits.size(); ++e) {
      for (int k = 0; k < kBatch; ++k) {
        const StepState& g = got.states[e][k];
        const StepState& r = ref.states[e][k];
        const std::string where = what + " evaluation " + std::to_string(e) + " model " + std::to_string(k);
        EXPECT_EQ(g.epoch, r.epoch) << where;
        EXPECT_EQ(g.improved, r.improved) << where;
        EXPECT_EQ(g.best_epoch, r.best_epoch) << where;
        EXPECT_EQ(g.best_val_correct, r.best_val_correct) << where;
        EXPECT_EQ(g.stopped, r.stopped) << where;
        EXPECT_TRUE(all_close(std::vector<float>{g.best_val_loss}, std::vector<float>{r.best_val_loss}, {1e-5, 1e-5}))
            << where;
      }
      for (std::size_t i = 0; i < got.slots[e].size(); ++i) {
        const EpochMetrics& g = got.slots[e][i];
        const EpochMetrics& r = ref.slots[e][i];
        EXPECT_EQ(counts_of(g), counts_of(r)) << what << " slot " << i;
        EXPECT_EQ(g.epoch, r.epoch) << what << " slot " << i;
        EXPECT_EQ(g.loss, sentinel_metrics().loss) << what << " slot " << i;
        EXPECT_TRUE(all_close(std::vector<float>{g.val_loss}, std::vector<float>{r.val_loss}, {1e-5, 1e-5}))
            << what << " slot " << i;
      }
    }
    // The selections the states were set up for.
    EXPECT_EQ(got.states[0][0].improved, 1) << what;
    EXPECT_EQ(got.states[1][0].epoch, states[0].epoch + 1) << what;
    EXPECT_EQ(got.states[0][2].stopped, 1) << what;
    EXPECT_TRUE(gcn::test::same_bytes(got.states[1][2], got.states[0][2])) << what << ": model 2 stopped";
    EXPECT_TRUE(gcn::test::same_bytes(got.states[1][1], states[1])) << what << ": model 1 was stopped";
    for (int k = 0; k < kBatch; ++k) {
      StepRing sr(*gpu_, states[k], kSlots);
      Buffer<int32_t> labels(*gpu_, labels_host);
      Buffer<uint8_t> split(*gpu_, split_host);
      const std::string model = what + " model " + std::to_string(k);
      for (std::size_t e = 0; e < logits.size(); ++e) {
        const int64_t epoch0 = sr.get().epoch;
        Buffer<float> x(*gpu_, block_of(logits[e], rows, cols, k));
        gpu_->evaluate({x.data(), rows, cols}, labels.data(), split.data(), n_val, sr.state(), sr.ring(), e == 1);
        EXPECT_TRUE(gcn::test::same_bytes(got.states[e][k], sr.get())) << model << " evaluation " << e;
        const EpochMetrics slot = got.slots[e][static_cast<std::size_t>(gcn::ring_index(kSlots, epoch0, k, kBatch))];
        EpochMetrics alone = sr.slot(static_cast<int32_t>(epoch0 % kSlots));
        if (k == 1 || (k == 2 && e == 1)) continue;  // stopped: both slots keep their initial contents
        alone.loss = sentinel_metrics().loss;  // the single ring started at zeros
        EXPECT_TRUE(gcn::test::same_bytes(slot, alone)) << model << " evaluation " << e;
      }
    }
  }
}

// The parameter blocks of a batch: two weight-like blocks and a bias-like
// one, with three untouched elements between the second and the third.
gcn::ParamBlocks test_blocks() {
  gcn::ParamBlocks blocks;
  blocks.count = 3;
  blocks.block[0] = {0, 5, 4};
  blocks.block[1] = {5 * 4 * kBatch, 1, 4};
  blocks.block[2] = {5 * 4 * kBatch + 4 * kBatch + 3, 7, 2};
  return blocks;
}
int64_t blocks_size(const gcn::ParamBlocks& blocks) {
  const gcn::ParamBlock& last = blocks.block[blocks.count - 1];
  return last.offset + last.rows * last.cols * kBatch;
}
// Model k's elements of every block, in order (its own flat parameters).
std::vector<float> model_elements(const std::vector<float>& all, const gcn::ParamBlocks& blocks, int k) {
  std::vector<float> out;
  for (int b = 0; b < blocks.count; ++b) {
    const gcn::ParamBlock& blk = blocks.block[b];
    const std::vector<float> region(all.begin() + blk.offset, all.begin() + blk.offset + blk.rows * blk.cols * kBatch);
    const std::vector<float> mine = block_of(region, blk.rows, blk.cols, k);
    out.insert(out.end(), mine.begin(), mine.end());
  }
  return out;
}
// The elements of no block.
std::vector<float> gap_elements(const std::vector<float>& all, const gcn::ParamBlocks& blocks) {
  std::vector<bool> used(all.size(), false);
  for (int b = 0; b < blocks.count; ++b) {
    const gcn::ParamBlock& blk = blocks.block[b];
    for (int64_t i = 0; i < blk.rows * blk.cols * kBatch; ++i) used[static_cast<std::size_t>(blk.offset + i)] = true;
  }
  std::vector<float> out;
  for (std::size_t i = 0; i < all.size(); ++i)
    if (!used[i]) out.push_back(all[i]);
  return out;
}

// Three Adam steps of a batch, each model with its own lr, weight decay and
// step (config's lr and weight decay unused), the stopped model untouched;
// against the CPU, and each model's parameters the bits of adam_step on that
// model alone.
TEST_F(CudaOps, BatchAdamMatchesTheCpuAndEachModelAlone) {
  const std::vector<StepState> states = batch_states();
  const gcn::ParamBlocks blocks = test_blocks();
  const int64_t n = blocks_size(blocks);
  gcn::AdamConfig cfg;
  cfg.lr = 99.0f;  // unused by a batch
  cfg.weight_decay = 99.0f;
  const auto p0 = random_floats(static_cast<std::size_t>(n), 160);
  auto step_states = [&](int64_t step) {
    std::vector<StepState> s = states;
    for (StepState& st : s) st.epoch += step - 1;
    return s;
  };
  auto grads_at = [&](int64_t step) {
    return random_floats(static_cast<std::size_t>(n), 260 + static_cast<uint32_t>(step));
  };
  auto [got, ref] = on_both([&](Backend& be) {
    BatchSteps bs(be, states);
    Buffer<float> params(be, p0), m(be, n), v(be, n), grads(be, n);
    m.zero();
    v.zero();
    for (int64_t step = 1; step <= 3; ++step) {
      bs.set(step_states(step));
      grads.from_host(grads_at(step));
      be.batch_adam_step(params.data(), grads.data(), m.data(), v.data(), blocks, cfg, bs.states(), kBatch);
    }
    return std::vector<std::vector<float>>{params.to_host(), m.to_host(), v.to_host()};
  });
  EXPECT_TRUE(all_close(got[0], ref[0], {1e-6, 1e-5})) << "params";
  EXPECT_TRUE(all_close(got[1], ref[1], {1e-7, 1e-5})) << "m";
  EXPECT_TRUE(all_close(got[2], ref[2], {1e-9, 1e-5})) << "v";
  EXPECT_TRUE(same_bits(model_elements(got[0], blocks, 1), model_elements(p0, blocks, 1))) << "stopped model";
  EXPECT_TRUE(same_bits(gap_elements(got[0], blocks), gap_elements(p0, blocks))) << "between the blocks";
  for (int k = 0; k < kBatch; ++k) {
    const std::vector<float> mine = model_elements(p0, blocks, k);
    const auto n_k = static_cast<int64_t>(mine.size());
    gcn::AdamConfig own = cfg;
    own.lr = states[k].lr;
    own.weight_decay = states[k].weight_decay;
    StepRing sr(*gpu_, states[k]);
    Buffer<float> params(*gpu_, mine), m(*gpu_, n_k), v(*gpu_, n_k), grads(*gpu_, n_k);
    m.zero();
    v.zero();
    for (int64_t step = 1; step <= 3; ++step) {
      sr.set(step_states(step)[k]);
      grads.from_host(model_elements(grads_at(step), blocks, k));
      gpu_->adam_step(params.data(), grads.data(), m.data(), v.data(), n_k, own, sr.state());
    }
    EXPECT_TRUE(same_bits(model_elements(got[0], blocks, k), params.to_host())) << "params of model " << k;
    EXPECT_TRUE(same_bits(model_elements(got[1], blocks, k), m.to_host())) << "m of model " << k;
    EXPECT_TRUE(same_bits(model_elements(got[2], blocks, k), v.to_host())) << "v of model " << k;
  }
}

// The best-weights copy of a batch: the improved models' elements of every
// block, nothing else.
TEST_F(CudaOps, BatchCopyIfImproved) {
  std::vector<StepState> states = batch_states();
  states[0].improved = 1;
  states[1].improved = 0;
  states[2].improved = 1;
  const gcn::ParamBlocks blocks = test_blocks();
  const int64_t n = blocks_size(blocks);
  const auto src_host = random_floats(static_cast<std::size_t>(n), 161);
  const std::vector<float> dst_host(static_cast<std::size_t>(n), -1.0f);
  auto [got, ref] = on_both([&](Backend& be) {
    BatchSteps bs(be, states);
    Buffer<float> src(be, src_host), dst(be, dst_host);
    be.batch_copy_if_improved(dst.data(), src.data(), blocks, bs.states(), kBatch);
    return dst.to_host();
  });
  EXPECT_TRUE(same_bits(got, ref));
  EXPECT_TRUE(same_bits(model_elements(got, blocks, 0), model_elements(src_host, blocks, 0)));
  EXPECT_TRUE(same_bits(model_elements(got, blocks, 1), model_elements(dst_host, blocks, 1)));
  EXPECT_TRUE(same_bits(model_elements(got, blocks, 2), model_elements(src_host, blocks, 2)));
  EXPECT_TRUE(same_bits(gap_elements(got, blocks), gap_elements(dst_host, blocks)));
}

// A batch of one model through the batch entry points is the single ops with
// the model's own rates, bit for bit; batches of empty matrices write only
// the column sums (zeros).
TEST_F(CudaOps, BatchOfOneIsTheSingleOp) {
  StepState st = batch_states()[0];
  const int64_t rows = 41, cols = 9;
  const auto x_host = random_floats(static_cast<std::size_t>(rows * cols), 162);
  const auto dy_host = random_floats(static_cast<std::size_t>(rows * cols), 163);
  auto run = [&](bool batch) {
    StepRing sr(*gpu_, st);
    Buffer<float> x(*gpu_, x_host), y(*gpu_, rows * cols), dy(*gpu_, dy_host), dx(*gpu_, rows * cols),
        sums(*gpu_, cols), m(*gpu_, rows * cols), v(*gpu_, rows * cols);
    m.zero();
    v.zero();
    gcn::AdamConfig cfg;
    cfg.lr = st.lr;
    cfg.weight_decay = st.weight_decay;
    gcn::ParamBlocks one;
    one.count = 1;
    one.block[0] = {0, rows, cols};
    if (batch) {
      gpu_->batch_relu_dropout_forward({x.data(), rows, cols}, {y.data(), rows, cols}, sr.state(), 1);
      gpu_->batch_relu_dropout_backward({dy.data(), rows, cols}, {y.data(), rows, cols}, {dx.data(), rows, cols},
                                        sr.state(), 1, sums.data());
      gpu_->batch_adam_step(x.data(), dx.data(), m.data(), v.data(), one, gcn::AdamConfig{}, sr.state(), 1);
    } else {
      gpu_->relu_dropout_forward({x.data(), rows, cols}, {y.data(), rows, cols}, st.dropout, sr.state());
      gpu_->relu_dropout_backward({dy.data(), rows, cols}, {y.data(), rows, cols}, {dx.data(), rows, cols},
                                  st.dropout, sums.data());
      gpu_->adam_step(x.data(), dx.data(), m.data(), v.data(), rows * cols, cfg, sr.state());
    }
    return std::vector<std::vector<float>>{y.to_host(), dx.to_host(), sums.to_host(), x.to_host(), m.to_host(),
                                           v.to_host()};
  };
  const auto batched = run(true), single = run(false);
  for (std::size_t i = 0; i < batched.size(); ++i) EXPECT_TRUE(same_bits(batched[i], single[i])) << "output " << i;

  BatchSteps bs(*gpu_, batch_states());
  Buffer<float> sums(*gpu_, std::vector<float>(kBatch * 4, kNaN));
  gpu_->batch_relu_dropout_forward({nullptr, 0, kBatch * 4}, {nullptr, 0, kBatch * 4}, bs.states(), kBatch);
  gpu_->batch_relu_dropout_backward({nullptr, 0, kBatch * 4}, {nullptr, 0, kBatch * 4}, {nullptr, 0, kBatch * 4},
                                    bs.states(), kBatch, sums.data());
  EXPECT_TRUE(all_equal(sums.to_host(), std::vector<float>(kBatch * 4, 0.0f)));
  EXPECT_TRUE(gcn::test::same_bytes(bs.get()[0], batch_states()[0]));
}

#if defined(GCN_CUDA_SIM)
// cudasim only: cuSPARSE refusing every product (CUDASIM_SPMM_NOT_SUPPORTED=1)
// sends them to our kernel, which then gives the CPU's bits on rows of at
// most 128 entries, with prepared outputs too.
TEST_F(CudaOps, SpmmFallbackIsOurKernel) {
  const gcn::test::ScopedEnv refuse("CUDASIM_SPMM_NOT_SUPPORTED", "1");
  const gcn::test::ScopedEnv alg("GCN_SPMM_ALG", "alg3");
  const std::unique_ptr<Backend> gpu = gcn::make_cuda_backend(0);
  const gcn::CsrMatrix cut = csr_with_row_lengths(kCutRowLengths, 1100, 150);
  const int64_t n = 9;
  const auto b_host = random_floats(static_cast<std::size_t>(cut.n_cols * n), 151);
  const auto bias_host = random_floats(n, 152);
  auto run = [&](Backend& be) {
    auto a = be.upload_csr(cut);
    Buffer<float> b(be, b_host), bias(be, bias_host);
    Buffer<float> c(be, std::vector<float>(static_cast<std::size_t>(cut.n_rows * n), kNaN));
    const gcn::OutputInit init{{c.data(), cut.n_rows, n}, bias.data()};
    be.prepare_outputs(&init, 1);
    be.spmm(*a, {b.data(), cut.n_cols, n}, {c.data(), cut.n_rows, n}, bias.data(), true);
    return c.to_host();
  };
  const auto ref = run(*cpu_);
  const auto got = run(*gpu);
  EXPECT_TRUE(spmm_matches_cpu(got, ref, cut, n, true));
}
#endif

}  // namespace
