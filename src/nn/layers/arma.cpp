// --model arma: PyG's ARMAConv(in, out, num_stacks=K, num_layers=1,
// dropout=skip_dropout) in benchmark/citation/arma.py's network:
//   conv1 -> ReLU -> dropout -> conv2 -> ... -> convL -> log_softmax
// Only num_layers (T) = 1, what the benchmark runs on every dataset; with
// T = 1, shared_weights changes nothing.
//   conv.weight       PyG [1, K, out, out], ours (out, K·out), glorot: only in the
//                     state_dict (used from the second of T layers). PyG's Adam skips
//                     it (no gradient); ours gives it a zero gradient, so weight decay
//                     shrinks it. It never touches the output.
//   conv.init_weight  PyG [K, in, out], ours (in, K·out), glorot
//   conv.root_weight  PyG [1, K, in, out], ours (in, K·out), glorot
//   conv.bias         PyG [1, K, 1, out], ours (1, K·out), zeros
// (PyG's registration order; kStacked puts the K stacks side by side, so
// in · W is one product for every stack.)
//
// Forward (T = 1), Ã = gcn_norm without self loops (arma_norm):
//   Y = in · W_init,  R = drop_skip(in) · W_root        (N, K·out) each
//   Z = [Ã | I] · [Y ; R] + b                           one product over the stacked (2N, K·out)
//   A = ReLU(Z),  out = A · M,  M = [I/K ; ... ; I/K]   (the mean over the stacks; M (K·out, out))
// Backward from g = dL/d out:
//   dA = g · Mᵀ,  dZ = ReLU'(dA) (its column sums: the bias gradient),
//   [dY ; dR] = [Ãᵀ ; I] · dZ,  dW_init = inᵀ · dY,  dW_root = drop(in)ᵀ · dR,
//   d in = [I I] · [dY · W_initᵀ ; drop'(dR · W_rootᵀ)]   (a dense input)
// drop_skip of the sparse features is the InputProduct's dropout at this
// layer's own site. Of a dense input (the previous layer's ReLU + dropout,
// so >= 0) it is act_dropout(ReLU, p_skip), exactly dropout(in) there; its
// backward also zeroes d in where in = 0, where the previous layer's
// backward zeroes the gradient anyway (its output is 0 there), so every
// parameter gradient is exact (tests/test_models.cpp's finite differences).
#include "nn/layers/arma.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include <fmt/format.h>

#include "gcn/error.hpp"
#include "gcn/nn/registry.hpp"
#include "nn/layers/appnp.hpp"
#include "nn/layers/conv_stack.hpp"
#include "nn/layers/input_product.hpp"

