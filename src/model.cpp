#include "gcn/model.hpp"

#include <cmath>

#include <fmt/format.h>

#include "gcn/error.hpp"
#include "gcn/graph.hpp"
#include "gcn/rng.hpp"

namespace gcn {

ParamLayout::ParamLayout(const GcnShape& s) {
  w1 = 0;
  b1 = w1 + static_cast<int64_t>(s.n_features) * s.hidden;
  w2 = b1 + s.hidden;
  b2 = w2 + static_cast<int64_t>(s.hidden) * s.n_classes;
  total = b2 + s.n_classes;
}

std::vector<float> glorot_init(const GcnShape& shape, uint64_t seed) {
  const ParamLayout layout(shape);
  std::vector<float> p(static_cast<std::size_t>(layout.total), 0.0f);
  auto fill = [&](int64_t offset, int64_t fan_in, int64_t fan_out, uint64_t stream) {
    const float bound = static_cast<float>(std::sqrt(6.0 / static_cast<double>(fan_in + fan_out)));
    for (int64_t i = 0; i < fan_in * fan_out; ++i) {
      p[offset + i] = (2.0f * uniform01(seed, stream, static_cast<uint64_t>(i)) - 1.0f) * bound;
    }
  };
  fill(layout.w1, shape.n_features, shape.hidden, 0x57317);
  fill(layout.w2, shape.hidden, shape.n_classes, 0x57327);
  return p;
}

namespace {
bool same_matrix(const CsrMatrix& a, const CsrMatrix& b) {
  return a.indptr == b.indptr && a.indices == b.indices && a.values == b.values;
}
}  // namespace

GcnModel::GcnModel(Backend& backend, const Dataset& data, const GcnShape& shape, float dropout)
    : backend_(&backend), shape_(shape), layout_(shape), dropout_(dropout), n_nodes_(data.n_nodes) {
  if (shape.n_features != data.n_features || shape.n_classes != data.n_classes) {
    throw UsageError(fmt::format("model shape ({} features, {} classes) does not match dataset {} ({}, {})",
                                 shape.n_features, shape.n_classes, data.name, data.n_features,
                                 data.n_classes));
  }
  if (shape.hidden < 1) throw UsageError("hidden size must be at least 1");
  if (!(dropout >= 0.0f && dropout < 1.0f)) throw UsageError(fmt::format("dropout {} outside [0, 1)", dropout));
  n_train_ = data.count(kTrainBit);
  n_val_ = data.count(kValBit);

  const CsrMatrix adj = gcn_norm(data.n_nodes, data.edge_src, data.edge_dst);
  const CsrMatrix adj_t = adj.transposed();
  adj_ = backend.upload_csr(adj);
  if (!same_matrix(adj, adj_t)) adj_t_ = backend.upload_csr(adj_t);
  x_ = backend.upload_csr(data.features);
  x_t_ = backend.upload_csr(data.features.transposed());
  labels_ = Buffer<int32_t>(backend, data.labels);
  split_ = Buffer<uint8_t>(backend, data.split);

  params_ = Buffer<float>(backend, layout_.total);
  grads_ = Buffer<float>(backend, layout_.total);
  adam_m_ = Buffer<float>(backend, layout_.total);
  adam_v_ = Buffer<float>(backend, layout_.total);
  params_.zero();
  grads_.zero();
  adam_m_.zero();
  adam_v_.zero();
  hidden_a_ = Matrix(backend, n_nodes_, shape.hidden);
  hidden_b_ = Matrix(backend, n_nodes_, shape.hidden);
  out_a_ = Matrix(backend, n_nodes_, shape.n_classes);
  logits_ = Matrix(backend, n_nodes_, shape.n_classes);
  dlogits_ = Matrix(backend, n_nodes_, shape.n_classes);
}

void GcnModel::set_params(const std::vector<float>& host) {
  if (static_cast<int64_t>(host.size()) != layout_.total) {
    throw UsageError(fmt::format("expected {} parameters, got {}", layout_.total, host.size()));
  }
  params_.from_host(host);
  adam_m_.zero();
  adam_v_.zero();
}

void GcnModel::set_adam_state(const std::vector<float>& m, const std::vector<float>& v) {
  if (static_cast<int64_t>(m.size()) != layout_.total || static_cast<int64_t>(v.size()) != layout_.total) {
    throw UsageError(fmt::format("expected {} values per Adam moment, got {} and {}", layout_.total, m.size(),
                                 v.size()));
  }
  adam_m_.from_host(m);
  adam_v_.from_host(v);
}

std::vector<float> GcnModel::log_probabilities() {
  forward(/*training=*/false, 0, 0);
  // dlogits_ is free between training steps: borrow it for the result.
  backend_->log_softmax(logits_.ref(), dlogits_.ref());
  return dlogits_.buffer().to_host();
}

std::vector<float> GcnModel::params() const { return params_.to_host(); }
std::vector<float> GcnModel::grads() const { return grads_.to_host(); }

void GcnModel::forward(bool training, uint64_t seed, uint64_t stream) {
  Backend& be = *backend_;
  const int64_t h = shape_.hidden, c = shape_.n_classes;
  float* p = params_.data();
  const ConstMatRef w1(p + layout_.w1, shape_.n_features, h);
  const ConstMatRef w2(p + layout_.w2, h, c);

  be.spmm(*x_, w1, hidden_a_.ref());                 // X·W1       (N, H)
  be.spmm(*adj_, hidden_a_.ref(), hidden_b_.ref());  // Â·X·W1     (N, H)
  be.add_bias(hidden_b_.ref(), p + layout_.b1);
  dropout_applied_ = training && dropout_ > 0.0f;
  be.relu_dropout_forward(hidden_b_.ref(), hidden_b_.ref(), dropout_applied_ ? dropout_ : 0.0f, seed, stream);
  be.gemm(hidden_b_.ref(), false, w2, false, out_a_.ref());  // D·W2 (N, C)
  be.spmm(*adj_, out_a_.ref(), logits_.ref());               // Â·D·W2
  be.add_bias(logits_.ref(), p + layout_.b2);
}

void GcnModel::backward(float* loss_out) {
  Backend& be = *backend_;
  const int64_t h = shape_.hidden, c = shape_.n_classes;
  float* g = grads_.data();
  const ConstMatRef w2(params_.data() + layout_.w2, h, c);
  const SparseMatrix& adj_t = adj_t_ ? *adj_t_ : *adj_;

  be.log_softmax_nll(logits_.ref(), labels_.data(), split_.data(), kTrainBit, n_train_, loss_out,
                     dlogits_.data());
  be.column_sum(dlogits_.ref(), g + layout_.b2);
  be.spmm(adj_t, dlogits_.ref(), out_a_.ref());                              // dL/d(D·W2)  (N, C)
  be.gemm(hidden_b_.ref(), true, out_a_.ref(), false, MatRef{g + layout_.w2, h, c});  // Dᵀ·(.)
  be.gemm(out_a_.ref(), false, w2, true, hidden_a_.ref());                   // dL/dD       (N, H)
  be.relu_dropout_backward(hidden_a_.ref(), hidden_b_.ref(), hidden_a_.ref(),
                           dropout_applied_ ? dropout_ : 0.0f);              // dL/d(pre-act)
  be.column_sum(hidden_a_.ref(), g + layout_.b1);
  be.spmm(adj_t, hidden_a_.ref(), hidden_b_.ref());                          // dL/d(X·W1)  (N, H)
  be.spmm(*x_t_, hidden_b_.ref(), MatRef{g + layout_.w1, shape_.n_features, h});  // Xᵀ·(.)
}

void GcnModel::adam_step(const AdamConfig& config, int64_t step) {
  backend_->adam_step(params_.data(), grads_.data(), adam_m_.data(), adam_v_.data(), layout_.total,
                      config, step);
}

void GcnModel::evaluate(float* val_loss_out, int32_t* correct_out) {
  backend_->log_softmax_nll(logits_.ref(), labels_.data(), split_.data(), kValBit, n_val_, val_loss_out,
                            nullptr);
  backend_->argmax_correct(logits_.ref(), labels_.data(), split_.data(), nullptr, correct_out);
}

}  // namespace gcn
