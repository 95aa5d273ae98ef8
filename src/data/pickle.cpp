// Restricted protocol-2 pickle reader; see include/gcn/data/pickle.hpp.
//
// The parser is the pickle virtual machine without its ability to call
// anything: the stack and memo hold ValueIds into a Document's arena, REDUCE /
// NEWOBJ / BUILD are only accepted in the shapes numpy, scipy and
// collections produce, and are turned into typed values on the spot.
#include "gcn/data/pickle.hpp"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <sstream>
#include <unordered_map>

#include "gcn/error.hpp"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "gcn::pickle decodes little-endian array data with memcpy; port it first"
#endif

namespace gcn::pickle {
namespace {

// Bounds that no Planetoid file comes near; they keep a hostile file from
// growing the machine's state beyond O(file size) or nesting without limit.
constexpr size_t kMaxMarkDepth = 256;    // nested MARKs
constexpr size_t kMaxStack = 1u << 26;   // values on the stack
constexpr size_t kMaxValues = 1u << 28;  // values in the arena
constexpr size_t kMaxMemo = 1u << 26;    // distinct memo slots
constexpr size_t kMaxGlobalLine = 256;   // module / name line of GLOBAL
constexpr size_t kMaxDims = 32;          // ndarray rank (numpy's own limit)

std::string quote(std::string_view s) {
  std::string out = "'";
  for (unsigned char c : s) {
    if (c >= 0x20 && c < 0x7f && c != '\'' && c != '\\') {
      out += static_cast<char>(c);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    }
  }
  return out + "'";
}

const char* global_name(Global g) {
  switch (g) {
    case Global::kReconstruct:
      return "numpy.core.multiarray._reconstruct";
    case Global::kNdArray:
      return "numpy.ndarray";
    case Global::kDType:
      return "numpy.dtype";
    case Global::kCsrMatrix:
      return "scipy.sparse.csr.csr_matrix";
    case Global::kDefaultDict:
      return "collections.defaultdict";
    case Global::kList:
      return "__builtin__.list";
  }
  return "?";
}

[[noreturn]] void fail_at(const std::string& name, uint64_t offset, const std::string& msg) {
  throw DataError(name + ": offset " + std::to_string(offset) + ": " + msg);
}

// Element size of a dtype string such as "<f4" (validated when it was made).
int item_size(const std::string& dtype) { return dtype[2] - '0'; }
char item_kind(const std::string& dtype) { return dtype[1]; }

}  // namespace

const char* kind_name(Kind kind) {
  switch (kind) {
    case Kind::kNone:
      return "None";
    case Kind::kBool:
      return "bool";
    case Kind::kInt:
      return "int";
    case Kind::kBytes:
      return "bytes";
    case Kind::kStr:
      return "str";
    case Kind::kTuple:
      return "tuple";
    case Kind::kList:
      return "list";
    case Kind::kDict:
      return "dict";
    case Kind::kGlobal:
      return "global";
    case Kind::kDType:
      return "numpy.dtype";
    case Kind::kNdArray:
      return "numpy.ndarray";
    case Kind::kCsrMatrix:
      return "csr_matrix";
    case Kind::kDefaultDict:
      return "defaultdict";
  }
  return "?";
}

const Value* Document::find(const Value& dict, std::string_view key) const {
  // Scanning from the end gives Python's "last assignment wins".
  for (size_t i = dict.items.size(); i >= 2; i -= 2) {
    const Value& k = at(dict.items[i - 2]);
    if ((k.kind == Kind::kBytes || k.kind == Kind::kStr) && k.bytes == key) {
      return &at(dict.items[i - 1]);
    }
  }
  return nullptr;
}

class Parser {
 public:
  Parser(std::string_view data, const std::string& name) : data_(data) { doc_.name_ = name; }

  Document run() {
    while (true) {
      if (pos_ >= data_.size()) {
        fail(pos_, "truncated: reached the end of the data without a STOP opcode");
      }
      op_pos_ = pos_;
      const unsigned char op = static_cast<unsigned char>(data_[pos_++]);
      if (step(op)) break;
    }
    if (pos_ != data_.size()) {
      fail(pos_, std::to_string(data_.size() - pos_) + " trailing bytes after STOP");
    }
    return std::move(doc_);
  }

 private:
  [[noreturn]] void fail(uint64_t offset, const std::string& msg) const {
    fail_at(doc_.name_, offset, msg);
  }
  [[noreturn]] void fail(const std::string& msg) const { fail(op_pos_, msg); }

  size_t remaining() const { return data_.size() - pos_; }

