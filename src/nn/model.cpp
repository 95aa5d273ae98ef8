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

// Dropout sites (gcn/rng.hpp site_seed): the activation after layer k draws
// at site k (the tutorial GCN's one dropout at site 0, its old stream), the
// input features at kInputSite, layer k's attention at kAttentionSite + k.
constexpr uint32_t kInputSite = 100;
constexpr uint32_t kAttentionSite = 200;

// A layer's input times a weight: in · W for a dense input, X · W for the
// graph's sparse features (with the features' dropout in the training pass:
// each model's own copy of X's values), and the weight gradient inᵀ · g.
class InputProduct {
 public:
  void plan(Planner& p, const std::string& name, const Workspace::Id in[2], float input_dropout) {
    sparse_ = in[0] < 0;
    for (int i = 0; i < 2; ++i) in_[i] = in[i];
    dropout_ = sparse_ ? input_dropout : 0.0f;
    if (dropout_ > 0.0f) {
      const int64_t nnz = p.graph().features().nnz();
      x_values_ = p.tensor(name + ".x.dropped", p.batch(), nnz);
      xt_values_ = p.tensor(name + ".x_t.dropped", p.batch(), nnz);
    }
  }
  bool sparse() const { return sparse_; }
  // Whether the products run with prepared = true (the sparse ones).
  bool prepared() const { return sparse_; }
  void set_restricted_features_t(const SparseMatrix* xt) { features_t_ = xt; }

  // out = in · w (w: (in, batch · cols) blocks).
  void forward(const LayerContext& c, Pass pass, ConstMatRef w, MatRef out) const {
    Backend& be = *c.backend;
    if (!sparse_) {
      be.gemm(c.ws->mat(in_[idx(pass)]), false, w, false, out, c.batch);  // in · W, model by model
    } else if (pass == Pass::kTrain && dropout_ > 0.0f) {
      const SparseMatrix& x = c.graph->features();
      float* values = c.ws->get<float>(x_values_);
      be.sparse_dropout(x, /*transposed=*/false, dropout_, c.step, c.batch, kInputSite, values);
      be.spmm_values(x, values, w, out, c.batch, /*prepared=*/true);  // dropout(X) · W, model by model
    } else {
      be.spmm(c.graph->features(), w, out, nullptr, /*prepared=*/true);  // X · W, every model at once
    }
  }
  // dw = inᵀ · g (training pass).
  void weight_grad(const LayerContext& c, ConstMatRef g, MatRef dw) const {
    Backend& be = *c.backend;
    if (!sparse_) {
      be.gemm(c.ws->mat(in_[idx(Pass::kTrain)]), true, g, false, dw, c.batch);
      return;
    }
    const SparseMatrix& xt = features_t_ != nullptr ? *features_t_ : c.graph->features_t();
    if (dropout_ > 0.0f) {
      float* values = c.ws->get<float>(xt_values_);
      be.sparse_dropout(xt, /*transposed=*/true, dropout_, c.step, c.batch, kInputSite, values);
      be.spmm_values(xt, values, g, dw, c.batch, /*prepared=*/true);
    } else {
      be.spmm(xt, g, dw, nullptr, /*prepared=*/true);  // Xᵀ · g
    }
  }

 private:
  bool sparse_ = false;
  float dropout_ = 0.0f;
  Workspace::Id in_[2] = {-1, -1}, x_values_ = -1, xt_values_ = -1;
  const SparseMatrix* features_t_ = nullptr;
};

// GCNConv(in, out): out = Â · (in · W) + b, PyG's order (linear transform,
// then propagation, then bias). A first layer reads the sparse features X.
class GcnConv final : public Layer {
 public:
  GcnConv(std::string name, int64_t in_cols, int64_t out_cols, float input_dropout)
      : name_(std::move(name)), in_(in_cols), out_(out_cols), input_dropout_(input_dropout) {}

  std::string describe() const override { return fmt::format("GCNConv({}, {})", in_, out_); }
  bool depends_on_pass() const override { return input_dropout_ > 0.0f; }
  int64_t out_cols() const override { return out_; }
  int64_t bias_offset() const override { return bias_; }

