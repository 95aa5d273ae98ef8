// gcn-train as a user runs it: exit codes, one-line errors, the JSON report.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "gcn/devices.hpp"
#include "test_util.hpp"

namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

struct CliRun {
  int status = -1;
  std::string out, err;
};

class Cli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("gcn_cli_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  static std::string slurp(const fs::path& p) {
    std::ifstream in(p);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

  // Runs gcn-train with `args` (shell words) and the data root in the environment.
  CliRun run(const std::string& args, bool with_data_root = true) {
    const std::string env =
        with_data_root ? "GCN_DATA_ROOT='" + gcn::test::data_root().string() + "' " : "GCN_DATA_ROOT= ";
    const std::string cmd = env + "'" GCN_BINARY_DIR "/src/gcn-train' " + args + " >'" + (dir_ / "out").string() +
                            "' 2>'" + (dir_ / "err").string() + "' </dev/null";
    CliRun r;
    const int raw = std::system(cmd.c_str());
    r.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
    r.out = slurp(dir_ / "out");
    r.err = slurp(dir_ / "err");
    return r;
  }

  static int lines(const std::string& s) { return static_cast<int>(std::count(s.begin(), s.end(), '\n')); }

  fs::path dir_;
};

TEST_F(Cli, HelpListsTheOptions) {
  const CliRun r = run("--help");
  EXPECT_EQ(r.status, 0);
  for (const char* opt : {"--dataset", "--data-root", "--device", "--epochs", "--lr", "--weight-decay", "--hidden",
                          "--dropout", "--seed", "--loss", "--json", "--quiet", "--log-every"}) {
    EXPECT_THAT(r.out, HasSubstr(opt));
  }
}

TEST_F(Cli, InvalidFlagsAreUsageErrorsOnOneLine) {
  for (const char* args : {"--no-such-flag", "--epochs abc", "--epochs 0", "--lr -1", "--dropout 1",
                           "--device tpu", "--device cuda:x", "--loss mse", "--hidden 0", "--log-every 0"}) {
    const CliRun r = run(args);
    EXPECT_EQ(r.status, 2) << args << ": " << r.err;
    EXPECT_EQ(lines(r.err), 1) << args << ": " << r.err;
    EXPECT_THAT(r.err, HasSubstr("gcn-train: error:")) << args;
  }
}

TEST_F(Cli, UnknownDatasetNamesTheKnownOnes) {
  const CliRun r = run("--dataset mnist");
  EXPECT_EQ(r.status, 2);
  EXPECT_THAT(r.err, HasSubstr("Cora"));
  EXPECT_THAT(r.err, HasSubstr("CiteSeer"));
  EXPECT_EQ(lines(r.err), 1);
}

TEST_F(Cli, MissingDataSaysWhereItLookedAndWhatToDo) {
  const CliRun r = run("--dataset cora --data-root '" + (dir_ / "nowhere").string() + "'");
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(lines(r.err), 1) << r.err;
  EXPECT_THAT(r.err, HasSubstr("nowhere"));
  EXPECT_THAT(r.err, HasSubstr("get_datasets.sh"));
}

TEST_F(Cli, CudaWithoutAUsableGpuFailsClearly) {
  std::string why;
  if (gcn::cuda_device_count(&why) > 0) GTEST_SKIP() << "a GPU is present; covered by the CUDA tests";
  GCN_REQUIRE_DATA();
  const CliRun r = run("--dataset cora --device cuda --epochs 1");
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(lines(r.err), 1) << r.err;
  EXPECT_THAT(r.err, HasSubstr("--device cuda"));
  EXPECT_THAT(r.err, HasSubstr("--device cpu"));
}

TEST_F(Cli, UnwritableJsonPathFailsBeforeTraining) {
  const CliRun r = run("--dataset cora --json '" + (dir_ / "missing-dir" / "r.json").string() + "'");
  EXPECT_EQ(r.status, 2);
  EXPECT_THAT(r.err, HasSubstr("does not exist"));
  EXPECT_THAT(r.out, ::testing::Not(HasSubstr("epoch")));
}

