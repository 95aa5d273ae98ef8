// The ops of the attention and ELU layers (gcn::Backend's act_dropout_*,
// sparse_dropout, spmm_values, gat_*) and the edges they run on
// (attention_edge_lists, DeviceGraph::attention_edges):
// - the CPU against plain double-precision loops written here, on small
//   random graphs with isolated nodes, duplicate and one-way edges and self
//   loops, 1 and 3 heads, batches of 1 and 3 models;
// - each model of a batch against the same op on that model alone, bit for
//   bit;
// - gat_backward against finite differences of the reference forward, and
//   the dropped attention coefficients against the random numbers directly;
// - the dropout sites: site 0 is the ReLU layer's old mask, other sites
//   their own; X and Xᵀ drop the same elements;
// - the CUDA backend against the CPU for every op, and reruns bit for bit
//   (skipped with the reason without a usable GPU, as test_cuda_ops; the
//   cudasim build runs them on the CPU).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "cpu_kernels.hpp"
#include "gcn/backend/backend.hpp"
#include "gcn/backend/buffer.hpp"
#include "gcn/data/csr.hpp"
#include "gcn/data/dataset.hpp"
#include "gcn/nn/device_graph.hpp"
#include "gcn/backend/devices.hpp"
#include "gcn/error.hpp"
#include "gcn/data/graph.hpp"
#include "gcn/rng.hpp"
#include "gcn/backend/step_state.hpp"
#include "gcn/data/synthetic.hpp"
#include "test_compare.hpp"
#include "test_random.hpp"
#include "test_util.hpp"

namespace gcn {
namespace {

using test::all_close;
using test::all_equal;
using test::random_csr;
using test::random_floats;
using test::same_bits;
using test::Tolerance;

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
// The NaN x86 makes of an invalid operation (inf - inf, 0 · inf): negative.
const float kInvalidNaN = [] {
  const uint32_t bits = 0xFFC00000u;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}();

template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

std::vector<double> to_double(const std::vector<float>& v) { return std::vector<double>(v.begin(), v.end()); }

// Model k's (rows, cols) column block of a (rows, batch · cols) matrix.
std::vector<float> block_of(const std::vector<float>& m, int64_t rows, int64_t cols, int k, int batch) {
  std::vector<float> out(static_cast<std::size_t>(rows * cols));
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) out[r * cols + c] = m[r * cols * batch + k * cols + c];
  }
  return out;
}

// ---- graphs ------------------------------------------------------------------

struct HostGraph {
  int32_t n_nodes = 0;
  std::vector<int32_t> src, dst;
};

// n_edges random directed edges among the first n_nodes - n_isolated nodes
// (the rest have none), then some of them again (duplicates), a few self
// loops, and a hub: node 1 receives an edge from every connected node.
HostGraph random_graph(int32_t n_nodes, int32_t n_isolated, int32_t n_edges, uint32_t seed) {
  std::mt19937 rng(seed);
  const int32_t linked = n_nodes - n_isolated;
  HostGraph g;
  g.n_nodes = n_nodes;
  auto add = [&](int32_t s, int32_t d) {
    g.src.push_back(s);
    g.dst.push_back(d);
  };
  for (int32_t e = 0; e < n_edges; ++e) add(static_cast<int32_t>(rng() % linked), static_cast<int32_t>(rng() % linked));
  for (int32_t e = 0; e < n_edges / 8; ++e) {
    const std::size_t i = rng() % static_cast<std::size_t>(n_edges);
    add(g.src[i], g.dst[i]);
  }
  for (int32_t i = 0; i < linked; i += 5) add(i, i);
  for (int32_t j = 2; j < linked; j += 2) add(j, 1);
  return g;
}

AttentionEdgeLists lists_of(const HostGraph& g) { return attention_edge_lists(g.n_nodes, g.src, g.dst); }

// Edge lists in a backend's memory.
class DeviceEdges {
 public:
  DeviceEdges(Backend& be, const AttentionEdgeLists& h)
      : in_ptr_(be, h.in_ptr), in_src_(be, h.in_src), edge_dst_(be, h.edge_dst), out_ptr_(be, h.out_ptr),
        out_edge_(be, h.out_edge) {
    lists_ = {h.n_nodes,        h.n_edges(),       in_ptr_.data(),  in_src_.data(),
              edge_dst_.data(), out_ptr_.data(),   out_edge_.data()};
  }
  const EdgeLists& lists() const { return lists_; }

 private:
  Buffer<int32_t> in_ptr_, in_src_, edge_dst_, out_ptr_, out_edge_;
  EdgeLists lists_;
};

// Step states of a batch in a backend's memory.
class Steps {
 public:
  Steps(Backend& be, const std::vector<StepState>& s) : buf_(be, static_cast<int64_t>(s.size() * sizeof(StepState))) {
    if (!s.empty()) be.upload(buf_.data(), s.data(), s.size() * sizeof(StepState));
  }
  // null for no states
  const StepState* get() const { return reinterpret_cast<const StepState*>(buf_.data()); }

 private:
  Buffer<uint8_t> buf_;
};

StepState state(int64_t epoch, uint64_t seed, float dropout = 0.0f) {
  StepState s{};
  s.epoch = epoch;
  s.dropout_seed = seed;
  s.dropout = dropout;
  return s;
}

// Distinct seeds, epochs and rates for a batch.
std::vector<StepState> batch_states(int batch) {
  std::vector<StepState> s;
  for (int k = 0; k < batch; ++k) s.push_back(state(3 + 5 * k, 1000 + 17 * k, 0.2f + 0.15f * static_cast<float>(k)));
  return s;
}

// ---- the attention layer: inputs, a run on a backend, the reference ------------

struct GatInputs {
  int heads = 1, batch = 1;
  int64_t ch = 1;
  int64_t bh() const { return int64_t{batch} * heads; }
  int64_t ld() const { return bh() * ch; }
  std::vector<float> xw;                        // (N, ld)
  std::vector<float> att_src, att_dst, bias;    // (ld)
  std::vector<float> dout;                      // (N, ld)
};

GatInputs gat_inputs(int32_t n_nodes, int heads, int batch, int64_t ch, uint32_t seed) {
  GatInputs in;
  in.heads = heads;
  in.batch = batch;
  in.ch = ch;
  const auto n = static_cast<std::size_t>(n_nodes * in.ld());
  in.xw = random_floats(n, seed, -1.0f, 1.0f);
  in.att_src = random_floats(static_cast<std::size_t>(in.ld()), seed + 1, -1.0f, 1.0f);
  in.att_dst = random_floats(static_cast<std::size_t>(in.ld()), seed + 2, -1.0f, 1.0f);
  in.bias = random_floats(static_cast<std::size_t>(in.ld()), seed + 3, -0.5f, 0.5f);
  in.dout = random_floats(n, seed + 4, -1.0f, 1.0f);
  return in;
}

// Model k's inputs alone (a batch of 1).
GatInputs model_inputs(const GatInputs& in, int32_t n_nodes, int k) {
  GatInputs one = in;
  one.batch = 1;
  const int64_t w = in.heads * in.ch;
  one.xw = block_of(in.xw, n_nodes, w, k, in.batch);
  one.dout = block_of(in.dout, n_nodes, w, k, in.batch);
  one.att_src = block_of(in.att_src, 1, w, k, in.batch);
  one.att_dst = block_of(in.att_dst, 1, w, k, in.batch);
  one.bias = block_of(in.bias, 1, w, k, in.batch);
  return one;
}

struct GatOutputs {
  std::vector<float> s_src, s_dst, alpha, out, dxw, d_att_src, d_att_dst, d_alpha, ds_src, ds_dst;
  std::vector<std::vector<float>> all() const {
    return {s_src, s_dst, alpha, out, dxw, d_att_src, d_att_dst, d_alpha, ds_src, ds_dst};
  }
};
const char* const kGatOutputNames[] = {"s_src", "s_dst", "alpha", "out", "dxw",
                                       "d_att_src", "d_att_dst", "d_alpha", "ds_src", "ds_dst"};

// gat_attention, gat_aggregate and gat_backward on one backend; every output
// starts as NaN, so one an op leaves unwritten shows.
GatOutputs run_gat(Backend& be, const AttentionEdgeLists& h, const GatInputs& in, float p,
                   const std::vector<StepState>& states, uint32_t site, bool with_bias = true) {
  const DeviceEdges edges(be, h);
  const EdgeLists& g = edges.lists();
  const int64_t n = h.n_nodes, e = h.n_edges(), bh = in.bh(), ld = in.ld();
  auto nan = [&](int64_t count) { return Buffer<float>(be, std::vector<float>(static_cast<std::size_t>(count), kNaN)); };
  Buffer<float> xw(be, in.xw), as(be, in.att_src), ad(be, in.att_dst), bias(be, in.bias), dout(be, in.dout);
  Buffer<float> s_src = nan(n * bh), s_dst = nan(n * bh), alpha = nan(e * bh), out = nan(n * ld), dxw = nan(n * ld),
                d_as = nan(ld), d_ad = nan(ld), d_alpha = nan(e * bh), ds_src = nan(n * bh), ds_dst = nan(n * bh);
  const Steps steps(be, states);
  const StepState* st = states.empty() ? nullptr : steps.get();
  be.gat_attention(g, {xw.data(), n, ld}, as.data(), ad.data(), in.heads, {s_src.data(), n, bh},
                   {s_dst.data(), n, bh}, {alpha.data(), e, bh}, in.batch);
  be.gat_aggregate(g, {alpha.data(), e, bh}, {xw.data(), n, ld}, in.heads, with_bias ? bias.data() : nullptr,
                   {out.data(), n, ld}, p, st, site, in.batch);
  be.gat_backward(g, {dout.data(), n, ld}, {xw.data(), n, ld}, as.data(), ad.data(), {s_src.data(), n, bh},
                  {s_dst.data(), n, bh}, {alpha.data(), e, bh}, in.heads, p, st, site, {dxw.data(), n, ld},
                  d_as.data(), d_ad.data(), {d_alpha.data(), e, bh}, {ds_src.data(), n, bh}, {ds_dst.data(), n, bh},
                  in.batch);
  return {s_src.to_host(), s_dst.to_host(), alpha.to_host(), out.to_host(),    dxw.to_host(),
          d_as.to_host(),  d_ad.to_host(),  d_alpha.to_host(), ds_src.to_host(), ds_dst.to_host()};
}

// The factor of each attention coefficient (E, bh): 1, or model k's mask of
// element e · heads + h times 1 / (1 - p), straight from the random numbers.
std::vector<double> alpha_factors(const AttentionEdgeLists& g, int heads, int batch, float p,
                                  const std::vector<StepState>& states, uint32_t site) {
  const int64_t bh = int64_t{batch} * heads;
  std::vector<double> f(static_cast<std::size_t>(g.n_edges() * bh), 1.0);
  if (p == 0.0f) return f;
  const double scale = 1.0f / (1.0f - p);
  for (int k = 0; k < batch; ++k) {
    const uint64_t seed = site_seed(states[k].dropout_seed, site);
    for (int h = 0; h < heads; ++h) {
      for (int64_t e = 0; e < g.n_edges(); ++e) {
        const bool keep = dropout_keep(seed, static_cast<uint64_t>(states[k].epoch + 1),
                                       static_cast<uint64_t>(e * heads + h), p);
        f[e * bh + k * heads + h] = keep ? scale : 0.0;
      }
    }
  }
  return f;
}

