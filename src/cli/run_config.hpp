// One description of a run and its model for every file gcn-train writes or
// reads: the configurations from the options (the grid, --configs), the
// config JSON stored in checkpoints and saved models, --resume (the
// checkpoint's config and data options apply) and --init (the architecture
// from the file).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "gcn/backend/devices.hpp"
#include "gcn/data/dataset.hpp"
#include "gcn/train/checkpoint.hpp"
#include "gcn/train/trainer.hpp"
#include "options.hpp"

namespace gcn::cli {

// What the options resolve to.
struct RunConfig {
  TrainConfig config;                // the first configuration: what every model shares
  std::vector<TrainConfig> configs;  // every configuration (its first seed); --runs seeds each
  RunKind kind;
  DeviceSpec device;
  std::string dataset;               // --dataset, or the checkpoint's with --resume
  nlohmann::json data_options;       // what makes the dataset what it is (data_options_json)
  std::optional<SafetensorsFile> resume_file;  // --resume's checkpoint
};

// The options resolved and checked (gcn::UsageError naming the flags), before
// any data is read; --resume's checkpoint is read here, its dataset and data
// options applied to `opt`.
RunConfig resolve_run(Options& opt, const CLI::App& app);

// The grid: every combination of the list options, hidden-major (models of
// one width share batches), or --configs' list.
std::vector<TrainConfig> grid_configs(const Options& opt, const TrainConfig& base);

// The starting weights: --resume (a training state; its configuration
// becomes the run's) or --init (a model; its architecture is taken unless a
// flag asks for another). Read before the device starts.
struct StartingWeights {
  std::optional<TrainState> resume;
  std::optional<std::vector<float>> init;
};
StartingWeights read_starting_weights(const Options& opt, const CLI::App& app, RunConfig& run, const Dataset& data);

// ---- the run in files ---------------------------------------------------------
// The options that make the dataset what it is (the split, the edges, the
// features), stored with the config so that --resume rebuilds the same graph.
nlohmann::json data_options_json(const Options& o);
// A configuration as checkpoints and saved models store it.
nlohmann::json config_json(const TrainConfig& c, const std::string& dataset, const nlohmann::json& data);
nlohmann::json dataset_json(const Dataset& d);
// A model's file (--save, --save-dir; "pt") with the selected epoch and its metrics.
SafetensorsFile saved_model_file(const TrainConfig& cfg, const TrainResult& result, const RunConfig& run,
                                 const Dataset& data);
// A training state (--checkpoint) that --resume continues.
SafetensorsFile checkpoint_file(const TrainConfig& cfg, const TrainState& state, const RunConfig& run,
                                const Dataset& data);
// --save-dir's name for a model: hidden16_lr0.01_wd0.0005_dropout0.5_seed0.safetensors.
std::string model_file_name(const TrainConfig& c);

}  // namespace gcn::cli