  void need(size_t n, const char* what) const {
    if (remaining() < n) {
      fail("truncated: " + std::string(what) + " needs " + std::to_string(n) + " bytes but only " +
           std::to_string(remaining()) + " remain");
    }
  }

  uint64_t read_uint(size_t n, const char* what) {
    need(n, what);
    uint64_t v = 0;
    for (size_t i = 0; i < n; ++i) {
      v |= static_cast<uint64_t>(static_cast<unsigned char>(data_[pos_ + i])) << (8 * i);
    }
    pos_ += n;
    return v;
  }

  std::string_view read_bytes(uint64_t n, const char* what) {
    // Checked before any copy: a 4-byte length field cannot make us allocate
    // more than the file holds.
    if (n > remaining()) {
      fail(std::string(what) + " declares " + std::to_string(n) + " bytes but only " +
           std::to_string(remaining()) + " remain");
    }
    std::string_view s = data_.substr(pos_, n);
    pos_ += n;
    return s;
  }

  std::string_view read_line(const char* what) {
    const size_t end = data_.find('\n', pos_);
    if (end == std::string_view::npos || end - pos_ > kMaxGlobalLine) {
      fail(std::string(what) + ": no newline within " + std::to_string(kMaxGlobalLine) + " bytes");
    }
    std::string_view s = data_.substr(pos_, end - pos_);
    pos_ = end + 1;
    return s;
  }

  ValueId make(Kind kind) {
    if (doc_.values_.size() >= kMaxValues) fail("too many values");
    Value v;
    v.kind = kind;
    v.offset = op_pos_;
    doc_.values_.push_back(std::move(v));
    return static_cast<ValueId>(doc_.values_.size() - 1);
  }
  Value& val(ValueId id) { return doc_.values_[id]; }

  void push(ValueId id) {
    if (stack_.size() >= kMaxStack) fail("stack exceeds " + std::to_string(kMaxStack) + " values");
    stack_.push_back(id);
  }
  // Values above the innermost MARK: an opcode may not reach below it.
  size_t available() const { return stack_.size() - (marks_.empty() ? 0 : marks_.back()); }
  void need_stack(size_t n, const char* opname) const {
    if (available() < n) {
      fail(std::string("stack underflow: ") + opname + " needs " + std::to_string(n) +
           " value(s) but " + std::to_string(available()) + " are available");
    }
  }
  ValueId pop(const char* opname) {
    need_stack(1, opname);
    const ValueId id = stack_.back();
    stack_.pop_back();
    return id;
  }
  ValueId top(const char* opname) const {
    need_stack(1, opname);
    return stack_.back();
  }
  // Everything above the innermost MARK, which is removed.
  std::vector<ValueId> pop_mark(const char* opname) {
    if (marks_.empty()) fail(std::string(opname) + " without a matching MARK");
    const size_t m = marks_.back();
    marks_.pop_back();
    std::vector<ValueId> items(stack_.begin() + static_cast<std::ptrdiff_t>(m), stack_.end());
    stack_.resize(m);
    return items;
  }

  void push_int(int64_t v) {
    const ValueId id = make(Kind::kInt);
    val(id).integer = v;
    push(id);
  }
  void push_bytes(std::string_view s, Kind kind) {
    const ValueId id = make(kind);
    val(id).bytes.assign(s.data(), s.size());
    push(id);
  }
  void push_tuple(std::vector<ValueId> items) {
    const ValueId id = make(Kind::kTuple);
    val(id).items = std::move(items);
    push(id);
  }

  void memo_put(uint64_t index) {
    const ValueId id = top("PUT");
    if (memo_.size() >= kMaxMemo && memo_.find(index) == memo_.end()) {
      fail("memo exceeds " + std::to_string(kMaxMemo) + " entries");
    }
    memo_[index] = id;
  }
  void memo_get(uint64_t index) {
    const auto it = memo_.find(index);
    if (it == memo_.end())
      fail("GET of memo slot " + std::to_string(index) + " which was never set");
    push(it->second);
  }

  void add_items(ValueId target, const std::vector<ValueId>& items, const char* opname) {
    Value& t = val(target);
    if (t.kind == Kind::kList && std::string_view(opname).rfind("APPEND", 0) == 0) {
      t.items.insert(t.items.end(), items.begin(), items.end());
    } else if ((t.kind == Kind::kDict || t.kind == Kind::kDefaultDict) &&
               std::string_view(opname).rfind("SETITEM", 0) == 0) {
      if (items.size() % 2 != 0) fail(std::string(opname) + " with an odd number of values");
      t.items.insert(t.items.end(), items.begin(), items.end());
    } else {
      fail(std::string(opname) + " on a " + kind_name(t.kind));
    }
  }

