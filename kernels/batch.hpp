// A batch of models as the kernels take it (gcn::Backend's column blocks):
// model k of `batch` owns the columns [k · c, (k + 1) · c) of every row of a
// (rows, batch · c) matrix, and its step state is steps[k]. Plain C++, no
// backend header.
#pragma once

#include <cstdint>

namespace gcn::kernels {

// The most models one launch takes: the model is the grid's y (or z) index.
constexpr int kMaxBatch = 65535;

// The parameter blocks of a batch (gcn::ParamBlocks), by value as a kernel
// argument: region b is a (rows, batch · cols) block of the flat arrays at
// `offset`, model k's elements the columns [k · cols, (k + 1) · cols).
struct ParamRegion {
  int64_t offset, rows, cols;  // cols: per model
};
struct ParamRegions {
  static constexpr int kMax = 32;
  ParamRegion item[kMax];
  int count;
};

}  // namespace gcn::kernels
