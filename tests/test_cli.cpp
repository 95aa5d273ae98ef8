// gcn-train as a user runs it: exit codes, one-line errors, the JSON report.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <regex>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "gcn/backend/devices.hpp"
#include "support/process.hpp"
#include "test_util.hpp"

namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

using gcn::test::count_lines;
using gcn::test::ProcessRun;

class Cli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("gcn_cli_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  static std::string slurp(const fs::path& p) { return gcn::test::read_file(p); }

  // gcn-train with `args` (shell words) and the data root in the environment.
  static ProcessRun run(const std::string& args, bool with_data_root = true) {
    return gcn::test::run_gcn_train(args, with_data_root);
  }

  fs::path dir_;
};

TEST_F(Cli, HelpListsTheOptions) {
  const ProcessRun r = run("--help");
  EXPECT_EQ(r.status, 0);
  for (const char* opt : {"--dataset", "--data-root", "--device", "--epochs", "--lr", "--weight-decay", "--hidden",
                          "--dropout", "--seed", "--loss", "--json", "--quiet", "--log-every"}) {
    EXPECT_THAT(r.out, HasSubstr(opt));
  }
}

TEST_F(Cli, InvalidFlagsAreUsageErrorsOnOneLine) {
  for (const char* args : {"--no-such-flag", "--epochs abc", "--epochs 0", "--lr -1", "--dropout 1",
                           "--device tpu", "--device cuda:x", "--loss mse", "--hidden 0", "--log-every 0"}) {
    const ProcessRun r = run(args);
    EXPECT_EQ(r.status, 2) << args << ": " << r.err;
    EXPECT_EQ(count_lines(r.err), 1) << args << ": " << r.err;
    EXPECT_THAT(r.err, HasSubstr("gcn-train: error:")) << args;
  }
}

TEST_F(Cli, UnknownDatasetNamesTheKnownOnes) {
  const ProcessRun r = run("--dataset mnist");
  EXPECT_EQ(r.status, 2);
  EXPECT_THAT(r.err, HasSubstr("Cora"));
  EXPECT_THAT(r.err, HasSubstr("CiteSeer"));
  EXPECT_EQ(count_lines(r.err), 1);
}

TEST_F(Cli, MissingDataSaysWhereItLookedAndWhatToDo) {
  const ProcessRun r = run("--dataset cora --data-root '" + (dir_ / "nowhere").string() + "'");
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(count_lines(r.err), 1) << r.err;
  EXPECT_THAT(r.err, HasSubstr("nowhere"));
  EXPECT_THAT(r.err, HasSubstr("get_datasets.sh"));
}

TEST_F(Cli, CudaWithoutAUsableGpuFailsClearly) {
  std::string why;
  if (gcn::cuda_device_count(&why) > 0) GTEST_SKIP() << "a GPU is present; covered by the CUDA tests";
  GCN_REQUIRE_DATA();
  const ProcessRun r = run("--dataset cora --device cuda --epochs 1");
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(count_lines(r.err), 1) << r.err;
  EXPECT_THAT(r.err, HasSubstr("--device cuda"));
  EXPECT_THAT(r.err, HasSubstr("--device cpu"));
}

TEST_F(Cli, UnwritableJsonPathFailsBeforeTraining) {
  const ProcessRun r = run("--dataset cora --json '" + (dir_ / "missing-dir" / "r.json").string() + "'");
  EXPECT_EQ(r.status, 2);
  EXPECT_THAT(r.err, HasSubstr("does not exist"));
  EXPECT_THAT(r.out, ::testing::Not(HasSubstr("epoch")));
}

TEST_F(Cli, JsonReportHoldsEverythingScriptsRelyOn) {
  GCN_REQUIRE_DATA();
  const fs::path json_path = dir_ / "run.json";
  const ProcessRun r = run("--dataset cora --device cpu --epochs 12 --seed 3 --log-every 5 --json '" + json_path.string() + "'");
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
  for (const char* key : {"load_s", "train_s", "epoch_ms_median", "total_s"}) {
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
        std::string("--early-stopping -1"), std::string("--early-stopping 1001"), std::string("--recipe paper"),
        std::string("--model sage --recipe citation"), "--random-splits --checkpoint " + ck,
        std::string("--random-splits --split planetoid"),
        std::string("--checkpoint-every 5"), "--init a.safetensors --resume " + ck,
        "--runs 2 --resume " + ck}) {
    const ProcessRun r = run("--dataset cora " + args);
    EXPECT_EQ(r.status, 2) << args << ": " << r.err;
    EXPECT_EQ(count_lines(r.err), 1) << args << ": " << r.err;
  }
}

