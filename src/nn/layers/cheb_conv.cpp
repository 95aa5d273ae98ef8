// --model cheb: PyG's ChebConv (normalization="sym"), in
// benchmark/citation/cheb.py's network:
//   ChebConv(F, 16, K) -> ReLU -> dropout(0.5) -> ChebConv(16, C, K)
//   conv.bias            [out], zeros (PyG's state_dict order: the bias first)
//   conv.lins.J.weight   PyG [out, in], ours (in, out), glorot, J = 0 .. K-1
//
// ChebConv(in, out, K): out = Σ_{j<K} T_j(L̂) · in · W_j + b, T_0 = I,
// T_1 = L̂, T_j = 2 L̂ T_{j-1} − T_{j-2}, L̂ = 2L/λmax − I = −D^-1/2 A D^-1/2
// (cheb_laplacian in gcn/data/graph.hpp). PyG runs the recurrence on the
// input (T_j(L̂) · in, then each Linear); this multiplies by the weights
// first (Y_j = in · W_j, out columns instead of in) and sums the series by
// Clenshaw's recurrence: the same values up to rounding.
//
// There is no dense add: every sum is one sparse product over a vertically
// stacked tensor. The forward's tensor S holds, in this memory order,
//   [Y_0, ..., Y_{K-1}, b_{K-2}, b_{K-3}, ..., b_1]       ((2K − 2)·N rows, K >= 2)
// with b_{K-1} = Y_{K-1}, b_k = Y_k + 2 L̂ b_{k+1} − b_{k+2} (b_K = 0): each
// b_k is one spmm whose operand is the prefix of S before b_k's block and
// whose operator has its columns in the blocks of Y_k, b_{k+1} and b_{k+2};
// then out = Y_0 + L̂ b_1 − b_2 + bias, one spmm over S.
// The backward runs the forward recurrence on the gradient g:
//   U_j = T_j(L̂)ᵀ g: U_0 = g, U_1 = L̂ᵀ U_0, U_j = 2 L̂ᵀ U_{j-1} − U_{j-2}
// (each over the prefix of the stacked U before block j), dW_j = inᵀ U_j,
// d in = [I ... I] · [U_0 W_0ᵀ ; ... ; U_{K-1} W_{K-1}ᵀ], db = Σ_rows g.
#include <fmt/format.h>

#include <limits>
#include <optional>

#include "gcn/data/graph.hpp"
#include "gcn/error.hpp"
#include "gcn/nn/registry.hpp"
#include "nn/layers/conv_stack.hpp"
#include "nn/layers/input_product.hpp"

namespace gcn {
namespace {

// The block of b_k in the forward's stacked tensor (b_{K-1} is Y_{K-1}'s).
int b_block(int K, int k) { return k == K - 1 ? K - 1 : K + (K - 2 - k); }
// Blocks in the forward's stacked tensor.
int forward_blocks(int K) { return K >= 2 ? 2 * K - 2 : 1; }

void check_columns(int64_t cols) {
  if (cols > std::numeric_limits<int32_t>::max()) {
    throw DataError(fmt::format("ChebConv: a stacked operator of {} columns is beyond int32 indices", cols));
  }
}

// An operator (N, blocks·N) of which row i has, in column order, `unit`
// blocks' entry (i, i) with its value, then L̂'s row i scaled by `scale` in
// block `lhat_block` (-1: none). Every listed block precedes lhat_block.
CsrMatrix block_operator(const CsrMatrix& lhat, int blocks, const std::vector<std::pair<int, float>>& unit,
                         int lhat_block, float scale) {
  const int32_t n = lhat.n_rows;
  check_columns(static_cast<int64_t>(blocks) * n);
  CsrMatrix m;
  m.n_rows = n;
  m.n_cols = blocks * n;
  m.indptr.assign(1, 0);
  for (int32_t i = 0; i < n; ++i) {
    for (const auto& [block, value] : unit) {
      m.indices.push_back(block * n + i);
      m.values.push_back(value);
    }
    if (lhat_block >= 0) {
      for (int32_t k = lhat.indptr[i]; k < lhat.indptr[i + 1]; ++k) {
        m.indices.push_back(lhat_block * n + lhat.indices[k]);
        m.values.push_back(scale * lhat.values[k]);
      }
    }
    if (m.indices.size() > static_cast<std::size_t>(std::numeric_limits<int32_t>::max())) {
      throw DataError("ChebConv: a stacked operator has more entries than int32 indices reach");
    }
    m.indptr.push_back(static_cast<int32_t>(m.indices.size()));
  }
  return m;
}

class ChebConv final : public Layer {
 public:
  ChebConv(std::string name, int64_t in_cols, int64_t out_cols, int k, float input_dropout)
      : name_(std::move(name)), in_(in_cols), out_(out_cols), k_(k), input_dropout_(input_dropout) {}

