// A layer's input times a weight, shared by every layer that starts with a
// linear transform: in · W for a dense input, X · W for the graph's sparse
// features (with the features' dropout in the training pass: each model's
// own copy of X's values), and the weight gradient inᵀ · g (Xᵀ · g, over
// the restricted Xᵀ when the model planned one).
#pragma once

#include <string>

#include "gcn/nn/layer.hpp"

namespace gcn {

class InputProduct {
 public:
  // in[pass] as Layer::plan's (-1: the sparse features); input_dropout
  // applies to the sparse features only (a dense input's dropout is the
  // previous layer's), drawn at dropout site `site` (the features' own,
  // kInputSite, unless a layer drops its own copy: ARMA's skip term).
  void plan(Planner& p, const std::string& name, const Workspace::Id in[2], float input_dropout,
            uint32_t site = kInputSite);
  bool sparse() const { return sparse_; }
  // Whether the products run with prepared = true (the sparse ones).
  bool prepared() const { return sparse_; }
  void set_restricted_features_t(const SparseMatrix* xt) { features_t_ = xt; }

  // out = in · w (w: (in, batch · cols) blocks).
  void forward(const LayerContext& c, Pass pass, ConstMatRef w, MatRef out) const;
  // dw = inᵀ · g (training pass).
  void weight_grad(const LayerContext& c, ConstMatRef g, MatRef dw) const;

  // The tensors of a layer that is this product then a sparse product with
  // the bias (gcn's Â·(in·W) + b, sgc's Â^K, a Linear's I·(in·W) + b), for
  // each pass: xw (N, cols) = in · W and out (N, cols), named
  // name.xw[.train|.eval] and name.out[...]; one pair for both passes when
  // `shared`. out starts from the bias at bias_offset; xw is prepared when
  // the input is sparse.
  void plan_outputs(Planner& p, const std::string& name, bool shared, int64_t cols, int64_t bias_offset,
                    Workspace::Id xw[2], Workspace::Id out[2]) const;

 private:
  bool sparse_ = false;
  float dropout_ = 0.0f;
  uint32_t site_ = kInputSite;
  Workspace::Id in_[2] = {-1, -1}, x_values_ = -1, xt_values_ = -1;
  const SparseMatrix* features_t_ = nullptr;
};

}  // namespace gcn