struct RefForward {
  std::vector<double> s_src, s_dst, alpha, out;
};

// GATConv in double, straight from the definitions.
RefForward ref_forward(const AttentionEdgeLists& g, int heads, int batch, int64_t ch, const std::vector<double>& xw,
                       const std::vector<double>& att_src, const std::vector<double>& att_dst,
                       const std::vector<double>* bias, const std::vector<double>& factors) {
  const int64_t n = g.n_nodes, bh = int64_t{batch} * heads, ld = bh * ch;
  RefForward r;
  r.s_src.assign(static_cast<std::size_t>(n * bh), 0.0);
  r.s_dst.assign(static_cast<std::size_t>(n * bh), 0.0);
  r.alpha.assign(static_cast<std::size_t>(g.n_edges() * bh), 0.0);
  r.out.assign(static_cast<std::size_t>(n * ld), 0.0);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t kh = 0; kh < bh; ++kh) {
      for (int64_t c = 0; c < ch; ++c) {
        r.s_src[i * bh + kh] += att_src[kh * ch + c] * xw[i * ld + kh * ch + c];
        r.s_dst[i * bh + kh] += att_dst[kh * ch + c] * xw[i * ld + kh * ch + c];
      }
    }
  }
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t kh = 0; kh < bh; ++kh) {
      auto score = [&](int64_t e) {
        const double u = r.s_src[g.in_src[e] * bh + kh] + r.s_dst[i * bh + kh];
        return u > 0 ? u : 0.2 * u;
      };
      double mx = -INFINITY, sum = 0.0;
      for (int64_t e = g.in_ptr[i]; e < g.in_ptr[i + 1]; ++e) mx = std::max(mx, score(e));
      for (int64_t e = g.in_ptr[i]; e < g.in_ptr[i + 1]; ++e) sum += std::exp(score(e) - mx);
      for (int64_t e = g.in_ptr[i]; e < g.in_ptr[i + 1]; ++e) r.alpha[e * bh + kh] = std::exp(score(e) - mx) / sum;
      for (int64_t e = g.in_ptr[i]; e < g.in_ptr[i + 1]; ++e) {
        for (int64_t c = 0; c < ch; ++c) {
          r.out[i * ld + kh * ch + c] +=
              r.alpha[e * bh + kh] * factors[e * bh + kh] * xw[g.in_src[e] * ld + kh * ch + c];
        }
      }
    }
    if (bias != nullptr) {
      for (int64_t q = 0; q < ld; ++q) r.out[i * ld + q] += (*bias)[q];
    }
  }
  return r;
}

// Σ out ⊙ dout of the reference forward.
double ref_loss(const AttentionEdgeLists& g, const GatInputs& in, const std::vector<double>& xw,
                const std::vector<double>& att_src, const std::vector<double>& att_dst,
                const std::vector<double>& factors) {
  const std::vector<double> bias = to_double(in.bias);
  const RefForward r = ref_forward(g, in.heads, in.batch, in.ch, xw, att_src, att_dst, &bias, factors);
  double loss = 0.0;
  for (std::size_t q = 0; q < r.out.size(); ++q) loss += r.out[q] * in.dout[q];
  return loss;
}

// Central differences of ref_loss with respect to each element of *param.
std::vector<double> finite_differences(const std::function<double()>& loss, std::vector<double>* param) {
  constexpr double kStep = 1e-6;
  std::vector<double> grad(param->size());
  for (std::size_t q = 0; q < param->size(); ++q) {
    const double keep = (*param)[q];
    (*param)[q] = keep + kStep;
    const double up = loss();
    (*param)[q] = keep - kStep;
    const double down = loss();
    (*param)[q] = keep;
    grad[q] = (up - down) / (2 * kStep);
  }
  return grad;
}

// ---- the activation layers' reference --------------------------------------

// y and dx of ELU + dropout in double: model k's mask straight from the
// random numbers at `site`, element r · cols + j of its own block.
struct RefElu {
  std::vector<double> y, dx, col_sums;
};
RefElu ref_elu(const std::vector<float>& x, const std::vector<float>& dy, int64_t rows, int64_t width, int batch,
               const std::vector<float>& rates, const std::vector<StepState>& states, uint32_t site) {
  const int64_t cols = width / batch;
  RefElu r;
  r.y.assign(x.size(), 0.0);
  r.dx.assign(x.size(), 0.0);
  r.col_sums.assign(static_cast<std::size_t>(width), 0.0);
  for (int k = 0; k < batch; ++k) {
    const float p = rates[k];
    const double scale = 1.0f / (1.0f - p);
    for (int64_t row = 0; row < rows; ++row) {
      for (int64_t j = 0; j < cols; ++j) {
        const std::size_t at = static_cast<std::size_t>(row * width + k * cols + j);
        const bool keep = p == 0.0f || dropout_keep(site_seed(states[k].dropout_seed, site),
                                                    static_cast<uint64_t>(states[k].epoch + 1),
                                                    static_cast<uint64_t>(row * cols + j), p);
        const double v = x[at];
        r.y[at] = keep ? (v > 0 ? v : std::expm1(v)) * scale : 0.0;
        r.dx[at] = keep ? dy[at] * (v > 0 ? 1.0 : std::exp(v)) * scale : 0.0;
        r.col_sums[k * cols + j] += r.dx[at];
      }
    }
  }
  return r;
}

std::vector<float> to_float(const std::vector<double>& v) { return std::vector<float>(v.begin(), v.end()); }

// A CSR matrix whose rows hold exactly the given numbers of entries.
CsrMatrix csr_with_rows(const std::vector<int32_t>& lengths, int32_t cols, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> value(-1.0f, 1.0f);
  CsrMatrix m;
  m.n_rows = static_cast<int32_t>(lengths.size());
  m.n_cols = cols;
  m.indptr.push_back(0);
  std::vector<int32_t> all(static_cast<std::size_t>(cols));
  for (int32_t j = 0; j < cols; ++j) all[j] = j;
  for (const int32_t len : lengths) {
    std::shuffle(all.begin(), all.end(), rng);
    std::vector<int32_t> idx(all.begin(), all.begin() + len);
    std::sort(idx.begin(), idx.end());
    for (const int32_t j : idx) {
      m.indices.push_back(j);
      m.values.push_back(value(rng));
    }
    m.indptr.push_back(static_cast<int32_t>(m.indices.size()));
  }
  return m;
}

// sparse_dropout of a on one backend: the batch's values.
std::vector<float> run_sparse_dropout(Backend& be, const CsrMatrix& a, bool transposed, float p,
                                      const std::vector<StepState>& states, uint32_t site) {
  const auto m = be.upload_csr(a);
  const Steps steps(be, states);
  Buffer<float> values(be, std::vector<float>(static_cast<std::size_t>(a.nnz()) * states.size(), kNaN));
  be.sparse_dropout(*m, transposed, p, steps.get(), static_cast<int>(states.size()), site, values.data());
  return values.to_host();
}

// spmm_values of a with the batch's values on one backend: c.
std::vector<float> run_spmm_values(Backend& be, const CsrMatrix& a, const std::vector<float>& values,
                                   const std::vector<float>& b, int64_t n, int batch) {
  const auto m = be.upload_csr(a);
  Buffer<float> v(be, values), bb(be, b),
      c(be, std::vector<float>(static_cast<std::size_t>(a.n_rows * n * batch), kNaN));
  be.spmm_values(*m, v.data(), {bb.data(), a.n_cols, n * batch}, {c.data(), a.n_rows, n * batch}, batch);
  return c.to_host();
}

// act_dropout forward and backward (with column sums) on one backend: y, dx,
// the sums.
std::vector<std::vector<float>> run_act_dropout(Backend& be, Activation act, const std::vector<float>& x_host,
                                                const std::vector<float>& dy_host, int64_t rows, int64_t width,
                                                int batch, float p, const std::vector<StepState>& states,
                                                bool rates_from_steps, uint32_t site) {
  const Steps steps(be, states);
  const StepState* st = states.empty() ? nullptr : steps.get();
  Buffer<float> x(be, x_host), dy(be, dy_host), y(be, std::vector<float>(x_host.size(), kNaN)),
      dx(be, std::vector<float>(x_host.size(), kNaN)), dx_plain(be, std::vector<float>(x_host.size(), kNaN)),
      sums(be, std::vector<float>(static_cast<std::size_t>(width), kNaN));
  be.act_dropout_forward(act, {x.data(), rows, width}, {y.data(), rows, width}, p, st, batch, rates_from_steps, site);
  be.act_dropout_backward(act, {dy.data(), rows, width}, {y.data(), rows, width}, {dx.data(), rows, width}, p, st,
                          batch, rates_from_steps, site, sums.data());
  be.act_dropout_backward(act, {dy.data(), rows, width}, {y.data(), rows, width}, {dx_plain.data(), rows, width}, p,
                          st, batch, rates_from_steps, site);
  return {y.to_host(), dx.to_host(), sums.to_host(), dx_plain.to_host()};
}

class GatOps : public ::testing::Test {
 protected:
  std::unique_ptr<Backend> be = make_cpu_backend(2);
};

// ---- the edges ----------------------------------------------------------------

TEST(AttentionEdgeLists, HandGraph) {
  // 0->1, 2->1, 0->1 again, a self loop 1->1, 3->0, 1->2; node 3 receives nothing.
  const AttentionEdgeLists g = attention_edge_lists(4, {0, 2, 0, 1, 3, 1}, {1, 1, 1, 1, 0, 2});
  EXPECT_EQ(g.n_nodes, 4);
  EXPECT_EQ(g.n_edges(), 9);
  EXPECT_EQ(g.in_ptr, (std::vector<int32_t>{0, 2, 6, 8, 9}));
  EXPECT_EQ(g.in_src, (std::vector<int32_t>{0, 3, 0, 0, 1, 2, 1, 2, 3}));
  EXPECT_EQ(g.edge_dst, (std::vector<int32_t>{0, 0, 1, 1, 1, 1, 2, 2, 3}));
  EXPECT_EQ(g.out_ptr, (std::vector<int32_t>{0, 3, 5, 7, 9}));
  EXPECT_EQ(g.out_edge, (std::vector<int32_t>{0, 2, 3, 4, 6, 5, 7, 1, 8}));
}

TEST(AttentionEdgeLists, RejectsBadEdges) {
  EXPECT_THROW(attention_edge_lists(3, {0, 3}, {1, 1}), DataError);
  EXPECT_THROW(attention_edge_lists(3, {0, 1}, {1, -1}), DataError);
  EXPECT_THROW(attention_edge_lists(3, {0, 1}, {1}), DataError);
  const AttentionEdgeLists empty = attention_edge_lists(0, {}, {});
  EXPECT_EQ(empty.n_edges(), 0);
  EXPECT_EQ(empty.in_ptr, std::vector<int32_t>{0});
  EXPECT_EQ(empty.out_ptr, std::vector<int32_t>{0});
}

