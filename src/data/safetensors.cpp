// Typed safetensors reading and writing (see gcn/safetensors.hpp).
#include "gcn/data/safetensors.hpp"

#include <unistd.h>

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

namespace gcn {
namespace {

using nlohmann::json;

// The reference implementation refuses larger headers too.
constexpr uint64_t kMaxHeaderBytes = uint64_t{100} << 20;

// The format's other dtypes, named in the error when a file holds one.
const std::set<std::string>& other_dtypes() {
  static const std::set<std::string> dtypes = {"I8",  "F8_E5M2", "F8_E4M3", "F8_E8M0", "F4",  "F6_E2M3",
                                               "F6_E3M2", "I16", "U16",     "F16",     "BF16", "U32",
                                               "F64",     "U64", "C64"};
  return dtypes;
}

bool parse_dtype(const std::string& text, Dtype& out) {
  static const std::pair<const char*, Dtype> kNames[] = {
      {"BOOL", Dtype::kBool}, {"U8", Dtype::kU8}, {"I32", Dtype::kI32}, {"I64", Dtype::kI64}, {"F32", Dtype::kF32}};
  for (const auto& [name, dtype] : kNames) {
    if (text == name) {
      out = dtype;
      return true;
    }
  }
  return false;
}

uint64_t load_le_u64(const char* p) { return TensorView::load_le<uint64_t>(p); }

// nlohmann keeps the last of duplicate keys silently; the format forbids them.
json parse_header_json(std::string_view text, const std::string& name) {
  std::vector<std::set<std::string>> open_objects;
  const json::parser_callback_t check_duplicates = [&](int, json::parse_event_t event, json& parsed) {
    if (event == json::parse_event_t::object_start) {
      open_objects.emplace_back();
    } else if (event == json::parse_event_t::object_end) {
      open_objects.pop_back();
    } else if (event == json::parse_event_t::key) {
      const auto& key = parsed.get_ref<const std::string&>();
      if (!open_objects.back().insert(key).second) {
        throw DataError(fmt::format("{}: duplicate key \"{}\" in the safetensors header", name, key));
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
  if (v.is_number_integer()) throw DataError(fmt::format("{}: {} is negative ({})", name, what, v.dump()));
  throw DataError(fmt::format("{}: {} is not an unsigned integer ({})", name, what, v.dump()));
}

// A header entry, checked against the buffer size but not yet read.
struct Entry {
  TensorView view;
  uint64_t begin = 0, end = 0;
};

Entry parse_entry(const std::string& key, const json& v, uint64_t buffer_bytes, const std::string& name,
                  DtypeCheck check) {
  const std::string where = fmt::format("tensor \"{}\"", key);
  if (!v.is_object()) throw DataError(fmt::format("{}: {}: entry is not a JSON object", name, where));
  for (const auto& [field, _] : v.items()) {
    if (field != "dtype" && field != "shape" && field != "data_offsets") {
      throw DataError(fmt::format("{}: {}: unknown field \"{}\"", name, where, field));
    }
  }
  for (const char* field : {"dtype", "shape", "data_offsets"}) {
    if (!v.contains(field)) throw DataError(fmt::format("{}: {}: missing \"{}\"", name, where, field));
  }
  const json& dtype = v.at("dtype");
  if (!dtype.is_string()) throw DataError(fmt::format("{}: {}: dtype is not a string", name, where));
  Entry e;
  e.view.name = key;
  const auto& dt = dtype.get_ref<const std::string&>();
  if (check != nullptr) check(name, where, dt);
  if (!parse_dtype(dt, e.view.dtype)) {
    if (other_dtypes().count(dt) != 0) {
      throw DataError(fmt::format("{}: {}: dtype {} is not read here (BOOL, U8, I32, I64 and F32 are)", name,
                                  where, dt));
    }
    throw DataError(fmt::format("{}: {}: unknown dtype \"{}\"", name, where, dt));
  }
  const uint64_t elem = dtype_size(e.view.dtype);

  const json& shape = v.at("shape");
  if (!shape.is_array()) throw DataError(fmt::format("{}: {}: shape is not an array", name, where));
  uint64_t numel = 1;
  for (std::size_t i = 0; i < shape.size(); ++i) {
    const uint64_t dim = unsigned_field(shape[i], where + fmt::format(": shape[{}]", i), name);
    // numel * 8 must not overflow, nor numel exceed int64.
    if (dim > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ||
        (dim != 0 && numel > std::numeric_limits<uint64_t>::max() / 8 / dim)) {
      throw DataError(fmt::format("{}: {}: shape {} is too large", name, where, shape.dump()));
    }
    numel *= dim;
    e.view.shape.push_back(static_cast<int64_t>(dim));
  }
  e.view.numel = static_cast<int64_t>(numel);

  const json& offsets = v.at("data_offsets");
  if (!offsets.is_array() || offsets.size() != 2) {
    throw DataError(fmt::format("{}: {}: data_offsets is not an array [begin, end]", name, where));
  }
  e.begin = unsigned_field(offsets[0], where + ": data_offsets[0]", name);
  e.end = unsigned_field(offsets[1], where + ": data_offsets[1]", name);
  if (e.begin > e.end) {
    throw DataError(
        fmt::format("{}: {}: data_offsets [{}, {}] end before they begin", name, where, e.begin, e.end));
  }
  if (e.end > buffer_bytes) {
    throw DataError(fmt::format("{}: {}: data_offsets [{}, {}] run past the end of the data ({} bytes); truncated file?",
                                name, where, e.begin, e.end, buffer_bytes));
  }
  if (e.end - e.begin != numel * elem) {
    throw DataError(fmt::format("{}: {}: data_offsets [{}, {}] hold {} bytes, but shape [{}] of {} needs {}", name,
                                where, e.begin, e.end, e.end - e.begin, fmt::join(e.view.shape, ", "), dt,
                                numel * elem));
  }
  return e;
}

std::map<std::string, std::string> parse_metadata(const json& v, const std::string& name) {
  if (!v.is_object()) throw DataError(fmt::format("{}: __metadata__ is not a JSON object", name));
  std::map<std::string, std::string> metadata;
  for (const auto& [key, value] : v.items()) {
    if (!value.is_string()) {
      throw DataError(fmt::format(
          "{}: __metadata__ value of \"{}\" is not a string ({}); safetensors metadata holds strings only", name,
          key, value.dump()));
    }
    metadata[key] = value.get<std::string>();
  }
  return metadata;
}

// Offsets must tile [0, buffer_bytes) exactly, as the reference reader demands.
void check_tiling(std::vector<Entry>& entries, uint64_t buffer_bytes, const std::string& name) {
  std::sort(entries.begin(), entries.end(),
            [](const Entry& a, const Entry& b) { return std::tie(a.begin, a.end) < std::tie(b.begin, b.end); });
  uint64_t pos = 0;
  const Entry* previous = nullptr;
  for (const Entry& e : entries) {
    if (e.begin != pos) {
      const std::string before = previous ? fmt::format("the previous tensor \"{}\" ends at {}", previous->view.name, pos)
                                          : std::string("the data begins at 0");
      throw DataError(fmt::format("{}: tensor \"{}\" begins at byte {} but {} ({})", name, e.view.name, e.begin,
                                  before, e.begin < pos ? "overlap" : "gap"));
    }
    pos = e.end;
    previous = &e;
  }
  if (pos != buffer_bytes) {
    throw DataError(fmt::format("{}: {} bytes after the last tensor's data (the data buffer is {} bytes, tensors "
                                "cover {})",
                                name, buffer_bytes - pos, buffer_bytes, pos));
  }
}

[[noreturn]] void throw_header_too_long(const std::string& name, uint64_t header_bytes, uint64_t rest) {
  throw DataError(fmt::format(
      "{}: not a safetensors file or truncated: header length {} exceeds the {} bytes that follow it", name,
      header_bytes, rest));
}

}  // namespace

const char* dtype_name(Dtype dtype) {
  switch (dtype) {
    case Dtype::kBool: return "BOOL";
    case Dtype::kU8: return "U8";
    case Dtype::kI32: return "I32";
    case Dtype::kI64: return "I64";
    case Dtype::kF32: return "F32";
  }
  return "?";
}

bool is_safetensors_dtype(const std::string& dtype) {
  Dtype ignored;
  return parse_dtype(dtype, ignored) || other_dtypes().count(dtype) != 0;
}

const TensorView* SafetensorsView::find(const std::string& name) const {
  for (const TensorView& t : tensors) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

SafetensorsView parse_safetensors_view(std::string_view bytes, const std::string& name, DtypeCheck check) {
  if (bytes.size() < 8) {
    throw DataError(fmt::format("{}: not a safetensors file: {} bytes, shorter than the 8-byte header length",
                                name, bytes.size()));
  }
  const uint64_t header_bytes = load_le_u64(bytes.data());
  const uint64_t rest = bytes.size() - 8;
  if (header_bytes > rest) throw_header_too_long(name, header_bytes, rest);
  if (header_bytes > kMaxHeaderBytes) {
    throw DataError(fmt::format("{}: safetensors header of {} bytes is larger than the {} allowed", name,
                                header_bytes, kMaxHeaderBytes));
  }
  const std::string_view header_text = bytes.substr(8, header_bytes);
  if (header_text.empty() || header_text.front() != '{') {
    throw DataError(fmt::format("{}: safetensors header is not a JSON object (it must begin with '{{')", name));
  }
  // nlohmann stops at a NUL as at the end of input; valid JSON never holds one.
  if (const auto nul = header_text.find('\0'); nul != std::string_view::npos) {
    throw DataError(fmt::format(
        "{}: invalid JSON in the safetensors header: NUL byte at offset {} (padding must be spaces)", name, nul));
  }
  const json header = parse_header_json(header_text, name);
  if (!header.is_object()) throw DataError(fmt::format("{}: safetensors header is not a JSON object", name));

  const uint64_t buffer_bytes = rest - header_bytes;
  SafetensorsView file;
  std::vector<Entry> entries;
  for (const auto& [key, value] : header.items()) {
    if (key == "__metadata__") {
      file.metadata = parse_metadata(value, name);
    } else {
      entries.push_back(parse_entry(key, value, buffer_bytes, name, check));
    }
  }
  check_tiling(entries, buffer_bytes, name);

  const std::string_view data = bytes.substr(8 + header_bytes);
  file.tensors.reserve(entries.size());
  for (Entry& e : entries) {
    e.view.bytes = data.substr(e.begin, e.end - e.begin);
    file.tensors.push_back(std::move(e.view));
  }
  std::sort(file.tensors.begin(), file.tensors.end(),
            [](const TensorView& a, const TensorView& b) { return a.name < b.name; });
  return file;
}

std::string read_file_bytes(const std::filesystem::path& path) {
  const std::string name = path.string();
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) throw DataError(fmt::format("{}: cannot open: {}", name, std::strerror(errno)));
  const std::streamoff size = in.tellg();
  if (size < 0) throw DataError(fmt::format("{}: cannot determine the file size", name));
  char length[8];
  in.seekg(0);
  if (size >= 8 && in.read(length, 8) && load_le_u64(length) > static_cast<uint64_t>(size) - 8) {
    throw_header_too_long(name, load_le_u64(length), static_cast<uint64_t>(size) - 8);
  }
  const long pages = ::sysconf(_SC_PHYS_PAGES);
  const long page_size = ::sysconf(_SC_PAGE_SIZE);
  if (pages > 0 && page_size > 0 &&
      static_cast<uint64_t>(size) > static_cast<uint64_t>(pages) * static_cast<uint64_t>(page_size)) {
    throw DataError(fmt::format("{}: the file is {} bytes, more than this machine's {} bytes of memory", name,
                                size, static_cast<uint64_t>(pages) * static_cast<uint64_t>(page_size)));
  }
  std::string bytes(static_cast<std::size_t>(size), '\0');
  in.seekg(0);
  if (!in.read(bytes.data(), size)) throw DataError(fmt::format("{}: read failed: {}", name, std::strerror(errno)));
  return bytes;
}

std::string serialize_typed_safetensors(const std::map<std::string, std::string>& metadata,
                                        const std::vector<TensorBytes>& tensors) {
  std::vector<const TensorBytes*> order;
  std::set<std::string> names;
  for (const TensorBytes& t : tensors) {
    if (t.name.empty() || t.name == "__metadata__" || !names.insert(t.name).second) {
      throw Error(fmt::format("safetensors: tensor name \"{}\" repeated or reserved", t.name));
    }
    uint64_t numel = 1;
    for (int64_t d : t.shape) {
      if (d < 0) throw Error(fmt::format("safetensors: tensor \"{}\" has a negative dimension", t.name));
      numel *= static_cast<uint64_t>(d);
    }
    if (numel * dtype_size(t.dtype) != t.data.size()) {
      throw Error(fmt::format("safetensors: tensor \"{}\" has shape [{}] of {} but {} bytes", t.name,
                              fmt::join(t.shape, ", "), dtype_name(t.dtype), t.data.size()));
    }
    order.push_back(&t);
  }
  std::sort(order.begin(), order.end(), [](const TensorBytes* a, const TensorBytes* b) {
    return std::make_pair(-static_cast<int>(dtype_size(a->dtype)), a->name) <
           std::make_pair(-static_cast<int>(dtype_size(b->dtype)), b->name);
  });
  // ordered_json: __metadata__ first, the tensors and their fields in the
  // reference implementation's order, so that files match its bytes.
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const TensorBytes* t : order) {
    header[t->name] = {{"dtype", dtype_name(t->dtype)},
                       {"shape", t->shape},
                       {"data_offsets", {offset, offset + t->data.size()}}};
    offset += t->data.size();
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
  append_le<uint64_t>(out, text.size());
  out += text;
  for (const TensorBytes* t : order) out += t->data;
  return out;
}

}  // namespace gcn
