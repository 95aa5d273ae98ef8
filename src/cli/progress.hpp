// Progress: on a terminal one live line, rewritten in place (with the time
// per epoch and an ETA); otherwise, and in the log, plain lines. Shared by
// the worker threads of a batched run.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>

namespace gcn::cli {

class Progress {
 public:
  explicit Progress(bool live) : live_(live) {}
  ~Progress() { end(); }
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;
  void show(const std::string& text);
  // Ends the live line (before other output).
  void end();
  bool live() const { return live_; }

 private:
  bool live_;
  bool open_ = false;
  std::mutex mutex_;
};

// " | 0.31 ms/epoch, ETA 12.3 s" from the time so far over `done` of `total`.
std::string rate_and_eta(std::chrono::steady_clock::time_point start, int64_t done, int64_t total);

}  // namespace gcn::cli
