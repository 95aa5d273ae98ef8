// libFuzzer harness: the Planetoid loader (parse_planetoid_file, then
// assemble_planetoid) with some of the eight files replaced by the input (byte
// 0 selects which; see PlanetoidTarget).
//
// The others come from $GCN_FUZZ_DATA (a folder with ind.<name>.*, name from
// $GCN_FUZZ_DATASET, default cora; e.g. the real Cora files), else from
// fuzz/planetoid_base, a tiny dataset that loads cleanly and keeps the
// executions fast.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <memory>

#include "fuzz_targets.hpp"

#ifndef GCN_FUZZ_BASE_DIR
#error "GCN_FUZZ_BASE_DIR (fuzz/planetoid_base) must be defined by the build"
#endif

namespace {

std::unique_ptr<gcn::fuzz::PlanetoidTarget> g_target;

const char* env_or(const char* name, const char* fallback) {
  const char* v = std::getenv(name);
  return v && *v ? v : fallback;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  try {
    g_target = std::make_unique<gcn::fuzz::PlanetoidTarget>(env_or("GCN_FUZZ_DATA", GCN_FUZZ_BASE_DIR),
                                                           env_or("GCN_FUZZ_DATASET", "cora"));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fuzz_planetoid: cannot set up the base dataset: %s\n", e.what());
    std::abort();
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    g_target->run({reinterpret_cast<const char*>(data), size});
  } catch (const gcn::Error&) {
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fuzz_planetoid: non-gcn exception escaped: %s\n", e.what());
    std::abort();
  }
  return 0;
}