// Random graphs: the edges into each node are the given ones that are not
// self loops (duplicates included) plus one self loop, sorted by source; the
// out-lists hold every edge once, by source, ascending.
TEST(AttentionEdgeLists, RandomGraphsArePygGatEdges) {
  for (uint32_t seed : {1u, 2u, 3u}) {
    const HostGraph hg = random_graph(40, 6, 120, seed);
    const AttentionEdgeLists g = lists_of(hg);
    ASSERT_EQ(g.in_ptr.size(), 41u);
    std::vector<std::vector<int32_t>> expected(40);
    for (int32_t i = 0; i < 40; ++i) expected[i].push_back(i);
    for (std::size_t e = 0; e < hg.src.size(); ++e) {
      if (hg.src[e] != hg.dst[e]) expected[hg.dst[e]].push_back(hg.src[e]);
    }
    int64_t total = 0;
    for (int32_t i = 0; i < 40; ++i) {
      std::sort(expected[i].begin(), expected[i].end());
      const std::vector<int32_t> got(g.in_src.begin() + g.in_ptr[i], g.in_src.begin() + g.in_ptr[i + 1]);
      EXPECT_EQ(got, expected[i]) << "node " << i << " seed " << seed;
      for (int32_t e = g.in_ptr[i]; e < g.in_ptr[i + 1]; ++e) EXPECT_EQ(g.edge_dst[e], i);
      total += static_cast<int64_t>(expected[i].size());
    }
    EXPECT_EQ(g.n_edges(), total);
    std::vector<int> seen(static_cast<std::size_t>(g.n_edges()), 0);
    for (int32_t j = 0; j < 40; ++j) {
      for (int32_t q = g.out_ptr[j]; q < g.out_ptr[j + 1]; ++q) {
        const int32_t e = g.out_edge[q];
        EXPECT_EQ(g.in_src[e], j);
        if (q > g.out_ptr[j]) EXPECT_LT(g.out_edge[q - 1], e);
        ++seen[e];
      }
    }
    EXPECT_TRUE(std::all_of(seen.begin(), seen.end(), [](int c) { return c == 1; }));
  }
}

// Built on first use, uploaded once (five arrays), the host lists.
TEST(DeviceGraphAttention, BuiltOnceAndCounted) {
  SyntheticSpec spec;
  spec.nodes = 60;
  spec.degree = 4;
  spec.features = 12;
  spec.nnz_per_row = 3;
  spec.classes = 3;
  spec.seed = 5;
  spec.train_per_class = 2;
  spec.val = 10;
  spec.test = 10;
  const Dataset data = make_synthetic(spec);
  auto be = make_cpu_backend(1);
  DeviceGraph dg(*be, data);
  const int before = dg.uploads();
  const EdgeLists& first = dg.attention_edges();
  EXPECT_EQ(dg.uploads(), before + 5);
  const EdgeLists& again = dg.attention_edges();
  EXPECT_EQ(&first, &again);
  EXPECT_EQ(dg.uploads(), before + 5);
  const AttentionEdgeLists host = attention_edge_lists(data.n_nodes, data.edge_src, data.edge_dst);
  EXPECT_EQ(first.n_nodes, data.n_nodes);
  EXPECT_EQ(first.n_edges, data.n_edges() + data.n_nodes);  // synthetic graphs have no self loops
  auto download = [&](const int32_t* p, std::size_t n) {
    std::vector<int32_t> v(n);
    be->download(v.data(), p, n * sizeof(int32_t));
    return v;
  };
  EXPECT_EQ(download(first.in_ptr, host.in_ptr.size()), host.in_ptr);
  EXPECT_EQ(download(first.in_src, host.in_src.size()), host.in_src);
  EXPECT_EQ(download(first.edge_dst, host.edge_dst.size()), host.edge_dst);
  EXPECT_EQ(download(first.out_ptr, host.out_ptr.size()), host.out_ptr);
  EXPECT_EQ(download(first.out_edge, host.out_edge.size()), host.out_edge);
}

// ---- graph attention on the CPU ---------------------------------------------------

TEST_F(GatOps, AttentionAndAggregateMatchTheReference) {
  const HostGraph hg = random_graph(37, 5, 90, 11);
  const AttentionEdgeLists g = lists_of(hg);
  for (const int heads : {1, 3}) {
    for (const int batch : {1, 3}) {
      for (const bool with_bias : {true, false}) {
        const GatInputs in = gat_inputs(hg.n_nodes, heads, batch, 4, 20 + heads * 7 + batch);
        const GatOutputs got = run_gat(*be, g, in, 0.0f, {}, 0, with_bias);
        const std::vector<double> bias = to_double(in.bias);
        const RefForward ref = ref_forward(g, heads, batch, in.ch, to_double(in.xw), to_double(in.att_src),
                                           to_double(in.att_dst), with_bias ? &bias : nullptr,
                                           alpha_factors(g, heads, batch, 0.0f, {}, 0));
        const std::string what = "heads " + std::to_string(heads) + " batch " + std::to_string(batch) +
                                 (with_bias ? " bias" : " no bias");
        EXPECT_TRUE(all_close(got.s_src, to_float(ref.s_src), {1e-6, 1e-5}, in.bh())) << what;
        EXPECT_TRUE(all_close(got.s_dst, to_float(ref.s_dst), {1e-6, 1e-5}, in.bh())) << what;
        EXPECT_TRUE(all_close(got.alpha, to_float(ref.alpha), {1e-6, 1e-5}, in.bh())) << what;
        EXPECT_TRUE(all_close(got.out, to_float(ref.out), {1e-6, 1e-5}, in.ld())) << what;
        // Each node's coefficients of a head sum to 1 (an isolated node: its self loop alone, 1).
        for (int32_t i = 0; i < g.n_nodes; ++i) {
          for (int64_t kh = 0; kh < in.bh(); ++kh) {
            double sum = 0;
            for (int32_t e = g.in_ptr[i]; e < g.in_ptr[i + 1]; ++e) sum += got.alpha[e * in.bh() + kh];
            EXPECT_NEAR(sum, 1.0, 1e-6) << "node " << i << " " << what;
          }
        }
      }
    }
  }
}

// The coefficients dropped are those the random numbers drop: element
// e · heads + h of model k's stream at the site, scaled by 1 / (1 - p).
TEST_F(GatOps, AggregateDropsTheCoefficientsTheRngDrops) {
  const HostGraph hg = random_graph(30, 3, 80, 12);
  const AttentionEdgeLists g = lists_of(hg);
  for (const int batch : {1, 3}) {
    const int heads = 3;
    const float p = 0.4f;
    const std::vector<StepState> states = batch_states(batch);
    const GatInputs in = gat_inputs(hg.n_nodes, heads, batch, 3, 31);
    const GatOutputs got = run_gat(*be, g, in, p, states, 7);
    const std::vector<double> factors = alpha_factors(g, heads, batch, p, states, 7);
    const int64_t dropped = std::count(factors.begin(), factors.end(), 0.0);
    EXPECT_GT(dropped, static_cast<int64_t>(factors.size()) / 4);
    EXPECT_LT(dropped, static_cast<int64_t>(factors.size()) * 3 / 5);
    const std::vector<double> bias = to_double(in.bias);
    const RefForward ref = ref_forward(g, heads, batch, in.ch, to_double(in.xw), to_double(in.att_src),
                                       to_double(in.att_dst), &bias, factors);
    EXPECT_TRUE(all_close(got.out, to_float(ref.out), {1e-6, 1e-5}, in.ld())) << "batch " << batch;
    // The attention coefficients themselves are not dropped.
    EXPECT_TRUE(all_close(got.alpha, to_float(ref.alpha), {1e-6, 1e-5}, in.bh())) << "batch " << batch;
    // Another site draws another mask.
    const GatOutputs other = run_gat(*be, g, in, p, states, 8);
    EXPECT_FALSE(all_close(other.out, got.out, {1e-3, 1e-3})) << "batch " << batch;
  }
}

// dL/dxw, dL/datt_src, dL/datt_dst of L = Σ out ⊙ dout against central
// differences of the double reference (the dropout mask held fixed).
TEST_F(GatOps, BackwardMatchesFiniteDifferences) {
  const HostGraph hg = random_graph(16, 2, 40, 13);
  const AttentionEdgeLists g = lists_of(hg);
  for (const int heads : {1, 3}) {
    for (const int batch : {1, 2}) {
      for (const float p : {0.0f, 0.35f}) {
        const std::vector<StepState> states = batch_states(batch);
        const uint32_t site = 2;
        const GatInputs in = gat_inputs(hg.n_nodes, heads, batch, 3, 40 + heads + 10 * batch);
        const GatOutputs got = run_gat(*be, g, in, p, states, site);
        const std::vector<double> factors = alpha_factors(g, heads, batch, p, states, site);
        std::vector<double> xw = to_double(in.xw), as = to_double(in.att_src), ad = to_double(in.att_dst);
        const auto loss = [&] { return ref_loss(g, in, xw, as, ad, factors); };
        const std::string what = "heads " + std::to_string(heads) + " batch " + std::to_string(batch) + " p " +
                                 std::to_string(p);
        EXPECT_TRUE(all_close(got.dxw, to_float(finite_differences(loss, &xw)), {2e-5, 1e-4}, in.ld())) << what;
        EXPECT_TRUE(all_close(got.d_att_src, to_float(finite_differences(loss, &as)), {2e-5, 1e-4})) << what;
        EXPECT_TRUE(all_close(got.d_att_dst, to_float(finite_differences(loss, &ad)), {2e-5, 1e-4})) << what;
        // Real gradients, not zeros.
        EXPECT_GT(std::count_if(got.d_att_src.begin(), got.d_att_src.end(), [](float v) { return v != 0.0f; }), 0);
      }
    }
  }
}

// Every output of a batch, model by model, against the same ops on that model
// alone: the same bits.
TEST_F(GatOps, BatchBlocksAreEachModelAloneBitForBit) {
  const HostGraph hg = random_graph(33, 4, 100, 14);
  const AttentionEdgeLists g = lists_of(hg);
  const int64_t n = g.n_nodes, e = g.n_edges();
  for (const int heads : {1, 3}) {
    const int batch = 3;
    const std::vector<StepState> states = batch_states(batch);
    const float p = 0.3f;
    const GatInputs in = gat_inputs(hg.n_nodes, heads, batch, 4, 50 + heads);
    const GatOutputs all = run_gat(*be, g, in, p, states, 4);
    for (int k = 0; k < batch; ++k) {
      const GatOutputs one = run_gat(*be, g, model_inputs(in, hg.n_nodes, k), p, {states[k]}, 4);
      const int64_t w = heads * in.ch;
      const std::string what = "heads " + std::to_string(heads) + " model " + std::to_string(k);
      EXPECT_TRUE(same_bits(block_of(all.s_src, n, heads, k, batch), one.s_src)) << what;
      EXPECT_TRUE(same_bits(block_of(all.s_dst, n, heads, k, batch), one.s_dst)) << what;
      EXPECT_TRUE(same_bits(block_of(all.alpha, e, heads, k, batch), one.alpha)) << what;
      EXPECT_TRUE(same_bits(block_of(all.out, n, w, k, batch), one.out)) << what;
      EXPECT_TRUE(same_bits(block_of(all.dxw, n, w, k, batch), one.dxw)) << what;
      EXPECT_TRUE(same_bits(block_of(all.d_att_src, 1, w, k, batch), one.d_att_src)) << what;
      EXPECT_TRUE(same_bits(block_of(all.d_att_dst, 1, w, k, batch), one.d_att_dst)) << what;
      EXPECT_TRUE(same_bits(block_of(all.d_alpha, e, heads, k, batch), one.d_alpha)) << what;
      EXPECT_TRUE(same_bits(block_of(all.ds_src, n, heads, k, batch), one.ds_src)) << what;
      EXPECT_TRUE(same_bits(block_of(all.ds_dst, n, heads, k, batch), one.ds_dst)) << what;
    }
  }
}