TEST_F(Cli, JsonReportHoldsEverythingScriptsRelyOn) {
  GCN_REQUIRE_DATA();
  const fs::path json_path = dir_ / "run.json";
  const CliRun r = run("--dataset cora --device cpu --epochs 12 --seed 3 --log-every 5 --json '" + json_path.string() + "'");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("2708 nodes, 10556 edges, 1433 features, 7 classes, 140/500/1000"));
  EXPECT_THAT(r.out, HasSubstr("epoch  5/12"));
  EXPECT_THAT(r.out, HasSubstr("epoch 12/12"));
  const nlohmann::json j = nlohmann::json::parse(slurp(json_path));
  EXPECT_EQ(j["dataset"]["name"], "Cora");
  EXPECT_EQ(j["dataset"]["num_nodes"], 2708);
  EXPECT_EQ(j["dataset"]["num_edges"], 10556);
  EXPECT_EQ(j["dataset"]["num_features"], 1433);
  EXPECT_EQ(j["dataset"]["num_classes"], 7);
  EXPECT_EQ(j["dataset"]["num_train"], 140);
  EXPECT_EQ(j["dataset"]["num_val"], 500);
  EXPECT_EQ(j["dataset"]["num_test"], 1000);
  for (const char* key : {"dataset", "data_root", "device", "epochs", "lr", "weight_decay", "hidden", "dropout",
                          "seed", "loss", "log_every"}) {
    EXPECT_TRUE(j["config"].contains(key)) << key;
  }
  EXPECT_EQ(j["config"]["epochs"], 12);
  EXPECT_EQ(j["config"]["seed"], 3);
  EXPECT_THAT(j["device"].get<std::string>(), HasSubstr("cpu"));
  ASSERT_EQ(j["history"].size(), 12u);
  for (int i = 0; i < 12; ++i) {
    const auto& h = j["history"][i];
    EXPECT_EQ(h["epoch"], i + 1);
    for (const char* key : {"loss", "train_acc", "val_acc", "test_acc"}) EXPECT_TRUE(h[key].is_number()) << key;
  }
  EXPECT_EQ(j["final"]["test_acc"], j["history"][11]["test_acc"]);
  EXPECT_EQ(j["final"]["loss"], j["history"][11]["loss"]);
  for (const char* key : {"peak_host_mb", "peak_device_mb"}) EXPECT_GT(j["memory"][key].get<double>(), 0.0) << key;
  for (const char* key : {"load_s", "train_s", "epoch_ms_median", "train_step_ms_median", "total_s"}) {
    EXPECT_TRUE(j["timing"][key].is_number()) << key;
    EXPECT_GE(j["timing"][key].get<double>(), 0.0) << key;
  }
  // No temporary file left beside the report.
  int files = 0;
  for (const auto& e : fs::directory_iterator(dir_)) files += e.path().filename().string().rfind(".run.json", 0) == 0;
  EXPECT_EQ(files, 0);
}

TEST_F(Cli, ExperimentFlagErrorsAreUsageErrors) {
  const std::string ck = (dir_ / "ck.safetensors").string();
  for (const std::string& args :
       {std::string("--runs 0"), std::string("--select worst"), std::string("--patience -2"),
        std::string("--checkpoint-every 5"), "--init a.safetensors --resume " + ck,
        "--runs 2 --resume " + ck}) {
    const CliRun r = run("--dataset cora " + args);
    EXPECT_EQ(r.status, 2) << args << ": " << r.err;
    EXPECT_EQ(lines(r.err), 1) << args << ": " << r.err;
  }
}

TEST_F(Cli, CorruptOrMismatchedCheckpointsFailClearly) {
  GCN_REQUIRE_DATA();
  const fs::path bad = dir_ / "bad.safetensors";
  { std::ofstream(bad) << "not a safetensors file at all"; }
  for (const char* flag : {"--init", "--resume"}) {
    const CliRun r = run(std::string("--dataset cora --epochs 2 ") + flag + " '" + bad.string() + "'");
    EXPECT_EQ(r.status, 1) << flag << ": " << r.err;
    EXPECT_EQ(lines(r.err), 1) << r.err;
    EXPECT_THAT(r.err, HasSubstr("bad.safetensors"));
  }
  // A Cora model does not fit CiteSeer.
  const fs::path model = dir_ / "cora.safetensors";
  ASSERT_EQ(run("--dataset cora --epochs 2 --save '" + model.string() + "'").status, 0);
  const CliRun r = run("--dataset citeseer --epochs 2 --init '" + model.string() + "'");
  EXPECT_EQ(r.status, 1) << r.err;
  EXPECT_THAT(r.err, HasSubstr("1433 features"));
  // Resuming with a different learning rate is refused.
  const fs::path ck = dir_ / "ck.safetensors";
  ASSERT_EQ(run("--dataset cora --epochs 4 --checkpoint '" + ck.string() + "' --checkpoint-every 2").status, 0);
  const CliRun lr = run("--dataset cora --epochs 6 --lr 0.02 --resume '" + ck.string() + "'");
  EXPECT_EQ(lr.status, 2) << lr.err;
  EXPECT_THAT(lr.err, HasSubstr("--lr"));
}

