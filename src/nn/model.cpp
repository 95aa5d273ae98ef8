// The model's plan and its epoch program.
//
// The training pass's restricted products. The loss reads the logits of the
// training rows T only, so the last layer's propagation in the training
// pass multiplies by Â's rows T alone (the other rows of its output are
// never read). Backwards, dL/d logits is zero outside T, so Âᵀ · dL/d logits
// needs only Âᵀ's entries in the columns T, and is zero outside the rows R1
// that reach T; one layer down, Âᵀ's entries in the columns R1, zero outside
// R2; the first layer's weight gradient Xᵀ · (.) needs only Xᵀ's entries in
// the columns R2. On Cora (140 training rows) that drops 44k of the training
// pass's 98k sparse entries. Every dropped term is an exact +0 (a weight times
// a gradient that is exactly +0, added to a sum that starts at +0 and so is
// never -0), so every result is the same bits as the full product.
#include "gcn/nn/model.hpp"

#include <algorithm>
#include <cmath>
#include <optional>

#include <fmt/format.h>

#include "gcn/error.hpp"
#include "gcn/data/graph.hpp"
#include "gcn/rng.hpp"

namespace gcn {

// ---- the model ----------------------------------------------------------------

GcnModel::GcnModel(const DeviceGraph& graph, const ModelShape& shape, float dropout, bool restrict_training)
    : GcnModel(graph, shape, std::vector<ModelRates>{ModelRates{0.0f, 0.0f, dropout}}, restrict_training) {}

GcnModel::GcnModel(const DeviceGraph& graph, const ModelShape& shape, const std::vector<ModelRates>& rates,
                   bool restrict_training, bool allocate)
    : backend_(&graph.backend()), graph_(&graph), shape_(shape), layout_(shape),
      batch_(static_cast<int>(rates.size())), rates_(rates) {
  if (rates.empty() || rates.size() > 1'000'000) {
    throw UsageError(fmt::format("a batch of {} models", rates.size()));
  }
  if (shape.n_features != graph.n_features() || shape.n_classes != graph.n_classes()) {
    throw UsageError(fmt::format("model shape ({} features, {} classes) does not match dataset {} ({}, {})",
                                 shape.n_features, shape.n_classes, graph.dataset().name, graph.n_features(),
                                 graph.n_classes()));
  }
  shape.validate();
  float max_dropout = 0.0f;
  for (const ModelRates& r : rates) {
    if (!(r.dropout >= 0.0f && r.dropout < 1.0f)) throw UsageError(fmt::format("dropout {} outside [0, 1)", r.dropout));
    max_dropout = std::max(max_dropout, r.dropout);
  }
  BuildOptions build;
  build.max_dropout = max_dropout;
  build.per_model_dropout = batch_ > 1;
  layers_ = shape.type->build(shape, build);
  plan(restrict_training, allocate);
}

GcnModel::~GcnModel() = default;

std::string GcnModel::describe() const {
  std::string out;
  for (const auto& layer : layers_) out += (out.empty() ? "" : " -> ") + layer->describe();
  return out;
}

void GcnModel::plan(bool restrict_training, bool allocate) {
  Planner planner(ws_, *graph_, batch_);
  const int n_layers = static_cast<int>(layers_.size());
  prefix_ = 0;
  while (prefix_ < n_layers && !layers_[prefix_]->depends_on_pass()) ++prefix_;

  Workspace::Id in[2] = {-1, -1};  // the first layer reads X
  for (int k = 0; k < n_layers; ++k) {
    Workspace::Id out[2] = {-1, -1};
    layers_[k]->plan(planner, in, /*shared_output=*/k < prefix_, out);
    out_[0].push_back(out[0]);
    out_[1].push_back(out[1]);
    in[0] = out[0];
    in[1] = out[1];
  }
  for (int k = 0; k < n_layers; ++k) {
    grad_.push_back(ws_.add(ws_.name(out_[pass_index(Pass::kTrain)][k]) + ".grad", graph_->n_nodes(),
                            layers_[k]->out_cols() * batch_));
  }
  // Who writes each bias gradient: the loss the last layer's, a layer that
  // fuses column sums into its backward the previous layer's.
  fusion_.assign(layers_.size(), Fusion{});
  fusion_.back().bias_grad_done = layers_.back()->bias_offset() >= 0;
  for (int k = n_layers - 1; k > 0; --k) {
    if (layers_[k]->fuses_column_sums() && layers_[k - 1]->bias_offset() >= 0) {
      fusion_[k].col_sums = layers_[k - 1]->bias_offset();
      fusion_[k - 1].bias_grad_done = true;
    }
  }
  {
    // The training pass's restricted products, from the loss backwards. The
    // last layer's output is needed on the training rows (unless it is
    // shared with the evaluation, which needs every row).
    TrainingRows rows(*graph_, restrict_training);
    const RowMask train = graph_->train_rows();
    RowMask grad_rows = train;
    for (int k = n_layers - 1; k >= 0; --k) {
      const bool last_computed = k == n_layers - 1 && k >= prefix_;
      grad_rows = layers_[k]->plan_training_rows(rows, last_computed ? &train : nullptr, grad_rows);
    }
  }
  // The layers' parameters are the type's declared tensors, in order.
  bool same = planner.param_shapes().size() == layout_.tensors.size();
  for (std::size_t i = 0; same && i < layout_.tensors.size(); ++i) {
    same = planner.param_shapes()[i] == std::make_pair(layout_.tensors[i].rows, layout_.tensors[i].cols);
  }
  if (!same || planner.n_params() != layout_.total) {
    throw Error(fmt::format("model {}: {} parameters in {} tensors planned, {} in {} declared", shape_.describe(),
                            planner.n_params(), planner.param_shapes().size(), layout_.total, layout_.tensors.size()));
  }
  blocks_ = planner.blocks();
  const int64_t n_params = layout_.total * batch_;
  params_ = ws_.add("params", n_params, 1);
  grads_ = ws_.add("grads", n_params, 1);
  adam_m_ = ws_.add("adam.m", n_params, 1);
  adam_v_ = ws_.add("adam.v", n_params, 1);
  best_ = ws_.add("best.params", n_params, 1);
  step_ = ws_.add_bytes("step", sizeof(StepState) * static_cast<std::size_t>(batch_));
  ring_ = ws_.add_bytes("metrics", sizeof(EpochMetrics) * kRingSlots * static_cast<std::size_t>(batch_));
  if (batch_ == 1) scratch_ = ws_.add("log_probs", graph_->n_nodes(), shape_.n_classes);
  if (!allocate) return;
  ws_.allocate(*backend_);

  float* grads = ws_.get<float>(grads_);
  const float* params = ws_.get<float>(params_);
  for (const Planner::Prepare& p : planner.prepares()) {
    OutputInit init;
    init.c = p.tensor >= 0 ? ws_.mat(p.tensor) : MatRef{grads + p.grad_offset, p.rows, p.cols};
    init.bias = p.bias_offset >= 0 ? params + p.bias_offset : nullptr;
    prepare_[pass_index(p.pass)].push_back(init);
  }
  for (const Planner::Constant& k : planner.constants()) {
    backend_->upload(ws_.pointer(k.tensor), k.host.data(), k.host.size() * sizeof(float));
  }
  backend_->fill_zero(ws_.pointer(adam_m_), ws_.bytes(adam_m_));
  backend_->fill_zero(ws_.pointer(adam_v_), ws_.bytes(adam_v_));
  backend_->fill_zero(ws_.pointer(grads_), ws_.bytes(grads_));
  set_steps(std::vector<StepState>(static_cast<std::size_t>(batch_), StepState{}));
}

LayerContext GcnModel::context() const {
  LayerContext c;
  c.backend = backend_;
  c.graph = graph_;
  c.ws = &ws_;
  c.params = ws_.get<float>(params_);
  c.grads = ws_.get<float>(grads_);
  c.step = ws_.get<StepState>(step_);
  c.batch = batch_;
  return c;
}

// ---- state ------------------------------------------------------------------

namespace {
void check_count(const char* what, std::size_t got, int64_t want) {
  if (static_cast<int64_t>(got) != want) throw UsageError(fmt::format("expected {} {}, got {}", want, what, got));
}
}  // namespace

void GcnModel::set_params(const std::vector<float>& host) {
  check_count("parameters", host.size(), layout_.total * batch_);
  backend_->upload(ws_.pointer(params_), host.data(), host.size() * sizeof(float));
  backend_->fill_zero(ws_.pointer(adam_m_), ws_.bytes(adam_m_));
  backend_->fill_zero(ws_.pointer(adam_v_), ws_.bytes(adam_v_));
  prefix_fresh_ = false;
}

namespace {
std::vector<float> download_floats(Backend& be, const void* src, int64_t n) {
  std::vector<float> out(static_cast<std::size_t>(n));
  if (n > 0) be.download(out.data(), src, out.size() * sizeof(float));
  return out;
}
}  // namespace

std::vector<float> GcnModel::params() const { return download_floats(*backend_, ws_.pointer(params_), layout_.total * batch_); }
std::vector<float> GcnModel::grads() const { return download_floats(*backend_, ws_.pointer(grads_), layout_.total * batch_); }
std::vector<float> GcnModel::adam_m() const { return download_floats(*backend_, ws_.pointer(adam_m_), layout_.total * batch_); }
std::vector<float> GcnModel::adam_v() const { return download_floats(*backend_, ws_.pointer(adam_v_), layout_.total * batch_); }
std::vector<float> GcnModel::best_params() const { return download_floats(*backend_, ws_.pointer(best_), layout_.total * batch_); }

// Model k's parameters (ParamLayout order) out of the batch layout.
std::vector<std::vector<float>> GcnModel::gather(Workspace::Id id) const {
  const std::vector<float> all = download_floats(*backend_, ws_.pointer(id), layout_.total * batch_);
  std::vector<std::vector<float>> out(static_cast<std::size_t>(batch_));
  for (int k = 0; k < batch_; ++k) {
    std::vector<float>& mine = out[static_cast<std::size_t>(k)];
    mine.reserve(static_cast<std::size_t>(layout_.total));
    for (int b = 0; b < blocks_.count; ++b) {
      const ParamBlock& blk = blocks_.block[b];
      for (int64_t r = 0; r < blk.rows; ++r) {
        const float* src = all.data() + blk.offset + (r * batch_ + k) * blk.cols;
        mine.insert(mine.end(), src, src + blk.cols);
      }
    }
  }
  return out;
}

std::vector<std::vector<float>> GcnModel::model_params() const { return gather(params_); }
std::vector<std::vector<float>> GcnModel::model_best_params() const { return gather(best_); }

void GcnModel::set_model_params(const std::vector<std::vector<float>>& per_model) {
  check_count("models", per_model.size(), batch_);
  std::vector<float> all(static_cast<std::size_t>(layout_.total * batch_));
  for (int k = 0; k < batch_; ++k) {
    const std::vector<float>& mine = per_model[static_cast<std::size_t>(k)];
    check_count("parameters", mine.size(), layout_.total);
    std::size_t at = 0;
    for (int b = 0; b < blocks_.count; ++b) {
      const ParamBlock& blk = blocks_.block[b];
      for (int64_t r = 0; r < blk.rows; ++r) {
        std::copy(mine.begin() + static_cast<std::ptrdiff_t>(at), mine.begin() + static_cast<std::ptrdiff_t>(at + blk.cols),
                  all.begin() + blk.offset + (r * batch_ + k) * blk.cols);
        at += static_cast<std::size_t>(blk.cols);
      }
    }
  }
  set_params(all);
}

void GcnModel::set_adam_state(const std::vector<float>& m, const std::vector<float>& v) {
  if (static_cast<int64_t>(m.size()) != layout_.total * batch_ || static_cast<int64_t>(v.size()) != layout_.total * batch_) {
    throw UsageError(fmt::format("expected {} values per Adam moment, got {} and {}", layout_.total * batch_, m.size(),
                                 v.size()));
  }
  backend_->upload(ws_.pointer(adam_m_), m.data(), m.size() * sizeof(float));
  backend_->upload(ws_.pointer(adam_v_), v.data(), v.size() * sizeof(float));
}

void GcnModel::set_best_params(const std::vector<float>& host) {
  check_count("best-epoch parameters", host.size(), layout_.total * batch_);
  backend_->upload(ws_.pointer(best_), host.data(), host.size() * sizeof(float));
}

void GcnModel::use_best_params() {
  backend_->copy(ws_.pointer(params_), ws_.pointer(best_), ws_.bytes(params_));
  prefix_fresh_ = false;
}

void GcnModel::set_step(const StepState& state) {
  if (batch_ != 1) throw Error("set_step: a batch of models takes set_steps");
  set_steps({state});
}

StepState GcnModel::step() const { return steps().front(); }

void GcnModel::set_steps(std::vector<StepState> states) {
  check_count("step states", states.size(), batch_);
  for (int k = 0; k < batch_; ++k) {
    StepState& s = states[static_cast<std::size_t>(k)];
    s.lr = rates_[static_cast<std::size_t>(k)].lr;
    s.weight_decay = rates_[static_cast<std::size_t>(k)].weight_decay;
    s.dropout = rates_[static_cast<std::size_t>(k)].dropout;
  }
  backend_->upload(ws_.pointer(step_), states.data(), sizeof(StepState) * states.size());
}

void GcnModel::set_rates(const std::vector<ModelRates>& rates) {
  check_count("models' rates", rates.size(), batch_);
  for (const ModelRates& r : rates) {
    if (batch_ == 1 && r.dropout != rates_[0].dropout) {
      throw Error(fmt::format("set_rates: a model of one was planned with dropout {}, not {}", rates_[0].dropout,
                              r.dropout));
    }
    const bool planned_dropout =
        std::any_of(layers_.begin(), layers_.end(), [](const auto& l) { return l->depends_on_pass(); });
    if (r.dropout > 0.0f && !planned_dropout) {
      throw Error("set_rates: dropout in a batch planned without dropout");
    }
    if (!(r.dropout >= 0.0f && r.dropout < 1.0f)) throw UsageError(fmt::format("dropout {} outside [0, 1)", r.dropout));
  }
  rates_ = rates;
}

std::vector<StepState> GcnModel::steps() const {
  std::vector<StepState> s(static_cast<std::size_t>(batch_));
  backend_->download(s.data(), ws_.pointer(step_), sizeof(StepState) * s.size());
  return s;
}

MetricsRing GcnModel::ring() const { return MetricsRing{ws_.get<EpochMetrics>(ring_), kRingSlots}; }

ConstMatRef GcnModel::logits(Pass pass) const { return ws_.mat(out_[pass_index(pass)].back()); }

EpochMetrics GcnModel::metrics(int64_t epoch, int k) const {
  EpochMetrics m{};
  const int64_t slot = ring_index(kRingSlots, epoch > 0 ? epoch - 1 : 0, k, batch_);
  backend_->download(&m, ring().slots + slot, sizeof m);
  return m;
}

// ---- the epoch program --------------------------------------------------------

void GcnModel::prepare(Pass pass) {
  const std::vector<OutputInit>& list = prepare_[pass_index(pass)];
  for (std::size_t i = 0; i < list.size(); i += Backend::kMaxOutputInits) {
    const int count = static_cast<int>(std::min<std::size_t>(Backend::kMaxOutputInits, list.size() - i));
    backend_->prepare_outputs(list.data() + i, count);
  }
}

void GcnModel::forward(Pass pass) {
  const LayerContext c = context();
  const int n_layers = static_cast<int>(layers_.size());
  // The training pass starts after the prefix, which the last evaluation left.
  for (int k = pass == Pass::kTrain ? prefix_ : 0; k < n_layers; ++k) layers_[k]->forward(c, pass);
}

void GcnModel::train_forward_backward() {
  if (!prefix_fresh_) eval_pass(/*advance=*/false);  // parameters set since: recompute the prefix
  const LayerContext c = context();
  const int n_layers = static_cast<int>(layers_.size());
  prepare(Pass::kTrain);
  forward(Pass::kTrain);
  const Layer& last = *layers_[n_layers - 1];
  float* bias_grad = last.bias_offset() >= 0 ? c.grads + last.bias_offset() : nullptr;
  backend_->classifier_loss(ws_.mat(out_[pass_index(Pass::kTrain)][n_layers - 1]), graph_->labels(), graph_->split(),
                            kTrainBit, graph_->n_train(), ws_.mat(grad_[n_layers - 1]), bias_grad, c.step, ring(),
                            batch_);
  for (int k = n_layers - 1; k >= 0; --k) {
    const Fusion& f = fusion_[static_cast<std::size_t>(k)];
    layers_[k]->backward(c, grad_[k], k > 0 ? grad_[k - 1] : -1, f.col_sums >= 0 ? c.grads + f.col_sums : nullptr,
                         f.bias_grad_done);
  }
}

void GcnModel::adam_step(const AdamConfig& config) {
  if (batch_ == 1) {
    backend_->adam_step(ws_.get<float>(params_), ws_.get<float>(grads_), ws_.get<float>(adam_m_),
                        ws_.get<float>(adam_v_), layout_.total, config, ws_.get<StepState>(step_));
  } else {
    backend_->batch_adam_step(ws_.get<float>(params_), ws_.get<float>(grads_), ws_.get<float>(adam_m_),
                              ws_.get<float>(adam_v_), blocks_, config, ws_.get<StepState>(step_), batch_);
  }
  prefix_fresh_ = false;
}

void GcnModel::eval_pass(bool advance) {
  prepare(Pass::kEval);
  forward(Pass::kEval);
  if (advance) {
    const int last = static_cast<int>(layers_.size()) - 1;
    backend_->evaluate(ws_.mat(out_[pass_index(Pass::kEval)][last]), graph_->labels(), graph_->split(), graph_->n_val(),
                       ws_.get<StepState>(step_), ring(), /*advance=*/true, batch_);
  }
  prefix_fresh_ = true;
}

void GcnModel::eval_training_loss() {
  const int last = static_cast<int>(layers_.size()) - 1;
  const ConstMatRef logits = ws_.mat(out_[pass_index(Pass::kEval)][last]);
  backend_->classifier_loss(logits, graph_->labels(), graph_->split(), kTrainBit, graph_->n_train(), MatRef{},
                            nullptr, ws_.get<StepState>(step_), ring(), batch_);
  backend_->evaluate(logits, graph_->labels(), graph_->split(), graph_->n_val(), ws_.get<StepState>(step_), ring(),
                     /*advance=*/false, batch_);
}

void GcnModel::keep_best() {
  if (batch_ == 1) {
    backend_->copy_if_improved(ws_.pointer(best_), ws_.pointer(params_), ws_.bytes(params_), ws_.get<StepState>(step_));
  } else {
    backend_->batch_copy_if_improved(ws_.get<float>(best_), ws_.get<float>(params_), blocks_, ws_.get<StepState>(step_),
                                     batch_);
  }
}

void GcnModel::epoch(const AdamConfig& config, bool copy_best) {
  train_forward_backward();
  adam_step(config);
  eval_pass(/*advance=*/true);
  if (copy_best) keep_best();
}

std::vector<float> GcnModel::log_probabilities() {
  if (batch_ != 1) throw UsageError("log-probabilities are written for one model at a time (a batch of 1)");
  eval_pass(/*advance=*/false);
  const int last = static_cast<int>(layers_.size()) - 1;
  const MatRef out = ws_.mat(scratch_);
  backend_->log_softmax(ws_.mat(out_[pass_index(Pass::kEval)][last]), out);
  return download_floats(*backend_, out.data, out.size());
}

}  // namespace gcn

namespace gcn {

std::vector<float> GcnModel::hidden_output(int64_t* cols) {
  if (batch_ != 1) throw UsageError("embeddings are written for one model at a time (a batch of 1)");
  const int n_layers = static_cast<int>(layers_.size());
  if (n_layers < 2) throw UsageError("a model of one layer has no hidden layer to write");
  eval_pass(/*advance=*/false);
  const MatRef h = ws_.mat(out_[pass_index(Pass::kEval)][n_layers - 2]);
  if (cols != nullptr) *cols = h.cols;
  return download_floats(*backend_, h.data, h.size());
}

}  // namespace gcn
