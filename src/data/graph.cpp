#include "gcn/data/graph.hpp"

#include <algorithm>
#include <climits>
#include <cmath>

#include <fmt/format.h>

#include "gcn/error.hpp"

namespace gcn {

CsrMatrix gcn_norm(int32_t n_nodes, const std::vector<int32_t>& edge_src, const std::vector<int32_t>& edge_dst,
                   const std::vector<float>& edge_weight) {
  if (edge_src.size() != edge_dst.size() || (!edge_weight.empty() && edge_weight.size() != edge_src.size())) {
    throw DataError(fmt::format("gcn_norm: {} sources, {} targets, {} weights", edge_src.size(), edge_dst.size(),
                                edge_weight.size()));
  }
  const bool weighted = !edge_weight.empty();
  const std::size_t n_edges = edge_src.size();
  std::vector<double> loop(static_cast<std::size_t>(n_nodes), 1.0);  // each node's self loop weight
  std::vector<int32_t> count(static_cast<std::size_t>(n_nodes) + 1, 0);
  for (std::size_t e = 0; e < n_edges; ++e) {
    const int32_t s = edge_src[e], d = edge_dst[e];
    if (s < 0 || s >= n_nodes || d < 0 || d >= n_nodes) {
      throw DataError(fmt::format("gcn_norm: edge {} ({} -> {}) outside [0, {})", e, s, d, n_nodes));
    }
    if (s == d) {
      if (weighted) loop[d] = edge_weight[e];
      continue;
    }
    ++count[d + 1];
  }
  std::vector<double> deg = loop;
  for (std::size_t e = 0; e < n_edges; ++e) {
    if (edge_src[e] != edge_dst[e]) deg[edge_dst[e]] += weighted ? edge_weight[e] : 1.0;
  }
  std::vector<double> inv_sqrt(deg.size());
  for (std::size_t i = 0; i < deg.size(); ++i) inv_sqrt[i] = deg[i] > 0.0 ? 1.0 / std::sqrt(deg[i]) : 0.0;

  // Bucket the edges by target (plus the self loop), then sort each row by source.
  std::vector<int64_t> start(static_cast<std::size_t>(n_nodes) + 1, 0);
  for (int32_t i = 0; i < n_nodes; ++i) start[i + 1] = start[i] + count[i + 1] + 1;
  // (source, weight) of each entry; sorted by source (stable: duplicates keep their order).
  std::vector<std::pair<int32_t, double>> src(static_cast<std::size_t>(start[n_nodes]));
  std::vector<int64_t> fill(start.begin(), start.end() - 1);
  for (int32_t i = 0; i < n_nodes; ++i) src[fill[i]++] = {i, loop[i]};
  for (std::size_t e = 0; e < n_edges; ++e) {
    if (edge_src[e] != edge_dst[e]) src[fill[edge_dst[e]]++] = {edge_src[e], weighted ? edge_weight[e] : 1.0};
  }

  CsrMatrix a;
  a.n_rows = a.n_cols = n_nodes;
  a.indptr.assign(static_cast<std::size_t>(n_nodes) + 1, 0);
  a.indices.reserve(src.size());
  a.values.reserve(src.size());
  for (int32_t i = 0; i < n_nodes; ++i) {
    std::stable_sort(src.begin() + start[i], src.begin() + start[i + 1],
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    for (int64_t k = start[i]; k < start[i + 1]; ++k) {
      const int32_t j = src[k].first;
      // Unweighted, the weight 1 changes no bit of the product.
      const auto w = static_cast<float>(inv_sqrt[j] * src[k].second * inv_sqrt[i]);
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

CsrMatrix cheb_laplacian(int32_t n_nodes, const std::vector<int32_t>& edge_src, const std::vector<int32_t>& edge_dst,
                         const std::vector<float>& edge_weight) {
  if (edge_src.size() != edge_dst.size() || (!edge_weight.empty() && edge_weight.size() != edge_src.size())) {
    throw DataError(fmt::format("cheb_laplacian: {} sources, {} targets, {} weights", edge_src.size(),
                                edge_dst.size(), edge_weight.size()));
  }
  if (n_nodes < 0) throw DataError(fmt::format("cheb_laplacian: {} nodes", n_nodes));
  const auto n = static_cast<std::size_t>(n_nodes);
  std::vector<double> deg(n, 0.0);
  std::vector<std::vector<std::pair<int32_t, double>>> into(n);  // (source, weight) of the edges into each node
  for (std::size_t e = 0; e < edge_src.size(); ++e) {
    const int32_t s = edge_src[e], d = edge_dst[e];
    if (s < 0 || s >= n_nodes || d < 0 || d >= n_nodes) {
      throw DataError(fmt::format("cheb_laplacian: edge {} ({} -> {}) outside [0, {})", e, s, d, n_nodes));
    }
    if (s == d) continue;  // remove_self_loops
    const double w = edge_weight.empty() ? 1.0 : edge_weight[e];
    deg[static_cast<std::size_t>(s)] += w;
    into[static_cast<std::size_t>(d)].push_back({s, w});
  }
  std::vector<double> inv_sqrt(n, 0.0);
  for (std::size_t i = 0; i < n; ++i) inv_sqrt[i] = deg[i] > 0.0 ? 1.0 / std::sqrt(deg[i]) : 0.0;
  CsrMatrix l;
  l.n_rows = l.n_cols = n_nodes;
  l.indptr.assign(1, 0);
  for (std::size_t i = 0; i < n; ++i) {
    std::vector<std::pair<int32_t, double>>& src = into[i];
    std::stable_sort(src.begin(), src.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    for (std::size_t k = 0; k < src.size();) {
      const int32_t j = src[k].first;
      double v = 0.0;
      // (weight 1: the same bits as the unweighted product)
      for (; k < src.size() && src[k].first == j; ++k) v -= inv_sqrt[static_cast<std::size_t>(j)] * src[k].second * inv_sqrt[i];
      l.indices.push_back(j);
      l.values.push_back(static_cast<float>(v));
    }
    if (l.indices.size() > static_cast<std::size_t>(INT32_MAX)) {
      throw DataError(fmt::format("cheb_laplacian: more than {} entries", INT32_MAX));
    }
    l.indptr.push_back(static_cast<int32_t>(l.indices.size()));
  }
  return l;
}

AttentionEdgeLists attention_edge_lists(int32_t n_nodes, const std::vector<int32_t>& edge_src,
                                        const std::vector<int32_t>& edge_dst) {
  if (edge_src.size() != edge_dst.size()) {
    throw DataError(
        fmt::format("attention_edge_lists: {} sources but {} targets", edge_src.size(), edge_dst.size()));
  }
  if (n_nodes < 0) throw DataError(fmt::format("attention_edge_lists: {} nodes", n_nodes));
  const auto n = static_cast<std::size_t>(n_nodes);
  // Edges into each node: its self loop plus the others.
  std::vector<int64_t> count(n + 1, 0);
  for (std::size_t e = 0; e < edge_src.size(); ++e) {
    const int32_t s = edge_src[e], d = edge_dst[e];
    if (s < 0 || s >= n_nodes || d < 0 || d >= n_nodes) {
      throw DataError(fmt::format("attention_edge_lists: edge {} ({} -> {}) outside [0, {})", e, s, d, n_nodes));
    }
    if (s != d) ++count[static_cast<std::size_t>(d) + 1];
  }
  int64_t total = 0;
  for (std::size_t i = 0; i < n; ++i) total += count[i + 1] + 1;
  if (total > INT32_MAX) {
    throw DataError(fmt::format("attention_edge_lists: {} edges with self loops (at most {})", total, INT32_MAX));
  }

  AttentionEdgeLists out;
  out.n_nodes = n_nodes;
  out.in_ptr.assign(n + 1, 0);
  for (std::size_t i = 0; i < n; ++i) out.in_ptr[i + 1] = out.in_ptr[i] + static_cast<int32_t>(count[i + 1] + 1);
  out.in_src.assign(static_cast<std::size_t>(total), 0);
  out.edge_dst.assign(static_cast<std::size_t>(total), 0);
  std::vector<int32_t> fill(out.in_ptr.begin(), out.in_ptr.end() - 1);
  for (int32_t i = 0; i < n_nodes; ++i) out.in_src[static_cast<std::size_t>(fill[i]++)] = i;
  for (std::size_t e = 0; e < edge_src.size(); ++e) {
    if (edge_src[e] != edge_dst[e]) out.in_src[static_cast<std::size_t>(fill[edge_dst[e]]++)] = edge_src[e];
  }
  for (int32_t i = 0; i < n_nodes; ++i) {
    std::stable_sort(out.in_src.begin() + out.in_ptr[i], out.in_src.begin() + out.in_ptr[i + 1]);
    std::fill(out.edge_dst.begin() + out.in_ptr[i], out.edge_dst.begin() + out.in_ptr[i + 1], i);
  }

  // The same edges by source: a counting sort of the edge ids, ascending.
  out.out_ptr.assign(n + 1, 0);
  for (const int32_t s : out.in_src) ++out.out_ptr[static_cast<std::size_t>(s) + 1];
  for (std::size_t j = 0; j < n; ++j) out.out_ptr[j + 1] += out.out_ptr[j];
  out.out_edge.assign(static_cast<std::size_t>(total), 0);
  std::vector<int32_t> next(out.out_ptr.begin(), out.out_ptr.end() - 1);
  for (int32_t e = 0; e < static_cast<int32_t>(total); ++e) {
    out.out_edge[static_cast<std::size_t>(next[out.in_src[static_cast<std::size_t>(e)]]++)] = e;
  }
  return out;
}

}  // namespace gcn