// --save, then --epochs 0 --init: the saved model evaluates to the metrics the
// training run reported for it (what a PyG user does with a PyG model too).
TEST_F(Cli, SavedModelEvaluatesToItsReportedMetrics) {
  GCN_REQUIRE_DATA();
  const fs::path model = dir_ / "m.safetensors", trained = dir_ / "t.json", evaluated = dir_ / "e.json";
  ASSERT_EQ(run("--dataset cora --epochs 40 --select best-val --save '" + model.string() + "' --json '" +
                trained.string() + "'")
                .status,
            0);
  const CliRun r = run("--dataset cora --epochs 0 --init '" + model.string() + "' --json '" + evaluated.string() + "'");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("evaluated without training"));
  const nlohmann::json t = nlohmann::json::parse(slurp(trained)), e = nlohmann::json::parse(slurp(evaluated));
  for (const char* key : {"train_acc", "val_acc", "test_acc", "val_loss"}) {
    EXPECT_EQ(e["final"][key], t["selected"][key]) << key;
  }
  EXPECT_EQ(run("--dataset cora --epochs 0").status, 2);
  EXPECT_EQ(run("--dataset cora --epochs 0 --runs 2 --init '" + model.string() + "'").status, 2);
}

// --predictions: one row per node; probabilities sum to 1; pred is their
// argmax; the test rows' accuracy is the reported one.
TEST_F(Cli, PredictionsCsvAgreesWithTheReport) {
  GCN_REQUIRE_DATA();
  const fs::path csv = dir_ / "pred.csv", json_path = dir_ / "r.json";
  const CliRun r = run("--dataset cora --epochs 30 --select best-val --predictions '" + csv.string() + "' --json '" +
                       json_path.string() + "'");
  ASSERT_EQ(r.status, 0) << r.err;
  std::ifstream in(csv);
  std::string line;
  std::getline(in, line);
  EXPECT_EQ(line, "node,split,label,pred,p0,p1,p2,p3,p4,p5,p6");
  int rows = 0, test_rows = 0, test_correct = 0;
  while (std::getline(in, line)) {
    std::stringstream ss(line);
    std::string field;
    std::vector<std::string> f;
    while (std::getline(ss, field, ',')) f.push_back(field);
    ASSERT_EQ(f.size(), 11u) << line;
    EXPECT_EQ(std::stoi(f[0]), rows);
    double sum = 0, best = -1;
    int arg = -1;
    for (int k = 0; k < 7; ++k) {
      const double p = std::stod(f[4 + k]);
      sum += p;
      if (p > best) {
        best = p;
        arg = k;
      }
    }
    EXPECT_NEAR(sum, 1.0, 1e-4) << line;
    EXPECT_EQ(arg, std::stoi(f[3])) << line;
    if (f[1] == "test") {
      ++test_rows;
      test_correct += f[2] == f[3];
    }
    ++rows;
  }
  EXPECT_EQ(rows, 2708);
  EXPECT_EQ(test_rows, 1000);
  const nlohmann::json j = nlohmann::json::parse(slurp(json_path));
  EXPECT_NEAR(j["selected"]["test_acc"].get<double>(), test_correct / 1000.0, 1e-12);
  EXPECT_EQ(j["selected"]["epoch"], j["best_epoch"]);
}

// --runs: every run in the report and a summary over them.
TEST_F(Cli, RunsReportEveryRunAndASummary) {
  GCN_REQUIRE_DATA();
  const fs::path json_path = dir_ / "runs.json";
  const CliRun r = run("--dataset cora --epochs 20 --runs 3 --seed 5 --quiet --json '" + json_path.string() + "'");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("3 runs (seeds 5..7)"));
  EXPECT_THAT(r.out, HasSubstr("95% CI"));
  const nlohmann::json j = nlohmann::json::parse(slurp(json_path));
  ASSERT_EQ(j["runs"].size(), 3u);
  double sum = 0;
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(j["runs"][i]["seed"], 5 + i);
    EXPECT_EQ(j["runs"][i]["history"].size(), 20u);
    sum += j["runs"][i]["selected"]["test_acc"].get<double>();
  }
  EXPECT_NEAR(j["summary"]["test_acc"]["mean"].get<double>(), sum / 3, 1e-12);
  EXPECT_EQ(j["summary"]["runs"], 3);
}

TEST_F(Cli, QuietPrintsOnlyTheSummary) {
  GCN_REQUIRE_DATA();
  const CliRun r = run("--dataset cora --device cpu --epochs 3 --quiet");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(lines(r.out), 1) << r.out;
  EXPECT_THAT(r.out, HasSubstr("test"));
}

}  // namespace
