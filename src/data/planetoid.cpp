// The Planetoid loader: a line-by-line port of PyG 2.4's read_planetoid_data
// (torch_geometric/io/planetoid.py) onto sparse features.
#include "gcn/data/planetoid.hpp"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <sstream>
#include <unordered_set>
#include <utility>

#include "gcn/error.hpp"
#include "gcn/data/pickle.hpp"

namespace gcn {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kValSize = 500;  // PyG: val = the 500 nodes after the training nodes

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

std::string read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw DataError(path.string() + ": cannot open file");
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw DataError(path.string() + ": read error");
  return ss.str();
}

// torch.max(dim=1) on the float32 matrix: the first maximal column, so an
// all-zero row (CiteSeer's missing test nodes) gets class 0.
PlanetoidLabels parse_labels(std::string_view bytes, const std::string& file) {
  const pickle::Document doc = pickle::parse(bytes, file);
  PlanetoidLabels out;
  std::vector<float> row;
  auto take_row = [&]() {
    const auto best =
        std::max_element(row.begin(), row.end(), [](float a, float b) { return a < b; });
    out.argmax.push_back(static_cast<int32_t>(best - row.begin()));
  };
  if (doc.root().kind == pickle::Kind::kCsrMatrix) {
    const CsrMatrix m = pickle::to_csr(doc, doc.root());
    out.n_rows = m.n_rows;
    out.n_cols = m.n_cols;
    if (out.n_cols == 0) throw DataError(doc.name() + ": label matrix has no columns");
    // The same first maximum without densifying the row (O(nnz), not
    // O(rows * cols)): besides the stored entries, only the row's first
    // implicit zero can be it, since a later equal value never replaces it.
    out.argmax.reserve(static_cast<size_t>(m.n_rows));
    for (int32_t r = 0; r < m.n_rows; ++r) {
      const int32_t begin = m.indptr[r];
      const int32_t end = m.indptr[r + 1];
      int32_t first_zero = 0;  // columns are sorted and unique
      for (int32_t k = begin; k < end && m.indices[k] == first_zero; ++k) ++first_zero;
      int32_t best_col = -1;
      float best = 0.0f;
      auto consider = [&](int32_t c, float v) {
        if (best_col < 0 || best < v) {
          best_col = c;
          best = v;
        }
      };
      bool zero_seen = first_zero >= m.n_cols;
      for (int32_t k = begin; k < end; ++k) {
        if (!zero_seen && first_zero < m.indices[k]) {
          consider(first_zero, 0.0f);
          zero_seen = true;
        }
        consider(m.indices[k], m.values[k]);
      }
      if (!zero_seen) consider(first_zero, 0.0f);
      out.argmax.push_back(best_col);
    }
    return out;
  }
  const pickle::DenseArray a = pickle::to_dense(doc, doc.root());
  if (a.shape.size() != 2) {
    throw DataError(doc.name() + ": labels must be a 2-D one-hot array, got " +
                    std::to_string(a.shape.size()) + " dimensions");
  }
  out.n_rows = a.shape[0];
  out.n_cols = a.shape[1];
  if (out.n_cols == 0) throw DataError(doc.name() + ": label matrix has no columns");
  if (out.n_rows > std::numeric_limits<int32_t>::max())
    throw DataError(doc.name() + ": too many rows");
  out.argmax.reserve(static_cast<size_t>(out.n_rows));
  for (int64_t r = 0; r < out.n_rows; ++r) {
    const auto first = a.values.begin() + r * out.n_cols;
    row.assign(first, first + out.n_cols);  // PyG compares after .to(torch.float)
    take_row();
  }
  return out;
}

CsrMatrix parse_features(std::string_view bytes, const std::string& file) {
  const pickle::Document doc = pickle::parse(bytes, file);
  return pickle::to_csr(doc, doc.root());
}

[[noreturn]] void mismatch(const std::string& msg) { throw DataError(msg); }

