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

#include "gcn/data/csr.hpp"
#include "gcn/data/dataset.hpp"
#include "gcn/data/pickle.hpp"

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

// Same, from the folder that holds ind.<lowercase name>.* directly: each file
// through parse_planetoid_file, then assemble_planetoid.
Dataset load_planetoid_dir(const std::string& name, const std::filesystem::path& dir,
                           bool normalize = true);

// The eight files, in the order of PlanetoidFile.
enum class PlanetoidFile : uint8_t { kX, kY, kTx, kTy, kAllx, kAlly, kGraph, kTestIndex };
inline constexpr size_t kPlanetoidFiles = 8;
// "x", "y", "tx", "ty", "allx", "ally", "graph", "test.index".
const char* planetoid_extension(PlanetoidFile which);

// A one-hot label matrix (y, ty, ally) as its row-wise argmax, the first
// maximal column as torch.max(dim=1) picks it (an all-zero row: class 0).
struct PlanetoidLabels {
  int64_t n_rows = 0;
  int64_t n_cols = 0;
  std::vector<int32_t> argmax;  // (n_rows)
};

// What each file holds once parsed on its own, before the files are checked
// against one another.
struct PlanetoidParts {
  CsrMatrix x, tx, allx;
  PlanetoidLabels y, ty, ally;
  pickle::Adjacency graph;
  std::vector<int64_t> test_index;
};

// Parses one file's bytes into its member of `parts` (the others are left
// alone). `file` names the file in errors. DataError on malformed content.
void parse_planetoid_file(PlanetoidFile which, std::string_view bytes, const std::string& file,
                          PlanetoidParts& parts);

// The cross-file checks and PyG's processing (+ NormalizeFeatures when
// `normalize`); `name` as for load_planetoid. DataError when the parts do not
// fit together.
Dataset assemble_planetoid(const std::string& name, const PlanetoidParts& parts,
                           bool normalize = true);

// ind.<name>.test.index: whitespace-separated non-negative decimal integers,
// at least one. `file` prefixes errors.
std::vector<int64_t> parse_test_index(std::string_view text, const std::string& file);

}  // namespace gcn