TEST_F(Cli, CorruptOrMismatchedCheckpointsFailClearly) {
  GCN_REQUIRE_DATA();
  const fs::path bad = dir_ / "bad.safetensors";
  { std::ofstream(bad) << "not a safetensors file at all"; }
  for (const char* flag : {"--init", "--resume"}) {
    const ProcessRun r = run(std::string("--dataset cora --epochs 2 ") + flag + " '" + bad.string() + "'");
    EXPECT_EQ(r.status, 1) << flag << ": " << r.err;
    EXPECT_EQ(count_lines(r.err), 1) << r.err;
    EXPECT_THAT(r.err, HasSubstr("bad.safetensors"));
  }
  // A Cora model does not fit CiteSeer.
  const fs::path model = dir_ / "cora.safetensors";
  ASSERT_EQ(run("--dataset cora --epochs 2 --save '" + model.string() + "'").status, 0);
  const ProcessRun r = run("--dataset citeseer --epochs 2 --init '" + model.string() + "'");
  EXPECT_EQ(r.status, 1) << r.err;
  EXPECT_THAT(r.err, HasSubstr("1433 features"));
  // Resuming with a different learning rate is refused.
  const fs::path ck = dir_ / "ck.safetensors";
  ASSERT_EQ(run("--dataset cora --epochs 4 --checkpoint '" + ck.string() + "' --checkpoint-every 2").status, 0);
  const ProcessRun lr = run("--dataset cora --epochs 6 --lr 0.02 --resume '" + ck.string() + "'");
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
  const ProcessRun r = run("--dataset cora --epochs 0 --init '" + model.string() + "' --json '" + evaluated.string() + "'");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("evaluated without training"));
  const nlohmann::json t = nlohmann::json::parse(slurp(trained)), e = nlohmann::json::parse(slurp(evaluated));
  for (const char* key : {"train_acc", "val_acc", "test_acc", "val_loss"}) {
    EXPECT_EQ(e["final"][key], t["selected"][key]) << key;
  }
  EXPECT_EQ(run("--dataset cora --epochs 0").status, 2);
  EXPECT_EQ(run("--dataset cora --epochs 0 --runs 2 --init '" + model.string() + "'").status, 2);
}

// --model: each model's PyG defaults in the log and the JSON, flags that do
// not apply refused, a saved GAT or 3-layer SAGE evaluates to its reported
// metrics, and a file of another model names the flag to add.
TEST_F(Cli, ModelsBringTheirDefaultsAndSaveAndInitAcrossModels) {
  GCN_REQUIRE_DATA();
  const fs::path gat = dir_ / "gat.safetensors", sage = dir_ / "sage.safetensors", j = dir_ / "gat.json";
  ProcessRun r = run("--dataset cora --model gat --epochs 3 --save '" + gat.string() + "' --json '" + j.string() + "'");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("dropout(0.6) -> GATConv(1433, 8, heads=8, dropout=0.6) -> ELU -> dropout(0.6) -> "
                               "GATConv(64, 7, dropout=0.6); Adam lr 0.005"));
  const nlohmann::json rep = nlohmann::json::parse(slurp(j));
  EXPECT_EQ(rep["config"]["model"], "gat");
  EXPECT_EQ(rep["config"]["heads"], 8);
  EXPECT_EQ(rep["config"]["hidden"], 8);
  EXPECT_EQ(rep["config"]["input_dropout"], 0.6);
  r = run("--dataset cora --epochs 0 --init '" + gat.string() + "'");
  EXPECT_EQ(r.status, 2);
  EXPECT_THAT(r.err, HasSubstr("holds a GATConv model: add --model gat"));
  r = run("--dataset cora --model gat --epochs 0 --init '" + gat.string() + "' --json '" + j.string() + "'");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(slurp(j))["final"]["test_acc"], rep["final"]["test_acc"]);

  r = run("--dataset cora --model sage --layers 3 --hidden 32,16 --epochs 3 --save '" + sage.string() + "' --json '" +
          j.string() + "'");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("SAGEConv(1433, 32) -> ReLU -> dropout(0.5) -> SAGEConv(32, 16) -> ReLU -> "
                               "dropout(0.5) -> SAGEConv(16, 7); Adam lr 0.01"));
  const nlohmann::json srep = nlohmann::json::parse(slurp(j));
  EXPECT_EQ(srep["config"]["hiddens"], nlohmann::json::array({32, 16}));
  EXPECT_EQ(srep["runs"].size(), 1u);  // per-layer widths, not a grid of two
  // --init takes the depth and widths from the file.
  r = run("--dataset cora --model sage --epochs 0 --init '" + sage.string() + "' --json '" + j.string() + "'");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(slurp(j))["final"]["test_acc"], srep["final"]["test_acc"]);
  r = run("--dataset cora --model sage --layers 2 --epochs 0 --init '" + sage.string() + "'");
  EXPECT_EQ(r.status, 2);
  EXPECT_THAT(r.err, HasSubstr("leave out --layers"));

  for (const char* bad : {"--heads 4", "--attention-dropout 0.1", "--model gin", "--layers 0", "--input-dropout 1",
                          "--layers 3 --hidden 8,8,8,8 --configs 'lr=0.1'"}) {
    r = run(std::string("--dataset cora --epochs 1 ") + bad);
    EXPECT_EQ(r.status, 2) << bad;
    EXPECT_EQ(count_lines(r.err), 1) << bad << ": " << r.err;
  }
}

// --recipe citation: benchmark/citation's script for the model and dataset
// (run.sh's arguments), its selection and early stopping; flags override it;
// --write-config repeats it.
TEST_F(Cli, RecipeCitationIsTheBenchmarkScript) {
  GCN_REQUIRE_DATA();
  const fs::path j = dir_ / "r.json", cfg = dir_ / "r.toml", j2 = dir_ / "r2.json";
  ProcessRun r = run("--dataset cora --model gat --recipe citation --epochs 3 --json '" + j.string() +
                     "' --write-config '" + cfg.string() + "'");
  ASSERT_EQ(r.status, 0) << r.err;
  const nlohmann::json c = nlohmann::json::parse(slurp(j))["config"];
  EXPECT_EQ(c["epochs"], 3);  // given
  EXPECT_EQ(c["select"], "best-val-loss");
  EXPECT_EQ(c["early_stopping"], 100);  // gat.py's --early_stopping
  EXPECT_EQ(c["lr"], 0.005);
  EXPECT_EQ(c["heads"], 8);
  r = run("--config '" + cfg.string() + "' --json '" + j2.string() + "'");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(slurp(j2))["config"], c);
  EXPECT_EQ(nlohmann::json::parse(slurp(j2))["runs"][0]["history"], nlohmann::json::parse(slurp(j))["runs"][0]["history"]);
  r = run("--dataset cora --recipe citation --early-stopping 0 --select best-val --epochs 2 --json '" + j.string() + "'");
  ASSERT_EQ(r.status, 0) << r.err;
  const nlohmann::json c2 = nlohmann::json::parse(slurp(j))["config"];
  EXPECT_EQ(c2["early_stopping"], 0);
  EXPECT_EQ(c2["select"], "best-val");
  r = run("--dataset cora --model sage --recipe citation");
  EXPECT_EQ(r.status, 2);
  EXPECT_THAT(r.err, HasSubstr("no script for --model sage"));
}

