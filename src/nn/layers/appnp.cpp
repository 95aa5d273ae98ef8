// --model appnp: PyG's APPNP propagation after an MLP, benchmark/citation/appnp.py's
// Net (PyG has no examples/appnp.py):
//   dropout(x) -> lin1 -> ReLU -> dropout -> lin2 -> APPNP(K, alpha) -> log_softmax
// --layers L is the number of Linears (ReLU and dropout between them),
// --hidden their width, --input-dropout the dropout on X.
//   lin{k}.weight  PyG [out, in], ours (in, out), torch's Linear init (bound 1 / sqrt(in))
//   lin{k}.bias    [out], uniform in ±1 / sqrt(in)
// The propagation has no parameters.
//
// APPNP(K, alpha), PyG's normalize=True (Â = gcn_norm's D^-1/2 (A + I) D^-1/2):
//   h_0 = x0,  h_{k+1} = (1 - α) Â h_k + α x0,  out = h_K.
// There is no dense add, so each step is one product by a block operator
// over a vertically stacked (2N, C) tensor [h_k ; x0] (SAGE's trick):
//   K = 1:  out = ((1 - α) Â + α I) x0
//   else:   buf = [(1 - α) Â + α I ; I] x0                     (2N, N)
//           K - 2 times  buf = [(1 - α) Â, α I ; 0, I] buf     (2N, 2N)
//           out = [(1 - α) Â | α I] buf                        (N, 2N)
// The backward from g = dL/d out, with dh_k = dL/d h_k and
// a_k = α Σ_{j >= k} dh_j (dh_K = g, dh_k = (1 - α) Âᵀ dh_{k+1},
// d x0 = ((1 - α) Âᵀ + α I) dh_1 + a_2 = (1 - α) Âᵀ dh_1 + a_1):
//   K = 1:  d x0 = ((1 - α) Âᵀ + α I) g
//   else:   [dh_{K-1} ; a_{K-1}] = [(1 - α) Âᵀ ; α (1 - α) Âᵀ + α I] g          (2N, N)
//           K - 2 times  [dh_k ; a_k] = [(1 - α) Âᵀ, 0 ; α (1 - α) Âᵀ, I] [dh_{k+1} ; a_{k+1}]
//           d x0 = [(1 - α) Âᵀ | I] [dh_1 ; a_1]                                 (N, 2N)
// K products each way. The operators are built on the host from Â (its
// float values, each coefficient product in double, rounded once) and
// uploaded once per graph and alpha.
//
// The last Linear and the propagation are one layer of the epoch program,
// so the layer before the last is the last hidden layer (--embeddings) and
// the loss's column sums (the logits' bias gradient) are not taken for
// lin_L's bias, which sits before the propagation.
#include "nn/layers/appnp.hpp"

#include <algorithm>
#include <limits>
#include <optional>

#include <fmt/format.h>

#include "gcn/data/graph.hpp"
#include "gcn/error.hpp"
#include "gcn/nn/registry.hpp"
#include "nn/layers/act_dropout.hpp"
#include "nn/layers/input_product.hpp"

