// SGConv (--model sgc) and ChebConv (--model cheb) by hand: each model's
// evaluation output on the tiny graph (a one-way edge, an isolated node)
// against a plain double-precision implementation written here from PyG's
// formulas (gcn_norm's Â; get_laplacian's L̂), and the CLI's checks of
// their shapes. Gradients, checkpoints and batches are test_models.cpp's
// (archs()), the CLI's round trips test_every_model.cpp's.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "gcn/backend/devices.hpp"
#include "gcn/data/graph.hpp"
#include "gcn/data/planetoid.hpp"
#include "gcn/error.hpp"
#include "gcn/nn/device_graph.hpp"
#include "gcn/nn/model.hpp"
#include "gcn/nn/params.hpp"
#include "gcn/nn/registry.hpp"
#include "gcn/train/trainer.hpp"
#include "test_models.hpp"
#include "test_util.hpp"

namespace gcn {
namespace {

using Dense = std::vector<std::vector<double>>;

Dense zeros(std::size_t r, std::size_t c) { return Dense(r, std::vector<double>(c, 0.0)); }

Dense matmul(const Dense& a, const Dense& b) {
  Dense c = zeros(a.size(), b[0].size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    for (std::size_t k = 0; k < b.size(); ++k) {
      for (std::size_t j = 0; j < b[0].size(); ++j) c[i][j] += a[i][k] * b[k][j];
    }
  }
  return c;
}

Dense features(const Dataset& d) {
  Dense x = zeros(static_cast<std::size_t>(d.n_nodes), static_cast<std::size_t>(d.n_features));
  for (int32_t i = 0; i < d.n_nodes; ++i) {
    for (int32_t k = d.features.indptr[i]; k < d.features.indptr[i + 1]; ++k) {
      x[static_cast<std::size_t>(i)][static_cast<std::size_t>(d.features.indices[k])] = d.features.values[k];
    }
  }
  return x;
}

// PyG's gcn_norm(add_self_loops=True): the self loops replaced by one of
// weight 1, deg_i = 1 + the edges into i, Â[i][j] = Σ_{edges j -> i} 1 / sqrt(deg_j deg_i).
Dense gcn_norm_dense(const Dataset& d) {
  const auto n = static_cast<std::size_t>(d.n_nodes);
  std::vector<double> deg(n, 1.0);
  for (std::size_t e = 0; e < d.edge_src.size(); ++e) {
    if (d.edge_src[e] != d.edge_dst[e]) deg[static_cast<std::size_t>(d.edge_dst[e])] += 1.0;
  }
  Dense a = zeros(n, n);
  for (std::size_t i = 0; i < n; ++i) a[i][i] = 1.0 / deg[i];
  for (std::size_t e = 0; e < d.edge_src.size(); ++e) {
    const auto s = static_cast<std::size_t>(d.edge_src[e]), t = static_cast<std::size_t>(d.edge_dst[e]);
    if (s != t) a[t][s] += 1.0 / std::sqrt(deg[s] * deg[t]);
  }
  return a;
}

// A parameter tensor of ours as a dense (rows, cols) matrix.
Dense param(const std::vector<float>& p, const ParamLayout& layout, const std::string& name) {
  const ParamTensor* t = layout.find(name);
  EXPECT_NE(t, nullptr) << name;
  Dense m = zeros(static_cast<std::size_t>(t->rows), static_cast<std::size_t>(t->cols));
  for (int64_t r = 0; r < t->rows; ++r) {
    for (int64_t c = 0; c < t->cols; ++c) {
      m[static_cast<std::size_t>(r)][static_cast<std::size_t>(c)] = p[static_cast<std::size_t>(t->offset + r * t->cols + c)];
    }
  }
  return m;
}

void add_bias(Dense& m, const Dense& bias) {
  for (auto& row : m) {
    for (std::size_t j = 0; j < row.size(); ++j) row[j] += bias[0][j];
  }
}

// The model's evaluation log-probabilities against log_softmax(logits).
void expect_log_softmax_of(GcnModel& model, const Dense& logits, const std::string& what) {
  model.eval_pass(/*advance=*/false);
  const std::vector<float> got = model.log_probabilities();
  const std::size_t c = logits[0].size();
  ASSERT_EQ(got.size(), logits.size() * c);
  for (std::size_t i = 0; i < logits.size(); ++i) {
    double m = logits[i][0];
    for (double v : logits[i]) m = std::max(m, v);
    double s = 0.0;
    for (double v : logits[i]) s += std::exp(v - m);
    for (std::size_t j = 0; j < c; ++j) {
      const double want = logits[i][j] - m - std::log(s);
      EXPECT_NEAR(got[i * c + j], want, 2e-6 + 2e-6 * std::abs(want)) << what << " node " << i << " class " << j;
    }
  }
}

// ---- SGConv ------------------------------------------------------------------------

// out = Â^K X W + b on the tiny graph for K = 1, 2, 3, 5 (random weights and bias).
TEST(SgConv, OutputIsAHatToTheKTimesXW) {
  auto be = make_cpu_backend(1);
  const Dataset d = tiny_dataset();
  const DeviceGraph graph(*be, d);
  const Dense a = gcn_norm_dense(d), x = features(d);
  for (int k : {1, 2, 3, 5}) {
    ModelShape s = ModelShape::of("sgc", d.n_features, 16, d.n_classes);
    s.layers = 1;
    s.hyper["K"] = k;
    const ParamLayout layout(s);
    std::vector<float> p = init_params(s, 7);
    for (int64_t i = layout.find("conv1.lin.bias")->offset; i < layout.total; ++i) p[i] = 0.1f * static_cast<float>(i % 5) - 0.2f;
    GcnModel model(graph, s, 0.0f);
    model.set_params(p);
    Dense h = x;
    for (int j = 0; j < k; ++j) h = matmul(a, h);  // PyG's order: Â^K X, then the Linear
    Dense logits = matmul(h, param(p, layout, "conv1.lin.weight"));
    add_bias(logits, param(p, layout, "conv1.lin.bias"));
    expect_log_softmax_of(model, logits, "K=" + std::to_string(k));
  }
}

// One layer only; --hidden is not used (any width gives the same tensors).
TEST(SgConv, IsOneLayer) {
  ModelShape s = ModelShape::of("sgc", 5, 16, 3);
  s.layers = 1;
  EXPECT_NO_THROW(s.validate());
  ModelShape other = s;
  other.hidden = 64;
  EXPECT_TRUE(other.same_parameters(s));
  s.layers = 2;
  try {
    s.validate();
    FAIL() << "sgc with 2 layers";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("leave out --layers"), std::string::npos) << e.what();
  }
  s.layers = 1;
  s.hyper["K"] = 17;
  EXPECT_THROW(s.validate(), UsageError);
  s.hyper["K"] = 0;
  EXPECT_THROW(s.validate(), UsageError);
}

// ---- ChebConv ------------------------------------------------------------------------

// PyG's get_laplacian(normalization="sym") then ChebConv.__norm__ (λmax = 2),
// written from the formulas: self loops dropped, deg(j) = the edges out of
// j, L̂[t][s] = −Σ_{edges s -> t} deg(s)^-1/2 deg(t)^-1/2, deg^-1/2 = 0 where deg = 0.
Dense cheb_laplacian_dense(int32_t n_nodes, const std::vector<int32_t>& src, const std::vector<int32_t>& dst) {
  const auto n = static_cast<std::size_t>(n_nodes);
  std::vector<double> deg(n, 0.0);
  for (std::size_t e = 0; e < src.size(); ++e) {
    if (src[e] != dst[e]) deg[static_cast<std::size_t>(src[e])] += 1.0;
  }
  Dense l = zeros(n, n);
  for (std::size_t e = 0; e < src.size(); ++e) {
    const auto s = static_cast<std::size_t>(src[e]), t = static_cast<std::size_t>(dst[e]);
    if (s == t) continue;
    const double ds = deg[s] > 0 ? 1.0 / std::sqrt(deg[s]) : 0.0, dt = deg[t] > 0 ? 1.0 / std::sqrt(deg[t]) : 0.0;
    l[t][s] -= ds * dt;
  }
  return l;
}

Dense dense_of(const CsrMatrix& m) {
  Dense d = zeros(static_cast<std::size_t>(m.n_rows), static_cast<std::size_t>(m.n_cols));
  for (int32_t i = 0; i < m.n_rows; ++i) {
    for (int32_t k = m.indptr[i]; k < m.indptr[i + 1]; ++k) {
      d[static_cast<std::size_t>(i)][static_cast<std::size_t>(m.indices[k])] += m.values[k];
    }
  }
  return d;
}

// Four nodes: 0 <-> 1 with 0 -> 1 twice (PyG keeps duplicates: both count),
// 1 <-> 2, a self loop on 2 (removed), a one-way 0 -> 2, and 3 isolated.
// The values are the ones PyG 2.8.1's ChebConv.__norm__ gives.
TEST(ChebConv, ScaledLaplacianByHand) {
  const std::vector<int32_t> src = {0, 1, 0, 1, 2, 2, 0}, dst = {1, 0, 1, 2, 1, 2, 2};
  const CsrMatrix l = cheb_laplacian(4, src, dst);
  EXPECT_NO_THROW(l.validate("L̂"));
  const Dense got = dense_of(l), want = cheb_laplacian_dense(4, src, dst);
  // deg = (3, 2, 1, 0): L̂[1][0] = −2/sqrt(3·2), L̂[0][1] = −1/sqrt(2·3), L̂[2][0] = −1/sqrt(3·1), L̂[1][2] = L̂[2][1] = −1/sqrt(2).
  const double hand[4][4] = {{0, -1 / std::sqrt(6.0), 0, 0},
                             {-2 / std::sqrt(6.0), 0, -1 / std::sqrt(2.0), 0},
                             {-1 / std::sqrt(3.0), -1 / std::sqrt(2.0), 0, 0},
                             {0, 0, 0, 0}};
  for (std::size_t i = 0; i < 4; ++i) {
    for (std::size_t j = 0; j < 4; ++j) {
      EXPECT_NEAR(got[i][j], hand[i][j], 1e-7) << i << ", " << j;
      EXPECT_NEAR(want[i][j], hand[i][j], 1e-12) << i << ", " << j;
    }
  }
  // No diagonal entries, the duplicate merged, rows sorted: 0: {1}; 1: {0, 2}; 2: {0, 1}; 3: {}.
  EXPECT_EQ(l.indptr, (std::vector<int32_t>{0, 1, 3, 5, 5}));
  EXPECT_EQ(l.indices, (std::vector<int32_t>{1, 0, 2, 0, 1}));
  EXPECT_THROW(cheb_laplacian(2, {0}, {2}), DataError);
  // get_laplacian with edge weights 1..7 (the self loop's 6 removed): out-degrees 11, 6, 5, 0.
  const Dense w = dense_of(cheb_laplacian(4, src, dst, {1, 2, 3, 4, 5, 6, 7}));
  const double whand[4][4] = {{0, -2 / std::sqrt(66.0), 0, 0},
                              {-4 / std::sqrt(66.0), 0, -5 / std::sqrt(30.0), 0},
                              {-7 / std::sqrt(55.0), -4 / std::sqrt(30.0), 0, 0},
                              {0, 0, 0, 0}};
  for (std::size_t i = 0; i < 4; ++i) {
    for (std::size_t j = 0; j < 4; ++j) EXPECT_NEAR(w[i][j], whand[i][j], 1e-7) << "weighted " << i << ", " << j;
  }
  EXPECT_EQ(dense_of(cheb_laplacian(4, src, dst, std::vector<float>(7, 1.0f))), got);  // all ones: the same bits
}

// One ChebConv(5, 3, K) on the tiny graph (a one-way edge, an isolated
// node): Σ_j T_j(L̂) X W_j + b with T_0 = I, T_1 = L̂, T_j = 2 L̂ T_{j-1} − T_{j-2}
// as PyG computes it (the recurrence on X, then each Linear), for K = 1 .. 5:
// every term of the Clenshaw operators (−b_{k+2} from K = 4).
TEST(ChebConv, OutputIsTheChebyshevSeries) {
  auto be = make_cpu_backend(1);
  const Dataset d = tiny_dataset();
  const DeviceGraph graph(*be, d);
  const Dense l = cheb_laplacian_dense(d.n_nodes, d.edge_src, d.edge_dst), x = features(d);
  for (int k = 1; k <= 5; ++k) {
    ModelShape s = ModelShape::of("cheb", d.n_features, 16, d.n_classes);
    s.layers = 1;
    s.hyper["K"] = k;
    const ParamLayout layout(s);
    std::vector<float> p = init_params(s, 3);
    const ParamTensor* bias = layout.find("conv1.bias");
    for (int64_t i = 0; i < bias->size(); ++i) p[bias->offset + i] = 0.1f * static_cast<float>(i) - 0.05f;
    GcnModel model(graph, s, 0.0f);
    model.set_params(p);
    Dense logits = zeros(x.size(), static_cast<std::size_t>(d.n_classes));
    Dense t_prev = x, t = matmul(l, x);  // T_0 X, T_1 X
    for (int j = 0; j < k; ++j) {
      const Dense& tj = j == 0 ? x : t;
      const Dense term = matmul(tj, param(p, layout, fmt::format("conv1.lins.{}.weight", j)));
      for (std::size_t r = 0; r < logits.size(); ++r) {
        for (std::size_t c = 0; c < logits[r].size(); ++c) logits[r][c] += term[r][c];
      }
      if (j >= 1) {  // T_{j+1} X = 2 L̂ T_j X − T_{j-1} X
        Dense next = matmul(l, t);
        for (std::size_t r = 0; r < next.size(); ++r) {
          for (std::size_t c = 0; c < next[r].size(); ++c) next[r][c] = 2.0 * next[r][c] - t_prev[r][c];
        }
        t_prev = t;
        t = next;
      }
    }
    add_bias(logits, param(p, layout, "conv1.bias"));
    expect_log_softmax_of(model, logits, "K=" + std::to_string(k));
  }
}

// K weights per layer: K is part of the architecture (a file fixes it).
TEST(ChebConv, KIsTheNumberOfWeights) {
  ModelShape s = ModelShape::of("cheb", 5, 4, 3);
  s.hyper["K"] = 4;
  const ParamLayout layout(s);
  EXPECT_EQ(layout.tensors.size(), 2u * (1 + 4));
  EXPECT_EQ(s.describe(), "cheb 5-4-3 K=4");
  ModelShape other = s;
  other.hyper["K"] = 3;
  EXPECT_FALSE(other.same_parameters(s));
  s.hyper["K"] = 17;
  EXPECT_THROW(s.validate(), UsageError);
}

// ---- both ------------------------------------------------------------------------

// Each with its defaults (--model NAME alone) learns Cora: one seed, against
// PyG 2.8.1's means over seeds 0-9 (scripts/pyg_tutorial.py): cheb 0.81, sgc 0.772.
TEST(ChebAndSgc, LearnCora) {
  GCN_DATA_ROOT_OR_SKIP(root);
  const Dataset cora = load_planetoid("cora", root);
  auto be = make_cpu_backend(0);
  const DeviceGraph graph(*be, cora);
  for (const auto& [name, test_acc] : {std::pair{"cheb", 0.78}, {"sgc", 0.76}}) {
    TrainConfig c;
    c.model = &find_model_type(name);
    const Recipe r = c.model->defaults();
    c.epochs = r.epochs;
    c.layers = r.layers;
    c.hidden = r.hidden;
    c.lr = r.lr;
    c.weight_decay = r.weight_decay;
    c.dropout = r.dropout;
    c.input_dropout = r.input_dropout;
    c.hyper = c.model->default_hyper();
    for (const auto& [k, v] : r.hyper) c.hyper[k] = v;
    c.log_every = 50;
    Trainer t(graph, c.shape(cora.n_features, cora.n_classes), c.dropout);
    const TrainResult res = t.train(c);
    EXPECT_GT(res.final_stats().test_acc, test_acc) << name;
    EXPECT_GT(res.final_stats().train_acc, 0.85) << name;
  }
}

}  // namespace
}  // namespace gcn
