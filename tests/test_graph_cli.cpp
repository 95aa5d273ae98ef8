// gcn-train on graph files as a user runs it: --dataset PATH.safetensors,
// --split, --to-undirected, --export-graph; exit codes and one-line errors.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "gcn/data/safetensors.hpp"
#include "support/process.hpp"
#include "test_util.hpp"

namespace {

namespace fs = std::filesystem;
using ::testing::AllOf;
using ::testing::HasSubstr;

using gcn::test::count_lines;
using gcn::test::ProcessRun;

class GraphCli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("gcn_graph_cli_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  static std::string slurp(const fs::path& p) { return gcn::test::read_file(p); }

  static ProcessRun run(const std::string& args) { return gcn::test::run_gcn_train(args); }

  nlohmann::json report(const std::string& args) {
    const fs::path json = dir_ / "report.json";
    const ProcessRun r = run(args + " --device cpu --quiet --json '" + json.string() + "'");
    EXPECT_EQ(r.status, 0) << args << ": " << r.err;
    return nlohmann::json::parse(slurp(json));
  }

  // A directed 6-node graph, 2 classes, node 5 unlabelled; masks optional.
  fs::path write_small(const std::string& name, bool masks) {
    auto le = [](auto values, auto sample) {
      std::string s;
      for (auto v : values) gcn::append_le<decltype(sample)>(s, v);
      return s;
    };
    std::vector<gcn::TensorBytes> t = {
        {"edge_index", gcn::Dtype::kI64, {2, 5}, le(std::vector<int64_t>{0, 1, 2, 3, 4, 1, 2, 3, 4, 0}, int64_t{})},
        {"x", gcn::Dtype::kF32, {6, 2}, le(std::vector<float>{1, 0, 0, 1, 1, 1, 2, 0, 0, 2, 1, 3}, float{})},
        {"y", gcn::Dtype::kI64, {6}, le(std::vector<int64_t>{0, 1, 0, 1, 0, -1}, int64_t{})}};
    if (masks) {
      t.push_back({"train_mask", gcn::Dtype::kBool, {6}, std::string("\1\1\0\0\0\0", 6)});
      t.push_back({"val_mask", gcn::Dtype::kBool, {6}, std::string("\0\0\1\0\0\0", 6)});
      t.push_back({"test_mask", gcn::Dtype::kBool, {6}, std::string("\0\0\0\1\1\0", 6)});
    }
    const fs::path path = dir_ / name;
    std::ofstream(path, std::ios::binary) << gcn::serialize_typed_safetensors({{"name", "small"}}, t);
    return path;
  }

  fs::path dir_;
};

// --export-graph writes what was loaded; training on the file gives the
// Planetoid load's statistics and per-epoch results, bit for bit.
TEST_F(GraphCli, ExportedCoraTrainsBitIdentically) {
  GCN_REQUIRE_DATA();
  const fs::path file = dir_ / "cora.safetensors";
  const ProcessRun w = run("--dataset cora --export-graph '" + file.string() + "'");
  ASSERT_EQ(w.status, 0) << w.err;
  EXPECT_THAT(w.out, HasSubstr("wrote Cora to"));
  EXPECT_THAT(w.out, ::testing::Not(HasSubstr("epoch")));
  const nlohmann::json a = report("--dataset cora --epochs 30 --seed 5");
  const nlohmann::json b = report("--dataset '" + file.string() + "' --epochs 30 --seed 5");
  EXPECT_EQ(a["dataset"], b["dataset"]);
  EXPECT_EQ(a["history"], b["history"]);
  EXPECT_EQ(a["final"], b["final"]);
}

// The same for a synthetic graph (its features are already row-normalised).
TEST_F(GraphCli, ExportedSyntheticTrainsBitIdentically) {
  const std::string spec = "synthetic:nodes=3000,degree=6,features=64,nnz=8,classes=4,seed=2";
  const fs::path file = dir_ / "syn.safetensors";
  ASSERT_EQ(run("--dataset " + spec + " --export-graph '" + file.string() + "'").status, 0);
  const nlohmann::json a = report("--dataset " + spec + " --epochs 20");
  const nlohmann::json b = report("--dataset file:" + file.string() + " --epochs 20");
  EXPECT_EQ(a["dataset"]["num_edges"], b["dataset"]["num_edges"]);
  EXPECT_EQ(a["dataset"]["num_train"], b["dataset"]["num_train"]);
  EXPECT_EQ(a["history"], b["history"]);
}

TEST_F(GraphCli, FileWithoutMasksNeedsASplit) {
  const fs::path file = write_small("small.safetensors", false);
  const ProcessRun r = run("--dataset '" + file.string() + "' --device cpu --epochs 1");
  EXPECT_EQ(r.status, 2);
  EXPECT_EQ(count_lines(r.err), 1) << r.err;
  EXPECT_THAT(r.err, AllOf(HasSubstr("gcn-train: error:"), HasSubstr("has no train_mask"),
                           HasSubstr("--split random"), HasSubstr("--split planetoid")));
  const nlohmann::json j = report("--dataset '" + file.string() + "' --split planetoid --train-per-class 1 "
                                  "--num-val 2 --num-test 1 --epochs 2");
  EXPECT_EQ(j["dataset"]["num_train"], 2);
  EXPECT_EQ(j["dataset"]["num_val"], 2);
  EXPECT_EQ(j["dataset"]["num_test"], 1);
}

TEST_F(GraphCli, FileMasksAreTheDefaultAndUnlabelledNodesStayOut) {
  const fs::path file = write_small("small.safetensors", true);
  const ProcessRun r = run("--dataset '" + file.string() + "' --device cpu --epochs 2");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("small: 6 nodes, 5 edges, 2 features, 2 classes, 2/1/2 train/val/test (the file's"));
  const nlohmann::json j = report("--dataset '" + file.string() + "' --split random --train-per-class 1 --num-val "
                                  "10 --num-test 10 --epochs 2");
  EXPECT_EQ(j["dataset"]["num_train"], 2);
  EXPECT_EQ(j["dataset"]["num_val"], 3);  // the labelled rest; never node 5
  EXPECT_EQ(j["dataset"]["num_test"], 0);
  const fs::path csv = dir_ / "p.csv";
  ASSERT_EQ(run("--dataset '" + file.string() + "' --device cpu --epochs 1 --predictions '" + csv.string() + "'")
                .status,
            0);
  EXPECT_THAT(slurp(csv), HasSubstr("\n5,none,-1,"));  // the unlabelled node: no split, label -1
}