namespace gcn {

CsrMatrix block_operator(const CsrMatrix& m, const std::vector<std::vector<OperatorBlock>>& blocks) {
  const int64_t n = m.n_rows;
  const auto block_rows = static_cast<int64_t>(blocks.size());
  const auto block_cols = static_cast<int64_t>(blocks.empty() ? 0 : blocks.front().size());
  if (m.n_rows != m.n_cols) throw Error(fmt::format("block_operator: a ({}, {}) matrix", m.n_rows, m.n_cols));
  if (n * std::max(block_rows, block_cols) > std::numeric_limits<int32_t>::max()) {
    throw DataError(fmt::format("a graph of {} nodes: {} x {} blocks of it pass int32 indices", n, block_rows,
                                block_cols));
  }
  CsrMatrix out;
  out.n_rows = static_cast<int32_t>(n * block_rows);
  out.n_cols = static_cast<int32_t>(n * block_cols);
  out.indptr.assign(1, 0);
  for (int64_t br = 0; br < block_rows; ++br) {
    if (static_cast<int64_t>(blocks[br].size()) != block_cols) throw Error("block_operator: ragged blocks");
    for (int32_t i = 0; i < n; ++i) {
      for (int64_t bc = 0; bc < block_cols; ++bc) {
        const OperatorBlock& b = blocks[br][bc];
        const auto base = static_cast<int32_t>(bc * n);
        bool diagonal_done = b.eye == 0.0;
        auto put = [&](int32_t j, double v) {
          out.indices.push_back(base + j);
          out.values.push_back(static_cast<float>(v));
        };
        if (b.adj != 0.0) {
          for (int32_t e = m.indptr[i]; e < m.indptr[i + 1]; ++e) {
            const int32_t j = m.indices[e];
            if (!diagonal_done && j >= i) {
              if (j == i) {
                put(j, b.adj * static_cast<double>(m.values[e]) + b.eye);
                diagonal_done = true;
                continue;
              }
              put(i, b.eye);
              diagonal_done = true;
            }
            put(j, b.adj * static_cast<double>(m.values[e]));
          }
        }
        if (!diagonal_done) put(i, b.eye);
      }
      out.indptr.push_back(static_cast<int32_t>(out.indices.size()));
    }
  }
  return out;
}

AppnpOperators appnp_operators(const CsrMatrix& adj, double alpha) {
  using B = OperatorBlock;
  const double a = 1.0 - alpha;
  const CsrMatrix adj_t = adj.transposed();
  AppnpOperators o;
  o.single = block_operator(adj, {{B{a, alpha}}});
  o.first = block_operator(adj, {{B{a, alpha}}, {B{0, 1}}});
  o.step = block_operator(adj, {{B{a, 0}, B{0, alpha}}, {B{0, 0}, B{0, 1}}});
  o.last = block_operator(adj, {{B{a, 0}, B{0, alpha}}});
  o.single_t = block_operator(adj_t, {{B{a, alpha}}});
  o.first_t = block_operator(adj_t, {{B{a, 0}}, {B{alpha * a, alpha}}});
  o.step_t = block_operator(adj_t, {{B{a, 0}, B{0, 0}}, {B{alpha * a, 0}, B{0, 1}}});
  o.last_t = block_operator(adj_t, {{B{a, 0}, B{0, 1}}});
  return o;
}

namespace {

CsrMatrix identity(int32_t n) {
  CsrMatrix m;
  m.n_rows = m.n_cols = n;
  m.indptr.resize(static_cast<std::size_t>(n) + 1);
  m.indices.resize(static_cast<std::size_t>(n));
  m.values.assign(static_cast<std::size_t>(n), 1.0f);
  for (int32_t i = 0; i <= n; ++i) m.indptr[i] = i;
  for (int32_t i = 0; i < n; ++i) m.indices[i] = i;
  return m;
}

// torch.nn.Linear(in, out): out = in · W + b. There is no dense add: the bias
// comes with an identity product, out = I · (in · W) + b.
class Linear final : public Layer {
 public:
  Linear(std::string name, int64_t in_cols, int64_t out_cols, float input_dropout)
      : name_(std::move(name)), in_(in_cols), out_(out_cols), input_dropout_(input_dropout) {}

  std::string describe() const override { return fmt::format("Linear({}, {})", in_, out_); }
  bool depends_on_pass() const override { return input_dropout_ > 0.0f; }
  int64_t out_cols() const override { return out_; }
  int64_t bias_offset() const override { return bias_; }

  void plan(Planner& p, const Workspace::Id in[2], bool shared, Workspace::Id out[2]) override {
    weight_ = p.add_param(in_, out_);  // lin.weight, stored (in, out)
    bias_ = p.add_param(1, out_);      // lin.bias
    input_.plan(p, name_, in, input_dropout_);
    const int64_t n = p.n_nodes();
    const int64_t out_b = out_ * p.batch();
    // (N, out) in · W and I · (in · W) + b
    input_.plan_outputs(p, name_, shared, out_b, bias_, xw_, out);
    for (int i = 0; i < 2; ++i) out_ids_[i] = out[i];
    if (input_.prepared()) p.prepare_grad(Pass::kTrain, weight_, in_, out_b);
    const int32_t nodes = static_cast<int32_t>(n);
    identity_ = &p.graph().derived("identity", [&] { return identity(nodes); });
  }