  void do_global() {
    const std::string module(read_line("GLOBAL module"));
    const std::string name(read_line("GLOBAL name"));
    static const struct {
      const char* module;
      const char* name;
      Global g;
    } kAllowed[] = {
        {"numpy.core.multiarray", "_reconstruct", Global::kReconstruct},
        {"numpy", "ndarray", Global::kNdArray},
        {"numpy", "dtype", Global::kDType},
        {"scipy.sparse.csr", "csr_matrix", Global::kCsrMatrix},
        {"collections", "defaultdict", Global::kDefaultDict},
        {"__builtin__", "list", Global::kList},
    };
    for (const auto& a : kAllowed) {
      if (module == a.module && name == a.name) {
        const ValueId id = make(Kind::kGlobal);
        val(id).global = a.g;
        push(id);
        return;
      }
    }
    fail("global " + quote(module + "." + name) +
         " is not allowed (only numpy arrays, scipy CSR matrices and defaultdict(list) are read)");
  }

  bool is_global(ValueId id, Global g) const {
    const Value& v = doc_.values_[id];
    return v.kind == Kind::kGlobal && v.global == g;
  }
  std::string describe(ValueId id) const {
    const Value& v = doc_.values_[id];
    return v.kind == Kind::kGlobal ? global_name(v.global) : kind_name(v.kind);
  }

  // "i4" / "<f8" / "|b1" -> canonical "<i4" etc., or "" when unsupported.
  static std::string canonical_dtype(std::string_view s) {
    char order = '<';
    if (!s.empty() && (s[0] == '<' || s[0] == '>' || s[0] == '|' || s[0] == '=')) {
      order = s[0] == '>' ? '>' : '<';
      s.remove_prefix(1);
    }
    if (s.size() != 2) return "";
    const char kind = s[0];
    const char size = s[1];
    const bool ok = (kind == 'b' && size == '1') || (kind == 'f' && (size == '4' || size == '8')) ||
                    ((kind == 'i' || kind == 'u') &&
                     (size == '1' || size == '2' || size == '4' || size == '8'));
    if (!ok) return "";
    return std::string(1, size == '1' ? '|' : order) + kind + size;
  }

  void do_reduce() {
    const ValueId args = pop("REDUCE");
    const ValueId callable = pop("REDUCE");
    if (val(args).kind != Kind::kTuple)
      fail("REDUCE arguments must be a tuple, got " + describe(args));
    const std::vector<ValueId> a = val(args).items;
    ValueId out = 0;
    if (is_global(callable, Global::kReconstruct)) {
      // _reconstruct(ndarray, (0,), 'b'): an empty array that BUILD fills.
      if (a.size() != 3 || !is_global(a[0], Global::kNdArray)) {
        fail("REDUCE: _reconstruct is only accepted as _reconstruct(numpy.ndarray, shape, dtype)");
      }
      out = make(Kind::kNdArray);
    } else if (is_global(callable, Global::kDType)) {
      // dtype('f4', 0, 1); the byte order arrives with BUILD.
      if (a.size() != 3 || (val(a[0]).kind != Kind::kBytes && val(a[0]).kind != Kind::kStr)) {
        fail("REDUCE: numpy.dtype is only accepted as dtype(str, int, int)");
      }
      std::string dt = canonical_dtype(val(a[0]).bytes);
      if (dt.empty()) {
        fail("unsupported numpy dtype " + quote(val(a[0]).bytes) +
             " (bool, int8-64, uint8-64, float32 and float64 are supported)");
      }
      if (dt[0] == '>')
        fail("big-endian numpy dtype " + quote(val(a[0]).bytes) + " is not supported");
      out = make(Kind::kDType);
      val(out).dtype = std::move(dt);
    } else if (is_global(callable, Global::kDefaultDict)) {
      if (a.size() > 1 || (a.size() == 1 && !is_global(a[0], Global::kList))) {
        fail("REDUCE: only defaultdict(list) is accepted");
      }
      out = make(Kind::kDefaultDict);
    } else {
      fail("REDUCE: calling " + describe(callable) + " is not allowed");
    }
    push(out);
  }

  void do_newobj() {
    const ValueId args = pop("NEWOBJ");
    const ValueId cls = pop("NEWOBJ");
    if (!is_global(cls, Global::kCsrMatrix) || val(args).kind != Kind::kTuple ||
        !val(args).items.empty()) {
      fail("NEWOBJ: only csr_matrix.__new__(csr_matrix) is accepted, got " + describe(cls));
    }
    push(make(Kind::kCsrMatrix));
  }