  void plan(Planner& p, const Workspace::Id in[2], bool shared, Workspace::Id out[2]) override {
    weight_ = p.add_param(in_, out_);  // conv.lin.weight, stored (in, out)
    bias_ = p.add_param(1, out_);      // conv.bias
    input_.plan(p, name_, in, input_dropout_);
    const int64_t n = p.n_nodes();
    const int64_t out_b = out_ * p.batch();  // the batch's columns
    for (Pass pass : {Pass::kEval, Pass::kTrain}) {
      if (shared && pass == Pass::kTrain) {
        xw_[idx(pass)] = xw_[idx(Pass::kEval)];
        out[idx(pass)] = out[idx(Pass::kEval)];
        continue;
      }
      const std::string suffix = shared ? "" : pass_suffix(pass);
      xw_[idx(pass)] = p.tensor(name_ + ".xw" + suffix, n, out_b);   // (N, out) in · W
      out[idx(pass)] = p.tensor(name_ + ".out" + suffix, n, out_b);  // (N, out) Â · (in · W) + b
      p.prepare(pass, out[idx(pass)], bias_);
      if (input_.prepared()) p.prepare(pass, xw_[idx(pass)], -1);
    }
    for (int i = 0; i < 2; ++i) out_ids_[i] = out[i];
    grad_xw_ = p.tensor(name_ + ".xw.grad", n, out_b);  // (N, out) Âᵀ · dL/d out
    p.prepare(Pass::kTrain, grad_xw_, -1);
    if (input_.prepared()) p.prepare_grad(Pass::kTrain, weight_, in_, out_b);
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
    if (input_.sparse()) {
      input_.set_restricted_features_t(&g.derived(TrainingRows::key("features_t.columns", xw_rows),
                                                  [&] { return keep_columns(rows.x_t(), xw_rows); }));
    }
    return xw_rows;
  }

  void forward(const LayerContext& c, Pass pass) const override {
    const ConstMatRef w(c.params + weight_, in_, out_ * c.batch);
    const MatRef xw = c.ws->mat(xw_[idx(pass)]);
    input_.forward(c, pass, w, xw);
    const SparseMatrix& adj = pass == Pass::kTrain && train_forward_ != nullptr ? *train_forward_ : *edges_->forward;
    c.backend->spmm(adj, xw, c.ws->mat(out_ids_[idx(pass)]), c.params + bias_, /*prepared=*/true);
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
    input_.weight_grad(c, gxw, MatRef{c.grads + weight_, in_, out_ * c.batch});
    if (grad_in >= 0) {
      const ConstMatRef w(c.params + weight_, in_, out_ * c.batch);
      be.gemm(gxw, false, w, true, c.ws->mat(grad_in), c.batch);  // dL/d in = (.) · Wᵀ
    }
  }

 private:
  std::string name_;
  int64_t in_, out_;
  float input_dropout_;
  InputProduct input_;
  int64_t weight_ = -1, bias_ = -1;
  const EdgeSet* edges_ = nullptr;
  // The training pass's restricted products (null: the full matrices).
  const SparseMatrix* train_forward_ = nullptr;  // Â's rows the loss reads
  const SparseMatrix* backward_ = nullptr;       // Âᵀ's columns where dL/d out can be non-zero
  Workspace::Id xw_[2] = {-1, -1}, out_ids_[2] = {-1, -1}, grad_xw_ = -1;
};

// SAGEConv's sparse operators. Mean aggregation M (N, N): row i holds
// 1 / deg_in(i) at the source j of each edge j -> i (duplicates count
// twice, as PyG's scatter mean does; no self loops added; an isolated
// node's row is empty). The layer's forward is one product
//   out = [M | I] · [in · W_l ; in · W_r] + b        ([M | I]: (N, 2N))
// so the root term needs no separate sum; its backward
//   [dZ_l ; dZ_r] = [M | I]ᵀ · g,  dW_l = inᵀ · dZ_l,  dW_r = inᵀ · dZ_r,
//   d in = [I I] · [dZ_l · W_lᵀ ; dZ_r · W_rᵀ]
// (the two terms summed in a fixed order by a product with [I I]).
CsrMatrix mean_and_root(const Dataset& d) {
  const int32_t n = d.n_nodes;
  std::vector<int32_t> deg(static_cast<std::size_t>(n), 0);
  for (int32_t t : d.edge_dst) ++deg[static_cast<std::size_t>(t)];
  std::vector<std::vector<int32_t>> src(static_cast<std::size_t>(n));
  for (std::size_t e = 0; e < d.edge_src.size(); ++e) src[static_cast<std::size_t>(d.edge_dst[e])].push_back(d.edge_src[e]);
  CsrMatrix m;
  m.n_rows = n;
  m.n_cols = 2 * n;
  m.indptr.assign(1, 0);
  for (int32_t i = 0; i < n; ++i) {
    std::vector<int32_t>& s = src[static_cast<std::size_t>(i)];
    std::sort(s.begin(), s.end());
    const float inv = deg[i] > 0 ? static_cast<float>(1.0 / deg[i]) : 0.0f;
    for (std::size_t k = 0; k < s.size(); ++k) {
      if (k > 0 && s[k] == s[k - 1]) {
        m.values.back() = static_cast<float>(static_cast<double>(m.values.back()) + 1.0 / deg[i]);
        continue;
      }
      m.indices.push_back(s[k]);
      m.values.push_back(inv);
    }
    m.indices.push_back(n + i);  // the root term
    m.values.push_back(1.0f);
    m.indptr.push_back(static_cast<int32_t>(m.indices.size()));
  }
  return m;
}

