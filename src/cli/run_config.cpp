// One description of a run and its model for every file (run_config.hpp):
// the configurations from the options, the config JSON of checkpoints and
// saved models, --resume and --init.
#include "run_config.hpp"

#include <algorithm>
#include <string>
#include <type_traits>
#include <utility>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "gcn/data/safetensors.hpp"
#include "gcn/error.hpp"
#include "gcn/train/grid.hpp"
#include "gcn/train/report.hpp"
#include "outputs.hpp"

namespace gcn::cli {

// The options that make the dataset what it is (the split, the edges, the
// features), stored with the config in checkpoints so that --resume rebuilds
// the same graph.
nlohmann::json data_options_json(const Options& o) {
  return {{"split", o.split},         {"train_per_class", o.train_per_class}, {"num_val", o.num_val},
          {"num_test", o.num_test},   {"split_seed", o.split_seed},           {"to_undirected", o.to_undirected},
          {"no_normalize_features", o.no_normalize}, {"random_splits", o.random_splits},
          {"no_edge_weights", o.no_edge_weights}};
}

namespace {

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
    take("--no-edge-weights", "no_edge_weights", o.no_edge_weights);
    take("--no-normalize-features", "no_normalize_features", o.no_normalize);
  } catch (const nlohmann::json::exception& e) {
    throw gcn::DataError(fmt::format("{}: metadata config: {}", path, e.what()));
  }
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
    take("--early-stopping", out.early_stopping, c.value("early_stopping", 0));
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

// The first configuration from the options (the lists' first values).
gcn::TrainConfig config_from_options(Options& opt) {
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
  return config;
}

// --resume: the checkpoint names its dataset (a --dataset given too must
// agree) and its data options.
void read_resume_file(Options& opt, const CLI::App& app, RunConfig& run) {
  if (opt.resume_path.empty()) return;
  const gcn::SafetensorsFile& file = run.resume_file.emplace(gcn::read_safetensors(opt.resume_path));
  const auto format = file.metadata.find("format");
  if (format == file.metadata.end() || format->second != "gcn-train training state") {
    const bool model = format != file.metadata.end() && format->second == "pt";
    throw gcn::UsageError(fmt::format(
        "--resume: {} is {}, not a training state: use --init {} to start from its weights (--checkpoint PATH "
        "writes a state that --resume continues)",
        opt.resume_path, model ? "a model (as --save writes it)" : "not a gcn-train checkpoint", opt.resume_path));
  }
  const auto stored = file.metadata.find("config");
  if (stored == file.metadata.end()) return;
  const nlohmann::json c = nlohmann::json::parse(stored->second, nullptr, false);
  if (app.count("--dataset") == 0 && c.is_object() && c.contains("dataset") && c["dataset"].is_string()) {
    run.dataset = c["dataset"].get<std::string>();
  }
  if (c.is_object() && c.contains("data")) data_options_from_checkpoint(c["data"], opt, app, opt.resume_path);
}

}  // namespace

nlohmann::json config_json(const gcn::TrainConfig& c, const std::string& dataset, const nlohmann::json& data) {
  nlohmann::json out = {{"dataset", dataset},
          {"data", data},
          {"epochs", c.epochs},
          {"lr", gcn::json_number(c.lr)},
          {"weight_decay", gcn::json_number(c.weight_decay)},
          {"hidden", c.hidden},
          {"dropout", gcn::json_number(c.dropout)},
          {"seed", c.seed},       {"loss", gcn::loss_name(c.loss)}, {"select", gcn::selection_name(c.select)},
          {"patience", c.patience},
          {"early_stopping", c.early_stopping}};
  out.update(gcn::model_json(c));
  return out;
}