  void forward(const LayerContext& c, Pass pass) const override {
    const ConstMatRef w(c.params + weight_, in_, out_ * c.batch);
    const MatRef xw = c.ws->mat(xw_[pass_index(pass)]);
    input_.forward(c, pass, w, xw);
    c.backend->spmm(*identity_, xw, c.ws->mat(out_ids_[pass_index(pass)]), c.params + bias_, /*prepared=*/true);
  }

  void backward(const LayerContext& c, Workspace::Id grad_out, Workspace::Id grad_in, float* col_sums,
                bool bias_grad_done) const override {
    if (col_sums != nullptr) throw Error(describe() + ": cannot fuse the column sums of its input gradient");
    Backend& be = *c.backend;
    const ConstMatRef g = c.ws->mat(grad_out);
    if (!bias_grad_done) be.column_sum(g, c.grads + bias_);
    input_.weight_grad(c, g, MatRef{c.grads + weight_, in_, out_ * c.batch});  // dW = inᵀ · g
    if (grad_in >= 0) {
      const ConstMatRef w(c.params + weight_, in_, out_ * c.batch);
      be.gemm(g, false, w, true, c.ws->mat(grad_in), c.batch);  // dL/d in = g · Wᵀ
    }
  }

 private:
  std::string name_;
  int64_t in_, out_;
  float input_dropout_;
  InputProduct input_;
  int64_t weight_ = -1, bias_ = -1;
  const SparseMatrix* identity_ = nullptr;
  Workspace::Id xw_[2] = {-1, -1}, out_ids_[2] = {-1, -1};
};

// The last Linear, then APPNP(K, alpha) (see the top of the file).
class LinearAppnp final : public Layer {
 public:
  LinearAppnp(std::string lin_name, std::string prop_name, int64_t in_cols, int64_t out_cols, float input_dropout,
              int k, double alpha)
      : lin_(std::move(lin_name), in_cols, out_cols, input_dropout),
        name_(std::move(prop_name)),
        cols_(out_cols),
        k_(k),
        alpha_(alpha) {}

  std::string describe() const override {
    return fmt::format("{} -> APPNP(K={}, alpha={})", lin_.describe(), k_, static_cast<float>(alpha_));
  }
  bool depends_on_pass() const override { return lin_.depends_on_pass(); }
  int64_t out_cols() const override { return cols_; }
  // lin's bias is before the propagation: no one else takes its gradient.
  int64_t bias_offset() const override { return -1; }

  void plan(Planner& p, const Workspace::Id in[2], bool shared, Workspace::Id out[2]) override {
    lin_.plan(p, in, shared, lin_out_);
    const int64_t n = p.n_nodes();
    const int64_t cols = cols_ * p.batch();
    for (Pass pass : {Pass::kEval, Pass::kTrain}) {
      const int i = pass_index(pass);
      if (shared && pass == Pass::kTrain) {
        out[i] = out[pass_index(Pass::kEval)];
        continue;
      }
      out[i] = p.tensor(name_ + ".out" + (shared ? "" : pass_suffix(pass)), n, cols);
      p.prepare(pass, out[i], -1);
    }
    for (int i = 0; i < 2; ++i) out_ids_[i] = out[i];
    // The stacked [h ; x0] buffers, shared by both passes and the backward
    // (each product writes its whole output; none is prepared).
    if (k_ >= 2) buf_[0] = p.tensor(name_ + ".buf0", 2 * n, cols);
    if (k_ >= 3) buf_[1] = p.tensor(name_ + ".buf1", 2 * n, cols);
    grad_lin_ = p.tensor(name_ + ".in.grad", n, cols);  // dL/d x0
    p.prepare(Pass::kTrain, grad_lin_, -1);

    const DeviceGraph& g = p.graph();
    const Dataset& d = g.dataset();
    const std::string tag = fmt::format("/{}", alpha_);
    std::optional<AppnpOperators> ops;
    auto make = [&](CsrMatrix AppnpOperators::*which) {
      return [&, which] {
        if (!ops) ops = appnp_operators(gcn::gcn_norm(d.n_nodes, d.edge_src, d.edge_dst, d.edge_weight), alpha_);
        return ops.value().*which;
      };
    };
    if (k_ == 1) {
      single_ = &g.derived("appnp.single" + tag, make(&AppnpOperators::single));
      single_t_ = &g.derived("appnp.single_t" + tag, make(&AppnpOperators::single_t));
      return;
    }
    first_ = &g.derived("appnp.first" + tag, make(&AppnpOperators::first));
    last_ = &g.derived("appnp.last" + tag, make(&AppnpOperators::last));
    first_t_ = &g.derived("appnp.first_t" + tag, make(&AppnpOperators::first_t));
    last_t_ = &g.derived("appnp.last_t" + tag, make(&AppnpOperators::last_t));
    if (k_ >= 3) {
      step_ = &g.derived("appnp.step" + tag, make(&AppnpOperators::step));
      step_t_ = &g.derived("appnp.step_t" + tag, make(&AppnpOperators::step_t));
    }
  }

