// Node splits made by gcn-train rather than read from a file (--split random,
// --split planetoid on a graph file). Both fill Dataset::split from the labels;
// unlabelled nodes (label -1) are never put in any split.
#pragma once

#include <cstdint>
#include <string>

#include "gcn/data/dataset.hpp"

namespace gcn {

// A split size as PyG's RandomNodeSplit takes it: a count (an int) or a
// fraction of all nodes (a float, rounded as Python's round: half to even).
struct SplitSize {
  double value = 0.0;
  bool fraction = false;

  // "500" -> a count; "0.1", "1e-1", "1.0" -> a fraction in [0, 1] (as PyG,
  // a value written with a point is a fraction). UsageError naming `option`.
  static SplitSize parse(const std::string& text, const char* option);
  int64_t resolve(int64_t n_nodes) const;
  std::string str() const;
};

struct NodeSplitSpec {
  int64_t train_per_class = 20;
  SplitSize num_val{500, false};
  SplitSize num_test{1000, false};
  uint64_t seed = 0;  // --split-seed (random only)
};

// PyG's RandomNodeSplit(split="random", num_train_per_class, num_val,
// num_test) (the same as Planetoid(split="random")): per class, a random
// train_per_class of its nodes (all of them when it has fewer); then, of the
// other labelled nodes in random order, the first num_val are validation and
// the next num_test test. The counts are PyG's for the same arguments; the
// permutations come from gcn/rng.hpp seeded by spec.seed, not torch's
// generator. One difference: PyG also draws unlabelled nodes (y = -1) into
// validation and test; here they are left out (their loss is undefined).
// UsageError when no node is drawn for training.
void random_node_split(Dataset& data, const NodeSplitSpec& spec);

// The Planetoid-like deterministic split of the synthetic datasets, on any
// labels: in node order, the first train_per_class nodes of each class train,
// then the next num_val labelled nodes validation, then the next num_test test.
void ordered_node_split(Dataset& data, const NodeSplitSpec& spec);

// --split and its sizes, as given on the command line.
enum class SplitKind { kDefault, kPlanetoid, kRandom, kFile };
// "auto" (kDefault), "planetoid", "random", "file"; UsageError otherwise.
SplitKind parse_split_kind(const std::string& text);

struct SplitRequest {
  SplitKind kind = SplitKind::kDefault;
  NodeSplitSpec spec;
  bool sizes_given = false;  // --train-per-class, --num-val or --num-test not at their defaults
  bool seed_given = false;   // --split-seed not 0
};

// Sets data.split as requested and returns what was done, for the log ("the
// file's masks", "random (PyG's RandomNodeSplit: ...), split seed 0", ...);
// `source` names the dataset (a graph file's path) in errors.
//   planetoid: a Planetoid or synthetic dataset keeps its own split; a graph
//              file gets ordered_node_split.
//   random:    random_node_split, on any dataset.
//   file:      a graph file's masks (already in data.split).
//   default:   file for a graph file with masks, planetoid for the others; a
//              graph file without masks is a UsageError naming the choices.
// Sizes or a seed that the chosen split does not use are a UsageError.
std::string apply_split(Dataset& data, const SplitRequest& request, bool graph_file, bool file_has_masks,
                        const std::string& source);

}  // namespace gcn