  std::string describe() const override {
    return fmt::format("ChebConv({}, {}, K={}, normalization=sym)", in_, out_, k_);
  }
  bool depends_on_pass() const override { return input_dropout_ > 0.0f; }
  int64_t out_cols() const override { return out_; }
  int64_t bias_offset() const override { return bias_; }

  void plan(Planner& p, const Workspace::Id in[2], bool shared, Workspace::Id out[2]) override {
    bias_ = p.add_param(1, out_);  // conv.bias
    weights_.clear();
    for (int j = 0; j < k_; ++j) weights_.push_back(p.add_param(in_, out_));  // conv.lins.j.weight, stored (in, out)
    input_.plan(p, name_, in, input_dropout_);
    n_ = p.n_nodes();
    const int64_t out_b = out_ * p.batch();
    const int blocks = forward_blocks(k_);
    for (Pass pass : {Pass::kEval, Pass::kTrain}) {
      const int i = pass_index(pass);
      if (shared && pass == Pass::kTrain) {
        stack_[i] = stack_[pass_index(Pass::kEval)];
        out[i] = out[pass_index(Pass::kEval)];
        continue;
      }
      const std::string suffix = shared ? "" : pass_suffix(pass);
      stack_[i] = p.tensor(name_ + ".terms" + suffix, blocks * n_, out_b);  // [Y_0 .. Y_{K-1}, b_{K-2} .. b_1]
      out[i] = p.tensor(name_ + ".out" + suffix, n_, out_b);
      p.prepare(pass, out[i], bias_);
      p.prepare(pass, stack_[i], -1);  // every block written once a pass
    }
    for (int i = 0; i < 2; ++i) out_ids_[i] = out[i];
    grad_stack_ = p.tensor(name_ + ".terms.grad", k_ * n_, out_b);  // [U_0 .. U_{K-1}]
    p.prepare(Pass::kTrain, grad_stack_, -1);
    if (input_.prepared()) {
      for (int64_t w : weights_) p.prepare_grad(Pass::kTrain, w, in_, out_b);
    } else if (k_ > 1) {
      grad_terms_ = p.tensor(name_ + ".in.grad.terms", k_ * n_, in_ * p.batch());
    }

    const DeviceGraph& g = p.graph();
    const Dataset& d = g.dataset();
    std::optional<CsrMatrix> lhat_host;
    auto lhat = [&]() -> const CsrMatrix& {
      if (!lhat_host) lhat_host = cheb_laplacian(d.n_nodes, d.edge_src, d.edge_dst, d.edge_weight);
      return *lhat_host;
    };
    const int K = k_;
    steps_.assign(static_cast<std::size_t>(K), nullptr);
    for (int k = K - 2; k >= 1; --k) {  // b_k = Y_k + 2 L̂ b_{k+1} − b_{k+2}, over the blocks before b_k's
      steps_[static_cast<std::size_t>(k)] = &g.derived(fmt::format("cheb.K{}.b{}", K, k), [&] {
        std::vector<std::pair<int, float>> unit = {{k, 1.0f}};
        if (k + 2 <= K - 1) unit.emplace_back(b_block(K, k + 2), -1.0f);
        return block_operator(lhat(), b_block(K, k), unit, b_block(K, k + 1), 2.0f);
      });
    }
    final_ = &g.derived(fmt::format("cheb.K{}.out", K), [&] {  // Y_0 + L̂ b_1 − b_2
      std::vector<std::pair<int, float>> unit = {{0, 1.0f}};
      if (K >= 3) unit.emplace_back(b_block(K, 2), -1.0f);
      return block_operator(lhat(), forward_blocks(K), unit, K >= 2 ? b_block(K, 1) : -1, 1.0f);
    });
    identity_ = &g.derived("cheb.identity", [&] { return block_operator(lhat(), 1, {{0, 1.0f}}, -1, 1.0f); });
    back_.assign(static_cast<std::size_t>(K), nullptr);
    if (K >= 2) {
      back_[1] = &g.derived("cheb.lhat_t", [&] { return lhat().transposed(); });
    }
    std::optional<CsrMatrix> lhat_t_host;
    for (int j = 2; j < K; ++j) {  // U_j = 2 L̂ᵀ U_{j-1} − U_{j-2}, over U's first j blocks
      back_[static_cast<std::size_t>(j)] = &g.derived(fmt::format("cheb.back{}", j), [&] {
        if (!lhat_t_host) lhat_t_host = lhat().transposed();
        return block_operator(*lhat_t_host, j, {{j - 2, -1.0f}}, j - 1, 2.0f);
      });
    }
    if (grad_terms_ >= 0) {
      sum_ = &g.derived(fmt::format("cheb.sum{}", K), [&] {
        std::vector<std::pair<int, float>> unit;
        for (int j = 0; j < K; ++j) unit.emplace_back(j, 1.0f);
        return block_operator(lhat(), K, unit, -1, 1.0f);
      });
    }
  }

