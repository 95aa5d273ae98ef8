// Planning batches of models: which models train together, how many per
// batch, and over how many CPU worker threads. A pure function of its inputs
// (the models, --batch, the device's limits and memory budget, what a batch
// takes): no backend, no clock, no log, so a plan is tested by hand.
#pragma once

#include <cstddef>
#include <functional>
#include <vector>

#include "gcn/backend/backend.hpp"

namespace gcn {

// The most models one CUDA batch holds: the kernels take a batch's model from
// blockIdx.y (Adam's from blockIdx.z), and a grid has at most 65535 of either.
inline constexpr int kCudaMaxBatch = 65535;

// A model to plan for: models of one hidden width share batches; whether any
// of them drops decides whether their batches plan the dropout layers.
struct BatchModel {
  int hidden = 0;
  float dropout = 0.0f;
};

// What the device offers a plan.
struct BatchDevice {
  DeviceKind kind = DeviceKind::kCpu;
  int cpu_threads = 1;                 // CPU: the most worker threads
  std::size_t cache_bytes = 1 << 20;   // CPU: one core's L2 cache (cpu_cache_bytes())
  std::size_t graph_bytes = 0;         // one copy of the graph (every CPU worker holds its own)
  std::size_t budget_bytes = 0;        // the memory the batches may take (all workers together)
};

// The backend memory one batch of k models of this hidden width plans for
// (its workspace; the graph not included), e.g. Trainer::planned_bytes.
using BatchBytes = std::function<std::size_t(int hidden, int k, bool with_dropout)>;

// How the models of one hidden width are split into batches.
struct BatchGroup {
  int hidden = 0;
  int models = 0;
  int batch = 0;                   // models per batch (the last may have fewer)
  int batches = 0;
  std::size_t planned_bytes = 0;   // one batch's backend memory: bytes(hidden, batch, with_dropout)
  bool with_dropout = false;       // some model of the group drops
  int workers = 1;                 // CPU worker threads the group could keep busy (1 on a GPU)
  bool capped = false;             // kCudaMaxBatch made the batches smaller
  // The memory budget made the batches smaller: from shrunk_from models, whose
  // batches (one per worker) would have needed shrunk_bytes. 0: it did not.
  int shrunk_from = 0;
  std::size_t shrunk_bytes = 0;
};

// One batch: models (indices into the planned list, in its order) of a group.
struct BatchJob {
  std::size_t group = 0;  // BatchPlan::groups[group]
  int index = 0;          // which of the group's batches (from 0)
  std::vector<std::size_t> models;
};

struct BatchPlan {
  std::vector<BatchGroup> groups;  // by ascending hidden width
  std::vector<BatchJob> jobs;      // the groups' batches in order
  int workers = 1;                 // threads that run the jobs (1 on a GPU; 0 without jobs)
};

// Models per batch that keep one CPU worker's tensors in its cache, from the
// planned bytes of batches of 1 and 2 models (at least 1).
int cpu_cache_batch(std::size_t bytes_1, std::size_t bytes_2, std::size_t cache_bytes);

// The plan for `models` with --batch `batch` (0: as many as the memory budget
// allows; on the CPU, batches that fit a core's cache, spread over the
// threads). Within a width the models keep their order.
BatchPlan plan_batches(const std::vector<BatchModel>& models, int batch, const BatchDevice& device,
                       const BatchBytes& bytes);

}  // namespace gcn
