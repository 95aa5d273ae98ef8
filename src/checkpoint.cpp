#include "gcn/checkpoint.hpp"

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
#include "gcn/report.hpp"

namespace gcn {
namespace {

using nlohmann::json;

// The reference implementation refuses larger headers too; a real one is a few KB.
constexpr uint64_t kMaxHeaderBytes = uint64_t{100} << 20;

const char* const kModelNames[4] = {"conv1.lin.weight", "conv1.bias", "conv2.lin.weight",
                                    "conv2.bias"};

// The other dtypes of the format, so that a valid file we cannot read gets a
// precise message rather than "unknown dtype".
const std::set<std::string>& known_dtypes() {
  static const std::set<std::string> dtypes = {
      "BOOL",    "U8",      "I8",       "F8_E5M2", "F8_E4M3", "F8_E8M0", "F4",
      "F6_E2M3", "F6_E3M2", "I16",      "U16",     "F16",     "BF16",    "I32",
      "U32",     "F32",     "F64",      "I64",     "U64",     "C64"};
  return dtypes;
}

std::string shape_str(const std::vector<int64_t>& shape) {
  return fmt::format("[{}]", fmt::join(shape, ", "));
}

uint64_t load_le_u64(const char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

void append_le_u64(std::string& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out += static_cast<char>((v >> (8 * i)) & 0xff);
}

float load_le_f32(const char* p) {
  uint32_t bits = 0;
  for (int i = 3; i >= 0; --i) bits = (bits << 8) | static_cast<unsigned char>(p[i]);
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

void append_le_f32(std::string& out, float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, sizeof bits);
  for (int i = 0; i < 4; ++i) out += static_cast<char>((bits >> (8 * i)) & 0xff);
}

[[noreturn]] void throw_header_too_long(const std::string& name, uint64_t header_bytes,
                                        uint64_t rest) {
  throw DataError(fmt::format(
      "{}: not a safetensors file or truncated: header length {} exceeds the {} bytes that "
      "follow it",
      name, header_bytes, rest));
}

// A tensor entry of the header, checked but not yet read.
struct Entry {
  std::string name;
  std::vector<int64_t> shape;
  uint64_t n_elements = 0;
  uint64_t begin = 0, end = 0;
};

// nlohmann keeps the last of duplicate keys silently; the format forbids them.
json parse_header_json(std::string_view text, const std::string& name) {
  std::vector<std::set<std::string>> open_objects;
  const json::parser_callback_t check_duplicates = [&](int, json::parse_event_t event,
                                                       json& parsed) {
    if (event == json::parse_event_t::object_start) {
      open_objects.emplace_back();
    } else if (event == json::parse_event_t::object_end) {
      open_objects.pop_back();
    } else if (event == json::parse_event_t::key) {
      const auto& key = parsed.get_ref<const std::string&>();
      if (!open_objects.back().insert(key).second) {
        throw DataError(
            fmt::format("{}: duplicate key \"{}\" in the safetensors header", name, key));
      }
    }
    return true;
  };
  try {
    return json::parse(text.begin(), text.end(), check_duplicates);
  } catch (const json::exception& e) {
    throw DataError(fmt::format("{}: invalid JSON in the safetensors header: {}", name, e.what()));
  }
}

uint64_t unsigned_field(const json& v, const std::string& what, const std::string& name) {
  if (v.is_number_unsigned()) return v.get<uint64_t>();
  if (v.is_number_integer()) {
    throw DataError(fmt::format("{}: {} is negative ({})", name, what, v.dump()));
  }
  throw DataError(fmt::format("{}: {} is not an unsigned integer ({})", name, what, v.dump()));
}

Entry parse_entry(const std::string& key, const json& v, uint64_t buffer_bytes,
                  const std::string& name) {
  const std::string where = fmt::format("tensor \"{}\"", key);
  if (!v.is_object()) {
    throw DataError(fmt::format("{}: {}: entry is not a JSON object", name, where));
  }
  for (const auto& [field, _] : v.items()) {
    if (field != "dtype" && field != "shape" && field != "data_offsets") {
      throw DataError(fmt::format("{}: {}: unknown field \"{}\"", name, where, field));
    }
  }
  for (const char* field : {"dtype", "shape", "data_offsets"}) {
    if (!v.contains(field)) {
      throw DataError(fmt::format("{}: {}: missing \"{}\"", name, where, field));
    }
  }
  const json& dtype = v.at("dtype");
  if (!dtype.is_string()) {
    throw DataError(fmt::format("{}: {}: dtype is not a string", name, where));
  }
  const auto& dt = dtype.get_ref<const std::string&>();
  if (dt != "F32") {
    if (known_dtypes().count(dt)) {
      throw DataError(fmt::format(
          "{}: {}: dtype {} not supported; save float32 (in PyTorch: tensor.float())", name, where,
          dt));
    }
    throw DataError(fmt::format("{}: {}: unknown dtype \"{}\"", name, where, dt));
  }

  Entry e;
  e.name = key;
  const json& shape = v.at("shape");
  if (!shape.is_array()) {
    throw DataError(fmt::format("{}: {}: shape is not an array", name, where));
  }
  e.n_elements = 1;
  for (std::size_t i = 0; i < shape.size(); ++i) {
    const uint64_t dim = unsigned_field(shape[i], where + fmt::format(": shape[{}]", i), name);
    if (dim > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ||
        (dim != 0 && e.n_elements > std::numeric_limits<uint64_t>::max() / 4 / dim)) {
      throw DataError(fmt::format("{}: {}: shape {} is too large", name, where, shape.dump()));
    }
    e.n_elements *= dim;
    e.shape.push_back(static_cast<int64_t>(dim));
  }

  const json& offsets = v.at("data_offsets");
  if (!offsets.is_array() || offsets.size() != 2) {
    throw DataError(
        fmt::format("{}: {}: data_offsets is not an array [begin, end]", name, where));
  }
  e.begin = unsigned_field(offsets[0], where + ": data_offsets[0]", name);
  e.end = unsigned_field(offsets[1], where + ": data_offsets[1]", name);
  if (e.begin > e.end) {
    throw DataError(fmt::format("{}: {}: data_offsets [{}, {}] end before they begin", name,
                                where, e.begin, e.end));
  }
  if (e.end > buffer_bytes) {
    throw DataError(fmt::format(
        "{}: {}: data_offsets [{}, {}] run past the end of the data ({} bytes); truncated file?",
        name, where, e.begin, e.end, buffer_bytes));
  }
  // n_elements * 4 cannot overflow (checked above).
  if (e.end - e.begin != e.n_elements * 4) {
    throw DataError(fmt::format(
        "{}: {}: data_offsets [{}, {}] hold {} bytes, but shape {} of F32 needs {}", name, where,
        e.begin, e.end, e.end - e.begin, shape_str(e.shape), e.n_elements * 4));
  }
  return e;
}

std::map<std::string, std::string> parse_metadata(const json& v, const std::string& name) {
  if (!v.is_object()) {
    throw DataError(fmt::format("{}: __metadata__ is not a JSON object", name));
  }
  std::map<std::string, std::string> metadata;
  for (const auto& [key, value] : v.items()) {
    if (!value.is_string()) {
      throw DataError(fmt::format(
          "{}: __metadata__ value of \"{}\" is not a string ({}); safetensors metadata holds "
          "strings only",
          name, key, value.dump()));
    }
    metadata[key] = value.get<std::string>();
  }
  return metadata;
}

// Offsets must tile [0, buffer_bytes) exactly, as the reference reader demands.
void check_tiling(std::vector<Entry>& entries, uint64_t buffer_bytes, const std::string& name) {
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return std::tie(a.begin, a.end) < std::tie(b.begin, b.end);
  });
  uint64_t pos = 0;
  const Entry* previous = nullptr;
  for (const Entry& e : entries) {
    if (e.begin != pos) {
      const std::string before =
          previous ? fmt::format("the previous tensor \"{}\" ends at {}", previous->name, pos)
                   : std::string("the data begins at 0");
      throw DataError(fmt::format("{}: tensor \"{}\" begins at byte {} but {} ({})", name, e.name,
                                  e.begin, before, e.begin < pos ? "overlap" : "gap"));
    }
    pos = e.end;
    previous = &e;
  }
  if (pos != buffer_bytes) {
    throw DataError(fmt::format(
        "{}: {} bytes after the last tensor's data (the data buffer is {} bytes, tensors cover "
        "{})",
        name, buffer_bytes - pos, buffer_bytes, pos));
  }
}

void check_model_shape(const GcnShape& s) {
  if (s.n_features <= 0 || s.hidden <= 0 || s.n_classes <= 0) {
    throw Error(fmt::format("checkpoint: invalid model shape F={} H={} C={}", s.n_features,
                            s.hidden, s.n_classes));
  }
}

// PyG shapes of the four model tensors, in kModelNames order.
std::vector<std::vector<int64_t>> model_shapes(const GcnShape& s) {
  return {{s.hidden, s.n_features}, {s.hidden}, {s.n_classes, s.hidden}, {s.n_classes}};
}

}  // namespace