  void forward(const LayerContext& c, Pass pass) const override {
    lin_.forward(c, pass);
    const ConstMatRef x0 = c.ws->mat(lin_out_[pass_index(pass)]);
    run(c, x0, c.ws->mat(out_ids_[pass_index(pass)]), single_, first_, step_, last_);
  }

  void backward(const LayerContext& c, Workspace::Id grad_out, Workspace::Id grad_in, float* col_sums,
                bool /*bias_grad_done*/) const override {
    if (col_sums != nullptr) throw Error(describe() + ": cannot fuse the column sums of its input gradient");
    run(c, c.ws->mat(grad_out), c.ws->mat(grad_lin_), single_t_, first_t_, step_t_, last_t_);
    lin_.backward(c, grad_lin_, grad_in, nullptr, /*bias_grad_done=*/false);
  }

 private:
  // out = the K products (the forward's operators or the backward's); out prepared.
  void run(const LayerContext& c, ConstMatRef in, MatRef out, const SparseMatrix* single, const SparseMatrix* first,
           const SparseMatrix* step, const SparseMatrix* last) const {
    Backend& be = *c.backend;
    if (k_ == 1) {
      be.spmm(*single, in, out, nullptr, /*prepared=*/true);
      return;
    }
    int cur = 0;
    be.spmm(*first, in, c.ws->mat(buf_[0]));
    for (int s = 0; s + 2 < k_; ++s) {
      be.spmm(*step, c.ws->mat(buf_[cur]), c.ws->mat(buf_[1 - cur]));
      cur = 1 - cur;
    }
    be.spmm(*last, c.ws->mat(buf_[cur]), out, nullptr, /*prepared=*/true);
  }

  Linear lin_;
  std::string name_;
  int64_t cols_;
  int k_;
  double alpha_;
  Workspace::Id lin_out_[2] = {-1, -1}, out_ids_[2] = {-1, -1}, buf_[2] = {-1, -1}, grad_lin_ = -1;
  const SparseMatrix *single_ = nullptr, *first_ = nullptr, *step_ = nullptr, *last_ = nullptr;
  const SparseMatrix *single_t_ = nullptr, *first_t_ = nullptr, *step_t_ = nullptr, *last_t_ = nullptr;
};

class AppnpType final : public ModelType {
 public:
  const char* name() const override { return "appnp"; }
  const char* pyg_class() const override { return "APPNP"; }
  std::string summary() const override {
    return "Linears (ReLU, dropout) then APPNP propagation (benchmark/citation/appnp.py)";
  }
  bool uses_edge_weights() const override { return true; }

  std::vector<HyperParam> hyper_params() const override {
    HyperParam k;
    k.name = "K";
    k.kind = HyperParam::Kind::kInt;
    k.default_value = 10;
    k.min = 1;
    k.max = 64;
    k.help = "APPNP: propagation steps K";
    HyperParam alpha;
    alpha.name = "alpha";
    alpha.kind = HyperParam::Kind::kFloat;
    alpha.default_value = 0.1;
    alpha.min = 0;
    alpha.max = 1;
    alpha.help = "APPNP: teleport probability alpha (the share of the first prediction kept at each step)";
    return {k, alpha};
  }

  Recipe defaults() const override {
    Recipe r;  // benchmark/citation/appnp.py's own defaults
    r.hidden = 64;
    r.dropout = 0.5f;
    r.input_dropout = 0.5f;
    r.hyper = {{"K", 10}, {"alpha", 0.1}};
    r.script = "benchmark/citation/appnp.py (PyG has no examples/appnp.py), without early stopping";
    return r;
  }
  std::optional<Recipe> citation(const std::string&) const override {
    Recipe r = defaults();  // run.sh: appnp.py --dataset=<name> --alpha=0.1, the same on every dataset
    r.early_stopping = 10;
    r.script = "benchmark/citation/appnp.py";
    return r;
  }