// `s` as one shell word: unchanged when it holds only characters no shell
// reads specially, else in single quotes.
std::string shell_word(const std::string& s) {
  const bool plain = !s.empty() && std::all_of(s.begin(), s.end(), [](unsigned char c) {
    return std::isalnum(c) || std::strchr("_-./:=+,@%", c) != nullptr;
  });
  if (plain) return s;
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// The command that puts ind.<name>.* into `dir`, as a user types it in the
// project root: scripts/get_datasets.sh fetches cora and citeseer when given
// no name, and writes to the project's datasets/ (gcn-train's default root,
// run from there) unless given --dest.
std::string fetch_command(const std::string& name, const fs::path& dir) {
  std::string cmd = "scripts/get_datasets.sh";
  if (dir.lexically_normal() != fs::path("datasets")) cmd += " --dest " + shell_word(dir.string());
  return cmd + " " + lower(name);
}

// Parses one file read from `dir`. An empty file, or one the pickle reader
// finds truncated, is named by its full path with the command that fetches it
// again; other errors pass through as the reader words them.
void parse_file_in(const std::string& name, const fs::path& dir, PlanetoidFile which,
                   const std::string& file, PlanetoidParts& parts) {
  const fs::path path = dir / file;
  const std::string bytes = read_bytes(path);
  if (bytes.empty()) {
    throw DataError(path.string() + ": the file is empty (0 bytes). Fetch it again with `" +
                    fetch_command(name, dir) + "`");
  }
  try {
    parse_planetoid_file(which, bytes, file, parts);
  } catch (const DataError& e) {
    // pickle.cpp words its errors "<file>: offset <k>: <detail>"; the end of
    // the data reached early reads "truncated: <what>", a length field past
    // it "<opcode> declares <n> bytes but only <m> remain" (a cut file, or a
    // damaged length).
    const std::string what = e.what();
    const std::string head = file + ": offset ";
    const size_t colon = what.find(": ", head.size());
    if (what.compare(0, head.size(), head) != 0 || colon == std::string::npos) throw;
    const std::string offset = what.substr(head.size(), colon - head.size());
    std::string detail = what.substr(colon + 2);
    const std::string truncated = "truncated: ";
    std::string state;
    if (detail.compare(0, truncated.size(), truncated) == 0) {
      state = "truncated";
      detail.erase(0, truncated.size());
    } else if (detail.find(" declares ") != std::string::npos &&
               detail.find(" bytes but only ") != std::string::npos) {
      state = "truncated or damaged";
    } else {
      throw;
    }
    throw DataError(path.string() + ": the file is " + state + ": " + detail + " (offset " +
                    offset + " of its " + std::to_string(bytes.size()) +
                    " bytes). Delete it and fetch it again with `" + fetch_command(name, dir) +
                    "`");
  }
}

}  // namespace

std::string planetoid_canonical_name(const std::string& name) {
  const std::string l = lower(name);
  if (l == "cora") return "Cora";
  if (l == "citeseer") return "CiteSeer";
  if (l == "pubmed") return "PubMed";
  throw UsageError("unknown Planetoid dataset '" + name +
                   "' (known: Cora, CiteSeer, PubMed; also synthetic[:key=value,...], or a graph file "
                   "PATH.safetensors or file:PATH)");
}

fs::path resolve_data_root(const std::optional<std::string>& cli_root) {
  if (cli_root && !cli_root->empty()) return fs::path(*cli_root);
  if (const char* env = std::getenv("GCN_DATA_ROOT"); env && *env) return fs::path(env);
  return fs::path("datasets");
}

fs::path find_planetoid_dir(const std::string& name, const fs::path& root) {
  const std::string canon = planetoid_canonical_name(name);
  const std::string prefix = "ind." + lower(name) + ".";
  const fs::path candidates[] = {root, root / canon / "raw"};
  std::string looked;
  for (const fs::path& dir : candidates) {
    std::error_code ec;
    std::vector<std::string> missing;
    for (size_t i = 0; i < kPlanetoidFiles; ++i) {
      const std::string file = prefix + planetoid_extension(static_cast<PlanetoidFile>(i));
      if (!fs::is_regular_file(dir / file, ec)) missing.push_back(file);
    }
    if (missing.empty()) return dir;
    looked += (looked.empty() ? " " : "; ") + dir.string();
    if (!fs::is_directory(dir, ec)) {
      looked += " (does not exist)";
    } else if (missing.size() < kPlanetoidFiles) {
      looked += " (missing";
      for (const std::string& m : missing) looked += " " + m;
      looked += ")";
    }
  }
  throw DataError("Planetoid dataset " + canon + " not found: looked for " + prefix +
                  "{x,y,tx,ty,allx,ally,graph,test.index} in" + looked +
                  ". Fetch it with `" + fetch_command(name, root) +
                  "`, or pass --data-root / set GCN_DATA_ROOT to the folder that holds it (flat, "
                  "or <root>/" + canon + "/raw)");
}

