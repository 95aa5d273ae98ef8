// A node-classification dataset as gcn-train uses it: sparse features, labels,
// a coalesced edge list and the train/val/test split as bit flags per node.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "gcn/data/csr.hpp"

namespace gcn {

// Bits of Dataset::split. A node may carry several bits (Planetoid's splits are
// disjoint, but nothing below relies on that).
enum SplitBit : uint8_t { kTrainBit = 1u << 0, kValBit = 1u << 1, kTestBit = 1u << 2 };

struct Dataset {
  std::string name;
  int32_t n_nodes = 0;
  int32_t n_features = 0;
  int32_t n_classes = 0;
  CsrMatrix features;             // (n_nodes, n_features)
  std::vector<int32_t> labels;    // (n_nodes) in [0, n_classes), or -1 (unlabelled: in no split)
  std::vector<int32_t> edge_src;  // (n_edges) PyG's edge_index[0]: sorted by (src, dst),
  std::vector<int32_t> edge_dst;  // (n_edges) PyG's edge_index[1]; no duplicates, no self loops
                                  // unless edges_as_given
  // (n_edges) each edge's weight, finite and >= 0, or empty: every weight 1
  // (a graph file's edge_weight; Planetoid and synthetic graphs have none).
  std::vector<float> edge_weight;
  std::vector<uint8_t> split;     // (n_nodes) SplitBit flags
  // A graph file's edges are kept as PyG's layers see them (docs/graph-format.md):
  // sorted, but duplicates and self loops stay (gcn_norm counts a duplicate as
  // often as it appears and replaces self loops with one of weight 1, as PyG's).
  // Planetoid and synthetic graphs have neither.
  bool edges_as_given = false;

  int64_t n_edges() const { return static_cast<int64_t>(edge_src.size()); }
  int32_t count(SplitBit bit) const;

  // Throws gcn::DataError if any array is inconsistent with the sizes.
  void validate() const;
};

// Row-normalise in place as PyG's NormalizeFeatures: each row sums to 1,
// all-zero rows stay zero.
void normalize_features(CsrMatrix& x);

}  // namespace gcn