const Tensor32* SafetensorsFile::find(const std::string& name) const {
  for (const Tensor32& t : tensors) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

SafetensorsFile parse_safetensors(std::string_view bytes, const std::string& name) {
  if (bytes.size() < 8) {
    throw DataError(fmt::format(
        "{}: not a safetensors file: {} bytes, shorter than the 8-byte header length", name,
        bytes.size()));
  }
  const uint64_t header_bytes = load_le_u64(bytes.data());
  const uint64_t rest = bytes.size() - 8;
  if (header_bytes > rest) throw_header_too_long(name, header_bytes, rest);
  if (header_bytes > kMaxHeaderBytes) {
    throw DataError(fmt::format("{}: safetensors header of {} bytes is larger than the {} allowed",
                                name, header_bytes, kMaxHeaderBytes));
  }
  const std::string_view header_text = bytes.substr(8, header_bytes);
  if (header_text.empty() || header_text.front() != '{') {
    throw DataError(fmt::format(
        "{}: safetensors header is not a JSON object (it must begin with '{{')", name));
  }
  // nlohmann stops at a NUL as at the end of input; valid JSON never holds one.
  if (const auto nul = header_text.find('\0'); nul != std::string_view::npos) {
    throw DataError(fmt::format(
        "{}: invalid JSON in the safetensors header: NUL byte at offset {} (padding must be "
        "spaces)",
        name, nul));
  }
  const json header = parse_header_json(header_text, name);
  if (!header.is_object()) {
    throw DataError(fmt::format("{}: safetensors header is not a JSON object", name));
  }

  const uint64_t buffer_bytes = rest - header_bytes;
  SafetensorsFile file;
  std::vector<Entry> entries;
  for (const auto& [key, value] : header.items()) {
    if (key == "__metadata__") {
      file.metadata = parse_metadata(value, name);
    } else {
      entries.push_back(parse_entry(key, value, buffer_bytes, name));
    }
  }
  check_tiling(entries, buffer_bytes, name);

  // Every size is now known to lie within the file: safe to allocate.
  std::sort(entries.begin(), entries.end(),
            [](const Entry& a, const Entry& b) { return a.name < b.name; });
  const char* data = bytes.data() + 8 + header_bytes;
  file.tensors.reserve(entries.size());
  for (const Entry& e : entries) {
    Tensor32 t;
    t.name = e.name;
    t.shape = e.shape;
    t.data.resize(e.n_elements);
    const char* p = data + e.begin;
    for (uint64_t i = 0; i < e.n_elements; ++i) t.data[i] = load_le_f32(p + 4 * i);
    file.tensors.push_back(std::move(t));
  }
  return file;
}

SafetensorsFile read_safetensors(const std::filesystem::path& path) {
  const std::string name = path.string();
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) {
    throw DataError(fmt::format("{}: cannot open: {}", name, std::strerror(errno)));
  }
  const std::streamoff size = in.tellg();
  if (size < 0) throw DataError(fmt::format("{}: cannot determine the file size", name));
  // Check the header length before reading everything, so that a large file of
  // another kind is rejected without being loaded.
  char length[8];
  in.seekg(0);
  if (size >= 8 && in.read(length, 8) &&
      load_le_u64(length) > static_cast<uint64_t>(size) - 8) {
    throw_header_too_long(name, load_le_u64(length), static_cast<uint64_t>(size) - 8);
  }
  std::string bytes(static_cast<std::size_t>(size), '\0');
  in.seekg(0);
  if (!in.read(bytes.data(), size)) {
    throw DataError(fmt::format("{}: read error", name));
  }
  return parse_safetensors(bytes, name);
}

