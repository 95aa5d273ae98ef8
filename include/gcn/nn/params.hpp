// A model's architecture and its parameters: the shape (GCN, GraphSAGE or
// GAT, depth, widths, heads), where each parameter tensor sits in the flat
// array, its PyG state_dict name and layout, and PyG's initialisation of it.
// Shared by the model and the checkpoint files.
//
// Per layer k (conv1, conv2, ...), in the flat array's order:
//   GCNConv   convK.lin.weight (in, out)      convK.bias (out)
//   SAGEConv  convK.lin_l.weight (in, out)    convK.lin_l.bias (out)
//             convK.lin_r.weight (in, out)
//   GATConv   convK.lin.weight (in, heads·ch) convK.att_src (1, heads·ch)
//             convK.att_dst (1, heads·ch)     convK.bias (heads·ch, or ch
//             for the last layer: one head, concat=False)
// Weights are stored [in, out], PyG's transposed, so each layer is a plain
// product; the checkpoint files hold PyG's [out, in] (and [1, heads, ch]
// for the attention vectors).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace gcn {

enum class ModelKind : int32_t { kGcn = 0, kSage = 1, kGat = 2 };
// "gcn", "sage", "gat"
const char* model_kind_name(ModelKind kind);
// PyG's layer class: "GCNConv", "SAGEConv", "GATConv".
const char* model_layer_name(ModelKind kind);

// The architecture. GcnShape{F, H, C} is the tutorial GCN.
struct GcnShape {
  GcnShape() = default;
  GcnShape(int32_t features, int32_t hidden_width, int32_t classes)
      : n_features(features), hidden(hidden_width), n_classes(classes) {}

  int32_t n_features = 0;
  int32_t hidden = 16;  // every hidden layer's width (channels per head) unless `hiddens` is given
  int32_t n_classes = 0;
  ModelKind kind = ModelKind::kGcn;
  int32_t layers = 2;            // graph convolutions, >= 1
  std::vector<int32_t> hiddens;  // one width per hidden layer (layers - 1), or empty: `hidden` each
  int32_t heads = 1;             // GAT: heads of each hidden layer (the last layer has one)
  // Dropout that belongs to the layers (PyG's constructor arguments), one
  // rate for every model of a batch: on the input features (every model),
  // and GAT's on the attention coefficients.
  float input_dropout = 0.0f;
  float attention_dropout = 0.0f;

  // Layer k's (0-based) channels per head, heads, and output columns.
  int32_t width(int k) const;
  int32_t layer_heads(int k) const;
  int64_t out_cols(int k) const { return static_cast<int64_t>(width(k)) * layer_heads(k); }
  int64_t in_cols(int k) const { return k == 0 ? n_features : out_cols(k - 1); }
  // The same layers and widths (the dropouts aside).
  bool same_architecture(const GcnShape& o) const;
  // Throws UsageError when a dimension is out of range.
  void validate() const;
  // "gcn 1433-16-7", "gat 1433-8x8-7".
  std::string describe() const;
};

struct ParamTensor {
  enum class Kind { kWeight, kVector, kAttention };
  enum class Init { kZeros, kGlorot, kKaiming, kFanInUniform };
  std::string name;  // PyG's state_dict name
  Kind kind = Kind::kVector;
  Init init = Init::kZeros;
  int64_t rows = 1, cols = 0;  // ours: a weight (in, out); a vector or attention (1, n)
  int64_t offset = 0;          // in the flat array
  int32_t heads = 1;           // an attention vector's [1, heads, cols / heads]
  int32_t layer = 0;           // 0-based
  // PyG's shape: [out, in], [n] or [1, heads, ch].
  std::vector<int64_t> file_shape() const;
  int64_t size() const { return rows * cols; }
};

// Offsets of each parameter in the flat array.
struct ParamLayout {
  explicit ParamLayout(const GcnShape& s);
  std::vector<ParamTensor> tensors;  // the flat array's order
  // The tutorial GCN's four tensors (-1 for other models).
  int64_t w1 = -1;  // (F, H)
  int64_t b1 = -1;  // (H)
  int64_t w2 = -1;  // (H, C)
  int64_t b2 = -1;  // (C)
  int64_t total = 0;
  const ParamTensor* find(const std::string& name) const;  // null when absent
};

// PyG 2.8's initialisation of each tensor, deterministic from the seed on
// every platform: GCNConv and GATConv weights and attention vectors glorot
// (uniform, bound sqrt(6 / (fan_in + fan_out)) over PyG's last two
// dimensions), SAGEConv's Linear weights kaiming-uniform with a = sqrt(5)
// (bound 1 / sqrt(in)) and its bias uniform in ±1 / sqrt(in), other biases
// zero.
std::vector<float> init_params(const GcnShape& shape, uint64_t seed);
// The tutorial's name for it.
inline std::vector<float> glorot_init(const GcnShape& shape, uint64_t seed) { return init_params(shape, seed); }

}  // namespace gcn
