// Running a batch plan (gcn/train/batch_runner.hpp) over one backend or CPU
// worker threads.
#include "gcn/train/batch_runner.hpp"

#include <algorithm>
#include <chrono>
#include <exception>
#include <map>
#include <memory>
#include <thread>
#include <utility>

#include "gcn/backend/devices.hpp"

namespace gcn {

std::vector<std::vector<TrainResult>> run_batches(const DeviceGraph& graph, const Dataset& data,
                                                  const std::vector<TrainConfig>& models, const BatchPlan& plan,
                                                  const BatchRunOptions& options) {
  using Clock = std::chrono::steady_clock;
  const std::vector<BatchJob>& jobs = plan.jobs;
  std::vector<std::vector<TrainResult>> results(jobs.size());
  std::atomic<std::size_t> next_job{0};
  auto interrupted = [&] { return options.interrupt != nullptr && options.interrupt->load(); };
  // Runs jobs on one backend and graph.
  auto work = [&](const DeviceGraph& g) {
    // One trainer per width (and, for batches of one model, per dropout
    // rate, which such a model is planned with).
    std::map<std::pair<int, float>, std::unique_ptr<Trainer>> trainers;
    for (std::size_t j = next_job++; j < jobs.size() && !interrupted(); j = next_job++) {
      const BatchJob& job = jobs[j];
      const BatchGroup& group = plan.groups[job.group];
      std::vector<TrainConfig> configs;
      for (std::size_t i : job.models) configs.push_back(models[i]);
      auto& trainer = trainers[{group.hidden, group.batch == 1 ? configs.front().dropout : -1.0f}];
      if (!trainer) {
        trainer = std::make_unique<Trainer>(g, configs.front().shape(data.n_features, data.n_classes), group.batch,
                                            group.with_dropout);
      }
      TrainOptions train_options;
      const auto job_start = Clock::now();
      if (options.on_progress) {
        train_options.on_progress = [&, job_start](int epoch, int running) {
          const double s = std::chrono::duration<double>(Clock::now() - job_start).count();
          options.on_progress({job, epoch, running, std::min(jobs.size(), next_job.load()), s});
        };
      }
      train_options.init_params = options.init_params;
      train_options.interrupt = options.interrupt;
      results[j] = trainer->train_batch(configs, train_options);
    }
  };
  if (plan.workers <= 1) {
    work(graph);
    return results;
  }
  std::vector<std::exception_ptr> errors(static_cast<std::size_t>(plan.workers));
  std::vector<std::thread> threads;
  for (int w = 0; w < plan.workers; ++w) {
    threads.emplace_back([&, w] {
      try {
        const std::unique_ptr<Backend> own = make_cpu_backend(1);
        const DeviceGraph own_graph(*own, data);
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
  return results;
}

}  // namespace gcn