namespace gcn {

CsrMatrix arma_norm(int32_t n_nodes, const std::vector<int32_t>& edge_src, const std::vector<int32_t>& edge_dst,
                    const std::vector<float>& edge_weight) {
  if (edge_src.size() != edge_dst.size() || (!edge_weight.empty() && edge_weight.size() != edge_src.size())) {
    throw DataError(fmt::format("arma_norm: {} sources, {} targets, {} weights", edge_src.size(), edge_dst.size(),
                                edge_weight.size()));
  }
  const auto n = static_cast<std::size_t>(n_nodes);
  std::vector<double> deg(n, 0.0);
  std::vector<std::vector<std::pair<int32_t, double>>> sources(n);  // (source, weight)
  for (std::size_t e = 0; e < edge_src.size(); ++e) {
    const int32_t s = edge_src[e], d = edge_dst[e];
    if (s < 0 || s >= n_nodes || d < 0 || d >= n_nodes) {
      throw DataError(fmt::format("arma_norm: edge {} ({} -> {}) outside [0, {})", e, s, d, n_nodes));
    }
    const double w = edge_weight.empty() ? 1.0 : edge_weight[e];
    deg[static_cast<std::size_t>(d)] += w;
    sources[static_cast<std::size_t>(d)].push_back({s, w});
  }
  auto inv_sqrt = [&](int32_t i) { return deg[i] > 0.0 ? 1.0 / std::sqrt(deg[i]) : 0.0; };
  CsrMatrix a;
  a.n_rows = a.n_cols = n_nodes;
  a.indptr.assign(1, 0);
  for (int32_t i = 0; i < n_nodes; ++i) {
    std::vector<std::pair<int32_t, double>>& s = sources[static_cast<std::size_t>(i)];
    std::stable_sort(s.begin(), s.end(), [](const auto& x, const auto& y) { return x.first < y.first; });
    for (std::size_t k = 0; k < s.size();) {
      double w = 0.0;
      std::size_t end = k;
      for (; end < s.size() && s[end].first == s[k].first; ++end) {
        w += inv_sqrt(s[k].first) * s[end].second * inv_sqrt(i);  // duplicates summed (weight 1: no bit changes)
      }
      a.indices.push_back(s[k].first);
      a.values.push_back(static_cast<float>(w));
      k = end;
    }
    if (a.indices.size() > static_cast<std::size_t>(std::numeric_limits<int32_t>::max())) {
      throw DataError("arma_norm: more edges than int32 indices reach");
    }
    a.indptr.push_back(static_cast<int32_t>(a.indices.size()));
  }
  return a;
}

namespace {

using B = OperatorBlock;

// M = [I/K ; ... ; I/K] (K·out, out) for each model of the batch: (K·out, batch·out).
std::vector<float> mean_matrix(int stacks, int64_t out, int batch) {
  const int64_t rows = stacks * out, cols = out * batch;
  std::vector<float> m(static_cast<std::size_t>(rows * cols), 0.0f);
  const auto inv = static_cast<float>(1.0 / stacks);
  for (int64_t r = 0; r < rows; ++r) {
    for (int b = 0; b < batch; ++b) m[static_cast<std::size_t>(r * cols + b * out + r % out)] = inv;
  }
  return m;
}

class ArmaConv final : public Layer {
 public:
  ArmaConv(std::string name, int64_t in_cols, int64_t out_cols, int stacks, float input_dropout, float skip_dropout,
           uint32_t site)
      : name_(std::move(name)),
        in_(in_cols),
        out_(out_cols),
        stacks_(stacks),
        input_dropout_(input_dropout),
        skip_(skip_dropout),
        site_(site) {}

  std::string describe() const override {
    return fmt::format("ARMAConv({}, {}, num_stacks={}, num_layers=1)", in_, out_, stacks_);
  }
  bool depends_on_pass() const override { return input_dropout_ > 0.0f || skip_ > 0.0f; }
  int64_t out_cols() const override { return out_; }
  // The bias is inside the ReLU and the mean: its gradient is this layer's own.
  int64_t bias_offset() const override { return -1; }

