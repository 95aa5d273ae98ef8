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
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "gcn/checkpoint.hpp"
#include "gcn/error.hpp"
#include "gcn/pickle.hpp"
#include "gcn/planetoid.hpp"

namespace gcn::fuzz {

namespace fs = std::filesystem;

inline std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path.string() + ": cannot open file");
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

inline void write_file(const fs::path& path, std::string_view bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) {
    std::fprintf(stderr, "fuzz: cannot write %s\n", path.c_str());
    std::abort();  // the harness's own environment failed, not the code under test
  }
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
    const GcnShape shape = shape_from_safetensors(file, "fuzz.safetensors");
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

// One Planetoid dataset in a scratch folder, loaded with some of its eight
// files replaced. Input layout: byte 0 is a selector (bit 3: skip
// NormalizeFeatures); without bit 4, bits 0-2 pick one file of kExtensions and
// the rest of the input is its content. With bit 4 the rest is a sequence of
// records <file byte (bits 0-2)> <u32 little-endian length> <content>, for
// inconsistencies between files (a truncated last record is cut short).
class PlanetoidTarget {
 public:
  static constexpr const char* kExtensions[] = {"x",    "y",    "tx",    "ty",
                                                "allx", "ally", "graph", "test.index"};

  // Copies ind.<name>.* from `base_dir` into a fresh folder under `scratch_root`.
  PlanetoidTarget(const fs::path& base_dir, const fs::path& scratch_root, std::string name)
      : name_(std::move(name)) {
    std::string templ = (scratch_root / "gcn-fuzz-planetoid-XXXXXX").string();
    if (!mkdtemp(templ.data())) {
      std::perror(("fuzz: mkdtemp " + templ).c_str());
      std::abort();
    }
    dir_ = templ;
    for (const char* ext : kExtensions) {
      base_.push_back(read_file(base_dir / file(ext)));
      write_file(dir_ / file(ext), base_.back());
    }
  }
  ~PlanetoidTarget() {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  PlanetoidTarget(const PlanetoidTarget&) = delete;
  PlanetoidTarget& operator=(const PlanetoidTarget&) = delete;

  const fs::path& dir() const { return dir_; }

  void run(std::string_view input) {
    if (input.empty()) return;
    const auto selector = static_cast<unsigned char>(input[0]);
    const bool normalize = (selector & 8u) == 0;
    input.remove_prefix(1);
    std::vector<std::pair<size_t, std::string_view>> files;  // (which, content)
    if ((selector & 16u) == 0) {
      files.emplace_back(selector & 7u, input);
    } else {
      while (!input.empty()) {
        const size_t which = static_cast<unsigned char>(input[0]) & 7u;
        uint32_t n = 0;
        for (size_t i = 1; i < 5 && i < input.size(); ++i) {
          n |= uint32_t{static_cast<unsigned char>(input[i])} << (8 * (i - 1));
        }
        input.remove_prefix(std::min<size_t>(5, input.size()));
        const size_t len = std::min<size_t>(n, input.size());
        files.emplace_back(which, input.substr(0, len));
        input.remove_prefix(len);
      }
    }
    // Put the base files back whether or not the load throws.
    struct Restore {
      PlanetoidTarget& t;
      std::vector<size_t> changed;
      ~Restore() {
        for (size_t w : changed) write_file(t.dir_ / t.file(kExtensions[w]), t.base_[w]);
      }
    } restore{*this, {}};
    for (const auto& [which, content] : files) {
      write_file(dir_ / file(kExtensions[which]), content);
      restore.changed.push_back(which);
    }
    (void)load_planetoid_dir(name_, dir_, normalize);
  }

 private:
  std::string file(const char* ext) const { return "ind." + name_ + "." + ext; }

  std::string name_;
  fs::path dir_;
  std::vector<std::string> base_;  // (8) the base files, in kExtensions order
};

}  // namespace gcn::fuzz
