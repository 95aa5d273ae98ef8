#include "gcn/device_graph.hpp"

#include "gcn/graph.hpp"

namespace gcn {

namespace {
bool same_matrix(const CsrMatrix& a, const CsrMatrix& b) {
  return a.indptr == b.indptr && a.indices == b.indices && a.values == b.values;
}
}  // namespace

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
  const CsrMatrix adj = gcn::gcn_norm(data_->n_nodes, data_->edge_src, data_->edge_dst);
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

}  // namespace gcn