  void plan(Planner& p, const Workspace::Id in[2], bool shared, Workspace::Id out[2]) override {
    const int64_t wide = stacks_ * out_;
    weight_ = p.add_param(out_, wide);  // conv.weight (T - 1 = 0 layers use it)
    init_ = p.add_param(in_, wide);     // conv.init_weight
    root_ = p.add_param(in_, wide);     // conv.root_weight
    bias_ = p.add_param(1, wide);       // conv.bias
    n_ = p.n_nodes();
    const int64_t wide_b = wide * p.batch(), in_b = in_ * p.batch();
    sparse_ = in[0] < 0;
    for (int i = 0; i < 2; ++i) in_ids_[i] = in[i];
    input_.plan(p, name_, in, input_dropout_);
    if (sparse_) {
      // The skip term's features: dropped at this layer's site, or (no skip
      // dropout) the first term's, dropped features (the same mask).
      root_input_.plan(p, name_ + ".root", in, skip_ > 0.0f ? skip_ : input_dropout_,
                       skip_ > 0.0f ? site_ : kInputSite);
    } else {
      Workspace::Id root_in[2] = {in[0], in[1]};
      if (skip_ > 0.0f) root_in[pass_index(Pass::kTrain)] = dropped_ = p.tensor(name_ + ".in.dropped", n_, in_b);
      root_input_.plan(p, name_ + ".root", root_in, 0.0f);
    }
    for (Pass pass : {Pass::kEval, Pass::kTrain}) {
      const int i = pass_index(pass);
      if (shared && pass == Pass::kTrain) {
        const int e = pass_index(Pass::kEval);
        s_[i] = s_[e];
        z_[i] = z_[e];
        a_[i] = a_[e];
        out[i] = out[e];
        continue;
      }
      const std::string suffix = shared ? "" : pass_suffix(pass);
      s_[i] = p.tensor(name_ + ".s" + suffix, 2 * n_, wide_b);  // [Y ; R]
      z_[i] = p.tensor(name_ + ".z" + suffix, n_, wide_b);
      a_[i] = p.tensor(name_ + ".a" + suffix, n_, wide_b);
      out[i] = p.tensor(name_ + ".out" + suffix, n_, out_ * p.batch());
      p.prepare(pass, z_[i], bias_);
      if (input_.prepared()) p.prepare(pass, s_[i], -1);
    }
    for (int i = 0; i < 2; ++i) out_ids_[i] = out[i];
    mean_ = p.constant(name_ + ".mean", wide, out_ * p.batch(), mean_matrix(stacks_, out_, p.batch()));
    grad_a_ = p.tensor(name_ + ".a.grad", n_, wide_b);
    grad_z_ = p.tensor(name_ + ".z.grad", n_, wide_b);
    grad_s_ = p.tensor(name_ + ".s.grad", 2 * n_, wide_b);
    p.prepare(Pass::kTrain, grad_s_, -1);
    if (input_.prepared()) p.prepare_grad(Pass::kTrain, init_, in_, wide_b);
    if (root_input_.prepared()) p.prepare_grad(Pass::kTrain, root_, in_, wide_b);
    if (!sparse_) {
      terms_ = p.tensor(name_ + ".in.grad.terms", 2 * n_, in_b);
      if (skip_ > 0.0f) root_grad_ = p.tensor(name_ + ".in.grad.root", n_, in_b);
    }
    const Dataset& d = p.graph().dataset();
    auto norm = [&d] { return arma_norm(d.n_nodes, d.edge_src, d.edge_dst, d.edge_weight); };
    forward_ = &p.graph().derived("arma.norm_root", [&] { return block_operator(norm(), {{B{1, 0}, B{0, 1}}}); });
    backward_ = &p.graph().derived("arma.norm_root_t",
                                   [&] { return block_operator(norm().transposed(), {{B{1, 0}}, {B{0, 1}}}); });
    if (!sparse_) {
      sum_ = &p.graph().derived("arma.sum_halves", [&] { return block_operator(norm(), {{B{0, 1}, B{0, 1}}}); });
    }
  }

  void forward(const LayerContext& c, Pass pass) const override {
    Backend& be = *c.backend;
    const int i = pass_index(pass);
    const int64_t wide_b = stacks_ * out_ * c.batch;
    const MatRef s = c.ws->mat(s_[i]);
    input_.forward(c, pass, ConstMatRef(c.params + init_, in_, wide_b), MatRef{s.data, n_, wide_b});
    if (pass == Pass::kTrain && dropped_ >= 0) {  // dropout(in), in >= 0
      be.act_dropout_forward(Activation::kRelu, c.ws->mat(in_ids_[i]), c.ws->mat(dropped_), skip_, c.step, c.batch,
                             /*rates_from_steps=*/false, site_);
    }
    root_input_.forward(c, pass, ConstMatRef(c.params + root_, in_, wide_b), MatRef{s.data + n_ * wide_b, n_, wide_b});
    const MatRef z = c.ws->mat(z_[i]), a = c.ws->mat(a_[i]);
    be.spmm(*forward_, s, z, c.params + bias_, /*prepared=*/true);  // [Ã | I] · [Y ; R] + b
    be.act_dropout_forward(Activation::kRelu, z, a, 0.0f, c.step, 1, false, 0);
    be.gemm(a, false, c.ws->mat(mean_), false, c.ws->mat(out_ids_[i]), c.batch);  // the mean over the stacks
  }

