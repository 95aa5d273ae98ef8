// The batch plan (gcn/train/batch_plan.hpp) against plans computed by hand:
// the CPU's cache-sized batches and workers, the memory budget's shrink, the
// CUDA limit of 65535 models per batch, --batch 1, several widths.
#include <gtest/gtest.h>

#include <cstddef>
#include <map>
#include <tuple>
#include <vector>

#include "gcn/train/batch_plan.hpp"

namespace {

using gcn::BatchDevice;
using gcn::BatchModel;
using gcn::BatchPlan;
using gcn::DeviceKind;

// n models of one width.
std::vector<BatchModel> models_of(int n, int hidden = 16, float dropout = 0.5f) {
  return std::vector<BatchModel>(static_cast<std::size_t>(n), BatchModel{hidden, dropout});
}

// A batch of k takes base + k * per bytes.
gcn::BatchBytes linear(std::size_t base, std::size_t per) {
  return [=](int, int k, bool) { return base + per * static_cast<std::size_t>(k); };
}

std::vector<std::size_t> range(std::size_t from, std::size_t to) {
  std::vector<std::size_t> v;
  for (std::size_t i = from; i < to; ++i) v.push_back(i);
  return v;
}

// Each job's models, in order.
std::vector<std::vector<std::size_t>> job_models(const BatchPlan& plan) {
  std::vector<std::vector<std::size_t>> out;
  for (const gcn::BatchJob& j : plan.jobs) out.push_back(j.models);
  return out;
}

TEST(CpuCacheBatch, FitsTheGrowthPerModelIntoTheCache) {
  EXPECT_EQ(gcn::cpu_cache_batch(2300, 2600, 1000), 3);     // 300 bytes per model: 1000 / 300
  EXPECT_EQ(gcn::cpu_cache_batch(2300, 2600, 299), 1);      // not even one: still one
  EXPECT_EQ(gcn::cpu_cache_batch(2300, 2300, 4600), 2);     // no growth measured: a whole batch of one per model
  EXPECT_EQ(gcn::cpu_cache_batch(0, 0, 1000), 1000);        // nothing planned: 1 byte per model
}

// On the CPU by default: batches that fit a core's cache, one worker per
// batch up to the threads.
TEST(BatchPlan, CpuBatchesFitTheCacheOverTheThreads) {
  BatchDevice cpu;
  cpu.kind = DeviceKind::kCpu;
  cpu.cpu_threads = 4;
  cpu.cache_bytes = 1000;
  cpu.graph_bytes = 500;
  cpu.budget_bytes = std::size_t{1} << 30;
  // bytes(1) = 2300, bytes(2) = 2600: 300 per model, 3 fit in 1000 bytes.
  const BatchPlan plan = gcn::plan_batches(models_of(10), 0, cpu, linear(2000, 300));
  ASSERT_EQ(plan.groups.size(), 1u);
  const gcn::BatchGroup& g = plan.groups[0];
  EXPECT_EQ(g.hidden, 16);
  EXPECT_EQ(g.models, 10);
  EXPECT_EQ(g.batch, 3);
  EXPECT_EQ(g.batches, 4);
  EXPECT_EQ(g.planned_bytes, 2900u);
  EXPECT_TRUE(g.with_dropout);
  EXPECT_EQ(g.workers, 4);  // ceil(10 / 3) batches, 4 threads, (500 + 2900) x 4 within the budget
  EXPECT_EQ(g.shrunk_from, 0);
  EXPECT_FALSE(g.capped);
  EXPECT_EQ(job_models(plan), (std::vector<std::vector<std::size_t>>{{0, 1, 2}, {3, 4, 5}, {6, 7, 8}, {9}}));
  for (std::size_t j = 0; j < plan.jobs.size(); ++j) {
    EXPECT_EQ(plan.jobs[j].group, 0u);
    EXPECT_EQ(plan.jobs[j].index, static_cast<int>(j));
  }
  EXPECT_EQ(plan.workers, 4);
}

// Each CPU worker holds a copy of the graph and a batch's workspace: the
// budget allows floor(10000 / (1000 + 2600)) = 2 of them.
TEST(BatchPlan, TheBudgetLimitsTheCpuWorkers) {
  BatchDevice cpu;
  cpu.cpu_threads = 4;
  cpu.graph_bytes = 1000;
  cpu.budget_bytes = 10000;
  const BatchPlan plan = gcn::plan_batches(models_of(8), 2, cpu, linear(2000, 300));
  ASSERT_EQ(plan.groups.size(), 1u);
  EXPECT_EQ(plan.groups[0].batch, 2);
  EXPECT_EQ(plan.groups[0].batches, 4);
  EXPECT_EQ(plan.groups[0].workers, 2);
  EXPECT_EQ(plan.groups[0].shrunk_from, 0);  // 2600 x 2 workers fit
  EXPECT_EQ(plan.workers, 2);
}

// On a GPU every model in one batch unless the budget says otherwise: from
// bytes(1) = 2300 and bytes(2) = 2600 (base 2000, 300 per model) 6 fit in
// 4000 bytes.
TEST(BatchPlan, TheMemoryBudgetShrinksTheBatches) {
  BatchDevice gpu;
  gpu.kind = DeviceKind::kCuda;
  gpu.cpu_threads = 8;  // not for a GPU
  gpu.budget_bytes = 4000;
  const BatchPlan plan = gcn::plan_batches(models_of(10), 0, gpu, linear(2000, 300));
  ASSERT_EQ(plan.groups.size(), 1u);
  const gcn::BatchGroup& g = plan.groups[0];
  EXPECT_EQ(g.shrunk_from, 10);
  EXPECT_EQ(g.shrunk_bytes, 5000u);
  EXPECT_EQ(g.batch, 6);
  EXPECT_EQ(g.batches, 2);
  EXPECT_EQ(g.planned_bytes, 3800u);
  EXPECT_EQ(g.workers, 1);
  EXPECT_EQ(job_models(plan), (std::vector<std::vector<std::size_t>>{range(0, 6), range(6, 10)}));
  EXPECT_EQ(plan.workers, 1);
}

// Where a batch grows faster than the first two suggest, the estimate is
// cut by a quarter until it fits: 6 (4500 bytes) -> 4 (3900).
TEST(BatchPlan, TheShrinkCutsByAQuarterUntilTheBatchFits) {
  const std::map<int, std::size_t> table = {{1, 2300}, {2, 2600}, {3, 2900}, {4, 3900}, {5, 4200},
                                            {6, 4500}, {7, 4800}, {8, 5100}, {9, 5400}, {10, 6000}};
  std::vector<int> asked;
  const gcn::BatchBytes bytes = [&](int hidden, int k, bool with_dropout) {
    EXPECT_EQ(hidden, 16);
    EXPECT_TRUE(with_dropout);
    asked.push_back(k);
    return table.at(k);
  };
  BatchDevice gpu;
  gpu.kind = DeviceKind::kCuda;
  gpu.budget_bytes = 4000;
  const BatchPlan plan = gcn::plan_batches(models_of(10), 0, gpu, bytes);
  ASSERT_EQ(plan.groups.size(), 1u);
  EXPECT_EQ(plan.groups[0].shrunk_from, 10);
  EXPECT_EQ(plan.groups[0].shrunk_bytes, 6000u);
  EXPECT_EQ(plan.groups[0].batch, 4);
  EXPECT_EQ(plan.groups[0].batches, 3);
  EXPECT_EQ(plan.groups[0].planned_bytes, 3900u);
  EXPECT_EQ(job_models(plan), (std::vector<std::vector<std::size_t>>{range(0, 4), range(4, 8), range(8, 10)}));
  for (int k : asked) EXPECT_TRUE(table.count(k)) << k;
}

// A CUDA batch holds at most 65535 models (blockIdx.y): 70000 models are
// two batches, by default and with a larger --batch. The CPU has no such limit.
TEST(BatchPlan, ACudaBatchHoldsAtMost65535Models) {
  BatchDevice gpu;
  gpu.kind = DeviceKind::kCuda;
  gpu.budget_bytes = std::size_t{1} << 40;
  for (int batch : {0, 100000, 70000}) {
    const BatchPlan plan = gcn::plan_batches(models_of(70000), batch, gpu, linear(1000, 1));
    ASSERT_EQ(plan.groups.size(), 1u) << batch;
    EXPECT_TRUE(plan.groups[0].capped) << batch;
    EXPECT_EQ(plan.groups[0].batch, 65535) << batch;
    EXPECT_EQ(plan.groups[0].batches, 2) << batch;
    EXPECT_EQ(plan.groups[0].planned_bytes, 1000u + 65535u) << batch;
    ASSERT_EQ(plan.jobs.size(), 2u) << batch;
    EXPECT_EQ(plan.jobs[0].models, range(0, 65535)) << batch;
    EXPECT_EQ(plan.jobs[1].models, range(65535, 70000)) << batch;
    EXPECT_EQ(plan.workers, 1);
  }
  // Exactly the limit: one batch, not capped.
  const BatchPlan exact = gcn::plan_batches(models_of(65535), 0, gpu, linear(1000, 1));
  EXPECT_FALSE(exact.groups[0].capped);
  EXPECT_EQ(exact.groups[0].batches, 1);
  // The CPU: --batch 70000 is one batch.
  BatchDevice cpu;
  cpu.cpu_threads = 2;
  cpu.budget_bytes = std::size_t{1} << 40;
  const BatchPlan on_cpu = gcn::plan_batches(models_of(70000), 70000, cpu, linear(1000, 1));
  EXPECT_FALSE(on_cpu.groups[0].capped);
  EXPECT_EQ(on_cpu.groups[0].batch, 70000);
  EXPECT_EQ(on_cpu.groups[0].batches, 1);
  EXPECT_EQ(on_cpu.workers, 1);
}

// --batch 1: one model per batch, spread over the threads.
TEST(BatchPlan, BatchOneIsAModelPerBatch) {
  BatchDevice cpu;
  cpu.cpu_threads = 2;
  cpu.graph_bytes = 100;
  cpu.budget_bytes = 1 << 20;
  std::vector<BatchModel> models = {{16, 0.5f}, {16, 0.0f}, {16, 0.2f}};
  const BatchPlan plan = gcn::plan_batches(models, 1, cpu, linear(2000, 300));
  ASSERT_EQ(plan.groups.size(), 1u);
  EXPECT_EQ(plan.groups[0].batch, 1);
  EXPECT_EQ(plan.groups[0].batches, 3);
  EXPECT_EQ(plan.groups[0].planned_bytes, 2300u);
  EXPECT_EQ(job_models(plan), (std::vector<std::vector<std::size_t>>{{0}, {1}, {2}}));
  EXPECT_EQ(plan.workers, 2);
  // On a GPU one worker.
  BatchDevice gpu = cpu;
  gpu.kind = DeviceKind::kCuda;
  EXPECT_EQ(gcn::plan_batches(models, 1, gpu, linear(2000, 300)).workers, 1);
}

// Models of one width share batches, widths ascending, each width's models
// in their order; a width drops when any of its models does; the workers
// are the fewest any width allows.
TEST(BatchPlan, SeveralWidthsAreGroupsInAscendingOrder) {
  const std::vector<BatchModel> models = {{32, 0.0f}, {16, 0.0f}, {32, 0.5f}, {16, 0.0f}, {8, 0.0f}};
  std::vector<std::tuple<int, int, bool>> asked;
  const gcn::BatchBytes bytes = [&](int hidden, int k, bool with_dropout) {
    asked.emplace_back(hidden, k, with_dropout);
    return static_cast<std::size_t>(hidden * 100 * k + (with_dropout ? 7 : 0));
  };
  BatchDevice gpu;
  gpu.kind = DeviceKind::kCuda;
  gpu.budget_bytes = std::size_t{1} << 30;
  const BatchPlan plan = gcn::plan_batches(models, 2, gpu, bytes);
  ASSERT_EQ(plan.groups.size(), 3u);
  EXPECT_EQ(plan.groups[0].hidden, 8);
  EXPECT_EQ(plan.groups[0].models, 1);
  EXPECT_EQ(plan.groups[0].batch, 1);
  EXPECT_FALSE(plan.groups[0].with_dropout);
  EXPECT_EQ(plan.groups[0].planned_bytes, 800u);
  EXPECT_EQ(plan.groups[1].hidden, 16);
  EXPECT_EQ(plan.groups[1].batch, 2);
  EXPECT_FALSE(plan.groups[1].with_dropout);
  EXPECT_EQ(plan.groups[1].planned_bytes, 3200u);
  EXPECT_EQ(plan.groups[2].hidden, 32);
  EXPECT_EQ(plan.groups[2].batch, 2);
  EXPECT_TRUE(plan.groups[2].with_dropout);
  EXPECT_EQ(plan.groups[2].planned_bytes, 6407u);
  EXPECT_EQ(job_models(plan), (std::vector<std::vector<std::size_t>>{{4}, {1, 3}, {0, 2}}));
  EXPECT_EQ(plan.jobs[2].group, 2u);
  for (const auto& [hidden, k, with_dropout] : asked) EXPECT_EQ(with_dropout, hidden == 32) << hidden << " " << k;

  // On the CPU (cache batches of one here), the workers: width 8 keeps one
  // busy, so the plan runs on one; widths 16 and 32 could keep two.
  BatchDevice cpu;
  cpu.cpu_threads = 4;
  cpu.cache_bytes = 1;
  cpu.budget_bytes = std::size_t{1} << 30;
  const BatchPlan on_cpu = gcn::plan_batches(models, 0, cpu, bytes);
  ASSERT_EQ(on_cpu.groups.size(), 3u);
  EXPECT_EQ(on_cpu.groups[0].workers, 1);
  EXPECT_EQ(on_cpu.groups[1].workers, 2);
  EXPECT_EQ(on_cpu.groups[2].workers, 2);
  EXPECT_EQ(on_cpu.jobs.size(), 5u);
  EXPECT_EQ(on_cpu.workers, 1);
}

TEST(BatchPlan, NoModelsNoJobs) {
  const BatchPlan plan = gcn::plan_batches({}, 0, BatchDevice{}, linear(1, 1));
  EXPECT_TRUE(plan.groups.empty());
  EXPECT_TRUE(plan.jobs.empty());
  EXPECT_EQ(plan.workers, 0);
}

}  // namespace
