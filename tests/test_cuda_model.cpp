// The whole model on CUDA against the CPU reference: one epoch from the same
// weights (dropout off, then on: both backends draw the same masks), 200 Cora
// epochs in the CPU's accuracy band, and bit-identical reruns on the GPU.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "gcn/devices.hpp"
#include "gcn/model.hpp"
#include "gcn/planetoid.hpp"
#include "gcn/trainer.hpp"
#include "test_compare.hpp"
#include "test_util.hpp"

namespace gcn {
namespace {

using test::all_close;
using test::Tolerance;

class CudaModel : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    if (cuda_device_count(&why) == 0) {
      if (test::require_gpu()) FAIL() << "GCN_REQUIRE_GPU=1 but " << why;
      GTEST_SKIP() << "no usable CUDA GPU: " << why;
    }
    GCN_REQUIRE_DATA();
    cpu_ = make_cpu_backend(0);
    gpu_ = make_cuda_backend(0);
  }
  static const Dataset& cora() {
    static const Dataset d = load_planetoid("cora", test::data_root());
    return d;
  }
  std::unique_ptr<Backend> cpu_, gpu_;
};

struct EpochOutput {
  float loss = 0;
  std::vector<float> logits, grads, params;
};

EpochOutput one_epoch(Backend& be, const Dataset& d, float dropout) {
  const GcnShape shape{d.n_features, 16, d.n_classes};
  GcnModel model(be, d, shape, dropout);
  model.set_params(glorot_init(shape, 123));
  Buffer<float> loss(be, 1);
  model.forward(true, 77, 1);
  model.backward(loss.data());
  EpochOutput out;
  out.loss = loss.to_host()[0];
  std::vector<float> logits(static_cast<std::size_t>(model.logits().size()));
  be.download(logits.data(), model.logits().data, logits.size() * sizeof(float));
  out.logits = std::move(logits);
  out.grads = model.grads();
  model.adam_step(AdamConfig{}, 1);
  out.params = model.params();
  return out;
}

TEST_F(CudaModel, OneEpochMatchesTheCpu) {
  for (float dropout : {0.0f, 0.5f}) {
    SCOPED_TRACE("dropout " + std::to_string(dropout));
    const EpochOutput c = one_epoch(*cpu_, cora(), dropout);
    const EpochOutput g = one_epoch(*gpu_, cora(), dropout);
    EXPECT_NEAR(g.loss, c.loss, 1e-4 * std::abs(c.loss));
    EXPECT_TRUE(all_close(g.logits, c.logits, Tolerance{1e-5, 1e-4}, cora().n_classes));
    EXPECT_TRUE(all_close(g.grads, c.grads, Tolerance{1e-7, 1e-3}));
    // Adam's first step moves every parameter with a non-zero gradient by
    // about lr, so the updated weights agree far tighter than the gradients.
    EXPECT_TRUE(all_close(g.params, c.params, Tolerance{1e-6, 1e-4}));
  }
}

TEST_F(CudaModel, CoraTrainsIntoTheCpuBandAndRerunsBitIdentically) {
  TrainConfig cfg;
  double cpu_sum = 0, gpu_sum = 0;
  for (uint64_t seed = 0; seed < 3; ++seed) {
    cfg.seed = seed;
    const TrainResult c = train_gcn(*cpu_, cora(), cfg);
    const TrainResult g = train_gcn(*gpu_, cora(), cfg);
    cpu_sum += c.history.back().test_acc;
    gpu_sum += g.history.back().test_acc;
    EXPECT_GE(g.history.back().test_acc, 0.78) << "seed " << seed;
    if (seed == 0) {
      const TrainResult again = train_gcn(*gpu_, cora(), cfg);
      EXPECT_EQ(again.params, g.params);
      for (std::size_t i = 0; i < g.history.size(); ++i) ASSERT_EQ(again.history[i].loss, g.history[i].loss);
    }
  }
  EXPECT_NEAR(gpu_sum / 3, cpu_sum / 3, 0.015);
}

}  // namespace
}  // namespace gcn
