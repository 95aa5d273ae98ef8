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
#include "gcn/model.hpp"

#include <algorithm>
#include <cmath>
#include <optional>

#include <fmt/format.h>

#include "gcn/error.hpp"
#include "gcn/graph.hpp"
#include "gcn/rng.hpp"

namespace gcn {

// ---- planning ---------------------------------------------------------------

// What a layer declares while the model is planned: parameters (offsets in
// the flat array), tensors, and the outputs of prepared products.
class Planner {
 public:
  Planner(Workspace& ws, const DeviceGraph& graph, int batch) : ws_(ws), graph_(graph), batch_(batch) {}

  const DeviceGraph& graph() const { return graph_; }
  int64_t n_nodes() const { return graph_.n_nodes(); }
  int batch() const { return batch_; }

  // A parameter tensor (rows, cols) of each model: its offset in the flat
  // array, which holds the batch's (rows, batch·cols) block there.
  int64_t add_param(int64_t rows, int64_t cols) {
    const int64_t offset = n_params_ * batch_;
    if (blocks_.count == ParamBlocks::kMax) throw Error("model: more parameter tensors than ParamBlocks holds");
    blocks_.block[blocks_.count++] = ParamBlock{offset, rows, cols};
    n_params_ += rows * cols;
    return offset;
  }
  int64_t n_params() const { return n_params_; }  // one model's
  const ParamBlocks& blocks() const { return blocks_; }

  Workspace::Id tensor(const std::string& name, int64_t rows, int64_t cols) { return ws_.add(name, rows, cols); }

  // The output of a product run with prepared = true in `pass`: a tensor, or
  // a slice (rows, cols) of the gradient array; starting from zeros or from
  // the bias at bias_offset.
  void prepare(Pass pass, Workspace::Id tensor, int64_t bias_offset) {
    prepares_.push_back({pass, tensor, -1, 0, 0, bias_offset});
  }
  void prepare_grad(Pass pass, int64_t grad_offset, int64_t rows, int64_t cols) {
    prepares_.push_back({pass, -1, grad_offset, rows, cols, -1});
  }

  struct Prepare {
    Pass pass;
    Workspace::Id tensor;
    int64_t grad_offset, rows, cols;
    int64_t bias_offset;
  };
  const std::vector<Prepare>& prepares() const { return prepares_; }

 private:
  Workspace& ws_;
  const DeviceGraph& graph_;
  int batch_;
  int64_t n_params_ = 0;
  ParamBlocks blocks_;
  std::vector<Prepare> prepares_;
};

// The host-side structures the restricted products are cut from, made on
// first use while the model is planned.
class TrainingRows {
 public:
  TrainingRows(const DeviceGraph& graph, bool restrict) : graph_(graph), restrict_(restrict) {}
  const DeviceGraph& graph() const { return graph_; }
  bool restrict() const { return restrict_; }
  const CsrMatrix& adj() {
    if (!adj_) adj_ = gcn_norm(graph_.dataset().n_nodes, graph_.dataset().edge_src, graph_.dataset().edge_dst);
    return *adj_;
  }
  const CsrMatrix& adj_t() {
    if (!adj_t_) adj_t_ = adj().transposed();
    return *adj_t_;
  }
  const CsrMatrix& x_t() {
    if (!x_t_) x_t_ = graph_.dataset().features.transposed();
    return *x_t_;
  }
  // A key for a derived matrix: what it is and which rows it keeps.
  static std::string key(const std::string& what, const RowMask& mask) {
    uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a over the mask
    for (uint8_t b : mask) h = (h ^ b) * 0x100000001b3ull;
    return fmt::format("{}/{:016x}", what, h);
  }

 private:
  const DeviceGraph& graph_;
  bool restrict_;
  std::optional<CsrMatrix> adj_, adj_t_, x_t_;
};

namespace {

const char* pass_suffix(Pass pass) { return pass == Pass::kTrain ? ".train" : ".eval"; }
int idx(Pass pass) { return static_cast<int>(pass); }

// GCNConv(in, out): out = Â · (in · W) + b, PyG's order (linear transform,
// then propagation, then bias). A first layer reads the sparse features X.
class GcnConv final : public Layer {
 public:
  GcnConv(std::string name, int64_t in_cols, int64_t out_cols) : name_(std::move(name)), in_(in_cols), out_(out_cols) {}

