// The graph file: a node-classification graph as safetensors, written by any
// PyG user (safetensors.torch.save_file, scripts/export_pyg.py) or by
// gcn-train --export-graph, and read by --dataset PATH.safetensors.
// The format is docs/graph-format.md:
//
//   edge_index  [2, E]  I64 or I32   row 0 source, row 1 target (PyG's)
//   x           [N, F]  F32          dense features, or instead the CSR triple
//   x_indptr    [N + 1] I64 or I32     row pointers
//   x_indices   [nnz]   I64 or I32     columns
//   x_values    [nnz]   F32            values
//   y           [N]     I64 or I32   labels in [0, C), -1 = unlabelled
//   train_mask, val_mask, test_mask  [N]  BOOL or U8   (optional; all three or none)
//   edge_weight [E]     F32          (optional; finite, >= 0; all ones: unweighted)
//   metadata: format "gcn-train graph", format_version "1", name, num_classes,
//             num_features (all optional)
//
// Every tensor's dtype, shape and values are checked before use; each problem
// is one DataError line naming the file and the tensor.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

#include "gcn/data/dataset.hpp"

namespace gcn {

inline constexpr const char* kGraphFormat = "gcn-train graph";
inline constexpr const char* kGraphFormatVersion = "1";

// True for "file:PATH" and for a value ending in ".safetensors".
bool is_graph_file_name(const std::string& dataset_arg);
// The path of such a value (without "file:").
std::filesystem::path graph_file_path(const std::string& dataset_arg);

struct GraphFile {
  // Features as stored (not normalised), labels with -1 for unlabelled nodes,
  // the edges sorted as given (edges_as_given), split from the masks (all 0
  // when the file has none).
  Dataset data;
  bool has_masks = false;
};

// Parses a whole file's bytes; `name` names the file in errors and is the
// dataset's name unless the metadata has one.
GraphFile parse_graph_file(std::string_view bytes, const std::string& name);
GraphFile read_graph_file(const std::filesystem::path& path);

// The file's bytes for `data` (its raw features: export before
// normalize_features): edge_index I64; x dense when that is no larger than the
// CSR triple (I64 indices), else the triple; y I64; the three masks as BOOL;
// metadata format, format_version, name, num_classes, num_features.
std::string serialize_graph_file(const Dataset& data);
// Atomic (write_file_atomic).
void write_graph_file(const std::filesystem::path& path, const Dataset& data);

// PyG's T.ToUndirected(): every edge also reversed, then coalesced (sorted,
// duplicates merged); self loops stay. The result has no duplicates.
// DataError when the doubled edges would not fit the int32 CSR of gcn_norm.
void to_undirected(Dataset& data);

}  // namespace gcn