// The CPU backend's threads split the nodes; the bits do not change.
TEST_F(GatOps, ThreadCountDoesNotChangeTheBits) {
  const HostGraph hg = random_graph(4000, 10, 30000, 15);
  const AttentionEdgeLists g = lists_of(hg);
  const GatInputs in = gat_inputs(hg.n_nodes, 4, 2, 8, 60);  // large enough to run in parallel
  const std::vector<StepState> states = batch_states(2);
  auto one_thread = make_cpu_backend(1);
  const GatOutputs a = run_gat(*be, g, in, 0.25f, states, 3);
  const GatOutputs b = run_gat(*one_thread, g, in, 0.25f, states, 3);
  for (std::size_t q = 0; q < a.all().size(); ++q) {
    EXPECT_TRUE(same_bits(a.all()[q], b.all()[q])) << kGatOutputNames[q];
  }
}

// ---- activation + dropout -------------------------------------------------------

TEST_F(GatOps, EluDropoutMatchesTheReference) {
  const int64_t rows = 37, cols = 11;
  for (const int batch : {1, 3}) {
    for (const bool rates_from_steps : {false, true}) {
      for (const float p : {0.0f, 0.3f}) {
        if (rates_from_steps && p == 0.0f) continue;
        const int64_t width = cols * batch;
        const std::vector<StepState> states = batch_states(batch);
        std::vector<float> rates(static_cast<std::size_t>(batch), p);
        if (rates_from_steps) {
          for (int k = 0; k < batch; ++k) rates[k] = states[k].dropout;
        }
        const auto x = random_floats(static_cast<std::size_t>(rows * width), 70 + batch, -3.0f, 3.0f);
        const auto dy = random_floats(static_cast<std::size_t>(rows * width), 71 + batch);
        const auto got = run_act_dropout(*be, Activation::kElu, x, dy, rows, width, batch, p, states,
                                         rates_from_steps, 5);
        const RefElu ref = ref_elu(x, dy, rows, width, batch, rates, states, 5);
        const std::string what = "batch " + std::to_string(batch) + (rates_from_steps ? " own rates" : " p ") +
                                 std::to_string(p);
        EXPECT_TRUE(all_close(got[0], to_float(ref.y), {1e-6, 1e-6}, width)) << what;
        EXPECT_TRUE(all_close(got[1], to_float(ref.dx), {1e-6, 1e-5}, width)) << what;
        EXPECT_TRUE(all_close(got[2], to_float(ref.col_sums), {1e-5, 1e-5})) << what;
        EXPECT_TRUE(same_bits(got[3], got[1])) << "without sums " << what;
        // Negative outputs survive where kept (unlike ReLU).
        EXPECT_GT(std::count_if(got[0].begin(), got[0].end(), [](float v) { return v < -0.1f; }), rows);
        // Each model of the batch is the op on that model alone.
        for (int k = 0; k < batch && batch > 1; ++k) {
          const auto one = run_act_dropout(*be, Activation::kElu, block_of(x, rows, cols, k, batch),
                                           block_of(dy, rows, cols, k, batch), rows, cols, 1, rates[k], {states[k]},
                                           false, 5);
          EXPECT_TRUE(same_bits(block_of(got[0], rows, cols, k, batch), one[0])) << what << " model " << k;
          EXPECT_TRUE(same_bits(block_of(got[1], rows, cols, k, batch), one[1])) << what << " model " << k;
          EXPECT_TRUE(same_bits(block_of(got[2], 1, cols, k, batch), one[2])) << what << " model " << k;
        }
      }
    }
  }
}

// ELU's expm1 (shared with the CUDA kernels) is within one ulp of the exact
// value over its domain, and keeps ±0, NaN and -inf as expm1 does.
TEST(EluKernels, Expm1IsWithinOneUlp) {
  double worst = 0.0;
  for (uint32_t bits = 0x80000001u; bits < 0xC1F00000u; bits += 997) {  // (-30, 0) through its floats
    float x;
    std::memcpy(&x, &bits, sizeof x);
    const double ref = std::expm1(static_cast<double>(x));
    const double ulp = std::ldexp(1.0, std::ilogb(static_cast<float>(ref)) - 23);
    worst = std::max(worst, std::fabs(elu_expm1(x) - ref) / ulp);
  }
  EXPECT_LT(worst, 1.0);
  EXPECT_EQ(elu_expm1(-100.0f), -1.0f);
  EXPECT_EQ(elu_expm1(-std::numeric_limits<float>::infinity()), -1.0f);
  EXPECT_TRUE(std::signbit(elu_expm1(-0.0f)) && elu_expm1(-0.0f) == 0.0f);
  EXPECT_FALSE(std::signbit(elu_expm1(0.0f)));
  EXPECT_TRUE(std::isnan(elu_expm1(kNaN)));
  EXPECT_EQ(elu_expm1(-1e-30f), -1e-30f);
  EXPECT_NEAR(elu_expm1(-1.0f), -0.6321205588, 1e-7);
}

// Every CPU kernel variant (baseline, AVX2, AVX-512) computes the ELU layer's
// bits element by element: (x > 0 ? x : elu_expm1(x)) times the mask's
// factor, the sign of a dropped zero, infinities and NaN included; the
// backward (dy · elu'(x)) · scale where kept.
TEST(EluKernels, EveryVariantIsThePlainFormula) {
  constexpr float kInf = std::numeric_limits<float>::infinity();
  const int64_t rows = 9, cols = 37, ld = 41;
  std::vector<float> x = random_floats(static_cast<std::size_t>(rows * ld), 150, -4.0f, 4.0f);
  const float special[] = {0.0f, -0.0f, kInf, -kInf, kNaN, 1e-30f, -1e-30f, -1e-6f, -88.0f, -104.0f, 3e38f};
  for (std::size_t q = 0; q < sizeof special / sizeof special[0]; ++q) x[q * 3] = special[q];
  const std::vector<float> dy = random_floats(x.size(), 151);
  const uint64_t key = stream_key(site_seed(77, 3), 5);
  for (const bool drop : {false, true}) {
    const float p = drop ? 0.45f : 0.0f, scale = 1.0f / (1.0f - p);
    std::vector<float> expected(x.size(), -7.0f), dx_expected(x.size(), -7.0f);
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t j = 0; j < cols; ++j) {
        const float v = x[r * ld + j];
        const bool kept = !drop || dropout_keep_keyed(key, static_cast<uint64_t>(r * cols + j), p);
        const float y = (v > 0.0f ? v : elu_expm1(v)) * (kept ? scale : 0.0f);
        expected[r * ld + j] = y;
        const float slope = y > 0.0f ? 1.0f : y * (1.0f - p) + 1.0f;
        dx_expected[r * ld + j] = kept ? (dy[r * ld + j] * slope) * scale : 0.0f;
      }
    }
    for (const cpu::CpuKernels* k : cpu::available_cpu_kernels()) {
      std::vector<float> y(x.size(), -7.0f), dx(x.size(), -7.0f);
      k->elu_dropout_forward(x.data(), y.data(), ld, cols, 0, rows, drop, p, scale, key);
      k->elu_dropout_backward(dy.data(), expected.data(), dx.data(), ld, cols, 0, rows, drop, p, scale, key);
      EXPECT_TRUE(same_bits(y, expected, ld)) << k->isa << " drop " << drop;
      EXPECT_TRUE(same_bits(dx, dx_expected, ld)) << k->isa << " drop " << drop;
    }
  }
}

// ---- the kernels of graph attention and of the masks, variant by variant --------

// The GAT kernels' formulas written out as plain loops (cpu_kernels_gat.hpp's
// summation orders, std::exp): every CPU kernel variant must compute these
// bits, whatever its vectors.
namespace plain {

float leaky_relu(float u) { return u > 0.0f ? u : 0.2f * u; }
float max_ignoring_nan(float a, float b) {
  if (a != a) return b;
  if (b != b) return a;
  return a > b ? a : b;
}

void scores(const cpu::GatShape& d, int64_t n, const std::vector<float>& xw, const std::vector<float>& as,
            const std::vector<float>& ad, std::vector<float>& s_src, std::vector<float>& s_dst) {
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t kh = 0; kh < d.bh; ++kh) {
      float ss = 0.0f, sd = 0.0f;
      for (int64_t c = 0; c < d.ch; ++c) {
        ss += as[kh * d.ch + c] * xw[i * d.ld + kh * d.ch + c];
        sd += ad[kh * d.ch + c] * xw[i * d.ld + kh * d.ch + c];
      }
      s_src[i * d.bh + kh] = ss;
      s_dst[i * d.bh + kh] = sd;
    }
  }
}

void softmax(const cpu::GatShape& d, int64_t n, const std::vector<float>& s_src, const std::vector<float>& s_dst,
             std::vector<float>& alpha) {
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t kh = 0; kh < d.bh; ++kh) {
      const int64_t e0 = d.in_ptr[i], e1 = d.in_ptr[i + 1];
      auto z = [&](int64_t e) { return leaky_relu(s_src[d.in_src[e] * d.bh + kh] + s_dst[i * d.bh + kh]); };
      float mx = -INFINITY, sum = 0.0f;
      for (int64_t e = e0; e < e1; ++e) mx = max_ignoring_nan(mx, z(e));
      for (int64_t e = e0; e < e1; ++e) {
        alpha[e * d.bh + kh] = std::exp(z(e) - mx);
        sum += alpha[e * d.bh + kh];
      }
      for (int64_t e = e0; e < e1; ++e) alpha[e * d.bh + kh] = alpha[e * d.bh + kh] / sum;
    }
  }
}

// alpha · mask (mask empty: none).
float dropped(const cpu::GatShape& d, const std::vector<float>& alpha, const std::vector<float>& mask, int64_t e,
              int64_t kh) {
  return mask.empty() ? alpha[e * d.bh + kh] : alpha[e * d.bh + kh] * mask[e * d.bh + kh];
}