std::vector<int64_t> parse_test_index(std::string_view text, const std::string& file) {
  std::vector<int64_t> out;
  size_t line = 1;
  size_t i = 0;
  while (i < text.size()) {
    const char c = text[i];
    if (c == '\n') ++line;
    if (std::isspace(static_cast<unsigned char>(c))) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < text.size() && !std::isspace(static_cast<unsigned char>(text[j]))) ++j;
    const std::string_view token = text.substr(i, j - i);
    int64_t v = 0;
    for (char d : token) {
      if (d < '0' || d > '9') {
        throw DataError(file + ": line " + std::to_string(line) + ": '" +
                        std::string(token.substr(0, 40)) + "' is not a non-negative integer");
      }
      if (v > (std::numeric_limits<int64_t>::max() - (d - '0')) / 10) {
        throw DataError(file + ": line " + std::to_string(line) + ": index " +
                        std::string(token.substr(0, 40)) + " is out of range");
      }
      v = v * 10 + (d - '0');
    }
    out.push_back(v);
    i = j;
  }
  if (out.empty()) throw DataError(file + ": contains no test indices");
  return out;
}

Dataset load_planetoid(const std::string& name, const fs::path& root, bool normalize) {
  return load_planetoid_dir(name, find_planetoid_dir(name, root), normalize);
}

const char* planetoid_extension(PlanetoidFile which) {
  static constexpr const char* kExtensions[kPlanetoidFiles] = {"x",    "y",    "tx",    "ty",
                                                               "allx", "ally", "graph", "test.index"};
  return kExtensions[static_cast<size_t>(which)];
}

void parse_planetoid_file(PlanetoidFile which, std::string_view bytes, const std::string& file,
                          PlanetoidParts& parts) {
  switch (which) {
    case PlanetoidFile::kX: parts.x = parse_features(bytes, file); return;
    case PlanetoidFile::kTx: parts.tx = parse_features(bytes, file); return;
    case PlanetoidFile::kAllx: parts.allx = parse_features(bytes, file); return;
    case PlanetoidFile::kY: parts.y = parse_labels(bytes, file); return;
    case PlanetoidFile::kTy: parts.ty = parse_labels(bytes, file); return;
    case PlanetoidFile::kAlly: parts.ally = parse_labels(bytes, file); return;
    case PlanetoidFile::kGraph: {
      const pickle::Document doc = pickle::parse(bytes, file);
      parts.graph = pickle::to_adjacency(doc, doc.root());
      return;
    }
    case PlanetoidFile::kTestIndex: parts.test_index = parse_test_index(bytes, file); return;
  }
  throw UsageError("parse_planetoid_file: unknown file kind " +
                   std::to_string(static_cast<int>(which)));
}

Dataset load_planetoid_dir(const std::string& name, const fs::path& dir, bool normalize) {
  (void)planetoid_canonical_name(name);  // an unknown name is refused before any file is read
  const std::string prefix = "ind." + lower(name) + ".";
  PlanetoidParts parts;
  for (size_t i = 0; i < kPlanetoidFiles; ++i) {
    const auto which = static_cast<PlanetoidFile>(i);
    parse_file_in(name, dir, which, prefix + planetoid_extension(which), parts);
  }
  return assemble_planetoid(name, parts, normalize);
}

