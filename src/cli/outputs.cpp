// What gcn-train writes and says (outputs.hpp): result files, standard
// output for "-", the summary lines.
#include "outputs.hpp"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "gcn/data/graph_file.hpp"
#include "gcn/data/split.hpp"
#include "gcn/error.hpp"
#include "gcn/file_io.hpp"
#include "gcn/train/checkpoint.hpp"

namespace gcn::cli {

using Clock = std::chrono::steady_clock;

std::string count_of(int64_t n, const char* noun) { return fmt::format("{} {}{}", n, noun, n == 1 ? "" : "s"); }

std::string config_label(const gcn::TrainConfig& c) {
  return fmt::format("hidden {} lr {} wd {} dropout {}", c.hidden, c.lr, c.weight_decay, c.dropout);
}


void write_output(const std::string& path, const std::string& contents) {
  if (path == "-") {
    if (std::fwrite(contents.data(), 1, contents.size(), stdout) != contents.size() || std::fflush(stdout) != 0) {
      throw gcn::Error("cannot write to standard output");
    }
    return;
  }
  gcn::write_file_atomic(path, contents);
}

void write_config_file(const Options& opt, const CLI::App& app) {
  if (opt.write_config.empty()) return;
  write_output(opt.write_config, app.config_to_str(/*default_also=*/true, /*write_description=*/true));
  if (opt.write_config != "-") spdlog::info("wrote the options to {} (--config {} repeats this run)", opt.write_config,
                                            opt.write_config);
}

void export_graph(const std::string& path, const Dataset& data) {
  gcn::write_graph_file(path, data);
  spdlog::info("wrote {} to {} (features before NormalizeFeatures; --dataset {} trains on it)", data.name, path, path);
}

void write_embeddings(const std::string& path, const gcn::Dataset& data, const gcn::TrainConfig& cfg, int epoch,
                      const std::vector<float>& values) {
  gcn::SafetensorsFile file;
  const int64_t cols = data.n_nodes > 0 ? static_cast<int64_t>(values.size()) / data.n_nodes : 0;
  file.tensors.push_back({"embeddings", {data.n_nodes, cols}, values});
  file.metadata = {{"format", "gcn-train embeddings"},
                   {"producer", fmt::format("gcn-train {}", kVersion)},
                   {"layer", fmt::format("the output of the last hidden layer ({} -> {}; evaluation pass: no dropout)",
                                         cfg.layers - 1, cfg.model->activation())},
                   {"epoch", std::to_string(epoch)},
                   {"dataset", data.name},
                   {"seed", std::to_string(cfg.seed)}};
  gcn::write_safetensors(path, file);
}

void write_predictions(const std::string& path, const gcn::Dataset& data, const std::vector<float>& log_probs) {
  const int64_t c = data.n_classes;
  std::string out = "node,split,label,pred";
  for (int64_t k = 0; k < c; ++k) out += fmt::format(",p{}", k);
  out += "\n";
  for (int64_t i = 0; i < data.n_nodes; ++i) {
    const float* row = log_probs.data() + i * c;
    int64_t best = 0;
    for (int64_t k = 1; k < c; ++k) best = row[k] > row[best] ? k : best;
    std::string split;
    for (const auto& [bit, name] : {std::pair{gcn::kTrainBit, "train"}, {gcn::kValBit, "val"}, {gcn::kTestBit, "test"}}) {
      if ((data.split[i] & bit) != 0) split += split.empty() ? name : std::string("+") + name;
    }
    if (split.empty()) split = "none";
    out += fmt::format("{},{},{},{}", i, split, data.labels[i], best);
    for (int64_t k = 0; k < c; ++k) out += fmt::format(",{:.6g}", std::exp(row[k]));
    out += "\n";
  }
  write_output(path, out);
}

namespace {

// "GATConv(1433, 8, heads=8, dropout=0.6) -> ELU -> dropout(0.6) -> GATConv(64, 7, dropout=0.6)"
std::string early_text(const TrainConfig& config) {
  return config.early_stopping > 0
             ? fmt::format(", early stopping after epoch {} against the mean validation loss of the {} before",
                           config.epochs / 2, count_of(config.early_stopping, "epoch"))
             : "";
}

std::string describe_model(const gcn::ModelShape& s, const std::string& dropout) {
  return s.type->describe(s, dropout);
}

}  // namespace

void log_run(const Options& opt, const RunConfig& run, const Dataset& data, const Backend& backend) {
  const gcn::TrainConfig& config = run.config;
  spdlog::info("device: {}", backend.describe());
  if (run.configs.size() == 1) {
    spdlog::info("model: {}; Adam lr {} weight decay {}; "
                 "{}{}, seed {}, loss {}, select {}{}{}",
                 describe_model(config.shape(data.n_features, data.n_classes), fmt::format("{}", config.dropout)),
                 config.lr,
                 config.weight_decay, count_of(config.epochs, "epoch"), run.kind.eval_only ? " (evaluation only)" : "",
                 config.seed, gcn::loss_name(config.loss), gcn::selection_name(config.select),
                 config.patience > 0 ? fmt::format(", stop after {} without a better validation epoch",
                                                   count_of(config.patience, "epoch"))
                                     : "",
                 early_text(config));
  } else {
    spdlog::info("models: {}; {} configurations "
                 "({}) x {} seed{} = {} models; {} epochs, loss {}, select {}{}{}",
                 describe_model(config.shape(data.n_features, data.n_classes), "p"), run.configs.size(),
                 opt.configs.empty() ? fmt::format("a grid of hidden {}, lr {}, weight decay {}, dropout {}",
                                                   fmt::join(opt.hiddens, ","), fmt::join(opt.lrs, ","),
                                                   fmt::join(opt.weight_decays, ","), fmt::join(opt.dropouts, ","))
                                     : std::string("--configs"),
                 opt.runs, opt.runs == 1 ? "" : "s",
                 run.kind.n_models, config.epochs, gcn::loss_name(config.loss), gcn::selection_name(config.select),
                 config.patience > 0 ? fmt::format(", patience {}", config.patience) : "", early_text(config));
  }
}

void log_model_end(const TrainConfig& cfg, const TrainResult& result, const std::string& prefix, bool summary_warn,
                   const Dataset& data, const Backend& backend) {
  const gcn::EpochStats& f = result.final_stats();
  int nonfinite = 0;
  for (const gcn::EpochStats& s : result.history) nonfinite += std::isfinite(s.loss) ? 0 : 1;
  if (nonfinite > 0) spdlog::warn("{}the training loss was not finite in {}", prefix, count_of(nonfinite, "epoch"));
  const gcn::EpochStats& sel = result.selected();
  if (result.stopped_early) {
    const bool patience_ran_out = cfg.patience > 0 && f.epoch - result.best_epoch >= cfg.patience;
    spdlog::info("{}stopped early after epoch {}: {}", prefix, f.epoch,
                 patience_ran_out ? fmt::format("no better validation epoch since epoch {}", result.best_epoch)
                                  : fmt::format("its validation loss exceeds the mean of the {} before",
                                                count_of(cfg.early_stopping, "epoch")));
  }
  // With --select last, say which epoch was best when it was not the last
  // (what --select best-val would report): early stopping ends after it.
  std::string best;
  if (cfg.select == gcn::Selection::kLast && result.best_epoch > 0 && result.best_epoch != sel.epoch) {
    const gcn::EpochStats& b = result.history[static_cast<std::size_t>(result.best_epoch - 1)];
    best = fmt::format(" | best epoch {}: val {:.4f} test {:.4f} (--select best-val reports it)", b.epoch, b.val_acc,
                       b.test_acc);
  }
  const std::string line =
      fmt::format("{}{} on {}: {} in {:.3f} s ({:.3f} ms/epoch{}) | loss {:.4f} | {} epoch {}: train {:.4f} "
                  "val {:.4f} test {:.4f}{}",
                  prefix, data.name, backend.describe(), count_of(f.epoch, "epoch"), result.train_s,
                  result.epoch_ms_median, result.graph_replayed ? ", CUDA graph" : "", f.loss,
                  gcn::selection_name(cfg.select), sel.epoch, sel.train_acc, sel.val_acc, sel.test_acc,
                  cfg.patience > 0 || cfg.early_stopping > 0 ? best : "");
  if (summary_warn) {
    spdlog::warn("{}", line);
  } else {
    spdlog::info("{}", line);
  }
}

namespace {

// The interruption, the batches' rate, the seeds' summary.
void log_training_summary(const Options& opt, const RunConfig& run, const Backend& backend, const RunReport& report) {
  if (report.interrupted) {
    spdlog::warn("interrupted: {} of {} models have results{}", report.results.size(), run.kind.n_models,
                 opt.json_path.empty() ? "" : "; the JSON marks the run interrupted");
  }
  if (run.kind.batched) {
    const double done = static_cast<double>(report.results.size());
    spdlog::warn("{} model{} trained in {:.3f} s ({:.1f} models/s) on {}", report.results.size(),
                 report.results.size() == 1 ? "" : "s", report.train_total_s, done / report.train_total_s,
                 backend.describe());
  }
  std::vector<double> accs;
  for (const gcn::TrainResult& res : report.results) accs.push_back(res.selected().test_acc);
  if (run.configs.size() == 1 && report.results.size() > 1) {
    const gcn::SeedSummary s = gcn::summarize(accs);
    spdlog::warn("{} runs (seeds {}..{}), {} epoch: test accuracy {:.4f} ± {:.4f} (95% CI {:.4f} .. {:.4f})",
                 report.results.size(), report.seeds.front(), report.seeds.back(),
                 gcn::selection_name(run.config.select), s.mean, s.std, s.ci95_low, s.ci95_high);
  }
}

// The grid's table in the log, and --table.
void write_table(const Options& opt, const RunConfig& run, const RunReport& report) {
  const std::vector<gcn::ConfigSummary> table = gcn::summarize_configurations(report);
  if (run.configs.size() > 1) {
    spdlog::warn("{} configurations x {} seed{}, {} epoch, sorted by mean validation accuracy:\n{}",
                 run.configs.size(), opt.runs, opt.runs == 1 ? "" : "s", gcn::selection_name(run.config.select),
                 gcn::format_table(table, gcn::TableFormat::kMarkdown));
  }
  if (!opt.table_path.empty()) {
    const bool csv = std::filesystem::path(opt.table_path).extension() == ".csv";  // "-": Markdown
    write_output(opt.table_path, gcn::format_table(table, csv ? gcn::TableFormat::kCsv : gcn::TableFormat::kMarkdown));
    spdlog::info("wrote {}", opt.table_path);
  }
}

// --log-csv: one row per epoch (per model).
void write_log_csv(const std::string& path, const RunReport& report) {
  std::string csv = "model,hidden,lr,weight_decay,dropout,seed,epoch,loss,val_loss,train_acc,val_acc,test_acc\n";
  for (std::size_t m = 0; m < report.results.size(); ++m) {
    const gcn::TrainConfig& c = report.model_configs[m];
    for (const gcn::EpochStats& e : report.results[m].history) {
      csv += fmt::format("{},{},{},{},{},{},{},{:.9g},{:.9g},{:.9g},{:.9g},{:.9g}\n", m, c.hidden, c.lr,
                         c.weight_decay, c.dropout, c.seed, e.epoch, e.loss, e.val_loss, e.train_acc, e.val_acc,
                         e.test_acc);
    }
  }
  write_output(path, csv);
  if (path != "-") spdlog::info("wrote {}", path);
}

// --json: the report with the run's options as given and where it ran.
void write_json(const Options& opt, const RunConfig& run, const LoadedData& loaded, const Backend& backend,
                RunReport& report, Clock::time_point process_start) {
  const std::vector<gcn::TrainConfig>& configs = run.configs;
  report.dataset = &loaded.data;
  report.config = configs.front();
  report.grid_lr = opt.lrs;
  report.grid_weight_decay = opt.weight_decays;
  report.grid_dropout = opt.dropouts;
  report.grid_hidden = configs.size() == 1 ? std::vector<int>{configs.front().hidden} : opt.hiddens;
  report.configs_arg = opt.configs;
  report.batch_arg = opt.batch;
  report.dataset_arg = run.dataset;
  report.data_root = loaded.data_root;
  report.device_arg = opt.device;
  report.device = backend.describe();
  report.threads = opt.threads;
  report.normalize_features = !opt.no_normalize;
  report.init_path = opt.init_path;
  report.resume_path = opt.resume_path;
  report.checkpoint_path = opt.checkpoint_path;
  report.checkpoint_every = opt.checkpoint_every;
  report.save_path = opt.save_path;
  report.save_dir = opt.save_dir;
  report.predictions_path = opt.predictions_path;
  report.load_s = loaded.load_s;
  report.total_s = std::chrono::duration<double>(Clock::now() - process_start).count();
  report.peak_host_mb = gcn::peak_host_memory_mb();
  report.peak_device_mb = static_cast<double>(backend.peak_memory_bytes()) / (1024.0 * 1024.0);
  write_output(opt.json_path, gcn::to_json(report).dump(2) + "\n");
  spdlog::info("wrote {}", opt.json_path);
}

}  // namespace

void write_outputs(const Options& opt, const RunConfig& run, const LoadedData& loaded, const Backend& backend,
                   RunReport& report, Clock::time_point process_start) {
  log_training_summary(opt, run, backend, report);
  write_table(opt, run, report);
  if (!opt.log_csv.empty()) write_log_csv(opt.log_csv, report);
  if (!opt.json_path.empty()) write_json(opt, run, loaded, backend, report, process_start);
}

}  // namespace gcn::cli
