#include "nn/layers/act_dropout.hpp"

#include <fmt/format.h>

namespace gcn {

std::string ActDropout::describe() const {
  const char* act = act_ == Activation::kElu ? "ELU" : "ReLU";
  if (per_model_) return p_ > 0.0f ? fmt::format("{} -> dropout (per model)", act) : std::string(act);
  return p_ > 0.0f ? fmt::format("{} -> dropout({})", act, p_) : std::string(act);
}

void ActDropout::plan(Planner& p, const Workspace::Id in[2], bool shared, Workspace::Id out[2]) {
  for (Pass pass : {Pass::kEval, Pass::kTrain}) {
    in_ids_[pass_index(pass)] = in[pass_index(pass)];
    if (shared && pass == Pass::kTrain) {
      out[pass_index(pass)] = out[pass_index(Pass::kEval)];
    } else {
      out[pass_index(pass)] =
          p.tensor(name_ + ".out" + (shared ? "" : pass_suffix(pass)), p.n_nodes(), cols_ * p.batch());
    }
    out_ids_[pass_index(pass)] = out[pass_index(pass)];
  }
}

void ActDropout::forward(const LayerContext& c, Pass pass) const {
  const bool train = pass == Pass::kTrain;
  c.backend->act_dropout_forward(act_, c.ws->mat(in_ids_[pass_index(pass)]), c.ws->mat(out_ids_[pass_index(pass)]),
                                 train && !per_model_ ? p_ : 0.0f, c.step, per_model_ && train ? c.batch : 1,
                                 per_model_ && train, site_);
}

void ActDropout::backward(const LayerContext& c, Workspace::Id grad_out, Workspace::Id grad_in, float* col_sums,
                          bool /*bias_grad_done*/) const {
  if (grad_in < 0) return;
  c.backend->act_dropout_backward(act_, c.ws->mat(grad_out), c.ws->mat(out_ids_[pass_index(Pass::kTrain)]),
                                  c.ws->mat(grad_in), per_model_ ? 0.0f : p_, c.step, per_model_ ? c.batch : 1,
                                  per_model_, site_, col_sums);
}

}  // namespace gcn
