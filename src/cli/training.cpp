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
#include <thread>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "gcn/backend/devices.hpp"
#include "gcn/nn/model.hpp"
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

// One model at a time: runs of one configuration share a trainer (its
// workspace and, on CUDA, the recorded epoch).
void Training::one_at_a_time() {
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

// A batch of models of one hidden width, and what it trained to.
struct Job {
  int hidden;
  bool with_dropout;
  int batch;  // the group's batch size (this job may hold fewer)
  std::vector<gcn::TrainConfig> models;
  std::vector<gcn::TrainResult> results;
  std::string tag;
};

// Batches: the models of one hidden width share batches, as many per batch
// as --batch (or the memory budget) allows. Returns the CPU workers the
// memory budget allows.
int plan_jobs(const TrainingInputs& in, std::vector<Job>& jobs, RunReport& report) {
  const Options& opt = in.opt;
  const gcn::TrainConfig& config = in.run.config;
  const gcn::Dataset& data = in.loaded.data;
  const gcn::DeviceGraph& graph = in.graph;
  std::map<int, std::vector<gcn::TrainConfig>> by_hidden;
  for (const gcn::TrainConfig& c : in.run.configs) {
    for (int r = 0; r < opt.runs; ++r) {
      gcn::TrainConfig cfg = c;
      cfg.seed = c.seed + static_cast<uint64_t>(r);
      // Read back (and report progress) about ten times a run unless
      // --log-every says otherwise.
      if (in.app.count("--log-every") == 0) cfg.log_every = std::max(1, cfg.epochs / 10);
      by_hidden[c.hidden].push_back(cfg);
    }
  }
  const bool on_cpu = in.backend.kind() == gcn::DeviceKind::kCpu;
  const int cpu_threads = on_cpu ? gcn::cpu_thread_count(opt.threads) : 1;
  const double mib = 1024.0 * 1024.0;
  const std::size_t available = in.backend.available_memory_bytes();
  const std::size_t budget = opt.memory_budget_mb > 0 ? static_cast<std::size_t>(opt.memory_budget_mb * mib)
                                                      : (available > 0 ? available / 2 : std::size_t{1} << 32);
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
      const std::size_t per_worker = in.graph_bytes + bytes(k);
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
  return max_workers;
}

// Runs the jobs (taken in order from a shared counter) on the graph's
// backend, or on the CPU over worker threads, each with its own
// single-threaded backend and copy of the graph (independent models need no
// synchronisation; every result is the same bits on any thread).
void run_jobs(const TrainingInputs& in, std::vector<Job>& jobs, int max_workers, Progress& progress) {
  const gcn::TrainConfig& config = in.run.config;
  const gcn::Dataset& data = in.loaded.data;
  const std::atomic<bool>& g_interrupt = in.interrupt;
  const std::optional<std::vector<float>>& init_params = in.start.init;
  const bool on_cpu = in.backend.kind() == gcn::DeviceKind::kCpu;
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
    work(in.graph);
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
}

}  // namespace

void Training::batches() {
  std::vector<Job> jobs;
  const int max_workers = plan_jobs(in_, jobs, report_);
  run_jobs(in_, jobs, max_workers, progress_);
  for (Job& job : jobs) {
    for (std::size_t i = 0; i < job.results.size(); ++i) {  // none for a job an interrupt kept from starting
      finish_model(job.models[i], job.results[i],
                   fmt::format("[{} seed {}] ", config_label(job.models[i]), job.models[i].seed),
                   /*summary_warn=*/false);
      add_result(job.models[i], std::move(job.results[i]));
    }
  }
}

RunReport train_models(const TrainingInputs& in) { return Training(in).train(); }

}  // namespace gcn::cli