  void backward(const LayerContext& c, Workspace::Id grad_out, Workspace::Id grad_in, float* col_sums,
                bool /*bias_grad_done*/) const override {
    if (col_sums != nullptr) throw Error(describe() + ": cannot fuse the column sums of its input gradient");
    Backend& be = *c.backend;
    const int t = pass_index(Pass::kTrain);
    const int64_t wide_b = stacks_ * out_ * c.batch, in_b = in_ * c.batch;
    const MatRef ga = c.ws->mat(grad_a_), gz = c.ws->mat(grad_z_), gs = c.ws->mat(grad_s_);
    be.gemm(c.ws->mat(grad_out), false, c.ws->mat(mean_), true, ga, c.batch);  // dA = g · Mᵀ
    be.act_dropout_backward(Activation::kRelu, ga, c.ws->mat(a_[t]), gz, 0.0f, c.step, 1, false, 0,
                            c.grads + bias_);  // dZ, and the bias gradient
    be.spmm(*backward_, gz, gs, nullptr, /*prepared=*/true);  // [dY ; dR] = [Ãᵀ ; I] · dZ
    const ConstMatRef dy(gs.data, n_, wide_b), dr(gs.data + n_ * wide_b, n_, wide_b);
    input_.weight_grad(c, dy, MatRef{c.grads + init_, in_, wide_b});
    root_input_.weight_grad(c, dr, MatRef{c.grads + root_, in_, wide_b});
    if (grad_in < 0) return;
    const MatRef terms = c.ws->mat(terms_);
    const MatRef root_term{terms.data + n_ * in_b, n_, in_b};
    be.gemm(dy, false, ConstMatRef(c.params + init_, in_, wide_b), true, MatRef{terms.data, n_, in_b}, c.batch);
    if (dropped_ >= 0) {
      const MatRef rg = c.ws->mat(root_grad_);
      be.gemm(dr, false, ConstMatRef(c.params + root_, in_, wide_b), true, rg, c.batch);
      be.act_dropout_backward(Activation::kRelu, rg, c.ws->mat(dropped_), root_term, skip_, c.step, c.batch,
                              /*rates_from_steps=*/false, site_);
    } else {
      be.gemm(dr, false, ConstMatRef(c.params + root_, in_, wide_b), true, root_term, c.batch);
    }
    be.spmm(*sum_, terms, c.ws->mat(grad_in));  // dY · W_initᵀ + drop'(dR · W_rootᵀ)
  }

 private:
  std::string name_;
  int64_t in_, out_;
  int stacks_;
  float input_dropout_, skip_;
  uint32_t site_;
  int64_t n_ = 0;
  bool sparse_ = false;
  InputProduct input_, root_input_;
  int64_t weight_ = -1, init_ = -1, root_ = -1, bias_ = -1;
  const SparseMatrix* forward_ = nullptr;   // [Ã | I]
  const SparseMatrix* backward_ = nullptr;  // [Ãᵀ ; I]
  const SparseMatrix* sum_ = nullptr;       // [I I]
  Workspace::Id in_ids_[2] = {-1, -1}, out_ids_[2] = {-1, -1}, s_[2] = {-1, -1}, z_[2] = {-1, -1},
                a_[2] = {-1, -1};
  Workspace::Id dropped_ = -1, mean_ = -1, grad_a_ = -1, grad_z_ = -1, grad_s_ = -1, terms_ = -1, root_grad_ = -1;
};

class ArmaType final : public ConvStackType {
 public:
  const char* name() const override { return "arma"; }
  const char* pyg_class() const override { return "ARMAConv"; }
  std::string summary() const override {
    return "ARMAConv (num_layers=1, --stacks parallel stacks), benchmark/citation/arma.py";
  }
  bool uses_edge_weights() const override { return true; }

  std::vector<HyperParam> hyper_params() const override {
    HyperParam stacks;
    stacks.name = "stacks";
    stacks.kind = HyperParam::Kind::kInt;
    stacks.default_value = 1;
    stacks.min = 1;
    stacks.max = 16;
    stacks.architecture = true;
    stacks.help = "ARMAConv's parallel stacks K (num_stacks)";
    HyperParam skip;
    skip.name = "skip-dropout";
    skip.kind = HyperParam::Kind::kFloat;
    skip.default_value = 0.75;
    skip.min = 0;
    skip.max = 1;
    skip.max_exclusive = true;
    skip.help = "ARMAConv's dropout on the input of its skip (root) term, in [0, 1)";
    return {stacks, skip};
  }

