// --model sgc: PyG's SGConv, the simplified GCN (examples/sgc.py;
// benchmark/citation/sgc.py): one layer, no hidden layer, no activation
//   out = Â^K · X · W + b,   Â = gcn_norm's D^-1/2 (A + I) D^-1/2
//   conv1.lin.weight  PyG [C, F], ours (F, C), kaiming-uniform (bound 1 / sqrt(F))
//   conv1.lin.bias    [C], uniform in ±1 / sqrt(F)
// (SGConv's Linear with PyG's default initialisers). K, the number of
// propagations, changes no tensor.
//
// PyG propagates X first (Â^K · X, cached) and applies the Linear after;
// the product is associative, so this multiplies by W first (C columns
// instead of F) and propagates K times: the same values up to rounding.
// PyG's cached=True keeps Â^K · X from the first call; with input dropout
// (not in PyG's scripts) this redraws the mask every epoch, as cached=False.
#include <fmt/format.h>

#include "gcn/error.hpp"
#include "gcn/nn/registry.hpp"
#include "nn/layers/conv_stack.hpp"
#include "nn/layers/input_product.hpp"

namespace gcn {
namespace {

// SGConv(F, C, K): xw = X · W, t_1 = Â · xw, ..., t_{K-1}, out = Â · t_{K-1} + b,
// the intermediate t_k ping-ponging between two (N, C) buffers. Backward:
// g_K = dL/d out, g_{k-1} = Âᵀ · g_k, dW = Xᵀ · g_0, db = Σ_rows g_K. No
// intermediate of the forward is needed by the backward.
class SgConv final : public Layer {
 public:
  SgConv(std::string name, int64_t in_cols, int64_t out_cols, int k, float input_dropout)
      : name_(std::move(name)), in_(in_cols), out_(out_cols), k_(k), input_dropout_(input_dropout) {}

  std::string describe() const override { return fmt::format("SGConv({}, {}, K={})", in_, out_, k_); }
  bool depends_on_pass() const override { return input_dropout_ > 0.0f; }
  int64_t out_cols() const override { return out_; }
  int64_t bias_offset() const override { return bias_; }

  void plan(Planner& p, const Workspace::Id in[2], bool shared, Workspace::Id out[2]) override {
    weight_ = p.add_param(in_, out_);  // conv1.lin.weight, stored (in, out)
    bias_ = p.add_param(1, out_);      // conv1.lin.bias
    input_.plan(p, name_, in, input_dropout_);
    const int64_t n = p.n_nodes();
    const int64_t out_b = out_ * p.batch();
    // (N, C) in · W and Â^K · (in · W) + b
    input_.plan_outputs(p, name_, shared, out_b, bias_, xw_, out);
    for (int i = 0; i < 2; ++i) out_ids_[i] = out[i];
    // The propagations between: written several times a pass, so not prepared.
    for (int j = 0; j < 2 && j < k_ - 1; ++j) hops_[j] = p.tensor(fmt::format("{}.hop{}", name_, j), n, out_b);
    for (int j = 0; j < 2 && j < k_; ++j) grad_hops_[j] = p.tensor(fmt::format("{}.hop{}.grad", name_, j), n, out_b);
    if (input_.prepared()) p.prepare_grad(Pass::kTrain, weight_, in_, out_b);
    edges_ = &p.graph().gcn_norm();
  }

  void forward(const LayerContext& c, Pass pass) const override {
    Backend& be = *c.backend;
    const ConstMatRef w(c.params + weight_, in_, out_ * c.batch);
    const MatRef xw = c.ws->mat(xw_[pass_index(pass)]);
    input_.forward(c, pass, w, xw);
    MatRef cur = xw;
    for (int k = 1; k < k_; ++k) {  // t_k = Â · t_{k-1}
      const MatRef next = c.ws->mat(hops_[(k - 1) % 2]);
      be.spmm(*edges_->forward, cur, next);
      cur = next;
    }
    be.spmm(*edges_->forward, cur, c.ws->mat(out_ids_[pass_index(pass)]), c.params + bias_, /*prepared=*/true);
  }

  void backward(const LayerContext& c, Workspace::Id grad_out, Workspace::Id grad_in, float* col_sums,
                bool bias_grad_done) const override {
    if (col_sums != nullptr) throw Error(describe() + ": cannot fuse the column sums of its input gradient");
    Backend& be = *c.backend;
    const ConstMatRef g = c.ws->mat(grad_out);
    if (!bias_grad_done) be.column_sum(g, c.grads + bias_);
    ConstMatRef cur = g;
    MatRef last{};
    for (int k = 0; k < k_; ++k) {  // g_{K-1-k} = Âᵀ · g_{K-k}
      last = c.ws->mat(grad_hops_[k % 2]);
      be.spmm(edges_->backward(), cur, last);
      cur = last;
    }
    const int64_t cols = out_ * c.batch;
    input_.weight_grad(c, last, MatRef{c.grads + weight_, in_, cols});  // dW = inᵀ · g_0
    if (grad_in >= 0) {
      be.gemm(last, false, ConstMatRef(c.params + weight_, in_, cols), true, c.ws->mat(grad_in), c.batch);
    }
  }