  int64_t small_int(ValueId id, const char* what) const {
    const Value& v = doc_.values_[id];
    if (v.kind != Kind::kInt && v.kind != Kind::kBool) {
      fail(std::string(what) + " must be an int, got " + describe(id));
    }
    return v.integer;
  }

  void build_dtype(ValueId obj, const std::vector<ValueId>& st) {
    // (version, byteorder, subarray, names, fields, elsize, alignment, flags)
    if (st.size() < 5) fail("BUILD: numpy.dtype state must have at least 5 fields");
    const Value& order = val(st[1]);
    if ((order.kind != Kind::kBytes && order.kind != Kind::kStr) || order.bytes.size() != 1) {
      fail("BUILD: numpy.dtype byte order must be a 1-character string");
    }
    for (size_t i = 2; i <= 4; ++i) {
      if (val(st[i]).kind != Kind::kNone)
        fail("BUILD: structured or sub-array numpy dtypes are not supported");
    }
    std::string& dt = val(obj).dtype;
    switch (order.bytes[0]) {
      case '<':
      case '=':  // native of the writer; every Planetoid writer was little-endian
        if (dt[0] != '|') dt[0] = '<';
        break;
      case '|':
        break;
      case '>':
        if (dt[0] != '|') fail("big-endian numpy dtype '>" + dt.substr(1) + "' is not supported");
        break;
      default:
        fail("BUILD: unknown numpy byte order " + quote(order.bytes));
    }
  }

  void build_ndarray(ValueId obj, std::vector<ValueId> st) {
    // (version, shape, dtype, is_fortran, data) or the version-less 4-tuple.
    if (st.size() == 5) {
      if (small_int(st[0], "ndarray state version") != 1)
        fail("BUILD: unsupported ndarray state version");
      st.erase(st.begin());
    }
    if (st.size() != 4) fail("BUILD: ndarray state must be (version, shape, dtype, fortran, data)");
    const Value& shape = val(st[0]);
    if (shape.kind != Kind::kTuple) fail("BUILD: ndarray shape must be a tuple");
    if (shape.items.size() > kMaxDims) fail("BUILD: ndarray has more than 32 dimensions");
    const Value& dtype = val(st[1]);
    if (dtype.kind != Kind::kDType)
      fail("BUILD: ndarray dtype must be a numpy.dtype, got " + describe(st[1]));
    const bool fortran = small_int(st[2], "ndarray fortran flag") != 0;
    const Value& data = val(st[3]);
    if (data.kind != Kind::kBytes) {
      fail("BUILD: ndarray data must be a byte string, got " + describe(st[3]) +
           " (object arrays are not supported)");
    }
    std::vector<int64_t> dims;
    uint64_t count = 1;
    size_t non_trivial = 0;
    for (ValueId d : shape.items) {
      const int64_t n = small_int(d, "ndarray dimension");
      if (n < 0) fail("BUILD: negative ndarray dimension " + std::to_string(n));
      if (n > 1) ++non_trivial;
      const auto un = static_cast<uint64_t>(n);
      if (un != 0 && count > std::numeric_limits<uint64_t>::max() / un) {
        fail("BUILD: ndarray shape overflows (product of dimensions exceeds 2^64)");
      }
      count *= un;
      dims.push_back(n);
    }
    const auto size = static_cast<uint64_t>(item_size(dtype.dtype));
    if (count > std::numeric_limits<uint64_t>::max() / size) {
      fail("BUILD: ndarray byte size overflows");
    }
    if (count * size != data.bytes.size()) {
      fail("BUILD: ndarray of shape " + shape_string(dims) + " and dtype " + dtype.dtype +
           " needs " + std::to_string(count * size) + " bytes of data but has " +
           std::to_string(data.bytes.size()));
    }
    if (fortran && non_trivial > 1)
      fail("BUILD: Fortran-ordered multi-dimensional arrays are not supported");
    Value& a = val(obj);
    a.dtype = dtype.dtype;
    a.shape = std::move(dims);
    a.bytes = data.bytes;
  }

