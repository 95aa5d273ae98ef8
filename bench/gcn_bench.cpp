// gcn-bench: times every backend op on every available device, at Cora's
// shape and grown to 2,000,000 rows, so the curve shows where launch overhead
// ends and memory bandwidth begins.
//
// Each (op, device, size) first runs on the CPU reference and on the device
// with the same inputs and compares the results (atol + rtol·|ref|); a
// mismatch turns the benchmark into an error instead of a timing. Times come
// from the backend's markers (CUDA events on the GPU, the steady clock on the
// CPU) after a warm-up run; counters give the achieved bandwidth (GBps, from
// the bytes each op must move at least) and GFLOPps where it means something,
// and pct_peak_bw where the GPU's peak bandwidth is known (a table of data
// sheets here; the backends do not need it).
//
//   gcn-bench [--device cpu|cuda|all] [--max-rows N] [--threads N] [google benchmark flags]
//   gcn-bench --help
#include <benchmark/benchmark.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "gcn/backend/backend.hpp"
#include "gcn/backend/buffer.hpp"
#include "gcn/data/dataset.hpp"
#include "gcn/backend/devices.hpp"
#include "gcn/error.hpp"
#include "gcn/data/graph.hpp"
#include "gcn/nn/model.hpp"
#include "gcn/rng.hpp"
#include "gcn/backend/step_state.hpp"
#include "gcn/data/synthetic.hpp"

