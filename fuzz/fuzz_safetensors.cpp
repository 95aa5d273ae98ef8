// libFuzzer harness: the safetensors checkpoint reader (gcn/checkpoint.hpp).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>

#include "fuzz_targets.hpp"
#include "gcn/train/trainer.hpp"

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