void aggregate(const cpu::GatShape& d, int64_t n, const std::vector<float>& alpha, const std::vector<float>& mask,
               const std::vector<float>& xw, const float* bias, std::vector<float>& out) {
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t q = 0; q < d.ld; ++q) {
      float o = 0.0f;
      for (int64_t e = d.in_ptr[i]; e < d.in_ptr[i + 1]; ++e) {
        o += dropped(d, alpha, mask, e, q / d.ch) * xw[d.in_src[e] * d.ld + q];
      }
      out[i * d.ld + q] = bias != nullptr ? o + bias[q] : o;
    }
  }
}

void backward_targets(const cpu::GatShape& d, int64_t n, const std::vector<float>& dout,
                      const std::vector<float>& xw, const std::vector<float>& s_src,
                      const std::vector<float>& s_dst, const std::vector<float>& alpha,
                      const std::vector<float>& mask, std::vector<float>& d_alpha, std::vector<float>& ds_dst) {
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t kh = 0; kh < d.bh; ++kh) {
      const int64_t e0 = d.in_ptr[i], e1 = d.in_ptr[i + 1];
      auto dalpha = [&](int64_t e) {
        float dot = 0.0f;
        for (int64_t c = 0; c < d.ch; ++c) {
          dot += dout[i * d.ld + kh * d.ch + c] * xw[d.in_src[e] * d.ld + kh * d.ch + c];
        }
        return mask.empty() ? dot : dot * mask[e * d.bh + kh];
      };
      float t = 0.0f, ds = 0.0f;
      for (int64_t e = e0; e < e1; ++e) t += alpha[e * d.bh + kh] * dalpha(e);
      for (int64_t e = e0; e < e1; ++e) {
        const float u = s_src[d.in_src[e] * d.bh + kh] + s_dst[i * d.bh + kh];
        const float du = (alpha[e * d.bh + kh] * (dalpha(e) - t)) * (u > 0.0f ? 1.0f : 0.2f);
        d_alpha[e * d.bh + kh] = du;
        ds += du;
      }
      ds_dst[i * d.bh + kh] = ds;
    }
  }
}

void backward_sources(const cpu::GatShape& d, int64_t n, const std::vector<float>& dout,
                      const std::vector<float>& as, const std::vector<float>& ad, const std::vector<float>& alpha,
                      const std::vector<float>& mask, const std::vector<float>& d_alpha,
                      const std::vector<float>& ds_dst, std::vector<float>& ds_src, std::vector<float>& dxw) {
  for (int64_t j = 0; j < n; ++j) {
    for (int64_t kh = 0; kh < d.bh; ++kh) {
      float ds = 0.0f;
      for (int64_t q = d.out_ptr[j]; q < d.out_ptr[j + 1]; ++q) ds += d_alpha[d.out_edge[q] * d.bh + kh];
      ds_src[j * d.bh + kh] = ds;
    }
    for (int64_t q = 0; q < d.ld; ++q) {
      const int64_t kh = q / d.ch;
      float dx = 0.0f;
      for (int64_t o = d.out_ptr[j]; o < d.out_ptr[j + 1]; ++o) {
        const int64_t e = d.out_edge[o];
        dx += dropped(d, alpha, mask, e, kh) * dout[d.edge_dst[e] * d.ld + q];
      }
      dxw[j * d.ld + q] = (dx + ds_src[j * d.bh + kh] * as[q]) + ds_dst[j * d.bh + kh] * ad[q];
    }
  }
}

std::vector<float> attention_grad(const cpu::GatShape& d, int64_t n, const std::vector<float>& ds,
                                  const std::vector<float>& xw) {
  std::vector<float> out(static_cast<std::size_t>(d.ld));
  for (int64_t q = 0; q < d.ld; ++q) {
    double acc = 0.0;
    for (int64_t j = 0; j < n; ++j) acc += static_cast<double>(ds[j * d.bh + q / d.ch]) * static_cast<double>(xw[j * d.ld + q]);
    out[q] = static_cast<float>(acc);
  }
  return out;
}

}  // namespace plain

cpu::GatShape shape_of(const AttentionEdgeLists& g, int heads, int batch, int64_t ch) {
  const int64_t bh = int64_t{batch} * heads;
  return {heads, bh, ch, bh * ch, g.in_ptr.data(), g.in_src.data(), g.edge_dst.data(), g.out_ptr.data(),
          g.out_edge.data()};
}

// The softmax's exp (each variant's copy of glibc's expf, or the library's)
// is std::exp, bit for bit: on a spread of every float (each sign and
// exponent), and where its paths change (|x| = 88, the under- and overflow
// bounds, subnormal results, infinities, NaN).
TEST(GatKernels, SoftmaxExpIsTheLibrarys) {
  std::vector<float> x;
  for (uint64_t bits = 0; bits <= 0xFFFFFFFFull; bits += 65521) {
    float v;
    const auto b = static_cast<uint32_t>(bits);
    std::memcpy(&v, &b, sizeof v);
    x.push_back(v);
  }
  for (const float edge : {88.0f, 88.72283f, 88.7229f, 89.0f, 103.0f, 103.28f, 103.3f, 103.97f, 104.0f, 87.99999f}) {
    for (const float v : {edge, -edge, std::nextafter(edge, 0.0f), -std::nextafter(edge, 0.0f),
                          std::nextafter(edge, 200.0f), -std::nextafter(edge, 200.0f)}) {
      x.push_back(v);
    }
  }
  for (float v = -104.0f; v <= 0.0f; v += 0.0137f) x.push_back(v);  // the softmax's arguments
  for (const float v : {0.0f, -0.0f, 1e-30f, -1e-30f, std::numeric_limits<float>::infinity(),
                        -std::numeric_limits<float>::infinity(), kNaN, -kNaN, std::numeric_limits<float>::denorm_min(),
                        -std::numeric_limits<float>::max()}) {
    x.push_back(v);
  }
  std::vector<float> expected(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) expected[i] = std::exp(x[i]);
  for (const cpu::CpuKernels* k : cpu::available_cpu_kernels()) {
    std::vector<float> y(x.size(), -7.0f);
    k->softmax_exp(x.data(), y.data(), static_cast<int64_t>(x.size()));
    EXPECT_TRUE(same_bits(y, expected)) << k->isa;
  }
}

