// gcn-train's options (options.hpp): CLI11 registration in groups, in the
// order --help lists them; the models' defaults and hyperparameters; the
// flags' checks among themselves; an unknown option's closest match.
#include "options.hpp"

#include <algorithm>
#include <cmath>
#include <exception>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "gcn/error.hpp"
#include "gcn/file_io.hpp"
#include "gcn/suggest.hpp"

namespace gcn::cli {

namespace {

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

// The dataset, its graph and its split.
void add_data_options(CLI::App& app, Options& opt) {
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
  app.add_flag("--random-splits", opt.random_splits,
               "Each run its own random split: run r is --split random with --split-seed + r (PyG "
               "benchmark/citation's --random_splits; models train one at a time)");
  app.add_flag("--no-edge-weights", opt.no_edge_weights,
               "Train on the graph without its edge weights (a graph file's edge_weight; gcn, cheb, sgc, appnp "
               "and arma use them, as PyG's layers)");
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
}

// The device and the optimiser's recipe.
void add_recipe_options(CLI::App& app, Options& opt) {
  app.add_option("--device", opt.device, "cpu, cuda, cuda:N, or auto (CUDA when usable, else CPU)");
  app.add_option("--epochs", opt.train.epochs, "Training epochs (0 with --init: evaluate that model only)");
  app.add_option("--lr", opt.lrs, "Adam learning rate; a list (0.005,0.01) trains each")->delimiter(',');
  app.add_option("--weight-decay", opt.weight_decays,
                 "L2 weight decay on all parameters (as torch.optim.Adam); a list trains each")
      ->delimiter(',');
}

// The model: its type (the registry's), depth, widths, dropout, and each
// type's own hyperparameters.
void add_model_options(CLI::App& app, Options& opt) {
  std::string help = "The model (its PyG example's defaults apply to what is not given):";
  std::vector<std::string> names;
  for (const gcn::ModelType* t : gcn::model_types()) {
    help += fmt::format(" {}: {};", t->name(), t->summary());
    names.emplace_back(t->name());
  }
  help.back() = '.';
  app.add_option("--model", opt.model, help + " gcn-train --models lists them as JSON")->check(one_of(names));
  app.add_option("--layers", opt.layers, "The model's layers (graph convolutions; appnp: Linears; 2: the tutorial's); hidden layers = layers - 1");
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
}

// Seeds, the loss, and how many models: --runs, the grid's --configs, batches.
void add_run_options(CLI::App& app, Options& opt) {
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
}

// The run's result files.
void add_output_options(CLI::App& app, Options& opt) {
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
}

// Which epoch a run reports, early stopping, how often it reads back.
void add_selection_options(CLI::App& app, Options& opt) {
  app.add_option("--select", opt.select,
                 "Report (and save) the last epoch; best-val: the epoch of best validation accuracy (ties: lower "
                 "validation loss); best-val-loss: the epoch of lowest validation loss (PyG's benchmark/citation)")
      ->check(one_of({"last", "best-val", "best-val-loss"}));
  app.add_option("--patience", opt.train.patience,
                 "Stop when validation has not improved (by --select's rule) for K epochs (0: never)");
  app.add_option("--early-stopping", opt.train.early_stopping,
                 "PyG benchmark/citation's early stopping: after half the epochs, stop when the validation loss "
                 "exceeds the mean of the K epochs before (0: never)");
  app.add_option("--recipe", opt.recipe,
                 "The defaults of what is not given: default (the model's PyG example) or citation (PyG's "
                 "benchmark/citation script with run.sh's arguments for --dataset: its epochs, widths, rates, "
                 "--select best-val-loss and --early-stopping)")
      ->check(one_of({"default", "citation"}));
  app.add_option("--log-every", opt.train.log_every,
                 "Log (and read back from the device) every K epochs (batches: progress about every tenth of "
                 "the epochs unless given)");
}

// The report, the models' files, the starting weights, checkpoints, predictions.
void add_file_options(CLI::App& app, Options& opt) {
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
}

// How it runs: threads, CUDA graphs, features, non-finite losses, the log; --models.
void add_runtime_options(CLI::App& app, Options& opt) {
  app.add_option("--threads", opt.threads, "CPU threads (0: OpenMP's default)");
  app.add_option("--cuda-graph", opt.cuda_graph,
                 "on: after one warm-up epoch, record the epoch as a CUDA graph and replay it; off: queue every op "
                 "each epoch (same results; CUDA only)")
      ->check(one_of({"on", "off"}));
  app.add_flag("--no-normalize-features", opt.no_normalize, "Skip NormalizeFeatures (rows summing to 1)");
  app.add_flag("--allow-nonfinite", opt.train.allow_nonfinite,
               "Keep training when the loss becomes NaN or infinite (default: stop with an error)");
  app.add_flag("-q,--quiet", opt.quiet, "Only warnings, errors and the summary lines");
  app.add_flag("--models", opt.list_models,
               "Print every model gcn-train trains (names, PyG classes, hyperparameters, defaults, benchmark/citation "
               "recipes) as JSON and exit")
      ->configurable(false);
}

}  // namespace

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

void add_options(CLI::App& app, Options& opt) {
  app.set_version_flag("--version", version_text());
  app.set_config("--config", "", "Read options from this TOML (or INI) file, as --write-config writes it; flags on "
                 "the command line override it");
  app.option_defaults()->always_capture_default();
  add_data_options(app, opt);
  add_recipe_options(app, opt);
  add_model_options(app, opt);
  add_run_options(app, opt);
  add_output_options(app, opt);
  add_selection_options(app, opt);
  add_file_options(app, opt);
  add_runtime_options(app, opt);
}

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

// Each model brings the defaults of its PyG example (what is not given):
// gat is examples/gat.py (hidden 8 x 8 heads, dropout 0.6 on the input,
// between the layers and on the attention, lr 0.005); gcn and sage the
// tutorial's recipe (the registry's ModelType::defaults). The options'
// defaults change with them, so that --write-config writes what the run
// used and --config repeats it.
void resolve_model_defaults(Options& opt, CLI::App& app) {
  const gcn::ModelType& type = gcn::find_model_type(opt.model);
  gcn::Recipe r = type.defaults();
  if (opt.recipe == "citation") {
    const std::optional<gcn::Recipe> c = type.citation(opt.dataset);
    if (!c) {
      throw gcn::UsageError(fmt::format("--recipe citation: PyG's benchmark/citation has no script for --model {}; "
                                        "leave out --recipe",
                                        type.name()));
    }
    if (!c->unsupported.empty()) throw gcn::UsageError(fmt::format("--recipe citation: {}", c->unsupported));
    r = *c;
  }
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
  if (opt.recipe == "citation") {
    set("--select", opt.select, std::string("best-val-loss"), "best-val-loss");
    set("--early-stopping", opt.train.early_stopping, r.early_stopping, fmt::format("{}", r.early_stopping));
  }
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

// ---- the flags' checks among themselves --------------------------------------

void check_evaluation_only(const Options& opt, const RunKind& kind) {
  // --epochs 0 --init PATH evaluates a model (from PyG, say) without training.
  if (!kind.eval_only) return;
  if (opt.init_path.empty()) throw gcn::UsageError("--epochs 0 evaluates a model without training: give it with --init");
  if (opt.runs > 1 || opt.checkpoint_every > 0 || !opt.save_path.empty() || kind.is_grid || !opt.save_dir.empty()) {
    throw gcn::UsageError("--epochs 0 only evaluates: --runs, lists of values, --checkpoint-every, --save and "
                          "--save-dir do not apply");
  }
}

void check_counts(const Options& opt) {
  if (opt.runs < 1 || opt.runs > 100000) throw gcn::UsageError(fmt::format("--runs: {} is not in [1, 100000]", opt.runs));
  if (opt.batch < 0) throw gcn::UsageError(fmt::format("--batch: {} is negative", opt.batch));
  if (!(opt.memory_budget_mb >= 0) || opt.memory_budget_mb > 1e12) {
    throw gcn::UsageError(fmt::format("--memory-budget: {} is not a size in MiB", opt.memory_budget_mb));
  }
}

void check_model_count(int64_t n_models) {
  if (n_models > 1'000'000) throw gcn::UsageError(fmt::format("{} models: at most 1000000 per process", n_models));
}

void place_in_out_dir(Options& opt, const RunKind& kind) {
  if (opt.out_dir.empty()) return;
  std::error_code ec;
  std::filesystem::create_directories(opt.out_dir, ec);
  if (ec || !std::filesystem::is_directory(opt.out_dir)) {
    throw gcn::UsageError(fmt::format("--out-dir: cannot create the folder {} ({})", opt.out_dir,
                                      ec ? ec.message() : "a file is in the way"));
  }
  auto in = [&](const char* name) { return (std::filesystem::path(opt.out_dir) / name).string(); };
  if (opt.json_path.empty()) opt.json_path = in("report.json");
  if (opt.write_config.empty()) opt.write_config = in("config.toml");
  if (!kind.eval_only && opt.log_csv.empty()) opt.log_csv = in("curves.csv");
  if (!kind.batched && opt.predictions_path.empty()) opt.predictions_path = in("predictions.csv");
  if (!kind.eval_only && kind.n_models == 1 && opt.save_path.empty()) opt.save_path = in("model.safetensors");
  if (!kind.eval_only && kind.n_models > 1 && opt.save_dir.empty()) opt.save_dir = in("models");
}

namespace {

// What follows one model (checkpoints, --resume, --init's width, predictions)
// against several models and batches; the counts' signs.
void check_one_model_flags(const Options& opt, const RunKind& kind) {
  const int64_t n_models = kind.n_models;
  const bool batched = kind.batched;
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
}

// At most one file to standard output; the table's format; every file's
// folder writable; --save-dir created.
void check_output_flags(const Options& opt) {
  int to_stdout = 0;
  for (const std::string* p : {&opt.json_path, &opt.predictions_path, &opt.table_path, &opt.log_csv,
                               &opt.write_config}) {
    to_stdout += *p == "-";
  }
  if (to_stdout > 1) {
    throw gcn::UsageError("only one of --json, --predictions, --table, --log-csv and --write-config can write to "
                          "standard output (-)");
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
}

}  // namespace

DeviceSpec check_flags(const Options& opt, const RunKind& kind) {
  if (kind.batched && !opt.embeddings_path.empty()) {
    throw gcn::UsageError(fmt::format("--embeddings follows one model, and these {} models train as batches: add "
                                      "--batch 1 (it then covers the first model)",
                                      kind.n_models));
  }
  const gcn::DeviceSpec spec = gcn::parse_device(opt.device);
  check_one_model_flags(opt, kind);
  check_output_flags(opt);
  return spec;
}

}  // namespace gcn::cli
