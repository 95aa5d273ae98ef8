// random_node_split (PyG's RandomNodeSplit) and ordered_node_split (see gcn/split.hpp).
#include "gcn/data/split.hpp"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <vector>

#include <fmt/format.h>

#include "gcn/error.hpp"
#include "gcn/rng.hpp"

namespace gcn {
namespace {

// Generator streams: one per class for the training draw, one for the rest.
constexpr uint64_t kClassStream = 0x5350'4c49'5400'0000ull;
constexpr uint64_t kRestStream = 0x5350'4c49'54ff'ffffull;

// Moves a uniformly random choice of `k` elements of `v` to its front, in
// random order (the first k steps of a Fisher-Yates shuffle).
void shuffle_prefix(std::vector<int32_t>& v, int64_t k, uint64_t key) {
  const auto n = static_cast<uint64_t>(v.size());
  for (uint64_t i = 0; i < static_cast<uint64_t>(k) && i + 1 < n; ++i) {
    // Uniform in [i, n): the high half of a 64x64-bit product (bias below n / 2^64).
    const uint64_t r = mix64(key + i);
    const auto j = i + static_cast<uint64_t>((static_cast<unsigned __int128>(r) * (n - i)) >> 64);
    std::swap(v[i], v[j]);
  }
}

int32_t max_label(const Dataset& data) {
  int32_t m = -1;
  for (int32_t y : data.labels) m = std::max(m, y);
  return m;
}

void require_training_nodes(const Dataset& data, const char* which, const NodeSplitSpec& spec) {
  if (data.count(kTrainBit) > 0) return;
  if (spec.train_per_class == 0) {
    throw UsageError(fmt::format("--split {}: --train-per-class 0 leaves no node to train on", which));
  }
  throw UsageError(fmt::format("--split {}: {} has no labelled node to train on (every label is -1)", which,
                               data.name));
}

}  // namespace

SplitSize SplitSize::parse(const std::string& text, const char* option) {
  const bool fraction = text.find_first_of(".eE") != std::string::npos;
  errno = 0;
  char* end = nullptr;
  SplitSize s;
  s.fraction = fraction;
  if (fraction) {
    s.value = std::strtod(text.c_str(), &end);
    if (text.empty() || *end != '\0' || errno != 0 || !(s.value >= 0.0 && s.value <= 1.0)) {
      throw UsageError(fmt::format("{}: '{}' is neither a node count (an integer >= 0) nor a fraction of the nodes "
                                   "in [0, 1]",
                                   option, text));
    }
  } else {
    const long long v = std::strtoll(text.c_str(), &end, 10);
    if (text.empty() || *end != '\0' || errno != 0 || v < 0 || v > (1ll << 31)) {
      throw UsageError(fmt::format("{}: '{}' is neither a node count (an integer >= 0) nor a fraction of the nodes "
                                   "in [0, 1]",
                                   option, text));
    }
    s.value = static_cast<double>(v);
  }
  return s;
}

int64_t SplitSize::resolve(int64_t n_nodes) const {
  // Python's round(n * f): the product in double, rounded half to even
  // (nearbyint in the default rounding mode).
  return fraction ? static_cast<int64_t>(std::nearbyint(static_cast<double>(n_nodes) * value))
                  : static_cast<int64_t>(value);
}

std::string SplitSize::str() const {
  return fraction ? fmt::format("{}", value) : fmt::format("{}", static_cast<int64_t>(value));
}

void random_node_split(Dataset& data, const NodeSplitSpec& spec) {
  const int32_t n = data.n_nodes;
  data.split.assign(static_cast<std::size_t>(n), 0);
  // PyG: num_classes = y.max() + 1; classes without nodes draw nothing.
  const int32_t n_classes = max_label(data) + 1;
  std::vector<std::vector<int32_t>> by_class(static_cast<std::size_t>(std::max(n_classes, 0)));
  for (int32_t i = 0; i < n; ++i) {
    if (data.labels[i] >= 0) by_class[static_cast<std::size_t>(data.labels[i])].push_back(i);
  }
  for (int32_t c = 0; c < n_classes; ++c) {
    std::vector<int32_t>& idx = by_class[static_cast<std::size_t>(c)];
    const int64_t take = std::min<int64_t>(spec.train_per_class, static_cast<int64_t>(idx.size()));
    shuffle_prefix(idx, take, stream_key(spec.seed, kClassStream + static_cast<uint64_t>(c)));
    for (int64_t k = 0; k < take; ++k) data.split[idx[k]] = kTrainBit;
  }
  std::vector<int32_t> rest;
  for (int32_t i = 0; i < n; ++i) {
    if (data.split[i] == 0 && data.labels[i] >= 0) rest.push_back(i);
  }
  const auto n_rest = static_cast<int64_t>(rest.size());
  const int64_t n_val = std::min(spec.num_val.resolve(n), n_rest);
  const int64_t n_test = std::min(spec.num_test.resolve(n), n_rest - n_val);
  shuffle_prefix(rest, n_val + n_test, stream_key(spec.seed, kRestStream));
  for (int64_t k = 0; k < n_val; ++k) data.split[rest[k]] = kValBit;
  for (int64_t k = n_val; k < n_val + n_test; ++k) data.split[rest[k]] = kTestBit;
  require_training_nodes(data, "random", spec);
}

void ordered_node_split(Dataset& data, const NodeSplitSpec& spec) {
  const int32_t n = data.n_nodes;
  data.split.assign(static_cast<std::size_t>(n), 0);
  std::vector<int64_t> train_seen(static_cast<std::size_t>(std::max(max_label(data) + 1, 0)), 0);
  for (int32_t i = 0; i < n; ++i) {
    const int32_t y = data.labels[i];
    if (y >= 0 && train_seen[static_cast<std::size_t>(y)] < spec.train_per_class) {
      ++train_seen[static_cast<std::size_t>(y)];
      data.split[i] = kTrainBit;
    }
  }
  const int64_t want_val = spec.num_val.resolve(n), want_test = spec.num_test.resolve(n);
  int64_t n_val = 0, n_test = 0;
  for (int32_t i = 0; i < n && (n_val < want_val || n_test < want_test); ++i) {
    if (data.split[i] != 0 || data.labels[i] < 0) continue;
    if (n_val < want_val) {
      data.split[i] = kValBit;
      ++n_val;
    } else {
      data.split[i] = kTestBit;
      ++n_test;
    }
  }
  require_training_nodes(data, "planetoid", spec);
}

SplitKind parse_split_kind(const std::string& text) {
  if (text == "auto") return SplitKind::kDefault;
  if (text == "planetoid") return SplitKind::kPlanetoid;
  if (text == "random") return SplitKind::kRandom;
  if (text == "file") return SplitKind::kFile;
  throw UsageError(fmt::format("--split: '{}' is not a split (auto, planetoid, random or file)", text));
}

std::string apply_split(Dataset& data, const SplitRequest& request, bool graph_file, bool file_has_masks,
                        const std::string& source) {
  SplitKind kind = request.kind;
  if (kind == SplitKind::kDefault) {
    if (graph_file && !file_has_masks) {
      throw UsageError(fmt::format(
          "{} has no train_mask, val_mask and test_mask: choose --split random (PyG's RandomNodeSplit: "
          "--train-per-class, --num-val, --num-test, --split-seed) or --split planetoid (in node order: the first "
          "--train-per-class labelled nodes of each class, then --num-val, then --num-test)",
          source));
    }
    kind = graph_file ? SplitKind::kFile : SplitKind::kPlanetoid;
  }
  const bool uses_sizes = kind == SplitKind::kRandom || (kind == SplitKind::kPlanetoid && graph_file);
  if (request.sizes_given && !uses_sizes) {
    throw UsageError(
        kind == SplitKind::kFile
            ? "--train-per-class, --num-val and --num-test size --split random and planetoid, not the file's masks"
            : "--train-per-class, --num-val and --num-test size --split random (Planetoid's split is fixed; a "
              "synthetic dataset's is set by its spec keys train_per_class, val, test)");
  }
  if (request.seed_given && kind != SplitKind::kRandom) {
    throw UsageError("--split-seed seeds --split random only");
  }
  const NodeSplitSpec& spec = request.spec;
  const std::string sizes = fmt::format("{} per class, {} val, {} test", spec.train_per_class, spec.num_val.str(),
                                        spec.num_test.str());
  switch (kind) {
    case SplitKind::kRandom:
      random_node_split(data, spec);
      return fmt::format("random (PyG's RandomNodeSplit: {}), split seed {}", sizes, spec.seed);
    case SplitKind::kPlanetoid:
      if (!graph_file) return "planetoid";
      ordered_node_split(data, spec);
      return fmt::format("planetoid (in node order: {})", sizes);
    case SplitKind::kFile:
      if (!graph_file) {
        throw UsageError(fmt::format("--split file uses a graph file's masks; {} is not a graph file (use planetoid "
                                     "or random)",
                                     source));
      }
      if (!file_has_masks) {
        throw UsageError(fmt::format("--split file: {} has no train_mask, val_mask and test_mask; use --split random "
                                     "or --split planetoid",
                                     source));
      }
      if (data.count(kTrainBit) == 0) {
        throw DataError(fmt::format("{}: train_mask selects no node; nothing to train on (--split random or "
                                    "planetoid make a split)",
                                    source));
      }
      return "the file's masks";
    case SplitKind::kDefault: break;
  }
  return "";
}

}  // namespace gcn
