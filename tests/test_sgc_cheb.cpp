// SGConv (--model sgc) and ChebConv (--model cheb) by hand: each model's
// evaluation output on the tiny graph (a one-way edge, an isolated node)
// against a plain double-precision implementation written here from PyG's
// formulas (gcn_norm's Â; get_laplacian's L̂), and the CLI's checks of
// their shapes. Gradients, checkpoints and batches are test_models.cpp's
// (archs()), the CLI's round trips test_every_model.cpp's.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "gcn/backend/devices.hpp"
#include "gcn/error.hpp"
#include "gcn/nn/device_graph.hpp"
#include "gcn/nn/model.hpp"
#include "gcn/nn/params.hpp"
#include "gcn/nn/registry.hpp"
#include "test_models.hpp"

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

}  // namespace
}  // namespace gcn