 private:
  std::string name_;
  int64_t in_, out_;
  int k_;
  float input_dropout_;
  InputProduct input_;
  int64_t weight_ = -1, bias_ = -1;
  const EdgeSet* edges_ = nullptr;
  Workspace::Id xw_[2] = {-1, -1}, out_ids_[2] = {-1, -1}, hops_[2] = {-1, -1}, grad_hops_[2] = {-1, -1};
};

class SgcType final : public ConvStackType {
 public:
  const char* name() const override { return "sgc"; }
  const char* pyg_class() const override { return "SGConv"; }
  std::string summary() const override {
    return "SGConv, one layer of K propagations (examples/sgc.py: --K 2 --lr 0.2 --weight-decay 0.005, 100 "
           "epochs); --hidden and --dropout do not apply";
  }
  bool uses_edge_weights() const override { return true; }

  std::vector<HyperParam> hyper_params() const override {
    HyperParam k;
    k.name = "K";
    k.kind = HyperParam::Kind::kInt;
    k.default_value = 2;
    k.min = 1;
    k.max = 16;
    k.architecture = false;  // the same tensors for every K
    k.help = "SGConv's propagations (Â^K X W), 1 to 16";
    return {k};
  }

  Recipe defaults() const override {
    Recipe r;  // examples/sgc.py: SGConv(F, C, K=2, cached=True), Adam(lr=0.2, weight_decay=0.005), 100 epochs
    r.epochs = 100;
    r.layers = 1;
    r.lr = 0.2f;
    r.weight_decay = 0.005f;
    r.dropout = 0.0f;
    r.hyper = {{"K", 2}};
    r.script = "examples/sgc.py";
    return r;
  }
  std::optional<Recipe> citation(const std::string& dataset) const override {
    Recipe r;  // benchmark/citation/sgc.py: lr 0.1, 200 epochs, early_stopping 10; run.sh: K, weight_decay
    r.layers = 1;
    r.lr = 0.1f;
    r.dropout = 0.0f;
    r.early_stopping = 10;
    r.script = "benchmark/citation/sgc.py";
    if (dataset == "citeseer") {
      r.hyper = {{"K", 2}};
      r.weight_decay = 0.005f;
    } else if (dataset == "pubmed") {
      r.hyper = {{"K", 2}};
      r.weight_decay = 0.0005f;
    } else {
      r.hyper = {{"K", 3}};
      r.weight_decay = 0.0005f;
    }
    return r;
  }

  void validate(const ModelShape& s) const override {
    if (s.layers != 1) {
      throw UsageError(fmt::format("--layers {}: sgc is one SGConv(F, C, K): leave out --layers", s.layers));
    }
  }

  void declare_params(const ModelShape& s, ParamLayout& layout) const override {
    using I = ParamTensor::Init;
    const int64_t in = s.in_cols(0), out = s.out_cols(0);
    layout.add_weight("conv1.lin.weight", 0, I::kUniformFanIn, in, out);
    layout.add_vector("conv1.lin.bias", 0, I::kUniformFanIn, out, in);
  }

  // gcn's files hold conv1.lin.weight and conv1.bias; SGConv's Linear keeps its own bias.
  bool recognizes(const TensorShapes& file) const override {
    return file.count("conv1.lin.weight") > 0 && file.count("conv1.lin.bias") > 0 && file.count("conv1.bias") == 0;
  }
  ModelShape shape_from_file(const TensorShapes& file, const std::string& path) const override {
    const StackDims d = stack_dims(file, path, "lin.weight", 2, 1, 0);
    if (d.layers != 1) throw DataError(fmt::format("{}: {} SGConv layers; sgc has one", path, d.layers));
    return stack_shape(d, 1, path);
  }

 protected:
  std::unique_ptr<Layer> make_conv(const ModelShape& s, int k, float input_dropout) const override {
    return std::make_unique<SgConv>(fmt::format("conv{}", k + 1), s.in_cols(k), s.out_cols(k), s.hp_int("K"),
                                    input_dropout);
  }
  std::string conv_text(const ModelShape& s, int k) const override {
    return fmt::format("SGConv({}, {}, K={})", s.in_cols(k), s.width(k), s.hp_int("K"));
  }
};

}  // namespace

const ModelType& sgc_model_type() {
  static const SgcType type;
  return type;
}

}  // namespace gcn
