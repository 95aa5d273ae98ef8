// The graph file (see gcn/graph_file.hpp and docs/graph-format.md).
//
// Order of the checks: the container (parse_safetensors_view), the metadata,
// which tensors are present, then each tensor's dtype and shape before any of
// its values is read, then the values (ranges, finiteness) while converting.
// Every allocation is bounded by the file's own size or by a checked count.
#include "gcn/data/graph_file.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>
#include <cstring>
#include <map>
#include <optional>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "gcn/error.hpp"
#include "gcn/file_io.hpp"
#include "gcn/file_io.hpp"
#include "gcn/data/safetensors.hpp"

namespace gcn {
namespace {

constexpr int64_t kMaxInt32 = std::numeric_limits<int32_t>::max();
// The model holds (N, C) matrices: a label of 10^9 must not ask for 10^9 classes.
constexpr int64_t kMaxClasses = 65536;

const char* const kTensorNames[] = {"edge_index", "x", "x_indptr", "x_indices", "x_values", "y",
                                    "train_mask", "val_mask",   "test_mask", "edge_weight"};
const char* const kMaskNames[] = {"train_mask", "val_mask", "test_mask"};
const SplitBit kMaskBits[] = {kTrainBit, kValBit, kTestBit};

std::string shape_str(const std::vector<int64_t>& shape) { return fmt::format("[{}]", fmt::join(shape, ", ")); }

class Reader {
 public:
  Reader(const SafetensorsView& file, std::string name) : file_(file), name_(std::move(name)) {}

  [[noreturn]] void fail(const std::string& msg) const { throw DataError(name_ + ": " + msg); }

  const TensorView* find(const char* tensor) const { return file_.find(tensor); }

  // The tensor's dtype must be one of `dtypes`; `hint` says how to convert.
  void expect_dtype(const TensorView& t, std::initializer_list<Dtype> dtypes, const char* hint) const {
    if (std::find(dtypes.begin(), dtypes.end(), t.dtype) != dtypes.end()) return;
    std::vector<std::string> names;
    for (Dtype d : dtypes) names.emplace_back(dtype_name(d));
    fail(fmt::format("{} is {}, expected {} ({})", t.name, dtype_name(t.dtype), fmt::join(names, " or "), hint));
  }

  void expect_rank(const TensorView& t, std::size_t rank, const char* layout) const {
    if (t.shape.size() != rank) fail(fmt::format("{} has shape {}, expected {}", t.name, shape_str(t.shape), layout));
  }

  // A rank-1 tensor of n elements.
  void expect_length(const TensorView& t, int64_t n, const char* what, const char* hint = "") const {
    if (t.shape.size() != 1 || t.shape[0] != n) {
      fail(fmt::format("{} has shape {}, expected [{}] ({}){}", t.name, shape_str(t.shape), n, what, hint));
    }
  }

  // An optional decimal metadata value in [lo, hi].
  std::optional<int64_t> metadata_int(const char* key, int64_t lo, int64_t hi) const {
    const auto it = file_.metadata.find(key);
    if (it == file_.metadata.end()) return std::nullopt;
    const std::string& text = it->second;
    int64_t v = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec != std::errc() || end != text.data() + text.size() || v < lo || v > hi) {
      fail(fmt::format("metadata {} is '{}', not an integer in [{}, {}]", key, text, lo, hi));
    }
    return v;
  }

