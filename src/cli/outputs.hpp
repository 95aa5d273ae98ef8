// What gcn-train writes and says: the result files (predictions CSV,
// embeddings, the per-epoch CSV, the table, the JSON report, the options as
// TOML, the exported graph), standard output for "-", and the summary lines
// (the run's model, each model's end, the seeds' and the grid's summaries).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "gcn/backend/backend.hpp"
#include "gcn/data/dataset.hpp"
#include "gcn/train/report.hpp"
#include "gcn/train/trainer.hpp"
#include "load_data.hpp"
#include "options.hpp"
#include "run_config.hpp"

namespace gcn::cli {

// "1 epoch", "5 epochs".
std::string count_of(int64_t n, const char* noun);
// "hidden 16 lr 0.01 wd 0.0005 dropout 0.5": a grid's configuration in the log.
std::string config_label(const TrainConfig& c);

// A result file, or standard output for "-".
void write_output(const std::string& path, const std::string& contents);
// --write-config: every option's value as TOML (--config reads it back).
void write_config_file(const Options& opt, const CLI::App& app);
// --export-graph: the loaded dataset as a graph file (docs/graph-format.md).
void export_graph(const std::string& path, const Dataset& data);
// The last hidden layer per node (N, H) as safetensors, for t-SNE and
// downstream models.
void write_embeddings(const std::string& path, const Dataset& data, const TrainConfig& cfg, int epoch,
                      const std::vector<float>& values);
// node, split, label, predicted class and class probabilities per node.
void write_predictions(const std::string& path, const Dataset& data, const std::vector<float>& log_probs);

// The lines before training: the device, and the model (or the grid) with
// its recipe.
void log_run(const Options& opt, const RunConfig& run, const Dataset& data, const Backend& backend);
// One model's end: a non-finite loss, early stopping, and its summary line
// (a warning, so that --quiet keeps it, when summary_warn).
void log_model_end(const TrainConfig& cfg, const TrainResult& result, const std::string& prefix, bool summary_warn,
                   const Dataset& data, const Backend& backend);

// After training: the interruption, the batches' rate, the seeds' summary,
// the grid's table (--table), the per-epoch CSV (--log-csv), the JSON
// report (--json).
void write_outputs(const Options& opt, const RunConfig& run, const LoadedData& loaded, const Backend& backend,
                   RunReport& report, std::chrono::steady_clock::time_point process_start);

}  // namespace gcn::cli
