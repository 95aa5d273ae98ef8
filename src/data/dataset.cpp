// Dataset::count, Dataset::validate and normalize_features.
#include "gcn/data/dataset.hpp"

#include <cmath>

#include <algorithm>
#include <limits>
#include <string>

#include "gcn/error.hpp"

namespace gcn {

int32_t Dataset::count(SplitBit bit) const {
  return static_cast<int32_t>(
      std::count_if(split.begin(), split.end(), [bit](uint8_t s) { return (s & bit) != 0; }));
}

void Dataset::validate() const {
  const std::string prefix = "dataset " + (name.empty() ? std::string("(unnamed)") : name) + ": ";
  auto fail = [&](const std::string& msg) { throw DataError(prefix + msg); };
  if (n_nodes < 0 || n_features < 0 || n_classes < 0) fail("negative size");
  if (features.n_rows != n_nodes || features.n_cols != n_features) {
    fail("features are (" + std::to_string(features.n_rows) + ", " +
         std::to_string(features.n_cols) + ") but the dataset has " + std::to_string(n_nodes) +
         " nodes and " + std::to_string(n_features) + " features");
  }
  features.validate((prefix + "features").c_str());
  if (labels.size() != static_cast<size_t>(n_nodes)) {
    fail(std::to_string(labels.size()) + " labels for " + std::to_string(n_nodes) + " nodes");
  }
  if (split.size() != static_cast<size_t>(n_nodes)) {
    fail(std::to_string(split.size()) + " split flags for " + std::to_string(n_nodes) + " nodes");
  }
  for (size_t i = 0; i < labels.size(); ++i) {
    if (labels[i] == -1 && split[i] == 0) continue;  // unlabelled, and in no split
    if (labels[i] < 0 || labels[i] >= n_classes) {
      fail("label " + std::to_string(labels[i]) + " of node " + std::to_string(i) +
           " is outside [0, " + std::to_string(n_classes) + ")" +
           (labels[i] == -1 ? " but the node is in a split" : ""));
    }
  }
  if (edge_src.size() != edge_dst.size()) fail("edge_src and edge_dst differ in length");
  if (!edge_weight.empty() && edge_weight.size() != edge_src.size()) {
    fail(std::to_string(edge_weight.size()) + " edge weights for " + std::to_string(edge_src.size()) + " edges");
  }
  for (size_t e = 0; e < edge_weight.size(); ++e) {
    if (!(std::isfinite(edge_weight[e]) && edge_weight[e] >= 0.0f)) {
      fail("edge " + std::to_string(e) + " has weight " + std::to_string(edge_weight[e]) +
           "; weights must be finite and non-negative");
    }
  }
  for (size_t e = 0; e < edge_src.size(); ++e) {
    const int32_t s = edge_src[e];
    const int32_t d = edge_dst[e];
    if (s < 0 || s >= n_nodes || d < 0 || d >= n_nodes) {
      fail("edge " + std::to_string(e) + " (" + std::to_string(s) + ", " + std::to_string(d) +
           ") has an endpoint outside [0, " + std::to_string(n_nodes) + ")");
    }
    if (edges_as_given) {
      if (e > 0 && std::make_pair(edge_src[e - 1], edge_dst[e - 1]) > std::make_pair(s, d)) {
        fail("edges are not sorted by (src, dst) at edge " + std::to_string(e));
      }
      continue;
    }
    if (s == d) fail("edge " + std::to_string(e) + " is a self loop on node " + std::to_string(s));
    if (e > 0 && std::make_pair(edge_src[e - 1], edge_dst[e - 1]) >= std::make_pair(s, d)) {
      fail("edges are not sorted by (src, dst) without duplicates at edge " + std::to_string(e));
    }
  }
  for (size_t i = 0; i < split.size(); ++i) {
    if (split[i] & ~(kTrainBit | kValBit | kTestBit)) {
      fail("node " + std::to_string(i) + " has unknown split bits");
    }
  }
}

// The most entries normalize_features makes dense: 2^27 (1 GiB of indices and values).
constexpr int64_t kMaxDenseEntries = int64_t{1} << 27;

// PyG 2.4 NormalizeFeatures on the dense x:
//   x = x - x.min();  x /= x.sum(-1, keepdim=True).clamp(min=1)
// so rows whose sum is below 1 (all-zero rows included) are left as they are.
// The global shift is 0 for non-negative data with at least one zero, which is
// every Planetoid dataset; only then does the matrix stay sparse.
void normalize_features(CsrMatrix& x) {
  const int64_t numel = static_cast<int64_t>(x.n_rows) * x.n_cols;
  if (numel == 0) return;
  float min = x.nnz() < numel ? 0.0f : x.values.empty() ? 0.0f : x.values[0];
  for (float v : x.values) min = std::min(min, v);
  if (min != 0.0f) {
    if (x.nnz() < numel) {
      // Negative entries with implicit zeros: after the shift every entry is
      // non-zero, so the result is dense. Store it explicitly, as PyG would.
      // A few stored entries can ask for this (a (505, 4e6) matrix with one
      // negative value is 16 GB dense), so the cap is far below what a
      // CsrMatrix could index.
      if (numel > kMaxDenseEntries) {
        throw DataError("normalize_features: negative features shift every entry of a (" +
                        std::to_string(x.n_rows) + ", " + std::to_string(x.n_cols) +
                        ") matrix to non-zero, more than the " + std::to_string(kMaxDenseEntries) +
                        " dense entries allowed");
      }
      CsrMatrix dense;
      dense.n_rows = x.n_rows;
      dense.n_cols = x.n_cols;
      dense.indptr.reserve(static_cast<size_t>(x.n_rows) + 1);
      dense.indptr.push_back(0);
      dense.indices.reserve(static_cast<size_t>(numel));
      dense.values.reserve(static_cast<size_t>(numel));
      for (int32_t r = 0; r < x.n_rows; ++r) {
        int32_t k = x.indptr[r];
        for (int32_t c = 0; c < x.n_cols; ++c) {
          float v = 0.0f;
          // Duplicate columns cannot occur in a validated matrix from the loader,
          // but summing them keeps the dense view correct anyway.
          while (k < x.indptr[r + 1] && x.indices[k] == c) v += x.values[k++];
          dense.indices.push_back(c);
          dense.values.push_back(v);
        }
        dense.indptr.push_back(static_cast<int32_t>(dense.indices.size()));
      }
      x = std::move(dense);
    }
    for (float& v : x.values) v -= min;
  }
  for (int32_t r = 0; r < x.n_rows; ++r) {
    double sum = 0.0;
    for (int32_t k = x.indptr[r]; k < x.indptr[r + 1]; ++k) sum += x.values[k];
    const float denom = std::max(static_cast<float>(sum), 1.0f);
    for (int32_t k = x.indptr[r]; k < x.indptr[r + 1]; ++k) x.values[k] /= denom;
  }
}

}  // namespace gcn
