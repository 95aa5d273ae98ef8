// An activation (ReLU or ELU), then dropout(p) in the training pass: one
// fused op each way (Backend::act_dropout_*). The layer between two
// convolutions of every model. In a batch, each model drops with its own
// rate (its step state's); p is then the largest (whether any model drops).
#pragma once

#include <string>

#include "gcn/nn/layer.hpp"

namespace gcn {

class ActDropout final : public Layer {
 public:
  ActDropout(std::string name, int64_t cols, Activation act, float p, bool per_model, uint32_t site)
      : name_(std::move(name)), cols_(cols), act_(act), p_(p), per_model_(per_model), site_(site) {}

  std::string describe() const override;
  bool depends_on_pass() const override { return p_ > 0.0f; }
  int64_t out_cols() const override { return cols_; }
  bool fuses_column_sums() const override { return true; }
  void plan(Planner& p, const Workspace::Id in[2], bool shared, Workspace::Id out[2]) override;
  void forward(const LayerContext& c, Pass pass) const override;
  void backward(const LayerContext& c, Workspace::Id grad_out, Workspace::Id grad_in, float* col_sums,
                bool bias_grad_done) const override;
  RowMask plan_training_rows(TrainingRows&, const RowMask*, const RowMask& grad_out_rows) override {
    return grad_out_rows;  // dx is zero wherever dy is
  }

 private:
  std::string name_;
  int64_t cols_;
  Activation act_;
  float p_;
  bool per_model_;
  uint32_t site_;
  Workspace::Id in_ids_[2] = {-1, -1}, out_ids_[2] = {-1, -1};
};

}  // namespace gcn
