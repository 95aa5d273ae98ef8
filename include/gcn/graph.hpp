// Graph preprocessing shared by every backend.
#pragma once

#include <cstdint>
#include <vector>

#include "gcn/csr.hpp"

namespace gcn {

// PyG's gcn_norm(add_self_loops=True, flow="source_to_target") as a CSR matrix
// Â = D^-1/2 (A + I) D^-1/2 whose row i holds the messages into node i:
// Â[i][j] = deg(j)^-1/2 · deg(i)^-1/2 for every edge j -> i (edge_src = j,
// edge_dst = i), plus one self loop of weight 1 per node
// (add_remaining_self_loops: existing self loops collapse into that one).
// deg(i) counts the edges into i, self loop included. Duplicate edges count
// as often as they appear, as in PyG; within a row they are merged into one
// entry with the summed weight.
CsrMatrix gcn_norm(int32_t n_nodes, const std::vector<int32_t>& edge_src,
                   const std::vector<int32_t>& edge_dst);

}  // namespace gcn