// Every variant's GAT kernels against the plain loops, bit for bit, on
// shapes that take each path (one head; 8 heads; bh not dividing 16 and
// above 16; ch = 1, above 64, and rows of several 64-column groups), with
// scores far apart (exp's special path), infinities (and so NaN) and signed
// zeros among the inputs, each kernel over the nodes in two ranges. (Every
// NaN here comes from an invalid operation, so all have the same bits: of
// two NaN operands x86 returns the first, and a compiler may swap the
// operands of a sum or a product, so inputs with NaNs of their own would
// test the compiler.)
TEST(GatKernels, EveryVariantIsThePlainLoops) {
  struct Shape {
    int heads, batch;
    int64_t ch;
  };
  const Shape shapes[] = {{1, 1, 7}, {8, 1, 8}, {3, 3, 5}, {8, 3, 8}, {2, 1, 70}, {16, 2, 1}, {4, 5, 3}, {5, 1, 13}};
  const HostGraph hg = random_graph(61, 4, 300, 21);
  const AttentionEdgeLists g = lists_of(hg);
  const int64_t n = g.n_nodes, n_edges = g.n_edges(), split = n / 3;
  uint32_t seed = 400;
  for (const Shape& sh : shapes) {
    const cpu::GatShape d = shape_of(g, sh.heads, sh.batch, sh.ch);
    GatInputs in = gat_inputs(hg.n_nodes, sh.heads, sh.batch, sh.ch, seed += 10);
    for (std::size_t q = 0; q < in.xw.size(); q += 37) in.xw[q] *= 300.0f;
    constexpr float kInf = std::numeric_limits<float>::infinity();
    in.xw[static_cast<std::size_t>(3 * d.ld + 1)] = -kInf;
    in.xw[static_cast<std::size_t>(7 * d.ld)] = kInf;
    in.xw[static_cast<std::size_t>(9 * d.ld)] = 0.0f;
    in.xw[static_cast<std::size_t>(9 * d.ld + d.ld - 1)] = -0.0f;
    in.dout[static_cast<std::size_t>(11 * d.ld)] = kInf;
    const std::string what = "heads " + std::to_string(sh.heads) + " batch " + std::to_string(sh.batch) + " ch " +
                             std::to_string(sh.ch);
    auto floats = [](int64_t count) { return std::vector<float>(static_cast<std::size_t>(count), -7.0f); };

    // The reference, step by step, and the attention dropout's factors.
    std::vector<float> s_src = floats(n * d.bh), s_dst = floats(n * d.bh), alpha = floats(n_edges * d.bh);
    plain::scores(d, n, in.xw, in.att_src, in.att_dst, s_src, s_dst);
    plain::softmax(d, n, s_src, s_dst, alpha);
    std::vector<float> mask = floats(n_edges * d.bh);
    const float p = 0.4f, scale = 1.0f / (1.0f - p);
    for (int k = 0; k < sh.batch; ++k) {
      const uint64_t key = stream_key(site_seed(90 + k, 7), 3);
      for (int64_t e = 0; e < n_edges; ++e) {
        for (int h = 0; h < sh.heads; ++h) {
          mask[e * d.bh + k * sh.heads + h] =
              dropout_keep_keyed(key, static_cast<uint64_t>(e * sh.heads + h), p) ? scale : 0.0f;
        }
      }
    }
    std::vector<float> out = floats(n * d.ld), out_plain = floats(n * d.ld);
    plain::aggregate(d, n, alpha, mask, in.xw, in.bias.data(), out);
    plain::aggregate(d, n, alpha, {}, in.xw, nullptr, out_plain);
    std::vector<float> d_alpha = floats(n_edges * d.bh), ds_dst = floats(n * d.bh);
    plain::backward_targets(d, n, in.dout, in.xw, s_src, s_dst, alpha, mask, d_alpha, ds_dst);
    std::vector<float> ds_src = floats(n * d.bh), dxw = floats(n * d.ld);
    plain::backward_sources(d, n, in.dout, in.att_src, in.att_dst, alpha, mask, d_alpha, ds_dst, ds_src, dxw);
    const std::vector<float> d_att_src = plain::attention_grad(d, n, ds_src, in.xw);
    const std::vector<float> d_att_dst = plain::attention_grad(d, n, ds_dst, in.xw);
    // exp underflowed somewhere (its special path), and infinities made NaNs.
    ASSERT_GT(std::count_if(alpha.begin(), alpha.end(), [](float a) { return a == 0.0f; }), 0) << what;
    ASSERT_GT(std::count_if(alpha.begin(), alpha.end(), [](float a) { return std::isnan(a); }), 0) << what;
    ASSERT_GT(std::count_if(dxw.begin(), dxw.end(), [](float a) { return std::isnan(a); }), 0) << what;

    for (const cpu::CpuKernels* k : cpu::available_cpu_kernels()) {
      const std::string where = what + " " + k->isa;
      // Each kernel from the reference's inputs, over [0, split) and [split, n).
      auto ranges = [&](auto&& fn) {
        fn(int64_t{0}, split);
        fn(split, n);
      };
      std::vector<float> got_ss = floats(n * d.bh), got_sd = floats(n * d.bh);
      ranges([&](int64_t i0, int64_t i1) {
        k->gat_scores(d, in.xw.data(), in.att_src.data(), in.att_dst.data(), got_ss.data(), got_sd.data(), i0, i1);
      });
      EXPECT_TRUE(same_bits(got_ss, s_src)) << "s_src " << where;
      EXPECT_TRUE(same_bits(got_sd, s_dst)) << "s_dst " << where;
      std::vector<float> got_alpha = floats(n_edges * d.bh);
      ranges([&](int64_t i0, int64_t i1) {
        k->gat_softmax(d, s_src.data(), s_dst.data(), got_alpha.data(), i0, i1);
      });
      EXPECT_TRUE(same_bits(got_alpha, alpha)) << "alpha " << where;
      // Scores that are NaN (x86's NaN of an invalid operation, as all the
      // others here), infinite (so NaN sums, nodes whose scores are all NaN)
      // or signed zeros (ties of +0 and -0 for the maximum).
      std::vector<float> special_src = s_src, special_dst = s_dst;
      for (std::size_t q = 0; q < special_src.size(); q += 5) special_src[q] = (q / 5) % 2 != 0 ? kInf : -kInf;
      for (std::size_t q = 3; q < special_src.size(); q += 11) special_src[q] = kInvalidNaN;
      for (std::size_t q = 0; q < special_dst.size(); q += 7) special_dst[q] = kInf;
      for (std::size_t q = 2; q < special_src.size(); q += 3) special_src[q] = (q % 2 != 0 ? -1.0f : 1.0f) * 0.0f;
      for (std::size_t q = 1; q < special_dst.size(); q += 4) special_dst[q] = -0.0f;
      std::vector<float> special_alpha = floats(n_edges * d.bh), got_special = floats(n_edges * d.bh);
      plain::softmax(d, n, special_src, special_dst, special_alpha);
      ranges([&](int64_t i0, int64_t i1) {
        k->gat_softmax(d, special_src.data(), special_dst.data(), got_special.data(), i0, i1);
      });
      EXPECT_TRUE(same_bits(got_special, special_alpha)) << "alpha of special scores " << where;
      std::vector<float> got_out = floats(n * d.ld), got_out_plain = floats(n * d.ld);
      ranges([&](int64_t i0, int64_t i1) {
        k->gat_aggregate(d, alpha.data(), mask.data(), in.xw.data(), in.bias.data(), got_out.data(), i0, i1);
        k->gat_aggregate(d, alpha.data(), nullptr, in.xw.data(), nullptr, got_out_plain.data(), i0, i1);
      });
      EXPECT_TRUE(same_bits(got_out, out)) << "out " << where;
      EXPECT_TRUE(same_bits(got_out_plain, out_plain)) << "out without dropout or bias " << where;
      std::vector<float> dots = floats(n_edges * d.bh), got_da = floats(n_edges * d.bh), got_dsd = floats(n * d.bh);
      ranges([&](int64_t i0, int64_t i1) {
        k->gat_backward_targets(d, in.dout.data(), in.xw.data(), s_src.data(), s_dst.data(), alpha.data(),
                                mask.data(), dots.data(), got_da.data(), got_dsd.data(), i0, i1);
      });
      EXPECT_TRUE(same_bits(got_da, d_alpha)) << "d_alpha " << where;
      EXPECT_TRUE(same_bits(got_dsd, ds_dst)) << "ds_dst " << where;
      std::vector<float> got_dss = floats(n * d.bh), got_dxw = floats(n * d.ld);
      ranges([&](int64_t j0, int64_t j1) {
        k->gat_backward_sources(d, in.dout.data(), in.att_src.data(), in.att_dst.data(), alpha.data(), mask.data(),
                                d_alpha.data(), ds_dst.data(), got_dss.data(), got_dxw.data(), j0, j1);
      });
      EXPECT_TRUE(same_bits(got_dss, ds_src)) << "ds_src " << where;
      EXPECT_TRUE(same_bits(got_dxw, dxw)) << "dxw " << where;
      std::vector<float> got_das = floats(d.ld), got_dad = floats(d.ld);
      std::vector<double> acc(static_cast<std::size_t>(d.ld));
      k->gat_attention_grad(d, n, ds_src.data(), in.xw.data(), got_das.data(), acc.data());
      k->gat_attention_grad(d, n, ds_dst.data(), in.xw.data(), got_dad.data(), acc.data());
      EXPECT_TRUE(same_bits(got_das, d_att_src)) << "d_att_src " << where;
      EXPECT_TRUE(same_bits(got_dad, d_att_dst)) << "d_att_dst " << where;
      // The factors, model by model at the batch's stride, over two ranges of edges.
      std::vector<float> got_mask = floats(n_edges * d.bh);
      for (int kk = 0; kk < sh.batch; ++kk) {
        const uint64_t key = stream_key(site_seed(90 + kk, 7), 3);
        for (const auto& [e0, e1] : {std::pair<int64_t, int64_t>{0, 5}, {5, n_edges}}) {
          k->dropout_factors(got_mask.data() + kk * sh.heads, d.bh, sh.heads, e0, e1, p, scale, key);
        }
      }
      EXPECT_TRUE(same_bits(got_mask, mask)) << "mask " << where;
    }
  }
}

// Every variant's sparse dropout and flat mask factors against the formulas:
// element r · cols + c of X (or c · rows + r, read through Xᵀ's entry (r, c)).
TEST(GatKernels, EveryVariantDropsTheMasksElements) {
  const CsrMatrix x = random_csr(45, 131, 0.09, 7, 31);
  const CsrMatrix xt = x.transposed();
  const uint64_t key = stream_key(site_seed(5, 1), 12);
  const float p = 0.6f, scale = 1.0f / (1.0f - p);
  for (const bool transposed : {false, true}) {
    const CsrMatrix& m = transposed ? xt : x;
    std::vector<float> expected(m.values.size());
    for (int32_t r = 0; r < m.n_rows; ++r) {
      for (int32_t e = m.indptr[r]; e < m.indptr[r + 1]; ++e) {
        const uint64_t element = transposed ? static_cast<uint64_t>(m.indices[e]) * m.n_rows + r
                                            : static_cast<uint64_t>(r) * m.n_cols + m.indices[e];
        expected[e] = m.values[e] * (dropout_keep_keyed(key, element, p) ? scale : 0.0f);
      }
    }
    for (const cpu::CpuKernels* k : cpu::available_cpu_kernels()) {
      std::vector<float> got(m.values.size(), -7.0f);
      k->sparse_dropout(m.indptr.data(), m.indices.data(), m.values.data(), m.n_rows, m.n_cols, transposed, p, scale,
                        key, got.data(), 0, 11);
      k->sparse_dropout(m.indptr.data(), m.indices.data(), m.values.data(), m.n_rows, m.n_cols, transposed, p, scale,
                        key, got.data(), 11, m.n_rows);
      EXPECT_TRUE(same_bits(got, expected)) << k->isa << (transposed ? " transposed" : "");
    }
  }
  // Contiguous rows (ld == cols): one range of indices.
  const int64_t rows = 23, cols = 3;
  std::vector<float> expected(rows * cols);
  for (int64_t q = 0; q < rows * cols; ++q) {
    expected[q] = dropout_keep_keyed(key, static_cast<uint64_t>(q), p) ? scale : 0.0f;
  }
  for (const cpu::CpuKernels* k : cpu::available_cpu_kernels()) {
    std::vector<float> got(expected.size(), -7.0f);
    k->dropout_factors(got.data(), cols, cols, 0, 4, p, scale, key);
    k->dropout_factors(got.data(), cols, cols, 4, rows, p, scale, key);
    EXPECT_TRUE(same_bits(got, expected)) << k->isa;
  }
}

// act_dropout with kRelu at site 0 is the ReLU layer's op, bit for bit.
TEST_F(GatOps, ReluAtSiteZeroIsReluDropout) {
  const int64_t rows = 41, cols = 13;
  const auto x = random_floats(static_cast<std::size_t>(rows * cols * 3), 80);
  const auto dy = random_floats(static_cast<std::size_t>(rows * cols * 3), 81);
  const std::vector<StepState> one = {state(6, 99)};
  const auto act = run_act_dropout(*be, Activation::kRelu, std::vector<float>(x.begin(), x.begin() + rows * cols),
                                   std::vector<float>(dy.begin(), dy.begin() + rows * cols), rows, cols, 1, 0.5f, one,
                                   false, 0);
  {
    const Steps steps(*be, one);
    Buffer<float> xb(*be, std::vector<float>(x.begin(), x.begin() + rows * cols)),
        dyb(*be, std::vector<float>(dy.begin(), dy.begin() + rows * cols)), y(*be, rows * cols),
        dx(*be, rows * cols), sums(*be, cols);
    be->relu_dropout_forward({xb.data(), rows, cols}, {y.data(), rows, cols}, 0.5f, steps.get());
    be->relu_dropout_backward({dyb.data(), rows, cols}, {y.data(), rows, cols}, {dx.data(), rows, cols}, 0.5f,
                              sums.data());
    EXPECT_TRUE(same_bits(act[0], y.to_host()));
    EXPECT_TRUE(same_bits(act[1], dx.to_host()));
    EXPECT_TRUE(same_bits(act[2], sums.to_host()));
  }
  // A batch with its own rates: batch_relu_dropout_*.
  const std::vector<StepState> states = batch_states(3);
  const auto batch_act =
      run_act_dropout(*be, Activation::kRelu, x, dy, rows, cols * 3, 3, 0.0f, states, true, 0);
  const Steps steps(*be, states);
  const int64_t width = cols * 3;
  Buffer<float> xb(*be, x), dyb(*be, dy), y(*be, rows * width), dx(*be, rows * width), sums(*be, width);
  be->batch_relu_dropout_forward({xb.data(), rows, width}, {y.data(), rows, width}, steps.get(), 3);
  be->batch_relu_dropout_backward({dyb.data(), rows, width}, {y.data(), rows, width}, {dx.data(), rows, width},
                                  steps.get(), 3, sums.data());
  EXPECT_TRUE(same_bits(batch_act[0], y.to_host()));
  EXPECT_TRUE(same_bits(batch_act[1], dx.to_host()));
  EXPECT_TRUE(same_bits(batch_act[2], sums.to_host()));
}