 private:
  const SafetensorsView& file_;
  std::string name_;
};

// Sorts the edges by (src, dst): a counting sort by source, then each
// source's targets sorted (stable: repeated edges keep their order). With
// `dedupe`, repeated edges are merged: their weights summed in that order
// (PyG's coalesce with reduce "add"). `weight` (one per edge, or empty)
// moves with its edge.
void sort_edges(int32_t n_nodes, std::vector<int32_t>& src, std::vector<int32_t>& dst, bool dedupe,
                std::vector<float>& weight) {
  const std::size_t n_edges = src.size();
  const bool weighted = !weight.empty();
  std::vector<int64_t> start(static_cast<std::size_t>(n_nodes) + 1, 0);
  for (int32_t s : src) ++start[static_cast<std::size_t>(s) + 1];
  for (int32_t i = 0; i < n_nodes; ++i) start[i + 1] += start[i];
  std::vector<std::pair<int32_t, float>> sorted(n_edges);  // (dst, weight)
  {
    std::vector<int64_t> fill(start.begin(), start.end() - 1);
    for (std::size_t e = 0; e < n_edges; ++e) sorted[fill[src[e]]++] = {dst[e], weighted ? weight[e] : 1.0f};
  }
  std::size_t out = 0;
  std::vector<int32_t> sorted_dst(n_edges);
  for (int32_t i = 0; i < n_nodes; ++i) {
    const auto first = sorted.begin() + start[i], last = sorted.begin() + start[i + 1];
    std::stable_sort(first, last, [](const auto& a, const auto& b) { return a.first < b.first; });
    for (auto it = first; it != last; ++it) {
      if (dedupe && out > 0 && src[out - 1] == i && sorted_dst[out - 1] == it->first) {
        if (weighted) weight[out - 1] += it->second;
        continue;
      }
      src[out] = i;
      sorted_dst[out] = it->first;
      if (weighted) weight[out] = it->second;
      ++out;
    }
  }
  src.resize(out);
  sorted_dst.resize(out);
  if (weighted) weight.resize(out);
  dst = std::move(sorted_dst);
}

int32_t read_node_count(const Reader& r, const TensorView* x, const TensorView* indptr) {
  int64_t n = 0;
  if (x != nullptr) {
    r.expect_dtype(*x, {Dtype::kF32}, "save float32 features: data.x.float()");
    r.expect_rank(*x, 2, "[N, F]");
    n = x->shape[0];
  } else {
    r.expect_dtype(*indptr, {Dtype::kI64, Dtype::kI32}, "integer row pointers");
    r.expect_rank(*indptr, 1, "[N + 1]");
    if (indptr->shape[0] == 0) r.fail("x_indptr is empty; it holds N + 1 row pointers");
    n = indptr->shape[0] - 1;
  }
  if (n < 1 || n >= kMaxInt32) r.fail(fmt::format("{} nodes; a graph file holds 1 to {}", n, kMaxInt32 - 1));
  return static_cast<int32_t>(n);
}

CsrMatrix read_dense_features(const Reader& r, const TensorView& x, std::optional<int64_t> num_features) {
  const int64_t n = x.shape[0], f = x.shape[1];
  if (f < 1 || f > kMaxInt32) r.fail(fmt::format("x has shape {}: F must be in [1, {}]", shape_str(x.shape), kMaxInt32));
  if (num_features && *num_features != f) {
    r.fail(fmt::format("metadata num_features is {} but x has {} columns", *num_features, f));
  }
  int64_t nnz = 0;
  for (int64_t k = 0; k < x.numel; ++k) {
    const float v = x.f32(k);
    if (!std::isfinite(v)) {
      r.fail(fmt::format("x: value at row {}, column {} is {}", k / f, k % f, std::isnan(v) ? "NaN" : "infinite"));
    }
    nnz += v != 0.0f ? 1 : 0;
  }
  if (nnz > kMaxInt32) r.fail(fmt::format("x has {} non-zero values, more than the {} gcn-train indexes", nnz, kMaxInt32));
  CsrMatrix m;
  m.n_rows = static_cast<int32_t>(n);
  m.n_cols = static_cast<int32_t>(f);
  m.indptr.reserve(static_cast<std::size_t>(n) + 1);
  m.indices.reserve(static_cast<std::size_t>(nnz));
  m.values.reserve(static_cast<std::size_t>(nnz));
  m.indptr.push_back(0);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t c = 0; c < f; ++c) {
      const float v = x.f32(i * f + c);
      if (v == 0.0f) continue;
      m.indices.push_back(static_cast<int32_t>(c));
      m.values.push_back(v);
    }
    m.indptr.push_back(static_cast<int32_t>(m.indices.size()));
  }
  return m;
}

