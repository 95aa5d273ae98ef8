// libFuzzer harness: gcn::parse_test_index (ind.<name>.test.index).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>

#include "fuzz_targets.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    gcn::fuzz::test_index_target({reinterpret_cast<const char*>(data), size});
  } catch (const gcn::Error&) {
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fuzz_test_index: non-gcn exception escaped: %s\n", e.what());
    std::abort();
  }
  return 0;
}
