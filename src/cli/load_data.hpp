// Loading the dataset gcn-train trains on: a Planetoid dataset (found under
// --data-root, $GCN_DATA_ROOT, ./datasets or next to the binary), a graph
// file, or a synthetic graph; then --to-undirected and the split.
#pragma once

#include <string>

#include "gcn/data/dataset.hpp"
#include "options.hpp"

namespace gcn::cli {

struct LoadedData {
  Dataset data;
  std::string source;     // where it came from: a folder, a file, or the synthetic spec
  std::string data_root;  // the Planetoid data root ("" for other datasets)
  double load_s = 0;      // seconds to load and split
};

// Loads `dataset` (--dataset, or the checkpoint's) as the options say and
// logs what it is.
LoadedData load_data(const Options& opt, const std::string& dataset);

}  // namespace gcn::cli
