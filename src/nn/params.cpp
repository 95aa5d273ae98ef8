#include "gcn/nn/params.hpp"

#include <cmath>

#include <fmt/format.h>

#include "gcn/error.hpp"
#include "gcn/rng.hpp"

namespace gcn {

const char* model_kind_name(ModelKind kind) {
  switch (kind) {
    case ModelKind::kGcn: return "gcn";
    case ModelKind::kSage: return "sage";
    case ModelKind::kGat: return "gat";
  }
  return "?";
}

const char* model_layer_name(ModelKind kind) {
  switch (kind) {
    case ModelKind::kGcn: return "GCNConv";
    case ModelKind::kSage: return "SAGEConv";
    case ModelKind::kGat: return "GATConv";
  }
  return "?";
}

int32_t GcnShape::width(int k) const {
  if (k >= layers - 1) return n_classes;
  if (!hiddens.empty()) return hiddens[static_cast<std::size_t>(k)];
  return hidden;
}

int32_t GcnShape::layer_heads(int k) const { return kind == ModelKind::kGat && k < layers - 1 ? heads : 1; }

bool GcnShape::same_architecture(const GcnShape& o) const {
  if (n_features != o.n_features || n_classes != o.n_classes || kind != o.kind || layers != o.layers) return false;
  for (int k = 0; k < layers; ++k) {
    if (width(k) != o.width(k) || layer_heads(k) != o.layer_heads(k)) return false;
  }
  return true;
}

void GcnShape::validate() const {
  if (layers < 1 || layers > 16) throw UsageError(fmt::format("--layers {}: use 1 to 16 layers", layers));
  if (!hiddens.empty() && static_cast<int32_t>(hiddens.size()) != layers - 1) {
    throw UsageError(fmt::format("{} hidden widths for {} layers: give one width, or one per hidden layer ({})",
                                 hiddens.size(), layers, layers - 1));
  }
  if (heads < 1 || heads > 1024) throw UsageError(fmt::format("--heads {}: use 1 to 1024", heads));
  for (int k = 0; k < layers; ++k) {
    if (width(k) < 1) throw UsageError(fmt::format("layer {} has width {}; widths must be at least 1", k + 1, width(k)));
    if (out_cols(k) > (int64_t{1} << 24)) {
      throw UsageError(fmt::format("layer {} has {} output columns; at most {}", k + 1, out_cols(k), 1 << 24));
    }
  }
  if (n_features < 1 || n_classes < 1) {
    throw UsageError(fmt::format("a model of {} features and {} classes", n_features, n_classes));
  }
  for (float p : {input_dropout, attention_dropout}) {
    if (!(p >= 0.0f && p < 1.0f)) throw UsageError(fmt::format("dropout {} outside [0, 1)", p));
  }
}

std::string GcnShape::describe() const {
  std::string out = fmt::format("{} {}", model_kind_name(kind), n_features);
  for (int k = 0; k < layers; ++k) {
    if (layer_heads(k) > 1) {
      out += fmt::format("-{}x{}", layer_heads(k), width(k));
    } else {
      out += fmt::format("-{}", width(k));
    }
  }
  return out;
}

std::vector<int64_t> ParamTensor::file_shape() const {
  switch (kind) {
    case Kind::kWeight: return {cols, rows};
    case Kind::kAttention: return {1, heads, cols / heads};
    case Kind::kVector: break;
  }
  return {cols};
}

ParamLayout::ParamLayout(const GcnShape& s) {
  auto add = [&](int layer, const std::string& suffix, ParamTensor::Kind kind, ParamTensor::Init init, int64_t rows,
                 int64_t cols, int32_t heads = 1) {
    ParamTensor t;
    t.name = fmt::format("conv{}.{}", layer + 1, suffix);
    t.kind = kind;
    t.init = init;
    t.rows = rows;
    t.cols = cols;
    t.offset = total;
    t.heads = heads;
    t.layer = layer;
    total += rows * cols;
    tensors.push_back(std::move(t));
  };
  using K = ParamTensor::Kind;
  using I = ParamTensor::Init;
  for (int k = 0; k < s.layers; ++k) {
    const int64_t in = s.in_cols(k), out = s.out_cols(k);
    switch (s.kind) {
      case ModelKind::kGcn:
        add(k, "lin.weight", K::kWeight, I::kGlorot, in, out);
        add(k, "bias", K::kVector, I::kZeros, 1, out);
        break;
      case ModelKind::kSage:
        add(k, "lin_l.weight", K::kWeight, I::kKaiming, in, out);
        add(k, "lin_l.bias", K::kVector, I::kFanInUniform, 1, out);
        add(k, "lin_r.weight", K::kWeight, I::kKaiming, in, out);
        break;
      case ModelKind::kGat:
        add(k, "lin.weight", K::kWeight, I::kGlorot, in, out);
        add(k, "att_src", K::kAttention, I::kGlorot, 1, out, s.layer_heads(k));
        add(k, "att_dst", K::kAttention, I::kGlorot, 1, out, s.layer_heads(k));
        add(k, "bias", K::kVector, I::kZeros, 1, out);
        break;
    }
  }
  if (s.kind == ModelKind::kGcn && s.layers == 2) {
    w1 = tensors[0].offset;
    b1 = tensors[1].offset;
    w2 = tensors[2].offset;
    b2 = tensors[3].offset;
  }
}

const ParamTensor* ParamLayout::find(const std::string& name) const {
  for (const ParamTensor& t : tensors) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

std::vector<float> init_params(const GcnShape& shape, uint64_t seed) {
  const ParamLayout layout(shape);
  std::vector<float> p(static_cast<std::size_t>(layout.total), 0.0f);
  int index_in_layer = 0, last_layer = -1;
  for (const ParamTensor& t : layout.tensors) {
    index_in_layer = t.layer == last_layer ? index_in_layer + 1 : 0;
    last_layer = t.layer;
    // The tutorial GCN's weights keep their streams (0x57317, 0x57327).
    const uint64_t stream = 0x57307 + 0x10 * static_cast<uint64_t>(t.layer + 1) + static_cast<uint64_t>(index_in_layer);
    double bound = 0.0;
    switch (t.init) {
      case ParamTensor::Init::kZeros: continue;
      case ParamTensor::Init::kGlorot: {
        // PyG's glorot: over the tensor's last two dimensions.
        const std::vector<int64_t> fs = t.file_shape();
        const int64_t a = fs.size() >= 2 ? fs[fs.size() - 2] : 1, b = fs.back();
        bound = std::sqrt(6.0 / static_cast<double>(a + b));
        break;
      }
      case ParamTensor::Init::kKaiming:
        bound = 1.0 / std::sqrt(static_cast<double>(t.rows));  // sqrt(6 / ((1 + 5) · fan_in))
        break;
      case ParamTensor::Init::kFanInUniform:
        bound = 1.0 / std::sqrt(static_cast<double>(shape.in_cols(t.layer)));
        break;
    }
    const auto b = static_cast<float>(bound);
    for (int64_t i = 0; i < t.size(); ++i) {
      p[static_cast<std::size_t>(t.offset + i)] = (2.0f * uniform01(seed, stream, static_cast<uint64_t>(i)) - 1.0f) * b;
    }
  }
  return p;
}

}  // namespace gcn