// --random-splits: run r trains on --split random with --split-seed + r,
// the same bits as that run on its own.
TEST_F(Cli, RandomSplitsGiveEachRunItsOwnSplit) {
  GCN_REQUIRE_DATA();
  const fs::path j = dir_ / "r.json", one = dir_ / "one.json";
  ProcessRun r = run("--dataset cora --epochs 5 --random-splits --runs 2 --seed 5 --split-seed 10 --lr 0.01,0.02 "
                     "--json '" + j.string() + "'");
  ASSERT_EQ(r.status, 0) << r.err;
  const nlohmann::json runs = nlohmann::json::parse(slurp(j))["runs"];
  ASSERT_EQ(runs.size(), 4u);
  EXPECT_NE(runs[0]["history"], runs[1]["history"]);
  r = run("--dataset cora --epochs 5 --split random --split-seed 11 --seed 6 --lr 0.02 --json '" + one.string() + "'");
  ASSERT_EQ(r.status, 0) << r.err;
  const nlohmann::json alone = nlohmann::json::parse(slurp(one))["runs"][0];
  EXPECT_EQ(runs[3]["seed"], 6);
  EXPECT_EQ(runs[3]["history"], alone["history"]);
}

// --predictions: one row per node; probabilities sum to 1; pred is their
// argmax; the test rows' accuracy is the reported one.
TEST_F(Cli, PredictionsCsvAgreesWithTheReport) {
  GCN_REQUIRE_DATA();
  const fs::path csv = dir_ / "pred.csv", json_path = dir_ / "r.json";
  const ProcessRun r = run("--dataset cora --epochs 30 --select best-val --predictions '" + csv.string() + "' --json '" +
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
  const ProcessRun r = run("--dataset cora --epochs 20 --runs 3 --seed 5 --quiet --json '" + json_path.string() + "'");
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

// A grid: every configuration x seed in the JSON, trained as batches (spread
// over CPU threads), each model the bits of the same model trained one at a
// time (--batch 1); a table per configuration, best validation first.
TEST_F(Cli, GridTrainsEveryModelAsItsSingleRunWithATable) {
  GCN_REQUIRE_DATA();
  const std::string grid = "--dataset cora --device cpu --epochs 15 --lr 0.01,0.05 --dropout 0.5,0 --runs 2 --seed 3 "
                           "--select best-val --patience 5 --quiet";
  const fs::path batched = dir_ / "batched.json", one = dir_ / "one.json", table = dir_ / "table.md",
                 csv = dir_ / "table.csv";
  const ProcessRun r = run(grid + " --batch 3 --threads 2 --json '" + batched.string() + "' --table '" + table.string() +
                       "'");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("8 models trained in"));
  EXPECT_THAT(r.out, HasSubstr("4 configurations x 2 seeds"));
  ASSERT_EQ(run(grid + " --batch 1 --json '" + one.string() + "' --table '" + csv.string() + "'").status, 0);
  const nlohmann::json jb = nlohmann::json::parse(slurp(batched)), j1 = nlohmann::json::parse(slurp(one));
  ASSERT_EQ(jb["runs"].size(), 8u);
  ASSERT_EQ(j1["runs"].size(), 8u);
  EXPECT_EQ(jb["batches"].size(), 1u);
  EXPECT_EQ(jb["batches"][0]["batch"], 3);
  EXPECT_EQ(jb["batches"][0]["batches"], 3);
  for (std::size_t i = 0; i < 8; ++i) {
    EXPECT_EQ(jb["runs"][i]["config"], j1["runs"][i]["config"]) << i;
    EXPECT_EQ(jb["runs"][i]["history"], j1["runs"][i]["history"]) << "model " << i << " differs from its single run";
    EXPECT_EQ(jb["runs"][i]["selected"], j1["runs"][i]["selected"]) << i;
  }
  // Grid order: lr-major, then dropout; seeds 3, 4 for each.
  EXPECT_EQ(jb["runs"][0]["config"]["lr"], 0.01);
  EXPECT_EQ(jb["runs"][2]["config"]["dropout"], 0.0);
  EXPECT_EQ(jb["runs"][3]["seed"], 4);
  // Per configuration: mean and CI over its two seeds, sorted by mean val acc.
  const nlohmann::json& confs = jb["configurations"];
  ASSERT_EQ(confs.size(), 4u);
  for (std::size_t c = 0; c < 4; ++c) {
    double sum = 0;
    int seen = 0;
    for (const auto& run : jb["runs"]) {
      if (run["config"]["lr"] == confs[c]["lr"] && run["config"]["dropout"] == confs[c]["dropout"]) {
        sum += run["selected"]["val_acc"].get<double>();
        ++seen;
      }
    }
    EXPECT_EQ(seen, 2);
    EXPECT_NEAR(confs[c]["val_acc"]["mean"].get<double>(), sum / 2, 1e-12);
    if (c > 0) EXPECT_GE(confs[c - 1]["val_acc"]["mean"].get<double>(), confs[c]["val_acc"]["mean"].get<double>());
  }
  const std::string md = slurp(table);
  EXPECT_EQ(count_lines(md), 6) << md;  // header, rule, four rows
  EXPECT_THAT(md, HasSubstr("| 1 | 16 |"));
  const std::string c = slurp(csv);
  EXPECT_EQ(count_lines(c), 5) << c;
  EXPECT_THAT(c, HasSubstr("rank,hidden,lr,weight_decay,dropout,seeds,val_acc_mean"));
}

// --configs lists configurations itself (a random sweep's): the same models
// as the grid that holds them.
TEST_F(Cli, ConfigsListTrainsTheSameModelsAsTheGrid) {
  GCN_REQUIRE_DATA();
  const fs::path a = dir_ / "a.json", b = dir_ / "b.json";
  ASSERT_EQ(run("--dataset cora --device cpu --epochs 8 --quiet --configs 'lr=0.02,dropout=0;lr=0.01' --json '" + a.string() + "'")
                .status,
            0);
  ASSERT_EQ(run("--dataset cora --device cpu --epochs 8 --quiet --lr 0.01,0.02 --dropout 0.5,0 --json '" + b.string() + "'").status,
            0);
  const nlohmann::json ja = nlohmann::json::parse(slurp(a)), jb = nlohmann::json::parse(slurp(b));
  ASSERT_EQ(ja["runs"].size(), 2u);
  EXPECT_EQ(ja["runs"][0]["config"]["lr"], 0.02);
  EXPECT_EQ(ja["runs"][0]["history"], jb["runs"][3]["history"]);  // lr 0.02, dropout 0
  EXPECT_EQ(ja["runs"][1]["history"], jb["runs"][0]["history"]);  // lr 0.01, dropout 0.5
  const ProcessRun bad = run("--dataset cora --epochs 2 --configs 'lr=0.01' --lr 0.01,0.02");
  EXPECT_EQ(bad.status, 2);
  EXPECT_THAT(bad.err, HasSubstr("--configs lists the configurations itself"));
  const ProcessRun range = run("--dataset cora --epochs 2 --configs 'lr=0.01;dropout=2'");
  EXPECT_EQ(range.status, 2);
  EXPECT_THAT(range.err, HasSubstr("--configs: configuration 2: --dropout: 2 is not in [0, 1)"));
}

TEST_F(Cli, BatchOptionsAreCheckedUpFront) {
  GCN_REQUIRE_DATA();
  const std::pair<const char*, const char*> cases[] = {
      {"--lr 0.01,0.01", "--lr: 0.01 is listed twice"},
      {"--lr 0.01,-1", "--lr: -1 is not a positive number"},
      {"--dropout 0.5,1", "--dropout: 1 is not in [0, 1)"},
      {"--batch -1", "--batch: -1 is negative"},
      {"--runs 2 --table t.txt", "neither .md (Markdown) nor .csv"},
      {"--runs 2 --predictions p.csv", "add --batch 1"},
      {"--lr 0.01,0.02 --checkpoint c --checkpoint-every 5", "add --batch 1"},
      {"--lr 0.01,0.02 --resume nothing.safetensors", "--resume continues one run"},
  };
  for (const auto& [args, message] : cases) {
    const ProcessRun r = run(std::string("--dataset cora --epochs 2 ") + args);
    EXPECT_EQ(r.status, 2) << args << ": " << r.err;
    EXPECT_EQ(count_lines(r.err), 1) << args << ": " << r.err;
    EXPECT_THAT(r.err, HasSubstr(message)) << args;
  }
  // With --batch 1 the first model's predictions are written, as before.
  const fs::path pred = dir_ / "p.csv";
  ASSERT_EQ(run("--dataset cora --device cpu --epochs 2 --runs 2 --batch 1 --quiet --predictions '" + pred.string() + "'").status, 0);
  EXPECT_TRUE(fs::exists(pred));
}

// --save-dir: one file per model, named by its configuration and seed,
// holding the selected epoch's weights (the same as --save of that model).
TEST_F(Cli, SaveDirWritesEveryModel) {
  GCN_REQUIRE_DATA();
  const fs::path out = dir_ / "models" / "nested";
  const fs::path single = dir_ / "single.safetensors";
  ASSERT_EQ(run("--dataset cora --device cpu --epochs 5 --lr 0.01,0.02 --runs 2 --quiet --save-dir '" + out.string() + "'").status,
            0);
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(out)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"hidden16_lr0.01_wd0.0005_dropout0.5_seed0.safetensors",
                                             "hidden16_lr0.01_wd0.0005_dropout0.5_seed1.safetensors",
                                             "hidden16_lr0.02_wd0.0005_dropout0.5_seed0.safetensors",
                                             "hidden16_lr0.02_wd0.0005_dropout0.5_seed1.safetensors"}));
  ASSERT_EQ(run("--dataset cora --device cpu --epochs 5 --lr 0.02 --seed 1 --quiet --save '" + single.string() + "'").status, 0);
  EXPECT_EQ(slurp(out / "hidden16_lr0.02_wd0.0005_dropout0.5_seed1.safetensors"), slurp(single));
}

