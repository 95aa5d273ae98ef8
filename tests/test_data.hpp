// Where tests find the Planetoid files: $GCN_DATA_ROOT, else <source>/datasets.
// Without them a test that needs them is skipped with the reason, unless
// GCN_REQUIRE_DATA=1 (CI sets it), where it fails instead.
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <string>

namespace gcn::test {

inline std::filesystem::path data_root() {
  const char* env = std::getenv("GCN_DATA_ROOT");
  if (env != nullptr && *env != '\0') return env;
  return std::filesystem::path(GCN_SOURCE_DIR) / "datasets";
}

inline bool have_planetoid(const std::string& name) {
  const std::filesystem::path root = data_root();
  const std::string file = "ind." + name + ".graph";
  std::error_code ec;
  if (std::filesystem::exists(root / file, ec)) return true;
  for (const char* dir : {"Cora", "CiteSeer", "PubMed"}) {
    if (std::filesystem::exists(root / dir / "raw" / file, ec)) return true;
  }
  return false;
}

inline bool data_required() {
  const char* env = std::getenv("GCN_REQUIRE_DATA");
  return env != nullptr && std::string(env) == "1";
}

}  // namespace gcn::test

// Skips (or, with GCN_REQUIRE_DATA=1, fails) the current test when Cora and
// CiteSeer are not under gcn::test::data_root().
#define GCN_REQUIRE_DATA()                                                                              \
  do {                                                                                                  \
    if (!::gcn::test::have_planetoid("cora") || !::gcn::test::have_planetoid("citeseer")) {             \
      const std::string why_ = "Planetoid files not found under " + ::gcn::test::data_root().string() + \
                               " (run scripts/get_datasets.sh or set GCN_DATA_ROOT)";                   \
      if (::gcn::test::data_required()) FAIL() << why_;                                                 \
      GTEST_SKIP() << why_;                                                                             \
    }                                                                                                   \
  } while (0)