CsrMatrix sum_halves(int32_t n) {  // [I I] (N, 2N)
  CsrMatrix m;
  m.n_rows = n;
  m.n_cols = 2 * n;
  m.indptr.assign(1, 0);
  for (int32_t i = 0; i < n; ++i) {
    m.indices.push_back(i);
    m.indices.push_back(n + i);
    m.values.push_back(1.0f);
    m.values.push_back(1.0f);
    m.indptr.push_back(static_cast<int32_t>(m.indices.size()));
  }
  return m;
}

// SAGEConv(in, out), mean aggregation, root weight:
//   out_i = lin_l(mean over j -> i of in_j) + lin_r(in_i)
// (lin_l carries the bias). PyG takes the mean before lin_l; the product is
// associative, so this takes it after (M · (in · W_l)): the same values up
// to rounding, and for the sparse features far less work.
class SageConv final : public Layer {
 public:
  SageConv(std::string name, int64_t in_cols, int64_t out_cols, float input_dropout)
      : name_(std::move(name)), in_(in_cols), out_(out_cols), input_dropout_(input_dropout) {}

  std::string describe() const override { return fmt::format("SAGEConv({}, {}, aggr=mean)", in_, out_); }
  bool depends_on_pass() const override { return input_dropout_ > 0.0f; }
  int64_t out_cols() const override { return out_; }
  int64_t bias_offset() const override { return bias_; }

  void plan(Planner& p, const Workspace::Id in[2], bool shared, Workspace::Id out[2]) override {
    weight_l_ = p.add_param(in_, out_);  // conv.lin_l.weight
    bias_ = p.add_param(1, out_);        // conv.lin_l.bias
    weight_r_ = p.add_param(in_, out_);  // conv.lin_r.weight
    input_.plan(p, name_, in, input_dropout_);
    const int64_t n = p.n_nodes();
    const int64_t out_b = out_ * p.batch();
    n_ = n;
    for (Pass pass : {Pass::kEval, Pass::kTrain}) {
      if (shared && pass == Pass::kTrain) {
        z_[idx(pass)] = z_[idx(Pass::kEval)];
        out[idx(pass)] = out[idx(Pass::kEval)];
        continue;
      }
      const std::string suffix = shared ? "" : pass_suffix(pass);
      z_[idx(pass)] = p.tensor(name_ + ".z" + suffix, 2 * n, out_b);  // (2N, out) [in · W_l ; in · W_r]
      out[idx(pass)] = p.tensor(name_ + ".out" + suffix, n, out_b);
      p.prepare(pass, out[idx(pass)], bias_);
      if (input_.prepared()) p.prepare(pass, z_[idx(pass)], -1);
    }
    for (int i = 0; i < 2; ++i) out_ids_[i] = out[i];
    grad_z_ = p.tensor(name_ + ".z.grad", 2 * n, out_b);
    p.prepare(Pass::kTrain, grad_z_, -1);
    if (input_.prepared()) {
      p.prepare_grad(Pass::kTrain, weight_l_, in_, out_b);
      p.prepare_grad(Pass::kTrain, weight_r_, in_, out_b);
    } else {
      terms_ = p.tensor(name_ + ".in.grad.terms", 2 * n, in_ * p.batch());
    }
    const Dataset& d = p.graph().dataset();
    forward_ = &p.graph().derived("sage.mean_root", [&] { return mean_and_root(d); });
    backward_ = &p.graph().derived("sage.mean_root_t", [&] { return mean_and_root(d).transposed(); });
    if (!input_.prepared()) sum_ = &p.graph().derived("sage.sum_halves", [&] { return sum_halves(d.n_nodes); });
  }

