// The graph's data on a backend: uploaded once per process and shared by
// every run of --runs (and, later, every model of a batch). Layers read it;
// none writes it.
//
// Edge values live beside the structure: each kind of propagation (GCN's
// symmetric normalisation today; GraphSAGE's 1/deg or GAT's attention later)
// is a named edge set, built from the dataset the first time a layer asks
// for it (while a model is planned, never inside an epoch) and kept.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <vector>
#include <memory>
#include <string>

#include "gcn/backend/backend.hpp"
#include "gcn/backend/buffer.hpp"
#include "gcn/data/dataset.hpp"

namespace gcn {

// A propagation matrix and its transpose (for the backward pass).
struct EdgeSet {
  std::unique_ptr<SparseMatrix> forward;    // (N, N): row i holds the messages into node i
  std::unique_ptr<SparseMatrix> transpose;  // null when the matrix is symmetric
  const SparseMatrix& backward() const { return transpose ? *transpose : *forward; }
};

// A set of rows (nodes) as a mask, and what the products of a training pass
// derive from it.
using RowMask = std::vector<uint8_t>;
// The rows of m with at least one entry in a column of `cols`.
RowMask rows_reaching(const CsrMatrix& m, const RowMask& cols);
// m with only the rows in `rows` (the others empty).
CsrMatrix keep_rows(const CsrMatrix& m, const RowMask& rows);
// m with only the entries whose column is in `cols`.
CsrMatrix keep_columns(const CsrMatrix& m, const RowMask& cols);

class DeviceGraph {
 public:
  // Uploads features, labels and split; the dataset must outlive the graph
  // (edge sets are built from it on first use).
  DeviceGraph(Backend& backend, const Dataset& data);
  DeviceGraph(const DeviceGraph&) = delete;
  DeviceGraph& operator=(const DeviceGraph&) = delete;

  Backend& backend() const { return *backend_; }
  const Dataset& dataset() const { return *data_; }
  int64_t n_nodes() const { return data_->n_nodes; }
  int32_t n_features() const { return data_->n_features; }
  int32_t n_classes() const { return data_->n_classes; }
  int32_t n_train() const { return n_train_; }
  int32_t n_val() const { return n_val_; }
  int32_t n_test() const { return n_test_; }

  const SparseMatrix& features() const { return *x_; }            // X (N, F)
  const SparseMatrix& features_t() const { return *x_t_; }        // Xᵀ (F, N)
  const int32_t* labels() const { return labels_.data(); }        // (N)
  const uint8_t* split() const { return split_.data(); }          // (N) SplitBit flags

  // PyG's gcn_norm with self loops: Â = D^-1/2 (A + I) D^-1/2.
  const EdgeSet& gcn_norm() const;
  // GATConv's edges (the graph's without self loops, plus one self loop per
  // node; Backend's EdgeLists), built and uploaded on first use.
  const EdgeLists& attention_edges() const;
  // A matrix derived from the graph's (a restricted copy, see model.cpp),
  // uploaded the first time `key` is asked for and kept.
  const SparseMatrix& derived(const std::string& key, const std::function<CsrMatrix()>& make) const;
  // The training rows as a mask.
  RowMask train_rows() const;

  // Number of uploads of graph data since construction (features, labels,
  // split, each edge set): tests check that runs share one upload.
  int uploads() const { return uploads_; }

 private:
  Backend* backend_;
  const Dataset* data_;
  int32_t n_train_, n_val_, n_test_;
  std::unique_ptr<SparseMatrix> x_, x_t_;
  Buffer<int32_t> labels_;
  Buffer<uint8_t> split_;
  mutable std::map<std::string, EdgeSet> edges_;
  mutable std::map<std::string, std::unique_ptr<SparseMatrix>> derived_;
  // attention_edges(): the arrays its EdgeLists points into, once built.
  mutable Buffer<int32_t> att_in_ptr_, att_in_src_, att_edge_dst_, att_out_ptr_, att_out_edge_;
  mutable EdgeLists attention_;
  mutable bool attention_built_ = false;
  mutable int uploads_ = 0;
};

}  // namespace gcn
