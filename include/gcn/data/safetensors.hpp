// The strict safetensors reader and writer, typed: the dtypes gcn-train
// reads (BOOL, U8, I32, I64, F32) as views into the file's bytes. Graph
// files use it directly; checkpoints (gcn/checkpoint.hpp) through it, F32
// only.
//
// The header length and every offset are checked against the buffer before
// anything is read; the offsets must tile the data buffer exactly;
// duplicate JSON keys, unknown entry fields and non-string metadata are
// refused. Every error is a DataError "<name>: <problem>" on one line.
#pragma once

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace gcn {

enum class Dtype : uint8_t { kBool, kU8, kI32, kI64, kF32 };

const char* dtype_name(Dtype dtype);  // "BOOL", "U8", "I32", "I64", "F32"

// Bytes per element.
inline std::size_t dtype_size(Dtype dtype) {
  switch (dtype) {
    case Dtype::kBool:
    case Dtype::kU8: return 1;
    case Dtype::kI32:
    case Dtype::kF32: return 4;
    case Dtype::kI64: return 8;
  }
  return 0;
}

// One tensor of a parsed file. `bytes` points into the parsed buffer, which
// must outlive the view.
struct TensorView {
  std::string name;
  Dtype dtype = Dtype::kF32;
  std::vector<int64_t> shape;  // row-major; {} is a scalar
  int64_t numel = 0;           // product of shape
  std::string_view bytes;      // numel * dtype_size(dtype) bytes, little-endian

  // Element i (no bounds check) as an integer (BOOL, U8, I32, I64) or a float (F32).
  int64_t integer(int64_t i) const {
    const char* p = bytes.data() + static_cast<std::size_t>(i) * dtype_size(dtype);
    switch (dtype) {
      case Dtype::kBool:
      case Dtype::kU8: return static_cast<unsigned char>(*p);
      case Dtype::kI32: return static_cast<int32_t>(load_le<uint32_t>(p));
      case Dtype::kI64: return static_cast<int64_t>(load_le<uint64_t>(p));
      case Dtype::kF32: break;
    }
    return 0;
  }
  float f32(int64_t i) const {
    const uint32_t bits = load_le<uint32_t>(bytes.data() + static_cast<std::size_t>(i) * 4);
    float f;
    std::memcpy(&f, &bits, sizeof f);
    return f;
  }

  template <typename U>
  static U load_le(const char* p) {
    U v = 0;
    for (int b = static_cast<int>(sizeof(U)) - 1; b >= 0; --b) v = (v << 8) | static_cast<unsigned char>(p[b]);
    return v;
  }
};

struct SafetensorsView {
  std::map<std::string, std::string> metadata;  // "__metadata__": strings only
  std::vector<TensorView> tensors;              // in name order

  const TensorView* find(const std::string& name) const;  // null when absent
};

// Whether `dtype` is one of the format's dtypes (read here or not).
bool is_safetensors_dtype(const std::string& dtype);

// Called with each entry's dtype before the rest of the entry is checked;
// throws to refuse it. `where` is "tensor \"<key>\"".
using DtypeCheck = void (*)(const std::string& name, const std::string& where, const std::string& dtype);

// Parses `bytes` (the whole file). A tensor of another dtype of the format is
// refused naming it (or as `check` says); `name` prefixes every error.
SafetensorsView parse_safetensors_view(std::string_view bytes, const std::string& name, DtypeCheck check = nullptr);

// The whole file, read into memory after checking that its header length fits
// the file and that the file fits in the machine's physical memory.
std::string read_file_bytes(const std::filesystem::path& path);

// A tensor to write: `data` holds the elements little-endian, row-major.
struct TensorBytes {
  std::string name;
  Dtype dtype = Dtype::kF32;
  std::vector<int64_t> shape;
  std::string data;
};

// The file's bytes as the reference writer lays them out: the data ordered
// by element size (largest first), then by name, so that every tensor starts
// at an offset aligned to its element size; a compact JSON header (metadata
// first, then the tensors in data order) padded with spaces to a multiple of
// 8. gcn::Error on a shape that does not match the data, a repeated name or
// a name or value that is not UTF-8.
std::string serialize_typed_safetensors(const std::map<std::string, std::string>& metadata,
                                        const std::vector<TensorBytes>& tensors);

// Appends `v` little-endian.
template <typename T>
void append_le(std::string& out, T v) {
  static_assert(sizeof(T) <= 8, "scalar types only");
  uint64_t bits = 0;
  std::memcpy(&bits, &v, sizeof v);
  for (std::size_t b = 0; b < sizeof(T); ++b) out += static_cast<char>((bits >> (8 * b)) & 0xff);
}

}  // namespace gcn