std::string serialize_safetensors(const SafetensorsFile& file) {
  std::vector<const Tensor32*> sorted;
  for (const Tensor32& t : file.tensors) sorted.push_back(&t);
  std::sort(sorted.begin(), sorted.end(),
            [](const Tensor32* a, const Tensor32* b) { return a->name < b->name; });

  // ordered_json: __metadata__ first and dtype/shape/data_offsets in the
  // reference implementation's order, so that our files match its bytes.
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!file.metadata.empty()) header["__metadata__"] = file.metadata;
  uint64_t offset = 0;
  for (std::size_t i = 0; i < sorted.size(); ++i) {
    const Tensor32& t = *sorted[i];
    if (t.name.empty() || t.name == "__metadata__") {
      throw Error(fmt::format("safetensors: invalid tensor name \"{}\"", t.name));
    }
    if (i > 0 && sorted[i - 1]->name == t.name) {
      throw Error(fmt::format("safetensors: duplicate tensor name \"{}\"", t.name));
    }
    uint64_t n = 1;
    for (int64_t d : t.shape) {
      if (d < 0) throw Error(fmt::format("safetensors: \"{}\" has a negative dimension", t.name));
      n *= static_cast<uint64_t>(d);
    }
    if (n != t.data.size()) {
      throw Error(fmt::format("safetensors: \"{}\" has shape {} but {} values", t.name,
                              shape_str(t.shape), t.data.size()));
    }
    const uint64_t end = offset + 4 * n;
    header[t.name] = {{"dtype", "F32"}, {"shape", t.shape}, {"data_offsets", {offset, end}}};
    offset = end;
  }
  std::string text;
  try {
    text = header.dump();  // strict: throws on invalid UTF-8 in names or metadata
  } catch (const nlohmann::json::exception& e) {
    throw Error(fmt::format("safetensors: cannot encode the header: {}", e.what()));
  }
  text.append((8 - text.size() % 8) % 8, ' ');

  std::string out;
  out.reserve(8 + text.size() + offset);
  append_le_u64(out, text.size());
  out += text;
  for (const Tensor32* t : sorted) {
    for (float f : t->data) append_le_f32(out, f);
  }
  return out;
}