  std::string describe() const override { return fmt::format("GCNConv({}, {})", in_, out_); }
  bool depends_on_pass() const override { return false; }
  int64_t out_cols() const override { return out_; }
  int64_t bias_offset() const override { return bias_; }

  void plan(Planner& p, const Workspace::Id in[2], bool shared, Workspace::Id out[2]) override {
    weight_ = p.add_param(in_, out_);  // conv.lin.weight, stored (in, out)
    bias_ = p.add_param(1, out_);      // conv.bias
    sparse_input_ = in[0] < 0;
    const int64_t n = p.n_nodes();
    batch_ = p.batch();
    const int64_t out_b = out_ * batch_;  // the batch's columns
    for (Pass pass : {Pass::kEval, Pass::kTrain}) {
      in_ids_[idx(pass)] = in[idx(pass)];
      if (shared && pass == Pass::kTrain) {
        xw_[idx(pass)] = xw_[idx(Pass::kEval)];
        out[idx(pass)] = out[idx(Pass::kEval)];
        continue;
      }
      const std::string suffix = shared ? "" : pass_suffix(pass);
      xw_[idx(pass)] = p.tensor(name_ + ".xw" + suffix, n, out_b);   // (N, out) in · W
      out[idx(pass)] = p.tensor(name_ + ".out" + suffix, n, out_b);  // (N, out) Â · (in · W) + b
      p.prepare(pass, out[idx(pass)], bias_);
      if (sparse_input_) p.prepare(pass, xw_[idx(pass)], -1);
    }
    for (int i = 0; i < 2; ++i) out_ids_[i] = out[i];
    grad_xw_ = p.tensor(name_ + ".xw.grad", n, out_b);  // (N, out) Âᵀ · dL/d out
    p.prepare(Pass::kTrain, grad_xw_, -1);
    if (sparse_input_) p.prepare_grad(Pass::kTrain, weight_, in_, out_b);
    edges_ = &p.graph().gcn_norm();
  }

  RowMask plan_training_rows(TrainingRows& rows, const RowMask* needed_out, const RowMask& grad_out_rows) override {
    const DeviceGraph& g = rows.graph();
    const bool symmetric = edges_->transpose == nullptr;
    const CsrMatrix& back = symmetric ? rows.adj() : rows.adj_t();
    const RowMask xw_rows = rows_reaching(back, grad_out_rows);
    if (!rows.restrict()) return xw_rows;
    if (needed_out != nullptr) {  // Â's rows the loss reads
      train_forward_ = &g.derived(TrainingRows::key("gcn_norm.rows", *needed_out),
                                  [&] { return keep_rows(rows.adj(), *needed_out); });
    }
    backward_ = &g.derived(TrainingRows::key(symmetric ? "gcn_norm.columns" : "gcn_norm_t.columns", grad_out_rows),
                           [&] { return keep_columns(back, grad_out_rows); });
    if (sparse_input_) {
      features_t_ = &g.derived(TrainingRows::key("features_t.columns", xw_rows),
                               [&] { return keep_columns(rows.x_t(), xw_rows); });
    }
    return xw_rows;
  }

  void forward(const LayerContext& c, Pass pass) const override {
    Backend& be = *c.backend;
    const ConstMatRef w(c.params + weight_, in_, out_ * c.batch);
    const MatRef xw = c.ws->mat(xw_[idx(pass)]);
    if (sparse_input_) {
      be.spmm(c.graph->features(), w, xw, nullptr, /*prepared=*/true);  // X · W, every model at once
    } else {
      be.gemm(c.ws->mat(in_ids_[idx(pass)]), false, w, false, xw, c.batch);  // in · W, model by model
    }
    const SparseMatrix& adj = pass == Pass::kTrain && train_forward_ != nullptr ? *train_forward_ : *edges_->forward;
    be.spmm(adj, xw, c.ws->mat(out_ids_[idx(pass)]), c.params + bias_, /*prepared=*/true);
  }