// ---- issue 17: a CLI that behaves like a good one ------------------------------

TEST_F(Cli, MistypedOptionsAndValuesGetASuggestion) {
  const std::pair<const char*, const char*> cases[] = {
      {"--epoch 5", "unknown option --epoch (did you mean --epochs?)"},
      {"--dropuot 0.3", "unknown option --dropuot (did you mean --dropout?)"},
      {"--device cdua", "--device: 'cdua' is not a device (did you mean cuda?)"},
      {"--select best", "(did you mean best-val?)"},
      {"--loss nlll", "(did you mean nll?)"},
      {"--cuda-graph of", "(did you mean off?)"},
  };
  for (const auto& [args, message] : cases) {
    const ProcessRun r = run(args);
    EXPECT_EQ(r.status, 2) << args;
    EXPECT_EQ(count_lines(r.err), 1) << args << ": " << r.err;
    EXPECT_THAT(r.err, HasSubstr(message)) << args;
  }
  const ProcessRun far = run("--learning-rate-of-adam 0.1");
  EXPECT_EQ(far.status, 2);
  EXPECT_THAT(far.err, HasSubstr("unknown option --learning-rate-of-adam"));
  EXPECT_THAT(far.err, ::testing::Not(HasSubstr("did you mean")));
}

TEST_F(Cli, SeedsOutsideTheRangeAreErrorsNotWrapped) {
  for (const char* args : {"--seed -1", "--seed 9223372036854775808", "--seed 1e3", "--seed 18446744073709551615",
                           "--seed 9223372036854775807 --runs 2"}) {
    const ProcessRun r = run(std::string("--dataset cora --epochs 1 ") + args);
    EXPECT_EQ(r.status, 2) << args << ": " << r.err;
    EXPECT_THAT(r.err, HasSubstr("--seed")) << args;
  }
  GCN_REQUIRE_DATA();
  EXPECT_EQ(run("--dataset cora --epochs 1 --quiet --seed 9223372036854775807").status, 0);
}

