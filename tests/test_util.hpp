// Shared test helpers: finding the Planetoid data, temp directories, environment
// variables set for one scope.
//
// GCN_PLANETOID_ROOT_OR_SKIP(var, "cora") declares `std::filesystem::path var`
// holding a data root from which gcn::find_planetoid_dir(name, var) succeeds
// (flat ind.<name>.* or PyG's <Name>/raw layout). It looks at
//   1. $GCN_DATA_ROOT, when set and non-empty (nothing else is tried then), else
//   2. GCN_SOURCE_DIR "/datasets" (filled by scripts/get_datasets.sh).
// When the data is not there the test is skipped with the reason, unless
// GCN_REQUIRE_DATA=1, in which case it fails. GCN_DATA_ROOT_OR_SKIP(var) is the
// same for Cora. Use either at the top of a TEST body (they return from it).
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <string_view>

#include "gcn/error.hpp"
#include "gcn/data/planetoid.hpp"

namespace gcn::test {

struct DataRootProbe {
  std::optional<std::filesystem::path> root;
  std::string reason;  // why it was not found
};

inline bool require_data() {
  const char* v = std::getenv("GCN_REQUIRE_DATA");
  return v && std::string_view(v) == "1";
}

// GCN_REQUIRE_GPU=1 (a GPU session): CUDA tests fail instead of skipping.
inline bool require_gpu() {
  const char* v = std::getenv("GCN_REQUIRE_GPU");
  return v && std::string_view(v) == "1";
}

inline std::filesystem::path data_root() {
  const char* env = std::getenv("GCN_DATA_ROOT");
  if (env && *env) return env;
#ifdef GCN_SOURCE_DIR
  return std::filesystem::path(GCN_SOURCE_DIR) / "datasets";
#else
  return "datasets";
#endif
}

inline DataRootProbe find_planetoid_root(const std::string& name) {
  const std::filesystem::path root = data_root();
  try {
    gcn::find_planetoid_dir(name, root);
    return {root, ""};
  } catch (const gcn::Error& e) {
    return {std::nullopt, "Planetoid data for " + name +
                              " not available (run scripts/get_datasets.sh or set " +
                              "GCN_DATA_ROOT): " + e.what()};
  }
}

// A fresh, empty directory under the system temp dir, removed on destruction.
class TempDir {
 public:
  TempDir() {
    static std::atomic<int> counter{0};
    const auto stamp = std::chrono::steady_clock::now().time_since_epoch().count();
    path_ = std::filesystem::temp_directory_path() /
            ("gcn-test-" + std::to_string(stamp) + "-" + std::to_string(counter++));
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

inline std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

inline void write_file(const std::filesystem::path& p, std::string_view bytes) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// An environment variable changed for one scope: the value it had (or its
// absence) comes back when the scope ends.
class ScopedEnv {
 public:
  explicit ScopedEnv(const char* name) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
  }
  ScopedEnv(const char* name, const char* value) : ScopedEnv(name) { set(value); }
  ~ScopedEnv() {
    if (old_) {
      ::setenv(name_.c_str(), old_->c_str(), 1);
    } else {
      ::unsetenv(name_.c_str());
    }
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

  void set(const char* value) { ::setenv(name_.c_str(), value, 1); }
  void unset() { ::unsetenv(name_.c_str()); }

 private:
  std::string name_;
  std::optional<std::string> old_;
};

}  // namespace gcn::test

#define GCN_PLANETOID_ROOT_OR_SKIP(var, name)                       \
  std::filesystem::path var;                                        \
  do {                                                              \
    const auto gcn_probe_ = ::gcn::test::find_planetoid_root(name); \
    if (!gcn_probe_.root) {                                         \
      if (::gcn::test::require_data()) FAIL() << gcn_probe_.reason; \
      GTEST_SKIP() << gcn_probe_.reason;                            \
    }                                                               \
    var = *gcn_probe_.root;                                         \
  } while (0)

#define GCN_DATA_ROOT_OR_SKIP(var) GCN_PLANETOID_ROOT_OR_SKIP(var, "cora")

// Skips (or fails, with GCN_REQUIRE_DATA=1) unless both Cora and CiteSeer are
// under gcn::test::data_root().
#define GCN_REQUIRE_DATA()                              \
  do {                                                  \
    GCN_PLANETOID_ROOT_OR_SKIP(gcn_cora_, "cora");      \
    GCN_PLANETOID_ROOT_OR_SKIP(gcn_cite_, "citeseer");  \
  } while (0)