  void backward(const LayerContext& c, Workspace::Id grad_out, Workspace::Id grad_in, float* col_sums,
                bool bias_grad_done) const override {
    if (col_sums != nullptr) throw Error(describe() + ": cannot fuse the column sums of its input gradient");
    Backend& be = *c.backend;
    const ConstMatRef g = c.ws->mat(grad_out);
    if (!bias_grad_done) be.column_sum(g, c.grads + bias_);
    const MatRef gxw = c.ws->mat(grad_xw_);
    be.spmm(backward_ != nullptr ? *backward_ : edges_->backward(), g, gxw, nullptr,
            /*prepared=*/true);  // dL/d(in · W) = Âᵀ · g
    const MatRef dw{c.grads + weight_, in_, out_ * c.batch};
    if (sparse_input_) {
      be.spmm(features_t_ != nullptr ? *features_t_ : c.graph->features_t(), gxw, dw, nullptr,
              /*prepared=*/true);  // Xᵀ · (.)
    } else {
      be.gemm(c.ws->mat(in_ids_[idx(Pass::kTrain)]), true, gxw, false, dw, c.batch);  // inᵀ · (.)
    }
    if (grad_in >= 0) {
      const ConstMatRef w(c.params + weight_, in_, out_ * c.batch);
      be.gemm(gxw, false, w, true, c.ws->mat(grad_in), c.batch);  // dL/d in = (.) · Wᵀ
    }
  }

 private:
  std::string name_;
  int64_t in_, out_;
  int64_t weight_ = -1, bias_ = -1;
  int batch_ = 1;
  bool sparse_input_ = false;
  const EdgeSet* edges_ = nullptr;
  // The training pass's restricted products (null: the full matrices).
  const SparseMatrix* train_forward_ = nullptr;  // Â's rows the loss reads
  const SparseMatrix* backward_ = nullptr;       // Âᵀ's columns where dL/d out can be non-zero
  const SparseMatrix* features_t_ = nullptr;     // Xᵀ's columns where dL/d(X·W) can be non-zero
  Workspace::Id in_ids_[2] = {-1, -1}, xw_[2] = {-1, -1}, out_ids_[2] = {-1, -1}, grad_xw_ = -1;
};

// ReLU, then dropout(p) in the training pass: one fused op each way. In a
// batch, each model drops with its own rate (its step state's); p is then
// the largest (whether any model drops).
class ReluDropout final : public Layer {
 public:
  ReluDropout(std::string name, int64_t cols, float p, bool per_model)
      : name_(std::move(name)), cols_(cols), p_(p), per_model_(per_model) {}

  std::string describe() const override {
    if (per_model_) return p_ > 0.0f ? "ReLU -> dropout (per model)" : "ReLU";
    return p_ > 0.0f ? fmt::format("ReLU -> dropout({})", p_) : std::string("ReLU");
  }
  bool depends_on_pass() const override { return p_ > 0.0f; }
  int64_t out_cols() const override { return cols_; }
  bool fuses_column_sums() const override { return true; }

  void plan(Planner& p, const Workspace::Id in[2], bool shared, Workspace::Id out[2]) override {
    for (Pass pass : {Pass::kEval, Pass::kTrain}) {
      in_ids_[idx(pass)] = in[idx(pass)];
      if (shared && pass == Pass::kTrain) {
        out[idx(pass)] = out[idx(Pass::kEval)];
      } else {
        out[idx(pass)] =
            p.tensor(name_ + ".out" + (shared ? "" : pass_suffix(pass)), p.n_nodes(), cols_ * p.batch());
      }
      out_ids_[idx(pass)] = out[idx(pass)];
    }
  }

  void forward(const LayerContext& c, Pass pass) const override {
    if (per_model_ && pass == Pass::kTrain) {
      c.backend->batch_relu_dropout_forward(c.ws->mat(in_ids_[idx(pass)]), c.ws->mat(out_ids_[idx(pass)]), c.step,
                                            c.batch);
      return;
    }
    c.backend->relu_dropout_forward(c.ws->mat(in_ids_[idx(pass)]), c.ws->mat(out_ids_[idx(pass)]),
                                    pass == Pass::kTrain ? p_ : 0.0f, c.step);
  }

  RowMask plan_training_rows(TrainingRows&, const RowMask*, const RowMask& grad_out_rows) override {
    return grad_out_rows;  // dx is zero wherever dy is
  }

