// Every model through every feature that takes a model, as a user runs
// gcn-train: checkpoint -> resume (the same bits as the uninterrupted run),
// --save -> --init, --embeddings, --predictions, the --write-config /
// --config round trip, a batch of mixed configurations against the same
// models one at a time, and (on cudasim or a GPU) CUDA against the CPU. One
// table of models: a model added to the registry is added here, with a
// deeper variant.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "gcn/train/checkpoint.hpp"
#include "gcn/backend/devices.hpp"
#include "support/process.hpp"
#include "test_util.hpp"

namespace {

namespace fs = std::filesystem;
using gcn::test::quoted;
using ::testing::HasSubstr;

struct ModelCase {
  const char* name;  // the test's suffix
  const char* args;  // the model's flags
  bool one_layer = false;  // no hidden layer (--embeddings is refused)
};

// Every registered model, and a deeper or wider variant of each.
const ModelCase kModels[] = {
    {"gcn", "--model gcn"},
    {"gcn_3layers", "--model gcn --layers 3 --hidden 12,8"},
    {"sage", "--model sage"},
    {"sage_3layers", "--model sage --layers 3"},
    {"gat", "--model gat"},
    {"gat_3layers", "--model gat --layers 3 --heads 2 --hidden 4"},
    {"sgc", "--model sgc", true},
    {"sgc_K3", "--model sgc --K 3", true},
    {"cheb", "--model cheb"},
    {"cheb_3layers", "--model cheb --layers 3 --K 2 --hidden 12,8"},
    {"appnp", "--model appnp"},
    {"appnp_3layers", "--model appnp --layers 3 --hidden 12,8 --K 4 --alpha 0.2"},
    {"arma", "--model arma"},
    {"arma_3layers", "--model arma --layers 3 --hidden 12,8 --stacks 3 --skip-dropout 0.5"},
};

void PrintTo(const ModelCase& c, std::ostream* os) { *os << c.args; }

class EveryModel : public ::testing::TestWithParam<ModelCase> {
 protected:
  void SetUp() override {
    GCN_DATA_ROOT_OR_SKIP(root);
    (void)root;
  }

  std::string path(const std::string& name) const { return quoted((dir_.path() / name).string()); }

  // gcn-train on Cora with the model's flags, `args` and --json into `json`
  // (a file name in the test's folder); the report, after checking the exit.
  nlohmann::json train(const std::string& args, const std::string& json, const std::string& device = "cpu") {
    const gcn::test::ProcessRun r = gcn::test::run_gcn_train(std::string("--dataset cora --quiet --device ") + device +
                                                             " " + GetParam().args + " " + args + " --json " +
                                                             path(json));
    EXPECT_EQ(r.status, 0) << GetParam().args << " " << args << ": " << r.err;
    if (r.status != 0) return nlohmann::json::object();
    return nlohmann::json::parse(gcn::test::read_file(dir_.path() / json));
  }

  static const nlohmann::json& history(const nlohmann::json& report, std::size_t run = 0) {
    return report.at("runs").at(run).at("history");
  }

