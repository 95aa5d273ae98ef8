// Running a batch plan (batch_plan.hpp): its jobs, taken in order from a
// shared counter, on the graph's backend, or on the CPU over plan.workers
// threads, each with its own single-threaded CPU backend and copy of the
// graph (independent models need no synchronisation; every result is the
// same bits on any thread).
#pragma once

#include <atomic>
#include <cstddef>
#include <functional>
#include <vector>

#include "gcn/data/dataset.hpp"
#include "gcn/nn/device_graph.hpp"
#include "gcn/train/batch_plan.hpp"
#include "gcn/train/trainer.hpp"

namespace gcn {

// A batch's progress after a read-back (Trainer's on_progress).
struct BatchProgress {
  const BatchJob& job;
  int epoch = 0;             // the last epoch read back
  int running = 0;           // the job's models still training
  std::size_t started = 0;   // jobs started so far, this one included
  double job_s = 0;          // seconds since this job started
};

struct BatchRunOptions {
  const std::vector<float>* init_params = nullptr;  // every model starts from them (else each its seed's)
  const std::atomic<bool>* interrupt = nullptr;     // set: no new job, and the running ones end after their epoch
  std::function<void(const BatchProgress&)> on_progress;  // called from any worker thread
};

// Trains the plan's jobs over `models` (the list the plan was made for; a
// job's models agree on what Trainer::train_batch requires). `data` is what
// `graph` holds (each CPU worker uploads its own copy). results[j]: job j's
// models in order; empty for a job an interrupt kept from starting. A
// worker's exception stops the others after their current batch and is
// rethrown.
std::vector<std::vector<TrainResult>> run_batches(const DeviceGraph& graph, const Dataset& data,
                                                  const std::vector<TrainConfig>& models, const BatchPlan& plan,
                                                  const BatchRunOptions& options = {});

}  // namespace gcn
