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

 private:
  bool sparse_ = false;
  float dropout_ = 0.0f;
  uint32_t site_ = kInputSite;
  Workspace::Id in_[2] = {-1, -1}, x_values_ = -1, xt_values_ = -1;
  const SparseMatrix* features_t_ = nullptr;
};

}  // namespace gcn
