// The live progress line (progress.hpp).
#include "progress.hpp"

#include <cstdio>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace gcn::cli {

void Progress::show(const std::string& text) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!live_) {
    spdlog::info("{}", text);
    return;
  }
  std::fprintf(stdout, "\r\033[K%s", text.c_str());
  std::fflush(stdout);
  open_ = true;
}

void Progress::end() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (open_) {
    std::fputc('\n', stdout);
    std::fflush(stdout);
    open_ = false;
  }
}

std::string rate_and_eta(std::chrono::steady_clock::time_point start, int64_t done, int64_t total) {
  if (done <= 0) return "";
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const double per = s / static_cast<double>(done);
  return fmt::format(" | {:.3f} ms/epoch, ETA {:.1f} s", per * 1e3, per * static_cast<double>(total - done));
}

}  // namespace gcn::cli
