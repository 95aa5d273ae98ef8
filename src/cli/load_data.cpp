// Loading the dataset (load_data.hpp): Planetoid, a graph file or a synthetic
// graph, --to-undirected, the split; the two lines that say what was loaded.
#include "load_data.hpp"

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "gcn/data/graph_file.hpp"
#include "gcn/data/planetoid.hpp"
#include "gcn/data/split.hpp"
#include "gcn/nn/registry.hpp"
#include "gcn/data/synthetic.hpp"
#include "gcn/error.hpp"

namespace gcn::cli {

namespace {

using Clock = std::chrono::steady_clock;

// Where the Planetoid files are: --data-root, else $GCN_DATA_ROOT, else
// ./datasets, else the folders next to this binary that an install or a
// build tree has (<prefix>/share/gcn-train/datasets; the project's datasets/
// above build/src/). With no explicit root, the first that holds the dataset.
std::filesystem::path locate_data_root(const std::optional<std::string>& cli_root, const std::string& dataset) {
  const char* env = std::getenv("GCN_DATA_ROOT");
  if ((cli_root && !cli_root->empty()) || (env != nullptr && *env != '\0')) return gcn::resolve_data_root(cli_root);
  std::vector<std::filesystem::path> candidates{"datasets"};
  std::error_code ec;
  const std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    const std::filesystem::path dir = exe.parent_path();
    candidates.push_back(dir.parent_path() / "share" / "gcn-train" / "datasets");  // <prefix>/bin/gcn-train
    candidates.push_back(dir.parent_path().parent_path() / "datasets");            // <project>/build/src/gcn-train
  }
  for (const std::filesystem::path& root : candidates) {
    try {
      gcn::find_planetoid_dir(dataset, root);
      return root;
    } catch (const gcn::DataError&) {
    }
  }
  try {
    gcn::find_planetoid_dir(dataset, candidates.front());
  } catch (const gcn::DataError& e) {
    std::string also;
    for (std::size_t i = 1; i < candidates.size(); ++i) also += (also.empty() ? "" : ", ") + candidates[i].string();
    throw gcn::DataError(fmt::format("{} (also looked next to gcn-train: {})", e.what(), also));
  }
  return candidates.front();
}

}  // namespace

LoadedData load_data(const Options& opt, const std::string& dataset) {
  const auto t0 = Clock::now();
  LoadedData loaded;
  std::string& source = loaded.source;
  gcn::Dataset& data = loaded.data;
  // --export-graph writes the features as loaded: the reader normalises them.
  const bool normalize = !opt.no_normalize && opt.export_graph.empty();
  const bool graph_file = gcn::is_graph_file_name(dataset);
  bool file_has_masks = false;
  if (graph_file) {
    source = gcn::graph_file_path(dataset).string();
    gcn::GraphFile file = gcn::read_graph_file(source);
    data = std::move(file.data);
    file_has_masks = file.has_masks;
    if (normalize) gcn::normalize_features(data.features);
  } else if (gcn::is_synthetic_name(dataset)) {
    const gcn::SyntheticSpec synthetic = gcn::parse_synthetic_spec(dataset);
    data = gcn::make_synthetic(synthetic);
    source = gcn::to_string(synthetic);
  } else {
    const std::filesystem::path root = locate_data_root(opt.data_root, dataset);
    source = gcn::find_planetoid_dir(dataset, root).string();
    data = gcn::load_planetoid(dataset, root, normalize);
    loaded.data_root = root.string();
  }
  if (opt.no_edge_weights) data.edge_weight.clear();
  if (opt.to_undirected) gcn::to_undirected(data);
  gcn::SplitRequest split_request;
  split_request.kind = gcn::parse_split_kind(opt.split);
  split_request.spec = {opt.train_per_class, gcn::SplitSize::parse(opt.num_val, "--num-val"),
                        gcn::SplitSize::parse(opt.num_test, "--num-test"), opt.split_seed};
  // Values, not app.count: a --write-config file repeats every default.
  split_request.sizes_given =
      (opt.train_per_class != 20 || opt.num_val != "500" || opt.num_test != "1000") && !opt.random_splits;
  split_request.seed_given = opt.split_seed != 0 && !opt.random_splits;  // --random-splits: each run's
  const std::string split = gcn::apply_split(data, split_request, graph_file, file_has_masks, source);
  loaded.load_s = std::chrono::duration<double>(Clock::now() - t0).count();
  spdlog::info("gcn-train {} | {} from {} ({:.3f} s)", kVersion, data.name, source, loaded.load_s);
  spdlog::info("{}: {} nodes, {} edges, {} features, {} classes, {}/{}/{} train/val/test{}", data.name, data.n_nodes,
               data.n_edges(), data.n_features, data.n_classes, data.count(gcn::kTrainBit),
               data.count(gcn::kValBit), data.count(gcn::kTestBit), split == "planetoid" ? "" : " (" + split + ")");
  if (!data.edge_weight.empty()) {
    const gcn::ModelType& type = gcn::find_model_type(opt.model);
    if (type.uses_edge_weights()) {
      spdlog::info("{}: weighted edges (edge_weight), used by {}", data.name, type.pyg_class());
    } else {
      spdlog::warn("{}: --model {} ignores the graph's edge weights ({} takes none); --no-edge-weights drops them "
                   "and this line",
                   data.name, type.name(), type.pyg_class());
    }
  }
  return loaded;
}

}  // namespace gcn::cli
