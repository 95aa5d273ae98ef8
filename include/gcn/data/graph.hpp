// Graph preprocessing shared by every backend.
#pragma once

#include <cstdint>
#include <vector>

#include "gcn/data/csr.hpp"

namespace gcn {

// PyG's gcn_norm(add_self_loops=True, flow="source_to_target") as a CSR matrix
// Â = D^-1/2 (A + I) D^-1/2 whose row i holds the messages into node i:
// Â[i][j] = deg(j)^-1/2 · deg(i)^-1/2 for every edge j -> i (edge_src = j,
// edge_dst = i), plus one self loop of weight 1 per node
// (add_remaining_self_loops: existing self loops collapse into that one).
// deg(i) counts the edges into i, self loop included. Duplicate edges count
// as often as they appear, as in PyG; within a row they are merged into one
// entry with the summed weight.
// With edge weights w (one per edge; empty: all 1) it is PyG's gcn_norm with
// edge_weight: deg(i) sums the weights into i, the entry of j -> i is
// deg(j)^-1/2 · w · deg(i)^-1/2 (0 where a degree is 0), and a node's self
// loop has the weight of its last given self loop, else 1 (PyG's
// add_remaining_self_loops). Degrees and products in double, entries rounded
// to float.
CsrMatrix gcn_norm(int32_t n_nodes, const std::vector<int32_t>& edge_src, const std::vector<int32_t>& edge_dst,
                   const std::vector<float>& edge_weight = {});

// ChebConv's scaled Laplacian L̂ = 2L / λmax − I for normalization="sym"
// (PyG's get_laplacian then ChebConv.__norm__), whose row i holds the
// messages into node i: self loops removed, deg(j) = the edges out of j
// (get_laplacian's degree of edge_index[0]; duplicates count as often as
// they appear), deg^-1/2 = 0 for a node without any (PyG's inf -> 0), and
// L = I − D^-1/2 A D^-1/2, whose largest entry is the diagonal's 1, so
// λmax = 2·1 and L̂ = −D^-1/2 A D^-1/2:
// L̂[i][j] = −Σ_{edges j -> i} deg(j)^-1/2 · deg(i)^-1/2, the diagonal zero
// (not stored). Computed in double, stored as float; duplicates merged
// within a row, columns ascending. Throws gcn::DataError for a node outside
// [0, n_nodes). With edge weights (one per edge; empty: all 1), get_laplacian's:
// deg(j) sums the weights out of j and the entry of j -> i is
// −deg(j)^-1/2 · w · deg(i)^-1/2.
CsrMatrix cheb_laplacian(int32_t n_nodes, const std::vector<int32_t>& edge_src, const std::vector<int32_t>& edge_dst,
                         const std::vector<float>& edge_weight = {});

// The edges of a GATConv layer on the host (Backend's EdgeLists): PyG's
// remove_self_loops then add_self_loops, i.e. the edges j -> i (edge_src = j,
// edge_dst = i) with j != i as given (a duplicate stays a duplicate), plus
// one self loop i -> i per node. Edge order: by target, the edges into each
// node sorted by source (stable: duplicates keep their given order), the
// self loop among them at its source i. Throws gcn::DataError for a node
// outside [0, n_nodes) or more edges than int32 indices reach.
struct AttentionEdgeLists {
  int32_t n_nodes = 0;
  std::vector<int32_t> in_ptr;    // (N + 1) the edges into node i: [in_ptr[i], in_ptr[i + 1])
  std::vector<int32_t> in_src;    // (E) the source of each edge, edge order
  std::vector<int32_t> edge_dst;  // (E) the target of each edge
  std::vector<int32_t> out_ptr;   // (N + 1) the edges out of node j: out_edge[out_ptr[j] .. out_ptr[j + 1])
  std::vector<int32_t> out_edge;  // (E) edge ids grouped by source, ascending within a source
  int64_t n_edges() const { return static_cast<int64_t>(in_src.size()); }
};
AttentionEdgeLists attention_edge_lists(int32_t n_nodes, const std::vector<int32_t>& edge_src,
                                        const std::vector<int32_t>& edge_dst);

}  // namespace gcn