  void backward(const LayerContext& c, Workspace::Id grad_out, Workspace::Id grad_in, float* col_sums,
                bool /*bias_grad_done*/) const override {
    if (grad_in < 0) return;
    if (per_model_) {
      c.backend->batch_relu_dropout_backward(c.ws->mat(grad_out), c.ws->mat(out_ids_[idx(Pass::kTrain)]),
                                             c.ws->mat(grad_in), c.step, c.batch, col_sums);
      return;
    }
    c.backend->relu_dropout_backward(c.ws->mat(grad_out), c.ws->mat(out_ids_[idx(Pass::kTrain)]),
                                     c.ws->mat(grad_in), p_, col_sums);
  }

 private:
  std::string name_;
  int64_t cols_;
  float p_;
  bool per_model_;
  Workspace::Id in_ids_[2] = {-1, -1}, out_ids_[2] = {-1, -1};
};

}  // namespace

// ---- the model ----------------------------------------------------------------

GcnModel::GcnModel(const DeviceGraph& graph, const GcnShape& shape, float dropout, bool restrict_training)
    : GcnModel(graph, shape, std::vector<ModelRates>{ModelRates{0.0f, 0.0f, dropout}}, restrict_training) {}

GcnModel::GcnModel(const DeviceGraph& graph, const GcnShape& shape, const std::vector<ModelRates>& rates,
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
  if (shape.hidden < 1) throw UsageError("hidden size must be at least 1");
  float max_dropout = 0.0f;
  for (const ModelRates& r : rates) {
    if (!(r.dropout >= 0.0f && r.dropout < 1.0f)) throw UsageError(fmt::format("dropout {} outside [0, 1)", r.dropout));
    max_dropout = std::max(max_dropout, r.dropout);
  }
  layers_.push_back(std::make_unique<GcnConv>("conv1", shape.n_features, shape.hidden));
  layers_.push_back(std::make_unique<ReluDropout>("act1", shape.hidden, max_dropout, batch_ > 1));
  layers_.push_back(std::make_unique<GcnConv>("conv2", shape.hidden, shape.n_classes));
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
    grad_.push_back(ws_.add(ws_.name(out_[idx(Pass::kTrain)][k]) + ".grad", graph_->n_nodes(),
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
  if (planner.n_params() != layout_.total) {
    throw Error(fmt::format("model: {} parameters planned, {} in the checkpoint layout", planner.n_params(),
                            layout_.total));
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
    prepare_[idx(p.pass)].push_back(init);
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
    s.reserved = 0;
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

ConstMatRef GcnModel::logits(Pass pass) const { return ws_.mat(out_[idx(pass)].back()); }

EpochMetrics GcnModel::metrics(int64_t epoch, int k) const {
  EpochMetrics m{};
  const int64_t slot = ring_index(kRingSlots, epoch > 0 ? epoch - 1 : 0, k, batch_);
  backend_->download(&m, ring().slots + slot, sizeof m);
  return m;
}

// ---- the epoch program --------------------------------------------------------

void GcnModel::prepare(Pass pass) {
  const std::vector<OutputInit>& list = prepare_[idx(pass)];
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
  backend_->classifier_loss(ws_.mat(out_[idx(Pass::kTrain)][n_layers - 1]), graph_->labels(), graph_->split(),
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
    backend_->evaluate(ws_.mat(out_[idx(Pass::kEval)][last]), graph_->labels(), graph_->split(), graph_->n_val(),
                       ws_.get<StepState>(step_), ring(), /*advance=*/true, batch_);
  }
  prefix_fresh_ = true;
}

void GcnModel::eval_training_loss() {
  const int last = static_cast<int>(layers_.size()) - 1;
  const ConstMatRef logits = ws_.mat(out_[idx(Pass::kEval)][last]);
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
  backend_->log_softmax(ws_.mat(out_[idx(Pass::kEval)][last]), out);
  return download_floats(*backend_, out.data, out.size());
}

}  // namespace gcn

namespace gcn {

std::vector<float> GcnModel::hidden_output(int64_t* cols) {
  if (batch_ != 1) throw UsageError("embeddings are written for one model at a time (a batch of 1)");
  eval_pass(/*advance=*/false);
  const int n_layers = static_cast<int>(layers_.size());
  const MatRef h = ws_.mat(out_[idx(Pass::kEval)][n_layers - 2]);
  if (cols != nullptr) *cols = h.cols;
  return download_floats(*backend_, h.data, h.size());
}

}  // namespace gcn