void write_safetensors(const std::filesystem::path& path, const SafetensorsFile& file) {
  write_file_atomic(path, serialize_safetensors(file));
}

void add_flat(SafetensorsFile& file, const std::string& prefix, const GcnShape& shape,
              const std::vector<float>& flat) {
  check_model_shape(shape);
  const ParamLayout layout(shape);
  if (static_cast<int64_t>(flat.size()) != layout.total) {
    throw Error(fmt::format("checkpoint: {} values for a model of {} parameters (F={} H={} C={})",
                            flat.size(), layout.total, shape.n_features, shape.hidden,
                            shape.n_classes));
  }
  const int64_t F = shape.n_features, H = shape.hidden, C = shape.n_classes;
  const auto shapes = model_shapes(shape);
  std::vector<Tensor32> added(4);
  for (int i = 0; i < 4; ++i) {
    added[i].name = prefix + kModelNames[i];
    added[i].shape = shapes[i];
    if (file.find(added[i].name)) {
      throw Error(fmt::format("checkpoint: tensor \"{}\" added twice", added[i].name));
    }
  }
  // Ours are [in, out]; PyG's lin.weight is [out, in].
  auto& w1 = added[0].data;  // (H, F)
  w1.resize(static_cast<std::size_t>(H * F));
  for (int64_t f = 0; f < F; ++f) {
    for (int64_t h = 0; h < H; ++h) w1[h * F + f] = flat[layout.w1 + f * H + h];
  }
  added[1].data.assign(flat.begin() + layout.b1, flat.begin() + layout.b1 + H);
  auto& w2 = added[2].data;  // (C, H)
  w2.resize(static_cast<std::size_t>(C * H));
  for (int64_t h = 0; h < H; ++h) {
    for (int64_t c = 0; c < C; ++c) w2[c * H + h] = flat[layout.w2 + h * C + c];
  }
  added[3].data.assign(flat.begin() + layout.b2, flat.begin() + layout.b2 + C);
  for (Tensor32& t : added) file.tensors.push_back(std::move(t));
}