CsrMatrix read_csr_features(const Reader& r, const TensorView& indptr, const TensorView* indices,
                            const TensorView* values, std::optional<int64_t> num_features) {
  if (indices == nullptr || values == nullptr) {
    r.fail(fmt::format("x_indptr without {}: CSR features need x_indptr, x_indices and x_values",
                       indices == nullptr ? "x_indices" : "x_values"));
  }
  r.expect_dtype(*indices, {Dtype::kI64, Dtype::kI32}, "integer column indices");
  r.expect_dtype(*values, {Dtype::kF32}, "save float32 values");
  r.expect_rank(*indices, 1, "[nnz]");
  r.expect_length(*values, indices->shape[0], "one value per column index");
  const int64_t n = indptr.shape[0] - 1, nnz = indices->shape[0];
  if (nnz > kMaxInt32) r.fail(fmt::format("x_indices has {} entries, more than the {} gcn-train indexes", nnz, kMaxInt32));
  if (indptr.integer(0) != 0) r.fail(fmt::format("x_indptr[0] is {}, not 0", indptr.integer(0)));
  for (int64_t i = 0; i < n; ++i) {
    const int64_t a = indptr.integer(i), b = indptr.integer(i + 1);
    if (b < a) r.fail(fmt::format("x_indptr decreases at row {} ({} then {})", i, a, b));
    if (b > nnz) r.fail(fmt::format("x_indptr[{}] = {} is past the {} entries of x_indices", i + 1, b, nnz));
  }
  if (indptr.integer(n) != nnz) {
    r.fail(fmt::format("x_indptr ends at {} but x_indices has {} entries", indptr.integer(n), nnz));
  }
  int64_t max_col = -1;
  for (int64_t k = 0; k < nnz; ++k) {
    const int64_t c = indices->integer(k);
    if (c < 0 || c >= kMaxInt32) r.fail(fmt::format("x_indices[{}] = {} is outside [0, {})", k, c, kMaxInt32));
    max_col = std::max(max_col, c);
    const float v = values->f32(k);
    if (!std::isfinite(v)) r.fail(fmt::format("x_values[{}] is {}", k, std::isnan(v) ? "NaN" : "infinite"));
  }
  const int64_t f = num_features.value_or(max_col + 1);
  if (f < 1) r.fail("x has no column: set the metadata num_features (F) for an all-zero CSR matrix");
  if (max_col >= f) r.fail(fmt::format("x_indices holds column {} but metadata num_features is {}", max_col, f));

  CsrMatrix m;
  m.n_rows = static_cast<int32_t>(n);
  m.n_cols = static_cast<int32_t>(f);
  m.indptr.reserve(static_cast<std::size_t>(n) + 1);
  m.indptr.push_back(0);
  std::vector<std::pair<int32_t, float>> row;
  for (int64_t i = 0; i < n; ++i) {
    row.clear();
    for (int64_t k = indptr.integer(i); k < indptr.integer(i + 1); ++k) {
      row.emplace_back(static_cast<int32_t>(indices->integer(k)), values->f32(k));
    }
    // scipy and torch allow unsorted columns; the backends need them sorted.
    std::stable_sort(row.begin(), row.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    for (std::size_t k = 0; k < row.size(); ++k) {
      if (k > 0 && row[k].first == row[k - 1].first) {
        r.fail(fmt::format("x: column {} appears twice in row {} (coalesce the CSR matrix first)", row[k].first, i));
      }
      if (row[k].second == 0.0f) continue;  // as from a dense x: zeros are not stored
      m.indices.push_back(row[k].first);
      m.values.push_back(row[k].second);
    }
    m.indptr.push_back(static_cast<int32_t>(m.indices.size()));
  }
  return m;
}

void read_labels(const Reader& r, const TensorView* y, Dataset& d, std::optional<int64_t> num_classes) {
  if (y == nullptr) r.fail("no y tensor: the labels, [N] int64 (-1 for an unlabelled node)");
  r.expect_dtype(*y, {Dtype::kI64, Dtype::kI32}, "save integer labels: data.y.long()");
  r.expect_length(*y, d.n_nodes, "one label per node",
                  y->shape.size() == 2 && y->shape[0] == d.n_nodes && y->shape[1] == 1 ? "; save y.view(-1)" : "");
  const int64_t hi = num_classes.value_or(kMaxClasses);
  int64_t max_label = -1;
  d.labels.resize(static_cast<std::size_t>(d.n_nodes));
  for (int32_t i = 0; i < d.n_nodes; ++i) {
    const int64_t v = y->integer(i);
    if (v < -1 || v >= hi) {
      r.fail(num_classes ? fmt::format("y: label {} of node {} is outside [-1, {}) (metadata num_classes {})", v, i,
                                       hi, hi)
                         : fmt::format("y: label {} of node {} is outside [-1, {}) (-1: unlabelled; at most {} "
                                       "classes)",
                                       v, i, hi, kMaxClasses));
    }
    max_label = std::max(max_label, v);
    d.labels[static_cast<std::size_t>(i)] = static_cast<int32_t>(v);
  }
  if (max_label < 0) r.fail("y: no node has a label (all are -1)");
  d.n_classes = static_cast<int32_t>(num_classes.value_or(max_label + 1));
}

void read_edges(const Reader& r, const TensorView* edge_index, Dataset& d) {
  if (edge_index == nullptr) {
    r.fail("no edge_index tensor: a graph file holds edge_index [2, E], x (or x_indptr, x_indices, x_values) and y "
           "(docs/graph-format.md)");
  }
  r.expect_dtype(*edge_index, {Dtype::kI64, Dtype::kI32}, "PyG's edge_index is int64");
  if (edge_index->shape.size() != 2 || edge_index->shape[0] != 2) {
    r.fail(fmt::format("edge_index has shape {}, expected [2, E] (row 0 sources, row 1 targets){}",
                       shape_str(edge_index->shape),
                       edge_index->shape.size() == 2 && edge_index->shape[1] == 2 ? "; save edge_index.t()" : ""));
  }
  const int64_t e = edge_index->shape[1];
  // gcn_norm's CSR adds one self loop per node and indexes with int32.
  if (e > kMaxInt32 - d.n_nodes) {
    r.fail(fmt::format("{} edges and {} nodes: more than the {} entries gcn-train's adjacency indexes", e, d.n_nodes,
                       kMaxInt32));
  }
  d.edge_src.resize(static_cast<std::size_t>(e));
  d.edge_dst.resize(static_cast<std::size_t>(e));
  for (int64_t k = 0; k < e; ++k) {
    const int64_t s = edge_index->integer(k), t = edge_index->integer(e + k);
    if (s < 0 || s >= d.n_nodes || t < 0 || t >= d.n_nodes) {
      r.fail(fmt::format("edge_index: edge {} ({} -> {}) has an endpoint outside [0, {})", k, s, t, d.n_nodes));
    }
    d.edge_src[static_cast<std::size_t>(k)] = static_cast<int32_t>(s);
    d.edge_dst[static_cast<std::size_t>(k)] = static_cast<int32_t>(t);
  }
  sort_edges(d.n_nodes, d.edge_src, d.edge_dst, /*dedupe=*/false, d.edge_weight);
  d.edges_as_given = true;
}

// Into d.edge_weight (before the edges are sorted): finite, non-negative;
// all ones is the unweighted graph (left empty).
void read_edge_weight(const Reader& r, const TensorView* w, int64_t n_edges, Dataset& d) {
  if (w == nullptr) return;
  r.expect_dtype(*w, {Dtype::kF32}, "float32 weights");
  r.expect_length(*w, n_edges, "one weight per edge");
  bool all_ones = true;
  d.edge_weight.resize(static_cast<std::size_t>(w->numel));
  for (int64_t k = 0; k < w->numel; ++k) {
    const float v = w->f32(k);
    if (!(std::isfinite(v) && v >= 0.0f)) {
      r.fail(fmt::format("edge_weight: edge {} has weight {}; weights must be finite and non-negative", k, v));
    }
    all_ones = all_ones && v == 1.0f;
    d.edge_weight[static_cast<std::size_t>(k)] = v;
  }
  if (all_ones) d.edge_weight.clear();
}

bool read_masks(const Reader& r, Dataset& d) {
  const TensorView* masks[3];
  int present = 0;
  for (int m = 0; m < 3; ++m) present += (masks[m] = r.find(kMaskNames[m])) != nullptr ? 1 : 0;
  d.split.assign(static_cast<std::size_t>(d.n_nodes), 0);
  if (present == 0) return false;
  if (present != 3) {
    for (int m = 0; m < 3; ++m) {
      if (masks[m] == nullptr) {
        r.fail(fmt::format("{} is missing: a file's split needs train_mask, val_mask and test_mask (an all-false "
                           "mask is allowed)",
                           kMaskNames[m]));
      }
    }
  }
  for (int m = 0; m < 3; ++m) {
    const TensorView& t = *masks[m];
    r.expect_dtype(t, {Dtype::kBool, Dtype::kU8}, "save torch.bool masks");
    r.expect_length(t, d.n_nodes, "one flag per node",
                    t.shape.size() == 2 && t.shape[0] == d.n_nodes
                        ? "; this holds several splits: save one column, e.g. train_mask[:, 0]"
                        : "");
    for (int32_t i = 0; i < d.n_nodes; ++i) {
      const int64_t v = t.integer(i);
      if (v > 1) r.fail(fmt::format("{}: value {} at node {}; a mask holds 0 or 1", t.name, v, i));
      if (v == 0) continue;
      if (d.labels[static_cast<std::size_t>(i)] < 0) {
        r.fail(fmt::format("{}: node {} is unlabelled (y = -1); only labelled nodes may be in a split", t.name, i));
      }
      d.split[static_cast<std::size_t>(i)] |= kMaskBits[m];
    }
  }
  return true;
}

void check_metadata(const Reader& r, const SafetensorsView& file) {
  const auto format = file.metadata.find("format");
  if (format != file.metadata.end() && format->second != kGraphFormat && format->second != "pt") {
    r.fail(fmt::format("metadata format is '{}', not '{}'{}", format->second, kGraphFormat,
                       format->second.rfind("gcn-train", 0) == 0 ? " (a gcn-train file of another kind)" : ""));
  }
  const auto version = file.metadata.find("format_version");
  if (version != file.metadata.end() && version->second != kGraphFormatVersion) {
    r.fail(fmt::format("written in graph format version '{}'; this gcn-train reads version {}", version->second,
                       kGraphFormatVersion));
  }
  for (const TensorView& t : file.tensors) {
    if (std::find(std::begin(kTensorNames), std::end(kTensorNames), t.name) == std::end(kTensorNames)) {
      r.fail(fmt::format("unknown tensor \"{}\" (a graph file holds {})", t.name, fmt::join(kTensorNames, ", ")));
    }
  }
}

std::string int64_bytes(const std::vector<int32_t>& v) {
  std::string out;
  out.reserve(v.size() * 8);
  for (int32_t x : v) append_le<int64_t>(out, x);
  return out;
}

}  // namespace

