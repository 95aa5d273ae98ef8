// --model sage: PyG's SAGEConv (mean aggregation, root weight), in the
// tutorial's network (examples/graph_sage.py's layer on the tutorial's recipe).
//   conv.lin_l.weight  PyG [out, in], ours (in, out), kaiming-uniform (bound 1 / sqrt(in))
//   conv.lin_l.bias    [out], uniform in ±1 / sqrt(in)
//   conv.lin_r.weight  PyG [out, in], ours (in, out), kaiming-uniform
#include <algorithm>

#include <fmt/format.h>

#include "gcn/error.hpp"
#include "gcn/nn/registry.hpp"
#include "nn/layers/conv_stack.hpp"
#include "nn/layers/input_product.hpp"

namespace gcn {
namespace {

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
        z_[pass_index(pass)] = z_[pass_index(Pass::kEval)];
        out[pass_index(pass)] = out[pass_index(Pass::kEval)];
        continue;
      }
      const std::string suffix = shared ? "" : pass_suffix(pass);
      z_[pass_index(pass)] = p.tensor(name_ + ".z" + suffix, 2 * n, out_b);  // (2N, out) [in · W_l ; in · W_r]
      out[pass_index(pass)] = p.tensor(name_ + ".out" + suffix, n, out_b);
      p.prepare(pass, out[pass_index(pass)], bias_);
      if (input_.prepared()) p.prepare(pass, z_[pass_index(pass)], -1);
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

  void forward(const LayerContext& c, Pass pass) const override {
    const MatRef z = c.ws->mat(z_[pass_index(pass)]);
    const int64_t cols = out_ * c.batch;
    input_.forward(c, pass, ConstMatRef(c.params + weight_l_, in_, cols), MatRef{z.data, n_, cols});
    input_.forward(c, pass, ConstMatRef(c.params + weight_r_, in_, cols), MatRef{z.data + n_ * cols, n_, cols});
    c.backend->spmm(*forward_, z, c.ws->mat(out_ids_[pass_index(pass)]), c.params + bias_, /*prepared=*/true);
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

class SageType final : public ConvStackType {
 public:
  const char* name() const override { return "sage"; }
  const char* pyg_class() const override { return "SAGEConv"; }
  std::string summary() const override { return "SAGEConv (mean aggregation), on the tutorial's recipe"; }
  bool uses_edge_weights() const override { return false; }

  Recipe defaults() const override {
    Recipe r;
    r.script = "examples/gcn.py's recipe with SAGEConv";
    return r;
  }
  std::optional<Recipe> citation(const std::string&) const override { return std::nullopt; }

  void declare_params(const ModelShape& s, ParamLayout& layout) const override {
    using I = ParamTensor::Init;
    for (int k = 0; k < s.layers; ++k) {
      const int64_t in = s.in_cols(k), out = s.out_cols(k);
      layout.add_weight(fmt::format("conv{}.lin_l.weight", k + 1), k, I::kUniformFanIn, in, out);
      layout.add_vector(fmt::format("conv{}.lin_l.bias", k + 1), k, I::kUniformFanIn, out, in);
      layout.add_weight(fmt::format("conv{}.lin_r.weight", k + 1), k, I::kUniformFanIn, in, out);
    }
  }

  bool recognizes(const TensorShapes& file) const override { return file.count("conv1.lin_l.weight") > 0; }
  ModelShape shape_from_file(const TensorShapes& file, const std::string& path) const override {
    return stack_shape(stack_dims(file, path, "lin_l.weight", 2, 1, 0), 1, path);
  }

 protected:
  std::unique_ptr<Layer> make_conv(const ModelShape& s, int k, float input_dropout) const override {
    return std::make_unique<SageConv>(fmt::format("conv{}", k + 1), s.in_cols(k), s.out_cols(k), input_dropout);
  }
  std::string conv_text(const ModelShape& s, int k) const override {
    return fmt::format("SAGEConv({}, {})", s.in_cols(k), s.width(k));
  }
};

}  // namespace

const ModelType& sage_model_type() {
  static const SageType type;
  return type;
}

}  // namespace gcn
