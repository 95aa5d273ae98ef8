// gcn-train: trains PyTorch Geometric's GNNs on a Planetoid (or synthetic, or
// your own) dataset. main() parses the options, then run() takes the run's
// steps in order: resolve the options, load the data, read the starting
// weights, start the device, plan the batches, train, write the outputs.
// Exit status: 0 success, 1 runtime error (data, device, numerics), 2 usage
// error, 130 interrupted.
#include <csignal>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <exception>
#include <memory>
#include <new>
#include <string>

#include <CLI/CLI.hpp>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include "gcn/backend/devices.hpp"
#include "gcn/error.hpp"
#include "gcn/nn/device_graph.hpp"
#include "gcn/nn/registry.hpp"
#include "gcn/train/report.hpp"
#include "load_data.hpp"
#include "options.hpp"
#include "outputs.hpp"
#include "run_config.hpp"
#include "training.hpp"

namespace {

using Clock = std::chrono::steady_clock;

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

// Results written to standard output (--json -, --predictions -, --table -)
// move the log to standard error.
void setup_logging(bool quiet, bool to_stderr) {
  auto logger = to_stderr ? spdlog::stderr_logger_mt("gcn") : spdlog::stdout_logger_mt("gcn");
  logger->flush_on(spdlog::level::info);  // each line as it happens, also into a pipe or a file
  logger->set_pattern("%v");
  logger->set_level(quiet ? spdlog::level::warn : spdlog::level::info);
  spdlog::set_default_logger(logger);
}

int run(gcn::cli::Options opt, const CLI::App& app, Clock::time_point process_start) {
  using namespace gcn::cli;
  RunConfig run = resolve_run(opt, app);
  write_config_file(opt, app);
  const LoadedData loaded = load_data(opt, run.dataset);
  if (!opt.export_graph.empty()) {
    export_graph(opt.export_graph, loaded.data);
    return 0;
  }
  const StartingWeights start = read_starting_weights(opt, app, run, loaded.data);
  const std::unique_ptr<gcn::Backend> backend = gcn::make_backend(run.device, opt.threads);
  log_run(opt, run, loaded.data, *backend);
  // The graph goes to the device once; every model trains on it.
  const gcn::DeviceGraph graph(*backend, loaded.data);
  const std::size_t graph_bytes = backend->peak_memory_bytes();  // what one copy of the graph takes
  const RunBatches batches = plan_run_batches(opt, app, run, loaded.data, *backend, graph, graph_bytes);
  gcn::RunReport report = train_models({opt, run, loaded, start, *backend, graph, batches, g_interrupt});
  write_outputs(opt, run, loaded, *backend, report, process_start);
  return report.interrupted ? 130 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  const auto process_start = Clock::now();
  gcn::cli::Options opt;
  CLI::App app{"gcn-train: trains PyTorch Geometric's GNNs (the tutorial's GCN, GraphSAGE, GAT; any depth) "
               "on a Planetoid dataset, with PyG's semantics, on the CPU or a CUDA GPU."};
  gcn::cli::add_options(app, opt);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    const std::string unknown = gcn::cli::unknown_option(app, argc, argv);
    std::fprintf(stderr, "gcn-train: error: %s (see gcn-train --help)\n", unknown.empty() ? e.what() : unknown.c_str());
    return 2;
  }

  if (opt.list_models) {
    std::fputs(gcn::registry_json().c_str(), stdout);
    return 0;
  }
  setup_logging(opt.quiet, opt.json_path == "-" || opt.predictions_path == "-" || opt.table_path == "-");
  install_interrupt_handlers();
  try {
    gcn::cli::resolve_model_defaults(opt, app);
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