std::vector<float> get_flat(const SafetensorsFile& file, const std::string& prefix,
                            const GcnShape& shape, const std::string& path_for_errors) {
  check_model_shape(shape);
  const ParamLayout layout(shape);
  const int64_t F = shape.n_features, H = shape.hidden, C = shape.n_classes;
  const auto shapes = model_shapes(shape);
  const Tensor32* t[4];
  for (int i = 0; i < 4; ++i) {
    const std::string name = prefix + kModelNames[i];
    t[i] = file.find(name);
    if (!t[i]) {
      throw DataError(fmt::format("{}: tensor \"{}\" missing (expected shape {})",
                                  path_for_errors, name, shape_str(shapes[i])));
    }
    if (t[i]->shape != shapes[i]) {
      throw DataError(fmt::format(
          "{}: tensor \"{}\" has shape {}, expected {} for F={} features, H={} hidden, C={} "
          "classes",
          path_for_errors, name, shape_str(t[i]->shape), shape_str(shapes[i]), F, H, C));
    }
  }
  std::vector<float> flat(static_cast<std::size_t>(layout.total));
  for (int64_t f = 0; f < F; ++f) {
    for (int64_t h = 0; h < H; ++h) flat[layout.w1 + f * H + h] = t[0]->data[h * F + f];
  }
  std::copy(t[1]->data.begin(), t[1]->data.end(), flat.begin() + layout.b1);
  for (int64_t h = 0; h < H; ++h) {
    for (int64_t c = 0; c < C; ++c) flat[layout.w2 + h * C + c] = t[2]->data[c * H + h];
  }
  std::copy(t[3]->data.begin(), t[3]->data.end(), flat.begin() + layout.b2);
  return flat;
}

SafetensorsFile model_to_safetensors(const GcnShape& shape, const std::vector<float>& flat_params,
                                     std::map<std::string, std::string> metadata) {
  SafetensorsFile file;
  file.metadata = std::move(metadata);
  add_flat(file, "", shape, flat_params);
  return file;
}

std::vector<float> model_from_safetensors(const SafetensorsFile& file, const GcnShape& expected,
                                          const std::string& path_for_errors) {
  std::set<std::string> known;
  for (const char* prefix : {"", kAdamExpAvgPrefix, kAdamExpAvgSqPrefix, kBestParamsPrefix}) {
    for (const char* name : kModelNames) known.insert(prefix + std::string(name));
  }
  for (const Tensor32& t : file.tensors) {
    if (!known.count(t.name)) {
      throw DataError(fmt::format(
          "{}: unexpected tensor \"{}\"; the tutorial GCN has conv1.lin.weight, conv1.bias, "
          "conv2.lin.weight and conv2.bias",
          path_for_errors, t.name));
    }
  }
  return get_flat(file, "", expected, path_for_errors);
}

GcnShape shape_from_safetensors(const SafetensorsFile& file, const std::string& path_for_errors) {
  const Tensor32* t[4];
  for (int i = 0; i < 4; ++i) {
    t[i] = file.find(kModelNames[i]);
    if (!t[i]) {
      throw DataError(fmt::format("{}: tensor \"{}\" missing; not a GCN checkpoint?",
                                  path_for_errors, kModelNames[i]));
    }
  }
  const auto dims_ok = [](const Tensor32& x, std::size_t rank) {
    if (x.shape.size() != rank) return false;
    for (int64_t d : x.shape) {
      if (d <= 0 || d > std::numeric_limits<int32_t>::max()) return false;
    }
    return true;
  };
  if (!dims_ok(*t[0], 2) || !dims_ok(*t[2], 2)) {
    throw DataError(fmt::format(
        "{}: conv1.lin.weight {} and conv2.lin.weight {} must be non-empty matrices",
        path_for_errors, shape_str(t[0]->shape), shape_str(t[2]->shape)));
  }
  GcnShape shape;
  shape.hidden = static_cast<int32_t>(t[0]->shape[0]);
  shape.n_features = static_cast<int32_t>(t[0]->shape[1]);
  shape.n_classes = static_cast<int32_t>(t[2]->shape[0]);
  if (t[2]->shape[1] != shape.hidden || t[1]->shape != std::vector<int64_t>{shape.hidden} ||
      t[3]->shape != std::vector<int64_t>{shape.n_classes}) {
    throw DataError(fmt::format(
        "{}: inconsistent model shapes: conv1.lin.weight {}, conv1.bias {}, conv2.lin.weight {}, "
        "conv2.bias {}",
        path_for_errors, shape_str(t[0]->shape), shape_str(t[1]->shape), shape_str(t[2]->shape),
        shape_str(t[3]->shape)));
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

SafetensorsFile train_state_to_safetensors(const GcnShape& shape, const TrainState& state,
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

TrainState train_state_from_safetensors(const SafetensorsFile& file, const GcnShape& shape,
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
  if (file.find(std::string(kBestParamsPrefix) + "conv1.bias") != nullptr) {
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
