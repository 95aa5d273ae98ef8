// Planning batches of models (gcn/train/batch_plan.hpp): per hidden width the
// batch size (--batch, a core's cache on the CPU, kCudaMaxBatch on CUDA, then
// the memory budget), the worker threads, and the batches in order.
#include "gcn/train/batch_plan.hpp"

#include <algorithm>
#include <map>

namespace gcn {

int cpu_cache_batch(std::size_t bytes_1, std::size_t bytes_2, std::size_t cache_bytes) {
  // A batch's tensors grow by (bytes_2 - bytes_1) per model; fit them in
  // the core's L2 cache (where one model's Cora tensors live when trained
  // alone).
  const std::size_t per_model = bytes_2 > bytes_1 ? bytes_2 - bytes_1 : bytes_1;
  return static_cast<int>(std::max<std::size_t>(1, cache_bytes / std::max<std::size_t>(per_model, 1)));
}

namespace {

// One width's batch size and workers; `workers` is what the group could
// keep busy, before the memory budget's shrink (which keeps the workers).
BatchGroup plan_group(int hidden, int n, bool with_dropout, int batch, const BatchDevice& device,
                      const BatchBytes& bytes_of) {
  auto bytes = [&](int k) { return bytes_of(hidden, k, with_dropout); };
  const bool on_cpu = device.kind == DeviceKind::kCpu;
  const std::size_t budget = device.budget_bytes;
  BatchGroup g;
  g.hidden = hidden;
  g.models = n;
  g.with_dropout = with_dropout;
  // The default: on a GPU every model in one batch (the memory budget
  // permitting); on the CPU, batches that keep a worker's tensors in its
  // cache, one worker per thread.
  int k = batch > 0 ? std::min(batch, n) : n;
  if (batch == 0 && on_cpu) k = std::max(1, std::min(n, cpu_cache_batch(bytes(1), bytes(2), device.cache_bytes)));
  if (!on_cpu && k > kCudaMaxBatch) {
    k = kCudaMaxBatch;
    g.capped = true;
  }
  // CPU workers each hold a copy of the graph and a batch's workspace.
  int workers = on_cpu ? std::max(1, std::min(device.cpu_threads, (n + k - 1) / k)) : 1;
  if (workers > 1) {
    const std::size_t per_worker = std::max<std::size_t>(device.graph_bytes + bytes(k), 1);
    workers = static_cast<int>(std::max<std::size_t>(1, std::min<std::size_t>(workers, budget / per_worker)));
  }
  g.workers = workers;
  const std::size_t whole = bytes(k) * static_cast<std::size_t>(workers);
  if (whole > budget && k > 1) {
    // Batches that fit: bytes(k) is about base + k * per.
    const std::size_t b1 = bytes(1), per = std::max<std::size_t>(bytes(2) - b1, 1);
    const std::size_t base = b1 > per ? b1 - per : 0;
    const std::size_t per_worker = budget / static_cast<std::size_t>(workers);
    const int fit = per_worker > base ? static_cast<int>(std::min<std::size_t>((per_worker - base) / per,
                                                                               static_cast<std::size_t>(n)))
                                      : 1;
    g.shrunk_from = k;
    g.shrunk_bytes = whole;
    k = std::max(1, std::min(k, fit));
    while (k > 1 && bytes(k) * static_cast<std::size_t>(workers) > budget) k = k * 3 / 4;
  }
  g.batch = k;
  g.batches = (n + k - 1) / k;
  g.planned_bytes = bytes(k);
  return g;
}

}  // namespace

BatchPlan plan_batches(const std::vector<BatchModel>& models, int batch, const BatchDevice& device,
                       const BatchBytes& bytes) {
  std::map<int, std::vector<std::size_t>> by_hidden;
  for (std::size_t i = 0; i < models.size(); ++i) by_hidden[models[i].hidden].push_back(i);
  const bool on_cpu = device.kind == DeviceKind::kCpu;
  BatchPlan plan;
  int max_workers = on_cpu ? device.cpu_threads : 1;  // the memory budget may allow fewer
  for (const auto& [hidden, members] : by_hidden) {
    const int n = static_cast<int>(members.size());
    const bool with_dropout =
        std::any_of(members.begin(), members.end(), [&](std::size_t i) { return models[i].dropout > 0.0f; });
    const BatchGroup g = plan_group(hidden, n, with_dropout, batch, device, bytes);
    max_workers = std::min(max_workers, g.workers);
    for (int b = 0; b < g.batches; ++b) {
      BatchJob job;
      job.group = plan.groups.size();
      job.index = b;
      job.models.assign(members.begin() + static_cast<std::ptrdiff_t>(b) * g.batch,
                        members.begin() + std::min<std::ptrdiff_t>(static_cast<std::ptrdiff_t>(b + 1) * g.batch, n));
      plan.jobs.push_back(std::move(job));
    }
    plan.groups.push_back(g);
  }
  plan.workers = on_cpu ? std::min<int>(max_workers, static_cast<int>(plan.jobs.size())) : 1;
  return plan;
}

}  // namespace gcn