  void forward(const LayerContext& c, Pass pass) const override {
    Backend& be = *c.backend;
    const int64_t cols = out_ * c.batch;
    const MatRef s = c.ws->mat(stack_[pass_index(pass)]);
    for (int j = 0; j < k_; ++j) {  // Y_j = in · W_j
      input_.forward(c, pass, ConstMatRef(c.params + weights_[static_cast<std::size_t>(j)], in_, cols), block(s, j));
    }
    for (int k = k_ - 2; k >= 1; --k) {
      const int at = b_block(k_, k);
      be.spmm(*steps_[static_cast<std::size_t>(k)], ConstMatRef(s.data, at * n_, cols), block(s, at), nullptr,
              /*prepared=*/true);
    }
    be.spmm(*final_, s, c.ws->mat(out_ids_[pass_index(pass)]), c.params + bias_, /*prepared=*/true);
  }

  void backward(const LayerContext& c, Workspace::Id grad_out, Workspace::Id grad_in, float* col_sums,
                bool bias_grad_done) const override {
    if (col_sums != nullptr) throw Error(describe() + ": cannot fuse the column sums of its input gradient");
    Backend& be = *c.backend;
    const int64_t cols = out_ * c.batch;
    const ConstMatRef g = c.ws->mat(grad_out);
    if (!bias_grad_done) be.column_sum(g, c.grads + bias_);
    const MatRef u = c.ws->mat(grad_stack_);
    be.spmm(*identity_, g, block(u, 0), nullptr, /*prepared=*/true);  // U_0 = g
    if (k_ >= 2) be.spmm(*back_[1], block(u, 0), block(u, 1), nullptr, /*prepared=*/true);  // U_1 = L̂ᵀ U_0
    for (int j = 2; j < k_; ++j) {
      be.spmm(*back_[static_cast<std::size_t>(j)], ConstMatRef(u.data, j * n_, cols), block(u, j), nullptr,
              /*prepared=*/true);
    }
    for (int j = 0; j < k_; ++j) {  // dW_j = inᵀ U_j
      input_.weight_grad(c, block(u, j), MatRef{c.grads + weights_[static_cast<std::size_t>(j)], in_, cols});
    }
    if (grad_in < 0) return;
    const int64_t in_b = in_ * c.batch;
    if (k_ == 1) {
      be.gemm(block(u, 0), false, ConstMatRef(c.params + weights_[0], in_, cols), true, c.ws->mat(grad_in), c.batch);
      return;
    }
    const MatRef t = c.ws->mat(grad_terms_);
    for (int j = 0; j < k_; ++j) {  // U_j · W_jᵀ
      be.gemm(block(u, j), false, ConstMatRef(c.params + weights_[static_cast<std::size_t>(j)], in_, cols), true,
              MatRef{t.data + j * n_ * in_b, n_, in_b}, c.batch);
    }
    be.spmm(*sum_, t, c.ws->mat(grad_in));  // Σ_j U_j · W_jᵀ, in j's order
  }