  Recipe defaults() const override {
    Recipe r = *citation("cora");
    r.early_stopping = 0;
    r.script = "benchmark/citation/arma.py's Cora recipe without early stopping (PyG's examples/arma.py uses "
               "num_layers=2, which gcn-train does not have)";
    return r;
  }
  std::optional<Recipe> citation(const std::string& dataset) const override {
    Recipe r;  // run.sh: arma.py --num_stacks=2 --num_layers=1 --shared_weights (Cora)
    r.epochs = 1000;
    r.early_stopping = 100;
    r.hyper = {{"stacks", 2}, {"skip-dropout", 0.75}};
    r.script = "benchmark/citation/arma.py";
    if (dataset == "citeseer") r.hyper["stacks"] = 3;
    if (dataset == "pubmed") r.hyper["skip-dropout"] = 0.0;
    return r;
  }

  void validate(const ModelShape& s) const override {
    if (s.input_dropout > 0.0f && s.hp("skip-dropout") > 0.0) {
      throw UsageError(fmt::format(
          "--model arma: --input-dropout {} with --skip-dropout {}: the first ARMAConv's skip term would drop the "
          "dropped features again, which gcn-train does not do; set one of them to 0 (benchmark/citation/arma.py has "
          "no input dropout)",
          s.input_dropout, static_cast<float>(s.hp("skip-dropout"))));
    }
  }

  void declare_params(const ModelShape& s, ParamLayout& layout) const override {
    using I = ParamTensor::Init;
    using L = ParamTensor::Layout;
    const int64_t stacks = s.hp_int("stacks");
    for (int k = 0; k < s.layers; ++k) {
      const int64_t in = s.in_cols(k), out = s.out_cols(k);
      layout.add(fmt::format("conv{}.weight", k + 1), k, I::kGlorot, L::kStacked, out, stacks * out,
                 {1, stacks, out, out});
      layout.add(fmt::format("conv{}.init_weight", k + 1), k, I::kGlorot, L::kStacked, in, stacks * out,
                 {stacks, in, out});
      layout.add(fmt::format("conv{}.root_weight", k + 1), k, I::kGlorot, L::kStacked, in, stacks * out,
                 {1, stacks, in, out});
      layout.add(fmt::format("conv{}.bias", k + 1), k, I::kZeros, L::kStacked, 1, stacks * out, {1, stacks, 1, out});
    }
  }

  bool recognizes(const TensorShapes& file) const override { return file.count("conv1.init_weight") > 0; }
  ModelShape shape_from_file(const TensorShapes& file, const std::string& path) const override {
    ModelShape s = stack_shape(stack_dims(file, path, "init_weight", 3, 1, 2), 1, path);
    const int64_t stacks = file.at("conv1.init_weight")[0];
    if (stacks < 1 || stacks > 16) {
      throw DataError(fmt::format("{}: conv1.init_weight has {} stacks; gcn-train's ARMAConv has 1 to 16", path, stacks));
    }
    s.hyper["stacks"] = static_cast<double>(stacks);
    return s;
  }

 protected:
  std::unique_ptr<Layer> make_conv(const ModelShape& s, int k, float input_dropout) const override {
    return std::make_unique<ArmaConv>(fmt::format("conv{}", k + 1), s.in_cols(k), s.out_cols(k), s.hp_int("stacks"),
                                      input_dropout, static_cast<float>(s.hp("skip-dropout")),
                                      kLayerSite + 16 * static_cast<uint32_t>(k));
  }
  std::string conv_text(const ModelShape& s, int k) const override {
    std::string out =
        fmt::format("ARMAConv({}, {}, num_stacks={}, num_layers=1", s.in_cols(k), s.width(k), s.hp_int("stacks"));
    if (s.hp("skip-dropout") > 0.0) out += fmt::format(", dropout={}", static_cast<float>(s.hp("skip-dropout")));
    return out + ")";
  }
};

}  // namespace

const ModelType& arma_model_type() {
  static const ArmaType type;
  return type;
}

}  // namespace gcn
