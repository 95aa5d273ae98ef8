// The tutorial GCN's parameters: its shape, where each parameter sits in the
// flat array (PyG's state_dict order: conv1.lin.weight, conv1.bias,
// conv2.lin.weight, conv2.bias; weights stored [in, out], PyG's transposed),
// and PyG's initialisation. Shared by the model and the checkpoint files.
#pragma once

#include <cstdint>
#include <vector>

namespace gcn {

struct GcnShape {
  int32_t n_features = 0;
  int32_t hidden = 16;
  int32_t n_classes = 0;
};

// Offsets of each parameter in the flat array.
struct ParamLayout {
  explicit ParamLayout(const GcnShape& s);
  int64_t w1 = 0;  // (F, H)
  int64_t b1 = 0;  // (H)
  int64_t w2 = 0;  // (H, C)
  int64_t b2 = 0;  // (C)
  int64_t total = 0;
};

// Glorot-uniform weights (bound sqrt(6 / (fan_in + fan_out)), as PyG's
// glorot), zero biases; deterministic from the seed on every platform.
std::vector<float> glorot_init(const GcnShape& shape, uint64_t seed);

}  // namespace gcn
