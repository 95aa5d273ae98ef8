// ARMAConv's propagation matrix (arma.cpp), exposed for tests/test_appnp_arma.cpp.
#pragma once

#include <cstdint>
#include <vector>

#include "gcn/data/csr.hpp"

namespace gcn {

// PyG's gcn_norm(add_self_loops=False), as ARMAConv calls it: Ã = D^-1/2 A
// D^-1/2 with row i holding the messages into node i, Ã[i][j] = deg(j)^-1/2
// · deg(i)^-1/2 for every edge j -> i, deg(i) the number of edges into i
// (every listed edge counts: a self loop as one edge, a duplicate twice,
// merged into one entry of the summed weight); a node with no in-edges has
// deg^-1/2 = 0 (PyG's masked inf), so its out-edges weigh 0. Computed in
// double, rounded to float once. DataError for a node outside [0, n).
// With edge weights (one per edge; empty: all 1): deg(i) sums the weights
// into i and the entry of j -> i is deg(j)^-1/2 · w · deg(i)^-1/2.
CsrMatrix arma_norm(int32_t n_nodes, const std::vector<int32_t>& edge_src, const std::vector<int32_t>& edge_dst,
                    const std::vector<float>& edge_weight = {});

}  // namespace gcn
