// gcn-train's training step: evaluation only (--epochs 0 --init), one model
// at a time (runs of one configuration share a trainer; checkpoints,
// predictions and embeddings follow the first model), or batches; each
// model's end (its summary line, --save, --save-dir) and its result in the
// report.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>

#include <CLI/CLI.hpp>

#include "gcn/backend/backend.hpp"
#include "gcn/nn/device_graph.hpp"
#include "gcn/train/report.hpp"
#include "load_data.hpp"
#include "options.hpp"
#include "run_config.hpp"

namespace gcn::cli {

// What the training step works with.
struct TrainingInputs {
  const Options& opt;
  const CLI::App& app;
  const RunConfig& run;
  const LoadedData& loaded;
  const StartingWeights& start;
  Backend& backend;
  const DeviceGraph& graph;  // on `backend`, shared by every model
  std::size_t graph_bytes;   // the backend memory one copy of the graph takes
  const std::atomic<bool>& interrupt;  // set: end after the running epoch
};

// Trains (or evaluates) every model of the run; the report holds each
// model's configuration and result, the batches, the training's time and
// whether an interrupt ended it.
RunReport train_models(const TrainingInputs& in);

}  // namespace gcn::cli
