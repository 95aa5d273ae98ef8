// gcn-train: trains PyG's tutorial GCN on a Planetoid (or synthetic) dataset.
// Exit status: 0 success, 1 runtime error (data, device, numerics), 2 usage error.
#include <csignal>
#include <unistd.h>

#include <algorithm>
#include <mutex>
#include <atomic>
#include <thread>
#include <chrono>
#include <filesystem>
#include <map>
#include <cmath>
#include <cstdio>
#include <exception>
#include <new>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include "gcn/train/checkpoint.hpp"
#include "gcn/data/dataset.hpp"
#include "gcn/nn/device_graph.hpp"
#include "gcn/backend/devices.hpp"
#include "gcn/error.hpp"
#include "gcn/file_io.hpp"
#include "gcn/data/graph_file.hpp"
#include "gcn/train/grid.hpp"
#include "gcn/data/split.hpp"
#include "gcn/suggest.hpp"
#include "gcn/data/planetoid.hpp"
#include "gcn/train/report.hpp"
#include "gcn/data/synthetic.hpp"
#include "gcn/nn/model.hpp"
#include "gcn/nn/registry.hpp"
#include "gcn/train/trainer.hpp"

namespace {

constexpr const char* kVersion = "0.1.0";

// SIGINT/SIGTERM: the first asks the training to end after the running epoch
// (the figures so far, a checkpoint when asked for, the JSON marked
// interrupted, exit 130); a second exits at once.
std::atomic<bool> g_interrupt{false};
extern "C" void on_interrupt(int /*signal*/) {
  if (g_interrupt.exchange(true)) ::_exit(130);
  static const char kMsg[] = "\ngcn-train: interrupted: finishing the running epoch (again to quit at once)\n";
  const ssize_t ignored = ::write(2, kMsg, sizeof kMsg - 1);
  (void)ignored;
}

void install_interrupt_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_interrupt;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);
}
using Clock = std::chrono::steady_clock;

struct Options {
  // List options (a grid): every combination trains, --runs seeds each.
  std::vector<float> lrs{0.01f}, weight_decays{5e-4f}, dropouts{0.5f};
  std::vector<int> hiddens{16};
  // The architecture (each model's defaults apply to what is not given).
  std::string model = "gcn";
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
  gcn::TrainConfig train;
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
  std::string split = "auto", num_val = "500", num_test = "1000", export_graph;
  int64_t train_per_class = 20;
  uint64_t split_seed = 0;
};

// Results written to standard output (--json -, --predictions -, --table -)
// move the log to standard error.
void setup_logging(bool quiet, bool to_stderr) {
  auto logger = to_stderr ? spdlog::stderr_logger_mt("gcn") : spdlog::stdout_logger_mt("gcn");
  logger->flush_on(spdlog::level::info);  // each line as it happens, also into a pipe or a file
  logger->set_pattern("%v");
  logger->set_level(quiet ? spdlog::level::warn : spdlog::level::info);
  spdlog::set_default_logger(logger);
}

// "GATConv(1433, 8, heads=8, dropout=0.6) -> ELU -> dropout(0.6) -> GATConv(64, 7, dropout=0.6)"
std::string describe_model(const gcn::ModelShape& s, const std::string& dropout) {
  return s.type->describe(s, dropout);
}

// The options that define a training run, as stored in checkpoints.
// The options that make the dataset what it is (the split, the edges, the
// features), stored with the config in checkpoints so that --resume rebuilds
// the same graph.
nlohmann::json data_options_json(const Options& o) {
  return {{"split", o.split},         {"train_per_class", o.train_per_class}, {"num_val", o.num_val},
          {"num_test", o.num_test},   {"split_seed", o.split_seed},           {"to_undirected", o.to_undirected},
          {"no_normalize_features", o.no_normalize}};
}

// --resume: the checkpoint's data options apply; one given again on the
// command line must agree.
void data_options_from_checkpoint(const nlohmann::json& stored, Options& o, const CLI::App& app,
                                  const std::string& path) {
  if (!stored.is_object()) return;  // a checkpoint from before they were stored
  auto take = [&](const char* option, const char* key, auto& field) {
    using T = std::decay_t<decltype(field)>;
    if (!stored.contains(key)) return;
    const T value = stored.at(key).get<T>();
    if (app.count(option) > 0 && field != value) {
      throw gcn::UsageError(fmt::format("--resume: {} {} differs from the checkpoint's {} (leave it out to continue "
                                        "the checkpoint's run)",
                                        option, field, value));
    }
    field = value;
  };
  try {
    take("--split", "split", o.split);
    take("--train-per-class", "train_per_class", o.train_per_class);
    take("--num-val", "num_val", o.num_val);
    take("--num-test", "num_test", o.num_test);
    take("--split-seed", "split_seed", o.split_seed);
    take("--to-undirected", "to_undirected", o.to_undirected);
    take("--no-normalize-features", "no_normalize_features", o.no_normalize);
  } catch (const nlohmann::json::exception& e) {
    throw gcn::DataError(fmt::format("{}: metadata config: {}", path, e.what()));
  }
}

nlohmann::json config_json(const gcn::TrainConfig& c, const std::string& dataset, const nlohmann::json& data) {
  nlohmann::json out = {{"dataset", dataset},
          {"data", data},
          {"epochs", c.epochs},
          {"lr", gcn::json_number(c.lr)},
          {"weight_decay", gcn::json_number(c.weight_decay)},
          {"hidden", c.hidden},
          {"dropout", gcn::json_number(c.dropout)},
          {"seed", c.seed},       {"loss", gcn::loss_name(c.loss)}, {"select", gcn::selection_name(c.select)},
          {"patience", c.patience}};
  out.update(gcn::model_json(c));
  return out;
}

nlohmann::json dataset_json(const gcn::Dataset& d) {
  return {{"name", d.name}, {"num_nodes", d.n_nodes}, {"num_features", d.n_features}, {"num_classes", d.n_classes}};
}

// --resume continues the checkpoint's run: its options apply, and one given
// again on the command line must agree (--epochs may extend the run).
gcn::TrainConfig config_from_checkpoint(const gcn::SafetensorsFile& file, const std::string& path,
                                        const gcn::TrainConfig& cli, const CLI::App& app, const std::string& dataset) {
  const nlohmann::json c = nlohmann::json::parse(gcn::get_metadata(file, "config", path), nullptr, false);
  if (!c.is_object()) throw gcn::DataError(path + ": metadata config is not a JSON object");
  gcn::TrainConfig out = cli;
  try {
    if (c.at("dataset").get<std::string>() != dataset) {
      throw gcn::UsageError(fmt::format("--resume: {} was trained on --dataset {}, not {}", path,
                                        c.at("dataset").get<std::string>(), dataset));
    }
    auto take = [&](const char* option, auto& field, auto stored) {
      if (app.count(option) > 0 && field != stored) {
        throw gcn::UsageError(fmt::format("--resume: {} {} differs from the checkpoint's {} (leave it out to continue "
                                          "the checkpoint's run)",
                                          option, field, stored));
      }
      field = stored;
    };
    take("--lr", out.lr, c.at("lr").get<float>());
    take("--weight-decay", out.weight_decay, c.at("weight_decay").get<float>());
    take("--hidden", out.hidden, c.at("hidden").get<int>());
    take("--dropout", out.dropout, c.at("dropout").get<float>());
    take("--seed", out.seed, c.at("seed").get<uint64_t>());
    // The architecture (checkpoints before --model hold the tutorial GCN).
    std::string model = out.model->name();
    take("--model", model, c.value("model", std::string("gcn")));
    out.model = &gcn::find_model_type(model);
    take("--layers", out.layers, c.value("layers", 2));
    out.hiddens = c.value("hiddens", std::vector<int32_t>{});
    take("--input-dropout", out.input_dropout, c.value("input_dropout", 0.0f));
    for (const gcn::HyperParam& p : out.model->hyper_params()) {
      double stored = p.default_value;
      if (c.contains(p.key())) {
        stored = p.kind == gcn::HyperParam::Kind::kBool ? (c.at(p.key()).get<bool>() ? 1.0 : 0.0)
                 : p.kind == gcn::HyperParam::Kind::kFloat ? static_cast<double>(c.at(p.key()).get<float>())
                                                           : c.at(p.key()).get<double>();
      }
      double& field = out.hyper[p.name];
      if (app.count("--" + p.name) > 0 && field != stored) {
        throw gcn::UsageError(fmt::format("--resume: --{} {} differs from the checkpoint's {} (leave it out to "
                                          "continue the checkpoint's run)",
                                          p.name, field, stored));
      }
      field = stored;
    }
    take("--patience", out.patience, c.at("patience").get<int>());
    std::string loss = gcn::loss_name(out.loss), select = gcn::selection_name(out.select);
    take("--loss", loss, c.at("loss").get<std::string>());
    take("--select", select, c.at("select").get<std::string>());
    out.loss = gcn::parse_loss(loss);
    out.select = gcn::parse_selection(select);
    if (app.count("--epochs") == 0) out.epochs = c.at("epochs").get<int>();
  } catch (const nlohmann::json::exception& e) {
    throw gcn::DataError(fmt::format("{}: metadata config is incomplete ({})", path, e.what()));
  }
  return out;
}

