// The machine-readable result of a run (--json) and writing it safely.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "gcn/data/dataset.hpp"
#include "gcn/train/batch_plan.hpp"
#include "gcn/train/trainer.hpp"

namespace gcn {

// A float option as JSON shows it: the shortest decimal that reads back as the
// same float (0.01f -> 0.01, not 0.009999999776482582).
double json_number(float value);
// The model of a configuration: its type, depth, widths, input dropout and
// the type's hyperparameters by config key ({"model": "gat", "layers": 2,
// "hiddens": [], "input_dropout": 0.6, "heads": 8, "attention_dropout": 0.6}):
// one description for the report, the checkpoints and the saved models.
nlohmann::json model_json(const TrainConfig& c);

// Mean, sample standard deviation and a 95% confidence interval of the mean
// (Student's t with n - 1 degrees of freedom); std and the interval are 0
// wide for a single value.
struct SeedSummary {
  int n = 0;
  double mean = 0, std = 0, ci95_low = 0, ci95_high = 0;
};
SeedSummary summarize(const std::vector<double>& values);

struct RunReport {
  const Dataset* dataset = nullptr;
  TrainConfig config;               // of the first run (later runs differ in the seed)
  // The grid's values as given (one each for a single configuration).
  std::vector<float> grid_lr, grid_weight_decay, grid_dropout;
  std::vector<int> grid_hidden;
  int batch_arg = 0;                // --batch as given (0: by the memory budget)
  std::string configs_arg;          // --configs as given (the grid's lists then hold one value each)
  std::vector<BatchGroup> batches;  // how each width was batched; empty when models trained one at a time
  double train_total_s = 0;         // every model's training, start to end
  std::string save_dir;
  std::string dataset_arg;          // as given on the command line
  std::string data_root;
  std::string device_arg;           // as given: cpu, cuda, cuda:N, auto
  std::string device;               // what ran: Backend::describe()
  int threads = 0;
  bool normalize_features = true;
  bool interrupted = false;         // SIGINT/SIGTERM ended the training early
  std::string init_path, resume_path, checkpoint_path, save_path, predictions_path;
  int checkpoint_every = 0;
  double load_s = 0;
  double total_s = 0;               // the process so far: start-up, load, device, training
  double peak_host_mb = 0;          // maximum resident set size of the process
  double peak_device_mb = 0;        // most backend memory held at once
  std::vector<uint64_t> seeds;      // one per run
  std::vector<TrainConfig> model_configs;  // one per run (its own lr, weight decay, dropout, hidden, seed)
  std::vector<TrainResult> results; // one per run
};

// One configuration of a grid over its seeds (the selected epoch's figures).
struct ConfigSummary {
  TrainConfig config;  // the first seed's
  std::vector<uint64_t> seeds;
  SeedSummary val_acc, test_acc, final_test_acc;
  double selected_epoch_mean = 0;
};
// Per configuration (same hidden, lr, weight decay and dropout), sorted by
// mean validation accuracy, best first (ties: higher mean test accuracy,
// then the grid's order).
std::vector<ConfigSummary> summarize_configurations(const RunReport& report);
enum class TableFormat { kMarkdown, kCsv };
std::string format_table(const std::vector<ConfigSummary>& rows, TableFormat format);

// {dataset, config, device, history, final, selected, timing, memory, runs,
// summary}; the top-level history/final/selected/timing are the first run's.
// See README.md.
nlohmann::json to_json(const RunReport& report);

// The process's peak resident set size in MiB (getrusage).
double peak_host_memory_mb();

}  // namespace gcn
