// libFuzzer harness: the safetensors checkpoint reader (gcn/checkpoint.hpp).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>

#include "fuzz_targets.hpp"
#include "gcn/trainer.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    gcn::fuzz::safetensors_target({reinterpret_cast<const char*>(data), size});
  } catch (const gcn::Error&) {
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fuzz_safetensors: non-gcn exception escaped: %s\n", e.what());
    std::abort();
  }
  return 0;
}

// trainer.cpp is not linked (it pulls in the backends): report.cpp, linked for
// write_file_atomic, names these only for the JSON report, which no
// checkpoint reader writes. Reaching one is a harness bug, so it aborts.
namespace gcn {
const char* loss_name(LossKind) { std::abort(); }
const char* selection_name(Selection) { std::abort(); }
}  // namespace gcn