// Where the Planetoid files are: --data-root, else $GCN_DATA_ROOT, else
// ./datasets, else the folders next to this binary that an install or a
// build tree has (<prefix>/share/gcn-train/datasets; the project's datasets/
// above build/src/). With no explicit root, the first that holds the dataset.
std::filesystem::path locate_data_root(const std::optional<std::string>& cli_root, const std::string& dataset) {
  const char* env = std::getenv("GCN_DATA_ROOT");
  if ((cli_root && !cli_root->empty()) || (env != nullptr && *env != '\0')) return gcn::resolve_data_root(cli_root);
  std::vector<std::filesystem::path> candidates{"datasets"};
  std::error_code ec;
  const std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    const std::filesystem::path dir = exe.parent_path();
    candidates.push_back(dir.parent_path() / "share" / "gcn-train" / "datasets");  // <prefix>/bin/gcn-train
    candidates.push_back(dir.parent_path().parent_path() / "datasets");            // <project>/build/src/gcn-train
  }
  for (const std::filesystem::path& root : candidates) {
    try {
      gcn::find_planetoid_dir(dataset, root);
      return root;
    } catch (const gcn::DataError&) {
    }
  }
  try {
    gcn::find_planetoid_dir(dataset, candidates.front());
  } catch (const gcn::DataError& e) {
    std::string also;
    for (std::size_t i = 1; i < candidates.size(); ++i) also += (also.empty() ? "" : ", ") + candidates[i].string();
    throw gcn::DataError(fmt::format("{} (also looked next to gcn-train: {})", e.what(), also));
  }
  return candidates.front();
}

// A result file, or standard output for "-".
void write_output(const std::string& path, const std::string& contents) {
  if (path == "-") {
    if (std::fwrite(contents.data(), 1, contents.size(), stdout) != contents.size() || std::fflush(stdout) != 0) {
      throw gcn::Error("cannot write to standard output");
    }
    return;
  }
  gcn::write_file_atomic(path, contents);
}

// The last hidden layer per node (N, H) as safetensors, for t-SNE and
// downstream models.
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

// The grid: every combination of the list options, hidden-major (models of
// one width share batches), --runs seeds each, seeds counting up per
// configuration.
std::vector<gcn::TrainConfig> grid_configs(const Options& opt, const gcn::TrainConfig& base) {
  if (!opt.configs.empty()) {
    if (opt.lrs.size() > 1 || opt.weight_decays.size() > 1 || opt.dropouts.size() > 1 || opt.hiddens.size() > 1) {
      throw gcn::UsageError("--configs lists the configurations itself: give --lr, --weight-decay, --dropout and "
                            "--hidden one value each (the defaults for keys a configuration leaves out)");
    }
    std::vector<gcn::TrainConfig> out;
    for (const gcn::ConfigPoint& p : gcn::parse_config_list(opt.configs)) {
      gcn::TrainConfig c = base;
      c.lr = p.lr.value_or(c.lr);
      c.weight_decay = p.weight_decay.value_or(c.weight_decay);
      c.dropout = p.dropout.value_or(c.dropout);
      c.hidden = p.hidden.value_or(c.hidden);
      try {
        c.validate();
      } catch (const gcn::UsageError& e) {
        throw gcn::UsageError(fmt::format("--configs: configuration {}: {}", out.size() + 1, e.what()));
      }
      for (std::size_t j = 0; j < out.size(); ++j) {
        if (out[j].lr == c.lr && out[j].weight_decay == c.weight_decay && out[j].dropout == c.dropout &&
            out[j].hidden == c.hidden) {
          throw gcn::UsageError(fmt::format("--configs: configurations {} and {} are the same", j + 1, out.size() + 1));
        }
      }
      out.push_back(c);
    }
    return out;
  }
  auto unique = [](const auto& values, const char* option) {
    for (std::size_t i = 0; i < values.size(); ++i) {
      for (std::size_t j = 0; j < i; ++j) {
        if (values[i] == values[j]) throw gcn::UsageError(fmt::format("{}: {} is listed twice", option, values[i]));
      }
    }
  };
  unique(opt.lrs, "--lr");
  unique(opt.weight_decays, "--weight-decay");
  unique(opt.dropouts, "--dropout");
  unique(opt.hiddens, "--hidden");
  std::vector<gcn::TrainConfig> out;
  for (int hidden : opt.hiddens) {
    for (float lr : opt.lrs) {
      for (float wd : opt.weight_decays) {
        for (float p : opt.dropouts) {
          gcn::TrainConfig c = base;
          c.hidden = hidden;
          c.lr = lr;
          c.weight_decay = wd;
          c.dropout = p;
          c.validate();
          out.push_back(c);
        }
      }
    }
  }
  return out;
}

// --version: the release and how this binary was built.
std::string version_text() {
#if defined(GCN_CUDA_SIM)
  const char* cuda = "CUDA: cudasim (a CPU simulation, for tests)";
#elif defined(GCN_WITH_CUDA)
  const char* cuda = "CUDA: yes (libgcn_cuda.so, loaded on first use)";
#else
  const char* cuda = "CUDA: no (CPU only)";
#endif
#if defined(__clang__)
  const std::string compiler = fmt::format("clang {}.{}.{}", __clang_major__, __clang_minor__, __clang_patchlevel__);
#elif defined(__GNUC__)
  const std::string compiler = fmt::format("gcc {}.{}.{}", __GNUC__, __GNUC_MINOR__, __GNUC_PATCHLEVEL__);
#else
  const std::string compiler = "unknown compiler";
#endif
  return fmt::format("gcn-train {} ({}; commit {}; {}; {})", kVersion, cuda, GCN_BUILD_COMMIT, compiler,
                     GCN_BUILD_TYPE);
}

// Progress: on a terminal one live line, rewritten in place (with the time
// per epoch and an ETA); otherwise, and in the log, plain lines. Shared by
// the worker threads of a batched run.
class Progress {
 public:
  explicit Progress(bool live) : live_(live) {}
  ~Progress() { end(); }
  void show(const std::string& text) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!live_) {
      spdlog::info("{}", text);
      return;
    }
    std::fprintf(stdout, "\r\033[K%s", text.c_str());
    std::fflush(stdout);
    open_ = true;
  }
  // Ends the live line (before other output).
  void end() {
    std::lock_guard<std::mutex> lock(mutex_);
    if (open_) {
      std::fputc('\n', stdout);
      std::fflush(stdout);
      open_ = false;
    }
  }
  bool live() const { return live_; }

 private:
  bool live_;
  bool open_ = false;
  std::mutex mutex_;
};

// " | 0.31 ms/epoch, ETA 12.3 s" from the time so far over `done` of `total`.
std::string rate_and_eta(Clock::time_point start, int64_t done, int64_t total) {
  if (done <= 0) return "";
  const double s = std::chrono::duration<double>(Clock::now() - start).count();
  const double per = s / static_cast<double>(done);
  return fmt::format(" | {:.3f} ms/epoch, ETA {:.1f} s", per * 1e3, per * static_cast<double>(total - done));
}

// "1 epoch", "5 epochs".
std::string count_of(int64_t n, const char* noun) { return fmt::format("{} {}{}", n, noun, n == 1 ? "" : "s"); }

std::string config_label(const gcn::TrainConfig& c) {
  return fmt::format("hidden {} lr {} wd {} dropout {}", c.hidden, c.lr, c.weight_decay, c.dropout);
}

std::string model_file_name(const gcn::TrainConfig& c) {
  return fmt::format("hidden{}_lr{}_wd{}_dropout{}_seed{}.safetensors", c.hidden, c.lr, c.weight_decay, c.dropout,
                     c.seed);
}

// --seed: a decimal integer in [0, 2^63), and so the last of --runs seeds.
uint64_t parse_seed(const std::string& text, int runs) {
  constexpr uint64_t kLimit = uint64_t{1} << 63;
  uint64_t v = 0;
  bool ok = !text.empty() && text.size() <= 19;
  for (char c : text) ok = ok && c >= '0' && c <= '9';
  if (ok) v = std::stoull(text);
  if (!ok || v >= kLimit) {
    throw gcn::UsageError(fmt::format("--seed: '{}' is not an integer in [0, 2^63)", text));
  }
  if (runs > 1 && v + static_cast<uint64_t>(runs - 1) >= kLimit) {
    throw gcn::UsageError(fmt::format("--seed {} with --runs {}: the last seed would pass 2^63 - 1", v, runs));
  }
  return v;
}

