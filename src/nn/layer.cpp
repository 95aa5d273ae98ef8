// The planner and the training rows that layers plan against (gcn/nn/layer.hpp).
#include "gcn/nn/layer.hpp"

#include <fmt/format.h>

#include "gcn/data/graph.hpp"
#include "gcn/error.hpp"

namespace gcn {

int64_t Planner::add_param(int64_t rows, int64_t cols) {
  const int64_t offset = n_params_ * batch_;
  if (blocks_.count == ParamBlocks::kMax) throw Error("model: more parameter tensors than ParamBlocks holds");
  blocks_.block[blocks_.count++] = ParamBlock{offset, rows, cols};
  shapes_.emplace_back(rows, cols);
  n_params_ += rows * cols;
  return offset;
}

Workspace::Id Planner::constant(const std::string& name, int64_t rows, int64_t cols, std::vector<float> host) {
  if (static_cast<int64_t>(host.size()) != rows * cols) {
    throw Error(fmt::format("model: constant {} of {} values for ({}, {})", name, host.size(), rows, cols));
  }
  const Workspace::Id id = ws_.add(name, rows, cols);
  constants_.push_back({id, std::move(host)});
  return id;
}

const CsrMatrix& TrainingRows::adj() {
  if (!adj_) adj_ = gcn_norm(graph_.dataset().n_nodes, graph_.dataset().edge_src, graph_.dataset().edge_dst,
                              graph_.dataset().edge_weight);
  return *adj_;
}

const CsrMatrix& TrainingRows::adj_t() {
  if (!adj_t_) adj_t_ = adj().transposed();
  return *adj_t_;
}

const CsrMatrix& TrainingRows::x_t() {
  if (!x_t_) x_t_ = graph_.dataset().features.transposed();
  return *x_t_;
}

std::string TrainingRows::key(const std::string& what, const RowMask& mask) {
  uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a over the mask
  for (uint8_t b : mask) h = (h ^ b) * 0x100000001b3ull;
  return fmt::format("{}/{:016x}", what, h);
}

RowMask Layer::plan_training_rows(TrainingRows&, const RowMask*, const RowMask& grad_out_rows) {
  return RowMask(grad_out_rows.size(), 1);  // not restricted
}

}  // namespace gcn
