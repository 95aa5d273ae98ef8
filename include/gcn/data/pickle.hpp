// A restricted reader for the Python-2 pickles (protocol 2) that the Planetoid
// datasets ship in: numpy arrays, scipy CSR matrices and a defaultdict(list)
// adjacency. It executes nothing: only a whitelist of six globals is accepted,
// and their REDUCE/NEWOBJ/BUILD applications are interpreted into typed values
// (ndarray, dtype, csr_matrix, defaultdict) as they are read.
//
// Every length, count, memo index and declared size is checked against the
// bytes that remain before anything is allocated, so a hostile or truncated
// file costs at most O(file size) memory and ends in a gcn::DataError of the
// form "<name>: offset <byte>: <what was wrong>".
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "gcn/data/csr.hpp"

namespace gcn::pickle {

enum class Kind : uint8_t {
  kNone,
  kBool,
  kInt,
  kBytes,  // SHORT_BINSTRING / BINSTRING (Python 2 str): raw bytes
  kStr,    // BINUNICODE / SHORT_BINUNICODE: UTF-8
  kTuple,
  kList,
  kDict,         // insertion-ordered key/value pairs
  kGlobal,       // one of the whitelisted callables/classes
  kDType,        // numpy.dtype
  kNdArray,      // numpy.ndarray
  kCsrMatrix,    // scipy.sparse.csr_matrix (its __dict__ after BUILD)
  kDefaultDict,  // collections.defaultdict(list)
};

// The whitelist; any other GLOBAL is an error.
enum class Global : uint8_t {
  kReconstruct,  // numpy.core.multiarray._reconstruct
  kNdArray,      // numpy.ndarray
  kDType,        // numpy.dtype
  kCsrMatrix,    // scipy.sparse.csr.csr_matrix
  kDefaultDict,  // collections.defaultdict
  kList,         // __builtin__.list
};

const char* kind_name(Kind kind);

// Values live in one arena (Document) and refer to each other by index, so a
// cyclic or deeply nested pickle cannot overflow the stack when freed.
using ValueId = uint32_t;

struct Value {
  Kind kind = Kind::kNone;
  uint64_t offset = 0;         // byte offset of the opcode that created it
  int64_t integer = 0;         // kBool, kInt
  Global global{};             // kGlobal
  bool built = false;          // kDType/kNdArray/kCsrMatrix: BUILD has run
  std::string bytes;           // kBytes, kStr; kNdArray: the raw data
  std::string dtype;           // kDType, kNdArray: e.g. "<f4", "|b1"
  std::vector<int64_t> shape;  // kNdArray
  std::vector<ValueId> items;  // kTuple, kList; kDict/kDefaultDict/kCsrMatrix: k0, v0, k1, v1...
};

class Document {
 public:
  const std::string& name() const { return name_; }
  const Value& root() const { return values_.at(root_); }
  const Value& at(ValueId id) const { return values_.at(id); }
  size_t size() const { return values_.size(); }

  // The value stored under a str/bytes key of a dict-like value, or nullptr.
  const Value* find(const Value& dict, std::string_view key) const;

 private:
  friend class Parser;
  std::string name_;
  std::vector<Value> values_;
  ValueId root_ = 0;
};

// Parses one pickle. `name` (usually the file name) prefixes every error.
Document parse(std::string_view bytes, const std::string& name);

// Reads and parses a file; the error prefix is the file name.
Document parse_file(const std::filesystem::path& path);

// A numpy array decoded to doubles (exact for every integer below 2^53).
struct DenseArray {
  std::vector<int64_t> shape;
  std::vector<double> values;  // row-major, prod(shape)
};

// The elements of an ndarray as doubles / int64 (integer and bool dtypes only
// for the latter). Throws DataError for other kinds.
DenseArray to_dense(const Document& doc, const Value& v);
std::vector<int64_t> to_int64(const Document& doc, const Value& v);

// A 2-D matrix from a csr_matrix or a dense 2-D ndarray, as PyG's
// `out.todense()` + `.to(torch.float)` sees it: duplicates are summed (in
// double), explicit zeros dropped, columns sorted, values rounded to float32.
// Validates shape, indptr, indices and array lengths.
CsrMatrix to_csr(const Document& doc, const Value& v);

// A dict/defaultdict of int -> list of ints, in the pickle's insertion order.
using Adjacency = std::vector<std::pair<int64_t, std::vector<int64_t>>>;
Adjacency to_adjacency(const Document& doc, const Value& v);

}  // namespace gcn::pickle