// Each model brings the defaults of its PyG example (what is not given):
// gat is examples/gat.py (hidden 8 x 8 heads, dropout 0.6 on the input,
// between the layers and on the attention, lr 0.005); gcn and sage the
// tutorial's recipe (the registry's ModelType::defaults). The options'
// defaults change with them, so that --write-config writes what the run
// used and --config repeats it.
void resolve_model_defaults(Options& opt, CLI::App& app) {
  const gcn::ModelType& type = gcn::find_model_type(opt.model);
  const gcn::Recipe r = type.defaults();
  auto set = [&](const char* flag, auto& field, auto value, const std::string& text) {
    if (app.count(flag) > 0) return;
    field = value;
    app.get_option(flag)->default_str(text);
  };
  set("--hidden", opt.hiddens, std::vector<int>{r.hidden}, fmt::format("[{}]", r.hidden));
  set("--lr", opt.lrs, std::vector<float>{r.lr}, fmt::format("[{}]", r.lr));
  set("--weight-decay", opt.weight_decays, std::vector<float>{r.weight_decay}, fmt::format("[{}]", r.weight_decay));
  set("--dropout", opt.dropouts, std::vector<float>{r.dropout}, fmt::format("[{}]", r.dropout));
  set("--input-dropout", opt.input_dropout, r.input_dropout, fmt::format("{}", r.input_dropout));
  set("--layers", opt.layers, r.layers, fmt::format("{}", r.layers));
  set("--epochs", opt.train.epochs, r.epochs, fmt::format("{}", r.epochs));
  for (const gcn::HyperParam& p : type.hyper_params()) {
    const std::string flag = "--" + p.name;
    if (!opt.hyper_text[p.name].empty()) continue;
    const auto it = r.hyper.find(p.name);
    const double v = it != r.hyper.end() ? it->second : p.default_value;
    const std::string text = p.kind == gcn::HyperParam::Kind::kBool    ? (v != 0.0 ? "true" : "false")
                             : p.kind == gcn::HyperParam::Kind::kFloat ? fmt::format("{}", static_cast<float>(v))
                                                                       : fmt::format("{}", static_cast<int64_t>(v));
    opt.hyper_text[p.name] = text;
    app.get_option(flag)->default_str(text);
  }
}