  RowMask plan_training_rows(TrainingRows&, const RowMask*, const RowMask& grad_out_rows) override {
    return RowMask(grad_out_rows.size(), 1);  // not restricted
  }

  void forward(const LayerContext& c, Pass pass) const override {
    const MatRef z = c.ws->mat(z_[idx(pass)]);
    const int64_t cols = out_ * c.batch;
    input_.forward(c, pass, ConstMatRef(c.params + weight_l_, in_, cols), MatRef{z.data, n_, cols});
    input_.forward(c, pass, ConstMatRef(c.params + weight_r_, in_, cols), MatRef{z.data + n_ * cols, n_, cols});
    c.backend->spmm(*forward_, z, c.ws->mat(out_ids_[idx(pass)]), c.params + bias_, /*prepared=*/true);
  }

  void backward(const LayerContext& c, Workspace::Id grad_out, Workspace::Id grad_in, float* col_sums,
                bool bias_grad_done) const override {
    if (col_sums != nullptr) throw Error(describe() + ": cannot fuse the column sums of its input gradient");
    Backend& be = *c.backend;
    const ConstMatRef g = c.ws->mat(grad_out);
    if (!bias_grad_done) be.column_sum(g, c.grads + bias_);
    const MatRef gz = c.ws->mat(grad_z_);
    be.spmm(*backward_, g, gz, nullptr, /*prepared=*/true);  // [dZ_l ; dZ_r]
    const int64_t cols = out_ * c.batch;
    const ConstMatRef gl(gz.data, n_, cols), gr(gz.data + n_ * cols, n_, cols);
    input_.weight_grad(c, gl, MatRef{c.grads + weight_l_, in_, cols});
    input_.weight_grad(c, gr, MatRef{c.grads + weight_r_, in_, cols});
    if (grad_in >= 0) {
      const MatRef t = c.ws->mat(terms_);
      const int64_t in_b = in_ * c.batch;
      be.gemm(gl, false, ConstMatRef(c.params + weight_l_, in_, cols), true, MatRef{t.data, n_, in_b}, c.batch);
      be.gemm(gr, false, ConstMatRef(c.params + weight_r_, in_, cols), true, MatRef{t.data + n_ * in_b, n_, in_b},
              c.batch);
      be.spmm(*sum_, t, c.ws->mat(grad_in));  // dZ_l · W_lᵀ + dZ_r · W_rᵀ
    }
  }

 private:
  std::string name_;
  int64_t in_, out_;
  float input_dropout_;
  InputProduct input_;
  int64_t n_ = 0;
  int64_t weight_l_ = -1, bias_ = -1, weight_r_ = -1;
  const SparseMatrix* forward_ = nullptr;   // [M | I]
  const SparseMatrix* backward_ = nullptr;  // [M | I]ᵀ
  const SparseMatrix* sum_ = nullptr;       // [I I]
  Workspace::Id z_[2] = {-1, -1}, out_ids_[2] = {-1, -1}, grad_z_ = -1, terms_ = -1;
};

// GATConv(in, ch, heads): xw = in · W (heads blocks of ch), attention over
// the edges into each node (self loops added), dropout on the coefficients
// in training, out = Σ α · xw_j + bias, heads concatenated (the last layer
// has one head, so concat=False's mean is the same).
class GatConv final : public Layer {
 public:
  GatConv(std::string name, int64_t in_cols, int64_t channels, int heads, float input_dropout,
          float attention_dropout, uint32_t site)
      : name_(std::move(name)), in_(in_cols), ch_(channels), heads_(heads), input_dropout_(input_dropout),
        attention_dropout_(attention_dropout), site_(site) {}

  std::string describe() const override {
    std::string args = fmt::format("GATConv({}, {}", in_, ch_);
    if (heads_ > 1) args += fmt::format(", heads={}", heads_);
    if (attention_dropout_ > 0.0f) args += fmt::format(", dropout={}", attention_dropout_);
    return args + ")";
  }
  bool depends_on_pass() const override { return attention_dropout_ > 0.0f || input_dropout_ > 0.0f; }
  int64_t out_cols() const override { return ch_ * heads_; }
  int64_t bias_offset() const override { return bias_; }