 private:
  MatRef block(MatRef m, int j) const { return MatRef{m.data + j * n_ * m.cols, n_, m.cols}; }

  std::string name_;
  int64_t in_, out_;
  int k_;
  float input_dropout_;
  InputProduct input_;
  int64_t n_ = 0;
  int64_t bias_ = -1;
  std::vector<int64_t> weights_;
  std::vector<const SparseMatrix*> steps_;  // [k]: b_k's operator (k = 1 .. K-2)
  const SparseMatrix* final_ = nullptr;     // out = Y_0 + L̂ b_1 − b_2
  const SparseMatrix* identity_ = nullptr;  // U_0 = g
  std::vector<const SparseMatrix*> back_;   // [j]: U_j's operator (j = 1 .. K-1)
  const SparseMatrix* sum_ = nullptr;       // [I ... I]
  Workspace::Id stack_[2] = {-1, -1}, out_ids_[2] = {-1, -1}, grad_stack_ = -1, grad_terms_ = -1;
};

class ChebType final : public ConvStackType {
 public:
  const char* name() const override { return "cheb"; }
  const char* pyg_class() const override { return "ChebConv"; }
  std::string summary() const override {
    return "ChebConv (K Chebyshev terms of the scaled Laplacian, normalization=sym), benchmark/citation/cheb.py's "
           "network";
  }
  bool uses_edge_weights() const override { return true; }

  std::vector<HyperParam> hyper_params() const override {
    HyperParam k;
    k.name = "K";
    k.kind = HyperParam::Kind::kInt;
    k.default_value = 3;  // cheb.py's --num_hops
    k.min = 1;
    k.max = 16;
    k.architecture = true;  // K weights per layer
    k.help = "ChebConv's Chebyshev terms (K weights per layer), 1 to 16";
    return {k};
  }

  Recipe defaults() const override {
    Recipe r = *citation("cora");
    r.early_stopping = 0;
    r.script = "benchmark/citation/cheb.py (Cora)";
    return r;
  }
  std::optional<Recipe> citation(const std::string& dataset) const override {
    Recipe r;  // cheb.py: hidden 16, dropout 0.5, lr 0.01, weight decay 5e-4, 200 epochs, early_stopping 10
    r.early_stopping = 10;
    r.script = "benchmark/citation/cheb.py";
    r.hyper = {{"K", dataset == "citeseer" || dataset == "pubmed" ? 2 : 3}};  // run.sh's --num_hops
    return r;
  }

  void declare_params(const ModelShape& s, ParamLayout& layout) const override {
    using I = ParamTensor::Init;
    for (int k = 0; k < s.layers; ++k) {
      layout.add_vector(fmt::format("conv{}.bias", k + 1), k, I::kZeros, s.out_cols(k));
      for (int j = 0; j < s.hp_int("K"); ++j) {
        layout.add_weight(fmt::format("conv{}.lins.{}.weight", k + 1, j), k, I::kGlorot, s.in_cols(k),
                          s.out_cols(k));
      }
    }
  }

  bool recognizes(const TensorShapes& file) const override { return file.count("conv1.lins.0.weight") > 0; }
  ModelShape shape_from_file(const TensorShapes& file, const std::string& path) const override {
    ModelShape s = stack_shape(stack_dims(file, path, "lins.0.weight", 2, 1, 0), 1, path);
    int k = 0;
    while (file.count(fmt::format("conv1.lins.{}.weight", k)) > 0) ++k;
    if (k > 16) throw DataError(fmt::format("{}: conv1 has {} Chebyshev weights; at most 16", path, k));
    s.hyper["K"] = k;
    return s;
  }

 protected:
  std::unique_ptr<Layer> make_conv(const ModelShape& s, int k, float input_dropout) const override {
    return std::make_unique<ChebConv>(fmt::format("conv{}", k + 1), s.in_cols(k), s.out_cols(k), s.hp_int("K"),
                                      input_dropout);
  }
  std::string conv_text(const ModelShape& s, int k) const override {
    return fmt::format("ChebConv({}, {}, K={}, normalization=sym)", s.in_cols(k), s.width(k), s.hp_int("K"));
  }
};

}  // namespace

const ModelType& cheb_model_type() {
  static const ChebType type;
  return type;
}

}  // namespace gcn
