// libFuzzer harness: the graph file reader (gcn/graph_file.hpp) and what
// gcn-train does with a graph it read (fuzz_targets.hpp, graph_file_target).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <string>

#include "fuzz_targets.hpp"
#include "gcn/file_io.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    gcn::fuzz::graph_file_target({reinterpret_cast<const char*>(data), size});
  } catch (const gcn::Error&) {
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fuzz_graph_file: non-gcn exception escaped: %s\n", e.what());
    std::abort();
  }
  return 0;
}