namespace {

// "ind.cora." + ext: the files' names in messages.
struct FileNames {
  std::string prefix;
  std::string operator()(const char* ext) const { return prefix + ext; }
};

// The parts come from parse_planetoid_file, which guarantees these; parts
// built by other means are checked rather than trusted. Then the shapes must
// agree across files before anything is combined.
void check_parts(const PlanetoidParts& parts, const FileNames& file) {
  const CsrMatrix& x = parts.x;
  const CsrMatrix& tx = parts.tx;
  const CsrMatrix& allx = parts.allx;
  const PlanetoidLabels& y = parts.y;
  const PlanetoidLabels& ty = parts.ty;
  const PlanetoidLabels& ally = parts.ally;
  const std::vector<int64_t>& test_index = parts.test_index;
  if (test_index.empty()) mismatch(file("test.index") + ": no test indices");
  for (const auto& [m, ext] :
       {std::pair{&x, "x"}, std::pair{&tx, "tx"}, std::pair{&allx, "allx"}}) {
    m->validate(file(ext).c_str());
  }
  for (const auto& [l, ext] : {std::pair{&y, "y"}, std::pair{&ty, "ty"}, std::pair{&ally, "ally"}}) {
    if (l->n_rows < 0 || static_cast<size_t>(l->n_rows) != l->argmax.size() || l->n_cols <= 0) {
      mismatch(file(ext) + ": inconsistent label matrix");
    }
  }

  for (const auto& [m, ext] : {std::pair{&x, "x"}, std::pair{&tx, "tx"}}) {
    if (m->n_cols != allx.n_cols) {
      mismatch(file(ext) + ": " + std::to_string(m->n_cols) + " feature columns but " +
               file("allx") + " has " + std::to_string(allx.n_cols));
    }
  }
  for (const auto& [l, ext] : {std::pair{&y, "y"}, std::pair{&ty, "ty"}}) {
    if (l->n_cols != ally.n_cols) {
      mismatch(file(ext) + ": " + std::to_string(l->n_cols) + " label columns but " + file("ally") +
               " has " + std::to_string(ally.n_cols));
    }
  }
  auto same_rows = [&](int64_t a, const char* ea, int64_t b, const char* eb) {
    if (a != b) {
      mismatch(file(ea) + " has " + std::to_string(a) + " rows but " + file(eb) + " has " +
               std::to_string(b));
    }
  };
  same_rows(x.n_rows, "x", y.n_rows, "y");
  same_rows(allx.n_rows, "allx", ally.n_rows, "ally");
  same_rows(tx.n_rows, "tx", ty.n_rows, "ty");
  same_rows(static_cast<int64_t>(test_index.size()), "test.index", tx.n_rows, "tx");
}

// The test rows: the test indices sorted, and how far PyG extends tx/ty.
struct TestRows {
  std::vector<int64_t> sorted;  // the test indices, ascending
  int64_t min_test = 0;
  int64_t n_ext = 0;            // rows of tx/ty extended to [min, max] of the test indices
  int64_t n_nodes = 0;          // allx's rows + n_ext
};

TestRows test_rows(const PlanetoidParts& parts, const FileNames& file) {
  const CsrMatrix& tx = parts.tx;
  const CsrMatrix& allx = parts.allx;
  const PlanetoidLabels& y = parts.y;
  const pickle::Adjacency& graph = parts.graph;
  const std::vector<int64_t>& test_index = parts.test_index;
  // PyG extends tx/ty to cover [min, max] of the test indices (CiteSeer has
  // test nodes without features); for contiguous indices this is a no-op.
  TestRows rows;
  std::vector<int64_t>& sorted = rows.sorted;
  sorted = test_index;
  std::sort(sorted.begin(), sorted.end());
  if (std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end()) {
    mismatch(file("test.index") + ": index " +
             std::to_string(*std::adjacent_find(sorted.begin(), sorted.end())) +
             " appears more than once");
  }
  // The graph names every node (PyG's NELL path uses len(graph) as the node
  // count); test indices past it would make the zero padding below unbounded.
  int64_t graph_nodes = static_cast<int64_t>(graph.size());
  // Ids past int32 could never be nodes; rejecting them here also keeps the
  // + 1 below from overflowing.
  constexpr int64_t kMaxNode = std::numeric_limits<int32_t>::max() - 1;
  for (const auto& [key, targets] : graph) {
    if (key < 0 || key > kMaxNode) {
      mismatch(file("graph") + ": node " + std::to_string(key) + " is outside [0, 2^31-1)");
    }
    graph_nodes = std::max(graph_nodes, key + 1);
    for (int64_t t : targets) {
      if (t < 0 || t > kMaxNode) {
        mismatch(file("graph") + ": neighbour " + std::to_string(t) + " of node " +
                 std::to_string(key) + " is outside [0, 2^31-1)");
      }
      graph_nodes = std::max(graph_nodes, t + 1);
    }
  }
  if (sorted.back() >= std::max<int64_t>(graph_nodes, int64_t{allx.n_rows} + tx.n_rows)) {
    mismatch(file("test.index") + ": index " + std::to_string(sorted.back()) +
             " is out of range: " + file("graph") + " has " + std::to_string(graph_nodes) +
             " nodes");
  }
  const int64_t min_test = rows.min_test = sorted.front();
  const int64_t n_ext = rows.n_ext = sorted.back() - min_test + 1;
  // PyG pads tx/ty with zero rows up to [min, max] of the test indices
  // (CiteSeer: 15 for 1000 test nodes). Every padding row costs memory, so
  // bound them by the test rows the files actually hold.
  if (n_ext - tx.n_rows > std::max<int64_t>(tx.n_rows, 1024)) {
    mismatch(file("test.index") + ": indices span " + std::to_string(n_ext) + " rows (" +
             std::to_string(min_test) + " to " + std::to_string(sorted.back()) + ") for " +
             std::to_string(tx.n_rows) + " test rows in " + file("tx"));
  }
  const int64_t n_nodes = rows.n_nodes = allx.n_rows + n_ext;
  if (n_nodes > std::numeric_limits<int32_t>::max()) {
    mismatch(file("test.index") + ": index " + std::to_string(sorted.back()) + " is out of range");
  }
  if (sorted.back() >= n_nodes) {
    mismatch(file("test.index") + ": index " + std::to_string(sorted.back()) +
             " is out of range for " + std::to_string(n_nodes) + " nodes (" +
             std::to_string(allx.n_rows) + " in " + file("allx") + " + " + std::to_string(n_ext) +
             " test rows)");
  }
  if (y.n_rows + kValSize > n_nodes) {
    mismatch(file("y") + ": " + std::to_string(y.n_rows) + " training rows + " +
             std::to_string(kValSize) + " validation nodes exceed the " + std::to_string(n_nodes) +
             " nodes");
  }
  return rows;
}

// x = cat(allx, tx_ext): where each of its rows comes from.
struct Source {
  int8_t file;  // 0: allx/ally, 1: tx/ty, -1: an all-zero padding row
  int32_t row;
};

// Where each node's row comes from, after x[test_index] = x[sorted_test_index].
std::vector<Source> row_sources(const PlanetoidParts& parts, const TestRows& rows) {
  std::vector<Source> stacked(static_cast<size_t>(rows.n_nodes), Source{-1, 0});
  for (int32_t r = 0; r < parts.allx.n_rows; ++r) stacked[r] = Source{0, r};
  for (size_t i = 0; i < rows.sorted.size(); ++i) {
    stacked[static_cast<size_t>(parts.allx.n_rows + rows.sorted[i] - rows.min_test)] =
        Source{1, static_cast<int32_t>(i)};
  }
  // x[test_index] = x[sorted_test_index]: the right side is gathered first.
  std::vector<Source> final_rows = stacked;
  for (size_t i = 0; i < parts.test_index.size(); ++i) {
    final_rows[static_cast<size_t>(parts.test_index[i])] = stacked[static_cast<size_t>(rows.sorted[i])];
  }
  return final_rows;
}

// The features and labels, row by row from their sources.
void gather_rows(const PlanetoidParts& parts, const std::vector<Source>& final_rows, const std::string& canon,
                 Dataset& ds) {
  CsrMatrix& f = ds.features;
  f.n_rows = ds.n_nodes;
  f.n_cols = ds.n_features;
  f.indptr.reserve(static_cast<size_t>(ds.n_nodes) + 1);
  f.indptr.push_back(0);
  ds.labels.reserve(static_cast<size_t>(ds.n_nodes));
  for (const Source& s : final_rows) {
    if (s.file >= 0) {
      const CsrMatrix& m = s.file == 0 ? parts.allx : parts.tx;
      const int32_t begin = m.indptr[s.row];
      const int32_t end = m.indptr[s.row + 1];
      if (f.indices.size() + static_cast<size_t>(end - begin) >
          static_cast<size_t>(std::numeric_limits<int32_t>::max())) {
        mismatch(canon + ": more than 2^31-1 feature non-zeros");
      }
      f.indices.insert(f.indices.end(), m.indices.begin() + begin, m.indices.begin() + end);
      f.values.insert(f.values.end(), m.values.begin() + begin, m.values.begin() + end);
      ds.labels.push_back((s.file == 0 ? parts.ally : parts.ty).argmax[static_cast<size_t>(s.row)]);
    } else {
      ds.labels.push_back(0);  // argmax of an all-zero row
    }
    f.indptr.push_back(static_cast<int32_t>(f.indices.size()));
  }
}

// edge_index_from_dict: (key, v) per neighbour, remove self loops, coalesce.
void gather_edges(const pickle::Adjacency& graph, int64_t n_nodes, const FileNames& file, Dataset& ds) {
  std::vector<std::pair<int32_t, int32_t>> edges;
  for (const auto& [key, targets] : graph) {
    if (key < 0 || key >= n_nodes) {
      mismatch(file("graph") + ": node " + std::to_string(key) + " is outside [0, " +
               std::to_string(n_nodes) + ")");
    }
    for (int64_t t : targets) {
      if (t < 0 || t >= n_nodes) {
        mismatch(file("graph") + ": neighbour " + std::to_string(t) + " of node " +
                 std::to_string(key) + " is outside [0, " + std::to_string(n_nodes) + ")");
      }
      if (t != key) edges.emplace_back(static_cast<int32_t>(key), static_cast<int32_t>(t));
    }
  }
  std::sort(edges.begin(), edges.end());
  edges.erase(std::unique(edges.begin(), edges.end()), edges.end());
  ds.edge_src.reserve(edges.size());
  ds.edge_dst.reserve(edges.size());
  for (const auto& [s, d] : edges) {
    ds.edge_src.push_back(s);
    ds.edge_dst.push_back(d);
  }
}

}  // namespace