bool is_graph_file_name(const std::string& dataset_arg) {
  constexpr std::string_view kExt = ".safetensors";
  return dataset_arg.rfind("file:", 0) == 0 ||
         (dataset_arg.size() > kExt.size() &&
          dataset_arg.compare(dataset_arg.size() - kExt.size(), kExt.size(), kExt) == 0);
}

std::filesystem::path graph_file_path(const std::string& dataset_arg) {
  return dataset_arg.rfind("file:", 0) == 0 ? dataset_arg.substr(5) : dataset_arg;
}

GraphFile parse_graph_file(std::string_view bytes, const std::string& name) {
  const SafetensorsView file = parse_safetensors_view(bytes, name);
  const Reader r(file, name);
  check_metadata(r, file);
  GraphFile out;
  Dataset& d = out.data;
  const auto stored_name = file.metadata.find("name");
  d.name = stored_name != file.metadata.end() && !stored_name->second.empty()
               ? stored_name->second
               : std::filesystem::path(name).stem().string();
  const std::optional<int64_t> num_features = r.metadata_int("num_features", 1, kMaxInt32);
  const std::optional<int64_t> num_classes = r.metadata_int("num_classes", 1, kMaxClasses);

  const TensorView* x = r.find("x");
  const TensorView* indptr = r.find("x_indptr");
  if (x != nullptr && (indptr != nullptr || r.find("x_indices") != nullptr || r.find("x_values") != nullptr)) {
    r.fail("holds both x and CSR features (x_indptr, x_indices, x_values); keep one");
  }
  if (x == nullptr && indptr == nullptr) {
    if (r.find("x_indices") != nullptr || r.find("x_values") != nullptr) {
      r.fail("x_indices or x_values without x_indptr: CSR features need all three");
    }
    r.fail("no node features: x [N, F] float32, or x_indptr, x_indices, x_values (CSR)");
  }
  d.n_nodes = read_node_count(r, x, indptr);
  // The labels fix N for the checks that follow; read them before the
  // features so that a y of the wrong length is named as such.
  read_labels(r, r.find("y"), d, num_classes);
  d.features = x != nullptr ? read_dense_features(r, *x, num_features)
                            : read_csr_features(r, *indptr, r.find("x_indices"), r.find("x_values"), num_features);
  d.n_features = d.features.n_cols;
  const TensorView* edge_index = r.find("edge_index");
  if (edge_index != nullptr && edge_index->shape.size() == 2) {
    read_edge_weight(r, r.find("edge_weight"), edge_index->shape[1], d);
  }
  read_edges(r, edge_index, d);
  out.has_masks = read_masks(r, d);
  d.validate();
  return out;
}