  void declare_params(const ModelShape& s, ParamLayout& layout) const override {
    using I = ParamTensor::Init;
    for (int k = 0; k < s.layers; ++k) {
      const int64_t in = s.in_cols(k), out = s.out_cols(k);
      layout.add_weight(fmt::format("lin{}.weight", k + 1), k, I::kUniformFanIn, in, out);
      layout.add_vector(fmt::format("lin{}.bias", k + 1), k, I::kUniformFanIn, out, in);
    }
  }

  std::vector<std::unique_ptr<Layer>> build(const ModelShape& s, const BuildOptions& options) const override {
    std::vector<std::unique_ptr<Layer>> layers;
    for (int k = 0; k + 1 < s.layers; ++k) {
      layers.push_back(std::make_unique<Linear>(fmt::format("lin{}", k + 1), s.in_cols(k), s.out_cols(k),
                                                k == 0 ? s.input_dropout : 0.0f));
      layers.push_back(std::make_unique<ActDropout>(fmt::format("act{}", k + 1), s.out_cols(k), Activation::kRelu,
                                                    options.max_dropout, options.per_model_dropout,
                                                    static_cast<uint32_t>(k)));
    }
    const int last = s.layers - 1;
    layers.push_back(std::make_unique<LinearAppnp>(fmt::format("lin{}", last + 1), "prop1", s.in_cols(last),
                                                   s.out_cols(last), last == 0 ? s.input_dropout : 0.0f,
                                                   s.hp_int("K"), s.hp("alpha")));
    return layers;
  }

  std::string describe(const ModelShape& s, const std::string& dropout) const override {
    std::string out = s.input_dropout > 0.0f ? fmt::format("dropout({}) -> ", s.input_dropout) : "";
    for (int k = 0; k < s.layers; ++k) {
      out += fmt::format("Linear({}, {})", s.in_cols(k), s.width(k));
      if (k + 1 < s.layers) out += fmt::format(" -> ReLU -> dropout({}) -> ", dropout);
    }
    return out + fmt::format(" -> APPNP(K={}, alpha={})", s.hp_int("K"), static_cast<float>(s.hp("alpha")));
  }

  bool recognizes(const TensorShapes& file) const override {
    return file.count("lin1.weight") > 0 && file.count("lin1.bias") > 0;
  }
  ModelShape shape_from_file(const TensorShapes& file, const std::string& path) const override {
    ModelShape s;
    s.type = this;
    s.hyper = default_hyper();
    auto name = [](int k) { return fmt::format("lin{}.weight", k + 1); };
    std::vector<int64_t> outs;
    while (outs.size() < 16 && file.count(name(static_cast<int>(outs.size()))) > 0) {
      const int k = static_cast<int>(outs.size());
      const std::vector<int64_t>& shape = file.at(name(k));
      const bool ok = shape.size() == 2 && std::all_of(shape.begin(), shape.end(), [](int64_t x) {
                        return x > 0 && x <= std::numeric_limits<int32_t>::max();
                      });
      if (!ok) throw DataError(fmt::format("{}: {} must be a non-empty matrix", path, name(k)));
      if (k == 0) s.n_features = static_cast<int32_t>(shape[1]);
      outs.push_back(shape[0]);
    }
    s.layers = static_cast<int>(outs.size());
    s.n_classes = static_cast<int32_t>(outs.back());
    s.hiddens.clear();
    for (int k = 0; k + 1 < s.layers; ++k) s.hiddens.push_back(static_cast<int32_t>(outs[static_cast<std::size_t>(k)]));
    s.hidden = s.hiddens.empty() ? 16 : s.hiddens.front();
    if (std::all_of(s.hiddens.begin(), s.hiddens.end(), [&](int32_t h) { return h == s.hidden; })) s.hiddens.clear();
    return s;
  }
};

}  // namespace

const ModelType& appnp_model_type() {
  static const AppnpType type;
  return type;
}

}  // namespace gcn