// A hyperparameter's value from its text (the flag's, or the model's default).
double parse_hyper(const gcn::HyperParam& p, const std::string& text) {
  const std::string flag = "--" + p.name;
  if (p.kind == gcn::HyperParam::Kind::kBool) {
    for (const char* yes : {"true", "on", "yes", "1"}) {
      if (text == yes) return 1.0;
    }
    for (const char* no : {"false", "off", "no", "0"}) {
      if (text == no) return 0.0;
    }
    throw gcn::UsageError(fmt::format("{}: '{}' is not true or false", flag, text));
  }
  std::size_t used = 0;
  double v = 0.0;
  try {
    v = p.kind == gcn::HyperParam::Kind::kFloat ? static_cast<double>(std::stof(text, &used)) : std::stod(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != text.size() || !std::isfinite(v)) {
    throw gcn::UsageError(fmt::format("{}: '{}' is not a number", flag, text));
  }
  if (p.kind == gcn::HyperParam::Kind::kInt && v != std::floor(v)) {
    throw gcn::UsageError(fmt::format("{}: '{}' is not an integer", flag, text));
  }
  return v;
}

void apply_model_options(Options& opt, gcn::TrainConfig& config) {
  config.model = &gcn::find_model_type(opt.model);
  // A hyperparameter of another model is refused (naming the models that have it).
  for (const gcn::HyperFlag& f : gcn::hyper_flags()) {
    if (opt.hyper_text[f.param.name].empty() || config.model->find_hyper(f.param.name)) continue;
    std::string models;
    for (std::size_t i = 0; i < f.models.size(); ++i) {
      models += (i == 0 ? "" : i + 1 == f.models.size() ? " or " : ", ") + std::string(f.models[i]->name());
    }
    throw gcn::UsageError(fmt::format("--{} is for --model {}", f.param.name, models));
  }
  config.hyper.clear();
  for (const gcn::HyperParam& p : config.model->hyper_params()) {
    config.hyper[p.name] = parse_hyper(p, opt.hyper_text[p.name]);
  }
  config.layers = opt.layers;
  config.input_dropout = opt.input_dropout;
  // --hidden 64,32 with --layers 3: one width per hidden layer (not a grid).
  if (opt.layers > 2 && static_cast<int>(opt.hiddens.size()) == opt.layers - 1 && opt.hiddens.size() > 1) {
    config.hiddens.assign(opt.hiddens.begin(), opt.hiddens.end());
    opt.hiddens = {opt.hiddens.front()};
  }
}

int run(Options opt, const CLI::App& app, Clock::time_point process_start) {
  gcn::TrainConfig config = opt.train;
  apply_model_options(opt, config);
  config.seed = parse_seed(opt.seed_text, std::max(opt.runs, 1));
  if (opt.lrs.empty() || opt.weight_decays.empty() || opt.dropouts.empty() || opt.hiddens.empty()) {
    throw gcn::UsageError("--lr, --weight-decay, --dropout and --hidden need at least one value");
  }
  config.lr = opt.lrs.front();
  config.weight_decay = opt.weight_decays.front();
  config.dropout = opt.dropouts.front();
  config.hidden = opt.hiddens.front();
  config.loss = gcn::parse_loss(opt.loss);
  config.select = gcn::parse_selection(opt.select);
  config.cuda_graph = opt.cuda_graph == "on";
  const bool is_grid = opt.lrs.size() > 1 || opt.weight_decays.size() > 1 || opt.dropouts.size() > 1 ||
                       opt.hiddens.size() > 1 || !opt.configs.empty();
  // --epochs 0 --init PATH evaluates a model (from PyG, say) without training.
  const bool eval_only = opt.train.epochs == 0;
  if (eval_only) {
    if (opt.init_path.empty()) throw gcn::UsageError("--epochs 0 evaluates a model without training: give it with --init");
    if (opt.runs > 1 || opt.checkpoint_every > 0 || !opt.save_path.empty() || is_grid || !opt.save_dir.empty()) {
      throw gcn::UsageError("--epochs 0 only evaluates: --runs, lists of values, --checkpoint-every, --save and "
                            "--save-dir do not apply");
    }
    config.epochs = 1;  // for validate(); nothing is trained
  }
  config.validate();
  if (opt.runs < 1 || opt.runs > 100000) throw gcn::UsageError(fmt::format("--runs: {} is not in [1, 100000]", opt.runs));
  if (opt.batch < 0) throw gcn::UsageError(fmt::format("--batch: {} is negative", opt.batch));
  if (!(opt.memory_budget_mb >= 0) || opt.memory_budget_mb > 1e12) {
    throw gcn::UsageError(fmt::format("--memory-budget: {} is not a size in MiB", opt.memory_budget_mb));
  }
  const std::vector<gcn::TrainConfig> grid = grid_configs(opt, config);
  const int64_t n_models = static_cast<int64_t>(grid.size()) * opt.runs;
  if (n_models > 1'000'000) throw gcn::UsageError(fmt::format("{} models: at most 1000000 per process", n_models));
  // One model at a time (today's path) or batches.
  const bool batched = !eval_only && n_models > 1 && opt.batch != 1;
  if (eval_only) config.epochs = 0;
  // --out-dir: one folder for the run's files, each unless given on its own.
  if (!opt.out_dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(opt.out_dir, ec);
    if (ec || !std::filesystem::is_directory(opt.out_dir)) {
      throw gcn::UsageError(fmt::format("--out-dir: cannot create the folder {} ({})", opt.out_dir,
                                        ec ? ec.message() : "a file is in the way"));
    }
    auto in = [&](const char* name) { return (std::filesystem::path(opt.out_dir) / name).string(); };
    if (opt.json_path.empty()) opt.json_path = in("report.json");
    if (opt.write_config.empty()) opt.write_config = in("config.toml");
    if (!eval_only && opt.log_csv.empty()) opt.log_csv = in("curves.csv");
    if (!batched && opt.predictions_path.empty()) opt.predictions_path = in("predictions.csv");
    if (!eval_only && n_models == 1 && opt.save_path.empty()) opt.save_path = in("model.safetensors");
    if (!eval_only && n_models > 1 && opt.save_dir.empty()) opt.save_dir = in("models");
  }
  if (batched && !opt.embeddings_path.empty()) {
    throw gcn::UsageError(fmt::format("--embeddings follows one model, and these {} models train as batches: add "
                                      "--batch 1 (it then covers the first model)",
                                      n_models));
  }
  const gcn::DeviceSpec spec = gcn::parse_device(opt.device);
  if (opt.threads < 0) throw gcn::UsageError(fmt::format("--threads: {} is negative", opt.threads));
  if (opt.checkpoint_every < 0) throw gcn::UsageError(fmt::format("--checkpoint-every: {} is negative", opt.checkpoint_every));
  if (!opt.checkpoint_path.empty() && n_models > 1 && batched) {
    throw gcn::UsageError(fmt::format("--checkpoint follows one model, and these {} models train as batches: add "
                                      "--batch 1 (it then covers the first model)",
                                      n_models));
  }
  if (opt.checkpoint_every > 0 && opt.checkpoint_path.empty()) {
    throw gcn::UsageError("--checkpoint-every needs --checkpoint PATH (where the training state is written)");
  }
  if (!opt.init_path.empty() && !opt.resume_path.empty()) {
    throw gcn::UsageError("--init and --resume both set the starting weights; give one");
  }
  if (!opt.resume_path.empty() && n_models > 1) {
    throw gcn::UsageError("--resume continues one run; drop --runs and the lists of values");
  }
  if (!opt.init_path.empty() && (opt.hiddens.size() > 1 || !opt.configs.empty())) {
    throw gcn::UsageError("--init sets the hidden width from its file; give one --hidden (or none)");
  }
  if (batched && (opt.checkpoint_every > 0 || !opt.predictions_path.empty())) {
    throw gcn::UsageError(fmt::format("--checkpoint-every and --predictions follow one model, and these {} models "
                                      "train as batches: add --batch 1 (they then cover the first model)",
                                      n_models));
  }
  {
    int to_stdout = 0;
    for (const std::string* p : {&opt.json_path, &opt.predictions_path, &opt.table_path, &opt.log_csv,
                                 &opt.write_config}) {
      to_stdout += *p == "-";
    }
    if (to_stdout > 1) {
      throw gcn::UsageError("only one of --json, --predictions, --table, --log-csv and --write-config can write to "
                            "standard output (-)");
    }
  }
  if (!opt.table_path.empty() && opt.table_path != "-") {
    const std::string ext = std::filesystem::path(opt.table_path).extension().string();
    if (ext != ".md" && ext != ".csv") {
      throw gcn::UsageError(fmt::format("--table: {} ends in neither .md (Markdown) nor .csv", opt.table_path));
    }
  }
  for (const auto& [path, option] : {std::pair{opt.json_path, "--json"}, {opt.save_path, "--save"},
                                     {opt.checkpoint_path, "--checkpoint"}, {opt.predictions_path, "--predictions"},
                                     {opt.table_path, "--table"}, {opt.log_csv, "--log-csv"},
                                     {opt.write_config, "--write-config"}, {opt.embeddings_path, "--embeddings"},
                                     {opt.export_graph, "--export-graph"}}) {
    if (!path.empty() && path != "-") gcn::check_writable(path, option);
  }
  if (!opt.save_dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(opt.save_dir, ec);
    if (ec || !std::filesystem::is_directory(opt.save_dir)) {
      throw gcn::UsageError(fmt::format("--save-dir: cannot create the folder {} ({})", opt.save_dir,
                                        ec ? ec.message() : "a file is in the way"));
    }
    gcn::check_writable(std::filesystem::path(opt.save_dir) / "model.safetensors", "--save-dir");
  }

  // --resume: the checkpoint names its dataset (a --dataset given too must agree).
  std::string dataset = opt.dataset;
  std::optional<gcn::SafetensorsFile> resume_file;
  if (!opt.resume_path.empty()) {
    resume_file = gcn::read_safetensors(opt.resume_path);
    const auto format = resume_file->metadata.find("format");
    if (format == resume_file->metadata.end() || format->second != "gcn-train training state") {
      throw gcn::UsageError(fmt::format(
          "--resume: {} is {}, not a training state: use --init {} to start from its weights (--checkpoint PATH "
          "writes a state that --resume continues)",
          opt.resume_path, format != resume_file->metadata.end() && format->second == "pt" ? "a model (as --save writes it)" : "not a gcn-train checkpoint",
          opt.resume_path));
    }
    const auto stored = resume_file->metadata.find("config");
    if (stored != resume_file->metadata.end() && app.count("--dataset") == 0) {
      const nlohmann::json c = nlohmann::json::parse(stored->second, nullptr, false);
      if (c.is_object() && c.contains("dataset") && c["dataset"].is_string()) dataset = c["dataset"].get<std::string>();
    }
    if (stored != resume_file->metadata.end()) {
      const nlohmann::json c = nlohmann::json::parse(stored->second, nullptr, false);
      if (c.is_object() && c.contains("data")) data_options_from_checkpoint(c["data"], opt, app, opt.resume_path);
    }
  }

  if (!opt.write_config.empty()) {
    write_output(opt.write_config, app.config_to_str(/*default_also=*/true, /*write_description=*/true));
    if (opt.write_config != "-") spdlog::info("wrote the options to {} (--config {} repeats this run)", opt.write_config,
                                              opt.write_config);
  }

  const auto t0 = Clock::now();
  std::string source;
  std::string data_root;
  gcn::Dataset data;
  // --export-graph writes the features as loaded: the reader normalises them.
  const bool normalize = !opt.no_normalize && opt.export_graph.empty();
  const bool graph_file = gcn::is_graph_file_name(dataset);
  bool file_has_masks = false;
  if (graph_file) {
    source = gcn::graph_file_path(dataset).string();
    gcn::GraphFile file = gcn::read_graph_file(source);
    data = std::move(file.data);
    file_has_masks = file.has_masks;
    if (normalize) gcn::normalize_features(data.features);
  } else if (gcn::is_synthetic_name(dataset)) {
    const gcn::SyntheticSpec synthetic = gcn::parse_synthetic_spec(dataset);
    data = gcn::make_synthetic(synthetic);
    source = gcn::to_string(synthetic);
  } else {
    const std::filesystem::path root = locate_data_root(opt.data_root, dataset);
    source = gcn::find_planetoid_dir(dataset, root).string();
    data = gcn::load_planetoid(dataset, root, normalize);
    data_root = root.string();
  }
  if (opt.to_undirected) gcn::to_undirected(data);
  gcn::SplitRequest split_request;
  split_request.kind = gcn::parse_split_kind(opt.split);
  split_request.spec = {opt.train_per_class, gcn::SplitSize::parse(opt.num_val, "--num-val"),
                        gcn::SplitSize::parse(opt.num_test, "--num-test"), opt.split_seed};
  // Values, not app.count: a --write-config file repeats every default.
  split_request.sizes_given = opt.train_per_class != 20 || opt.num_val != "500" || opt.num_test != "1000";
  split_request.seed_given = opt.split_seed != 0;
  const std::string split = gcn::apply_split(data, split_request, graph_file, file_has_masks, source);
  const double load_s = std::chrono::duration<double>(Clock::now() - t0).count();
  spdlog::info("gcn-train {} | {} from {} ({:.3f} s)", kVersion, data.name, source, load_s);
  spdlog::info("{}: {} nodes, {} edges, {} features, {} classes, {}/{}/{} train/val/test{}", data.name, data.n_nodes,
               data.n_edges(), data.n_features, data.n_classes, data.count(gcn::kTrainBit),
               data.count(gcn::kValBit), data.count(gcn::kTestBit), split == "planetoid" ? "" : " (" + split + ")");
  if (!opt.export_graph.empty()) {
    gcn::write_graph_file(opt.export_graph, data);
    spdlog::info("wrote {} to {} (features before NormalizeFeatures; --dataset {} trains on it)", data.name,
                 opt.export_graph, opt.export_graph);
    return 0;
  }

  // Starting weights: --resume (a training state) or --init (a model), read before the device starts.
  std::optional<gcn::TrainState> resume_state;
  std::optional<std::vector<float>> init_params;
  std::vector<gcn::TrainConfig> configs = grid;
  if (!opt.resume_path.empty()) {
    const gcn::SafetensorsFile& file = *resume_file;
    config = config_from_checkpoint(file, opt.resume_path, config, app, dataset);
    config.validate();
    const gcn::ModelShape shape = config.shape(data.n_features, data.n_classes);
    resume_state = gcn::train_state_from_safetensors(file, shape, opt.resume_path);
    if (resume_state->epoch >= config.epochs) {
      throw gcn::UsageError(fmt::format("--resume: {} already finished its {}; give --epochs N above {} to train "
                                        "on, or --init {} to start again from its weights",
                                        opt.resume_path, count_of(resume_state->epoch, "epoch"), resume_state->epoch,
                                        opt.resume_path));
    }
    spdlog::info("resuming {} after epoch {} of {}", opt.resume_path, resume_state->epoch, config.epochs);
    configs = {config};
  } else if (!opt.init_path.empty()) {
    const gcn::SafetensorsFile file = gcn::read_safetensors(opt.init_path);
    const gcn::ModelShape in_file = gcn::shape_from_safetensors(file, opt.init_path);
    if (in_file.n_features != data.n_features || in_file.n_classes != data.n_classes) {
      throw gcn::DataError(fmt::format("--init {}: the model has {} features and {} classes; {} has {} and {}",
                                       opt.init_path, in_file.n_features, in_file.n_classes, data.name,
                                       data.n_features, data.n_classes));
    }
    if (in_file.type != config.model) {
      throw gcn::UsageError(fmt::format("--init {} holds a {} model: add --model {}", opt.init_path,
                                        in_file.type->pyg_class(), in_file.type->name()));
    }
    const gcn::ModelShape wanted = config.shape(data.n_features, data.n_classes);
    if (!in_file.same_parameters(wanted)) {
      std::vector<std::string> flags = {"--hidden", "--layers"};
      for (const gcn::HyperParam& p : config.model->hyper_params()) {
        if (p.architecture) flags.push_back("--" + p.name);
      }
      for (const std::string& flag : flags) {
        if (app.count(flag) > 0) {
          throw gcn::UsageError(fmt::format("--init {} holds {} but the options ask for {}; leave out {} to take the "
                                            "file's",
                                            opt.init_path, in_file.describe(), wanted.describe(), flag));
        }
      }
      auto take_file_architecture = [&](gcn::TrainConfig& c) {
        c.hidden = in_file.hidden;
        c.layers = in_file.layers;
        c.hiddens = in_file.hiddens;
        for (const gcn::HyperParam& p : c.model->hyper_params()) {
          if (p.architecture) c.hyper[p.name] = in_file.hp(p.name);
        }
      };
      take_file_architecture(config);
      for (gcn::TrainConfig& c : configs) take_file_architecture(c);
    }
    init_params = gcn::model_from_safetensors(file, config.shape(data.n_features, data.n_classes), opt.init_path);
    spdlog::info("initial weights from {}", opt.init_path);
  }

  auto backend = gcn::make_backend(spec, opt.threads);
  spdlog::info("device: {}", backend->describe());
  if (configs.size() == 1) {
    spdlog::info("model: {}; Adam lr {} weight decay {}; "
                 "{}{}, seed {}, loss {}, select {}{}",
                 describe_model(config.shape(data.n_features, data.n_classes), fmt::format("{}", config.dropout)),
                 config.lr,
                 config.weight_decay, count_of(config.epochs, "epoch"), eval_only ? " (evaluation only)" : "",
                 config.seed, gcn::loss_name(config.loss), gcn::selection_name(config.select),
                 config.patience > 0 ? fmt::format(", early stopping after {} without a better validation "
                                                   "accuracy (ties: lower validation loss)",
                                                   count_of(config.patience, "epoch"))
                                     : "");
  } else {
    spdlog::info("models: {}; {} configurations "
                 "({}) x {} seed{} = {} models; {} epochs, loss {}, select {}{}",
                 describe_model(config.shape(data.n_features, data.n_classes), "p"), configs.size(),
                 opt.configs.empty() ? fmt::format("a grid of hidden {}, lr {}, weight decay {}, dropout {}",
                                                   fmt::join(opt.hiddens, ","), fmt::join(opt.lrs, ","),
                                                   fmt::join(opt.weight_decays, ","), fmt::join(opt.dropouts, ","))
                                     : std::string("--configs"),
                 opt.runs, opt.runs == 1 ? "" : "s",
                 n_models, config.epochs, gcn::loss_name(config.loss), gcn::selection_name(config.select),
                 config.patience > 0 ? fmt::format(", patience {}", config.patience) : "");
  }

  // The graph goes to the device once; every model trains on it.
  const gcn::DeviceGraph graph(*backend, data);
  const std::size_t graph_bytes = backend->peak_memory_bytes();  // what one copy of the graph takes
  gcn::RunReport report;
  auto add_result = [&](const gcn::TrainConfig& cfg, gcn::TrainResult result) {
    result.log_probs.clear();
    report.seeds.push_back(cfg.seed);
    report.model_configs.push_back(cfg);
    report.results.push_back(std::move(result));
  };
  auto save_model = [&](const std::string& path, const gcn::TrainConfig& cfg, const gcn::TrainResult& result) {
    const gcn::EpochStats& sel = result.selected();
    const gcn::ModelShape shape = cfg.shape(data.n_features, data.n_classes);
    gcn::write_safetensors(
        path, gcn::model_to_safetensors(shape, result.params,
                                        {{"format", "pt"},
                                         {"producer", fmt::format("gcn-train {}", kVersion)},
                                         {"config", config_json(cfg, dataset, data_options_json(opt)).dump()},
                                         {"dataset", dataset_json(data).dump()},
                                         {"epoch", std::to_string(sel.epoch)},
                                         {"metrics", nlohmann::json{{"train_acc", sel.train_acc},
                                                                    {"val_acc", sel.val_acc},
                                                                    {"test_acc", sel.test_acc},
                                                                    {"val_loss", sel.val_loss}}
                                                         .dump()}}));
  };
  // What every model's end does: the summary line, --save (the first
  // model), --save-dir (each).
  // The live line: a terminal on standard output, a log that goes there, and no --quiet.
  Progress progress(!opt.quiet && ::isatty(1) == 1 && opt.json_path != "-" && opt.predictions_path != "-" &&
                    opt.table_path != "-" && opt.log_csv != "-" && opt.write_config != "-");
  int finished = 0;
  auto finish_model = [&](const gcn::TrainConfig& cfg, const gcn::TrainResult& result, const std::string& prefix,
                          bool summary_warn) {
    progress.end();
    const gcn::EpochStats& f = result.final_stats();
    int nonfinite = 0;
    for (const gcn::EpochStats& s : result.history) nonfinite += std::isfinite(s.loss) ? 0 : 1;
    if (nonfinite > 0) spdlog::warn("{}the training loss was not finite in {}", prefix, count_of(nonfinite, "epoch"));
    const gcn::EpochStats& sel = result.selected();
    if (result.stopped_early) {
      spdlog::info("{}stopped early after epoch {}: no better validation accuracy (ties: lower validation loss) "
                   "since epoch {}",
                   prefix, f.epoch, result.best_epoch);
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
                    prefix, data.name, backend->describe(), count_of(f.epoch, "epoch"), result.train_s,
                    result.epoch_ms_median, result.graph_replayed ? ", CUDA graph" : "", f.loss,
                    gcn::selection_name(cfg.select), sel.epoch, sel.train_acc, sel.val_acc, sel.test_acc,
                    cfg.patience > 0 ? best : "");
    if (summary_warn) {
      spdlog::warn("{}", line);
    } else {
      spdlog::info("{}", line);
    }
    if (finished == 0 && !opt.save_path.empty()) {
      save_model(opt.save_path, cfg, result);
      spdlog::info("saved the model of epoch {} to {}", sel.epoch, opt.save_path);
    }
    if (!opt.save_dir.empty()) {
      const std::filesystem::path path = std::filesystem::path(opt.save_dir) / model_file_name(cfg);
      save_model(path.string(), cfg, result);
      spdlog::info("{}saved the model of epoch {} to {}", prefix, sel.epoch, path.string());
    }
    ++finished;
  };

  const auto t_train = Clock::now();
  if (eval_only) {
    gcn::Trainer trainer(graph, config.shape(data.n_features, data.n_classes), 0.0f);
    std::vector<float> log_probs;
    gcn::TrainResult evaluated;
    evaluated.history.push_back(trainer.evaluate(*init_params, opt.predictions_path.empty() ? nullptr : &log_probs));
    evaluated.selected_epoch = 1;  // the one entry: epoch 0, before any training
    evaluated.params = *init_params;
    const gcn::EpochStats& e = evaluated.history.back();
    spdlog::warn("{} on {}: {} evaluated without training | loss {:.4f} (no dropout) | train {:.4f} val {:.4f} "
                 "test {:.4f}",
                 data.name, backend->describe(), opt.init_path, e.loss, e.train_acc, e.val_acc, e.test_acc);
    if (!opt.predictions_path.empty()) write_predictions(opt.predictions_path, data, log_probs);
    if (!opt.embeddings_path.empty()) {
      write_embeddings(opt.embeddings_path, data, config, 0, trainer.model().hidden_output(nullptr));
    }
    add_result(config, std::move(evaluated));
  } else if (!batched) {
    // One model at a time: runs of one configuration share a trainer (its
    // workspace and, on CUDA, the recorded epoch).
    std::unique_ptr<gcn::Trainer> trainer;
    int trainer_hidden = -1;
    float trainer_dropout = -1.0f;
    const int width = static_cast<int>(std::to_string(config.epochs).size());
    for (std::size_t ci = 0; ci < configs.size() && !g_interrupt; ++ci) {
      if (!trainer || trainer_hidden != configs[ci].hidden || trainer_dropout != configs[ci].dropout) {
        trainer.reset();
        trainer = std::make_unique<gcn::Trainer>(graph, configs[ci].shape(data.n_features, data.n_classes),
                                                 configs[ci].dropout);
        trainer_hidden = configs[ci].hidden;
        trainer_dropout = configs[ci].dropout;
      }
      for (int r = 0; r < opt.runs && !g_interrupt; ++r) {
        gcn::TrainConfig cfg = configs[ci];
        cfg.seed = configs[ci].seed + static_cast<uint64_t>(r);
        const bool first = finished == 0;
        std::string prefix = opt.runs > 1 ? fmt::format("run {}/{} (seed {}) ", r + 1, opt.runs, cfg.seed) : "";
        if (configs.size() > 1) prefix = fmt::format("[{}] {}", config_label(cfg), prefix);
        gcn::TrainOptions options;
        const auto run_start = Clock::now();
        const int first_epoch = resume_state ? resume_state->epoch : 0;
        options.on_log = [&](const gcn::EpochStats& s) {
          progress.show(fmt::format("{}epoch {:>{}}/{}  loss {:.4f}  train {:.4f}  val {:.4f}  test {:.4f}{}", prefix,
                                    s.epoch, width, cfg.epochs, s.loss, s.train_acc, s.val_acc, s.test_acc,
                                    progress.live() ? rate_and_eta(run_start, s.epoch - first_epoch,
                                                                   cfg.epochs - first_epoch)
                                                    : ""));
        };
        if (init_params) options.init_params = &*init_params;
        if (resume_state) options.resume = &*resume_state;
        options.want_log_probs = first && !opt.predictions_path.empty();
        options.want_embeddings = first && !opt.embeddings_path.empty();
        options.interrupt = &g_interrupt;
        if (!opt.checkpoint_path.empty() && first) {
          // --checkpoint alone: the state at the end (and on an interrupt).
          options.checkpoint_every = opt.checkpoint_every;
          options.checkpoint_at_end = opt.checkpoint_every == 0;
          options.on_checkpoint = [&](const gcn::TrainState& state) {
            const gcn::ModelShape shape = cfg.shape(data.n_features, data.n_classes);
            gcn::write_safetensors(opt.checkpoint_path,
                                   gcn::train_state_to_safetensors(shape, state,
                                                                   {{"format", "gcn-train training state"},
                                                                    {"producer", fmt::format("gcn-train {}", kVersion)},
                                                                    {"config", config_json(cfg, dataset, data_options_json(opt)).dump()},
                                                                    {"dataset", dataset_json(data).dump()}}));
            spdlog::info("{}checkpoint after epoch {} -> {}", prefix, state.epoch, opt.checkpoint_path);
          };
        }
        gcn::TrainResult result = trainer->train(cfg, options);
        finish_model(cfg, result, prefix, /*summary_warn=*/true);
        if (first && !opt.embeddings_path.empty()) {
          write_embeddings(opt.embeddings_path, data, cfg, result.selected().epoch, result.embeddings);
          spdlog::info("wrote the hidden layer of epoch {} to {}", result.selected().epoch, opt.embeddings_path);
        }
        result.embeddings.clear();
        if (first && !opt.predictions_path.empty()) {
          write_predictions(opt.predictions_path, data, result.log_probs);
          spdlog::info("wrote predictions of epoch {} to {}", result.selected().epoch, opt.predictions_path);
        }
        add_result(cfg, std::move(result));
      }
    }
  } else {
    // Batches: the models of one hidden width share batches, as many per
    // batch as --batch (or the memory budget) allows. On the CPU the batches
    // are spread over worker threads, each with its own single-threaded
    // backend and copy of the graph (independent models need no
    // synchronisation; every result is the same bits on any thread).
    std::map<int, std::vector<gcn::TrainConfig>> by_hidden;
    for (const gcn::TrainConfig& c : configs) {
      for (int r = 0; r < opt.runs; ++r) {
        gcn::TrainConfig cfg = c;
        cfg.seed = c.seed + static_cast<uint64_t>(r);
        // Read back (and report progress) about ten times a run unless
        // --log-every says otherwise.
        if (app.count("--log-every") == 0) cfg.log_every = std::max(1, cfg.epochs / 10);
        by_hidden[c.hidden].push_back(cfg);
      }
    }
    const bool on_cpu = backend->kind() == gcn::DeviceKind::kCpu;
    const int cpu_threads = on_cpu ? gcn::cpu_thread_count(opt.threads) : 1;
    const double mib = 1024.0 * 1024.0;
    const std::size_t available = backend->available_memory_bytes();
    const std::size_t budget = opt.memory_budget_mb > 0 ? static_cast<std::size_t>(opt.memory_budget_mb * mib)
                                                        : (available > 0 ? available / 2 : std::size_t{1} << 32);
    struct Job {
      int hidden;
      bool with_dropout;
      int batch;  // the group's batch size (this job may hold fewer)
      std::vector<gcn::TrainConfig> models;
      std::vector<gcn::TrainResult> results;
      std::string tag;
    };
    std::vector<Job> jobs;
    int max_workers = cpu_threads;  // the memory budget may allow fewer
    for (const auto& [hidden, models] : by_hidden) {
      const int n = static_cast<int>(models.size());
      const bool with_dropout =
          std::any_of(models.begin(), models.end(), [](const gcn::TrainConfig& c) { return c.dropout > 0.0f; });
      const gcn::ModelShape shape = models.front().shape(data.n_features, data.n_classes);
      auto bytes = [&](int k) { return gcn::Trainer::planned_bytes(graph, shape, k, with_dropout); };
      // The default: on a GPU every model in one batch (the memory budget
      // permitting); on the CPU, batches that keep a worker's tensors in
      // its cache, one worker per thread.
      int k = opt.batch > 0 ? std::min(opt.batch, n) : n;
      if (opt.batch == 0 && on_cpu) k = std::max(1, std::min(n, gcn::cpu_cache_batch(bytes(1), bytes(2))));
      // CPU workers each hold a copy of the graph and a batch's workspace.
      int workers = on_cpu ? std::max(1, std::min(cpu_threads, (n + k - 1) / k)) : 1;
      if (workers > 1) {
        const std::size_t per_worker = graph_bytes + bytes(k);
        workers = static_cast<int>(std::max<std::size_t>(1, std::min<std::size_t>(workers, budget / per_worker)));
      }
      max_workers = std::min(max_workers, workers);
      const std::size_t whole = bytes(k) * static_cast<std::size_t>(workers);
      if (whole > budget && k > 1) {
        const std::size_t b1 = bytes(1), per = std::max<std::size_t>(bytes(2) - b1, 1);
        const std::size_t base = b1 > per ? b1 - per : 0;
        const std::size_t per_worker = budget / static_cast<std::size_t>(workers);
        const int fit = per_worker > base ? static_cast<int>(std::min<std::size_t>((per_worker - base) / per,
                                                                                   static_cast<std::size_t>(n)))
                                          : 1;
        const int before = k;
        k = std::max(1, std::min(k, fit));
        while (k > 1 && bytes(k) * static_cast<std::size_t>(workers) > budget) k = k * 3 / 4;
        spdlog::info("hidden {}: batches of {} models would need {:.1f} MiB{}, over the budget of {:.1f} MiB "
                     "(--memory-budget): batches of up to {}",
                     hidden, before, static_cast<double>(whole) / mib,
                     workers > 1 ? fmt::format(" ({} workers)", workers) : "", static_cast<double>(budget) / mib, k);
      }
      const int n_batches = (n + k - 1) / k;
      const std::size_t planned = bytes(k);
      // Host: the pinned metrics ring and every model's history and parameters.
      const gcn::ParamLayout layout(shape);
      const double host_mb =
          (static_cast<double>(k) * gcn::GcnModel::kRingSlots * sizeof(gcn::EpochMetrics) +
           static_cast<double>(n) * (config.epochs * sizeof(gcn::EpochStats) + 2.0 * layout.total * sizeof(float))) /
          mib;
      spdlog::info("hidden {}: {} models in {} batch{} of up to {}{}; plan: {:.1f} MiB of {} memory per batch, "
                   "{:.1f} MiB of host memory for the results (budget {:.1f} MiB, {:.1f} MiB free)",
                   hidden, n, n_batches, n_batches == 1 ? "" : "es", k,
                   on_cpu && workers > 1 ? fmt::format(" over {} CPU threads", std::min(workers, n_batches))
                                             : "",
                   static_cast<double>(planned) / mib, on_cpu ? "host" : "device", host_mb,
                   static_cast<double>(budget) / mib, static_cast<double>(available) / mib);
      report.batches.push_back({hidden, n, k, n_batches, planned});
      for (int b = 0; b < n_batches; ++b) {
        Job job;
        job.hidden = hidden;
        job.with_dropout = with_dropout;
        job.batch = k;
        job.models.assign(models.begin() + static_cast<std::ptrdiff_t>(b) * k,
                          models.begin() + std::min<std::ptrdiff_t>(static_cast<std::ptrdiff_t>(b + 1) * k, n));
        job.tag = n_batches > 1 ? fmt::format("hidden {} batch {}/{}", hidden, b + 1, n_batches)
                                : fmt::format("hidden {}", hidden);
        jobs.push_back(std::move(job));
      }
    }
    // Runs jobs (taken in order from a shared counter) on one backend and
    // graph, with one trainer per hidden width.
    std::atomic<std::size_t> next_job{0};
    const int n_workers = on_cpu ? std::min<int>(max_workers, static_cast<int>(jobs.size())) : 1;
    auto work = [&](const gcn::DeviceGraph& g) {
      // One trainer per width (and, for batches of one model, per dropout
      // rate, which such a model is planned with).
      std::map<std::pair<int, float>, std::unique_ptr<gcn::Trainer>> trainers;
      for (std::size_t j = next_job++; j < jobs.size() && !g_interrupt; j = next_job++) {
        Job& job = jobs[j];
        auto& trainer = trainers[{job.hidden, job.batch == 1 ? job.models.front().dropout : -1.0f}];
        if (!trainer) {
          trainer = std::make_unique<gcn::Trainer>(g, job.models.front().shape(data.n_features, data.n_classes),
                                                   job.batch, job.with_dropout);
        }
        gcn::TrainOptions options;
        const auto job_start = Clock::now();
        options.on_progress = [&, job_start](int epoch, int running) {
          // ETA over the jobs: this one's epochs, then the jobs not started.
          const double s = std::chrono::duration<double>(Clock::now() - job_start).count();
          const std::size_t waiting = jobs.size() - std::min(jobs.size(), next_job.load());
          const double eta = s / epoch * (config.epochs - epoch) +
                             s / epoch * config.epochs * static_cast<double>(waiting) / std::max(1, n_workers);
          progress.show(fmt::format("{}: epoch {}/{}, {} of {} models training | {} of {} batches started{}",
                                    job.tag, epoch, config.epochs, running, job.models.size(),
                                    std::min(jobs.size(), next_job.load()), jobs.size(),
                                    progress.live() ? fmt::format(", ETA {:.1f} s", eta) : ""));
        };
        if (init_params) options.init_params = &*init_params;
        options.interrupt = &g_interrupt;
        job.results = trainer->train_batch(job.models, options);
      }
    };
    if (n_workers <= 1) {
      work(graph);
    } else {
      std::vector<std::exception_ptr> errors(static_cast<std::size_t>(n_workers));
      std::vector<std::thread> threads;
      for (int w = 0; w < n_workers; ++w) {
        threads.emplace_back([&, w] {
          try {
            const std::unique_ptr<gcn::Backend> own = gcn::make_cpu_backend(1);
            const gcn::DeviceGraph own_graph(*own, data);
            work(own_graph);
          } catch (...) {
            errors[static_cast<std::size_t>(w)] = std::current_exception();
            next_job = jobs.size();  // the others stop after their current batch
          }
        });
      }
      for (std::thread& t : threads) t.join();
      for (const std::exception_ptr& e : errors) {
        if (e) std::rethrow_exception(e);
      }
    }
    for (Job& job : jobs) {
      for (std::size_t i = 0; i < job.results.size(); ++i) {  // none for a job an interrupt kept from starting
        finish_model(job.models[i], job.results[i],
                     fmt::format("[{} seed {}] ", config_label(job.models[i]), job.models[i].seed),
                     /*summary_warn=*/false);
        add_result(job.models[i], std::move(job.results[i]));
      }
    }
  }
  progress.end();
  report.train_total_s = std::chrono::duration<double>(Clock::now() - t_train).count();
  report.interrupted = g_interrupt.load();
  if (report.interrupted) {
    spdlog::warn("interrupted: {} of {} models have results{}", report.results.size(), n_models,
                 opt.json_path.empty() ? "" : "; the JSON marks the run interrupted");
  }
  if (batched) {
    const double done = static_cast<double>(report.results.size());
    spdlog::warn("{} model{} trained in {:.3f} s ({:.1f} models/s) on {}", report.results.size(),
                 report.results.size() == 1 ? "" : "s", report.train_total_s, done / report.train_total_s,
                 backend->describe());
  }

  std::vector<double> accs;
  for (const gcn::TrainResult& res : report.results) accs.push_back(res.selected().test_acc);
  if (configs.size() == 1 && report.results.size() > 1) {
    const gcn::SeedSummary s = gcn::summarize(accs);
    spdlog::warn("{} runs (seeds {}..{}), {} epoch: test accuracy {:.4f} ± {:.4f} (95% CI {:.4f} .. {:.4f})",
                 report.results.size(), report.seeds.front(), report.seeds.back(),
                 gcn::selection_name(config.select), s.mean, s.std, s.ci95_low, s.ci95_high);
  }
  const std::vector<gcn::ConfigSummary> table = gcn::summarize_configurations(report);
  if (configs.size() > 1) {
    spdlog::warn("{} configurations x {} seed{}, {} epoch, sorted by mean validation accuracy:\n{}", configs.size(),
                 opt.runs, opt.runs == 1 ? "" : "s", gcn::selection_name(config.select),
                 gcn::format_table(table, gcn::TableFormat::kMarkdown));
  }
  if (!opt.table_path.empty()) {
    const bool csv = std::filesystem::path(opt.table_path).extension() == ".csv";  // "-": Markdown
    write_output(opt.table_path,
                           gcn::format_table(table, csv ? gcn::TableFormat::kCsv : gcn::TableFormat::kMarkdown));
    spdlog::info("wrote {}", opt.table_path);
  }

  if (!opt.log_csv.empty()) {
    std::string csv = "model,hidden,lr,weight_decay,dropout,seed,epoch,loss,val_loss,train_acc,val_acc,test_acc\n";
    for (std::size_t m = 0; m < report.results.size(); ++m) {
      const gcn::TrainConfig& c = report.model_configs[m];
      for (const gcn::EpochStats& e : report.results[m].history) {
        csv += fmt::format("{},{},{},{},{},{},{},{:.9g},{:.9g},{:.9g},{:.9g},{:.9g}\n", m, c.hidden, c.lr,
                           c.weight_decay, c.dropout, c.seed, e.epoch, e.loss, e.val_loss, e.train_acc, e.val_acc,
                           e.test_acc);
      }
    }
    write_output(opt.log_csv, csv);
    if (opt.log_csv != "-") spdlog::info("wrote {}", opt.log_csv);
  }

  if (!opt.json_path.empty()) {
    report.dataset = &data;
    report.config = configs.front();
    report.grid_lr = opt.lrs;
    report.grid_weight_decay = opt.weight_decays;
    report.grid_dropout = opt.dropouts;
    report.grid_hidden = configs.size() == 1 ? std::vector<int>{configs.front().hidden} : opt.hiddens;
    report.configs_arg = opt.configs;
    report.batch_arg = opt.batch;
    report.dataset_arg = dataset;
    report.data_root = data_root;
    report.device_arg = opt.device;
    report.device = backend->describe();
    report.threads = opt.threads;
    report.normalize_features = !opt.no_normalize;
    report.init_path = opt.init_path;
    report.resume_path = opt.resume_path;
    report.checkpoint_path = opt.checkpoint_path;
    report.checkpoint_every = opt.checkpoint_every;
    report.save_path = opt.save_path;
    report.save_dir = opt.save_dir;
    report.predictions_path = opt.predictions_path;
    report.load_s = load_s;
    report.total_s = std::chrono::duration<double>(Clock::now() - process_start).count();
    report.peak_host_mb = gcn::peak_host_memory_mb();
    report.peak_device_mb = static_cast<double>(backend->peak_memory_bytes()) / (1024.0 * 1024.0);
    write_output(opt.json_path, gcn::to_json(report).dump(2) + "\n");
    spdlog::info("wrote {}", opt.json_path);
  }
  return report.interrupted ? 130 : 0;
}

// A choice option's check: the value must be one of `choices`; the message
// suggests the closest. The description ({a,b}) shows in --help.
CLI::Validator one_of(std::vector<std::string> choices) {
  std::string desc = "{";
  for (const std::string& c : choices) desc += (desc.size() > 1 ? "," : "") + c;
  desc += "}";
  return CLI::Validator(
      [choices](std::string& value) -> std::string {
        if (std::find(choices.begin(), choices.end(), value) != choices.end()) return "";
        return fmt::format("'{}' is not one of {}{}", value, fmt::join(choices, ", "),
                           gcn::did_you_mean(value, choices));
      },
      desc);
}

// The first command-line word that looks like an option gcn-train does not
// have, with the closest one it has: "unknown option --epoch (did you mean
// --epochs?)"; "" when every option is known.
std::string unknown_option(const CLI::App& app, int argc, char** argv) {
  std::vector<std::string> names;
  for (const CLI::Option* o : app.get_options()) {
    for (const std::string& n : o->get_lnames()) names.push_back("--" + n);
    for (const std::string& n : o->get_snames()) names.push_back("-" + n);
  }
  for (int i = 1; i < argc; ++i) {
    const std::string word = argv[i];
    if (word == "--") break;
    if (word.size() < 3 || word.compare(0, 2, "--") != 0) continue;
    const std::string name = word.substr(0, word.find('='));
    if (std::find(names.begin(), names.end(), name) == names.end()) {
      return fmt::format("unknown option {}{}", name, gcn::did_you_mean(name, names));
    }
  }
  return "";
}

}  // namespace

