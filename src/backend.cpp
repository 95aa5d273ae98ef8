// The argument checks of every backend op, made once here for all backends:
// the same rules and the same messages on every device. Each message is
// formatted only when its check fails (the checks run on every call).
#include "gcn/backend.hpp"

#include <initializer_list>

#include <fmt/format.h>

#include "gcn/error.hpp"
#include "op_checks.hpp"

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
  do_relu_dropout_forward(x, y, p, step, 1, false);
}

void Backend::batch_relu_dropout_forward(ConstMatRef x, MatRef y, const StepState* steps, int batch) {
  require_same_shape("batch_relu_dropout_forward", x, y);
  require_batch("batch_relu_dropout_forward", batch, {x});
  require(steps != nullptr, "batch_relu_dropout_forward", "no step states");
  require(x.data != y.data || x.size() == 0, "batch_relu_dropout_forward", "the output aliases the input");
  do_relu_dropout_forward(x, y, 0.0f, steps, batch, true);
}

void Backend::relu_dropout_backward(ConstMatRef dy, ConstMatRef y, MatRef dx, float p, float* col_sums) {
  require(dy.size() == y.size() && dx.size() == y.size() && dx.cols == y.cols, "relu_dropout_backward",
          [&] { return shape(dy) + ", " + shape(y) + " -> " + shape(dx); });
  require_dropout("relu_dropout_backward", p);
  do_relu_dropout_backward(dy, y, dx, p, nullptr, 1, false, col_sums);
}

void Backend::batch_relu_dropout_backward(ConstMatRef dy, ConstMatRef y, MatRef dx, const StepState* steps, int batch,
                                          float* col_sums) {
  require(dy.rows == y.rows && dy.cols == y.cols && dx.rows == y.rows && dx.cols == y.cols,
          "batch_relu_dropout_backward", [&] { return shape(dy) + ", " + shape(y) + " -> " + shape(dx); });
  require_batch("batch_relu_dropout_backward", batch, {y});
  require(steps != nullptr, "batch_relu_dropout_backward", "no step states");
  do_relu_dropout_backward(dy, y, dx, 0.0f, steps, batch, true, col_sums);
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
