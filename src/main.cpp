// gcn-train: trains PyG's tutorial GCN on a Planetoid dataset.
// Exit status: 0 success, 1 runtime error (data, device, numerics), 2 usage error.
#include <chrono>
#include <cstdio>
#include <exception>
#include <new>
#include <optional>
#include <string>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include "gcn/dataset.hpp"
#include "gcn/devices.hpp"
#include "gcn/error.hpp"
#include "gcn/planetoid.hpp"
#include "gcn/report.hpp"
#include "gcn/synthetic.hpp"
#include "gcn/trainer.hpp"

namespace {

constexpr const char* kVersion = "0.1.0";

struct Options {
  std::string dataset = "cora";
  std::optional<std::string> data_root;
  std::string device = "auto";
  gcn::TrainConfig train;
  std::string loss = "nll";
  std::string json_path;
  bool quiet = false;
  int threads = 0;
  bool no_normalize = false;
};

void setup_logging(bool quiet) {
  auto logger = spdlog::stdout_logger_mt("gcn");
  logger->set_pattern("%v");
  logger->set_level(quiet ? spdlog::level::warn : spdlog::level::info);
  spdlog::set_default_logger(logger);
}

using Clock = std::chrono::steady_clock;

int run(const Options& opt, Clock::time_point process_start) {
  gcn::TrainConfig config = opt.train;
  config.loss = gcn::parse_loss(opt.loss);
  config.validate();
  const gcn::DeviceSpec spec = gcn::parse_device(opt.device);
  if (opt.threads < 0) throw gcn::UsageError(fmt::format("--threads: {} is negative", opt.threads));
  if (!opt.json_path.empty()) gcn::check_writable(opt.json_path, "--json");

  const auto t0 = Clock::now();
  std::string source;
  std::string data_root;
  gcn::Dataset data;
  if (gcn::is_synthetic_name(opt.dataset)) {
    const gcn::SyntheticSpec spec = gcn::parse_synthetic_spec(opt.dataset);
    data = gcn::make_synthetic(spec);
    source = gcn::to_string(spec);
  } else {
    const std::filesystem::path root = gcn::resolve_data_root(opt.data_root);
    source = gcn::find_planetoid_dir(opt.dataset, root).string();
    data = gcn::load_planetoid(opt.dataset, root, !opt.no_normalize);
    data_root = root.string();
  }
  const double load_s = std::chrono::duration<double>(Clock::now() - t0).count();
  spdlog::info("gcn-train {} | {} from {} ({:.3f} s)", kVersion, data.name, source, load_s);
  spdlog::info("{}: {} nodes, {} edges, {} features, {} classes, {}/{}/{} train/val/test", data.name,
               data.n_nodes, data.n_edges(), data.n_features, data.n_classes, data.count(gcn::kTrainBit),
               data.count(gcn::kValBit), data.count(gcn::kTestBit));

  auto backend = gcn::make_backend(spec, opt.threads);
  spdlog::info("device: {}", backend->describe());
  spdlog::info("model: GCNConv({}, {}) -> ReLU -> dropout({}) -> GCNConv({}, {}); Adam lr {} weight decay {}; "
               "{} epochs, seed {}, loss {}",
               data.n_features, config.hidden, config.dropout, config.hidden, data.n_classes, config.lr,
               config.weight_decay, config.epochs, config.seed, gcn::loss_name(config.loss));

  const int width = static_cast<int>(std::to_string(config.epochs).size());
  const gcn::TrainResult result = gcn::train_gcn(*backend, data, config, [&](const gcn::EpochStats& s) {
    spdlog::info("epoch {:>{}}/{}  loss {:.4f}  train {:.4f}  val {:.4f}  test {:.4f}", s.epoch, width,
                 config.epochs, s.loss, s.train_acc, s.val_acc, s.test_acc);
  });
  const gcn::EpochStats& f = result.history.back();
  spdlog::warn("{} on {}: {} epochs in {:.3f} s ({:.3f} ms/epoch, train step {:.3f} ms) | loss {:.4f} train {:.4f} "
               "val {:.4f} test {:.4f}",
               data.name, backend->describe(), config.epochs, result.train_s, result.epoch_ms_median,
               result.train_step_ms_median, f.loss, f.train_acc, f.val_acc, f.test_acc);

  if (!opt.json_path.empty()) {
    gcn::RunReport report;
    report.dataset = &data;
    report.config = config;
    report.dataset_arg = opt.dataset;
    report.data_root = data_root;
    report.device_arg = opt.device;
    report.device = backend->describe();
    report.threads = opt.threads;
    report.normalize_features = !opt.no_normalize;
    report.load_s = load_s;
    report.total_s = std::chrono::duration<double>(Clock::now() - process_start).count();
    report.peak_host_mb = gcn::peak_host_memory_mb();
    report.peak_device_mb = static_cast<double>(backend->peak_memory_bytes()) / (1024.0 * 1024.0);
    report.result = &result;
    gcn::write_file_atomic(opt.json_path, gcn::to_json(report).dump(2) + "\n");
    spdlog::info("wrote {}", opt.json_path);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const auto process_start = Clock::now();
  Options opt;
  CLI::App app{"gcn-train: trains PyTorch Geometric's tutorial GCN (GCNConv -> ReLU -> dropout -> GCNConv) "
               "on a Planetoid dataset, with PyG's semantics, on the CPU or a CUDA GPU."};
  app.set_version_flag("--version", kVersion);
  app.option_defaults()->always_capture_default();
  app.add_option("--dataset", opt.dataset,
                 "cora, citeseer or pubmed (Planetoid split), or synthetic[:key=value,...] with keys nodes, degree, "
                 "features, nnz, classes, homophily, signal, seed, train_per_class, val, test");
  app.add_option("--data-root", opt.data_root,
                 "Folder with the raw Planetoid files (flat ind.<name>.* or PyG's <Name>/raw/); "
                 "default: $GCN_DATA_ROOT, else ./datasets");
  app.add_option("--device", opt.device, "cpu, cuda, cuda:N, or auto (CUDA when usable, else CPU)");
  app.add_option("--epochs", opt.train.epochs, "Training epochs");
  app.add_option("--lr", opt.train.lr, "Adam learning rate");
  app.add_option("--weight-decay", opt.train.weight_decay, "L2 weight decay on all parameters (as torch.optim.Adam)");
  app.add_option("--hidden", opt.train.hidden, "Hidden channels of the first GCNConv");
  app.add_option("--dropout", opt.train.dropout, "Dropout probability after the ReLU, in [0, 1)");
  app.add_option("--seed", opt.train.seed, "Seed for the initial weights and the dropout masks");
  app.add_option("--loss", opt.loss, "nll (log_softmax + nll_loss) or cross-entropy (on the logits); same fused op")
      ->check(CLI::IsMember({"nll", "cross-entropy"}));
  app.add_option("--log-every", opt.train.log_every, "Log (and read back from the device) every K epochs");
  app.add_option("--json", opt.json_path, "Write the run's results as JSON to this file");
  app.add_option("--threads", opt.threads, "CPU threads (0: OpenMP's default)");
  app.add_flag("--no-normalize-features", opt.no_normalize, "Skip NormalizeFeatures (rows summing to 1)");
  app.add_flag("-q,--quiet", opt.quiet, "Only warnings, errors and the final summary line");

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "gcn-train: error: %s (see gcn-train --help)\n", e.what());
    return 2;
  }

  setup_logging(opt.quiet);
  try {
    return run(opt, process_start);
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