  static std::string shape_string(const std::vector<int64_t>& dims) {
    std::string s = "(";
    for (size_t i = 0; i < dims.size(); ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
    return s + (dims.size() == 1 ? ",)" : ")");
  }

  void do_build() {
    const ValueId state = pop("BUILD");
    const ValueId obj = top("BUILD");
    const Kind k = val(obj).kind;
    if (k != Kind::kDType && k != Kind::kNdArray && k != Kind::kCsrMatrix) {
      fail(std::string("BUILD on a ") + describe(obj) + " is not supported");
    }
    if (val(obj).built) fail(std::string("BUILD applied twice to a ") + kind_name(k));
    if (k == Kind::kCsrMatrix) {
      if (val(state).kind != Kind::kDict)
        fail("BUILD: csr_matrix state must be a dict, got " + describe(state));
      val(obj).items = val(state).items;
    } else {
      if (val(state).kind != Kind::kTuple)
        fail(std::string("BUILD: ") + kind_name(k) + " state must be a tuple");
      const std::vector<ValueId> st = val(state).items;
      if (k == Kind::kDType) {
        build_dtype(obj, st);
      } else {
        build_ndarray(obj, st);
      }
    }
    val(obj).built = true;
  }

  // Executes one opcode; true at STOP.
  bool step(unsigned char op) {
    switch (op) {
      case 0x80: {  // PROTO
        const auto proto = read_uint(1, "PROTO");
        if (proto > 2)
          fail("unsupported pickle protocol " + std::to_string(proto) + " (expected 2)");
        return false;
      }
      case '.': {  // STOP
        if (!marks_.empty()) fail("STOP with an unclosed MARK");
        if (stack_.size() != 1) {
          fail("STOP with " + std::to_string(stack_.size()) + " values on the stack (expected 1)");
        }
        doc_.root_ = stack_.back();
        return true;
      }
      case 'c':
        do_global();
        return false;
      case 'q':
        memo_put(read_uint(1, "BINPUT"));
        return false;
      case 'r':
        memo_put(read_uint(4, "LONG_BINPUT"));
        return false;
      case 'h':
        memo_get(read_uint(1, "BINGET"));
        return false;
      case 'j':
        memo_get(read_uint(4, "LONG_BINGET"));
        return false;
      case '(':  // MARK
        if (marks_.size() >= kMaxMarkDepth)
          fail("MARKs nested deeper than " + std::to_string(kMaxMarkDepth));
        marks_.push_back(stack_.size());
        return false;
      case ')':
        push_tuple({});
        return false;
      case 't':
        push_tuple(pop_mark("TUPLE"));
        return false;
      case 0x85:
      case 0x86:
      case 0x87: {  // TUPLE1..3
        const size_t n = op - 0x84u;
        need_stack(n, "TUPLEn");
        std::vector<ValueId> items(stack_.end() - static_cast<std::ptrdiff_t>(n), stack_.end());
        stack_.resize(stack_.size() - n);
        push_tuple(std::move(items));
        return false;
      }
      case ']':
        push(make(Kind::kList));
        return false;
      case '}':
        push(make(Kind::kDict));
        return false;
      case 'a': {  // APPEND
        const ValueId item = pop("APPEND");
        add_items(top("APPEND"), {item}, "APPEND");
        return false;
      }
      case 'e': {  // APPENDS
        const std::vector<ValueId> items = pop_mark("APPENDS");
        add_items(top("APPENDS"), items, "APPENDS");
        return false;
      }
      case 's': {  // SETITEM
        const ValueId value = pop("SETITEM");
        const ValueId key = pop("SETITEM");
        add_items(top("SETITEM"), {key, value}, "SETITEM");
        return false;
      }
      case 'u': {  // SETITEMS
        const std::vector<ValueId> items = pop_mark("SETITEMS");
        add_items(top("SETITEMS"), items, "SETITEMS");
        return false;
      }
      case 'R':
        do_reduce();
        return false;
      case 0x81:
        do_newobj();
        return false;
      case 'b':
        do_build();
        return false;
      case 'U': {  // SHORT_BINSTRING
        const auto n = read_uint(1, "SHORT_BINSTRING");
        push_bytes(read_bytes(n, "SHORT_BINSTRING"), Kind::kBytes);
        return false;
      }
      case 'T': {  // BINSTRING: the length is a signed int32 in the format
        const auto n = read_uint(4, "BINSTRING");
        if (n > 0x7fffffffu) {
          fail("BINSTRING declares " + std::to_string(n) + " bytes but only " +
               std::to_string(remaining()) + " remain");
        }
        push_bytes(read_bytes(n, "BINSTRING"), Kind::kBytes);
        return false;
      }
      case 0x8c: {  // SHORT_BINUNICODE
        const auto n = read_uint(1, "SHORT_BINUNICODE");
        push_bytes(read_bytes(n, "SHORT_BINUNICODE"), Kind::kStr);
        return false;
      }
      case 'X': {  // BINUNICODE
        const auto n = read_uint(4, "BINUNICODE");
        push_bytes(read_bytes(n, "BINUNICODE"), Kind::kStr);
        return false;
      }
      case 'J':
        push_int(static_cast<int32_t>(read_uint(4, "BININT")));
        return false;
      case 'K':
        push_int(static_cast<int64_t>(read_uint(1, "BININT1")));
        return false;
      case 'M':
        push_int(static_cast<int64_t>(read_uint(2, "BININT2")));
        return false;
      case 0x8a: {  // LONG1: little-endian two's complement of n bytes
        const auto n = read_uint(1, "LONG1");
        if (n > 8) fail("LONG1 integer of " + std::to_string(n) + " bytes does not fit in 64 bits");
        uint64_t v = read_uint(n, "LONG1");
        if (n > 0 && n < 8 && (v >> (8 * n - 1)) & 1u) v |= ~uint64_t{0} << (8 * n);  // sign-extend
        push_int(static_cast<int64_t>(v));
        return false;
      }
      case 'N':
        push(make(Kind::kNone));
        return false;
      case 0x88:
      case 0x89: {  // NEWTRUE, NEWFALSE
        const ValueId id = make(Kind::kBool);
        val(id).integer = op == 0x88 ? 1 : 0;
        push(id);
        return false;
      }
      default: {
        char buf[8];
        std::snprintf(buf, sizeof buf, "0x%02x", op);
        fail(std::string("unknown or unsupported opcode ") + buf +
             (op >= 0x20 && op < 0x7f ? " (" + quote(std::string(1, static_cast<char>(op))) + ")"
                                      : ""));
      }
    }
  }

  std::string_view data_;
  size_t pos_ = 0;
  size_t op_pos_ = 0;
  Document doc_;
  std::vector<ValueId> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint64_t, ValueId> memo_;
};

Document parse(std::string_view bytes, const std::string& name) {
  return Parser(bytes, name).run();
}

Document parse_file(const std::filesystem::path& path) {
  const std::string name = path.filename().string();
  std::ifstream in(path, std::ios::binary);
  if (!in) throw DataError(path.string() + ": cannot open file");
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw DataError(path.string() + ": read error");
  return parse(ss.str(), name);
}

// ---------------------------------------------------------------------------
// Typed extractors

namespace {

[[noreturn]] void fail_value(const Document& doc, const Value& v, const std::string& msg) {
  fail_at(doc.name(), v.offset, msg);
}

const Value& expect_array(const Document& doc, const Value& v, const char* what) {
  if (v.kind != Kind::kNdArray || !v.built) {
    fail_value(doc, v, std::string(what) + " must be a numpy array, got " + kind_name(v.kind));
  }
  return v;
}

template <typename T>
T load(const char* p) {
  T t;
  std::memcpy(&t, p, sizeof(T));
  return t;
}

// Element i of a little-endian array as double (integers exact below 2^53).
double element_as_double(const Value& a, size_t i) {
  const int size = item_size(a.dtype);
  const char* p = a.bytes.data() + i * static_cast<size_t>(size);
  switch (item_kind(a.dtype)) {
    case 'b':
      return *p != 0 ? 1.0 : 0.0;
    case 'f':
      return size == 4 ? static_cast<double>(load<float>(p)) : load<double>(p);
    case 'i':
      switch (size) {
        case 1:
          return load<int8_t>(p);
        case 2:
          return load<int16_t>(p);
        case 4:
          return load<int32_t>(p);
        default:
          return static_cast<double>(load<int64_t>(p));
      }
    default:
      switch (size) {
        case 1:
          return load<uint8_t>(p);
        case 2:
          return load<uint16_t>(p);
        case 4:
          return load<uint32_t>(p);
        default:
          return static_cast<double>(load<uint64_t>(p));
      }
  }
}

size_t element_count(const Value& a) {
  return a.bytes.size() / static_cast<size_t>(item_size(a.dtype));
}

int32_t checked_dim(const Document& doc, const Value& v, int64_t n, const char* what) {
  if (n < 0 || n > std::numeric_limits<int32_t>::max()) {
    fail_value(doc, v, std::string(what) + " " + std::to_string(n) + " is out of range [0, 2^31)");
  }
  return static_cast<int32_t>(n);
}

// Sorts one row's (column, value) pairs, sums duplicates and drops zeros.
void append_row(std::vector<std::pair<int32_t, double>>& row, CsrMatrix& m) {
  std::sort(row.begin(), row.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  for (size_t i = 0; i < row.size();) {
    double sum = 0;
    size_t j = i;
    for (; j < row.size() && row[j].first == row[i].first; ++j) sum += row[j].second;
    const auto value = static_cast<float>(sum);
    if (value != 0.0f) {
      m.indices.push_back(row[i].first);
      m.values.push_back(value);
    }
    i = j;
  }
  m.indptr.push_back(static_cast<int32_t>(m.indices.size()));
}

}  // namespace

DenseArray to_dense(const Document& doc, const Value& v) {
  expect_array(doc, v, "value");
  DenseArray out;
  out.shape = v.shape;
  const size_t n = element_count(v);
  out.values.resize(n);
  for (size_t i = 0; i < n; ++i) out.values[i] = element_as_double(v, i);
  return out;
}

std::vector<int64_t> to_int64(const Document& doc, const Value& v) {
  expect_array(doc, v, "value");
  const char kind = item_kind(v.dtype);
  if (kind == 'f') fail_value(doc, v, "expected an integer array, got dtype " + v.dtype);
  const size_t n = element_count(v);
  const int size = item_size(v.dtype);
  std::vector<int64_t> out(n);
  for (size_t i = 0; i < n; ++i) {
    const char* p = v.bytes.data() + i * static_cast<size_t>(size);
    if (kind == 'u' && size == 8) {
      const auto u = load<uint64_t>(p);
      if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        fail_value(doc, v, "uint64 element " + std::to_string(i) + " does not fit in int64");
      }
      out[i] = static_cast<int64_t>(u);
    } else if (kind == 'i' && size == 8) {
      out[i] = load<int64_t>(p);
    } else {
      out[i] = static_cast<int64_t>(element_as_double(v, i));
    }
  }
  return out;
}

CsrMatrix to_csr(const Document& doc, const Value& v) {
  CsrMatrix m;
  std::vector<std::pair<int32_t, double>> row;
  if (v.kind == Kind::kNdArray && v.built) {
    if (v.shape.size() != 2) {
      fail_value(doc, v,
                 "expected a 2-D array, got " + std::to_string(v.shape.size()) + " dimensions");
    }
    m.n_rows = checked_dim(doc, v, v.shape[0], "number of rows");
    m.n_cols = checked_dim(doc, v, v.shape[1], "number of columns");
    // Rows without columns hold no data, so nothing in the file bounds their
    // count, yet each costs an indptr entry: (2^31-1, 0) would need 8 GiB.
    if (m.n_cols == 0 && m.n_rows > 0) {
      fail_value(doc, v, "2-D array of shape (" + std::to_string(m.n_rows) + ", 0) has no columns");
    }
    m.indptr.reserve(static_cast<size_t>(m.n_rows) + 1);
    m.indptr.push_back(0);
    for (int64_t r = 0; r < m.n_rows; ++r) {
      row.clear();
      for (int32_t c = 0; c < m.n_cols; ++c) {
        const double x = element_as_double(v, static_cast<size_t>(r * m.n_cols + c));
        if (x != 0.0) row.emplace_back(c, x);
      }
      if (m.indices.size() + row.size() >
          static_cast<size_t>(std::numeric_limits<int32_t>::max())) {
        fail_value(doc, v, "more than 2^31-1 non-zeros");
      }
      append_row(row, m);
    }
    return m;
  }
  if (v.kind != Kind::kCsrMatrix || !v.built) {
    fail_value(doc, v,
               std::string("expected a csr_matrix or a 2-D numpy array, got ") + kind_name(v.kind));
  }
  if (const Value* format = doc.find(v, "format");
      format && (format->kind != Kind::kBytes || format->bytes != "csr")) {
    fail_value(doc, v, "csr_matrix: format is not 'csr'");
  }
  const Value* shape = doc.find(v, "_shape");
  if (!shape) shape = doc.find(v, "shape");
  if (!shape || shape->kind != Kind::kTuple || shape->items.size() != 2 ||
      doc.at(shape->items[0]).kind != Kind::kInt || doc.at(shape->items[1]).kind != Kind::kInt) {
    fail_value(doc, v, "csr_matrix: missing or malformed _shape (expected a tuple of two ints)");
  }
  m.n_rows =
      checked_dim(doc, *shape, doc.at(shape->items[0]).integer, "csr_matrix: number of rows");
  m.n_cols =
      checked_dim(doc, *shape, doc.at(shape->items[1]).integer, "csr_matrix: number of columns");
  const Value* indptr_v = doc.find(v, "indptr");
  const Value* indices_v = doc.find(v, "indices");
  const Value* data_v = doc.find(v, "data");
  if (!indptr_v || !indices_v || !data_v)
    fail_value(doc, v, "csr_matrix: missing indptr, indices or data");
  for (const Value* a : {indptr_v, indices_v, data_v}) {
    expect_array(doc, *a, "csr_matrix component");
    if (a->shape.size() != 1) fail_value(doc, *a, "csr_matrix: component arrays must be 1-D");
  }
  const std::vector<int64_t> indptr = to_int64(doc, *indptr_v);
  const std::vector<int64_t> indices = to_int64(doc, *indices_v);
  const size_t nnz = indices.size();
  if (element_count(*data_v) != nnz) {
    fail_value(doc, *data_v,
               "csr_matrix: data has " + std::to_string(element_count(*data_v)) +
                   " entries but indices has " + std::to_string(nnz));
  }
  if (indptr.size() != static_cast<size_t>(m.n_rows) + 1) {
    fail_value(doc, *indptr_v,
               "csr_matrix: indptr has " + std::to_string(indptr.size()) + " entries for " +
                   std::to_string(m.n_rows) + " rows (expected rows + 1)");
  }
  if (indptr[0] != 0) fail_value(doc, *indptr_v, "csr_matrix: indptr[0] is not 0");
  for (int32_t r = 0; r < m.n_rows; ++r) {
    if (indptr[r + 1] < indptr[r]) {
      fail_value(doc, *indptr_v, "csr_matrix: indptr is not monotone at row " + std::to_string(r));
    }
  }
  if (static_cast<uint64_t>(indptr.back()) != nnz) {
    fail_value(doc, *indptr_v,
               "csr_matrix: indptr ends at " + std::to_string(indptr.back()) + " but there are " +
                   std::to_string(nnz) + " entries");
  }
  if (nnz > static_cast<size_t>(std::numeric_limits<int32_t>::max())) {
    fail_value(doc, v, "csr_matrix: more than 2^31-1 non-zeros");
  }
  m.indptr.reserve(static_cast<size_t>(m.n_rows) + 1);
  m.indices.reserve(nnz);
  m.values.reserve(nnz);
  m.indptr.push_back(0);
  for (int32_t r = 0; r < m.n_rows; ++r) {
    row.clear();
    for (auto k = static_cast<size_t>(indptr[r]); k < static_cast<size_t>(indptr[r + 1]); ++k) {
      if (indices[k] < 0 || indices[k] >= m.n_cols) {
        fail_value(doc, *indices_v,
                   "csr_matrix: column index " + std::to_string(indices[k]) + " in row " +
                       std::to_string(r) + " is outside [0, " + std::to_string(m.n_cols) + ")");
      }
      row.emplace_back(static_cast<int32_t>(indices[k]), element_as_double(*data_v, k));
    }
    append_row(row, m);
  }
  return m;
}

Adjacency to_adjacency(const Document& doc, const Value& v) {
  if (v.kind != Kind::kDict && v.kind != Kind::kDefaultDict) {
    fail_value(doc, v,
               std::string("expected a dict of int -> list of ints, got ") + kind_name(v.kind));
  }
  Adjacency out;
  std::unordered_map<int64_t, size_t> position;  // Python keeps a re-set key at its first position
  for (size_t i = 0; i + 1 < v.items.size(); i += 2) {
    const Value& key = doc.at(v.items[i]);
    const Value& list = doc.at(v.items[i + 1]);
    if (key.kind != Kind::kInt)
      fail_value(doc, key, std::string("graph key must be an int, got ") + kind_name(key.kind));
    if (list.kind != Kind::kList && list.kind != Kind::kTuple) {
      fail_value(doc, list,
                 "graph value of key " + std::to_string(key.integer) + " must be a list, got " +
                     kind_name(list.kind));
    }
    std::vector<int64_t> targets;
    targets.reserve(list.items.size());
    for (ValueId t : list.items) {
      const Value& tv = doc.at(t);
      if (tv.kind != Kind::kInt) {
        fail_value(doc, tv,
                   "neighbour of key " + std::to_string(key.integer) + " must be an int, got " +
                       kind_name(tv.kind));
      }
      targets.push_back(tv.integer);
    }
    const auto [it, inserted] = position.emplace(key.integer, out.size());
    if (inserted) {
      out.emplace_back(key.integer, std::move(targets));
    } else {
      out[it->second].second = std::move(targets);
    }
  }
  return out;
}

}  // namespace gcn::pickle
