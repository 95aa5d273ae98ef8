// gcn-train's options: the Options struct, their registration with CLI11 (in
// groups, in --help's order; the --model choices and each model's own
// hyperparameter flags from the registry), each model's defaults, the flags'
// checks among themselves, and "did you mean" for an unknown option.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "gcn/backend/devices.hpp"
#include "gcn/nn/registry.hpp"
#include "gcn/train/trainer.hpp"

namespace gcn::cli {

inline constexpr const char* kVersion = "0.1.0";

struct Options {
  // List options (a grid): every combination trains, --runs seeds each.
  std::vector<float> lrs{0.01f}, weight_decays{5e-4f}, dropouts{0.5f};
  std::vector<int> hiddens{16};
  // The architecture (each model's defaults apply to what is not given).
  std::string model = "gcn";
  std::string recipe = "default";  // --recipe: default | citation (ModelType::defaults or ::citation)
  int layers = 2;
  float input_dropout = 0.0f;
  // The models' own hyperparameters (--heads, --K, ...) as given, by name
  // (the registry's HyperParam::name); "" when not given.
  std::map<std::string, std::string> hyper_text;
  int batch = 0;            // models per batch; 0: as many as the memory budget allows
  double memory_budget_mb = 0;  // 0: half of the backend's available memory
  std::string table_path, save_dir;
  std::string configs;      // --configs: an explicit list instead of the grid
  std::string seed_text = "0";
  std::string log_csv, out_dir, write_config, embeddings_path;
  std::string dataset = "cora";
  std::optional<std::string> data_root;
  std::string device = "auto";
  TrainConfig train;
  std::string loss = "nll";
  std::string select = "last";
  int runs = 1;
  std::string json_path;
  std::string save_path, init_path, checkpoint_path, resume_path, predictions_path;
  int checkpoint_every = 0;
  std::string cuda_graph = "on";
  bool quiet = false;
  int threads = 0;
  bool no_normalize = false;
  // The graph and its split (graph files: docs/graph-format.md).
  bool to_undirected = false;
  bool random_splits = false;
  bool no_edge_weights = false;  // --no-edge-weights: a graph file's edge_weight is dropped  // --random-splits: run r's split is --split random with --split-seed + r
  std::string split = "auto", num_val = "500", num_test = "1000", export_graph;
  int64_t train_per_class = 20;
  uint64_t split_seed = 0;
  bool list_models = false;  // --models: print the registry and exit
};

// --version: the release and how this binary was built.
std::string version_text();

// Registers every option on `app`, writing into `opt`.
void add_options(CLI::App& app, Options& opt);

// The first command-line word that looks like an option gcn-train does not
// have, with the closest one it has: "unknown option --epoch (did you mean
// --epochs?)"; "" when every option is known.
std::string unknown_option(const CLI::App& app, int argc, char** argv);

// Each model brings the defaults of its PyG example for what is not given
// (the registry's ModelType::defaults); the options' shown defaults change
// with them, so that --write-config writes what the run used.
void resolve_model_defaults(Options& opt, CLI::App& app);

// A hyperparameter's value from its text (the flag's, or the model's default).
double parse_hyper(const HyperParam& p, const std::string& text);

// --seed: a decimal integer in [0, 2^63), and so the last of --runs seeds.
uint64_t parse_seed(const std::string& text, int runs);

// How many models the options ask for, and how they train.
struct RunKind {
  bool eval_only = false;  // --epochs 0 --init: evaluates one model, no training
  bool is_grid = false;    // lists of values, or --configs
  int64_t n_models = 1;    // configurations x --runs
  bool batched = false;    // several models, trained as batches (not --batch 1)
};

// The flags' checks among themselves (gcn::UsageError naming them), before
// anything is read; resolve_run (run_config.hpp) makes them in this order.
void check_evaluation_only(const Options& opt, const RunKind& kind);  // --epochs 0
void check_counts(const Options& opt);                                // --runs, --batch, --memory-budget
void check_model_count(int64_t n_models);
// --out-dir: the run's files in one folder, each unless given on its own.
void place_in_out_dir(Options& opt, const RunKind& kind);
// The rest: what follows one model, --device, --threads, the starting
// weights, standard output, the files' places (--save-dir is created).
DeviceSpec check_flags(const Options& opt, const RunKind& kind);

}  // namespace gcn::cli