TEST_F(GraphCli, ToUndirected) {
  const fs::path file = write_small("small.safetensors", true);
  EXPECT_EQ(report("--dataset '" + file.string() + "' --epochs 1")["dataset"]["num_edges"], 5);
  EXPECT_EQ(report("--dataset '" + file.string() + "' --to-undirected --epochs 1")["dataset"]["num_edges"], 10);
}

// PyG 2.8's RandomNodeSplit(split="random", 5, 0.1, 0.2) on Cora: 35 / 271 / 542.
TEST_F(GraphCli, RandomSplitHasPyGsCounts) {
  GCN_REQUIRE_DATA();
  const nlohmann::json j =
      report("--dataset cora --split random --train-per-class 5 --num-val 0.1 --num-test 0.2 --epochs 1");
  EXPECT_EQ(j["dataset"]["num_train"], 35);
  EXPECT_EQ(j["dataset"]["num_val"], 271);
  EXPECT_EQ(j["dataset"]["num_test"], 542);
}

// --resume rebuilds the checkpoint's graph: its split options (and
// --to-undirected) come from the checkpoint, so a resumed random-split run
// ends as the uninterrupted one; a conflicting flag is a usage error.
TEST_F(GraphCli, ResumeKeepsTheCheckpointsSplit) {
  GCN_REQUIRE_DATA();
  const std::string split = "--dataset cora --split random --split-seed 3 --train-per-class 10 --to-undirected";
  const nlohmann::json whole = report(split + " --epochs 12");
  const fs::path state = dir_ / "state.safetensors";
  report(split + " --epochs 6 --checkpoint '" + state.string() + "'");
  const nlohmann::json resumed = report("--resume '" + state.string() + "' --epochs 12");
  EXPECT_EQ(resumed["dataset"], whole["dataset"]);
  EXPECT_EQ(resumed["history"], whole["history"]);
  const ProcessRun r = run("--resume '" + state.string() + "' --epochs 12 --split planetoid --device cpu");
  EXPECT_EQ(r.status, 2);
  EXPECT_EQ(count_lines(r.err), 1) << r.err;
  EXPECT_NE(r.err.find("--split planetoid differs from the checkpoint's random"), std::string::npos) << r.err;
}

TEST_F(GraphCli, SplitAndExportFlagErrorsAreUsageErrors) {
  const fs::path file = write_small("small.safetensors", true);
  for (const std::string& args :
       {std::string("--dataset cora --split public"), std::string("--dataset cora --split file"),
        std::string("--dataset cora --split planetoid --num-val 100"),
        std::string("--dataset cora --split-seed 3"), "--dataset '" + file.string() + "' --num-val abc",
        "--dataset '" + file.string() + "' --split random --num-test 1.5",
        "--dataset '" + file.string() + "' --split random --train-per-class 0",
        std::string("--dataset cora --export-graph /nonexistent-dir/g.safetensors")}) {
    const ProcessRun r = run(args + " --device cpu --epochs 1");
    EXPECT_EQ(r.status, 2) << args << ": " << r.err;
    EXPECT_EQ(count_lines(r.err), 1) << args << ": " << r.err;
    EXPECT_THAT(r.err, HasSubstr("gcn-train: error:")) << args;
  }
}

TEST_F(GraphCli, BadFilesAreOneLineDataErrors) {
  const fs::path missing = dir_ / "missing.safetensors";
  const fs::path garbage = dir_ / "garbage.safetensors";
  std::ofstream(garbage, std::ios::binary) << "not a safetensors file at all";
  const fs::path masks = write_small("masks.safetensors", true);
  std::string bytes = slurp(masks);
  // A test_mask byte of 2 (the masks are the last 6 + 6 + 6 bytes: test, train, val).
  bytes[bytes.size() - 18 + 4] = 2;
  const fs::path bad_mask = dir_ / "bad_mask.safetensors";
  std::ofstream(bad_mask, std::ios::binary) << bytes;
  for (const auto& [path, expected] : {std::pair{missing, "cannot open"}, {garbage, "header length"},
                                       {bad_mask, "test_mask: value 2 at node 4"}}) {
    const ProcessRun r = run("--dataset '" + path.string() + "' --device cpu --epochs 1");
    EXPECT_EQ(r.status, 1) << path;
    EXPECT_EQ(count_lines(r.err), 1) << r.err;
    EXPECT_THAT(r.err, AllOf(HasSubstr("gcn-train: error: " + path.string()), HasSubstr(expected)));
  }
}

}  // namespace
