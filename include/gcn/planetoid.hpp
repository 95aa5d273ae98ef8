// The Planetoid citation datasets (Cora, CiteSeer, PubMed) from the original
// ind.<name>.{x,y,tx,ty,allx,ally,graph,test.index} files, processed exactly as
// PyG 2.4's torch_geometric.io.read_planetoid_data (plus NormalizeFeatures).
// The pickles are read by the restricted reader in gcn/pickle.hpp.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "gcn/dataset.hpp"

namespace gcn {

// cora, citeseer, pubmed (case-insensitive) -> "Cora", "CiteSeer", "PubMed";
// UsageError for others (the message lists the known names).
std::string planetoid_canonical_name(const std::string& name);

// --data-root if given, else $GCN_DATA_ROOT if set and non-empty, else
// "datasets" (relative to the working directory).
std::filesystem::path resolve_data_root(const std::optional<std::string>& cli_root);

// The folder holding ind.<name>.*: <root> itself (flat) or PyG's layout
// <root>/<Name>/raw. DataError when neither has them, saying where it looked
// and what to do.
std::filesystem::path find_planetoid_dir(const std::string& name,
                                         const std::filesystem::path& root);

// Loads and processes as PyG 2.4 read_planetoid_data (+ NormalizeFeatures when
// `normalize`). Features stay sparse; float64 features become float32.
Dataset load_planetoid(const std::string& name, const std::filesystem::path& root,
                       bool normalize = true);

// Same, from the folder that holds ind.<lowercase name>.* directly.
Dataset load_planetoid_dir(const std::string& name, const std::filesystem::path& dir,
                           bool normalize = true);

// ind.<name>.test.index: whitespace-separated non-negative decimal integers,
// at least one. `file` prefixes errors.
std::vector<int64_t> parse_test_index(std::string_view text, const std::string& file);

}  // namespace gcn