// Each site has its own mask, the random numbers' at site_seed(seed, site);
// site 0's is the run's seed itself.
TEST_F(GatOps, SitesDrawTheirOwnMasks) {
  EXPECT_EQ(site_seed(1234, 0), 1234u);
  EXPECT_NE(site_seed(1234, 1), 1234u);
  EXPECT_NE(site_seed(1234, 1), site_seed(1234, 2));
  EXPECT_NE(site_seed(1234, 1), site_seed(1235, 1));
  const int64_t rows = 64, cols = 32, n = rows * cols;
  const std::vector<float> ones(static_cast<std::size_t>(n), 1.0f);
  const std::vector<StepState> st = {state(2, 1234)};
  const float p = 0.5f;
  std::vector<std::vector<float>> masks;
  for (const Activation act : {Activation::kRelu, Activation::kElu}) {
    for (const uint32_t site : {0u, 1u, 2u, 7u}) {
      const auto y = run_act_dropout(*be, act, ones, ones, rows, cols, 1, p, st, false, site)[0];
      for (int64_t i = 0; i < n; ++i) {
        const bool keep = dropout_keep(site_seed(1234, site), 3, static_cast<uint64_t>(i), p);
        ASSERT_EQ(y[i], keep ? 2.0f : 0.0f) << "element " << i << " site " << site;
      }
      masks.push_back(y);
    }
  }
  // ReLU's and ELU's masks of a site agree; different sites differ in about half.
  for (std::size_t s = 0; s < 4; ++s) {
    EXPECT_TRUE(same_bits(masks[s], masks[s + 4])) << "site index " << s;
    for (std::size_t t = s + 1; t < 4; ++t) {
      int64_t differ = 0;
      for (int64_t i = 0; i < n; ++i) differ += masks[s][i] != masks[t][i] ? 1 : 0;
      EXPECT_GT(differ, n / 3) << s << " vs " << t;
    }
  }
}

// ---- dropout on sparse inputs ---------------------------------------------------

// X and Xᵀ drop exactly the elements dense dropout drops from X (the mask of
// element r · cols + c at the site), each model its own.
TEST_F(GatOps, SparseDropoutOfXAndItsTransposeDropTheSameElements) {
  const CsrMatrix x = random_csr(30, 20, 0.3, 7, 90);
  const CsrMatrix xt = x.transposed();
  const std::vector<StepState> states = {state(4, 11), state(9, 12)};
  const float p = 0.4f;
  const uint32_t site = 2;
  const std::vector<float> vx = run_sparse_dropout(*be, x, false, p, states, site);
  const std::vector<float> vxt = run_sparse_dropout(*be, xt, true, p, states, site);
  const int64_t nnz = x.nnz();
  const float scale = 1.0f / (1.0f - p);
  for (int k = 0; k < 2; ++k) {
    std::vector<float> dense_x(static_cast<std::size_t>(30 * 20), 0.0f), dense_xt = dense_x, expected = dense_x;
    for (int32_t r = 0; r < 30; ++r) {
      for (int32_t e = x.indptr[r]; e < x.indptr[r + 1]; ++e) {
        const int32_t c = x.indices[e];
        dense_x[r * 20 + c] = vx[k * nnz + e];
        const bool keep = dropout_keep(site_seed(states[k].dropout_seed, site),
                                       static_cast<uint64_t>(states[k].epoch + 1), static_cast<uint64_t>(r * 20 + c), p);
        expected[r * 20 + c] = x.values[e] * (keep ? scale : 0.0f);
      }
    }
    for (int32_t c = 0; c < 20; ++c) {
      for (int32_t e = xt.indptr[c]; e < xt.indptr[c + 1]; ++e) dense_xt[xt.indices[e] * 20 + c] = vxt[k * nnz + e];
    }
    EXPECT_TRUE(same_bits(dense_x, expected, 20)) << "model " << k;
    EXPECT_TRUE(same_bits(dense_xt, expected, 20)) << "model " << k;
    const int64_t kept = std::count_if(vx.begin() + k * nnz, vx.begin() + (k + 1) * nnz, [](float v) { return v != 0; });
    EXPECT_GT(kept, nnz * 2 / 5);
    EXPECT_LT(kept, nnz * 4 / 5);
  }
  // The two models' masks differ; p = 0 copies the values.
  EXPECT_FALSE(same_bits(std::vector<float>(vx.begin(), vx.begin() + nnz), std::vector<float>(vx.begin() + nnz, vx.end())));
  const std::vector<float> copy = run_sparse_dropout(*be, x, false, 0.0f, states, site);
  std::vector<float> twice = x.values;
  twice.insert(twice.end(), x.values.begin(), x.values.end());
  EXPECT_TRUE(same_bits(copy, twice));
}

// A restricted copy of Xᵀ (some columns, as a training pass keeps) drops the
// same elements as Xᵀ, and its product with the dropped values is the dense
// product restricted the same way.
TEST_F(GatOps, SparseDropoutOfARestrictedCopy) {
  const CsrMatrix x = random_csr(40, 25, 0.3, 9, 95);
  const CsrMatrix xt = x.transposed();
  RowMask keep(40, 0);
  for (int32_t i = 0; i < 40; i += 3) keep[i] = 1;
  const CsrMatrix restricted = keep_columns(xt, keep);
  ASSERT_LT(restricted.nnz(), xt.nnz());
  const std::vector<StepState> states = {state(0, 99)};
  const float p = 0.3f;
  const std::vector<float> full = run_sparse_dropout(*be, xt, true, p, states, 100);
  const std::vector<float> part = run_sparse_dropout(*be, restricted, true, p, states, 100);
  for (int32_t f = 0; f < xt.n_rows; ++f) {
    int32_t q = restricted.indptr[f];
    for (int32_t e = xt.indptr[f]; e < xt.indptr[f + 1]; ++e) {
      if (keep[xt.indices[e]] == 0) continue;
      ASSERT_EQ(restricted.indices[q], xt.indices[e]);
      EXPECT_EQ(part[q], full[e]) << "feature " << f << " node " << xt.indices[e];
      ++q;
    }
  }
  // dW = dropout(X)ᵀ · g over the kept nodes.
  const int64_t n = 3;
  const std::vector<float> g = random_floats(static_cast<std::size_t>(40 * n), 96);
  const std::vector<float> dw = run_spmm_values(*be, restricted, part, g, n, 1);
  std::vector<double> ref(static_cast<std::size_t>(25 * n), 0.0);
  const float scale = 1.0f / (1.0f - p);
  for (int32_t r = 0; r < 40; ++r) {
    if (keep[r] == 0) continue;
    for (int32_t e = x.indptr[r]; e < x.indptr[r + 1]; ++e) {
      const int32_t c = x.indices[e];
      const bool kept = dropout_keep(site_seed(99, 100), 1, static_cast<uint64_t>(r * 25 + c), p);
      for (int64_t j = 0; j < n; ++j) ref[c * n + j] += (kept ? x.values[e] * scale : 0.0) * g[r * n + j];
    }
  }
  EXPECT_TRUE(all_close(dw, to_float(ref), {1e-5, 1e-5}, n));
  EXPECT_GT(std::count_if(dw.begin(), dw.end(), [](float v) { return v != 0.0f; }), 25);
}

// A batch's product: each model's block is that model's own product (a
// matrix with its values, times its block of b), bit for bit, and the plain
// product for a's own values.
TEST_F(GatOps, SpmmValuesIsEachModelsProduct) {
  for (const CsrMatrix& a : {random_csr(25, 18, 0.3, 6, 91), csr_with_rows({0, 1, 300, 5, 129, 2, 17}, 400, 92)}) {
    const int batch = 2;
    const int64_t n = 5;
    const std::vector<float> values = random_floats(static_cast<std::size_t>(a.nnz() * batch), 93);
    const std::vector<float> b = random_floats(static_cast<std::size_t>(a.n_cols * n * batch), 94);
    const std::vector<float> c = run_spmm_values(*be, a, values, b, n, batch);
    for (int k = 0; k < batch; ++k) {
      CsrMatrix mine = a;
      mine.values.assign(values.begin() + k * a.nnz(), values.begin() + (k + 1) * a.nnz());
      const auto m = be->upload_csr(mine);
      Buffer<float> bk(*be, block_of(b, a.n_cols, n, k, batch)), ck(*be, a.n_rows * n);
      be->spmm(*m, {bk.data(), a.n_cols, n}, {ck.data(), a.n_rows, n});
      EXPECT_TRUE(same_bits(block_of(c, a.n_rows, n, k, batch), ck.to_host(), n)) << "model " << k;
      // And the sums themselves.
      std::vector<double> ref(static_cast<std::size_t>(a.n_rows * n), 0.0);
      for (int32_t r = 0; r < a.n_rows; ++r) {
        for (int32_t e = a.indptr[r]; e < a.indptr[r + 1]; ++e) {
          for (int64_t j = 0; j < n; ++j) {
            ref[r * n + j] += static_cast<double>(mine.values[e]) * b[a.indices[e] * n * batch + k * n + j];
          }
        }
      }
      EXPECT_TRUE(all_close(ck.to_host(), to_float(ref), {1e-5, 1e-5}, n)) << "model " << k;
    }
    const std::vector<float> own = run_spmm_values(*be, a, a.values, block_of(b, a.n_cols, n, 0, batch), n, 1);
    const auto m = be->upload_csr(a);
    Buffer<float> b0(*be, block_of(b, a.n_cols, n, 0, batch)), c0(*be, a.n_rows * n);
    be->spmm(*m, {b0.data(), a.n_cols, n}, {c0.data(), a.n_rows, n});
    EXPECT_TRUE(same_bits(own, c0.to_host(), n));
  }
}

// ---- argument checks ---------------------------------------------------------------