// --checkpoint alone: the state at the end; resuming it says it is finished;
// a longer --epochs goes on, taking the dataset from the checkpoint.
TEST_F(Cli, CheckpointAloneWritesTheEndAndResumeTakesTheDataset) {
  GCN_REQUIRE_DATA();
  const fs::path ck = dir_ / "ck.safetensors", model = dir_ / "m.safetensors";
  ASSERT_EQ(run("--dataset citeseer --device cpu --epochs 4 --quiet --checkpoint '" + ck.string() + "' --save '" +
                model.string() + "'")
                .status,
            0);
  ASSERT_TRUE(fs::exists(ck));
  const ProcessRun done = run("--resume '" + ck.string() + "'");
  EXPECT_EQ(done.status, 2);
  EXPECT_THAT(done.err, HasSubstr("already finished its 4 epochs; give --epochs N above 4"));
  const ProcessRun more = run("--resume '" + ck.string() + "' --device cpu --epochs 6");
  EXPECT_EQ(more.status, 0) << more.err;
  EXPECT_THAT(more.out, HasSubstr("CiteSeer"));
  EXPECT_THAT(more.out, HasSubstr("6 epochs in"));
  const ProcessRun clash = run("--resume '" + ck.string() + "' --epochs 6 --dataset cora");
  EXPECT_EQ(clash.status, 2);
  EXPECT_THAT(clash.err, HasSubstr("was trained on --dataset citeseer, not cora"));
  const ProcessRun wrong = run("--resume '" + model.string() + "' --epochs 6");
  EXPECT_EQ(wrong.status, 2);
  EXPECT_THAT(wrong.err, HasSubstr("is a model (as --save writes it), not a training state: use --init"));
  EXPECT_EQ(count_lines(wrong.err), 1);
}

TEST_F(Cli, DataIsFoundFromAnotherFolderNextToTheBuild) {
  GCN_REQUIRE_DATA();
  if (gcn::test::data_root() != fs::path(GCN_SOURCE_DIR) / "datasets") GTEST_SKIP() << "data not in the project";
  const ProcessRun found = gcn::test::run_program(gcn::test::gcn_train_path(), "--epochs 1 --quiet", "GCN_DATA_ROOT= ", dir_);
  EXPECT_EQ(found.status, 0) << found.err;
  const ProcessRun missing = run("--epochs 1 --data-root '" + (dir_ / "none").string() + "'");
  EXPECT_EQ(missing.status, 1);
  EXPECT_THAT(missing.err, HasSubstr("get_datasets.sh"));
}

TEST_F(Cli, PatienceWithSelectLastNamesTheBestEpoch) {
  GCN_REQUIRE_DATA();
  const ProcessRun r = run("--dataset cora --device cpu --epochs 200 --patience 10 --quiet");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_THAT(r.out, ::testing::ContainsRegex("best epoch [0-9]+: val 0\\.[0-9]+ test 0\\.[0-9]+ \\(--select best-val "
                                              "reports it\\)"));
  EXPECT_THAT(run("--dataset cora --device cpu --epochs 1 --quiet").out, HasSubstr(" 1 epoch in "));
}

// SIGINT: the running epoch ends, the checkpoint and the JSON (interrupted)
// are written, exit 130; the checkpoint resumes.
TEST_F(Cli, InterruptWritesTheCheckpointAndJsonAndExits130) {
  GCN_REQUIRE_DATA();
  const fs::path ck = dir_ / "ck.safetensors", js = dir_ / "r.json";
  using gcn::test::quoted;
  // gcn-train in the background; SIGINT once it has logged epoch 100.
  const std::string script = "GCN_DATA_ROOT=" + quoted(gcn::test::data_root().string()) + " " +
                             quoted(gcn::test::gcn_train_path()) +
                             " --dataset cora --device cpu --epochs 10000000 --log-every 100 --checkpoint " +
                             quoted(ck.string()) + " --json " + quoted(js.string()) + " >out 2>err & pid=$!; " +
                             "for i in $(seq 100); do grep -qE 'epoch +100/' out 2>/dev/null && break; sleep 0.2; done; " +
                             "kill -INT $pid; wait $pid";
  const ProcessRun interrupted = gcn::test::run_program("bash", "-c " + quoted(script), "", dir_);
  EXPECT_EQ(interrupted.status, 130) << slurp(dir_ / "err");
  const nlohmann::json j = nlohmann::json::parse(slurp(js));
  EXPECT_TRUE(j["interrupted"].get<bool>());
  EXPECT_TRUE(j["runs"][0]["interrupted"].get<bool>());
  const int epochs = j["final"]["epoch"].get<int>();
  EXPECT_GE(epochs, 100);
  EXPECT_EQ(j["history"].size(), static_cast<std::size_t>(epochs));
  ASSERT_TRUE(fs::exists(ck));
  const ProcessRun resumed = run("--resume '" + ck.string() + "' --device cpu --epochs " + std::to_string(epochs + 3) + " --quiet");
  EXPECT_EQ(resumed.status, 0) << resumed.err;
  EXPECT_THAT(resumed.out, HasSubstr(std::to_string(epochs + 3) + " epochs in"));
}

