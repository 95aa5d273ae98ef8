#include "gcn/report.hpp"

#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>

#include <fmt/format.h>

#include "gcn/error.hpp"

namespace gcn {

double json_number(float value) { return std::stod(fmt::format("{}", value)); }

SeedSummary summarize(const std::vector<double>& values) {
  SeedSummary s;
  s.n = static_cast<int>(values.size());
  if (s.n == 0) return s;
  double sum = 0;
  for (double v : values) sum += v;
  s.mean = sum / s.n;
  s.ci95_low = s.ci95_high = s.mean;
  if (s.n < 2) return s;
  double sq = 0;
  for (double v : values) sq += (v - s.mean) * (v - s.mean);
  s.std = std::sqrt(sq / (s.n - 1));
  // Two-sided 97.5% quantiles of Student's t for 1..30 degrees of freedom.
  static const double kT[] = {12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
                              2.201,  2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
                              2.080,  2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042};
  const int df = s.n - 1;
  // Beyond 30 degrees of freedom t approaches the normal 1.960 like 1/df.
  const double t = df <= 30 ? kT[df - 1] : 1.960 + (2.042 - 1.960) * 30.0 / df;
  const double half = t * s.std / std::sqrt(static_cast<double>(s.n));
  s.ci95_low = s.mean - half;
  s.ci95_high = s.mean + half;
  return s;
}

namespace {

nlohmann::json epoch_json(const EpochStats& s) {
  return {{"epoch", s.epoch},         {"loss", s.loss},       {"val_loss", s.val_loss},
          {"train_acc", s.train_acc}, {"val_acc", s.val_acc}, {"test_acc", s.test_acc}};
}

nlohmann::json history_json(const TrainResult& res) {
  nlohmann::json history = nlohmann::json::array();
  for (const EpochStats& s : res.history) history.push_back(epoch_json(s));
  return history;
}

nlohmann::json timing_json(const TrainResult& res) {
  return {{"train_s", res.train_s}, {"epoch_ms_median", res.epoch_ms_median}, {"cuda_graph", res.graph_replayed}};
}

nlohmann::json summary_json(const std::vector<double>& v) {
  const SeedSummary s = summarize(v);
  return {{"mean", s.mean}, {"std", s.std}, {"ci95", {s.ci95_low, s.ci95_high}}};
}

}  // namespace

nlohmann::json to_json(const RunReport& r) {
  using nlohmann::json;
  const Dataset& d = *r.dataset;
  const TrainConfig& c = r.config;
  json runs = json::array();
  std::vector<double> test, val, final_test;
  for (std::size_t i = 0; i < r.results.size(); ++i) {
    const TrainResult& res = r.results[i];
    runs.push_back({{"seed", r.seeds[i]},
                    {"final", epoch_json(res.final_stats())},
                    {"selected", epoch_json(res.selected())},
                    {"best_epoch", res.best_epoch},
                    {"stopped_early", res.stopped_early},
                    {"timing", timing_json(res)},
                    {"history", history_json(res)}});
    test.push_back(res.selected().test_acc);
    val.push_back(res.selected().val_acc);
    final_test.push_back(res.final_stats().test_acc);
  }
  const TrainResult& first = r.results.front();
  json timing = timing_json(first);
  timing["load_s"] = r.load_s;
  timing["total_s"] = r.total_s;
  return json{
      {"dataset",
       {{"name", d.name},
        {"num_nodes", d.n_nodes},
        {"num_edges", d.n_edges()},
        {"num_features", d.n_features},
        {"num_classes", d.n_classes},
        {"num_train", d.count(kTrainBit)},
        {"num_val", d.count(kValBit)},
        {"num_test", d.count(kTestBit)}}},
      {"config",
       {{"dataset", r.dataset_arg},
        {"data_root", r.data_root},
        {"device", r.device_arg},
        {"epochs", c.epochs},
        {"lr", json_number(c.lr)},
        {"weight_decay", json_number(c.weight_decay)},
        {"hidden", c.hidden},
        {"dropout", json_number(c.dropout)},
        {"seed", r.seeds.front()},
        {"runs", r.results.size()},
        {"loss", loss_name(c.loss)},
        {"select", selection_name(c.select)},
        {"patience", c.patience},
        {"log_every", c.log_every},
        {"cuda_graph", c.cuda_graph},
        {"threads", r.threads},
        {"normalize_features", r.normalize_features},
        {"init", r.init_path},
        {"resume", r.resume_path},
        {"checkpoint", r.checkpoint_path},
        {"checkpoint_every", r.checkpoint_every},
        {"save", r.save_path},
        {"predictions", r.predictions_path}}},
      {"device", r.device},
      {"history", history_json(first)},
      {"final", epoch_json(first.final_stats())},
      {"selected", epoch_json(first.selected())},
      {"best_epoch", first.best_epoch},
      {"stopped_early", first.stopped_early},
      {"timing", timing},
      {"memory", {{"peak_host_mb", r.peak_host_mb}, {"peak_device_mb", r.peak_device_mb}}},
      {"runs", runs},
      {"summary",
       {{"runs", r.results.size()},
        {"select", selection_name(c.select)},
        {"test_acc", summary_json(test)},
        {"val_acc", summary_json(val)},
        {"final_test_acc", summary_json(final_test)}}},
  };
}

double peak_host_memory_mb() {
  struct rusage usage {};
  if (::getrusage(RUSAGE_SELF, &usage) != 0) return 0.0;
  return static_cast<double>(usage.ru_maxrss) / 1024.0;  // Linux reports KiB
}

namespace {
std::string errno_text() { return std::strerror(errno); }
}  // namespace

void write_file_atomic(const std::filesystem::path& path, const std::string& contents) {
  const std::filesystem::path dir = path.has_parent_path() ? path.parent_path() : std::filesystem::path(".");
  std::random_device rd;
  const std::filesystem::path tmp = dir / fmt::format(".{}.tmp{:08x}", path.filename().string(), rd());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) throw Error(fmt::format("cannot write {}: {}", path.string(), errno_text()));
  std::size_t done = 0;
  while (done < contents.size()) {
    const ssize_t n = ::write(fd, contents.data() + done, contents.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      const std::string why = errno_text();
      ::close(fd);
      ::unlink(tmp.c_str());
      throw Error(fmt::format("cannot write {}: {}", path.string(), why));
    }
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    const std::string why = errno_text();
    ::unlink(tmp.c_str());
    throw Error(fmt::format("cannot write {}: {}", path.string(), why));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string why = errno_text();
    ::unlink(tmp.c_str());
    throw Error(fmt::format("cannot write {}: {}", path.string(), why));
  }
}

void check_writable(const std::filesystem::path& path, const char* option) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    throw UsageError(fmt::format("{}: {} is a directory; give a file path", option, path.string()));
  }
  const std::filesystem::path dir = path.has_parent_path() ? path.parent_path() : std::filesystem::path(".");
  if (!std::filesystem::is_directory(dir, ec)) {
    throw UsageError(fmt::format("{}: directory {} does not exist", option, dir.string()));
  }
  if (::access(dir.c_str(), W_OK) != 0) {
    throw UsageError(fmt::format("{}: directory {} is not writable ({})", option, dir.string(), errno_text()));
  }
}

}  // namespace gcn
