#include "gcn/report.hpp"

#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <random>

#include <fmt/format.h>

#include "gcn/error.hpp"

namespace gcn {

nlohmann::json to_json(const RunReport& r) {
  using nlohmann::json;
  const Dataset& d = *r.dataset;
  const TrainResult& res = *r.result;
  json history = json::array();
  for (const EpochStats& s : res.history) {
    history.push_back({{"epoch", s.epoch},
                       {"loss", s.loss},
                       {"val_loss", s.val_loss},
                       {"train_acc", s.train_acc},
                       {"val_acc", s.val_acc},
                       {"test_acc", s.test_acc}});
  }
  json final_stats = json::object();
  if (!res.history.empty()) {
    const EpochStats& f = res.history.back();
    final_stats = {{"epoch", f.epoch},     {"loss", f.loss},         {"val_loss", f.val_loss},
                   {"train_acc", f.train_acc}, {"val_acc", f.val_acc}, {"test_acc", f.test_acc}};
  }
  const TrainConfig& c = r.config;
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
        {"lr", c.lr},
        {"weight_decay", c.weight_decay},
        {"hidden", c.hidden},
        {"dropout", c.dropout},
        {"seed", c.seed},
        {"loss", loss_name(c.loss)},
        {"log_every", c.log_every},
        {"threads", r.threads},
        {"normalize_features", r.normalize_features}}},
      {"device", r.device},
      {"history", history},
      {"final", final_stats},
      {"timing",
       {{"load_s", r.load_s},
        {"train_s", res.train_s},
        {"epoch_ms_median", res.epoch_ms_median},
        {"train_step_ms_median", res.train_step_ms_median},
        {"total_s", r.total_s}}},
      {"memory", {{"peak_host_mb", r.peak_host_mb}, {"peak_device_mb", r.peak_device_mb}}},
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