TEST_F(Cli, JsonToStandardOutputAndTheRunsFiles) {
  GCN_REQUIRE_DATA();
  const ProcessRun r = run("--dataset cora --device cpu --epochs 3 --json -");
  ASSERT_EQ(r.status, 0) << r.err;
  const nlohmann::json j = nlohmann::json::parse(r.out);  // only the JSON on stdout; the log went to stderr
  EXPECT_EQ(j["history"].size(), 3u);
  EXPECT_THAT(r.err, HasSubstr("epoch"));
  EXPECT_EQ(run("--dataset cora --epochs 3 --json - --predictions -").status, 2);

  const fs::path out = dir_ / "run";
  ASSERT_EQ(run("--dataset cora --device cpu --epochs 4 --quiet --out-dir '" + out.string() + "' --embeddings '" +
                (dir_ / "emb.safetensors").string() + "'")
                .status,
            0);
  for (const char* f : {"report.json", "config.toml", "curves.csv", "model.safetensors", "predictions.csv"}) {
    EXPECT_TRUE(fs::exists(out / f)) << f;
  }
  const std::string csv = slurp(out / "curves.csv");
  EXPECT_EQ(count_lines(csv), 5);
  const nlohmann::json rep = nlohmann::json::parse(slurp(out / "report.json"));
  EXPECT_THAT(csv, HasSubstr("model,hidden,lr,weight_decay,dropout,seed,epoch,loss,val_loss,train_acc,val_acc,test_acc"));
  EXPECT_THAT(csv, HasSubstr(fmt::format("0,16,0.01,0.0005,0.5,0,4,{:.9g},", rep["final"]["loss"].get<double>())));
  // --config repeats the run from config.toml: the same history.
  const fs::path again = dir_ / "again.json";
  ASSERT_EQ(run("--config '" + (out / "config.toml").string() + "' --json '" + again.string() + "'").status, 0);
  EXPECT_EQ(nlohmann::json::parse(slurp(again))["history"], rep["history"]);
  // The embeddings: (N, hidden) float32, ReLU outputs (non-negative).
  const std::string emb = slurp(dir_ / "emb.safetensors");
  EXPECT_THAT(emb, HasSubstr("\"shape\":[2708,16]"));
  EXPECT_THAT(emb, HasSubstr("gcn-train embeddings"));
  const ProcessRun batch = run("--dataset cora --epochs 2 --runs 2 --embeddings e.st");
  EXPECT_EQ(batch.status, 2);
  EXPECT_THAT(batch.err, HasSubstr("add --batch 1"));
}

TEST_F(Cli, VersionNamesTheBuild) {
  const ProcessRun r = run("--version");
  EXPECT_EQ(r.status, 0);
  EXPECT_THAT(r.out, ::testing::ContainsRegex("gcn-train [0-9.]+ \\(CUDA: [^;]+; commit [0-9a-f]+|unknown; "));
}

// On a terminal, the epochs rewrite one line (with an ETA); elsewhere plain lines.
TEST_F(Cli, ProgressIsOneLiveLineOnATerminal) {
  GCN_REQUIRE_DATA();
  using gcn::test::quoted;
  if (gcn::test::run_program("sh", "-c 'command -v script'").status != 0) GTEST_SKIP() << "no script(1) to fake a terminal";
  const ProcessRun on_tty = gcn::test::run_program(
      "script",
      "-qec " + quoted(quoted(gcn::test::gcn_train_path()) + " --dataset cora --device cpu --epochs 30 --log-every 10") +
          " /dev/null",
      "GCN_DATA_ROOT=" + quoted(gcn::test::data_root().string()) + " ");
  ASSERT_EQ(on_tty.status, 0) << on_tty.err;
  const std::string tty = on_tty.out + on_tty.err;
  EXPECT_THAT(tty, HasSubstr("\r\033[K"));
  EXPECT_THAT(tty, HasSubstr("ETA"));
  const ProcessRun plain = run("--dataset cora --device cpu --epochs 30 --log-every 10");
  EXPECT_THAT(plain.out, ::testing::Not(HasSubstr("\r")));
  EXPECT_THAT(plain.out, HasSubstr("epoch 30/30"));
}

// Every option --help lists is in the README's usage block.
TEST_F(Cli, ReadmeUsageListsEveryOption) {
  const ProcessRun r = run("--help");
  ASSERT_EQ(r.status, 0);
  const std::string readme = slurp(fs::path(GCN_SOURCE_DIR) / "README.md");
  const auto begin = readme.find("```\ngcn-train [OPTIONS]");
  ASSERT_NE(begin, std::string::npos);
  const std::string usage = readme.substr(begin, readme.find("```", begin + 3) - begin);
  std::istringstream help(r.out);
  std::string line;
  int seen = 0;
  while (std::getline(help, line)) {
    std::smatch m;
    static const std::regex option(R"(^\s+(?:-\w,)?(--[a-z][a-z0-9-]*))");
    if (!std::regex_search(line, m, option)) continue;
    ++seen;
    EXPECT_NE(usage.find(m[1].str()), std::string::npos) << m[1] << " is in --help but not in the README's usage";
  }
  EXPECT_GE(seen, 30);
}