GraphFile read_graph_file(const std::filesystem::path& path) {
  const std::string bytes = read_file_bytes(path);
  return parse_graph_file(bytes, path.string());
}

std::string serialize_graph_file(const Dataset& data) {
  std::vector<TensorBytes> tensors;
  {
    TensorBytes edges{"edge_index", Dtype::kI64, {2, data.n_edges()}, int64_bytes(data.edge_src)};
    edges.data += int64_bytes(data.edge_dst);
    tensors.push_back(std::move(edges));
  }
  if (!data.edge_weight.empty()) {
    std::string w;
    w.reserve(data.edge_weight.size() * 4);
    for (float v : data.edge_weight) append_le<float>(w, v);
    tensors.push_back({"edge_weight", Dtype::kF32, {data.n_edges()}, std::move(w)});
  }
  const CsrMatrix& x = data.features;
  const int64_t dense_bytes = int64_t{x.n_rows} * x.n_cols * 4;
  const int64_t csr_bytes = (int64_t{x.n_rows} + 1) * 8 + x.nnz() * 12;
  if (dense_bytes <= csr_bytes) {
    std::string dense(static_cast<std::size_t>(dense_bytes), '\0');
    for (int32_t i = 0; i < x.n_rows; ++i) {
      for (int32_t k = x.indptr[i]; k < x.indptr[i + 1]; ++k) {
        uint32_t bits;
        std::memcpy(&bits, &x.values[k], sizeof bits);
        char* p = &dense[static_cast<std::size_t>((int64_t{i} * x.n_cols + x.indices[k]) * 4)];
        for (int b = 0; b < 4; ++b) p[b] = static_cast<char>((bits >> (8 * b)) & 0xff);
      }
    }
    tensors.push_back({"x", Dtype::kF32, {x.n_rows, x.n_cols}, std::move(dense)});
  } else {
    tensors.push_back({"x_indptr", Dtype::kI64, {x.n_rows + int64_t{1}}, int64_bytes(x.indptr)});
    tensors.push_back({"x_indices", Dtype::kI64, {x.nnz()}, int64_bytes(x.indices)});
    std::string values;
    values.reserve(x.values.size() * 4);
    for (float v : x.values) append_le<float>(values, v);
    tensors.push_back({"x_values", Dtype::kF32, {x.nnz()}, std::move(values)});
  }
  tensors.push_back({"y", Dtype::kI64, {data.n_nodes}, int64_bytes(data.labels)});
  for (int m = 0; m < 3; ++m) {
    std::string mask(static_cast<std::size_t>(data.n_nodes), '\0');
    for (int32_t i = 0; i < data.n_nodes; ++i) mask[static_cast<std::size_t>(i)] = (data.split[i] & kMaskBits[m]) ? 1 : 0;
    tensors.push_back({kMaskNames[m], Dtype::kBool, {data.n_nodes}, std::move(mask)});
  }
  const std::map<std::string, std::string> metadata = {{"format", kGraphFormat},
                                                       {"format_version", kGraphFormatVersion},
                                                       {"name", data.name},
                                                       {"num_classes", std::to_string(data.n_classes)},
                                                       {"num_features", std::to_string(data.n_features)}};
  return serialize_typed_safetensors(metadata, tensors);
}

