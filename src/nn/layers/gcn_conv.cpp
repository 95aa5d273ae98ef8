// --model gcn: PyG's GCNConv, and the tutorial's network of them
// (examples/gcn.py; benchmark/citation/gcn.py).
//
// GCNConv(in, out): out = Â · (in · W) + b, PyG's order (linear transform,
// then propagation, then bias), Â = gcn_norm's D^-1/2 (A + I) D^-1/2. A
// first layer reads the sparse features X.
//   conv.lin.weight  PyG [out, in], ours (in, out), glorot
//   conv.bias        [out], zeros
//
// The training pass's restricted products (see model.cpp): the last layer's
// propagation by Â's training rows only, each backward propagation by Âᵀ's
// columns where the gradient can be non-zero, the first weight gradient by
// Xᵀ's columns its input gradient reaches.
#include <fmt/format.h>

#include "gcn/error.hpp"
#include "gcn/nn/registry.hpp"
#include "nn/layers/conv_stack.hpp"
#include "nn/layers/input_product.hpp"

namespace gcn {
namespace {

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
    // (N, out) in · W and Â · (in · W) + b
    input_.plan_outputs(p, name_, shared, out_b, bias_, xw_, out);
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
    const MatRef xw = c.ws->mat(xw_[pass_index(pass)]);
    input_.forward(c, pass, w, xw);
    const SparseMatrix& adj = pass == Pass::kTrain && train_forward_ != nullptr ? *train_forward_ : *edges_->forward;
    c.backend->spmm(adj, xw, c.ws->mat(out_ids_[pass_index(pass)]), c.params + bias_, /*prepared=*/true);
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

class GcnType final : public ConvStackType {
 public:
  const char* name() const override { return "gcn"; }
  const char* pyg_class() const override { return "GCNConv"; }
  std::string summary() const override { return "GCNConv, the tutorial's GCN (examples/gcn.py)"; }
  bool uses_edge_weights() const override { return true; }

  Recipe defaults() const override {
    Recipe r;
    r.script = "examples/gcn.py (the tutorial)";
    return r;
  }
  std::optional<Recipe> citation(const std::string&) const override {
    Recipe r;  // run.sh: gcn.py --dataset=<name>, the same on every dataset
    r.early_stopping = 10;
    r.script = "benchmark/citation/gcn.py";
    return r;
  }

  void declare_params(const ModelShape& s, ParamLayout& layout) const override {
    for (int k = 0; k < s.layers; ++k) {
      layout.add_weight(fmt::format("conv{}.lin.weight", k + 1), k, ParamTensor::Init::kGlorot, s.in_cols(k),
                        s.out_cols(k));
      layout.add_vector(fmt::format("conv{}.bias", k + 1), k, ParamTensor::Init::kZeros, s.out_cols(k));
    }
  }

  bool recognizes(const TensorShapes& file) const override {
    return file.count("conv1.lin.weight") > 0 && file.count("conv1.bias") > 0 && file.count("conv1.att_src") == 0;
  }
  ModelShape shape_from_file(const TensorShapes& file, const std::string& path) const override {
    return stack_shape(stack_dims(file, path, "lin.weight", 2, 1, 0), 1, path);
  }

 protected:
  std::unique_ptr<Layer> make_conv(const ModelShape& s, int k, float input_dropout) const override {
    return std::make_unique<GcnConv>(fmt::format("conv{}", k + 1), s.in_cols(k), s.out_cols(k), input_dropout);
  }
  std::string conv_text(const ModelShape& s, int k) const override {
    return fmt::format("GCNConv({}, {})", s.in_cols(k), s.width(k));
  }
};

}  // namespace

const ModelType& gcn_model_type() {
  static const GcnType type;
  return type;
}

}  // namespace gcn