TEST_F(Cli, QuietPrintsOnlyTheSummary) {
  GCN_REQUIRE_DATA();
  const ProcessRun r = run("--dataset cora --device cpu --epochs 3 --quiet");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(count_lines(r.out), 1) << r.out;
  EXPECT_THAT(r.out, HasSubstr("test"));
}

}  // namespace

// ---- the CUDA backend module (libgcn_cuda.so, loaded on first use) ----------
// Its own includes here, so that these tests stay one block at the end.
#include <dlfcn.h>

#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include "gcn/backend/backend.hpp"
#include "gcn/backend/buffer.hpp"
#include "gcn/data/csr.hpp"
#include "gcn/error.hpp"

namespace {

// Whether gcn-train's loader finds an NVIDIA driver here (a cudasim build
// needs none: its module simulates the device).
bool driver_present() {
#ifdef GCN_CUDA_SIM
  return true;
#else
  void* handle = dlopen("libcuda.so.1", RTLD_LAZY | RTLD_LOCAL);
  if (handle != nullptr) dlclose(handle);
  return handle != nullptr;
#endif
}

TEST_F(Cli, MissingCudaModuleIsOneLineNamingTheFile) {
  if (!gcn::cuda_compiled()) GTEST_SKIP() << "a build without CUDA has no module";
  GCN_REQUIRE_DATA();
  const std::string missing = (dir_ / "no-such-libgcn_cuda.so").string();
  const gcn::test::ScopedEnv module("GCN_CUDA_MODULE", missing.c_str());
  const ProcessRun r = run("--dataset cora --device cuda --epochs 1");
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(count_lines(r.err), 1) << r.err;
  EXPECT_THAT(r.err, HasSubstr("gcn-train: error: --device cuda: "));
  EXPECT_THAT(r.err, HasSubstr("GCN_CUDA_MODULE=" + missing));
  EXPECT_THAT(r.err, HasSubstr("--device cpu"));
  // --device auto trains on the CPU, and says why.
  const ProcessRun a = run("--dataset cora --device auto --epochs 1");
  ASSERT_EQ(a.status, 0) << a.err;
  EXPECT_THAT(a.out, HasSubstr(missing));
  EXPECT_THAT(a.out, HasSubstr("; using the CPU\n"));
  EXPECT_THAT(a.out, HasSubstr("device: cpu"));
}

TEST_F(Cli, ACudaModuleThatIsNotOneIsRefusedOnOneLine) {
  if (!gcn::cuda_compiled()) GTEST_SKIP() << "a build without CUDA has no module";
  if (!driver_present()) GTEST_SKIP() << "no NVIDIA driver: the loader stops before any module";
  // Not a shared object at all.
  const fs::path junk = dir_ / "libgcn_cuda.so";
  std::ofstream(junk) << "not an ELF file\n";
  {
    const gcn::test::ScopedEnv module("GCN_CUDA_MODULE", junk.c_str());
    const ProcessRun r = run("--device cuda --epochs 1");
    EXPECT_EQ(r.status, 1);
    EXPECT_EQ(count_lines(r.err), 1) << r.err;
    EXPECT_THAT(r.err, HasSubstr("cannot load " + junk.string() + ": "));
  }
  // A shared library without the entry point (spdlog's, which gcn-train links).
  Dl_info info{};
  ASSERT_NE(dladdr(reinterpret_cast<void*>(&spdlog::default_logger_raw), &info), 0);
  ASSERT_NE(info.dli_fname, nullptr);
  const gcn::test::ScopedEnv module("GCN_CUDA_MODULE", info.dli_fname);
  const ProcessRun r = run("--device cuda --epochs 1");
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(count_lines(r.err), 1) << r.err;
  EXPECT_THAT(r.err, HasSubstr("is not a gcn-train CUDA module (no gcn_cuda_module_v1 in it)"));
}

TEST_F(Cli, WithoutADriverCudaFailsOnOneLineAndAutoUsesTheCpu) {
#if !defined(GCN_WITH_CUDA) || defined(GCN_CUDA_SIM)
  GTEST_SKIP() << "only a build with the real CUDA backend probes for the driver";
#else
  if (driver_present()) GTEST_SKIP() << "an NVIDIA driver is present";
  GCN_REQUIRE_DATA();
  const ProcessRun r = run("--dataset cora --device cuda --epochs 1");
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(count_lines(r.err), 1) << r.err;
  EXPECT_THAT(r.err, HasSubstr("gcn-train: error: --device cuda: "));
  EXPECT_THAT(r.err, HasSubstr("no NVIDIA driver found (libcuda.so.1 is not loadable: "));
  EXPECT_THAT(r.err, HasSubstr("; use --device cpu"));
  const ProcessRun a = run("--dataset cora --device auto --epochs 2");
  ASSERT_EQ(a.status, 0) << a.err;
  EXPECT_THAT(a.out, HasSubstr("--device auto: no NVIDIA driver found"));
  EXPECT_THAT(a.out, HasSubstr("; using the CPU\n"));
  EXPECT_THAT(a.out, HasSubstr("device: cpu"));
  EXPECT_THAT(a.out, HasSubstr("epoch 2/2"));
#endif
}

// --version and CPU runs map no CUDA library: the module is loaded on the
// first use of a CUDA device only. ld.so lists every object it loads under
// LD_DEBUG=files (into LD_DEBUG_OUTPUT.<pid>, one file per process: the shell's
// and gcn-train's).
TEST_F(Cli, VersionAndCpuRunsLoadNothingOfCuda) {
  GCN_REQUIRE_DATA();
  const fs::path logs = dir_ / "ld-debug";
  const gcn::test::ScopedEnv debug("LD_DEBUG", "files"), output("LD_DEBUG_OUTPUT", (logs / "ld").c_str());
  // Runs gcn-train with LD_DEBUG; returns what ld.so logged.
  auto loaded = [&](const std::string& args, int* status) {
    fs::remove_all(logs);
    fs::create_directories(logs);
    *status = run(args).status;
    std::string all;
    for (const auto& entry : fs::directory_iterator(logs)) all += slurp(entry.path());
    return all;
  };
  std::vector<std::string> runs = {"--version", "--dataset cora --device cpu --epochs 1"};
#if defined(GCN_WITH_CUDA) && !defined(GCN_CUDA_SIM)
  if (!driver_present()) runs.emplace_back("--dataset cora --device auto --epochs 1");
#endif
  for (const std::string& args : runs) {
    int status = -1;
    const std::string log = loaded(args, &status);
    EXPECT_EQ(status, 0) << args;
    EXPECT_THAT(log, HasSubstr("gcn-train")) << args << ": LD_DEBUG logged nothing";
    for (const char* lib : {"libgcn_cuda", "libcublas", "libcusparse", "libcudart", "libcudasim", "libnvJitLink"}) {
      EXPECT_THAT(log, ::testing::Not(HasSubstr(lib))) << args;
    }
  }
  // The check sees the module when it is loaded: --device cuda loads it
  // wherever there is a driver to load it for (the run itself may then fail
  // for want of a GPU).
  if (gcn::cuda_compiled() && driver_present()) {
    int status = -1;
    EXPECT_THAT(loaded("--dataset cora --device cuda --epochs 1", &status), HasSubstr("libgcn_cuda.so")) << status;
  }
}

// In-process, where a device is usable (cudasim, or a GPU): the module's
// exceptions are caught by type here, and its log lines go through the
// logger this process set up (spdlog is a shared library both use).
class CudaModule : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    devices_ = gcn::cuda_device_count(&why);
    if (devices_ == 0) {
      if (gcn::test::require_gpu()) FAIL() << "GCN_REQUIRE_GPU=1 but there is no usable CUDA GPU: " << why;
      GTEST_SKIP() << "no usable CUDA GPU: " << why;
    }
  }
  int devices_ = 0;
};

