// PyG's citation networks, the shape most model types share:
//   [dropout(x, input_dropout) ->] conv1 -> act -> dropout(p) -> conv2 -> ... -> convL
// A model type of this shape (gcn, sage, gat, cheb, arma) says how to make
// and describe one convolution and which tensor names its files; the rest
// (the layer list, the log's description, the depth and widths read from a
// file) is here.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "gcn/nn/layer.hpp"
#include "gcn/nn/registry.hpp"

namespace gcn {

class ConvStackType : public ModelType {
 public:
  std::vector<std::unique_ptr<Layer>> build(const ModelShape& s, const BuildOptions& options) const override;
  std::string describe(const ModelShape& s, const std::string& dropout) const override;

 protected:
  // Convolution k (0-based) of the stack, named "conv<k+1>", reading
  // s.in_cols(k) columns and writing s.out_cols(k); input_dropout is the
  // first convolution's dropout on the sparse features (0 for the others).
  virtual std::unique_ptr<Layer> make_conv(const ModelShape& s, int k, float input_dropout) const = 0;
  // "GCNConv(1433, 16)" (PyG's repr of convolution k).
  virtual std::string conv_text(const ModelShape& s, int k) const = 0;

  // The depth and dimensions a file's convolutions give: conv1.<suffix>,
  // conv2.<suffix>, ... (up to 16), each of rank `rank` with its input
  // columns at dimension in_dim and its output columns at out_dim (and
  // every dimension positive and within int32). DataError "<path>: ..."
  // when a tensor is malformed.
  struct StackDims {
    int layers = 0;
    int32_t n_features = 0;
    std::vector<int64_t> out_cols;  // per convolution
  };
  static StackDims stack_dims(const TensorShapes& file, const std::string& path, const std::string& suffix, int rank,
                              int in_dim, int out_dim);
  // A shape of this type from a file's stack: hidden widths = out_cols /
  // multiplier (the hidden layers' heads), classes the last out_cols; the
  // hyperparameters at their defaults.
  ModelShape stack_shape(const StackDims& d, int32_t multiplier, const std::string& path) const;
};

}  // namespace gcn
