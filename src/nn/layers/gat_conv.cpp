// --model gat: PyG's GATConv, in examples/gat.py's network:
//   dropout(x) -> GATConv(F, ch, heads) -> ELU -> dropout -> ... -> GATConv(., C, heads=1, concat=False)
// with dropout on the attention coefficients in every layer.
//   conv.lin.weight  PyG [heads·ch, in], ours (in, heads·ch), glorot
//   conv.att_src     [1, heads, ch], glorot over its last two dimensions
//   conv.att_dst     [1, heads, ch], glorot
//   conv.bias        [heads·ch] (the last layer [ch]: one head), zeros
#include <fmt/format.h>

#include "gcn/error.hpp"
#include "gcn/nn/registry.hpp"
#include "nn/layers/conv_stack.hpp"
#include "nn/layers/input_product.hpp"

namespace gcn {
namespace {

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
      const int i = pass_index(pass);
      if (shared && pass == Pass::kTrain) {
        xw_[i] = xw_[pass_index(Pass::kEval)];
        s_src_[i] = s_src_[pass_index(Pass::kEval)];
        s_dst_[i] = s_dst_[pass_index(Pass::kEval)];
        alpha_[i] = alpha_[pass_index(Pass::kEval)];
        out[i] = out[pass_index(Pass::kEval)];
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

  void forward(const LayerContext& c, Pass pass) const override {
    Backend& be = *c.backend;
    const int i = pass_index(pass);
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
    const int t = pass_index(Pass::kTrain);
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

class GatType final : public ConvStackType {
 public:
  const char* name() const override { return "gat"; }
  const char* pyg_class() const override { return "GATConv"; }
  std::string summary() const override {
    return "GATConv (defaults of PyG's examples/gat.py: --hidden 8 --heads 8 --dropout 0.6 --input-dropout 0.6 "
           "--lr 0.005)";
  }
  const char* activation() const override { return "ELU"; }
  bool uses_edge_weights() const override { return false; }

  std::vector<HyperParam> hyper_params() const override {
    HyperParam heads;
    heads.name = "heads";
    heads.kind = HyperParam::Kind::kInt;
    heads.default_value = 8;
    heads.min = 1;
    heads.max = 1024;
    heads.architecture = true;
    heads.help = "Attention heads of each hidden GATConv (the last layer has 1)";
    HyperParam attention;
    attention.name = "attention-dropout";
    attention.kind = HyperParam::Kind::kFloat;
    attention.default_value = 0.6;
    attention.min = 0;
    attention.max = 1;
    attention.max_exclusive = true;
    attention.help = "GATConv's dropout on the attention coefficients, in [0, 1)";
    return {heads, attention};
  }

  Recipe defaults() const override {
    Recipe r;
    r.hidden = 8;
    r.lr = 0.005f;
    r.dropout = 0.6f;
    r.input_dropout = 0.6f;
    r.hyper = {{"heads", 8}, {"attention-dropout", 0.6}};
    r.script = "examples/gat.py";
    return r;
  }
  std::optional<Recipe> citation(const std::string& dataset) const override {
    Recipe r = defaults();
    r.epochs = 1000;
    r.early_stopping = 100;
    r.script = "benchmark/citation/gat.py";
    if (dataset == "pubmed") {  // run.sh: --lr=0.01 --weight_decay=0.001 --output_heads=8
      r.lr = 0.01f;
      r.weight_decay = 0.001f;
      r.unsupported = "benchmark/citation's gat.py on PubMed has 8 output heads (concat=False); gcn-train's last "
                      "GATConv has one";
    }
    return r;
  }

  int32_t width_multiplier(const ModelShape& s, int k) const override {
    return k < s.layers - 1 ? s.hp_int("heads") : 1;
  }

  void declare_params(const ModelShape& s, ParamLayout& layout) const override {
    using I = ParamTensor::Init;
    using L = ParamTensor::Layout;
    for (int k = 0; k < s.layers; ++k) {
      const int64_t in = s.in_cols(k), out = s.out_cols(k), heads = width_multiplier(s, k);
      layout.add_weight(fmt::format("conv{}.lin.weight", k + 1), k, I::kGlorot, in, out);
      layout.add(fmt::format("conv{}.att_src", k + 1), k, I::kGlorot, L::kSame, 1, out, {1, heads, out / heads});
      layout.add(fmt::format("conv{}.att_dst", k + 1), k, I::kGlorot, L::kSame, 1, out, {1, heads, out / heads});
      layout.add_vector(fmt::format("conv{}.bias", k + 1), k, I::kZeros, out);
    }
  }

  bool recognizes(const TensorShapes& file) const override { return file.count("conv1.att_src") > 0; }
  ModelShape shape_from_file(const TensorShapes& file, const std::string& path) const override {
    const StackDims d = stack_dims(file, path, "lin.weight", 2, 1, 0);
    int32_t heads = 1;
    if (d.layers > 1) {
      const std::vector<int64_t>& att = file.at("conv1.att_src");
      if (att.size() != 3 || att[0] != 1 || att[1] < 1 || att[1] > 1024 || att[2] < 1) {
        throw DataError(fmt::format("{}: conv1.att_src must have shape [1, heads, channels]", path));
      }
      heads = static_cast<int32_t>(att[1]);
    }
    ModelShape s = stack_shape(d, heads, path);
    s.hyper["heads"] = heads;
    return s;
  }

 protected:
  std::unique_ptr<Layer> make_conv(const ModelShape& s, int k, float input_dropout) const override {
    return std::make_unique<GatConv>(fmt::format("conv{}", k + 1), s.in_cols(k), s.width(k), width_multiplier(s, k),
                                     input_dropout, static_cast<float>(s.hp("attention-dropout")),
                                     kAttentionSite + static_cast<uint32_t>(k));
  }
  std::string conv_text(const ModelShape& s, int k) const override {
    std::string out = fmt::format("GATConv({}, {}", s.in_cols(k), s.width(k));
    if (width_multiplier(s, k) > 1) out += fmt::format(", heads={}", width_multiplier(s, k));
    if (s.hp("attention-dropout") > 0.0) out += fmt::format(", dropout={}", static_cast<float>(s.hp("attention-dropout")));
    return out + ")";
  }
};

}  // namespace

const ModelType& gat_model_type() {
  static const GatType type;
  return type;
}

}  // namespace gcn
