// gcn-bench and gcn-train run as a user runs them, on what test_cli does not
// cover: gcn-bench's help and flag errors, and the data errors' fetch commands
// (a dataset not fetched, an empty or truncated file).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "support/process.hpp"
#include "test_util.hpp"

namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;

using gcn::test::count_lines;
using gcn::test::ProcessRun;
using gcn::test::quoted;
using gcn::test::run_program;

const std::string& kGcnTrain = gcn::test::gcn_train_path();

#ifdef GCN_BENCH_PATH
#define GCN_BENCH_OR_SKIP() const std::string bench = GCN_BENCH_PATH
#else
// (The declaration after the skip is never reached; it keeps the tests compiling.)
#define GCN_BENCH_OR_SKIP()                                                                      \
  GTEST_SKIP() << "gcn-bench is not built (GCN_BUILD_BENCH=OFF or Google Benchmark not found)"; \
  const std::string bench
#endif

// Google Benchmark's own --help names the program "benchmark" and lists only
// its flags: gcn-bench answers --help itself, its flags first.
TEST(GcnBench, HelpListsItsOwnFlagsThenGoogleBenchmarks) {
  GCN_BENCH_OR_SKIP();
  for (const char* flag : {"--help", "-h"}) {
    const ProcessRun r = run_program(bench, flag);
    EXPECT_EQ(r.status, 0) << flag << ": " << r.err;
    EXPECT_EQ(r.err, "") << flag;
    EXPECT_THAT(r.out, HasSubstr("Usage: gcn-bench ")) << flag;
    EXPECT_THAT(r.out, Not(HasSubstr("benchmark [--benchmark_list_tests"))) << flag;
    for (const char* own : {"--device cpu|cuda|all  ", "--max-rows N  ", "--threads N  ", "-h, --help  "}) {
      EXPECT_THAT(r.out, HasSubstr(own)) << flag;
    }
    const size_t own = r.out.find("--device cpu|cuda|all  ");
    const size_t theirs = r.out.find("Google Benchmark's flags also apply");
    ASSERT_NE(theirs, std::string::npos) << r.out;
    EXPECT_LT(own, theirs) << r.out;
    for (const char* g : {"--benchmark_filter=REGEX", "--benchmark_format=console|json|csv", "--benchmark_out=FILE",
                          "--benchmark_repetitions=N", "--benchmark_list_tests=true"}) {
      EXPECT_THAT(r.out.substr(theirs), HasSubstr(g)) << flag;
    }
  }
}

TEST(GcnBench, BadFlagsAreOneLineUsageErrors) {
  GCN_BENCH_OR_SKIP();
  const struct {
    const char* args;
    const char* message;
  } cases[] = {
      {"--bogus", "gcn-bench: error: unknown option --bogus (gcn-bench [--device cpu|cuda|all]"},
      {"--benchmark_bogus=1", "gcn-bench: error: unknown option --benchmark_bogus=1"},
      {"--device", "gcn-bench: error: --device needs a value"},
      {"--device tpu", "gcn-bench: error: --device tpu: use cpu, cuda or all"},
      {"--max-rows 12x", "gcn-bench: error: --max-rows 12x: expected a whole number of rows, at least 2708"},
      {"--max-rows=100", "gcn-bench: error: --max-rows 100: expected a whole number of rows, at least 2708"},
      {"--threads -1", "gcn-bench: error: --threads -1: expected a whole number from 0 to 4096"},
  };
  for (const auto& c : cases) {
    const ProcessRun r = run_program(bench, c.args);
    EXPECT_EQ(r.status, 2) << c.args << ": " << r.err;
    EXPECT_EQ(count_lines(r.err), 1) << c.args << ": " << r.err;
    EXPECT_THAT(r.err, HasSubstr(c.message)) << c.args;
    EXPECT_EQ(r.out, "") << c.args;
  }
}

// Its flags, in both spellings, next to Google Benchmark's; nothing is timed.
TEST(GcnBench, ItsFlagsWorkWithGoogleBenchmarks) {
  GCN_BENCH_OR_SKIP();
  for (const char* args : {"--device cpu --max-rows 2708 --threads 1 --benchmark_list_tests=true",
                           "--device=cpu --max-rows=2708 --threads=1 --benchmark_list_tests=true"}) {
    const ProcessRun r = run_program(bench, args);
    EXPECT_EQ(r.status, 0) << args << ": " << r.err;
    EXPECT_THAT(r.out, HasSubstr("/cpu/rows:2708")) << args;
    EXPECT_THAT(r.out, Not(HasSubstr("rows:20000"))) << args;
    EXPECT_THAT(r.out, Not(HasSubstr("/cuda/"))) << args;
  }
}

// scripts/get_datasets.sh fetches cora and citeseer when given no name, into
// the project's datasets/ unless given --dest: the error gives the command for
// this dataset and this root.
TEST(GcnTrainData, MissingDatasetGivesTheFetchCommand) {
  const gcn::test::TempDir tmp;
  const fs::path root = tmp.path() / "data";
  const ProcessRun r = run_program(kGcnTrain, "--dataset pubmed --epochs 1 --data-root " + quoted(root.string()));
  EXPECT_EQ(r.status, 1) << r.err;
  EXPECT_EQ(count_lines(r.err), 1) << r.err;
  EXPECT_THAT(r.err, HasSubstr("gcn-train: error: Planetoid dataset PubMed not found"));
  EXPECT_THAT(r.err, HasSubstr("Fetch it with `scripts/get_datasets.sh --dest " + root.string() + " pubmed`"));
  // The default root, ./datasets, is the script's default destination.
  const ProcessRun d = run_program(kGcnTrain, "--dataset pubmed --epochs 1", "GCN_DATA_ROOT= ", tmp.path());
  EXPECT_EQ(d.status, 1) << d.err;
  EXPECT_THAT(d.err, HasSubstr("Fetch it with `scripts/get_datasets.sh pubmed`"));
}

TEST(GcnTrainData, EmptyOrTruncatedFileNamesItsPathAndTheFetchCommand) {
  const gcn::test::TempDir tmp;
  auto files = [&](const std::string& x) {
    for (const char* e : {"x", "y", "tx", "ty", "allx", "ally", "graph", "test.index"}) {
      gcn::test::write_file(tmp.path() / (std::string("ind.cora.") + e), e == std::string("x") ? x : "");
    }
  };
  const std::string x = (tmp.path() / "ind.cora.x").string();
  const std::string fetch = "`scripts/get_datasets.sh --dest " + tmp.path().string() + " cora`";
  files("");
  ProcessRun r = run_program(kGcnTrain, "--dataset cora --epochs 1 --data-root " + quoted(tmp.path().string()));
  EXPECT_EQ(r.status, 1) << r.err;
  EXPECT_EQ(r.err, "gcn-train: error: " + x + ": the file is empty (0 bytes). Fetch it again with " + fetch + "\n");
  files(std::string("\x80\x02}", 3));
  r = run_program(kGcnTrain, "--dataset cora --epochs 1 --data-root " + quoted(tmp.path().string()));
  EXPECT_EQ(r.status, 1) << r.err;
  EXPECT_EQ(r.err, "gcn-train: error: " + x +
                       ": the file is truncated: reached the end of the data without a STOP opcode (offset 3 of "
                       "its 3 bytes). Delete it and fetch it again with " +
                       fetch + "\n");
}

}  // namespace