namespace {

using gcn::Backend;
using gcn::Buffer;
using gcn::ConstMatRef;
using gcn::MatRef;

constexpr int kHidden = 16;
constexpr int kClasses = 7;
const int64_t kRowSizes[] = {2708, 20000, 200000, 2000000};

// Host inputs of one size: a Cora-like graph (average degree 4, as Cora's 3.9)
// with sparse features (nnz 18 per row of 1433, as Cora's 1.3%).
struct HostInputs {
  int64_t rows = 0;
  gcn::CsrMatrix adj;       // Â (rows, rows)
  gcn::CsrMatrix features;  // X (rows, F)
  gcn::CsrMatrix features_t;  // Xᵀ (F, rows)
  std::vector<int32_t> labels;
  std::vector<uint8_t> split;
  std::vector<float> hidden;   // (rows, 16)
  std::vector<float> logits;   // (rows, 7)
  std::vector<float> w1;       // (F, 16)
  std::vector<float> w2;       // (16, 7)
  int64_t n_train = 0;
};

std::vector<float> random_vector(int64_t n, uint64_t seed, float scale) {
  std::vector<float> v(static_cast<std::size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[i] = (2.0f * gcn::uniform01(seed, 0xbe7c, static_cast<uint64_t>(i)) - 1.0f) * scale;
  return v;
}

const HostInputs& inputs(int64_t rows) {
  static std::map<int64_t, HostInputs> cache;
  auto it = cache.find(rows);
  if (it != cache.end()) return it->second;
  gcn::SyntheticSpec spec;
  spec.nodes = rows;
  spec.degree = 4.0;
  spec.features = 1433;
  spec.nnz_per_row = 18;
  spec.classes = kClasses;
  spec.seed = 1;
  const gcn::Dataset d = gcn::make_synthetic(spec);
  HostInputs in;
  in.rows = rows;
  in.adj = gcn::gcn_norm(d.n_nodes, d.edge_src, d.edge_dst);
  in.features = d.features;
  in.features_t = d.features.transposed();
  in.labels = d.labels;
  in.split = d.split;
  in.n_train = d.count(gcn::kTrainBit);
  in.hidden = random_vector(rows * kHidden, 2, 1.0f);
  in.logits = random_vector(rows * kClasses, 3, 5.0f);
  in.w1 = random_vector(static_cast<int64_t>(spec.features) * kHidden, 4, 0.06f);
  in.w2 = random_vector(kHidden * kClasses, 5, 0.5f);
  return cache.emplace(rows, std::move(in)).first->second;
}

// The attention layers' inputs at one size and width, made on first use (a
// 64-wide layer is four times the 16-wide tensors above): Cora's GAT, 8
// heads of 8 channels, then 1 head of 7 (the classes), on the same graph.
constexpr int kHeads = 8;
constexpr int kHeadChannels = 8;
constexpr int kGatCols = kHeads * kHeadChannels;
struct GatHostInputs {
  gcn::AttentionEdgeLists edges;
  std::vector<float> xw, dout;               // (rows, cols)
  std::vector<float> att_src, att_dst, bias;  // (cols)
};
const GatHostInputs& gat_inputs(int64_t rows, int64_t cols = kGatCols) {
  static std::map<std::pair<int64_t, int64_t>, GatHostInputs> cache;
  auto it = cache.find({rows, cols});
  if (it != cache.end()) return it->second;
  gcn::SyntheticSpec spec;
  spec.nodes = rows;
  spec.degree = 4.0;
  spec.features = 1433;
  spec.nnz_per_row = 18;
  spec.classes = kClasses;
  spec.seed = 1;
  const gcn::Dataset d = gcn::make_synthetic(spec);
  GatHostInputs in;
  in.edges = gcn::attention_edge_lists(d.n_nodes, d.edge_src, d.edge_dst);
  in.xw = random_vector(rows * cols, 20, 1.0f);
  in.dout = random_vector(rows * cols, 21, 0.1f);
  in.att_src = random_vector(cols, 22, 0.3f);
  in.att_dst = random_vector(cols, 23, 0.3f);
  in.bias = random_vector(cols, 24, 0.1f);
  return cache.emplace(std::make_pair(rows, cols), std::move(in)).first->second;
}

// The backends, created once.
struct Devices {
  std::unique_ptr<Backend> cpu;
  std::unique_ptr<Backend> cuda;
};
Devices& devices() {
  static Devices d;
  return d;
}

// One op ready to run on one backend: `run` enqueues it, `result` reads its
// output back (for validation).
struct OpInstance {
  std::function<void()> run;
  std::function<std::vector<float>()> result;
  std::vector<std::shared_ptr<void>> keep;  // buffers and matrices the closures use
};

template <class T>
std::shared_ptr<Buffer<T>> upload(Backend& be, const std::vector<T>& host, OpInstance& op) {
  auto b = std::make_shared<Buffer<T>>(be, host);
  op.keep.push_back(b);
  return b;
}
std::shared_ptr<Buffer<float>> scratch(Backend& be, int64_t n, OpInstance& op) {
  auto b = std::make_shared<Buffer<float>>(be, n);
  b->zero();
  op.keep.push_back(b);
  return b;
}
std::function<std::vector<float>()> read(const std::shared_ptr<Buffer<float>>& b) {
  return [b] { return b->to_host(); };
}

// Attention edge lists in backend memory.
struct DeviceEdges {
  std::shared_ptr<Buffer<int32_t>> in_ptr, in_src, edge_dst, out_ptr, out_edge;
  gcn::EdgeLists lists;
};
DeviceEdges upload_edges(Backend& be, const gcn::AttentionEdgeLists& h, OpInstance& op) {
  DeviceEdges d{upload(be, h.in_ptr, op), upload(be, h.in_src, op), upload(be, h.edge_dst, op),
                upload(be, h.out_ptr, op), upload(be, h.out_edge, op), {}};
  d.lists = {h.n_nodes,       h.n_edges(),           d.in_ptr->data(), d.in_src->data(),
             d.edge_dst->data(), d.out_ptr->data(), d.out_edge->data()};
  return d;
}

// A step state (epoch 0: the first step, dropout stream 1) and a one-slot
// metrics ring in backend memory, for the ops that read them.
struct StepAndRing {
  std::shared_ptr<Buffer<uint8_t>> step, ring;
  gcn::StepState* state() const { return reinterpret_cast<gcn::StepState*>(step->data()); }
  gcn::MetricsRing metrics() const { return {reinterpret_cast<gcn::EpochMetrics*>(ring->data()), 1}; }
  gcn::EpochMetrics slot() const {
    gcn::EpochMetrics m{};
    const std::vector<uint8_t> bytes = ring->to_host();
    std::memcpy(&m, bytes.data(), sizeof m);
    return m;
  }
};
StepAndRing step_and_ring(Backend& be, OpInstance& op, uint64_t dropout_seed = 7) {
  gcn::StepState s{};
  s.dropout_seed = dropout_seed;
  std::vector<uint8_t> bytes(sizeof s);
  std::memcpy(bytes.data(), &s, sizeof s);
  StepAndRing r{upload(be, bytes, op), std::make_shared<Buffer<uint8_t>>(be, int64_t{sizeof(gcn::EpochMetrics)})};
  r.ring->zero();
  op.keep.push_back(r.ring);
  return r;
}

// Peak DRAM bandwidth of the GPUs we benchmark on, from NVIDIA's data sheets
// (the CUDA 13 runtime no longer reports the memory clock), matched in the
// backend's description. 0 when unknown.
double known_peak_bandwidth_gbs(const std::string& describe) {
  struct Entry {
    const char* pattern;
    double gbs;
  };
  static const Entry kTable[] = {
      {"H200", 4800.0},      {"H100 NVL", 3900.0}, {"H100 PCIe", 2000.0}, {"H100", 3350.0},
      {"A100-SXM4-80GB", 2039.0}, {"A100 80GB PCIe", 1935.0}, {"A100", 1555.0},
      {"L40S", 864.0},       {"L4", 300.0},        {"RTX 4090", 1008.0},  {"RTX 3090", 936.0},
      {"V100", 900.0},       {"T4", 320.0},
  };
  if (describe.rfind("cuda", 0) != 0) return 0.0;
  for (const Entry& e : kTable) {
    if (describe.find(e.pattern) != std::string::npos) return e.gbs;
  }
  return 0.0;
}

struct OpSpec {
  std::string name;
  double tol;  // atol = rtol
  // bytes moved and floating-point operations of one run (for the counters)
  std::function<double(const HostInputs&)> bytes;
  std::function<double(const HostInputs&)> flops;
  std::function<OpInstance(Backend&, const HostInputs&)> make;
};

// GATConv's three ops at heads x ch (a GAT layer's shape) on the attention
// inputs: gat_attention_h<heads>x<ch>, gat_aggregate_..., gat_backward_...
void add_gat_ops(std::vector<OpSpec>& ops, int heads, int ch) {
  const int64_t cols = int64_t{heads} * ch;
  const std::string shape = fmt::format("h{}x{}", heads, ch);
  const auto gat_edges = [cols](const HostInputs& in) {
    return static_cast<double>(gat_inputs(in.rows, cols).edges.n_edges());
  };
  const auto none = [](const HostInputs&) { return 0.0; };
  // The scores and the softmax over each node's in-edges (self loops added).
  ops.push_back({"gat_attention_" + shape, 1e-5,
                 [=](const HostInputs& in) {
                   return in.rows * (cols + 2.0 * heads + 1) * 4 + gat_edges(in) * (heads * 8.0 + 4);
                 },
                 none,
                 [=](Backend& be, const HostInputs& in) {
                   OpInstance op;
                   const GatHostInputs& g = gat_inputs(in.rows, cols);
                   const DeviceEdges e = upload_edges(be, g.edges, op);
                   const int64_t n_edges = g.edges.n_edges();
                   auto xw = upload(be, g.xw, op);
                   auto as = upload(be, g.att_src, op);
                   auto ad = upload(be, g.att_dst, op);
                   auto s_src = scratch(be, in.rows * heads, op);
                   auto s_dst = scratch(be, in.rows * heads, op);
                   auto alpha = scratch(be, n_edges * heads, op);
                   op.run = [&be, e, xw, as, ad, s_src, s_dst, alpha, n_edges, heads, cols, rows = in.rows] {
                     be.gat_attention(e.lists, {xw->data(), rows, cols}, as->data(), ad->data(), heads,
                                      {s_src->data(), rows, heads}, {s_dst->data(), rows, heads},
                                      {alpha->data(), n_edges, heads}, 1);
                   };
                   op.result = read(alpha);
                   return op;
                 }});
  // The aggregation with dropout on the coefficients and the bias.
  ops.push_back({"gat_aggregate_" + shape, 1e-5,
                 [=](const HostInputs& in) { return in.rows * cols * 8.0 + gat_edges(in) * (heads * 4.0 + 4); },
                 [=](const HostInputs& in) { return 2.0 * gat_edges(in) * cols; },
                 [=](Backend& be, const HostInputs& in) {
                   OpInstance op;
                   const GatHostInputs& g = gat_inputs(in.rows, cols);
                   const DeviceEdges e = upload_edges(be, g.edges, op);
                   const int64_t n_edges = g.edges.n_edges();
                   auto xw = upload(be, g.xw, op);
                   auto bias = upload(be, g.bias, op);
                   auto alpha = upload(be, random_vector(n_edges * heads, 25, 0.5f), op);
                   auto out = scratch(be, in.rows * cols, op);
                   const StepAndRing sr = step_and_ring(be, op);
                   op.run = [&be, e, xw, bias, alpha, out, sr, n_edges, heads, cols, rows = in.rows] {
                     be.gat_aggregate(e.lists, {alpha->data(), n_edges, heads}, {xw->data(), rows, cols}, heads,
                                      bias->data(), {out->data(), rows, cols}, 0.6f, sr.state(), 200, 1);
                   };
                   op.result = read(out);
                   return op;
                 }});
  // The backward of both (the gradients of xw and of the attention vectors).
  ops.push_back({"gat_backward_" + shape, 1e-4,
                 [=](const HostInputs& in) {
                   return in.rows * (cols * 12.0 + heads * 16.0) + gat_edges(in) * (heads * 16.0 + 12);
                 },
                 [=](const HostInputs& in) { return 6.0 * gat_edges(in) * cols; },
                 [=](Backend& be, const HostInputs& in) {
                   OpInstance op;
                   const GatHostInputs& g = gat_inputs(in.rows, cols);
                   const DeviceEdges e = upload_edges(be, g.edges, op);
                   const int64_t n_edges = g.edges.n_edges(), rows = in.rows;
                   auto xw = upload(be, g.xw, op);
                   auto dout = upload(be, g.dout, op);
                   auto as = upload(be, g.att_src, op);
                   auto ad = upload(be, g.att_dst, op);
                   auto s_src = scratch(be, rows * heads, op);
                   auto s_dst = scratch(be, rows * heads, op);
                   auto alpha = scratch(be, n_edges * heads, op);
                   auto dxw = scratch(be, rows * cols, op);
                   auto d_as = scratch(be, cols, op);
                   auto d_ad = scratch(be, cols, op);
                   auto d_alpha = scratch(be, n_edges * heads, op);
                   auto ds_src = scratch(be, rows * heads, op);
                   auto ds_dst = scratch(be, rows * heads, op);
                   const StepAndRing sr = step_and_ring(be, op);
                   // The inputs the backward reads, once (not timed).
                   be.gat_attention(e.lists, {xw->data(), rows, cols}, as->data(), ad->data(), heads,
                                    {s_src->data(), rows, heads}, {s_dst->data(), rows, heads},
                                    {alpha->data(), n_edges, heads}, 1);
                   op.run = [&be, e, xw, dout, as, ad, s_src, s_dst, alpha, dxw, d_as, d_ad, d_alpha, ds_src, ds_dst,
                             sr, n_edges, rows, heads, cols] {
                     be.gat_backward(e.lists, {dout->data(), rows, cols}, {xw->data(), rows, cols}, as->data(),
                                     ad->data(), {s_src->data(), rows, heads}, {s_dst->data(), rows, heads},
                                     {alpha->data(), n_edges, heads}, heads, 0.6f, sr.state(), 200,
                                     {dxw->data(), rows, cols}, d_as->data(), d_ad->data(),
                                     {d_alpha->data(), n_edges, heads}, {ds_src->data(), rows, heads},
                                     {ds_dst->data(), rows, heads}, 1);
                   };
                   op.result = [dxw, d_as, d_ad] {
                     std::vector<float> r = dxw->to_host();
                     for (float v : d_as->to_host()) r.push_back(v);
                     for (float v : d_ad->to_host()) r.push_back(v);
                     return r;
                   };
                   return op;
                 }});
}

std::vector<OpSpec> op_specs() {
  std::vector<OpSpec> ops;
  const auto nc = [](const HostInputs& in) { return static_cast<double>(in.rows) * kClasses; };
  const auto nh = [](const HostInputs& in) { return static_cast<double>(in.rows) * kHidden; };
  const auto none = [](const HostInputs&) { return 0.0; };

  // The training loss as an epoch runs it: loss, gradient and the gradient's
  // column sums (the last layer's bias gradient) in one op.
  ops.push_back({"fused_classifier_loss", 1e-5,
                 [=](const HostInputs& in) { return nc(in) * 8 + in.rows * 5.0; }, none,
                 [](Backend& be, const HostInputs& in) {
                   OpInstance op;
                   auto x = upload(be, in.logits, op);
                   auto y = upload(be, in.labels, op);
                   auto s = upload(be, in.split, op);
                   auto grad = scratch(be, in.rows * kClasses, op);
                   auto bias_grad = scratch(be, kClasses, op);
                   const StepAndRing sr = step_and_ring(be, op);
                   const int64_t n = in.n_train;
                   op.run = [&be, x, y, s, grad, bias_grad, sr, n, rows = in.rows] {
                     be.classifier_loss({x->data(), rows, kClasses}, y->data(), s->data(), gcn::kTrainBit, n,
                                        {grad->data(), rows, kClasses}, bias_grad->data(), sr.state(), sr.metrics());
                   };
                   op.result = [grad, bias_grad, sr] {
                     std::vector<float> r = grad->to_host();
                     for (float b : bias_grad->to_host()) r.push_back(b);
                     r.push_back(sr.slot().loss);
                     return r;
                   };
                   return op;
                 }});
  // The same with log_softmax, the unfused NLL and a column sum.
  ops.push_back({"unfused_log_softmax_nll_column_sum", 1e-5,
                 [=](const HostInputs& in) { return nc(in) * 20 + in.rows * 5.0; }, none,
                 [](Backend& be, const HostInputs& in) {
                   OpInstance op;
                   auto x = upload(be, in.logits, op);
                   auto y = upload(be, in.labels, op);
                   auto s = upload(be, in.split, op);
                   auto logp = scratch(be, in.rows * kClasses, op);
                   auto grad = scratch(be, in.rows * kClasses, op);
                   auto bias_grad = scratch(be, kClasses, op);
                   auto loss = scratch(be, 1, op);
                   const int64_t n = in.n_train;
                   op.run = [&be, x, y, s, logp, grad, bias_grad, loss, n, rows = in.rows] {
                     be.log_softmax({x->data(), rows, kClasses}, {logp->data(), rows, kClasses});
                     be.bench_ops()->nll_loss({logp->data(), rows, kClasses}, y->data(), s->data(), gcn::kTrainBit,
                                              n, loss->data(), grad->data());
                     be.column_sum({grad->data(), rows, kClasses}, bias_grad->data());
                   };
                   op.result = [grad, bias_grad, loss] {
                     std::vector<float> r = grad->to_host();
                     for (float b : bias_grad->to_host()) r.push_back(b);
                     r.push_back(loss->to_host()[0]);
                     return r;
                   };
                   return op;
                 }});
  // An epoch's evaluation: validation loss, argmax, correct counts, the
  // best-epoch decision.
  ops.push_back({"evaluate", 1e-5, [=](const HostInputs& in) { return nc(in) * 4 + in.rows * 5.0; }, none,
                 [](Backend& be, const HostInputs& in) {
                   OpInstance op;
                   auto x = upload(be, in.logits, op);
                   auto y = upload(be, in.labels, op);
                   auto s = upload(be, in.split, op);
                   const StepAndRing sr = step_and_ring(be, op);
                   const int64_t n_val = std::count_if(in.split.begin(), in.split.end(),
                                                       [](uint8_t b) { return (b & gcn::kValBit) != 0; });
                   op.run = [&be, x, y, s, sr, n_val, rows = in.rows] {
                     be.evaluate({x->data(), rows, kClasses}, y->data(), s->data(), n_val, sr.state(), sr.metrics(),
                                 /*advance=*/false);
                   };
                   op.result = [sr] {
                     const gcn::EpochMetrics m = sr.slot();
                     return std::vector<float>{m.val_loss, static_cast<float>(m.correct[0]),
                                               static_cast<float>(m.correct[1]), static_cast<float>(m.correct[2])};
                   };
                   return op;
                 }});
  ops.push_back({"column_sum", 1e-4, [=](const HostInputs& in) { return nh(in) * 4; }, nh,
                 [](Backend& be, const HostInputs& in) {
                   OpInstance op;
                   auto x = upload(be, in.hidden, op);
                   auto out = scratch(be, kHidden, op);
                   op.run = [&be, x, out, rows = in.rows] { be.column_sum({x->data(), rows, kHidden}, out->data()); };
                   op.result = read(out);
                   return op;
                 }});
  ops.push_back({"relu_dropout_forward", 0.0, [=](const HostInputs& in) { return nh(in) * 8; }, none,
                 [](Backend& be, const HostInputs& in) {
                   OpInstance op;
                   auto x = upload(be, in.hidden, op);
                   auto y = scratch(be, in.rows * kHidden, op);
                   const StepAndRing sr = step_and_ring(be, op);
                   op.run = [&be, x, y, sr, rows = in.rows] {
                     be.relu_dropout_forward({x->data(), rows, kHidden}, {y->data(), rows, kHidden}, 0.5f, sr.state());
                   };
                   op.result = read(y);
                   return op;
                 }});
  // The backward with the previous layer's bias gradient (column sums).
  ops.push_back({"relu_dropout_backward_column_sums", 1e-4, [=](const HostInputs& in) { return nh(in) * 12; }, none,
                 [](Backend& be, const HostInputs& in) {
                   OpInstance op;
                   auto dy = upload(be, in.hidden, op);
                   auto y = upload(be, random_vector(in.rows * kHidden, 11, 1.0f), op);
                   auto dx = scratch(be, in.rows * kHidden, op);
                   auto sums = scratch(be, kHidden, op);
                   op.run = [&be, dy, y, dx, sums, rows = in.rows] {
                     be.relu_dropout_backward({dy->data(), rows, kHidden}, {y->data(), rows, kHidden},
                                              {dx->data(), rows, kHidden}, 0.5f, sums->data());
                   };
                   op.result = [dx, sums] {
                     std::vector<float> r = dx->to_host();
                     for (float v : sums->to_host()) r.push_back(v);
                     return r;
                   };
                   return op;
                 }});
  // Â·H: index and value of each entry, the output, and H read once (gathers hit cache).
  const auto spmm_bytes = [](const gcn::CsrMatrix& a, int64_t cols) {
    return static_cast<double>(a.nnz()) * 8 + (a.n_rows + 1) * 4.0 + (a.n_rows + a.n_cols) * cols * 4.0;
  };
  // Â·H + b, as the first layer's propagation (with its bias).
  ops.push_back({"spmm_adj_x16", 1e-5, [=](const HostInputs& in) { return spmm_bytes(in.adj, kHidden); },
                 [](const HostInputs& in) { return 2.0 * in.adj.nnz() * kHidden; },
                 [](Backend& be, const HostInputs& in) {
                   OpInstance op;
                   std::shared_ptr<gcn::SparseMatrix> a = be.upload_csr(in.adj);
                   op.keep.push_back(a);
                   auto h = upload(be, in.hidden, op);
                   auto out = scratch(be, in.rows * kHidden, op);
                   auto bias = upload(be, random_vector(kHidden, 12, 0.1f), op);
                   op.run = [&be, a, h, out, bias, rows = in.rows] {
                     be.spmm(*a, {h->data(), rows, kHidden}, {out->data(), rows, kHidden}, bias->data());
                   };
                   op.result = read(out);
                   return op;
                 }});
  ops.push_back({"spmm_features_x_w1", 1e-5, [=](const HostInputs& in) { return spmm_bytes(in.features, kHidden); },
                 [](const HostInputs& in) { return 2.0 * in.features.nnz() * kHidden; },
                 [](Backend& be, const HostInputs& in) {
                   OpInstance op;
                   std::shared_ptr<gcn::SparseMatrix> x = be.upload_csr(in.features);
                   op.keep.push_back(x);
                   auto w = upload(be, in.w1, op);
                   auto out = scratch(be, in.rows * kHidden, op);
                   op.run = [&be, x, w, out, rows = in.rows, f = in.features.n_cols] {
                     be.spmm(*x, {w->data(), f, kHidden}, {out->data(), rows, kHidden});
                   };
                   op.result = read(out);
                   return op;
                 }});
  // Xᵀ·G: the first layer's weight gradient, a row per feature (the frequent
  // ones have thousands of entries: the schedule's balance shows here).
  ops.push_back({"spmm_features_t_x16", 1e-4,
                 [=](const HostInputs& in) { return spmm_bytes(in.features_t, kHidden); },
                 [](const HostInputs& in) { return 2.0 * in.features_t.nnz() * kHidden; },
                 [](Backend& be, const HostInputs& in) {
                   OpInstance op;
                   std::shared_ptr<gcn::SparseMatrix> xt = be.upload_csr(in.features_t);
                   op.keep.push_back(xt);
                   auto g = upload(be, in.hidden, op);
                   auto out = scratch(be, static_cast<int64_t>(in.features_t.n_rows) * kHidden, op);
                   op.run = [&be, xt, g, out, rows = in.rows, f = in.features_t.n_rows] {
                     be.spmm(*xt, {g->data(), rows, kHidden}, {out->data(), f, kHidden});
                   };
                   op.result = read(out);
                   return op;
                 }});
  ops.push_back({"gemm_h_w2", 1e-5, [=](const HostInputs& in) { return nh(in) * 4 + nc(in) * 4; },
                 [](const HostInputs& in) { return 2.0 * in.rows * kHidden * kClasses; },
                 [](Backend& be, const HostInputs& in) {
                   OpInstance op;
                   auto h = upload(be, in.hidden, op);
                   auto w = upload(be, in.w2, op);
                   auto out = scratch(be, in.rows * kClasses, op);
                   op.run = [&be, h, w, out, rows = in.rows] {
                     be.gemm({h->data(), rows, kHidden}, false, {w->data(), kHidden, kClasses}, false,
                             {out->data(), rows, kClasses});
                   };
                   op.result = read(out);
                   return op;
                 }});
  ops.push_back({"gemm_weight_grad_ht_g", 1e-4, [=](const HostInputs& in) { return nh(in) * 4 + nc(in) * 4; },
                 [](const HostInputs& in) { return 2.0 * in.rows * kHidden * kClasses; },
                 [](Backend& be, const HostInputs& in) {
                   OpInstance op;
                   auto h = upload(be, in.hidden, op);
                   auto g = upload(be, in.logits, op);
                   auto out = scratch(be, kHidden * kClasses, op);
                   op.run = [&be, h, g, out, rows = in.rows] {
                     be.gemm({h->data(), rows, kHidden}, true, {g->data(), rows, kClasses}, false,
                             {out->data(), kHidden, kClasses});
                   };
                   op.result = read(out);
                   return op;
                 }});
  // ELU + dropout over a GAT hidden layer (8 heads x 8 channels), forward.
  ops.push_back({"elu_dropout_forward_x64", 1e-5,
                 [](const HostInputs& in) { return static_cast<double>(in.rows) * kGatCols * 8; }, none,
                 [](Backend& be, const HostInputs& in) {
                   OpInstance op;
                   const GatHostInputs& g = gat_inputs(in.rows);
                   auto x = upload(be, g.xw, op);
                   auto y = scratch(be, in.rows * kGatCols, op);
                   const StepAndRing sr = step_and_ring(be, op);
                   op.run = [&be, x, y, sr, rows = in.rows] {
                     be.act_dropout_forward(gcn::Activation::kElu, {x->data(), rows, kGatCols},
                                            {y->data(), rows, kGatCols}, 0.6f, sr.state(), 1, false, 1);
                   };
                   op.result = read(y);
                   return op;
                 }});
  // Its backward (the mask recomputed) with the column sums.
  ops.push_back({"elu_dropout_backward_column_sums_x64", 1e-4,
                 [](const HostInputs& in) { return static_cast<double>(in.rows) * kGatCols * 12; }, none,
                 [](Backend& be, const HostInputs& in) {
                   OpInstance op;
                   const GatHostInputs& g = gat_inputs(in.rows);
                   auto dy = upload(be, g.dout, op);
                   auto y = upload(be, g.xw, op);
                   auto dx = scratch(be, in.rows * kGatCols, op);
                   auto sums = scratch(be, kGatCols, op);
                   const StepAndRing sr = step_and_ring(be, op);
                   op.run = [&be, dy, y, dx, sums, sr, rows = in.rows] {
                     be.act_dropout_backward(gcn::Activation::kElu, {dy->data(), rows, kGatCols},
                                             {y->data(), rows, kGatCols}, {dx->data(), rows, kGatCols}, 0.6f,
                                             sr.state(), 1, false, 1, sums->data());
                   };
                   op.result = [dx, sums] {
                     std::vector<float> r = dx->to_host();
                     for (float v : sums->to_host()) r.push_back(v);
                     return r;
                   };
                   return op;
                 }});
  // GATConv as Cora's GAT runs it, 8 heads x 8 channels and 1 head x 7.
  add_gat_ops(ops, kHeads, kHeadChannels);
  add_gat_ops(ops, 1, kClasses);
  // The input features' dropout (X's values, model by model), and Xᵀ's (the
  // same elements) for the weight gradient.
  for (const bool transposed : {false, true}) {
    ops.push_back({transposed ? "sparse_dropout_features_t" : "sparse_dropout_features", 1e-6,
                   [](const HostInputs& in) { return static_cast<double>(in.features.nnz()) * 12; }, none,
                   [transposed](Backend& be, const HostInputs& in) {
                     OpInstance op;
                     const gcn::CsrMatrix& x = transposed ? in.features_t : in.features;
                     auto m = std::shared_ptr<gcn::SparseMatrix>(be.upload_csr(x));
                     op.keep.push_back(m);
                     auto values = scratch(be, x.nnz(), op);
                     const StepAndRing sr = step_and_ring(be, op);
                     op.run = [&be, m, values, sr, transposed] {
                       be.sparse_dropout(*m, transposed, 0.6f, sr.state(), 1, 1, values->data());
                     };
                     op.result = read(values);
                     return op;
                   }});
  }
  // Adam over a parameter vector as large as the hidden activations (the
  // model's own 23k parameters are launch-bound at every size).
  ops.push_back({"adam_step", 1e-5, [=](const HostInputs& in) { return nh(in) * 28; }, none,
                 [](Backend& be, const HostInputs& in) {
                   OpInstance op;
                   const int64_t n = in.rows * kHidden;
                   auto p = upload(be, in.hidden, op);
                   auto g = upload(be, random_vector(n, 9, 0.1f), op);
                   auto m = scratch(be, n, op);
                   auto v = scratch(be, n, op);
                   const StepAndRing sr = step_and_ring(be, op);
                   // Validation compares one step (the first) from the same state.
                   op.run = [&be, p, g, m, v, n, sr] {
                     be.adam_step(p->data(), g->data(), m->data(), v->data(), n, gcn::AdamConfig{}, sr.state());
                   };
                   op.result = read(p);
                   return op;
                 }});
  return ops;
}

// Compares the device's result with the CPU's; "" when they agree.
std::string validate(const OpSpec& spec, const HostInputs& in, Backend& device) {
  OpInstance ref = spec.make(*devices().cpu, in);
  OpInstance got = spec.make(device, in);
  ref.run();
  got.run();
  const std::vector<float> r = ref.result(), g = got.result();
  if (r.size() != g.size()) return fmt::format("{} values, CPU has {}", g.size(), r.size());
  double worst = 0;
  std::size_t at = 0;
  for (std::size_t i = 0; i < r.size(); ++i) {
    const double excess = std::abs(static_cast<double>(g[i]) - r[i]) - spec.tol * (1.0 + std::abs(r[i]));
    if (!(excess <= 0.0) && (excess > worst || std::isnan(excess))) {
      worst = std::isnan(excess) ? INFINITY : excess;
      at = i;
      if (std::isnan(excess)) break;
    }
  }
  if (worst > 0) return fmt::format("mismatch at {}: got {}, CPU {}", at, g[at], r[at]);
  return "";
}

void register_all(const std::vector<std::string>& device_names, int64_t max_rows) {
  for (const OpSpec& spec : op_specs()) {
    for (const std::string& dev : device_names) {
      for (int64_t rows : kRowSizes) {
        if (rows > max_rows) continue;
        const std::string name = fmt::format("{}/{}/rows:{}", spec.name, dev, rows);
        benchmark::RegisterBenchmark(name.c_str(), [spec, dev, rows](benchmark::State& state) {
          Backend& be = dev == "cpu" ? *devices().cpu : *devices().cuda;
          const HostInputs& in = inputs(rows);
          if (dev != "cpu") {
            const std::string why = validate(spec, in, be);
            if (!why.empty()) {
              state.SkipWithError(("validation against the CPU failed: " + why).c_str());
              return;
            }
          }
          OpInstance op = spec.make(be, in);
          op.run();  // warm-up: first-touch, workspaces, lazy library initialisation
          be.synchronize();
          double total_s = 0;
          for (auto _ : state) {
            be.clear_markers();
            const int t0 = be.record_marker();
            op.run();
            const int t1 = be.record_marker();
            const double s = be.elapsed_ms(t0, t1) / 1e3;
            state.SetIterationTime(s);
            total_s += s;
          }
          if (total_s <= 0) return;
          const double runs_per_s = static_cast<double>(state.iterations()) / total_s;
          const double gbs = spec.bytes(in) * runs_per_s / 1e9, gflops = spec.flops(in) * runs_per_s / 1e9;
          state.counters["GBps"] = gbs;
          if (gflops > 0) state.counters["GFLOPps"] = gflops;
          const double peak = known_peak_bandwidth_gbs(be.describe());
          if (peak > 0) state.counters["pct_peak_bw"] = 100.0 * gbs / peak;
          state.counters["rows"] = static_cast<double>(rows);
        })->UseManualTime()->Unit(benchmark::kMicrosecond);
      }
    }
  }
}

// gcn-bench's own flags first, then the Google Benchmark flags that matter
// most here (the library's own --help lists them under the name "benchmark").
void print_help() {
  std::printf(
      "Usage: gcn-bench [--device cpu|cuda|all] [--max-rows N] [--threads N] [--benchmark_*=...]\n"
      "\n"
      "Times every backend op on each device at 2708, 20000, 200000 and 2000000 rows (a Cora-like\n"
      "synthetic graph), each op first validated against the CPU.\n"
      "\n"
      "Options:\n"
      "  --device cpu|cuda|all  devices to time (default all: the CPU, and CUDA when a GPU is usable)\n"
      "  --max-rows N           skip the sizes above N rows (default 2000000; at least 2708)\n"
      "  --threads N            CPU backend threads (default 0: OpenMP's default)\n"
      "  -h, --help             print this help and exit\n"
      "\n"
      "Google Benchmark's flags also apply, for example:\n"
      "  --benchmark_filter=REGEX             time only the benchmarks whose name matches\n"
      "  --benchmark_list_tests=true          list the benchmarks and exit\n"
      "  --benchmark_format=console|json|csv  the report's format on stdout\n"
      "  --benchmark_out=FILE                 also write the report to FILE\n"
      "  --benchmark_out_format=json|console|csv\n"
      "  --benchmark_repetitions=N            repeat each benchmark N times (with mean, median, stddev)\n"
      "  --benchmark_min_time=SECONDS         minimum time per benchmark\n"
      "  --benchmark_counters_tabular=true    counters (GBps, GFLOPps, pct_peak_bw) as columns\n");
}

// A whole decimal integer in [lo, hi], or nothing.
std::optional<int64_t> parse_int(const std::string& text, int64_t lo, int64_t hi) {
  int64_t v = 0;
  const char* end = text.data() + text.size();
  const auto [p, ec] = std::from_chars(text.data(), end, v);
  if (ec != std::errc() || p != end || v < lo || v > hi) return std::nullopt;
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  // Before benchmark::Initialize, which answers --help with its own flags only.
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--help") == 0 || std::strcmp(argv[i], "-h") == 0) {
      print_help();
      return 0;
    }
  }
  benchmark::Initialize(&argc, argv);
  std::string device = "all";
  int64_t max_rows = 2000000;
  int threads = 0;
  constexpr const char* kUsage =
      "gcn-bench [--device cpu|cuda|all] [--max-rows N] [--threads N] [--benchmark_* flags]; "
      "gcn-bench --help";
  for (int i = 1; i < argc; ++i) {
    // --flag VALUE or --flag=VALUE
    std::string a = argv[i];
    std::optional<std::string> inline_value;
    if (const size_t eq = a.find('='); a.rfind("--", 0) == 0 && eq != std::string::npos) {
      inline_value = a.substr(eq + 1);
      a.resize(eq);
    }
    auto value = [&]() -> std::string {
      if (inline_value) return *inline_value;
      if (i + 1 >= argc) {
        std::fprintf(stderr, "gcn-bench: error: %s needs a value (%s)\n", a.c_str(), kUsage);
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--device") {
      device = value();
    } else if (a == "--max-rows") {
      const std::string v = value();
      const auto n = parse_int(v, kRowSizes[0], std::numeric_limits<int64_t>::max());
      if (!n) {
        std::fprintf(stderr, "gcn-bench: error: --max-rows %s: expected a whole number of rows, at least %lld\n",
                     v.c_str(), static_cast<long long>(kRowSizes[0]));
        return 2;
      }
      max_rows = *n;
    } else if (a == "--threads") {
      const std::string v = value();
      const auto n = parse_int(v, 0, 4096);
      if (!n) {
        std::fprintf(stderr, "gcn-bench: error: --threads %s: expected a whole number from 0 to 4096\n",
                     v.c_str());
        return 2;
      }
      threads = static_cast<int>(*n);
    } else {
      std::fprintf(stderr, "gcn-bench: error: unknown option %s (%s)\n", argv[i], kUsage);
      return 2;
    }
  }
  if (device != "cpu" && device != "cuda" && device != "all") {
    std::fprintf(stderr, "gcn-bench: error: --device %s: use cpu, cuda or all\n", device.c_str());
    return 2;
  }
  // The backends go before main returns: the CUDA runtime tears itself down
  // at exit ahead of static objects created before its first call (as
  // devices() is), so a backend destroyed with them would call into a runtime
  // that is unloading.
  struct ReleaseDevices {
    ~ReleaseDevices() {
      devices().cuda.reset();
      devices().cpu.reset();
    }
  } release_devices;
  try {
    devices().cpu = gcn::make_cpu_backend(threads);
    std::vector<std::string> names;
    if (device != "cuda") names.push_back("cpu");
    std::string why;
    if (device != "cpu") {
      if (gcn::cuda_device_count(&why) > 0) {
        devices().cuda = gcn::make_cuda_backend(0);
        names.push_back("cuda");
        benchmark::AddCustomContext("gpu", devices().cuda->describe());
        benchmark::AddCustomContext("gpu_peak_bandwidth_gbs",
                                    fmt::format("{}", known_peak_bandwidth_gbs(devices().cuda->describe())));
      } else if (device == "cuda") {
        std::fprintf(stderr, "gcn-bench: error: --device cuda: %s\n", why.c_str());
        return 1;
      } else {
        std::fprintf(stderr, "gcn-bench: no usable GPU (%s); CPU only\n", why.c_str());
      }
    }
    benchmark::AddCustomContext("cpu_backend", devices().cpu->describe());
    register_all(names, max_rows);
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "gcn-bench: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
