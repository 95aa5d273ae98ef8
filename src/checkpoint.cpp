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
    throw Error(fmt::format("checkpoint: {} values for a model of {} parameters ({})", flat.size(), layout.total,
                            shape.describe()));
  }
  std::vector<Tensor32> added;
  for (const ParamTensor& p : layout.tensors) {
    Tensor32 t;
    t.name = prefix + p.name;
    t.shape = p.file_shape();
    if (file.find(t.name)) throw Error(fmt::format("checkpoint: tensor \"{}\" added twice", t.name));
    t.data.resize(static_cast<std::size_t>(p.size()));
    if (p.kind == ParamTensor::Kind::kWeight) {
      // Ours are [in, out]; PyG's lin.weight is [out, in].
      for (int64_t i = 0; i < p.rows; ++i) {
        for (int64_t o = 0; o < p.cols; ++o) t.data[o * p.rows + i] = flat[p.offset + i * p.cols + o];
      }
    } else {
      std::copy(flat.begin() + p.offset, flat.begin() + p.offset + p.size(), t.data.begin());
    }
    added.push_back(std::move(t));
  }
  for (Tensor32& t : added) file.tensors.push_back(std::move(t));
}

std::vector<float> get_flat(const SafetensorsFile& file, const std::string& prefix,
                            const GcnShape& shape, const std::string& path_for_errors) {
  check_model_shape(shape);
  const ParamLayout layout(shape);
  std::vector<float> flat(static_cast<std::size_t>(layout.total));
  for (const ParamTensor& p : layout.tensors) {
    const std::string name = prefix + p.name;
    const Tensor32* t = file.find(name);
    const std::vector<int64_t> want = p.file_shape();
    if (!t) {
      throw DataError(fmt::format("{}: tensor \"{}\" missing (expected shape {} for {})", path_for_errors, name,
                                  shape_str(want), shape.describe()));
    }
    if (t->shape != want) {
      throw DataError(fmt::format("{}: tensor \"{}\" has shape {}, expected {} for {}", path_for_errors, name,
                                  shape_str(t->shape), shape_str(want), shape.describe()));
    }
    if (p.kind == ParamTensor::Kind::kWeight) {
      for (int64_t i = 0; i < p.rows; ++i) {
        for (int64_t o = 0; o < p.cols; ++o) flat[p.offset + i * p.cols + o] = t->data[o * p.rows + i];
      }
    } else {
      std::copy(t->data.begin(), t->data.end(), flat.begin() + p.offset);
    }
  }
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

GcnShape shape_from_safetensors(const SafetensorsFile& file, const std::string& path_for_errors) {
  // The model kind from conv1's tensors, the depth from the convK present.
  GcnShape shape;
  if (file.find("conv1.lin_l.weight") != nullptr) {
    shape.kind = ModelKind::kSage;
  } else if (file.find("conv1.att_src") != nullptr) {
    shape.kind = ModelKind::kGat;
  } else if (file.find("conv1.lin.weight") != nullptr) {
    shape.kind = ModelKind::kGcn;
  } else {
    throw DataError(fmt::format(
        "{}: no conv1.lin.weight (GCN, GAT) or conv1.lin_l.weight (GraphSAGE); not a model checkpoint?",
        path_for_errors));
  }
  const std::string weight = shape.kind == ModelKind::kSage ? "lin_l.weight" : "lin.weight";
  int layers = 0;
  while (layers < 16 && file.find(fmt::format("conv{}.{}", layers + 1, weight)) != nullptr) ++layers;
  const auto dims_ok = [](const Tensor32& x, std::size_t rank) {
    if (x.shape.size() != rank) return false;
    for (int64_t d : x.shape) {
      if (d <= 0 || d > std::numeric_limits<int32_t>::max()) return false;
    }
    return true;
  };
  std::vector<int64_t> out_cols;
  for (int k = 0; k < layers; ++k) {
    const std::string name = fmt::format("conv{}.{}", k + 1, weight);
    const Tensor32& w = *file.find(name);
    if (!dims_ok(w, 2)) {
      throw DataError(fmt::format("{}: {} {} must be a non-empty matrix", path_for_errors, name, shape_str(w.shape)));
    }
    if (k == 0) shape.n_features = static_cast<int32_t>(w.shape[1]);
    out_cols.push_back(w.shape[0]);
  }
  shape.layers = layers;
  shape.n_classes = static_cast<int32_t>(out_cols.back());
  if (shape.kind == ModelKind::kGat && layers > 1) {
    const Tensor32* att = file.find("conv1.att_src");
    if (att == nullptr || !dims_ok(*att, 3) || att->shape[0] != 1) {
      throw DataError(fmt::format("{}: conv1.att_src must have shape [1, heads, channels]", path_for_errors));
    }
    shape.heads = static_cast<int32_t>(att->shape[1]);
  }
  shape.hiddens.clear();
  for (int k = 0; k + 1 < layers; ++k) {
    if (out_cols[k] % shape.heads != 0) {
      throw DataError(fmt::format("{}: conv{} has {} outputs, not a multiple of its {} heads", path_for_errors, k + 1,
                                  out_cols[k], shape.heads));
    }
    shape.hiddens.push_back(static_cast<int32_t>(out_cols[k] / shape.heads));
  }
  shape.hidden = shape.hiddens.empty() ? 16 : shape.hiddens.front();
  if (std::all_of(shape.hiddens.begin(), shape.hiddens.end(), [&](int32_t h) { return h == shape.hidden; })) {
    shape.hiddens.clear();
  }
  // Every tensor of that architecture, with PyG's shapes.
  const ParamLayout layout(shape);
  for (const ParamTensor& p : layout.tensors) {
    const Tensor32* t = file.find(p.name);
    if (t == nullptr || t->shape != p.file_shape()) {
      throw DataError(fmt::format("{}: inconsistent model shapes: {} is {}, expected {} for {}", path_for_errors,
                                  p.name, t == nullptr ? std::string("missing") : shape_str(t->shape),
                                  shape_str(p.file_shape()), shape.describe()));
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
