// The argument checks of every backend op, made once here for all backends:
// the same rules and the same messages on every device. Each message is
// formatted only when its check fails (the checks run on every call).
#include "gcn/backend/backend.hpp"

#include <climits>
#include <initializer_list>

#include <fmt/format.h>

#include "gcn/error.hpp"
#include "backend/op_checks.hpp"

namespace gcn {

using detail::require;
using detail::shape;

namespace {

void require_same_shape(const char* op, ConstMatRef a, ConstMatRef b) {
  require(a.rows == b.rows && a.cols == b.cols, op, [&] { return shape(a) + " -> " + shape(b); });
}

void require_dropout(const char* op, float p) {
  require(p >= 0.0f && p < 1.0f, op, [&] { return fmt::format("p = {} outside [0, 1)", p); });
}

void require_ring(const char* op, MetricsRing ring, const StepState* step) {
  require(step != nullptr, op, "no step state");
  require(ring.slots != nullptr && ring.size >= 1, op, [&] { return fmt::format("a metrics ring of {} slots", ring.size); });
}

// A batch of `batch` models whose column-blocked matrices these are.
void require_batch(const char* op, int batch, std::initializer_list<ConstMatRef> blocked) {
  require(batch >= 1, op, [&] { return fmt::format("a batch of {} models", batch); });
  for (ConstMatRef m : blocked) {
    require(m.cols % batch == 0, op, [&] { return fmt::format("{} is not {} column blocks", shape(m), batch); });
  }
}

void require_blocks(const char* op, const ParamBlocks& blocks, int batch) {
  require(batch >= 1, op, [&] { return fmt::format("a batch of {} models", batch); });
  require(blocks.count >= 0 && blocks.count <= ParamBlocks::kMax, op,
          [&] { return fmt::format("{} parameter blocks (at most {})", blocks.count, ParamBlocks::kMax); });
  for (int b = 0; b < blocks.count; ++b) {
    const ParamBlock& p = blocks.block[b];
    require(p.offset >= 0 && p.rows >= 0 && p.cols >= 0, op, [&] {
      return fmt::format("parameter block {} at {} of ({}, {})", b, p.offset, p.rows, p.cols);
    });
  }
}

// The block of model k of a column-blocked matrix (for shape checks).
ConstMatRef block_shape(ConstMatRef m, int batch) { return ConstMatRef(m.data, m.rows, m.cols / batch); }

void require_activation(const char* op, Activation act) {
  require(act == Activation::kRelu || act == Activation::kElu, op,
          [&] { return fmt::format("unknown activation {}", static_cast<int32_t>(act)); });
}

void require_shape(const char* op, const char* what, ConstMatRef m, int64_t rows, int64_t cols) {
  require(m.rows == rows && m.cols == cols, op,
          [&] { return fmt::format("{} is {}, expected ({}, {})", what, shape(m), rows, cols); });
}

// The edge lists of an attention layer, and xw's channels per head: xw is
// (N, batch · heads · ch) with ch >= 1.
int64_t gat_channels(const char* op, const EdgeLists& g, ConstMatRef xw, int heads, int batch) {
  require(batch >= 1, op, [&] { return fmt::format("a batch of {} models", batch); });
  require(heads >= 1, op, [&] { return fmt::format("{} heads", heads); });
  require(g.n_nodes >= 0 && g.n_edges >= 0 && g.n_edges <= INT32_MAX, op,
          [&] { return fmt::format("edge lists of {} nodes and {} edges", g.n_nodes, g.n_edges); });
  require(g.in_ptr != nullptr && g.out_ptr != nullptr, op, "edge lists without their pointers");
  require(g.n_edges == 0 || (g.in_src != nullptr && g.edge_dst != nullptr && g.out_edge != nullptr), op,
          "edge lists without their edges");
  const int64_t bh = int64_t{batch} * heads;
  require(xw.rows == g.n_nodes && xw.cols >= bh && xw.cols % bh == 0, op, [&] {
    return fmt::format("xw {} for {} nodes and {} heads of {} models", shape(xw), g.n_nodes, heads, batch);
  });
  return xw.cols / bh;
}

void require_distinct(const char* op, std::initializer_list<const void*> outputs,
                      std::initializer_list<const void*> inputs) {
  for (auto o = outputs.begin(); o != outputs.end(); ++o) {
    if (*o == nullptr) continue;
    for (auto q = o + 1; q != outputs.end(); ++q) require(*o != *q, op, "two outputs share memory");
    for (const void* i : inputs) require(*o != i, op, "an output aliases an input");
  }
}

}  // namespace

void Backend::spmm(const SparseMatrix& a, ConstMatRef b, MatRef c, const float* bias, bool prepared) {
  require(a.cols() == b.rows && c.rows == a.rows() && c.cols == b.cols, "spmm",
          [&] { return fmt::format("shapes ({}, {}) x {} -> {}", a.rows(), a.cols(), shape(b), shape(c)); });
  require(c.data != b.data || c.size() == 0, "spmm", "the output aliases the dense operand");
  do_spmm(a, b, c, bias, prepared);
}

void Backend::prepare_outputs(const OutputInit* outputs, int count) {
  require(count >= 0 && count <= kMaxOutputInits, "prepare_outputs",
          [&] { return fmt::format("{} outputs (at most {})", count, kMaxOutputInits); });
  for (int i = 0; i < count; ++i) {
    require(outputs[i].c.rows >= 0 && outputs[i].c.cols >= 0, "prepare_outputs", [&] {
      return fmt::format("output {} has shape {}", i, shape(outputs[i].c));
    });
  }
  do_prepare_outputs(outputs, count);
}

void Backend::gemm(ConstMatRef a, bool trans_a, ConstMatRef b, bool trans_b, MatRef c, int batch) {
  require_batch("gemm", batch, {a, b, c});
  detail::gemm_dims(block_shape(a, batch), trans_a, block_shape(b, batch), trans_b, block_shape(c, batch));
  require(batch == 1 || (c.data != a.data && c.data != b.data) || c.size() == 0, "gemm",
          "a batched output aliases an operand");
  do_gemm(a, trans_a, b, trans_b, c, batch);
}

void Backend::column_sum(ConstMatRef x, float* out) { do_column_sum(x, out); }

void Backend::relu_dropout_forward(ConstMatRef x, MatRef y, float p, const StepState* step) {
  require_same_shape("relu_dropout_forward", x, y);
  require_dropout("relu_dropout_forward", p);
  require(p == 0.0f || step != nullptr, "relu_dropout_forward", "dropout without a step state");
  require(x.data != y.data || x.size() == 0, "relu_dropout_forward", "the output aliases the input");
  do_relu_dropout_forward(Activation::kRelu, x, y, p, step, 1, false, 0);
}

void Backend::batch_relu_dropout_forward(ConstMatRef x, MatRef y, const StepState* steps, int batch) {
  require_same_shape("batch_relu_dropout_forward", x, y);
  require_batch("batch_relu_dropout_forward", batch, {x});
  require(steps != nullptr, "batch_relu_dropout_forward", "no step states");
  require(x.data != y.data || x.size() == 0, "batch_relu_dropout_forward", "the output aliases the input");
  do_relu_dropout_forward(Activation::kRelu, x, y, 0.0f, steps, batch, true, 0);
}

void Backend::relu_dropout_backward(ConstMatRef dy, ConstMatRef y, MatRef dx, float p, float* col_sums) {
  require(dy.size() == y.size() && dx.size() == y.size() && dx.cols == y.cols, "relu_dropout_backward",
          [&] { return shape(dy) + ", " + shape(y) + " -> " + shape(dx); });
  require_dropout("relu_dropout_backward", p);
  do_relu_dropout_backward(Activation::kRelu, dy, y, dx, p, nullptr, 1, false, 0, col_sums);
}

void Backend::batch_relu_dropout_backward(ConstMatRef dy, ConstMatRef y, MatRef dx, const StepState* steps, int batch,
                                          float* col_sums) {
  require(dy.rows == y.rows && dy.cols == y.cols && dx.rows == y.rows && dx.cols == y.cols,
          "batch_relu_dropout_backward", [&] { return shape(dy) + ", " + shape(y) + " -> " + shape(dx); });
  require_batch("batch_relu_dropout_backward", batch, {y});
  require(steps != nullptr, "batch_relu_dropout_backward", "no step states");
  do_relu_dropout_backward(Activation::kRelu, dy, y, dx, 0.0f, steps, batch, true, 0, col_sums);
}

void Backend::act_dropout_forward(Activation act, ConstMatRef x, MatRef y, float p, const StepState* steps, int batch,
                                  bool rates_from_steps, uint32_t site) {
  const char* op = "act_dropout_forward";
  require_activation(op, act);
  require_same_shape(op, x, y);
  require_batch(op, batch, {x});
  if (!rates_from_steps) require_dropout(op, p);
  require(steps != nullptr || (!rates_from_steps && p == 0.0f), op, "dropout without step states");
  require(x.data != y.data || x.size() == 0, op, "the output aliases the input");
  do_relu_dropout_forward(act, x, y, rates_from_steps ? 0.0f : p, steps, batch, rates_from_steps, site);
}

void Backend::act_dropout_backward(Activation act, ConstMatRef dy, ConstMatRef y, MatRef dx, float p,
                                   const StepState* steps, int batch, bool rates_from_steps, uint32_t site,
                                   float* col_sums) {
  const char* op = "act_dropout_backward";
  require_activation(op, act);
  require(dy.rows == y.rows && dy.cols == y.cols && dx.rows == y.rows && dx.cols == y.cols, op,
          [&] { return shape(dy) + ", " + shape(y) + " -> " + shape(dx); });
  require_batch(op, batch, {y});
  if (!rates_from_steps) require_dropout(op, p);
  // The ELU backward recomputes the mask; ReLU's is y > 0, and needs steps
  // only for a batch's rates.
  const bool needs_steps = rates_from_steps || (act == Activation::kElu && p > 0.0f);
  require(steps != nullptr || !needs_steps, op, "dropout without step states");
  do_relu_dropout_backward(act, dy, y, dx, rates_from_steps ? 0.0f : p, steps, batch, rates_from_steps, site,
                           col_sums);
}

void Backend::sparse_dropout(const SparseMatrix& a, bool transposed, float p, const StepState* steps, int batch,
                             uint32_t site, float* values) {
  const char* op = "sparse_dropout";
  require_dropout(op, p);
  require(batch >= 1, op, [&] { return fmt::format("a batch of {} models", batch); });
  require(p == 0.0f || steps != nullptr, op, "dropout without step states");
  require(values != nullptr || a.nnz() == 0, op, "no values");
  do_sparse_dropout(a, transposed, p, steps, batch, site, values);
}

void Backend::spmm_values(const SparseMatrix& a, const float* values, ConstMatRef b, MatRef c, int batch,
                          bool prepared) {
  const char* op = "spmm_values";
  require(a.cols() == b.rows && c.rows == a.rows() && c.cols == b.cols, op,
          [&] { return fmt::format("shapes ({}, {}) x {} -> {}", a.rows(), a.cols(), shape(b), shape(c)); });
  require_batch(op, batch, {b});
  require(values != nullptr || a.nnz() == 0, op, "no values");
  require(c.data != b.data || c.size() == 0, op, "the output aliases the dense operand");
  do_spmm_values(a, values, b, c, batch, prepared);
}

void Backend::gat_attention(const EdgeLists& g, ConstMatRef xw, const float* att_src, const float* att_dst, int heads,
                            MatRef s_src, MatRef s_dst, MatRef alpha, int batch) {
  const char* op = "gat_attention";
  gat_channels(op, g, xw, heads, batch);
  const int64_t bh = int64_t{batch} * heads;
  require_shape(op, "s_src", s_src, g.n_nodes, bh);
  require_shape(op, "s_dst", s_dst, g.n_nodes, bh);
  require_shape(op, "alpha", alpha, g.n_edges, bh);
  require(att_src != nullptr && att_dst != nullptr, op, "no attention parameters");
  require_distinct(op, {s_src.data, s_dst.data, alpha.data}, {xw.data, att_src, att_dst});
  do_gat_attention(g, xw, att_src, att_dst, heads, s_src, s_dst, alpha, batch);
}

void Backend::gat_aggregate(const EdgeLists& g, ConstMatRef alpha, ConstMatRef xw, int heads, const float* bias,
                            MatRef out, float p, const StepState* steps, uint32_t site, int batch) {
  const char* op = "gat_aggregate";
  gat_channels(op, g, xw, heads, batch);
  require_shape(op, "alpha", alpha, g.n_edges, int64_t{batch} * heads);
  require_shape(op, "out", out, xw.rows, xw.cols);
  require_dropout(op, p);
  require(p == 0.0f || steps != nullptr, op, "dropout without step states");
  require_distinct(op, {out.data}, {xw.data, alpha.data, bias});
  do_gat_aggregate(g, alpha, xw, heads, bias, out, p, steps, site, batch);
}

void Backend::gat_backward(const EdgeLists& g, ConstMatRef dout, ConstMatRef xw, const float* att_src,
                           const float* att_dst, ConstMatRef s_src, ConstMatRef s_dst, ConstMatRef alpha, int heads,
                           float p, const StepState* steps, uint32_t site, MatRef dxw, float* d_att_src,
                           float* d_att_dst, MatRef d_alpha, MatRef ds_src, MatRef ds_dst, int batch) {
  const char* op = "gat_backward";
  gat_channels(op, g, xw, heads, batch);
  const int64_t bh = int64_t{batch} * heads;
  require_shape(op, "dout", dout, xw.rows, xw.cols);
  require_shape(op, "dxw", dxw, xw.rows, xw.cols);
  require_shape(op, "s_src", s_src, g.n_nodes, bh);
  require_shape(op, "s_dst", s_dst, g.n_nodes, bh);
  require_shape(op, "alpha", alpha, g.n_edges, bh);
  require_shape(op, "d_alpha", d_alpha, g.n_edges, bh);
  require_shape(op, "ds_src", ds_src, g.n_nodes, bh);
  require_shape(op, "ds_dst", ds_dst, g.n_nodes, bh);
  require(att_src != nullptr && att_dst != nullptr, op, "no attention parameters");
  require(d_att_src != nullptr && d_att_dst != nullptr, op, "no attention gradients");
  require_dropout(op, p);
  require(p == 0.0f || steps != nullptr, op, "dropout without step states");
  require_distinct(op, {dxw.data, d_att_src, d_att_dst, d_alpha.data, ds_src.data, ds_dst.data},
                   {dout.data, xw.data, att_src, att_dst, s_src.data, s_dst.data, alpha.data});
  do_gat_backward(g, dout, xw, att_src, att_dst, s_src, s_dst, alpha, heads, p, steps, site, dxw, d_att_src, d_att_dst,
                  d_alpha, ds_src, ds_dst, batch);
}

void Backend::log_softmax(ConstMatRef x, MatRef y) {
  require_same_shape("log_softmax", x, y);
  do_log_softmax(x, y);
}

void Backend::classifier_loss(ConstMatRef logits, const int32_t* labels, const uint8_t* split, uint8_t mask_bit,
                              int64_t n_masked, MatRef grad, float* bias_grad, const StepState* step,
                              MetricsRing ring, int batch) {
  require_batch("classifier_loss", batch, {logits});
  require(n_masked >= 0 && n_masked <= logits.rows, "classifier_loss",
          [&] { return fmt::format("n_masked = {} for {} rows", n_masked, logits.rows); });
  require(logits.cols >= batch && logits.cols <= (int64_t{1} << 30), "classifier_loss",
          [&] { return fmt::format("{} classes", logits.cols); });
  require(grad.data == nullptr || (grad.rows == logits.rows && grad.cols == logits.cols), "classifier_loss",
          [&] { return shape(logits) + " -> gradient " + shape(grad); });
  require(grad.data == nullptr || grad.data != logits.data, "classifier_loss", "the gradient aliases the logits");
  require(bias_grad == nullptr || grad.data != nullptr, "classifier_loss", "a bias gradient needs the gradient");
  require_ring("classifier_loss", ring, step);
  do_classifier_loss(logits, labels, split, mask_bit, n_masked, grad, bias_grad, step, ring, batch);
}

void Backend::evaluate(ConstMatRef logits, const int32_t* labels, const uint8_t* split, int64_t n_val,
                       StepState* step, MetricsRing ring, bool advance, int batch) {
  require_batch("evaluate", batch, {logits});
  require(n_val >= 0 && n_val <= logits.rows, "evaluate",
          [&] { return fmt::format("n_val = {} for {} rows", n_val, logits.rows); });
  require(logits.cols >= batch && logits.cols <= (int64_t{1} << 30), "evaluate",
          [&] { return fmt::format("{} classes", logits.cols); });
  require_ring("evaluate", ring, step);
  do_evaluate(logits, labels, split, n_val, step, ring, advance, batch);
}

void Backend::adam_step(float* params, const float* grads, float* m, float* v, int64_t n, const AdamConfig& config,
                        const StepState* step) {
  require(n >= 0, "adam_step", [&] { return fmt::format("n = {}", n); });
  require(step != nullptr, "adam_step", "no step state");
  ParamBlocks one;
  one.count = 1;
  one.block[0] = ParamBlock{0, n, 1};
  do_adam_step(params, grads, m, v, one, config, step, 1, false);
}

void Backend::batch_adam_step(float* params, const float* grads, float* m, float* v, const ParamBlocks& blocks,
                              const AdamConfig& config, const StepState* steps, int batch) {
  require_blocks("batch_adam_step", blocks, batch);
  require(steps != nullptr, "batch_adam_step", "no step states");
  do_adam_step(params, grads, m, v, blocks, config, steps, batch, true);
}

void Backend::batch_copy_if_improved(float* dst, const float* src, const ParamBlocks& blocks, const StepState* steps,
                                     int batch) {
  require_blocks("batch_copy_if_improved", blocks, batch);
  require(steps != nullptr, "batch_copy_if_improved", "no step states");
  do_batch_copy_if_improved(dst, src, blocks, steps, batch);
}

void Backend::copy_if_improved(void* dst, const void* src, std::size_t bytes, const StepState* step) {
  require(step != nullptr, "copy_if_improved", "no step state");
  do_copy_if_improved(dst, src, bytes, step);
}

std::unique_ptr<Recording> Backend::record(const std::function<void()>& /*body*/) { return nullptr; }

}  // namespace gcn
