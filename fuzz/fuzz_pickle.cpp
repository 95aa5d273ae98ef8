// libFuzzer harness: gcn::pickle::parse and every typed extractor. Only
// gcn::Error may leave the reader; see fuzz_targets.hpp.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>

#include "fuzz_targets.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    gcn::fuzz::pickle_target({reinterpret_cast<const char*>(data), size});
  } catch (const gcn::Error&) {
  } catch (const std::exception& e) {
    // Named here so the report says what escaped, not just "terminate called".
    std::fprintf(stderr, "fuzz_pickle: non-gcn exception escaped: %s\n", e.what());
    std::abort();
  }
  return 0;
}
