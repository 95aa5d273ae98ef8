// APPNP's and ARMA's sparse operators against dense double-precision
// references written here, on a 4-node graph with a one-way edge and an
// isolated node:
// - block_operator's entries by hand;
// - APPNP(K, alpha)'s forward operators, chained as the layer chains them,
//   against h_{k+1} = (1 - α) Â h_k + α x0 iterated densely, and the
//   backward's against the transpose of the whole map (so the backward's
//   derivation is checked, not only its code), for K = 1, 2, 3, 5;
// - ARMAConv's normalisation (gcn_norm without self loops) by hand, with a
//   self loop, a duplicate edge and a node without in-edges;
// - the shapes both types read from a file, and the files they refuse.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "gcn/data/graph.hpp"
#include "gcn/error.hpp"
#include "gcn/nn/params.hpp"
#include "gcn/nn/registry.hpp"
#include "nn/layers/appnp.hpp"
#include "nn/layers/arma.hpp"

namespace gcn {
namespace {

using Dense = std::vector<std::vector<double>>;

Dense zeros(int r, int c) { return Dense(static_cast<std::size_t>(r), std::vector<double>(static_cast<std::size_t>(c), 0.0)); }

Dense dense(const CsrMatrix& m) {
  Dense d = zeros(m.n_rows, m.n_cols);
  for (int32_t i = 0; i < m.n_rows; ++i) {
    for (int32_t e = m.indptr[i]; e < m.indptr[i + 1]; ++e) d[i][m.indices[e]] += m.values[e];
  }
  return d;
}

Dense matmul(const Dense& a, const Dense& b) {
  Dense c = zeros(static_cast<int>(a.size()), static_cast<int>(b.front().size()));
  for (std::size_t i = 0; i < a.size(); ++i) {
    for (std::size_t k = 0; k < b.size(); ++k) {
      for (std::size_t j = 0; j < b.front().size(); ++j) c[i][j] += a[i][k] * b[k][j];
    }
  }
  return c;
}

Dense transpose(const Dense& a) {
  Dense t = zeros(static_cast<int>(a.front().size()), static_cast<int>(a.size()));
  for (std::size_t i = 0; i < a.size(); ++i) {
    for (std::size_t j = 0; j < a.front().size(); ++j) t[j][i] = a[i][j];
  }
  return t;
}

void expect_near(const Dense& got, const Dense& want, double tol, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (std::size_t i = 0; i < want.size(); ++i) {
    ASSERT_EQ(got[i].size(), want[i].size()) << what;
    for (std::size_t j = 0; j < want[i].size(); ++j) {
      EXPECT_NEAR(got[i][j], want[i][j], tol) << what << " (" << i << ", " << j << ")";
    }
  }
}

// 0 - 1, 1 - 2 (both ways), 2 -> 0 (one way); node 3 isolated.
const std::vector<int32_t> kSrc = {0, 1, 1, 2, 2};
const std::vector<int32_t> kDst = {1, 0, 2, 1, 0};
constexpr int kN = 4;

// PyG's gcn_norm with self loops, by hand: deg(i) = 1 + edges into i,
// Â[i][j] = deg(i)^-1/2 deg(j)^-1/2 for each edge j -> i and j = i.
Dense gcn_norm_by_hand() {
  std::vector<double> deg(kN, 1.0);
  for (int32_t d : kDst) deg[d] += 1.0;
  Dense a = zeros(kN, kN);
  for (std::size_t e = 0; e < kSrc.size(); ++e) a[kDst[e]][kSrc[e]] += 1.0 / std::sqrt(deg[kDst[e]] * deg[kSrc[e]]);
  for (int i = 0; i < kN; ++i) a[i][i] += 1.0 / deg[i];
  return a;
}

TEST(BlockOperator, EntriesByHand) {
  // M = [[0, 2], [3, 4]]: no diagonal entry in row 0.
  CsrMatrix m;
  m.n_rows = m.n_cols = 2;
  m.indptr = {0, 1, 3};
  m.indices = {1, 0, 1};
  m.values = {2.0f, 3.0f, 4.0f};
  // [[0.5 M + I, 0] ; [0, 2 I]]
  const CsrMatrix b = block_operator(m, {{{0.5, 1.0}, {0.0, 0.0}}, {{0.0, 0.0}, {0.0, 2.0}}});
  EXPECT_EQ(b.n_rows, 4);
  EXPECT_EQ(b.n_cols, 4);
  EXPECT_EQ(b.indptr, (std::vector<int32_t>{0, 2, 4, 5, 6}));
  EXPECT_EQ(b.indices, (std::vector<int32_t>{0, 1, 0, 1, 2, 3}));
  EXPECT_EQ(b.values, (std::vector<float>{1.0f, 1.0f, 1.5f, 3.0f, 2.0f, 2.0f}));
  b.validate("block operator");
}

// The whole map x0 -> out of APPNP(K, α), densely: P = Σ over the K steps.
Dense appnp_map(const Dense& a, int k, double alpha) {
  Dense p = zeros(kN, kN), eye = zeros(kN, kN);
  for (int i = 0; i < kN; ++i) p[i][i] = eye[i][i] = 1.0;  // h_0 = x0
  for (int s = 0; s < k; ++s) {
    Dense next = matmul(a, p);
    for (int i = 0; i < kN; ++i) {
      for (int j = 0; j < kN; ++j) next[i][j] = (1.0 - alpha) * next[i][j] + alpha * eye[i][j];
    }
    p = next;
  }
  return p;
}

// The layer's chain of products (appnp.cpp's run) on a dense input.
Dense chain(const AppnpOperators& o, int k, const Dense& x, bool backward) {
  if (k == 1) return matmul(dense(backward ? o.single_t : o.single), x);
  Dense buf = matmul(dense(backward ? o.first_t : o.first), x);
  for (int s = 0; s + 2 < k; ++s) buf = matmul(dense(backward ? o.step_t : o.step), buf);
  return matmul(dense(backward ? o.last_t : o.last), buf);
}

TEST(AppnpOperators, ForwardAndBackwardMatchTheDenseRecurrence) {
  const CsrMatrix adj = gcn_norm(kN, kSrc, kDst);
  const Dense a = gcn_norm_by_hand();
  expect_near(dense(adj), a, 1e-7, "gcn_norm");
  std::mt19937 gen(7);
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  Dense x = zeros(kN, 3), g = zeros(kN, 3);
  for (int i = 0; i < kN; ++i) {
    for (int j = 0; j < 3; ++j) {
      x[i][j] = u(gen);
      g[i][j] = u(gen);
    }
  }
  for (double alpha : {0.1, 0.35, 0.0, 1.0}) {
    const AppnpOperators o = appnp_operators(adj, alpha);
    EXPECT_EQ(o.first.n_rows, 2 * kN);
    EXPECT_EQ(o.first.n_cols, kN);
    EXPECT_EQ(o.step.n_rows, 2 * kN);
    EXPECT_EQ(o.step.n_cols, 2 * kN);
    EXPECT_EQ(o.last.n_rows, kN);
    EXPECT_EQ(o.last.n_cols, 2 * kN);
    for (int k : {1, 2, 3, 5}) {
      const std::string what = "K " + std::to_string(k) + " alpha " + std::to_string(alpha);
      const Dense p = appnp_map(a, k, alpha);
      // out = P x0; d x0 = Pᵀ g (the map is linear: its transpose is its backward).
      expect_near(chain(o, k, x, false), matmul(p, x), 1e-6, what + " forward");
      expect_near(chain(o, k, g, true), matmul(transpose(p), g), 1e-6, what + " backward");
    }
  }
}

// PyG's gcn_norm(add_self_loops=False): deg(i) = the edges into i as listed
// (a self loop once, a duplicate twice), Ã[i][j] = Σ over the edges j -> i
// of deg(i)^-1/2 deg(j)^-1/2, and 0 where deg(j) = 0.
TEST(ArmaNorm, GcnNormWithoutSelfLoopsByHand) {
  // 0 <-> 1 (1 -> 0 twice), 1 -> 1 (a self loop), 2 -> 1 (2 has no in-edges), 3 isolated.
  const std::vector<int32_t> src = {0, 1, 1, 1, 2};
  const std::vector<int32_t> dst = {1, 0, 0, 1, 1};
  const CsrMatrix a = arma_norm(4, src, dst);
  a.validate("arma_norm");
  const double d0 = 2.0, d1 = 3.0;  // in-degrees; deg(2) = deg(3) = 0
  Dense want = zeros(4, 4);
  want[1][0] = 1.0 / std::sqrt(d1 * d0);
  want[0][1] = 2.0 / std::sqrt(d0 * d1);  // the duplicate, merged
  want[1][1] = 1.0 / d1;                   // the self loop, as an edge
  want[1][2] = 0.0;                        // deg(2) = 0: PyG's masked inf
  expect_near(dense(a), want, 1e-7, "arma_norm");
  EXPECT_EQ(a.indptr, (std::vector<int32_t>{0, 1, 4, 4, 4}));  // row 1 keeps 2's zero entry, as PyG's edge list does
  // [Ã | I] and [Ãᵀ ; I], the layer's forward and backward operators.
  const CsrMatrix fwd = block_operator(a, {{{1, 0}, {0, 1}}});
  const CsrMatrix bwd = block_operator(a.transposed(), {{{1, 0}}, {{0, 1}}});
  Dense f = zeros(4, 8), b = zeros(8, 4);
  for (int i = 0; i < 4; ++i) {
    for (int j = 0; j < 4; ++j) {
      f[i][j] = b[j][i] = want[i][j];
    }
    f[i][4 + i] = b[4 + i][i] = 1.0;
  }
  expect_near(dense(fwd), f, 1e-7, "[A | I]");
  expect_near(dense(bwd), b, 1e-7, "[At ; I]");
  EXPECT_THROW(arma_norm(2, {0, 2}, {1, 0}), DataError);
  // Weighted (0 -> 1: 2; 1 -> 0: 3 and 0.5; 1 -> 1: 4; 2 -> 1: 1): weighted in-degrees 3.5 and 7.
  const CsrMatrix w = arma_norm(4, src, dst, {2, 3, 0.5f, 4, 1});
  Dense wwant = zeros(4, 4);
  const double w0 = 3.0 + 0.5, w1 = 2.0 + 4.0 + 1.0;
  wwant[1][0] = 2.0 / std::sqrt(w1 * w0);
  wwant[0][1] = 3.5 / std::sqrt(w0 * w1);
  wwant[1][1] = 4.0 / w1;
  expect_near(dense(w), wwant, 1e-7, "weighted arma_norm");
  EXPECT_EQ(dense(arma_norm(4, src, dst, {1, 1, 1, 1, 1})), dense(a));  // all ones: the same bits
  EXPECT_THROW(arma_norm(4, src, dst, {1, 1}), DataError);
}

TEST(AppnpArmaFiles, ShapesFromFilesAndBadFiles) {
  const ModelType& appnp = find_model_type("appnp");
  const ModelType& arma = find_model_type("arma");
  const TensorShapes lin = {{"lin1.weight", {12, 5}}, {"lin1.bias", {12}}, {"lin2.weight", {8, 12}},
                            {"lin2.bias", {8}},       {"lin3.weight", {3, 8}}, {"lin3.bias", {3}}};
  EXPECT_TRUE(appnp.recognizes(lin));
  EXPECT_FALSE(arma.recognizes(lin));
  const ModelShape a = appnp.shape_from_file(lin, "a.st");
  EXPECT_EQ(a.describe(), "appnp 5-12-8-3");
  EXPECT_EQ(a.hp_int("K"), 10);  // not in the file: the default
  TensorShapes bad = lin;
  bad["lin2.weight"] = {8, 12, 1};
  EXPECT_THROW(appnp.shape_from_file(bad, "a.st"), DataError);

  const TensorShapes conv = {{"conv1.weight", {1, 3, 4, 4}},     {"conv1.init_weight", {3, 5, 4}},
                             {"conv1.root_weight", {1, 3, 5, 4}}, {"conv1.bias", {1, 3, 1, 4}},
                             {"conv2.weight", {1, 3, 2, 2}},     {"conv2.init_weight", {3, 4, 2}},
                             {"conv2.root_weight", {1, 3, 4, 2}}, {"conv2.bias", {1, 3, 1, 2}}};
  EXPECT_TRUE(arma.recognizes(conv));
  EXPECT_FALSE(appnp.recognizes(conv));
  const ModelShape r = arma.shape_from_file(conv, "r.st");
  EXPECT_EQ(r.describe(), "arma 5-4-2 stacks=3");
  const ParamLayout layout(r);  // the declared tensors are the file's
  for (const ParamTensor& t : layout.tensors) EXPECT_EQ(t.file_shape, conv.at(t.name)) << t.name;
  bad = conv;
  bad["conv1.init_weight"] = {17, 5, 4};
  EXPECT_THROW(arma.shape_from_file(bad, "r.st"), DataError);
  bad["conv1.init_weight"] = {5, 4};
  EXPECT_THROW(arma.shape_from_file(bad, "r.st"), DataError);
}

}  // namespace
}  // namespace gcn
