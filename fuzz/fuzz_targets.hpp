// The reader entry points that the libFuzzer harnesses (fuzz/fuzz_*.cpp) and
// tests/test_regressions.cpp share, so a committed regression input replays
// exactly what the fuzzer ran. Each target lets gcn::Error escape (a refused
// input is the expected outcome); anything else escaping is a bug.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "gcn/train/checkpoint.hpp"
#include "gcn/error.hpp"
#include "gcn/data/graph_file.hpp"
#include "gcn/data/pickle.hpp"
#include "gcn/data/planetoid.hpp"
#include "gcn/data/split.hpp"

namespace gcn::fuzz {

namespace fs = std::filesystem;

inline std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path.string() + ": cannot open file");
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Every typed extractor on one value, each on its own: one extractor refusing
// the value must not keep the others from running.
inline void extract_all(const pickle::Document& doc, const pickle::Value& v) {
  try {
    (void)pickle::to_csr(doc, v);
  } catch (const Error&) {
  }
  try {
    (void)pickle::to_dense(doc, v);
  } catch (const Error&) {
  }
  try {
    (void)pickle::to_int64(doc, v);
  } catch (const Error&) {
  }
  try {
    (void)pickle::to_adjacency(doc, v);
  } catch (const Error&) {
  }
}

// gcn::pickle::parse, then the extractors on the root and on the first
// container-like values below it (arrays inside a csr_matrix, lists in a dict).
inline void pickle_target(std::string_view bytes) {
  const pickle::Document doc = pickle::parse(bytes, "fuzz");
  extract_all(doc, doc.root());
  constexpr size_t kMaxInner = 16;  // keeps one input's cost near O(size)
  size_t inner = 0;
  for (size_t i = 0; i < doc.size() && inner < kMaxInner; ++i) {
    const pickle::Value& v = doc.at(static_cast<pickle::ValueId>(i));
    if (&v == &doc.root()) continue;
    using pickle::Kind;
    if (v.kind == Kind::kNdArray || v.kind == Kind::kCsrMatrix || v.kind == Kind::kDict ||
        v.kind == Kind::kDefaultDict) {
      extract_all(doc, v);
      ++inner;
    }
  }
}

inline void test_index_target(std::string_view bytes) {
  (void)parse_test_index(bytes, "fuzz.test.index");
}

// gcn::parse_safetensors, then the model and training-state readers on the
// shape it implies, and serializing what was read.
inline void safetensors_target(std::string_view bytes) {
  const SafetensorsFile file = parse_safetensors(bytes, "fuzz.safetensors");
  try {
    const ModelShape shape = shape_from_safetensors(file, "fuzz.safetensors");
    try {
      (void)model_from_safetensors(file, shape, "fuzz.safetensors");
    } catch (const Error&) {
    }
    try {
      (void)train_state_from_safetensors(file, shape, "fuzz.safetensors");
    } catch (const Error&) {
    }
  } catch (const Error&) {
  }
  (void)serialize_safetensors(file);
}

// gcn::parse_graph_file, then what gcn-train does with a graph it read:
// NormalizeFeatures, --to-undirected, each split. A file that loads must
// survive the export round trip unchanged (serialize_graph_file, then
// parse_graph_file again); a difference aborts, as a crash would.
inline void graph_file_target(std::string_view bytes) {
  const GraphFile file = parse_graph_file(bytes, "fuzz.safetensors");
  const Dataset& d = file.data;
  {
    const GraphFile again = parse_graph_file(serialize_graph_file(d), "fuzz.safetensors");
    const Dataset& e = again.data;
    if (again.has_masks != true || e.name != d.name || e.n_nodes != d.n_nodes || e.n_features != d.n_features ||
        e.n_classes != d.n_classes || e.labels != d.labels || e.edge_src != d.edge_src ||
        e.edge_dst != d.edge_dst || e.split != d.split || e.features.indptr != d.features.indptr ||
        e.features.indices != d.features.indices || e.features.values != d.features.values) {
      std::fprintf(stderr, "fuzz_graph_file: the export round trip changed the graph\n");
      std::abort();
    }
  }
  // NormalizeFeatures makes negative features dense, by design up to 2^27
  // entries (a [6, 16.7M] CSR matrix with one -1 is 100M dense entries, as in
  // PyG): legitimate, but seconds per input; the fuzzer skips such shapes.
  if (int64_t{d.features.n_rows} * d.features.n_cols <= (int64_t{1} << 20)) {
    try {
      Dataset x = d;
      normalize_features(x.features);
    } catch (const Error&) {
    }
  }
  try {
    Dataset u = d;
    to_undirected(u);
    u.validate();
  } catch (const Error&) {
  }
  for (const SplitKind kind : {SplitKind::kDefault, SplitKind::kPlanetoid, SplitKind::kRandom, SplitKind::kFile}) {
    try {
      Dataset s = d;
      SplitRequest request;
      request.kind = kind;
      request.spec.train_per_class = 2;
      request.spec.num_val = SplitSize{0.25, true};
      request.spec.num_test = SplitSize{3, false};
      request.sizes_given = kind == SplitKind::kRandom || kind == SplitKind::kPlanetoid;
      (void)apply_split(s, request, /*graph_file=*/true, file.has_masks, "fuzz.safetensors");
      s.validate();
    } catch (const Error&) {
    }
  }
}