  gcn::test::TempDir dir_;
};

// A run cut by a checkpoint and resumed is the uninterrupted run, bit for
// bit (dropout masks, Adam's state and the history all carry over).
TEST_P(EveryModel, CheckpointThenResumeIsTheUninterruptedRun) {
  const nlohmann::json whole = train("--epochs 6", "whole.json");
  train("--epochs 3 --checkpoint " + path("state.st"), "first.json");
  ASSERT_TRUE(fs::exists(dir_.path() / "state.st"));
  const gcn::test::ProcessRun r = gcn::test::run_gcn_train("--quiet --device cpu --epochs 6 --resume " +
                                                           path("state.st") + " --json " + path("resumed.json"));
  ASSERT_EQ(r.status, 0) << r.err;
  const nlohmann::json resumed = nlohmann::json::parse(gcn::test::read_file(dir_.path() / "resumed.json"));
  ASSERT_FALSE(whole.empty());
  EXPECT_EQ(history(resumed), history(whole));
  EXPECT_EQ(resumed.at("runs").at(0).at("selected"), whole.at("runs").at(0).at("selected"));
}

// --save writes what --init reads: evaluating the saved model gives the
// accuracies and validation loss of the epoch it was saved at.
TEST_P(EveryModel, SaveThenInitEvaluatesTheSameModel) {
  const nlohmann::json trained = train("--epochs 5 --save " + path("model.st"), "trained.json");
  const nlohmann::json evaluated = train("--epochs 0 --init " + path("model.st"), "evaluated.json");
  ASSERT_FALSE(trained.empty());
  ASSERT_FALSE(evaluated.empty());
  const nlohmann::json& saved = history(trained).back();
  const nlohmann::json& again = history(evaluated).at(0);
  for (const char* key : {"train_acc", "val_acc", "test_acc", "val_loss"}) {
    EXPECT_EQ(again.at(key), saved.at(key)) << key;
  }
}

// --init continues from a saved model and takes its architecture from the
// file: --layers, --hidden and --heads need not be repeated.
TEST_P(EveryModel, InitTakesTheArchitectureFromTheFile) {
  train("--epochs 2 --save " + path("model.st"), "trained.json");
  const gcn::SafetensorsFile saved = gcn::read_safetensors(dir_.path() / "model.st");
  std::string model_flag = GetParam().args;
  model_flag = model_flag.substr(0, model_flag.find(' ', std::string("--model ").size()));
  const gcn::test::ProcessRun r = gcn::test::run_gcn_train("--dataset cora --quiet --device cpu " + model_flag +
                                                           " --epochs 2 --init " + path("model.st") + " --save " +
                                                           path("again.st"));
  ASSERT_EQ(r.status, 0) << r.err;
  const gcn::SafetensorsFile again = gcn::read_safetensors(dir_.path() / "again.st");
  ASSERT_EQ(again.tensors.size(), saved.tensors.size());
  for (std::size_t i = 0; i < saved.tensors.size(); ++i) {
    EXPECT_EQ(again.tensors[i].name, saved.tensors[i].name);
    EXPECT_EQ(again.tensors[i].shape, saved.tensors[i].shape);
  }
}

// --predictions: one row per node, and the predicted classes give the
// accuracies the report gives.
TEST_P(EveryModel, PredictionsAgreeWithTheReport) {
  const nlohmann::json report = train("--epochs 4 --predictions " + path("pred.csv"), "report.json");
  ASSERT_FALSE(report.empty());
  std::istringstream csv(gcn::test::read_file(dir_.path() / "pred.csv"));
  std::string line;
  std::getline(csv, line);
  EXPECT_THAT(line, ::testing::StartsWith("node,split,label,pred,p0"));
  int rows = 0, test = 0, correct = 0;
  while (std::getline(csv, line)) {
    ++rows;
    std::vector<std::string> f;
    std::stringstream ss(line);
    for (std::string cell; std::getline(ss, cell, ',');) f.push_back(cell);
    ASSERT_GE(f.size(), 5u) << line;
    if (f[1].find("test") != std::string::npos) {
      ++test;
      correct += f[2] == f[3];
    }
  }
  EXPECT_EQ(rows, 2708);
  ASSERT_EQ(test, 1000);
  EXPECT_DOUBLE_EQ(correct / 1000.0, history(report).back().at("test_acc").get<double>());
}

// --embeddings: the last hidden layer of the selected epoch, (N, its
// width); the same values when that model is saved and evaluated again.
TEST_P(EveryModel, EmbeddingsAreTheSavedModelsHiddenLayer) {
  if (GetParam().one_layer) {  // nothing to write: one line saying so
    const gcn::test::ProcessRun r = gcn::test::run_gcn_train("--dataset cora --quiet --device cpu " +
                                                             std::string(GetParam().args) + " --epochs 1 --embeddings " +
                                                             path("trained.emb"));
    EXPECT_NE(r.status, 0);
    EXPECT_THAT(r.err, HasSubstr("no hidden layer")) << r.err;
    return;
  }
  train("--epochs 3 --save " + path("model.st") + " --embeddings " + path("trained.emb"), "trained.json");
  train("--epochs 0 --init " + path("model.st") + " --embeddings " + path("evaluated.emb"), "evaluated.json");
  const gcn::SafetensorsFile a = gcn::read_safetensors(dir_.path() / "trained.emb");
  const gcn::SafetensorsFile b = gcn::read_safetensors(dir_.path() / "evaluated.emb");
  const gcn::Tensor32* ea = a.find("embeddings");
  const gcn::Tensor32* eb = b.find("embeddings");
  ASSERT_NE(ea, nullptr);
  ASSERT_NE(eb, nullptr);
  ASSERT_EQ(ea->shape.size(), 2u);
  EXPECT_EQ(ea->shape[0], 2708);
  EXPECT_GT(ea->shape[1], 0);
  EXPECT_EQ(ea->data, eb->data);
}

// --write-config writes every option; --config repeats the run.
TEST_P(EveryModel, ConfigFileRepeatsTheRun) {
  const nlohmann::json first = train("--epochs 4 --seed 5 --write-config " + path("run.toml"), "first.json");
  const gcn::test::ProcessRun r = gcn::test::run_gcn_train("--quiet --device cpu --config " + path("run.toml") +
                                                           " --json " + path("second.json"));
  ASSERT_EQ(r.status, 0) << r.err;
  const nlohmann::json second = nlohmann::json::parse(gcn::test::read_file(dir_.path() / "second.json"));
  ASSERT_FALSE(first.empty());
  EXPECT_EQ(history(second), history(first));
  EXPECT_EQ(second.at("config"), first.at("config"));
}

// A grid of configurations trained as batches is each model trained alone.
TEST_P(EveryModel, MixedBatchIsEachModelAlone) {
  const std::string grid = "--epochs 4 --lr 0.01,0.03 --dropout 0.2,0.5 --runs 2 --threads 1";
  const nlohmann::json batched = train(grid + " --batch 0", "batched.json");
  const nlohmann::json single = train(grid + " --batch 1", "single.json");
  ASSERT_FALSE(batched.empty());
  ASSERT_EQ(batched.at("runs").size(), 8u);
  ASSERT_EQ(single.at("runs").size(), 8u);
  for (std::size_t i = 0; i < 8; ++i) {
    EXPECT_EQ(history(batched, i), history(single, i)) << "model " << i;
    EXPECT_EQ(batched.at("runs").at(i).at("config"), single.at("runs").at(i).at("config"));
  }
}

// CUDA (cudasim in CI, or a GPU) against the CPU: the same training within
// float tolerance, and a CUDA rerun the same bits.
TEST_P(EveryModel, CudaMatchesTheCpu) {
  std::string why;
  if (gcn::cuda_device_count(&why) <= 0) {
    if (gcn::test::require_gpu()) FAIL() << why;
    GTEST_SKIP() << why;
  }
  const nlohmann::json cpu = train("--epochs 4", "cpu.json");
  const nlohmann::json cuda = train("--epochs 4", "cuda.json", "cuda");
  const nlohmann::json again = train("--epochs 4", "again.json", "cuda");
  ASSERT_FALSE(cpu.empty());
  ASSERT_FALSE(cuda.empty());
  EXPECT_EQ(history(again), history(cuda));
  for (std::size_t e = 0; e < history(cpu).size(); ++e) {
    const nlohmann::json& a = history(cpu).at(e);
    const nlohmann::json& b = history(cuda).at(e);
    for (const char* key : {"loss", "val_loss"}) {
      const double x = a.at(key).get<double>(), y = b.at(key).get<double>();
      EXPECT_NEAR(y, x, 1e-4 * std::abs(x) + 1e-6) << key << " epoch " << e + 1;
    }
    for (const char* key : {"train_acc", "val_acc", "test_acc"}) {
      EXPECT_NEAR(b.at(key).get<double>(), a.at(key).get<double>(), 0.01) << key << " epoch " << e + 1;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Models, EveryModel, ::testing::ValuesIn(kModels),
                         [](const ::testing::TestParamInfo<ModelCase>& info) { return std::string(info.param.name); });

}  // namespace
