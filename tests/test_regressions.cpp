// Replays every input under tests/regressions/<harness>/ (inputs the fuzzers
// in fuzz/ once found crashing, hanging or allocating without bound) through
// the harness's own entry point (fuzz/fuzz_targets.hpp). Each must load or be
// refused with a gcn::Error; anything else escaping fails the test. ctest runs
// each input as its own test, so one crash does not hide the others.
//
// A regression of an unbounded allocation or a hang must fail, not take the
// machine with it: the process's memory is capped (RLIMIT_AS, or ASan's
// max_allocation_size_mb under ASan, which reserves terabytes of shadow address
// space and so cannot run under an RLIMIT_AS) and each input gets an alarm.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <exception>
#include <filesystem>
#include <ostream>
#include <string>
#include <typeinfo>
#include <vector>

#include "../fuzz/fuzz_targets.hpp"
#include "gcn/error.hpp"
#include "gcn/data/planetoid.hpp"

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define GCN_TEST_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define GCN_TEST_ASAN 1
#endif

#ifdef GCN_TEST_ASAN
// Read by ASan at start-up; $ASAN_OPTIONS still overrides it.
extern "C" const char* __asan_default_options() { return "max_allocation_size_mb=2048"; }
#endif

namespace gcn::fuzz {
namespace {

namespace fs = std::filesystem;

constexpr unsigned kSecondsPerInput = 60;  // the fuzzers' -timeout is 5 s on smaller inputs
constexpr rlim_t kAddressSpaceBytes = rlim_t{2} << 30;

const char* const kHarnesses[] = {"pickle", "planetoid", "safetensors", "test_index"};

fs::path regressions_dir() { return fs::path(GCN_SOURCE_DIR) / "tests" / "regressions"; }
fs::path planetoid_base_dir() { return fs::path(GCN_SOURCE_DIR) / "fuzz" / "planetoid_base"; }

struct Input {
  std::string harness;
  fs::path path;
};
void PrintTo(const Input& in, std::ostream* os) { *os << in.path.string(); }

std::vector<Input> all_inputs() {
  std::vector<Input> out;
  std::error_code ec;
  for (const char* h : kHarnesses) {
    const fs::path dir = regressions_dir() / h;
    if (!fs::is_directory(dir, ec)) continue;
    for (const auto& entry : fs::directory_iterator(dir, ec)) {
      if (entry.is_regular_file()) out.push_back({h, entry.path()});
    }
  }
  std::sort(out.begin(), out.end(), [](const Input& a, const Input& b) { return a.path < b.path; });
  return out;
}

std::string test_name(const ::testing::TestParamInfo<Input>& info) {
  std::string name = info.param.harness + "_" + info.param.path.filename().string();
  for (char& c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  return name;
}

class Regression : public ::testing::TestWithParam<Input> {
 protected:
  void SetUp() override {
#ifndef GCN_TEST_ASAN
    const rlimit cap{kAddressSpaceBytes, kAddressSpaceBytes};
    ASSERT_EQ(setrlimit(RLIMIT_AS, &cap), 0);
#endif
    alarm(kSecondsPerInput);  // SIGALRM ends the process: a hang fails the test
  }
  void TearDown() override { alarm(0); }
};

TEST_P(Regression, OnlyGcnErrorsEscape) {
  const Input& in = GetParam();
  const std::string bytes = read_file(in.path);
  try {
    if (in.harness == "pickle") {
      pickle_target(bytes);
    } else if (in.harness == "test_index") {
      test_index_target(bytes);
    } else if (in.harness == "safetensors") {
      safetensors_target(bytes);
    } else {
      PlanetoidTarget target(planetoid_base_dir(), "cora");
      target.run(bytes);
    }
  } catch (const Error&) {
    // Refused cleanly: the expected outcome for a malformed file.
  } catch (const std::exception& e) {
    FAIL() << in.path << ": " << typeid(e).name()
           << " escaped instead of a gcn::Error: " << e.what();
  }
}

INSTANTIATE_TEST_SUITE_P(Inputs, Regression, ::testing::ValuesIn(all_inputs()), test_name);
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(Regression);

TEST(Regressions, EveryFileBelongsToAHarness) {
  std::error_code ec;
  ASSERT_TRUE(fs::is_directory(regressions_dir(), ec)) << regressions_dir();
  for (const auto& entry : fs::recursive_directory_iterator(regressions_dir(), ec)) {
    if (!entry.is_regular_file()) continue;
    const std::string h = entry.path().parent_path().filename().string();
    EXPECT_TRUE(std::find(std::begin(kHarnesses), std::end(kHarnesses), h) != std::end(kHarnesses))
        << entry.path()
        << " is not in tests/regressions/{pickle,planetoid,safetensors,test_index}/";
  }
}

// The replayed planetoid inputs replace one file of this dataset; it must load
// on its own, or every planetoid regression would test nothing past the error.
TEST(Regressions, PlanetoidBaseLoads) {
  const Dataset ds = load_planetoid_dir("cora", planetoid_base_dir());
  EXPECT_EQ(ds.n_nodes, 505);
  EXPECT_EQ(ds.n_features, 6);
  EXPECT_EQ(ds.n_classes, 3);
}

// The harness swaps the replaced files into its parsed base and back: after an
// input that fails to assemble (an x with a third of the rows), the base must
// load again, and the same replacement must fail the same way every time.
TEST(Regressions, PlanetoidTargetRestoresTheBase) {
  PlanetoidTarget target(planetoid_base_dir(), "cora");
  const std::string x = read_file(planetoid_base_dir() / "ind.cora.x");
  const std::string y = read_file(planetoid_base_dir() / "ind.cora.y");
  auto record = [](char which, const std::string& content) {
    std::string r(1, which);
    for (int i = 0; i < 4; ++i) r += static_cast<char>((content.size() >> (8 * i)) & 0xff);
    return r + content;
  };
  const std::string unchanged = std::string(1, '\x10') + record(0, x) + record(1, y);
  EXPECT_NO_THROW(target.run(unchanged));
  // The base's ind.cora.test.index replaced by one index past every node.
  const std::string bad = std::string(1, '\x07') + "999999";
  for (int i = 0; i < 2; ++i) {
    EXPECT_THROW(target.run(bad), DataError);
    EXPECT_NO_THROW(target.run(unchanged));
    EXPECT_NO_THROW(target.run(std::string(1, '\x00') + x));
  }
}

}  // namespace
}  // namespace gcn::fuzz