// One Planetoid dataset, loaded with some of its eight files replaced. Input
// layout: byte 0 is a selector (bit 3: skip NormalizeFeatures); without bit 4,
// bits 0-2 pick one file (PlanetoidFile order) and the rest of the input is its
// content. With bit 4 the rest is a sequence of records <file byte (bits 0-2)>
// <u32 little-endian length> <content>, for inconsistencies between files (a
// truncated last record is cut short; of several records for one file the
// last wins).
//
// The base files are parsed once: each input parses only the files it
// replaces, then runs assemble_planetoid, the same steps load_planetoid_dir
// takes after reading the files (which the unit tests cover).
class PlanetoidTarget {
 public:
  // Parses ind.<name>.* in `base_dir`; they must load cleanly.
  PlanetoidTarget(const fs::path& base_dir, std::string name) : name_(std::move(name)) {
    for (size_t i = 0; i < kPlanetoidFiles; ++i) {
      const auto which = static_cast<PlanetoidFile>(i);
      const std::string f = file(which);
      parse_planetoid_file(which, read_file(base_dir / f), f, base_);
    }
    (void)assemble_planetoid(name_, base_);
  }

  void run(std::string_view input) {
    if (input.empty()) return;
    const auto selector = static_cast<unsigned char>(input[0]);
    const bool normalize = (selector & 8u) == 0;
    input.remove_prefix(1);
    std::optional<std::string_view> replaced[kPlanetoidFiles];
    if ((selector & 16u) == 0) {
      replaced[selector & 7u] = input;
    } else {
      while (!input.empty()) {
        const size_t which = static_cast<unsigned char>(input[0]) & 7u;
        uint32_t n = 0;
        for (size_t i = 1; i < 5 && i < input.size(); ++i) {
          n |= uint32_t{static_cast<unsigned char>(input[i])} << (8 * (i - 1));
        }
        input.remove_prefix(std::min<size_t>(5, input.size()));
        const size_t len = std::min<size_t>(n, input.size());
        replaced[which] = input.substr(0, len);
        input.remove_prefix(len);
      }
    }
    // The replaced files are parsed into `fresh`, then swapped into base_ for
    // the assembly and back afterwards (whether or not it throws): copying the
    // base parts per input would cost more than parsing one file.
    PlanetoidParts fresh;
    struct SwapBack {
      PlanetoidParts& base;
      PlanetoidParts& fresh;
      std::vector<PlanetoidFile> swapped;
      ~SwapBack() {
        for (PlanetoidFile w : swapped) swap_part(w, base, fresh);
      }
    } guard{base_, fresh, {}};
    for (size_t i = 0; i < kPlanetoidFiles; ++i) {
      if (!replaced[i]) continue;
      const auto which = static_cast<PlanetoidFile>(i);
      parse_planetoid_file(which, *replaced[i], file(which), fresh);
      swap_part(which, base_, fresh);
      guard.swapped.push_back(which);
    }
    (void)assemble_planetoid(name_, base_, normalize);
  }

 private:
  std::string file(PlanetoidFile which) const {
    return "ind." + name_ + "." + planetoid_extension(which);
  }

  static void swap_part(PlanetoidFile which, PlanetoidParts& a, PlanetoidParts& b) {
    switch (which) {
      case PlanetoidFile::kX: std::swap(a.x, b.x); break;
      case PlanetoidFile::kY: std::swap(a.y, b.y); break;
      case PlanetoidFile::kTx: std::swap(a.tx, b.tx); break;
      case PlanetoidFile::kTy: std::swap(a.ty, b.ty); break;
      case PlanetoidFile::kAllx: std::swap(a.allx, b.allx); break;
      case PlanetoidFile::kAlly: std::swap(a.ally, b.ally); break;
      case PlanetoidFile::kGraph: std::swap(a.graph, b.graph); break;
      case PlanetoidFile::kTestIndex: std::swap(a.test_index, b.test_index); break;
    }
  }

  std::string name_;
  PlanetoidParts base_;
};

}  // namespace gcn::fuzz
