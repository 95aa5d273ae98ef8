#include "nn/layers/input_product.hpp"

namespace gcn {

void InputProduct::plan(Planner& p, const std::string& name, const Workspace::Id in[2], float input_dropout,
                        uint32_t site) {
  sparse_ = in[0] < 0;
  site_ = site;
  for (int i = 0; i < 2; ++i) in_[i] = in[i];
  dropout_ = sparse_ ? input_dropout : 0.0f;
  if (dropout_ > 0.0f) {
    const int64_t nnz = p.graph().features().nnz();
    x_values_ = p.tensor(name + ".x.dropped", p.batch(), nnz);
    xt_values_ = p.tensor(name + ".x_t.dropped", p.batch(), nnz);
  }
}

void InputProduct::forward(const LayerContext& c, Pass pass, ConstMatRef w, MatRef out) const {
  Backend& be = *c.backend;
  if (!sparse_) {
    be.gemm(c.ws->mat(in_[pass_index(pass)]), false, w, false, out, c.batch);  // in · W, model by model
  } else if (pass == Pass::kTrain && dropout_ > 0.0f) {
    const SparseMatrix& x = c.graph->features();
    float* values = c.ws->get<float>(x_values_);
    be.sparse_dropout(x, /*transposed=*/false, dropout_, c.step, c.batch, site_, values);
    be.spmm_values(x, values, w, out, c.batch, /*prepared=*/true);  // dropout(X) · W, model by model
  } else {
    be.spmm(c.graph->features(), w, out, nullptr, /*prepared=*/true);  // X · W, every model at once
  }
}

void InputProduct::weight_grad(const LayerContext& c, ConstMatRef g, MatRef dw) const {
  Backend& be = *c.backend;
  if (!sparse_) {
    be.gemm(c.ws->mat(in_[pass_index(Pass::kTrain)]), true, g, false, dw, c.batch);
    return;
  }
  const SparseMatrix& xt = features_t_ != nullptr ? *features_t_ : c.graph->features_t();
  if (dropout_ > 0.0f) {
    float* values = c.ws->get<float>(xt_values_);
    be.sparse_dropout(xt, /*transposed=*/true, dropout_, c.step, c.batch, site_, values);
    be.spmm_values(xt, values, g, dw, c.batch, /*prepared=*/true);
  } else {
    be.spmm(xt, g, dw, nullptr, /*prepared=*/true);  // Xᵀ · g
  }
}

void InputProduct::plan_outputs(Planner& p, const std::string& name, bool shared, int64_t cols, int64_t bias_offset,
                                Workspace::Id xw[2], Workspace::Id out[2]) const {
  const int64_t n = p.n_nodes();
  for (Pass pass : {Pass::kEval, Pass::kTrain}) {
    const int i = pass_index(pass);
    if (shared && pass == Pass::kTrain) {
      xw[i] = xw[pass_index(Pass::kEval)];
      out[i] = out[pass_index(Pass::kEval)];
      continue;
    }
    const std::string suffix = shared ? "" : pass_suffix(pass);
    xw[i] = p.tensor(name + ".xw" + suffix, n, cols);
    out[i] = p.tensor(name + ".out" + suffix, n, cols);
    p.prepare(pass, out[i], bias_offset);
    if (prepared()) p.prepare(pass, xw[i], -1);
  }
}

}  // namespace gcn