nlohmann::json dataset_json(const gcn::Dataset& d) {
  return {{"name", d.name}, {"num_nodes", d.n_nodes}, {"num_features", d.n_features}, {"num_classes", d.n_classes}};
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

namespace {

// --random-splits draws a split per run: one run's file cannot hold them.
void check_random_splits(const Options& opt, const RunKind& kind) {
  const char* clash = !opt.checkpoint_path.empty() ? "--checkpoint"
                      : !opt.resume_path.empty()   ? "--resume"
                      : kind.eval_only             ? "--epochs 0"
                      : opt.split != "auto" && opt.split != "random" ? "--split"
                                                                      : nullptr;
  if (clash != nullptr) {
    throw gcn::UsageError(fmt::format("--random-splits draws each run's split; it does not go with {} (use --split "
                                      "random --split-seed S for one split)",
                                      clash));
  }
}

}  // namespace

RunConfig resolve_run(Options& opt, const CLI::App& app) {
  RunConfig run;
  gcn::TrainConfig& config = run.config;
  RunKind& kind = run.kind;
  config = config_from_options(opt);
  kind.is_grid = opt.lrs.size() > 1 || opt.weight_decays.size() > 1 || opt.dropouts.size() > 1 ||
                 opt.hiddens.size() > 1 || !opt.configs.empty();
  // --epochs 0 --init PATH evaluates a model (from PyG, say) without training.
  kind.eval_only = opt.train.epochs == 0;
  check_evaluation_only(opt, kind);
  if (kind.eval_only) config.epochs = 1;  // for validate(); nothing is trained
  config.validate();
  check_counts(opt);
  run.configs = grid_configs(opt, config);
  kind.n_models = static_cast<int64_t>(run.configs.size()) * opt.runs;
  check_model_count(kind.n_models);
  // One model at a time or batches.
  kind.batched = !kind.eval_only && kind.n_models > 1 && opt.batch != 1 && !opt.random_splits;
  if (opt.random_splits) check_random_splits(opt, kind);
  if (kind.eval_only) config.epochs = 0;
  place_in_out_dir(opt, kind);
  run.device = check_flags(opt, kind);
  run.dataset = opt.dataset;
  read_resume_file(opt, app, run);
  run.data_options = data_options_json(opt);
  return run;
}

namespace {

// --resume: the checkpoint's configuration becomes the run's (one given
// again on the command line must agree); its state continues.
gcn::TrainState resume_from_checkpoint(const Options& opt, const CLI::App& app, RunConfig& run,
                                       const gcn::Dataset& data) {
  gcn::TrainConfig& config = run.config;
  const gcn::SafetensorsFile& file = *run.resume_file;
  config = config_from_checkpoint(file, opt.resume_path, config, app, run.dataset);
  config.validate();
  const gcn::ModelShape shape = config.shape(data.n_features, data.n_classes);
  gcn::TrainState state = gcn::train_state_from_safetensors(file, shape, opt.resume_path);
  if (state.epoch >= config.epochs) {
    throw gcn::UsageError(fmt::format("--resume: {} already finished its {}; give --epochs N above {} to train "
                                      "on, or --init {} to start again from its weights",
                                      opt.resume_path, count_of(state.epoch, "epoch"), state.epoch,
                                      opt.resume_path));
  }
  spdlog::info("resuming {} after epoch {} of {}", opt.resume_path, state.epoch, config.epochs);
  run.configs = {config};
  return state;
}

// --init: the model's weights; the file's architecture (width, depth, the
// type's architecture hyperparameters) unless a flag asks for another.
std::vector<float> init_from_file(const Options& opt, const CLI::App& app, RunConfig& run, const gcn::Dataset& data) {
  gcn::TrainConfig& config = run.config;
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
    for (gcn::TrainConfig& c : run.configs) take_file_architecture(c);
  }
  std::vector<float> params =
      gcn::model_from_safetensors(file, config.shape(data.n_features, data.n_classes), opt.init_path);
  spdlog::info("initial weights from {}", opt.init_path);
  return params;
}

// The metadata every model file of the run carries.
std::map<std::string, std::string> file_metadata(const char* format, const gcn::TrainConfig& cfg,
                                                 const RunConfig& run, const gcn::Dataset& data) {
  return {{"format", format},
          {"producer", fmt::format("gcn-train {}", kVersion)},
          {"config", config_json(cfg, run.dataset, run.data_options).dump()},
          {"dataset", dataset_json(data).dump()}};
}

}  // namespace

StartingWeights read_starting_weights(const Options& opt, const CLI::App& app, RunConfig& run,
                                      const gcn::Dataset& data) {
  StartingWeights start;
  if (!opt.resume_path.empty()) {
    start.resume = resume_from_checkpoint(opt, app, run, data);
  } else if (!opt.init_path.empty()) {
    start.init = init_from_file(opt, app, run, data);
  }
  return start;
}

gcn::SafetensorsFile saved_model_file(const gcn::TrainConfig& cfg, const gcn::TrainResult& result,
                                      const RunConfig& run, const gcn::Dataset& data) {
  const gcn::EpochStats& sel = result.selected();
  std::map<std::string, std::string> metadata = file_metadata("pt", cfg, run, data);
  metadata["epoch"] = std::to_string(sel.epoch);
  metadata["metrics"] = nlohmann::json{{"train_acc", sel.train_acc},
                                       {"val_acc", sel.val_acc},
                                       {"test_acc", sel.test_acc},
                                       {"val_loss", sel.val_loss}}
                            .dump();
  return gcn::model_to_safetensors(cfg.shape(data.n_features, data.n_classes), result.params, metadata);
}

gcn::SafetensorsFile checkpoint_file(const gcn::TrainConfig& cfg, const gcn::TrainState& state, const RunConfig& run,
                                     const gcn::Dataset& data) {
  return gcn::train_state_to_safetensors(cfg.shape(data.n_features, data.n_classes), state,
                                         file_metadata("gcn-train training state", cfg, run, data));
}

std::string model_file_name(const gcn::TrainConfig& c) {
  return fmt::format("hidden{}_lr{}_wd{}_dropout{}_seed{}.safetensors", c.hidden, c.lr, c.weight_decay, c.dropout,
                     c.seed);
}

}  // namespace gcn::cli
