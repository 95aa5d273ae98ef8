// gcn-train's plan and training steps: the batches' plan (train/batch_plan),
// then evaluation only (--epochs 0 --init), one model at a time (runs of one
// configuration share a trainer; checkpoints, predictions and embeddings
// follow the first model), or the batches (train/batch_runner); each
// model's end (its summary line, --save, --save-dir) and its result in the
// report.
#pragma once

#include <atomic>
#include <cstddef>
#include <vector>

#include <CLI/CLI.hpp>

#include "gcn/backend/backend.hpp"
#include "gcn/nn/device_graph.hpp"
#include "gcn/train/batch_plan.hpp"
#include "gcn/train/report.hpp"
#include "load_data.hpp"
#include "options.hpp"
#include "run_config.hpp"

namespace gcn::cli {

// A batched run's models (configurations x --runs seeds, each reading back
// about ten times a run unless --log-every is given) and their plan; empty
// for a run without batches.
struct RunBatches {
  std::vector<TrainConfig> models;
  BatchPlan plan;
};

// The plan step: the batches for the device (its kind, threads, cache and
// memory; --batch, --memory-budget), each width's plan logged.
RunBatches plan_run_batches(const Options& opt, const CLI::App& app, const RunConfig& run, const Dataset& data,
                            const Backend& backend, const DeviceGraph& graph, std::size_t graph_bytes);

// What the training step works with.
struct TrainingInputs {
  const Options& opt;
  const RunConfig& run;
  const LoadedData& loaded;
  const StartingWeights& start;
  Backend& backend;
  const DeviceGraph& graph;  // on `backend`, shared by every model
  const RunBatches& batches;
  const std::atomic<bool>& interrupt;  // set: end after the running epoch
};

// Trains (or evaluates) every model of the run; the report holds each
// model's configuration and result, the batches, the training's time and
// whether an interrupt ended it.
RunReport train_models(const TrainingInputs& in);

}  // namespace gcn::cli