  void plan(Planner& p, const Workspace::Id in[2], bool shared, Workspace::Id out[2]) override {
    const int64_t cols = ch_ * heads_;
    weight_ = p.add_param(in_, cols);  // conv.lin.weight
    att_src_ = p.add_param(1, cols);   // conv.att_src
    att_dst_ = p.add_param(1, cols);   // conv.att_dst
    bias_ = p.add_param(1, cols);      // conv.bias
    input_.plan(p, name_, in, input_dropout_);
    edges_ = &p.graph().attention_edges();
    const int64_t n = p.n_nodes(), e = edges_->n_edges, b = p.batch();
    for (Pass pass : {Pass::kEval, Pass::kTrain}) {
      const int i = idx(pass);
      if (shared && pass == Pass::kTrain) {
        xw_[i] = xw_[idx(Pass::kEval)];
        s_src_[i] = s_src_[idx(Pass::kEval)];
        s_dst_[i] = s_dst_[idx(Pass::kEval)];
        alpha_[i] = alpha_[idx(Pass::kEval)];
        out[i] = out[idx(Pass::kEval)];
        continue;
      }
      const std::string suffix = shared ? "" : pass_suffix(pass);
      xw_[i] = p.tensor(name_ + ".xw" + suffix, n, cols * b);
      s_src_[i] = p.tensor(name_ + ".score_src" + suffix, n, heads_ * b);
      s_dst_[i] = p.tensor(name_ + ".score_dst" + suffix, n, heads_ * b);
      alpha_[i] = p.tensor(name_ + ".alpha" + suffix, e, heads_ * b);
      out[i] = p.tensor(name_ + ".out" + suffix, n, cols * b);
      if (input_.prepared()) p.prepare(pass, xw_[i], -1);
    }
    for (int i = 0; i < 2; ++i) out_ids_[i] = out[i];
    grad_xw_ = p.tensor(name_ + ".xw.grad", n, cols * b);
    grad_alpha_ = p.tensor(name_ + ".alpha.grad", e, heads_ * b);
    grad_s_src_ = p.tensor(name_ + ".score_src.grad", n, heads_ * b);
    grad_s_dst_ = p.tensor(name_ + ".score_dst.grad", n, heads_ * b);
    if (input_.prepared()) p.prepare_grad(Pass::kTrain, weight_, in_, cols * b);
  }

  RowMask plan_training_rows(TrainingRows&, const RowMask*, const RowMask& grad_out_rows) override {
    return RowMask(grad_out_rows.size(), 1);  // not restricted
  }

  void forward(const LayerContext& c, Pass pass) const override {
    Backend& be = *c.backend;
    const int i = idx(pass);
    const int64_t cols = ch_ * heads_ * c.batch;
    const MatRef xw = c.ws->mat(xw_[i]);
    input_.forward(c, pass, ConstMatRef(c.params + weight_, in_, cols), xw);
    be.gat_attention(*edges_, xw, c.params + att_src_, c.params + att_dst_, heads_, c.ws->mat(s_src_[i]),
                     c.ws->mat(s_dst_[i]), c.ws->mat(alpha_[i]), c.batch);
    be.gat_aggregate(*edges_, c.ws->mat(alpha_[i]), xw, heads_, c.params + bias_, c.ws->mat(out_ids_[i]),
                     pass == Pass::kTrain ? attention_dropout_ : 0.0f, c.step, site_, c.batch);
  }

  void backward(const LayerContext& c, Workspace::Id grad_out, Workspace::Id grad_in, float* col_sums,
                bool bias_grad_done) const override {
    if (col_sums != nullptr) throw Error(describe() + ": cannot fuse the column sums of its input gradient");
    Backend& be = *c.backend;
    const int t = idx(Pass::kTrain);
    const int64_t cols = ch_ * heads_ * c.batch;
    const ConstMatRef g = c.ws->mat(grad_out);
    if (!bias_grad_done) be.column_sum(g, c.grads + bias_);
    const MatRef gxw = c.ws->mat(grad_xw_);
    be.gat_backward(*edges_, g, c.ws->mat(xw_[t]), c.params + att_src_, c.params + att_dst_, c.ws->mat(s_src_[t]),
                    c.ws->mat(s_dst_[t]), c.ws->mat(alpha_[t]), heads_, attention_dropout_, c.step, site_, gxw,
                    c.grads + att_src_, c.grads + att_dst_, c.ws->mat(grad_alpha_), c.ws->mat(grad_s_src_),
                    c.ws->mat(grad_s_dst_), c.batch);
    input_.weight_grad(c, gxw, MatRef{c.grads + weight_, in_, cols});
    if (grad_in >= 0) {
      be.gemm(gxw, false, ConstMatRef(c.params + weight_, in_, cols), true, c.ws->mat(grad_in), c.batch);
    }
  }

