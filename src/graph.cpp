#include "gcn/graph.hpp"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "gcn/error.hpp"

namespace gcn {

CsrMatrix gcn_norm(int32_t n_nodes, const std::vector<int32_t>& edge_src,
                   const std::vector<int32_t>& edge_dst) {
  if (edge_src.size() != edge_dst.size()) {
    throw DataError(fmt::format("gcn_norm: {} sources but {} targets", edge_src.size(), edge_dst.size()));
  }
  const std::size_t n_edges = edge_src.size();
  std::vector<double> deg(static_cast<std::size_t>(n_nodes), 1.0);  // the self loop
  std::vector<int32_t> count(static_cast<std::size_t>(n_nodes) + 1, 0);
  for (std::size_t e = 0; e < n_edges; ++e) {
    const int32_t s = edge_src[e], d = edge_dst[e];
    if (s < 0 || s >= n_nodes || d < 0 || d >= n_nodes) {
      throw DataError(fmt::format("gcn_norm: edge {} ({} -> {}) outside [0, {})", e, s, d, n_nodes));
    }
    if (s == d) continue;
    deg[d] += 1.0;
    ++count[d + 1];
  }
  std::vector<double> inv_sqrt(deg.size());
  for (std::size_t i = 0; i < deg.size(); ++i) inv_sqrt[i] = 1.0 / std::sqrt(deg[i]);

  // Bucket the edges by target (plus the self loop), then sort each row by source.
  std::vector<int64_t> start(static_cast<std::size_t>(n_nodes) + 1, 0);
  for (int32_t i = 0; i < n_nodes; ++i) start[i + 1] = start[i] + count[i + 1] + 1;
  std::vector<int32_t> src(static_cast<std::size_t>(start[n_nodes]));
  std::vector<int64_t> fill(start.begin(), start.end() - 1);
  for (int32_t i = 0; i < n_nodes; ++i) src[fill[i]++] = i;
  for (std::size_t e = 0; e < n_edges; ++e) {
    if (edge_src[e] != edge_dst[e]) src[fill[edge_dst[e]]++] = edge_src[e];
  }

  CsrMatrix a;
  a.n_rows = a.n_cols = n_nodes;
  a.indptr.assign(static_cast<std::size_t>(n_nodes) + 1, 0);
  a.indices.reserve(src.size());
  a.values.reserve(src.size());
  for (int32_t i = 0; i < n_nodes; ++i) {
    std::sort(src.begin() + start[i], src.begin() + start[i + 1]);
    for (int64_t k = start[i]; k < start[i + 1]; ++k) {
      const int32_t j = src[k];
      const auto w = static_cast<float>(inv_sqrt[j] * inv_sqrt[i]);
      if (!a.indices.empty() && static_cast<int64_t>(a.indices.size()) > a.indptr[i] && a.indices.back() == j) {
        a.values.back() += w;  // a duplicate edge
      } else {
        a.indices.push_back(j);
        a.values.push_back(w);
      }
    }
    a.indptr[i + 1] = static_cast<int32_t>(a.indices.size());
  }
  return a;
}

}  // namespace gcn
