#include "gcn/nn/params.hpp"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "gcn/error.hpp"
#include "gcn/nn/registry.hpp"
#include "gcn/rng.hpp"

namespace gcn {

ModelShape::ModelShape() : type(&find_model_type("gcn")) {}

ModelShape::ModelShape(int32_t features, int32_t hidden_width, int32_t classes)
    : type(&find_model_type("gcn")), n_features(features), hidden(hidden_width), n_classes(classes) {}

ModelShape ModelShape::of(const std::string& type_name, int32_t features, int32_t hidden_width, int32_t classes) {
  ModelShape s(features, hidden_width, classes);
  s.type = &find_model_type(type_name);
  s.hyper = s.type->default_hyper();
  return s;
}

int32_t ModelShape::width(int k) const {
  if (k >= layers - 1) return n_classes;
  if (!hiddens.empty()) return hiddens[static_cast<std::size_t>(k)];
  return hidden;
}

int64_t ModelShape::out_cols(int k) const {
  return static_cast<int64_t>(width(k)) * type->width_multiplier(*this, k);
}

double ModelShape::hp(const std::string& name) const {
  const auto it = hyper.find(name);
  if (it == hyper.end()) throw Error(fmt::format("{}: no hyperparameter {}", type->name(), name));
  return it->second;
}

bool ModelShape::same_parameters(const ModelShape& o) const {
  const ParamLayout a(*this), b(o);
  if (a.tensors.size() != b.tensors.size()) return false;
  for (std::size_t i = 0; i < a.tensors.size(); ++i) {
    if (a.tensors[i].name != b.tensors[i].name || a.tensors[i].file_shape != b.tensors[i].file_shape) return false;
  }
  return true;
}

bool ModelShape::operator==(const ModelShape& o) const {
  if (type != o.type || n_features != o.n_features || n_classes != o.n_classes || layers != o.layers ||
      input_dropout != o.input_dropout || hyper != o.hyper) {
    return false;
  }
  for (int k = 0; k < layers; ++k) {
    if (width(k) != o.width(k)) return false;
  }
  return true;
}

void ModelShape::validate() const {
  if (layers < 1 || layers > 16) throw UsageError(fmt::format("--layers {}: use 1 to 16 layers", layers));
  if (!hiddens.empty() && static_cast<int32_t>(hiddens.size()) != layers - 1) {
    throw UsageError(fmt::format("{} hidden widths for {} layers: give one width, or one per hidden layer ({})",
                                 hiddens.size(), layers, layers - 1));
  }
  if (n_features < 1 || n_classes < 1) {
    throw UsageError(fmt::format("a model of {} features and {} classes", n_features, n_classes));
  }
  if (!(input_dropout >= 0.0f && input_dropout < 1.0f)) {
    throw UsageError(fmt::format("--input-dropout: {} is not in [0, 1)", input_dropout));
  }
  for (const HyperParam& p : type->hyper_params()) {
    const auto it = hyper.find(p.name);
    if (it == hyper.end()) throw Error(fmt::format("{}: hyperparameter {} not set", type->name(), p.name));
    const double v = it->second;
    const bool in_range = v >= p.min && (p.max_exclusive ? v < p.max : v <= p.max);
    if (!in_range || (p.kind != HyperParam::Kind::kFloat && v != std::floor(v))) {
      throw UsageError(fmt::format("--{}: {} is not in [{}, {}{}", p.name, v, p.min, p.max, p.max_exclusive ? ")" : "]"));
    }
  }
  for (const auto& [name, value] : hyper) {
    if (!type->find_hyper(name)) {
      throw UsageError(fmt::format("--{} is not a hyperparameter of --model {}", name, type->name()));
    }
  }
  for (int k = 0; k < layers; ++k) {
    if (width(k) < 1) throw UsageError(fmt::format("layer {} has width {}; widths must be at least 1", k + 1, width(k)));
    if (out_cols(k) > (int64_t{1} << 24)) {
      throw UsageError(fmt::format("layer {} has {} output columns; at most {}", k + 1, out_cols(k), 1 << 24));
    }
  }
  type->validate(*this);
}

std::string ModelShape::describe() const {
  std::string out = fmt::format("{} {}", type->name(), n_features);
  for (int k = 0; k < layers; ++k) {
    const int32_t m = type->width_multiplier(*this, k);
    out += m > 1 ? fmt::format("-{}x{}", m, width(k)) : fmt::format("-{}", width(k));
  }
  for (const HyperParam& p : type->hyper_params()) {
    if (p.architecture && p.name != "heads") out += fmt::format(" {}={}", p.name, hp(p.name));
  }
  return out;
}

// ---- tensors ------------------------------------------------------------------

namespace {

// kStacked: PyG [A, K, R, C] (rank 3: A = 1) against ours (A·R, K·C).
struct Stacked {
  int64_t a, k, r, c;
};
Stacked stacked(const ParamTensor& t) {
  const std::vector<int64_t>& f = t.file_shape;
  if (f.size() == 3) return {1, f[0], f[1], f[2]};
  return {f[0], f[1], f[2], f[3]};
}

}  // namespace

void ParamTensor::to_file(const float* ours, float* file) const {
  switch (layout) {
    case Layout::kSame:
      std::copy(ours, ours + size(), file);
      return;
    case Layout::kTransposed:
      for (int64_t i = 0; i < rows; ++i) {
        for (int64_t o = 0; o < cols; ++o) file[o * rows + i] = ours[i * cols + o];
      }
      return;
    case Layout::kStacked: {
      const Stacked s = stacked(*this);
      for (int64_t a = 0; a < s.a; ++a) {
        for (int64_t k = 0; k < s.k; ++k) {
          for (int64_t r = 0; r < s.r; ++r) {
            for (int64_t c = 0; c < s.c; ++c) {
              file[((a * s.k + k) * s.r + r) * s.c + c] = ours[(a * s.r + r) * (s.k * s.c) + k * s.c + c];
            }
          }
        }
      }
      return;
    }
  }
}

void ParamTensor::from_file(const float* file, float* ours) const {
  switch (layout) {
    case Layout::kSame:
      std::copy(file, file + size(), ours);
      return;
    case Layout::kTransposed:
      for (int64_t i = 0; i < rows; ++i) {
        for (int64_t o = 0; o < cols; ++o) ours[i * cols + o] = file[o * rows + i];
      }
      return;
    case Layout::kStacked: {
      const Stacked s = stacked(*this);
      for (int64_t a = 0; a < s.a; ++a) {
        for (int64_t k = 0; k < s.k; ++k) {
          for (int64_t r = 0; r < s.r; ++r) {
            for (int64_t c = 0; c < s.c; ++c) {
              ours[(a * s.r + r) * (s.k * s.c) + k * s.c + c] = file[((a * s.k + k) * s.r + r) * s.c + c];
            }
          }
        }
      }
      return;
    }
  }
}

ParamLayout::ParamLayout(const ModelShape& s) { s.type->declare_params(s, *this); }

void ParamLayout::add(std::string name, int32_t layer, ParamTensor::Init init, ParamTensor::Layout layout, int64_t rows,
                      int64_t cols, std::vector<int64_t> file_shape, int64_t fan_in) {
  int64_t numel = 1;
  for (int64_t d : file_shape) numel *= d;
  const bool stacked_ok = layout != ParamTensor::Layout::kStacked || file_shape.size() == 3 || file_shape.size() == 4;
  if (numel != rows * cols || !stacked_ok) {
    throw Error(fmt::format("parameter {}: {} values in the file's shape, ours ({}, {})", name, numel, rows, cols));
  }
  ParamTensor t;
  t.name = std::move(name);
  t.init = init;
  t.layout = layout;
  t.rows = rows;
  t.cols = cols;
  t.file_shape = std::move(file_shape);
  t.fan_in = fan_in;
  t.offset = total;
  t.layer = layer;
  t.index_in_layer = !tensors.empty() && tensors.back().layer == layer ? tensors.back().index_in_layer + 1 : 0;
  total += rows * cols;
  tensors.push_back(std::move(t));
}

void ParamLayout::add_weight(const std::string& name, int32_t layer, ParamTensor::Init init, int64_t in, int64_t out) {
  add(name, layer, init, ParamTensor::Layout::kTransposed, in, out, {out, in}, in);
}

void ParamLayout::add_vector(const std::string& name, int32_t layer, ParamTensor::Init init, int64_t n, int64_t fan_in) {
  add(name, layer, init, ParamTensor::Layout::kSame, 1, n, {n}, fan_in);
}

const ParamTensor* ParamLayout::find(const std::string& name) const {
  for (const ParamTensor& t : tensors) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

std::vector<float> init_params(const ModelShape& shape, uint64_t seed) {
  const ParamLayout layout(shape);
  std::vector<float> p(static_cast<std::size_t>(layout.total), 0.0f);
  std::vector<float> file;
  for (const ParamTensor& t : layout.tensors) {
    // One stream per tensor; the tutorial GCN's weights keep theirs (0x57317, 0x57327).
    const uint64_t stream = 0x57307 + 0x10 * static_cast<uint64_t>(t.layer + 1) + static_cast<uint64_t>(t.index_in_layer);
    double bound = 0.0;
    switch (t.init) {
      case ParamTensor::Init::kZeros: continue;
      case ParamTensor::Init::kGlorot: {
        // PyG's glorot: over the tensor's last two dimensions.
        const std::vector<int64_t>& fs = t.file_shape;
        const int64_t a = fs.size() >= 2 ? fs[fs.size() - 2] : 1, b = fs.back();
        bound = std::sqrt(6.0 / static_cast<double>(a + b));
        break;
      }
      case ParamTensor::Init::kUniformFanIn:
        bound = 1.0 / std::sqrt(static_cast<double>(t.fan_in));  // kaiming_uniform(a = sqrt(5)): sqrt(6 / (6 · fan_in))
        break;
    }
    // The draws fill the tensor in our order (as the tutorial GCN always did).
    const auto b = static_cast<float>(bound);
    for (int64_t i = 0; i < t.size(); ++i) {
      p[static_cast<std::size_t>(t.offset + i)] = (2.0f * uniform01(seed, stream, static_cast<uint64_t>(i)) - 1.0f) * b;
    }
  }
  return p;
}

}  // namespace gcn
