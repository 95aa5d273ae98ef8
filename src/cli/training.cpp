// gcn-train's training step (training.hpp).
#include "training.hpp"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <exception>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "gcn/backend/devices.hpp"
#include "gcn/data/split.hpp"
#include "gcn/nn/model.hpp"
#include "gcn/train/batch_runner.hpp"
#include "gcn/train/checkpoint.hpp"
#include "gcn/train/trainer.hpp"
#include "outputs.hpp"
#include "progress.hpp"

namespace gcn::cli {

namespace {

using Clock = std::chrono::steady_clock;

// The live line: a terminal on standard output, a log that goes there, and no --quiet.
bool live_progress(const Options& opt) {
  return !opt.quiet && ::isatty(1) == 1 && opt.json_path != "-" && opt.predictions_path != "-" &&
         opt.table_path != "-" && opt.log_csv != "-" && opt.write_config != "-";
}

class Training {
 public:
  explicit Training(const TrainingInputs& in)
      : in_(in), opt_(in.opt), run_(in.run), data_(in.loaded.data), progress_(live_progress(in.opt)) {}

  RunReport train() {
    const auto t_train = Clock::now();
    if (run_.kind.eval_only) {
      evaluate_only();
    } else if (!run_.kind.batched) {
      one_at_a_time();
    } else {
      batches();
    }
    progress_.end();
    report_.train_total_s = std::chrono::duration<double>(Clock::now() - t_train).count();
    report_.interrupted = in_.interrupt.load();
    return std::move(report_);
  }

 private:
  void evaluate_only();
  void one_at_a_time();
  void random_splits();
  void train_one(Trainer& trainer, const TrainConfig& cfg, const std::string& prefix);
  void batches();
  void finish_model(const TrainConfig& cfg, const TrainResult& result, const std::string& prefix, bool summary_warn);
  void add_result(const TrainConfig& cfg, TrainResult result);
  ModelShape shape(const TrainConfig& cfg) const { return cfg.shape(data_.n_features, data_.n_classes); }
  bool interrupted() const { return in_.interrupt.load(); }