TEST_F(CudaModule, ItsExceptionsAreCaughtByType) {
  EXPECT_THROW(gcn::make_cuda_backend(devices_), gcn::DeviceError);
  try {
    gcn::make_cuda_backend(-1);
    ADD_FAILURE() << "make_cuda_backend(-1) did not throw";
  } catch (const gcn::Error& e) {  // through its base class too
    EXPECT_NE(dynamic_cast<const gcn::DeviceError*>(&e), nullptr) << e.what();
  }
  {
    const gcn::test::ScopedEnv bad("GCN_SPMM_ALG", "alg9");
    EXPECT_THROW(gcn::make_cuda_backend(0), gcn::UsageError);
  }
  const std::unique_ptr<gcn::Backend> be = gcn::make_cuda_backend(0);
  try {
    be->allocate(std::size_t{1} << 56);
    ADD_FAILURE() << "a 64 PiB allocation succeeded";
  } catch (const gcn::DeviceError& e) {
    EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << e.what();
  }
  gcn::CsrMatrix bad;
  bad.n_rows = 2;
  bad.n_cols = 2;
  bad.indptr = {0, 1, 5};
  bad.indices = {0};
  bad.values = {1.0f};
  EXPECT_THROW(be->upload_csr(bad), gcn::DataError);
  // The backend works on after each of them.
  gcn::Buffer<float> ok(*be, std::vector<float>{1, 2, 3});
  EXPECT_EQ(ok.to_host(), (std::vector<float>{1, 2, 3}));
}

TEST_F(CudaModule, LogsThroughTheProcesssLogger) {
#ifndef GCN_CUDA_SIM
  GTEST_SKIP() << "cudasim makes cuSPARSE refuse a product (CUDASIM_SPMM_NOT_SUPPORTED); a GPU does not on demand";
#else
  std::ostringstream captured;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(captured);
  auto logger = std::make_shared<spdlog::logger>("cuda-module-test", sink);
  logger->set_pattern("%l: %v");
  logger->set_level(spdlog::level::trace);
  const std::shared_ptr<spdlog::logger> previous = spdlog::default_logger();
  spdlog::set_default_logger(logger);
  {
    // cuSPARSE refuses the product: the backend warns and uses its own kernel.
    const gcn::test::ScopedEnv refuse("CUDASIM_SPMM_NOT_SUPPORTED", "1");
    const std::unique_ptr<gcn::Backend> be = gcn::make_cuda_backend(0);
    gcn::CsrMatrix a;
    a.n_rows = 2;
    a.n_cols = 3;
    a.indptr = {0, 2, 3};
    a.indices = {0, 2, 1};
    a.values = {1.0f, 2.0f, 3.0f};
    const auto sparse = be->upload_csr(a);
    gcn::Buffer<float> b(*be, std::vector<float>{1, 2, 3, 4, 5, 6}), c(*be, 4);
    be->spmm(*sparse, {b.data(), 3, 2}, {c.data(), 2, 2});
    EXPECT_EQ(c.to_host(), (std::vector<float>{11, 14, 9, 12}));
  }
  spdlog::set_default_logger(previous);
  EXPECT_THAT(captured.str(), HasSubstr("warning: cuSPARSE SpMM")) << captured.str();
#endif
}

}  // namespace