void write_graph_file(const std::filesystem::path& path, const Dataset& data) {
  write_file_atomic(path, serialize_graph_file(data));
}

void to_undirected(Dataset& data) {
  const int64_t e = data.n_edges();
  if (2 * e > kMaxInt32 - data.n_nodes) {
    throw DataError(fmt::format("{}: --to-undirected: {} edges in both directions and {} nodes are more than the {} "
                                "entries gcn-train's adjacency indexes",
                                data.name, 2 * e, data.n_nodes, kMaxInt32));
  }
  data.edge_src.reserve(static_cast<std::size_t>(2 * e));
  data.edge_dst.reserve(static_cast<std::size_t>(2 * e));
  for (int64_t k = 0; k < e; ++k) {
    data.edge_src.push_back(data.edge_dst[static_cast<std::size_t>(k)]);
    data.edge_dst.push_back(data.edge_src[static_cast<std::size_t>(k)]);
  }
  if (!data.edge_weight.empty()) {
    data.edge_weight.reserve(static_cast<std::size_t>(2 * e));
    for (int64_t k = 0; k < e; ++k) data.edge_weight.push_back(data.edge_weight[static_cast<std::size_t>(k)]);
  }
  sort_edges(data.n_nodes, data.edge_src, data.edge_dst, /*dedupe=*/true, data.edge_weight);
}

}  // namespace gcn
