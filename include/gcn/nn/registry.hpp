// The model registry: every model gcn-train trains is a ModelType, declared
// in one file of src/nn/layers/ (gcn_conv.cpp, sage_conv.cpp, ...) with
// everything the rest of the program needs to know about it: its --model
// name and PyG class, the recipe of its PyG example (the defaults) and of
// PyG's benchmark/citation script, its own hyperparameters (flags, ranges),
// its parameter tensors (PyG's state_dict names, shapes, initialisation), how
// to recognise its files, and a factory for its layers. The CLI (choices,
// --help, defaults, config files), the checkpoints (--save, --init,
// --resume), the JSON report and the PyG scripts (gcn-train --models) read it.
//
// Adding a model: its file under src/nn/layers/ (a ModelType and its
// Layers), a line in registry.cpp's list, its ops if new (a CPU twin, a
// kernel, tests, a gcn-bench entry), its row in tests/test_every_model.cpp and
// in the README's models table.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "gcn/nn/params.hpp"

namespace gcn {

class Layer;

// One of a model type's own hyperparameters, set with --<name> (config key
// <name> with '-' as '_').
struct HyperParam {
  enum class Kind { kInt, kFloat, kBool };
  std::string name;  // "heads", "K", "attention-dropout"
  Kind kind = Kind::kInt;
  double default_value = 0;
  double min = 0, max = 0;  // the allowed range (a rate: [0, 1), max_exclusive)
  bool max_exclusive = false;
  // Whether it changes the parameter tensors (a file's shape fixes it).
  bool architecture = false;
  std::string help;
  std::string key() const;  // "attention_dropout": the config/JSON key
};

// A PyG script's choices for a model: what `--model NAME` alone trains (its
// PyG example), or benchmark/citation's script with run.sh's arguments for a
// dataset (--recipe citation).
struct Recipe {
  int epochs = 200;
  int layers = 2;
  int hidden = 16;
  float lr = 0.01f;
  float weight_decay = 5e-4f;
  float dropout = 0.5f;        // after each hidden layer's activation
  float input_dropout = 0.0f;  // on the input features
  HyperValues hyper;           // values for some (or all) of the type's hyperparameters
  // benchmark/citation's early_stopping (stop when the validation loss
  // exceeds the mean of the previous K, after half the epochs); 0: none.
  int early_stopping = 0;
  std::string script;          // where it comes from: "examples/gcn.py", "benchmark/citation/cheb.py ..."
  // Non-empty: what of the script gcn-train cannot do (the recipe is refused with it).
  std::string unsupported;
};

// The parameter tensors' shapes in a file, by name.
using TensorShapes = std::map<std::string, std::vector<int64_t>>;

// What the factory needs beyond the shape: how the batch drops out.
struct BuildOptions {
  float max_dropout = 0.0f;        // the largest rate of --dropout in the batch (whether any model drops)
  bool per_model_dropout = false;  // a batch of several models, each with its own rate
};

class ModelType {
 public:
  virtual ~ModelType() = default;

  virtual const char* name() const = 0;       // --model: "gcn"
  virtual const char* pyg_class() const = 0;  // "GCNConv"
  virtual std::string summary() const = 0;    // one line for --help and --models
  // The activation between layers: "ReLU" or "ELU" (describe, embeddings).
  virtual const char* activation() const { return "ReLU"; }
  // The layers' activation as the backend's (act_dropout_*).
  bool elu() const;

  virtual std::vector<HyperParam> hyper_params() const { return {}; }
  // What --model NAME alone trains.
  virtual Recipe defaults() const = 0;
  // benchmark/citation/<model>.py with run.sh's arguments for `dataset`
  // ("cora", "citeseer", "pubmed"; another dataset: Cora's); nullopt when
  // the benchmark has no script for this model.
  virtual std::optional<Recipe> citation(const std::string& dataset) const = 0;
  // Whether the model's PyG layers read a graph's edge weights (gcn_norm or
  // get_laplacian with weights).
  virtual bool uses_edge_weights() const = 0;

  // Layer k's output columns per unit of width (GAT's heads), and the
  // shape's other checks (hyperparameter ranges are checked already).
  virtual int32_t width_multiplier(const ModelShape& s, int k) const;
  virtual void validate(const ModelShape& s) const;
  // The parameter tensors in the flat array's order.
  virtual void declare_params(const ModelShape& s, ParamLayout& layout) const = 0;
  // The epoch program's layers, first to last.
  virtual std::vector<std::unique_ptr<Layer>> build(const ModelShape& s, const BuildOptions& options) const = 0;
  // "GCNConv(1433, 16) -> ReLU -> dropout(0.5) -> GCNConv(16, 7)" for the log,
  // with `dropout` as the text of the rate between layers.
  virtual std::string describe(const ModelShape& s, const std::string& dropout) const = 0;

  // Whether a state_dict of these tensor names is one of this type's, and
  // the shape it fixes (the rest of the hyperparameters at their defaults).
  // shape_from_file throws DataError "<path>: ..." on inconsistent shapes.
  virtual bool recognizes(const TensorShapes& file) const = 0;
  virtual ModelShape shape_from_file(const TensorShapes& file, const std::string& path) const = 0;

  // The declared hyperparameters at their defaults.
  HyperValues default_hyper() const;
  std::optional<HyperParam> find_hyper(const std::string& name) const;  // nullopt when not declared
};

// Every model, in --help's order.
const std::vector<const ModelType*>& model_types();
// The type named `name`; UsageError "--model NAME: ... (did you mean ...)" otherwise.
const ModelType& find_model_type(const std::string& name);
// Every hyperparameter any model declares, by name, with the models that declare it.
struct HyperFlag {
  HyperParam param;  // the first declaring model's (help, kind)
  std::vector<const ModelType*> models;
};
std::vector<HyperFlag> hyper_flags();
// The registry as JSON text (gcn-train --models): names, classes,
// hyperparameters, defaults and citation recipes, for the PyG scripts.
std::string registry_json();

}  // namespace gcn