TEST_F(GatOps, ArgumentChecks) {
  const AttentionEdgeLists h = attention_edge_lists(4, {0, 2}, {1, 1});
  const DeviceEdges edges(*be, h);
  const EdgeLists& g = edges.lists();
  std::vector<float> xw(4 * 6, 0.5f), att(6, 0.1f), s(4 * 3), s2(4 * 3), alpha(6 * 3), out(4 * 6);
  const StepState one = state(1, 2);
  EXPECT_EQ(error_of([&] {
              be->gat_attention(g, {xw.data(), 4, 6}, att.data(), att.data(), 3, {s.data(), 4, 3}, {s2.data(), 4, 3},
                                {alpha.data(), 5, 3}, 1);
            }),
            "gat_attention: alpha is (5, 3), expected (6, 3)");
  EXPECT_EQ(error_of([&] {
              be->gat_attention(g, {xw.data(), 4, 6}, att.data(), att.data(), 4, {s.data(), 4, 4}, {s2.data(), 4, 4},
                                {alpha.data(), 6, 4}, 1);
            }),
            "gat_attention: xw (4, 6) for 4 nodes and 4 heads of 1 models");
  EXPECT_EQ(error_of([&] {
              be->gat_attention(g, {xw.data(), 4, 6}, att.data(), att.data(), 3, {s.data(), 4, 3}, {s.data(), 4, 3},
                                {alpha.data(), 6, 3}, 1);
            }),
            "gat_attention: two outputs share memory");
  EXPECT_EQ(error_of([&] {
              be->gat_aggregate(g, {alpha.data(), 6, 3}, {xw.data(), 4, 6}, 3, nullptr, {out.data(), 4, 6}, 1.0f,
                                &one, 0, 1);
            }),
            "gat_aggregate: p = 1 outside [0, 1)");
  EXPECT_EQ(error_of([&] {
              be->gat_aggregate(g, {alpha.data(), 6, 3}, {xw.data(), 4, 6}, 3, nullptr, {out.data(), 4, 6}, 0.5f,
                                nullptr, 0, 1);
            }),
            "gat_aggregate: dropout without step states");
  EXPECT_EQ(error_of([&] {
              be->gat_aggregate(g, {alpha.data(), 6, 3}, {xw.data(), 4, 6}, 3, nullptr, {xw.data(), 4, 6}, 0.0f,
                                nullptr, 0, 1);
            }),
            "gat_aggregate: an output aliases an input");
  std::vector<float> x(12), y(12);
  EXPECT_EQ(error_of([&] {
              be->act_dropout_forward(Activation::kElu, {x.data(), 3, 4}, {y.data(), 3, 4}, 0.5f, nullptr, 1, false, 1);
            }),
            "act_dropout_forward: dropout without step states");
  EXPECT_EQ(error_of([&] {
              be->act_dropout_forward(Activation::kElu, {x.data(), 3, 4}, {y.data(), 3, 4}, 0.0f, nullptr, 3, false, 1);
            }),
            "act_dropout_forward: (3, 4) is not 3 column blocks");
  EXPECT_EQ(error_of([&] {
              be->act_dropout_forward(static_cast<Activation>(7), {x.data(), 3, 4}, {y.data(), 3, 4}, 0.0f, nullptr, 1,
                                      false, 0);
            }),
            "act_dropout_forward: unknown activation 7");
  EXPECT_EQ(error_of([&] {
              be->act_dropout_backward(Activation::kElu, {x.data(), 3, 4}, {y.data(), 3, 4}, {x.data(), 3, 4}, 0.5f,
                                       nullptr, 1, false, 1);
            }),
            "act_dropout_backward: dropout without step states");
  // ReLU's backward needs no step state: its mask is y > 0.
  EXPECT_EQ(error_of([&] {
              be->act_dropout_backward(Activation::kRelu, {x.data(), 3, 4}, {y.data(), 3, 4}, {x.data(), 3, 4}, 0.5f,
                                       nullptr, 1, false, 1);
            }),
            "(no error)");
  const auto m = be->upload_csr(random_csr(3, 4, 0.5, 0, 1));
  std::vector<float> v(32);
  EXPECT_EQ(error_of([&] { be->sparse_dropout(*m, false, -0.1f, &one, 1, 0, v.data()); }),
            "sparse_dropout: p = -0.1 outside [0, 1)");
  EXPECT_EQ(error_of([&] {
              be->spmm_values(*m, v.data(), {x.data(), 3, 4}, {y.data(), 3, 4}, 2);
            }),
            "spmm_values: shapes (3, 4) x (3, 4) -> (3, 4)");
}

// ---- the CUDA backend against the CPU ---------------------------------------------

#if defined(GCN_WITH_CUDA)

class GatCudaOps : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    if (cuda_device_count(&why) == 0) {
      if (test::require_gpu()) FAIL() << "GCN_REQUIRE_GPU=1 but there is no usable CUDA GPU: " << why;
      GTEST_SKIP() << "no usable CUDA GPU: " << why;
    }
    gpu_ = make_cuda_backend(0);
    cpu_ = make_cpu_backend(0);
  }
  std::unique_ptr<Backend> cpu_, gpu_;
};

// Every output of the three GAT ops, against the CPU (they differ only where
// the GPU's expf does), and the same bits on a second run.
TEST_F(GatCudaOps, GatOpsMatchTheCpuAndRerunBitIdentical) {
  const HostGraph hg = random_graph(150, 9, 500, 21);
  const AttentionEdgeLists g = lists_of(hg);
  const Tolerance tolerances[] = {
      {1e-6, 1e-5}, {1e-6, 1e-5}, {1e-6, 1e-5}, {1e-5, 1e-5}, {1e-5, 1e-4},
      {1e-4, 1e-4}, {1e-4, 1e-4}, {1e-6, 1e-4}, {1e-5, 1e-4}, {1e-5, 1e-4}};
  for (const int heads : {1, 3}) {
    for (const int batch : {1, 3}) {
      for (const float p : {0.0f, 0.3f}) {
        const std::vector<StepState> states = batch_states(batch);
        const GatInputs in = gat_inputs(hg.n_nodes, heads, batch, 4, 100 + heads * 10 + batch);
        const GatOutputs ref = run_gat(*cpu_, g, in, p, states, 6);
        const GatOutputs got = run_gat(*gpu_, g, in, p, states, 6);
        const GatOutputs again = run_gat(*gpu_, g, in, p, states, 6);
        const std::string what = "heads " + std::to_string(heads) + " batch " + std::to_string(batch) + " p " +
                                 std::to_string(p);
        for (std::size_t q = 0; q < ref.all().size(); ++q) {
          EXPECT_TRUE(all_close(got.all()[q], ref.all()[q], tolerances[q])) << kGatOutputNames[q] << " " << what;
          EXPECT_TRUE(same_bits(again.all()[q], got.all()[q])) << "rerun " << kGatOutputNames[q] << " " << what;
        }
      }
    }
  }
}

// A graph with more nodes than the parameter gradients' chunk: several row
// chunks summed by the last block.
TEST_F(GatCudaOps, AttentionGradientsOverManyChunks) {
  const HostGraph hg = random_graph(700, 0, 1400, 22);
  const AttentionEdgeLists g = lists_of(hg);
  const GatInputs in = gat_inputs(hg.n_nodes, 2, 1, 3, 120);
  const GatOutputs ref = run_gat(*cpu_, g, in, 0.0f, {}, 0);
  const GatOutputs got = run_gat(*gpu_, g, in, 0.0f, {}, 0);
  EXPECT_TRUE(all_close(got.d_att_src, ref.d_att_src, {1e-4, 1e-4}));
  EXPECT_TRUE(all_close(got.d_att_dst, ref.d_att_dst, {1e-4, 1e-4}));
  EXPECT_TRUE(all_close(got.dxw, ref.dxw, {1e-5, 1e-4}, in.ld()));
}

TEST_F(GatCudaOps, ActDropoutMatchesTheCpu) {
  const int64_t rows = 70, cols = 33;
  for (const Activation act : {Activation::kRelu, Activation::kElu}) {
    for (const int batch : {1, 3}) {
      for (const bool rates_from_steps : {false, true}) {
        for (const uint32_t site : {0u, 5u}) {
          const int64_t width = cols * batch;
          const std::vector<StepState> states = batch_states(batch);
          const auto x = random_floats(static_cast<std::size_t>(rows * width), 130 + batch, -3.0f, 3.0f);
          const auto dy = random_floats(static_cast<std::size_t>(rows * width), 131 + batch);
          const auto ref = run_act_dropout(*cpu_, act, x, dy, rows, width, batch, 0.35f, states, rates_from_steps, site);
          const auto got = run_act_dropout(*gpu_, act, x, dy, rows, width, batch, 0.35f, states, rates_from_steps, site);
          const auto again =
              run_act_dropout(*gpu_, act, x, dy, rows, width, batch, 0.35f, states, rates_from_steps, site);
          const std::string what = std::string(act == Activation::kRelu ? "relu" : "elu") + " batch " +
                                   std::to_string(batch) + (rates_from_steps ? " own rates" : "") + " site " +
                                   std::to_string(site);
          // Float operations only (ELU's expm1 too, gcn::elu_expm1): the CPU's bits.
          EXPECT_TRUE(same_bits(got[0], ref[0], width)) << what;
          EXPECT_TRUE(same_bits(got[1], ref[1], width)) << what;
          // The same elements are dropped on both.
          for (std::size_t i = 0; i < ref[1].size(); ++i) {
            ASSERT_EQ(got[0][i] == 0.0f, ref[0][i] == 0.0f) << "element " << i << " " << what;
          }
          EXPECT_TRUE(all_close(got[2], ref[2], {1e-5, 1e-5})) << what;
          EXPECT_TRUE(same_bits(got[3], got[1])) << "without sums " << what;
          for (std::size_t q = 0; q < got.size(); ++q) EXPECT_TRUE(same_bits(again[q], got[q])) << "rerun " << what;
        }
      }
    }
  }
}

TEST_F(GatCudaOps, SparseDropoutAndSpmmValuesMatchTheCpu) {
  const CsrMatrix x = csr_with_rows({0, 1, 300, 5, 129, 2, 17, 40, 0, 3}, 400, 140);
  for (const int batch : {1, 3}) {
    const std::vector<StepState> states = batch_states(batch);
    for (const bool transposed : {false, true}) {
      const CsrMatrix a = transposed ? x.transposed() : x;
      for (const float p : {0.0f, 0.45f}) {
        const std::vector<float> ref = run_sparse_dropout(*cpu_, a, transposed, p, states, 3);
        const std::vector<float> got = run_sparse_dropout(*gpu_, a, transposed, p, states, 3);
        EXPECT_TRUE(same_bits(got, ref)) << "batch " << batch << " transposed " << transposed << " p " << p;
      }
      const std::vector<float> values = run_sparse_dropout(*cpu_, a, transposed, 0.45f, states, 3);
      for (const int64_t n : {1, 7, 16, 40}) {
        const std::vector<float> b = random_floats(static_cast<std::size_t>(a.n_cols * n * batch), 141);
        const std::vector<float> ref = run_spmm_values(*cpu_, a, values, b, n, batch);
        const std::vector<float> got = run_spmm_values(*gpu_, a, values, b, n, batch);
        const std::vector<float> again = run_spmm_values(*gpu_, a, values, b, n, batch);
        const std::string what =
            "batch " + std::to_string(batch) + " transposed " + std::to_string(transposed) + " n " + std::to_string(n);
        EXPECT_TRUE(all_close(got, ref, {1e-5, 1e-5}, n * batch)) << what;
        EXPECT_TRUE(same_bits(again, got)) << "rerun " << what;
      }
    }
  }
}

TEST_F(GatCudaOps, AttentionEdgesOnTheDevice) {
  SyntheticSpec spec;
  spec.nodes = 80;
  spec.degree = 4;
  spec.features = 12;
  spec.nnz_per_row = 3;
  spec.classes = 3;
  spec.seed = 6;
  spec.train_per_class = 2;
  spec.val = 10;
  spec.test = 10;
  const Dataset data = make_synthetic(spec);
  DeviceGraph dg(*gpu_, data);
  const EdgeLists& g = dg.attention_edges();
  const AttentionEdgeLists host = attention_edge_lists(data.n_nodes, data.edge_src, data.edge_dst);
  auto download = [&](const int32_t* p, std::size_t n) {
    std::vector<int32_t> v(n);
    gpu_->download(v.data(), p, n * sizeof(int32_t));
    return v;
  };
  EXPECT_EQ(g.n_edges, host.n_edges());
  EXPECT_EQ(download(g.in_src, host.in_src.size()), host.in_src);
  EXPECT_EQ(download(g.out_edge, host.out_edge.size()), host.out_edge);
  EXPECT_EQ(download(g.in_ptr, host.in_ptr.size()), host.in_ptr);
  EXPECT_EQ(download(g.out_ptr, host.out_ptr.size()), host.out_ptr);
  EXPECT_EQ(download(g.edge_dst, host.edge_dst.size()), host.edge_dst);
}

#endif  // GCN_WITH_CUDA

}  // namespace
}  // namespace gcn