  const TrainingInputs& in_;
  const Options& opt_;
  const RunConfig& run_;
  const Dataset& data_;
  Progress progress_;
  RunReport report_;
  int finished_ = 0;  // models whose end was handled
};

void Training::add_result(const TrainConfig& cfg, TrainResult result) {
  result.log_probs.clear();
  report_.seeds.push_back(cfg.seed);
  report_.model_configs.push_back(cfg);
  report_.results.push_back(std::move(result));
}

// What every model's end does: the summary line, --save (the first model),
// --save-dir (each).
void Training::finish_model(const TrainConfig& cfg, const TrainResult& result, const std::string& prefix,
                            bool summary_warn) {
  progress_.end();
  log_model_end(cfg, result, prefix, summary_warn, data_, in_.backend);
  const gcn::EpochStats& sel = result.selected();
  if (finished_ == 0 && !opt_.save_path.empty()) {
    gcn::write_safetensors(opt_.save_path, saved_model_file(cfg, result, run_, data_));
    spdlog::info("saved the model of epoch {} to {}", sel.epoch, opt_.save_path);
  }
  if (!opt_.save_dir.empty()) {
    const std::filesystem::path path = std::filesystem::path(opt_.save_dir) / model_file_name(cfg);
    gcn::write_safetensors(path, saved_model_file(cfg, result, run_, data_));
    spdlog::info("{}saved the model of epoch {} to {}", prefix, sel.epoch, path.string());
  }
  ++finished_;
}

// --epochs 0 --init: the file's model evaluated, epoch 0.
void Training::evaluate_only() {
  const gcn::TrainConfig& config = run_.config;
  const std::vector<float>& init_params = *in_.start.init;
  gcn::Trainer trainer(in_.graph, shape(config), 0.0f);
  std::vector<float> log_probs;
  gcn::TrainResult evaluated;
  evaluated.history.push_back(trainer.evaluate(init_params, opt_.predictions_path.empty() ? nullptr : &log_probs));
  evaluated.selected_epoch = 1;  // the one entry: epoch 0, before any training
  evaluated.params = init_params;
  const gcn::EpochStats& e = evaluated.history.back();
  spdlog::warn("{} on {}: {} evaluated without training | loss {:.4f} (no dropout) | train {:.4f} val {:.4f} "
               "test {:.4f}",
               data_.name, in_.backend.describe(), opt_.init_path, e.loss, e.train_acc, e.val_acc, e.test_acc);
  if (!opt_.predictions_path.empty()) write_predictions(opt_.predictions_path, data_, log_probs);
  if (!opt_.embeddings_path.empty()) {
    write_embeddings(opt_.embeddings_path, data_, config, 0, trainer.model().hidden_output(nullptr));
  }
  add_result(config, std::move(evaluated));
}

// --random-splits: run r of every configuration on the dataset with split r
// (--split random, --split-seed + r), each on its own graph.
void Training::random_splits() {
  const std::vector<gcn::TrainConfig>& configs = run_.configs;
  for (std::size_t ci = 0; ci < configs.size() && !interrupted(); ++ci) {
    for (int r = 0; r < opt_.runs && !interrupted(); ++r) {
      gcn::Dataset data = data_;
      gcn::SplitRequest request;
      request.kind = gcn::SplitKind::kRandom;
      request.spec = {opt_.train_per_class, gcn::SplitSize::parse(opt_.num_val, "--num-val"),
                      gcn::SplitSize::parse(opt_.num_test, "--num-test"), opt_.split_seed + static_cast<uint64_t>(r)};
      gcn::apply_split(data, request, /*graph_file=*/false, /*file_has_masks=*/false, data.name);
      const gcn::DeviceGraph graph(in_.backend, data);
      gcn::Trainer trainer(graph, shape(configs[ci]), configs[ci].dropout);
      gcn::TrainConfig cfg = configs[ci];
      cfg.seed = configs[ci].seed + static_cast<uint64_t>(r);
      std::string prefix = fmt::format("run {}/{} (seed {}, split seed {}) ", r + 1, opt_.runs, cfg.seed,
                                       request.spec.seed);
      if (configs.size() > 1) prefix = fmt::format("[{}] {}", config_label(cfg), prefix);
      train_one(trainer, cfg, prefix);
    }
  }
}

// One model at a time: runs of one configuration share a trainer (its
// workspace and, on CUDA, the recorded epoch).
void Training::one_at_a_time() {
  if (opt_.random_splits) {
    random_splits();
    return;
  }
  const std::vector<gcn::TrainConfig>& configs = run_.configs;
  std::unique_ptr<gcn::Trainer> trainer;
  int trainer_hidden = -1;
  float trainer_dropout = -1.0f;
  for (std::size_t ci = 0; ci < configs.size() && !interrupted(); ++ci) {
    if (!trainer || trainer_hidden != configs[ci].hidden || trainer_dropout != configs[ci].dropout) {
      trainer.reset();
      trainer = std::make_unique<gcn::Trainer>(in_.graph, shape(configs[ci]), configs[ci].dropout);
      trainer_hidden = configs[ci].hidden;
      trainer_dropout = configs[ci].dropout;
    }
    for (int r = 0; r < opt_.runs && !interrupted(); ++r) {
      gcn::TrainConfig cfg = configs[ci];
      cfg.seed = configs[ci].seed + static_cast<uint64_t>(r);
      std::string prefix = opt_.runs > 1 ? fmt::format("run {}/{} (seed {}) ", r + 1, opt_.runs, cfg.seed) : "";
      if (configs.size() > 1) prefix = fmt::format("[{}] {}", config_label(cfg), prefix);
      train_one(*trainer, cfg, prefix);
    }
  }
}

// One run: its progress lines; the first model's checkpoints, embeddings and
// predictions.
void Training::train_one(Trainer& trainer, const TrainConfig& cfg, const std::string& prefix) {
  const std::optional<gcn::TrainState>& resume_state = in_.start.resume;
  const std::optional<std::vector<float>>& init_params = in_.start.init;
  const int width = static_cast<int>(std::to_string(run_.config.epochs).size());
  const bool first = finished_ == 0;
  gcn::TrainOptions options;
  const auto run_start = Clock::now();
  const int first_epoch = resume_state ? resume_state->epoch : 0;
  options.on_log = [&](const gcn::EpochStats& s) {
    progress_.show(fmt::format("{}epoch {:>{}}/{}  loss {:.4f}  train {:.4f}  val {:.4f}  test {:.4f}{}", prefix,
                               s.epoch, width, cfg.epochs, s.loss, s.train_acc, s.val_acc, s.test_acc,
                               progress_.live() ? rate_and_eta(run_start, s.epoch - first_epoch,
                                                               cfg.epochs - first_epoch)
                                                : ""));
  };
  if (init_params) options.init_params = &*init_params;
  if (resume_state) options.resume = &*resume_state;
  options.want_log_probs = first && !opt_.predictions_path.empty();
  options.want_embeddings = first && !opt_.embeddings_path.empty();
  options.interrupt = &in_.interrupt;
  if (!opt_.checkpoint_path.empty() && first) {
    // --checkpoint alone: the state at the end (and on an interrupt).
    options.checkpoint_every = opt_.checkpoint_every;
    options.checkpoint_at_end = opt_.checkpoint_every == 0;
    options.on_checkpoint = [&](const gcn::TrainState& state) {
      gcn::write_safetensors(opt_.checkpoint_path, checkpoint_file(cfg, state, run_, data_));
      spdlog::info("{}checkpoint after epoch {} -> {}", prefix, state.epoch, opt_.checkpoint_path);
    };
  }
  gcn::TrainResult result = trainer.train(cfg, options);
  finish_model(cfg, result, prefix, /*summary_warn=*/true);
  if (first && !opt_.embeddings_path.empty()) {
    write_embeddings(opt_.embeddings_path, data_, cfg, result.selected().epoch, result.embeddings);
    spdlog::info("wrote the hidden layer of epoch {} to {}", result.selected().epoch, opt_.embeddings_path);
  }
  result.embeddings.clear();
  if (first && !opt_.predictions_path.empty()) {
    write_predictions(opt_.predictions_path, data_, result.log_probs);
    spdlog::info("wrote predictions of epoch {} to {}", result.selected().epoch, opt_.predictions_path);
  }
  add_result(cfg, std::move(result));
}

// "hidden 16 batch 2/3" (or "hidden 16" for the one batch of a width).
std::string job_tag(const gcn::BatchPlan& plan, const gcn::BatchJob& job) {
  const gcn::BatchGroup& g = plan.groups[job.group];
  return g.batches > 1 ? fmt::format("hidden {} batch {}/{}", g.hidden, job.index + 1, g.batches)
                       : fmt::format("hidden {}", g.hidden);
}

// Each width's plan: the limits that made its batches smaller, the batches,
// the memory they plan for.
void log_batch_plan(const gcn::BatchPlan& plan, const gcn::BatchDevice& device, std::size_t available, int epochs,
                    const std::map<int, gcn::ModelShape>& shapes) {
  const double mib = 1024.0 * 1024.0;
  const bool on_cpu = device.kind == gcn::DeviceKind::kCpu;
  const double budget = static_cast<double>(device.budget_bytes) / mib;
  for (const gcn::BatchGroup& g : plan.groups) {
    if (g.capped) {
      spdlog::info("hidden {}: {} models; a CUDA batch holds at most {} (the kernels' grid)", g.hidden, g.models,
                   gcn::kCudaMaxBatch);
    }
    if (g.shrunk_from > 0) {
      spdlog::info("hidden {}: batches of {} models would need {:.1f} MiB{}, over the budget of {:.1f} MiB "
                   "(--memory-budget): batches of up to {}",
                   g.hidden, g.shrunk_from, static_cast<double>(g.shrunk_bytes) / mib,
                   g.workers > 1 ? fmt::format(" ({} workers)", g.workers) : "", budget, g.batch);
    }
    // Host: the pinned metrics ring and every model's history and parameters.
    const gcn::ParamLayout layout(shapes.at(g.hidden));
    const double host_mb =
        (static_cast<double>(g.batch) * gcn::GcnModel::kRingSlots * sizeof(gcn::EpochMetrics) +
         static_cast<double>(g.models) * (epochs * sizeof(gcn::EpochStats) + 2.0 * layout.total * sizeof(float))) /
        mib;
    spdlog::info("hidden {}: {} models in {} batch{} of up to {}{}; plan: {:.1f} MiB of {} memory per batch, "
                 "{:.1f} MiB of host memory for the results (budget {:.1f} MiB, {:.1f} MiB free)",
                 g.hidden, g.models, g.batches, g.batches == 1 ? "" : "es", g.batch,
                 on_cpu && g.workers > 1 ? fmt::format(" over {} CPU threads", std::min(g.workers, g.batches)) : "",
                 static_cast<double>(g.planned_bytes) / mib, on_cpu ? "host" : "device", host_mb, budget,
                 static_cast<double>(available) / mib);
  }
}

// Batches: the plan's jobs over the backend or the CPU's worker threads,
// then each model's end in the plan's order.
void Training::batches() {
  const RunBatches& batches = in_.batches;
  const gcn::BatchPlan& plan = batches.plan;
  report_.batches = plan.groups;
  const int epochs = run_.config.epochs;
  gcn::BatchRunOptions options;
  if (in_.start.init) options.init_params = &*in_.start.init;
  options.interrupt = &in_.interrupt;
  options.on_progress = [&](const gcn::BatchProgress& p) {
    // ETA over the jobs: this one's epochs, then the jobs not started.
    const double s = p.job_s;
    const std::size_t waiting = plan.jobs.size() - p.started;
    const double eta = s / p.epoch * (epochs - p.epoch) +
                       s / p.epoch * epochs * static_cast<double>(waiting) / std::max(1, plan.workers);
    progress_.show(fmt::format("{}: epoch {}/{}, {} of {} models training | {} of {} batches started{}",
                               job_tag(plan, p.job), p.epoch, epochs, p.running, p.job.models.size(), p.started,
                               plan.jobs.size(), progress_.live() ? fmt::format(", ETA {:.1f} s", eta) : ""));
  };
  std::vector<std::vector<gcn::TrainResult>> results =
      gcn::run_batches(in_.graph, data_, batches.models, plan, options);
  for (std::size_t j = 0; j < plan.jobs.size(); ++j) {
    for (std::size_t i = 0; i < results[j].size(); ++i) {  // none for a job an interrupt kept from starting
      const gcn::TrainConfig& cfg = batches.models[plan.jobs[j].models[i]];
      finish_model(cfg, results[j][i], fmt::format("[{} seed {}] ", config_label(cfg), cfg.seed),
                   /*summary_warn=*/false);
      add_result(cfg, std::move(results[j][i]));
    }
  }
}

}  // namespace

RunBatches plan_run_batches(const Options& opt, const CLI::App& app, const RunConfig& run, const Dataset& data,
                            const Backend& backend, const DeviceGraph& graph, std::size_t graph_bytes) {
  RunBatches out;
  if (!run.kind.batched) return out;
  std::vector<gcn::BatchModel> planned;
  std::map<int, gcn::ModelShape> shapes;  // per width: its first model's
  for (const gcn::TrainConfig& c : run.configs) {
    for (int r = 0; r < opt.runs; ++r) {
      gcn::TrainConfig cfg = c;
      cfg.seed = c.seed + static_cast<uint64_t>(r);
      // Read back (and report progress) about ten times a run unless
      // --log-every says otherwise.
      if (app.count("--log-every") == 0) cfg.log_every = std::max(1, cfg.epochs / 10);
      shapes.emplace(cfg.hidden, cfg.shape(data.n_features, data.n_classes));
      planned.push_back({cfg.hidden, cfg.dropout});
      out.models.push_back(cfg);
    }
  }
  gcn::BatchDevice device;
  device.kind = backend.kind();
  const bool on_cpu = device.kind == gcn::DeviceKind::kCpu;
  device.cpu_threads = on_cpu ? gcn::cpu_thread_count(opt.threads) : 1;
  if (on_cpu) device.cache_bytes = gcn::cpu_cache_bytes();
  device.graph_bytes = graph_bytes;
  const std::size_t available = backend.available_memory_bytes();
  device.budget_bytes = opt.memory_budget_mb > 0 ? static_cast<std::size_t>(opt.memory_budget_mb * 1024.0 * 1024.0)
                                                 : (available > 0 ? available / 2 : std::size_t{1} << 32);
  out.plan = gcn::plan_batches(planned, opt.batch, device, [&](int hidden, int k, bool with_dropout) {
    return gcn::Trainer::planned_bytes(graph, shapes.at(hidden), k, with_dropout);
  });
  log_batch_plan(out.plan, device, available, run.config.epochs, shapes);
  return out;
}

RunReport train_models(const TrainingInputs& in) { return Training(in).train(); }

}  // namespace gcn::cli
