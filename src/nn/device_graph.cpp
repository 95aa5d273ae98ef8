#include "gcn/nn/device_graph.hpp"

#include "gcn/data/graph.hpp"

namespace gcn {

namespace {
bool same_matrix(const CsrMatrix& a, const CsrMatrix& b) {
  return a.indptr == b.indptr && a.indices == b.indices && a.values == b.values;
}
}  // namespace

RowMask rows_reaching(const CsrMatrix& m, const RowMask& cols) {
  RowMask out(static_cast<std::size_t>(m.n_rows), 0);
  for (int32_t i = 0; i < m.n_rows; ++i) {
    for (int32_t e = m.indptr[i]; e < m.indptr[i + 1] && out[i] == 0; ++e) out[i] = cols[m.indices[e]];
  }
  return out;
}

CsrMatrix keep_rows(const CsrMatrix& m, const RowMask& rows) {
  CsrMatrix out;
  out.n_rows = m.n_rows;
  out.n_cols = m.n_cols;
  out.indptr.assign(1, 0);
  for (int32_t i = 0; i < m.n_rows; ++i) {
    if (rows[i] != 0) {
      out.indices.insert(out.indices.end(), m.indices.begin() + m.indptr[i], m.indices.begin() + m.indptr[i + 1]);
      out.values.insert(out.values.end(), m.values.begin() + m.indptr[i], m.values.begin() + m.indptr[i + 1]);
    }
    out.indptr.push_back(static_cast<int32_t>(out.indices.size()));
  }
  return out;
}

CsrMatrix keep_columns(const CsrMatrix& m, const RowMask& cols) {
  CsrMatrix out;
  out.n_rows = m.n_rows;
  out.n_cols = m.n_cols;
  out.indptr.assign(1, 0);
  for (int32_t i = 0; i < m.n_rows; ++i) {
    for (int32_t e = m.indptr[i]; e < m.indptr[i + 1]; ++e) {
      if (cols[m.indices[e]] == 0) continue;
      out.indices.push_back(m.indices[e]);
      out.values.push_back(m.values[e]);
    }
    out.indptr.push_back(static_cast<int32_t>(out.indices.size()));
  }
  return out;
}

DeviceGraph::DeviceGraph(Backend& backend, const Dataset& data)
    : backend_(&backend),
      data_(&data),
      n_train_(data.count(kTrainBit)),
      n_val_(data.count(kValBit)),
      n_test_(data.count(kTestBit)) {
  x_ = backend.upload_csr(data.features);
  x_t_ = backend.upload_csr(data.features.transposed());
  labels_ = Buffer<int32_t>(backend, data.labels);
  split_ = Buffer<uint8_t>(backend, data.split);
  uploads_ = 4;
}

const EdgeSet& DeviceGraph::gcn_norm() const {
  auto it = edges_.find("gcn_norm");
  if (it != edges_.end()) return it->second;
  const CsrMatrix adj = gcn::gcn_norm(data_->n_nodes, data_->edge_src, data_->edge_dst, data_->edge_weight);
  const CsrMatrix adj_t = adj.transposed();
  EdgeSet set;
  set.forward = backend_->upload_csr(adj);
  ++uploads_;
  if (!same_matrix(adj, adj_t)) {
    set.transpose = backend_->upload_csr(adj_t);
    ++uploads_;
  }
  return edges_.emplace("gcn_norm", std::move(set)).first->second;
}

const SparseMatrix& DeviceGraph::derived(const std::string& key, const std::function<CsrMatrix()>& make) const {
  auto it = derived_.find(key);
  if (it == derived_.end()) {
    it = derived_.emplace(key, backend_->upload_csr(make())).first;
    ++uploads_;
  }
  return *it->second;
}

RowMask DeviceGraph::train_rows() const {
  RowMask mask(static_cast<std::size_t>(data_->n_nodes), 0);
  for (int32_t i = 0; i < data_->n_nodes; ++i) mask[i] = (data_->split[i] & kTrainBit) != 0 ? 1 : 0;
  return mask;
}

// ---- attention_edges --------------------------------------------------------

const EdgeLists& DeviceGraph::attention_edges() const {
  if (attention_built_) return attention_;
  const AttentionEdgeLists host = attention_edge_lists(data_->n_nodes, data_->edge_src, data_->edge_dst);
  att_in_ptr_ = Buffer<int32_t>(*backend_, host.in_ptr);
  att_in_src_ = Buffer<int32_t>(*backend_, host.in_src);
  att_edge_dst_ = Buffer<int32_t>(*backend_, host.edge_dst);
  att_out_ptr_ = Buffer<int32_t>(*backend_, host.out_ptr);
  att_out_edge_ = Buffer<int32_t>(*backend_, host.out_edge);
  uploads_ += 5;
  attention_.n_nodes = host.n_nodes;
  attention_.n_edges = host.n_edges();
  attention_.in_ptr = att_in_ptr_.data();
  attention_.in_src = att_in_src_.data();
  attention_.edge_dst = att_edge_dst_.data();
  attention_.out_ptr = att_out_ptr_.data();
  attention_.out_edge = att_out_edge_.data();
  attention_built_ = true;
  return attention_;
}

}  // namespace gcn
