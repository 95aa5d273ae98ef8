#include "gcn/train/checkpoint.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <limits>
#include <set>
#include <tuple>
#include <utility>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "gcn/error.hpp"
#include "gcn/nn/registry.hpp"
#include "gcn/file_io.hpp"
#include "gcn/data/safetensors.hpp"

namespace gcn {
namespace {

using nlohmann::json;

std::string shape_str(const std::vector<int64_t>& shape) {
  return fmt::format("[{}]", fmt::join(shape, ", "));
}

// Checkpoints hold float32 only: another dtype of the format is named with
// the fix.
void require_f32(const std::string& name, const std::string& where, const std::string& dtype) {
  if (dtype == "F32") return;
  if (is_safetensors_dtype(dtype)) {
    throw DataError(fmt::format("{}: {}: dtype {} not supported; save float32 (in PyTorch: tensor.float())", name,
                                where, dtype));
  }
  throw DataError(fmt::format("{}: {}: unknown dtype \"{}\"", name, where, dtype));
}

void check_model_shape(const ModelShape& s) {
  if (s.n_features <= 0 || s.n_classes <= 0 || s.layers < 1) {
    throw Error(fmt::format("checkpoint: invalid model shape {}", s.describe()));
  }
  for (int k = 0; k < s.layers; ++k) {
    if (s.width(k) <= 0) throw Error(fmt::format("checkpoint: invalid model shape {}", s.describe()));
  }
}

}  // namespace

const Tensor32* SafetensorsFile::find(const std::string& name) const {
  for (const Tensor32& t : tensors) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

SafetensorsFile parse_safetensors(std::string_view bytes, const std::string& name) {
  const SafetensorsView view = parse_safetensors_view(bytes, name, require_f32);
  SafetensorsFile file;
  file.metadata = view.metadata;
  file.tensors.reserve(view.tensors.size());
  for (const TensorView& v : view.tensors) {  // in name order
    Tensor32 t;
    t.name = v.name;
    t.shape = v.shape;
    t.data.resize(static_cast<std::size_t>(v.numel));
    for (int64_t i = 0; i < v.numel; ++i) t.data[static_cast<std::size_t>(i)] = v.f32(i);
    file.tensors.push_back(std::move(t));
  }
  return file;
}

SafetensorsFile read_safetensors(const std::filesystem::path& path) {
  return parse_safetensors(read_file_bytes(path), path.string());
}

std::string serialize_safetensors(const SafetensorsFile& file) {
  std::vector<TensorBytes> tensors;
  tensors.reserve(file.tensors.size());
  for (const Tensor32& t : file.tensors) {
    uint64_t n = 1;
    for (int64_t d : t.shape) {
      if (d < 0) throw Error(fmt::format("safetensors: \"{}\" has a negative dimension", t.name));
      n *= static_cast<uint64_t>(d);
    }
    if (n != t.data.size()) {
      throw Error(fmt::format("safetensors: \"{}\" has shape {} but {} values", t.name, shape_str(t.shape),
                              t.data.size()));
    }
    TensorBytes b{t.name, Dtype::kF32, t.shape, {}};
    b.data.reserve(4 * t.data.size());
    for (float f : t.data) append_le(b.data, f);
    tensors.push_back(std::move(b));
  }
  return serialize_typed_safetensors(file.metadata, tensors);
}

void write_safetensors(const std::filesystem::path& path, const SafetensorsFile& file) {
  write_file_atomic(path, serialize_safetensors(file));
}

void add_flat(SafetensorsFile& file, const std::string& prefix, const ModelShape& shape,
              const std::vector<float>& flat) {
  check_model_shape(shape);
  const ParamLayout layout(shape);
  if (static_cast<int64_t>(flat.size()) != layout.total) {
    throw Error(fmt::format("checkpoint: {} values for a model of {} parameters ({})", flat.size(), layout.total,
                            shape.describe()));
  }
  std::vector<Tensor32> added;
  for (const ParamTensor& p : layout.tensors) {
    Tensor32 t;
    t.name = prefix + p.name;
    t.shape = p.file_shape;
    if (file.find(t.name)) throw Error(fmt::format("checkpoint: tensor \"{}\" added twice", t.name));
    t.data.resize(static_cast<std::size_t>(p.size()));
    p.to_file(flat.data() + p.offset, t.data.data());  // ours (in, out) to PyG's [out, in], ...
    added.push_back(std::move(t));
  }
  for (Tensor32& t : added) file.tensors.push_back(std::move(t));
}

std::vector<float> get_flat(const SafetensorsFile& file, const std::string& prefix,
                            const ModelShape& shape, const std::string& path_for_errors) {
  check_model_shape(shape);
  const ParamLayout layout(shape);
  std::vector<float> flat(static_cast<std::size_t>(layout.total));
  for (const ParamTensor& p : layout.tensors) {
    const std::string name = prefix + p.name;
    const Tensor32* t = file.find(name);
    const std::vector<int64_t>& want = p.file_shape;
    if (!t) {
      throw DataError(fmt::format("{}: tensor \"{}\" missing (expected shape {} for {})", path_for_errors, name,
                                  shape_str(want), shape.describe()));
    }
    if (t->shape != want) {
      throw DataError(fmt::format("{}: tensor \"{}\" has shape {}, expected {} for {}", path_for_errors, name,
                                  shape_str(t->shape), shape_str(want), shape.describe()));
    }
    p.from_file(t->data.data(), flat.data() + p.offset);
  }
  return flat;
}

SafetensorsFile model_to_safetensors(const ModelShape& shape, const std::vector<float>& flat_params,
                                     std::map<std::string, std::string> metadata) {
  SafetensorsFile file;
  file.metadata = std::move(metadata);
  add_flat(file, "", shape, flat_params);
  return file;
}

std::vector<float> model_from_safetensors(const SafetensorsFile& file, const ModelShape& expected,
                                          const std::string& path_for_errors) {
  const ParamLayout layout(expected);
  std::set<std::string> known;
  std::string names;
  for (const ParamTensor& p : layout.tensors) {
    names += (names.empty() ? "" : ", ") + p.name;
    for (const char* prefix : {"", kAdamExpAvgPrefix, kAdamExpAvgSqPrefix, kBestParamsPrefix}) {
      known.insert(prefix + p.name);
    }
  }
  for (const Tensor32& t : file.tensors) {
    if (!known.count(t.name)) {
      throw DataError(fmt::format("{}: unexpected tensor \"{}\"; {} has {}", path_for_errors, t.name,
                                  expected.describe(), names));
    }
  }
  return get_flat(file, "", expected, path_for_errors);
}

ModelShape shape_from_safetensors(const SafetensorsFile& file, const std::string& path_for_errors) {
  TensorShapes shapes;
  for (const Tensor32& t : file.tensors) shapes[t.name] = t.shape;
  const ModelType* type = nullptr;
  std::string known;
  for (const ModelType* t : model_types()) {
    if (type == nullptr && t->recognizes(shapes)) type = t;
    known += fmt::format("{}{} ({})", known.empty() ? "" : ", ", t->name(), t->pyg_class());
  }
  if (type == nullptr) {
    throw DataError(fmt::format("{}: not the state_dict of a model gcn-train knows ({}); not a model checkpoint?",
                                path_for_errors, known));
  }
  const ModelShape shape = type->shape_from_file(shapes, path_for_errors);
  // Every tensor of that architecture, with PyG's shapes.
  const ParamLayout layout(shape);
  for (const ParamTensor& p : layout.tensors) {
    const auto t = shapes.find(p.name);
    if (t == shapes.end() || t->second != p.file_shape) {
      throw DataError(fmt::format("{}: inconsistent model shapes: {} is {}, expected {} for {}", path_for_errors,
                                  p.name, t == shapes.end() ? std::string("missing") : shape_str(t->second),
                                  shape_str(p.file_shape), shape.describe()));
    }
  }
  return shape;
}

const std::string& get_metadata(const SafetensorsFile& file, const std::string& key,
                                const std::string& path_for_errors) {
  const auto it = file.metadata.find(key);
  if (it == file.metadata.end()) {
    throw DataError(fmt::format("{}: metadata key \"{}\" missing", path_for_errors, key));
  }
  return it->second;
}

SafetensorsFile train_state_to_safetensors(const ModelShape& shape, const TrainState& state,
                                           std::map<std::string, std::string> metadata) {
  SafetensorsFile file = model_to_safetensors(shape, state.params, std::move(metadata));
  add_flat(file, kAdamExpAvgPrefix, shape, state.adam_m);
  add_flat(file, kAdamExpAvgSqPrefix, shape, state.adam_v);
  if (!state.best_params.empty()) add_flat(file, kBestParamsPrefix, shape, state.best_params);
  nlohmann::json history = nlohmann::json::array();
  for (const EpochStats& h : state.history) {
    // Floats as written by the trainer; JSON keeps doubles exactly (shortest round-trip form).
    history.push_back({h.epoch, h.loss, h.val_loss, h.train_acc, h.val_acc, h.test_acc});
  }
  file.metadata["epoch"] = std::to_string(state.epoch);
  file.metadata["best_epoch"] = std::to_string(state.best_epoch);
  file.metadata["history"] = history.dump();
  std::sort(file.tensors.begin(), file.tensors.end(),
            [](const Tensor32& a, const Tensor32& b) { return a.name < b.name; });
  return file;
}

TrainState train_state_from_safetensors(const SafetensorsFile& file, const ModelShape& shape,
                                        const std::string& path_for_errors) {
  auto integer = [&](const char* key) {
    const std::string& text = get_metadata(file, key, path_for_errors);
    try {
      std::size_t used = 0;
      const long v = std::stol(text, &used);
      if (used == text.size() && v >= 0 && v <= 10'000'000) return static_cast<int>(v);
    } catch (const std::exception&) {
    }
    throw DataError(fmt::format("{}: metadata {} = '{}' is not an epoch number", path_for_errors, key, text));
  };
  TrainState state;
  state.epoch = integer("epoch");
  state.best_epoch = integer("best_epoch");
  state.params = model_from_safetensors(file, shape, path_for_errors);
  state.adam_m = get_flat(file, kAdamExpAvgPrefix, shape, path_for_errors);
  state.adam_v = get_flat(file, kAdamExpAvgSqPrefix, shape, path_for_errors);
  if (file.find(std::string(kBestParamsPrefix) + ParamLayout(shape).tensors.front().name) != nullptr) {
    state.best_params = get_flat(file, kBestParamsPrefix, shape, path_for_errors);
  }
  const nlohmann::json history =
      nlohmann::json::parse(get_metadata(file, "history", path_for_errors), nullptr, /*allow_exceptions=*/false);
  if (!history.is_array() || static_cast<int>(history.size()) != state.epoch) {
    throw DataError(fmt::format("{}: metadata history does not hold {} epochs", path_for_errors, state.epoch));
  }
  for (const nlohmann::json& h : history) {
    if (!h.is_array() || h.size() != 6 || !h[0].is_number_integer()) {
      throw DataError(fmt::format("{}: metadata history has a malformed entry", path_for_errors));
    }
    for (std::size_t k = 1; k < 6; ++k) {
      if (!h[k].is_number()) throw DataError(fmt::format("{}: metadata history has a malformed entry", path_for_errors));
    }
    EpochStats s;
    s.epoch = h[0].get<int>();
    s.loss = h[1].get<double>();
    s.val_loss = h[2].get<double>();
    s.train_acc = h[3].get<double>();
    s.val_acc = h[4].get<double>();
    s.test_acc = h[5].get<double>();
    if (s.epoch != static_cast<int>(state.history.size()) + 1) {
      throw DataError(fmt::format("{}: metadata history is out of order at epoch {}", path_for_errors, s.epoch));
    }
    state.history.push_back(s);
  }
  if (state.best_epoch > state.epoch) {
    throw DataError(fmt::format("{}: best_epoch {} is after epoch {}", path_for_errors, state.best_epoch,
                                state.epoch));
  }
  return state;
}

}  // namespace gcn