 private:
  std::string name_;
  int64_t in_, ch_;
  int heads_;
  float input_dropout_, attention_dropout_;
  uint32_t site_;
  InputProduct input_;
  const EdgeLists* edges_ = nullptr;
  int64_t weight_ = -1, att_src_ = -1, att_dst_ = -1, bias_ = -1;
  Workspace::Id xw_[2] = {-1, -1}, s_src_[2] = {-1, -1}, s_dst_[2] = {-1, -1}, alpha_[2] = {-1, -1};
  Workspace::Id out_ids_[2] = {-1, -1}, grad_xw_ = -1, grad_alpha_ = -1, grad_s_src_ = -1, grad_s_dst_ = -1;
};

// An activation (ReLU or ELU), then dropout(p) in the training pass: one
// fused op each way. In a batch, each model drops with its own rate (its
// step state's); p is then the largest (whether any model drops).
class ActDropout final : public Layer {
 public:
  ActDropout(std::string name, int64_t cols, Activation act, float p, bool per_model, uint32_t site)
      : name_(std::move(name)), cols_(cols), act_(act), p_(p), per_model_(per_model), site_(site) {}

  std::string describe() const override {
    const char* act = act_ == Activation::kElu ? "ELU" : "ReLU";
    if (per_model_) return p_ > 0.0f ? fmt::format("{} -> dropout (per model)", act) : std::string(act);
    return p_ > 0.0f ? fmt::format("{} -> dropout({})", act, p_) : std::string(act);
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
    const bool train = pass == Pass::kTrain;
    c.backend->act_dropout_forward(act_, c.ws->mat(in_ids_[idx(pass)]), c.ws->mat(out_ids_[idx(pass)]),
                                   train && !per_model_ ? p_ : 0.0f, c.step, per_model_ && train ? c.batch : 1,
                                   per_model_ && train, site_);
  }

  RowMask plan_training_rows(TrainingRows&, const RowMask*, const RowMask& grad_out_rows) override {
    return grad_out_rows;  // dx is zero wherever dy is
  }

  void backward(const LayerContext& c, Workspace::Id grad_out, Workspace::Id grad_in, float* col_sums,
                bool /*bias_grad_done*/) const override {
    if (grad_in < 0) return;
    c.backend->act_dropout_backward(act_, c.ws->mat(grad_out), c.ws->mat(out_ids_[idx(Pass::kTrain)]),
                                    c.ws->mat(grad_in), per_model_ ? 0.0f : p_, c.step, per_model_ ? c.batch : 1,
                                    per_model_, site_, col_sums);
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
  shape.validate();
  float max_dropout = 0.0f;
  for (const ModelRates& r : rates) {
    if (!(r.dropout >= 0.0f && r.dropout < 1.0f)) throw UsageError(fmt::format("dropout {} outside [0, 1)", r.dropout));
    max_dropout = std::max(max_dropout, r.dropout);
  }
  const Activation act = shape.kind == ModelKind::kGat ? Activation::kElu : Activation::kRelu;
  for (int k = 0; k < shape.layers; ++k) {
    const std::string name = fmt::format("conv{}", k + 1);
    const int64_t in = shape.in_cols(k);
    const float input_dropout = k == 0 ? shape.input_dropout : 0.0f;
    switch (shape.kind) {
      case ModelKind::kGcn:
        layers_.push_back(std::make_unique<GcnConv>(name, in, shape.out_cols(k), input_dropout));
        break;
      case ModelKind::kSage:
        layers_.push_back(std::make_unique<SageConv>(name, in, shape.out_cols(k), input_dropout));
        break;
      case ModelKind::kGat:
        layers_.push_back(std::make_unique<GatConv>(name, in, shape.width(k), shape.layer_heads(k), input_dropout,
                                                    shape.attention_dropout, kAttentionSite + static_cast<uint32_t>(k)));
        break;
    }
    if (k + 1 < shape.layers) {
      layers_.push_back(std::make_unique<ActDropout>(fmt::format("act{}", k + 1), shape.out_cols(k), act, max_dropout,
                                                     batch_ > 1, static_cast<uint32_t>(k)));
    }
  }
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
  const int n_layers = static_cast<int>(layers_.size());
  if (n_layers < 2) throw UsageError("a model of one layer has no hidden layer to write");
  eval_pass(/*advance=*/false);
  const MatRef h = ws_.mat(out_[idx(Pass::kEval)][n_layers - 2]);
  if (cols != nullptr) *cols = h.cols;
  return download_floats(*backend_, h.data, h.size());
}

}  // namespace gcn