Dataset assemble_planetoid(const std::string& name, const PlanetoidParts& parts, bool normalize) {
  const std::string canon = planetoid_canonical_name(name);
  const FileNames file{"ind." + lower(name) + "."};
  check_parts(parts, file);
  const TestRows rows = test_rows(parts, file);
  const int64_t n_nodes = rows.n_nodes;
  const std::vector<Source> final_rows = row_sources(parts, rows);
  const PlanetoidLabels& y = parts.y;
  const CsrMatrix& allx = parts.allx;
  const PlanetoidLabels& ally = parts.ally;
  Dataset ds;
  ds.name = canon;
  ds.n_nodes = static_cast<int32_t>(n_nodes);
  ds.n_features = allx.n_cols;
  if (ally.n_cols > std::numeric_limits<int32_t>::max())
    mismatch(file("ally") + ": too many classes");
  ds.n_classes = static_cast<int32_t>(ally.n_cols);
  gather_rows(parts, final_rows, canon, ds);
  ds.split.assign(static_cast<size_t>(n_nodes), 0);
  for (int64_t i = 0; i < y.n_rows; ++i) ds.split[static_cast<size_t>(i)] |= kTrainBit;
  for (int64_t i = y.n_rows; i < y.n_rows + kValSize; ++i)
    ds.split[static_cast<size_t>(i)] |= kValBit;
  for (int64_t i : parts.test_index) ds.split[static_cast<size_t>(i)] |= kTestBit;
  gather_edges(parts.graph, n_nodes, file, ds);
  if (normalize) normalize_features(ds.features);
  ds.validate();
  return ds;
}

}  // namespace gcn
