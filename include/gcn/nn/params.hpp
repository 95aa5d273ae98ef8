// A model's architecture and its parameters: the shape (the model type from
// the registry, depth, widths, the type's own hyperparameters), where each
// parameter tensor sits in the flat array, its PyG state_dict name and
// shape, how PyG's layout maps onto ours, and PyG's initialisation of it.
// Shared by the model, the checkpoint files and the CLI.
//
// Weights are stored the way our products use them ((in, out) for a
// Linear's weight, PyG's transpose), so each layer is a plain product; the
// files hold PyG's layouts. The tensors of each model type are declared in
// its file under src/nn/layers/ (ModelType::declare_params).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace gcn {

class ModelType;

// A model type's own hyperparameters by name ("heads", "K", "alpha", ...):
// every one the type declares is set (ModelType::hyper_params).
using HyperValues = std::map<std::string, double>;

// The architecture. ModelShape{F, H, C} is the tutorial GCN.
struct ModelShape {
  ModelShape();  // the registry's default model (gcn), 2 layers of 16
  ModelShape(int32_t features, int32_t hidden_width, int32_t classes);

  const ModelType* type = nullptr;  // never null
  int32_t n_features = 0;
  int32_t hidden = 16;  // every hidden layer's width (channels per head) unless `hiddens` is given
  int32_t n_classes = 0;
  int32_t layers = 2;            // the type's layers (graph convolutions, or Linears for appnp), >= 1
  std::vector<int32_t> hiddens;  // one width per hidden layer (layers - 1), or empty: `hidden` each
  // Dropout on the input features (every model of a batch; PyG's
  // F.dropout(x) before the first layer).
  float input_dropout = 0.0f;
  HyperValues hyper;  // the type's hyperparameters

  // The type `name` (registry) with its declared hyperparameters at their defaults.
  static ModelShape of(const std::string& type_name, int32_t features, int32_t hidden_width, int32_t classes);

  // Layer k's (0-based) channels per head, its output columns (GAT's heads
  // concatenated), and its input columns.
  int32_t width(int k) const;
  int64_t out_cols(int k) const;
  int64_t in_cols(int k) const { return k == 0 ? n_features : out_cols(k - 1); }
  // A hyperparameter's value; Error when the type does not declare it.
  double hp(const std::string& name) const;
  int32_t hp_int(const std::string& name) const { return static_cast<int32_t>(hp(name)); }
  bool hp_bool(const std::string& name) const { return hp(name) != 0.0; }
  // The same parameter tensors (names and shapes): what a file can hold.
  bool same_parameters(const ModelShape& o) const;
  // Everything equal: the same epoch program.
  bool operator==(const ModelShape& o) const;
  bool operator!=(const ModelShape& o) const { return !(*this == o); }
  // Throws UsageError when a dimension or a hyperparameter is out of range.
  void validate() const;
  // "gcn 1433-16-7", "gat 1433-8x8-7", "cheb 1433-16-7 K=3".
  std::string describe() const;
};

struct ParamTensor {
  enum class Init {
    kZeros,
    kGlorot,         // uniform, bound sqrt(6 / (a + b)) over PyG's last two dimensions
    kUniformFanIn,   // uniform, bound 1 / sqrt(fan_in): torch's and PyG's Linear (kaiming_uniform with
                     // a = sqrt(5) for the weight, the same bound for the bias)
  };
  // How PyG's tensor (file_shape, row-major) maps onto ours (rows, cols).
  enum class Layout {
    kSame,        // the same elements in the same order (biases, attention vectors, vectors of any shape)
    kTransposed,  // PyG [out, in] (a Linear's weight), ours (in, out)
    kStacked,     // PyG [A, K, R, C] (or [K, R, C]: A = 1), ours (A·R, K·C): ours[a·R + r][k·C + c] = PyG[a][k][r][c]
  };
  std::string name;  // PyG's state_dict name
  Init init = Init::kZeros;
  Layout layout = Layout::kSame;
  int64_t rows = 1, cols = 0;        // ours
  std::vector<int64_t> file_shape;   // PyG's
  int64_t fan_in = 0;                // kUniformFanIn's fan-in
  int64_t offset = 0;                // in the flat array
  int32_t layer = 0;                 // 0-based, for the random stream
  int32_t index_in_layer = 0;        // the tensor's place among its layer's, for the random stream
  int64_t size() const { return rows * cols; }
  // One tensor's values from our order into PyG's, and back.
  void to_file(const float* ours, float* file) const;
  void from_file(const float* file, float* ours) const;
};

// Offsets of each parameter in the flat array.
struct ParamLayout {
  explicit ParamLayout(const ModelShape& s);
  ParamLayout() = default;
  std::vector<ParamTensor> tensors;  // the flat array's order
  int64_t total = 0;
  const ParamTensor* find(const std::string& name) const;  // null when absent
  // Appends a tensor (the model types' declare_params): its offset, and its
  // place in its layer for the random stream, follow from the order.
  void add(std::string name, int32_t layer, ParamTensor::Init init, ParamTensor::Layout layout, int64_t rows,
           int64_t cols, std::vector<int64_t> file_shape, int64_t fan_in = 0);
  // The common cases: a Linear's weight (ours (in, out), PyG's [out, in]) and a vector (n).
  void add_weight(const std::string& name, int32_t layer, ParamTensor::Init init, int64_t in, int64_t out);
  void add_vector(const std::string& name, int32_t layer, ParamTensor::Init init, int64_t n, int64_t fan_in = 0);
};

// PyG 2.8's initialisation of each tensor (ParamTensor::Init),
// deterministic from the seed on every platform: each tensor draws from its
// own stream (its layer and its place in the layer), so the tutorial GCN
// keeps its draws.
std::vector<float> init_params(const ModelShape& shape, uint64_t seed);

}  // namespace gcn