int main(int argc, char** argv) {
  const auto process_start = Clock::now();
  Options opt;
  CLI::App app{"gcn-train: trains PyTorch Geometric's GNNs (the tutorial's GCN, GraphSAGE, GAT; any depth) "
               "on a Planetoid dataset, with PyG's semantics, on the CPU or a CUDA GPU."};
  app.set_version_flag("--version", version_text());
  app.set_config("--config", "", "Read options from this TOML (or INI) file, as --write-config writes it; flags on "
                 "the command line override it");
  app.option_defaults()->always_capture_default();
  app.add_option("--dataset", opt.dataset,
                 "cora, citeseer or pubmed (Planetoid split), or synthetic[:key=value,...] with keys nodes, degree, "
                 "features, nnz, classes, homophily, signal, seed, train_per_class, val, test, or a graph file "
                 "PATH.safetensors (or file:PATH; docs/graph-format.md)");
  app.add_option("--split", opt.split,
                 "planetoid (the dataset's own; on a graph file: in node order, the first --train-per-class labelled "
                 "nodes of each class, then --num-val, then --num-test), random (PyG's RandomNodeSplit), file (a "
                 "graph file's masks), or auto: file for a graph file with masks, else planetoid")
      ->check(one_of({"auto", "planetoid", "random", "file"}));
  app.add_option("--train-per-class", opt.train_per_class, "Training nodes per class of --split random/planetoid")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 31));
  app.add_option("--num-val", opt.num_val,
                 "Validation nodes of --split random/planetoid: a count, or a fraction of the nodes (0.1)");
  app.add_option("--num-test", opt.num_test,
                 "Test nodes of --split random/planetoid: a count, or a fraction of the nodes (0.2)");
  app.add_option("--split-seed", opt.split_seed, "Seed of --split random (the same split for every --seed)");
  app.add_flag("--to-undirected", opt.to_undirected,
               "Add every edge's reverse and merge duplicates, as PyG's T.ToUndirected()");
  app.add_option("--export-graph", opt.export_graph,
                 "Write the loaded dataset (edges, features before NormalizeFeatures, labels, split) as a graph file "
                 "(docs/graph-format.md) and exit without training")
      ->configurable(false);
  app.add_option("--data-root", opt.data_root,
                 "Folder with the raw Planetoid files (flat ind.<name>.* or PyG's <Name>/raw/); "
                 "default: $GCN_DATA_ROOT, else ./datasets, else the datasets/ of the build or install this "
                 "binary belongs to");
  app.add_option("--device", opt.device, "cpu, cuda, cuda:N, or auto (CUDA when usable, else CPU)");
  app.add_option("--epochs", opt.train.epochs, "Training epochs (0 with --init: evaluate that model only)");
  app.add_option("--lr", opt.lrs, "Adam learning rate; a list (0.005,0.01) trains each")->delimiter(',');
  app.add_option("--weight-decay", opt.weight_decays,
                 "L2 weight decay on all parameters (as torch.optim.Adam); a list trains each")
      ->delimiter(',');
  {
    std::string help = "The model (its PyG example's defaults apply to what is not given):";
    std::vector<std::string> names;
    for (const gcn::ModelType* t : gcn::model_types()) {
      help += fmt::format(" {}: {};", t->name(), t->summary());
      names.emplace_back(t->name());
    }
    help.back() = '.';
    app.add_option("--model", opt.model, help + " gcn-train --models lists them as JSON")->check(one_of(names));
  }
  app.add_option("--layers", opt.layers, "The model's layers (graph convolutions; 2: the tutorial's); hidden layers = layers - 1");
  app.add_option("--hidden", opt.hiddens,
                 "Hidden channels (per head for gat); a list trains each (one batch per width), except with "
                 "--layers L > 2 and L - 1 values: one width per hidden layer (--layers 3 --hidden 64,32)")
      ->delimiter(',');
  app.add_option("--dropout", opt.dropouts,
                 "Dropout probability after each hidden layer's activation, in [0, 1); a list trains each")
      ->delimiter(',');
  app.add_option("--input-dropout", opt.input_dropout,
                 "Dropout on the input features, in [0, 1) (default 0; 0.6 for gat)");
  // Each model's own hyperparameters (the registry's), one flag each.
  for (const gcn::HyperFlag& f : gcn::hyper_flags()) {
    std::string models;
    for (std::size_t i = 0; i < f.models.size(); ++i) models += (i == 0 ? "" : ", ") + std::string(f.models[i]->name());
    app.add_option("--" + f.param.name, opt.hyper_text[f.param.name],
                   fmt::format("{} (--model {})", f.param.help, models))
        ->type_name(f.param.kind == gcn::HyperParam::Kind::kInt     ? "INT"
                    : f.param.kind == gcn::HyperParam::Kind::kFloat ? "FLOAT"
                                                                    : "BOOL");
  }
  app.add_option("--seed", opt.seed_text, "Seed for the initial weights and the dropout masks, in [0, 2^63)");
  app.add_option("--loss", opt.loss, "nll (log_softmax + nll_loss) or cross-entropy (on the logits); same fused op")
      ->check(one_of({"nll", "cross-entropy"}));
  app.add_option("--runs", opt.runs,
                 "Train each configuration N times with seeds seed, seed+1, ...; report mean, std and a 95% CI");
  app.add_option("--configs", opt.configs,
                 "An explicit list of configurations instead of a grid: 'lr=0.01,hidden=32;lr=0.02,dropout=0.3' "
                 "(keys lr, weight_decay, dropout, hidden; others from the command line)");
  app.add_option("--batch", opt.batch,
                 "Models trained at once as one batch sharing the graph's work (0: as many as --memory-budget "
                 "allows; on the CPU, batches that fit a core's cache, over the threads; 1: one after another). "
                 "With several models --checkpoint-every and --predictions follow the first and need --batch 1");
  app.add_option("--memory-budget", opt.memory_budget_mb,
                 "MiB of backend memory a batch may plan for (0: half of what the device has free)");
  app.add_option("--log-csv", opt.log_csv,
                 "Write one row per epoch (per model when several) as CSV, for plots (scripts/plot_run.py)");
  app.add_option("--embeddings", opt.embeddings_path,
                 "Write the last hidden layer's output per node (N, hidden) as safetensors (the first model)");
  app.add_option("--out-dir", opt.out_dir,
                 "Put the run's files in this folder: report.json, config.toml, curves.csv, model.safetensors "
                 "(or models/), predictions.csv (each unless given on its own)")
      ->configurable(false);
  app.add_option("--write-config", opt.write_config,
                 "Write every option's value as TOML to this file (-: standard output); --config FILE reads it back")
      ->configurable(false);
  app.add_option("--table", opt.table_path,
                 "Write the per-configuration results table here: Markdown (.md, or - for standard output) or CSV "
                 "(.csv)");
  app.add_option("--save-dir", opt.save_dir,
                 "Save every model (selected epoch) as safetensors into this folder, one file per model");
  app.add_option("--select", opt.select,
                 "Report (and save) the last epoch, or best-val: the epoch of best validation accuracy "
                 "(ties: lower validation loss)")
      ->check(one_of({"last", "best-val"}));
  app.add_option("--patience", opt.train.patience,
                 "Stop when validation has not improved for K epochs (0: never)");
  app.add_option("--log-every", opt.train.log_every,
                 "Log (and read back from the device) every K epochs (batches: progress about every tenth of "
                 "the epochs unless given)");
  app.add_option("--json", opt.json_path, "Write the run's results as JSON to this file (-: standard output)");
  app.add_option("--save", opt.save_path,
                 "Save the (selected) model as safetensors with PyG's state_dict names (the first model; "
                 "--save-dir saves every model)");
  app.add_option("--init", opt.init_path, "Start from the weights in this safetensors file (e.g. from PyG)");
  app.add_option("--checkpoint", opt.checkpoint_path,
                 "Training-state file (weights, Adam, history) for --resume: written every --checkpoint-every "
                 "epochs, or at the end (and on Ctrl-C) without it");
  app.add_option("--checkpoint-every", opt.checkpoint_every,
                 "Write the training state (weights, Adam, history) to --checkpoint every K epochs");
  app.add_option("--resume", opt.resume_path, "Continue the run saved in this --checkpoint file");
  app.add_option("--predictions", opt.predictions_path,
                 "Write node, split, label, predicted class and class probabilities as CSV (the first model; "
                 "-: standard output)");
  app.add_option("--threads", opt.threads, "CPU threads (0: OpenMP's default)");
  app.add_option("--cuda-graph", opt.cuda_graph,
                 "on: after one warm-up epoch, record the epoch as a CUDA graph and replay it; off: queue every op "
                 "each epoch (same results; CUDA only)")
      ->check(one_of({"on", "off"}));
  app.add_flag("--no-normalize-features", opt.no_normalize, "Skip NormalizeFeatures (rows summing to 1)");
  app.add_flag("--allow-nonfinite", opt.train.allow_nonfinite,
               "Keep training when the loss becomes NaN or infinite (default: stop with an error)");
  app.add_flag("-q,--quiet", opt.quiet, "Only warnings, errors and the summary lines");
  bool list_models = false;
  app.add_flag("--models", list_models,
               "Print every model gcn-train trains (names, PyG classes, hyperparameters, defaults, benchmark/citation "
               "recipes) as JSON and exit")
      ->configurable(false);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    const std::string unknown = unknown_option(app, argc, argv);
    std::fprintf(stderr, "gcn-train: error: %s (see gcn-train --help)\n", unknown.empty() ? e.what() : unknown.c_str());
    return 2;
  }

  if (list_models) {
    std::fputs(gcn::registry_json().c_str(), stdout);
    return 0;
  }
  setup_logging(opt.quiet, opt.json_path == "-" || opt.predictions_path == "-" || opt.table_path == "-");
  install_interrupt_handlers();
  try {
    resolve_model_defaults(opt, app);
    return run(opt, app, process_start);
  } catch (const gcn::UsageError& e) {
    std::fprintf(stderr, "gcn-train: error: %s\n", e.what());
    return 2;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "gcn-train: error: out of host memory\n");
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "gcn-train: error: %s\n", e.what());
    return 1;
  }
}
