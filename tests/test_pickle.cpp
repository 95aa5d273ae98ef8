// The restricted pickle reader: hand-built pickles for each opcode family, the
// numpy/scipy/defaultdict patterns, and malformed input (every error must be a
// gcn::DataError naming the offset; nothing may crash or allocate wildly).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "gcn/error.hpp"
#include "gcn/data/pickle.hpp"
#include "test_util.hpp"

namespace gcn::pickle {
namespace {

using ::testing::HasSubstr;

// --- A tiny pickle writer --------------------------------------------------

std::string le(uint64_t v, int n) {
  std::string s;
  for (int i = 0; i < n; ++i) s += static_cast<char>(i < 8 ? (v >> (8 * i)) & 0xff : 0);
  return s;
}
const std::string kProto = "\x80\x02";
const std::string kStop = ".";
const std::string kMark = "(";
const std::string kTuple = "t";
const std::string kTuple1 = "\x85";
const std::string kTuple2 = "\x86";
const std::string kTuple3 = "\x87";
const std::string kReduce = "R";
const std::string kBuild = "b";
const std::string kNone = "N";
const std::string kFalse = "\x89";
std::string i1(int v) { return "K" + le(static_cast<uint64_t>(v), 1); }
std::string i2(int v) { return "M" + le(static_cast<uint64_t>(v), 2); }
std::string i4(int32_t v) { return "J" + le(static_cast<uint32_t>(v), 4); }
std::string long1(int64_t v, int n) {
  return "\x8a" + le(static_cast<uint64_t>(n), 1) + le(static_cast<uint64_t>(v), n);
}
std::string ss(const std::string& s) { return "U" + le(s.size(), 1) + s; }
std::string bs(const std::string& s) { return "T" + le(s.size(), 4) + s; }
std::string glob(const std::string& m, const std::string& n) { return "c" + m + "\n" + n + "\n"; }
std::string put(int i) { return "q" + le(static_cast<uint64_t>(i), 1); }
std::string get(int i) { return "h" + le(static_cast<uint64_t>(i), 1); }
std::string wrap(const std::string& body) { return kProto + body + kStop; }

std::string dtype(const std::string& descr, const std::string& order) {
  return glob("numpy", "dtype") + ss(descr) + i1(0) + i1(1) + kTuple3 + kReduce + kMark + i1(3) +
         ss(order) + kNone + kNone + kNone + i4(-1) + i4(-1) + i1(0) + kTuple + kBuild;
}

// numpy's ndarray.__reduce__ pattern; `dims` are already-encoded ints.
std::string ndarray(const std::string& descr, const std::vector<std::string>& dims,
                    const std::string& data, const std::string& order = "<") {
  std::string shape = kMark;
  for (const auto& d : dims) shape += d;
  shape += kTuple;
  return glob("numpy.core.multiarray", "_reconstruct") + glob("numpy", "ndarray") + i1(0) +
         kTuple1 + ss("b") + kTuple3 + kReduce + kMark + i1(1) + shape + dtype(descr, order) +
         kFalse + bs(data) + kTuple + kBuild;
}

template <typename T>
std::string raw(const std::vector<T>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
}

std::string csr(int rows, int cols, const std::vector<int32_t>& indptr,
                const std::vector<int32_t>& indices, const std::string& data_array) {
  return glob("scipy.sparse.csr", "csr_matrix") + ")" + "\x81" + "}" + kMark + ss("format") +
         ss("csr") + ss("_shape") + i2(rows) + i2(cols) + kTuple2 + ss("indptr") +
         ndarray("i4", {i2(static_cast<int>(indptr.size()))}, raw(indptr)) + ss("indices") +
         ndarray("i4", {i2(static_cast<int>(indices.size()))}, raw(indices)) + ss("data") +
         data_array + ss("maxprint") + i1(50) + "u" + kBuild;
}

std::string error_of(const std::string& bytes, const std::string& name = "t.pkl") {
  try {
    parse(bytes, name);
  } catch (const DataError& e) {
    return e.what();
  }
  return "(no error)";
}

// --- Opcode families -------------------------------------------------------

TEST(PickleParse, Scalars) {
  const Document d = parse(wrap(kMark + kNone + "\x88" + kFalse + i1(255) + i2(65535) + i4(-5) +
                                long1(-3, 3) + long1(1ll << 40, 6) + long1(0, 0) + kTuple),
                           "t");
  const Value& t = d.root();
  ASSERT_EQ(t.kind, Kind::kTuple);
  ASSERT_EQ(t.items.size(), 9u);
  EXPECT_EQ(d.at(t.items[0]).kind, Kind::kNone);
  EXPECT_EQ(d.at(t.items[1]).kind, Kind::kBool);
  EXPECT_EQ(d.at(t.items[1]).integer, 1);
  EXPECT_EQ(d.at(t.items[2]).integer, 0);
  EXPECT_EQ(d.at(t.items[3]).integer, 255);
  EXPECT_EQ(d.at(t.items[4]).integer, 65535);
  EXPECT_EQ(d.at(t.items[5]).integer, -5);
  EXPECT_EQ(d.at(t.items[6]).integer, -3);
  EXPECT_EQ(d.at(t.items[7]).integer, 1ll << 40);
  EXPECT_EQ(d.at(t.items[8]).integer, 0);
}

TEST(PickleParse, Strings) {
  const std::string with_nul("a\0b", 3);
  const Document d = parse(wrap(kMark + ss("abc") + bs(with_nul) + "\x8c\x02hi" + "X" + le(3, 4) +
                                "\xc3\xa9!" + kTuple + ")" + kTuple2),
                           "t");
  const Value& outer = d.root();
  ASSERT_EQ(outer.items.size(), 2u);
  const Value& t = d.at(outer.items[0]);
  ASSERT_EQ(t.items.size(), 4u);
  EXPECT_EQ(d.at(t.items[0]).bytes, "abc");
  EXPECT_EQ(d.at(t.items[1]).bytes, with_nul);
  EXPECT_EQ(d.at(t.items[1]).kind, Kind::kBytes);
  EXPECT_EQ(d.at(t.items[2]).bytes, "hi");
  EXPECT_EQ(d.at(t.items[2]).kind, Kind::kStr);
  EXPECT_EQ(d.at(t.items[3]).bytes, "\xc3\xa9!");
  const Value& empty = d.at(outer.items[1]);
  EXPECT_EQ(empty.kind, Kind::kTuple);
  EXPECT_TRUE(empty.items.empty());
}

TEST(PickleParse, ListsDictsAndMemo) {
  // d = {'a': 1}; l = [1]; l.append(2); l.extend([3, 4]); d.update(b=l, a=9);
  // result (d, (d, l)), with d and l fetched back through LONG_BINGET/BINGET.
  const std::string pickle = kProto + "}" + "r" + le(70000, 4) + ss("a") + i1(1) + "s" + kMark +
                             ss("b") + "]" + put(1) + "r" + le(5, 4) + i1(1) + "a" + i1(2) + "a" +
                             kMark + i1(3) + i1(4) + "e" + ss("a") + i1(9) + "u" + "j" +
                             le(70000, 4) + "j" + le(5, 4) + kTuple2 + kTuple2 + kStop;
  const Document d = parse(pickle, "t");
  const Value& root = d.root();
  ASSERT_EQ(root.kind, Kind::kTuple);
  const Value& dict = d.at(root.items[0]);
  ASSERT_EQ(dict.kind, Kind::kDict);
  const Value* a = d.find(dict, "a");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->integer, 9);  // the last assignment wins
  const Value* b = d.find(dict, "b");
  ASSERT_NE(b, nullptr);
  ASSERT_EQ(b->kind, Kind::kList);
  ASSERT_EQ(b->items.size(), 4u);
  EXPECT_EQ(d.at(b->items[0]).integer, 1);
  EXPECT_EQ(d.at(b->items[3]).integer, 4);
  EXPECT_EQ(d.find(dict, "zzz"), nullptr);
  const Value& inner = d.at(root.items[1]);
  EXPECT_EQ(inner.items[0], root.items[0]);  // the same dict, by reference
  EXPECT_EQ(&d.at(inner.items[1]), b);       // the same list
}

TEST(PickleParse, NdArrays) {
  const Document f8 =
      parse(wrap(ndarray("f8", {i1(2), i1(2)}, raw(std::vector<double>{1.5, 0, -2, 4}))), "t");
  ASSERT_EQ(f8.root().kind, Kind::kNdArray);
  EXPECT_EQ(f8.root().dtype, "<f8");
  const DenseArray a = to_dense(f8, f8.root());
  EXPECT_EQ(a.shape, (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(a.values, (std::vector<double>{1.5, 0, -2, 4}));
  const CsrMatrix m = to_csr(f8, f8.root());
  EXPECT_EQ(m.n_rows, 2);
  EXPECT_EQ(m.indptr, (std::vector<int32_t>{0, 1, 3}));
  EXPECT_EQ(m.indices, (std::vector<int32_t>{0, 0, 1}));
  EXPECT_EQ(m.values, (std::vector<float>{1.5f, -2.f, 4.f}));

  const Document i8 =
      parse(wrap(ndarray("i8", {i1(3)}, raw(std::vector<int64_t>{-1, 1ll << 40, 7}))), "t");
  EXPECT_EQ(to_int64(i8, i8.root()), (std::vector<int64_t>{-1, 1ll << 40, 7}));
  const Document b1 = parse(wrap(ndarray("b1", {i1(3)}, std::string("\x01\x00\x01", 3), "|")), "t");
  EXPECT_EQ(b1.root().dtype, "|b1");
  EXPECT_EQ(to_int64(b1, b1.root()), (std::vector<int64_t>{1, 0, 1}));
  const Document u2 =
      parse(wrap(ndarray("u2", {i1(1)}, raw(std::vector<uint16_t>{65535}), "=")), "t");
  EXPECT_EQ(to_int64(u2, u2.root()), (std::vector<int64_t>{65535}));
  const Document empty = parse(wrap(ndarray("f4", {i1(0), i2(1433)}, "")), "t");
  EXPECT_EQ(to_csr(empty, empty.root()).n_cols, 1433);
  EXPECT_THAT(error_of(wrap(ndarray("f4", {i1(1)}, raw(std::vector<float>{1})))),
              HasSubstr("(no error)"));
  const Document f4 = parse(wrap(ndarray("f4", {i1(1)}, raw(std::vector<float>{1}))), "t");
  EXPECT_THROW(to_int64(f4, f4.root()), DataError);
}

TEST(PickleParse, CsrMatrixSortsAndSumsDuplicates) {
  // Row 0: columns 2, 0, 2 (unsorted, duplicate); row 1 empty; row 2: column 1 = 0 (explicit zero).
  const std::string data = ndarray("f8", {i1(4)}, raw(std::vector<double>{1.0, 2.0, 0.25, 0.0}));
  const Document d = parse(wrap(csr(3, 3, {0, 3, 3, 4}, {2, 0, 2, 1}, data)), "t");
  ASSERT_EQ(d.root().kind, Kind::kCsrMatrix);
  const CsrMatrix m = to_csr(d, d.root());
  EXPECT_EQ(m.n_rows, 3);
  EXPECT_EQ(m.n_cols, 3);
  EXPECT_EQ(m.indptr, (std::vector<int32_t>{0, 2, 2, 2}));
  EXPECT_EQ(m.indices, (std::vector<int32_t>{0, 2}));
  EXPECT_EQ(m.values, (std::vector<float>{2.0f, 1.25f}));
  EXPECT_NO_THROW(m.validate("m"));
}

TEST(PickleParse, DefaultDictAdjacency) {
  const std::string p = wrap(glob("collections", "defaultdict") + glob("__builtin__", "list") +
                             kTuple1 + kReduce + kMark + i1(5) + "]" + kMark + i1(1) + i2(700) +
                             "e" + i1(0) + "]" + i1(3) + "a" + i1(5) + "]" + i1(2) + "a" + "u");
  const Document d = parse(p, "g");
  ASSERT_EQ(d.root().kind, Kind::kDefaultDict);
  const Adjacency adj = to_adjacency(d, d.root());
  ASSERT_EQ(adj.size(), 2u);
  EXPECT_EQ(adj[0].first, 5);  // the first position of a re-set key, its last value
  EXPECT_EQ(adj[0].second, (std::vector<int64_t>{2}));
  EXPECT_EQ(adj[1].first, 0);
  EXPECT_EQ(adj[1].second, (std::vector<int64_t>{3}));
}

TEST(PickleParse, DeepNestingAndCyclesDoNotRecurse) {
  std::string p = kProto + i1(1);
  for (int i = 0; i < 200000; ++i) p += kTuple1;
  EXPECT_NO_THROW(parse(p + kStop, "t"));
  // l = []; l.append(l)
  const Document d = parse(wrap("]" + put(0) + get(0) + "a"), "t");
  EXPECT_EQ(d.root().items.size(), 1u);
}

// --- Malformed input -------------------------------------------------------

TEST(PickleErrors, UnknownOpcode) {
  EXPECT_THAT(error_of(wrap(i1(1) + "Z")),
              HasSubstr("t.pkl: offset 4: unknown or unsupported opcode 0x5a"));
  EXPECT_THAT(error_of(kProto + "\x95" + le(8, 8)), HasSubstr("0x95"));
  EXPECT_THAT(error_of("\x80\x04" + i1(1) + kStop), HasSubstr("unsupported pickle protocol 4"));
}

TEST(PickleErrors, GlobalOutsideWhitelist) {
  const std::string e = error_of(wrap(glob("os", "system") + ss("echo hi") + kTuple1 + kReduce));
  EXPECT_THAT(e, HasSubstr("offset 2"));
  EXPECT_THAT(e, HasSubstr("'os.system' is not allowed"));
  EXPECT_THAT(error_of(wrap(glob("__builtin__", "eval"))), HasSubstr("not allowed"));
  EXPECT_THAT(error_of(wrap(glob("numpy", std::string(300, 'a')))), HasSubstr("no newline"));
  // A whitelisted global used the wrong way.
  EXPECT_THAT(error_of(wrap(glob("numpy", "ndarray") + i1(1) + kTuple1 + kReduce)),
              HasSubstr("REDUCE: calling numpy.ndarray is not allowed"));
  EXPECT_THAT(error_of(wrap(glob("collections", "defaultdict") + glob("numpy", "dtype") + kTuple1 +
                            kReduce)),
              HasSubstr("only defaultdict(list)"));
  EXPECT_THAT(error_of(wrap(glob("numpy", "dtype") + ")" + "\x81")), HasSubstr("NEWOBJ"));
}

TEST(PickleErrors, MemoAndStack) {
  EXPECT_THAT(error_of(wrap(get(7))),
              HasSubstr("offset 2: GET of memo slot 7 which was never set"));
  EXPECT_THAT(error_of(wrap("j" + le(0xffffffffu, 4))), HasSubstr("memo slot 4294967295"));
  EXPECT_THAT(error_of(wrap(put(0))), HasSubstr("stack underflow"));
  EXPECT_THAT(error_of(wrap(i1(1) + kTuple2)), HasSubstr("stack underflow: TUPLEn needs 2"));
  EXPECT_THAT(error_of(wrap(kReduce)), HasSubstr("stack underflow"));
  EXPECT_THAT(error_of(wrap("]" + kMark + "a")),
              HasSubstr("stack underflow"));  // cannot reach below MARK
  EXPECT_THAT(error_of(wrap(i1(1) + kTuple)), HasSubstr("TUPLE without a matching MARK"));
  EXPECT_THAT(error_of(wrap("]" + i1(1) + "e")), HasSubstr("APPENDS without a matching MARK"));
  EXPECT_THAT(error_of(wrap(kMark + i1(1))), HasSubstr("STOP with an unclosed MARK"));
  EXPECT_THAT(error_of(kProto + i1(1) + i1(2) + kStop), HasSubstr("STOP with 2 values"));
  EXPECT_THAT(error_of(kProto + kStop), HasSubstr("STOP with 0 values"));
  EXPECT_THAT(error_of(wrap(i1(1) + i1(2) + "a")), HasSubstr("APPEND on a int"));
  EXPECT_THAT(error_of(wrap("}" + kMark + i1(1) + "u")), HasSubstr("odd number"));
  std::string deep = kProto;
  for (int i = 0; i < 300; ++i) deep += kMark;
  EXPECT_THAT(error_of(deep), HasSubstr("MARKs nested deeper than 256"));
}

TEST(PickleErrors, TruncationAndTrailingBytes) {
  EXPECT_THAT(error_of(""), HasSubstr("offset 0: truncated"));
  EXPECT_THAT(error_of(kProto + i1(1)), HasSubstr("without a STOP"));
  EXPECT_THAT(error_of(kProto + "J\x01\x02"),
              HasSubstr("offset 2: truncated: BININT needs 4 bytes but only 2 remain"));
  EXPECT_THAT(error_of(kProto + "U\x05" + "ab"),
              HasSubstr("SHORT_BINSTRING declares 5 bytes but only 2 remain"));
  EXPECT_THAT(error_of(wrap(i1(1)) + "xx"), HasSubstr("2 trailing bytes after STOP"));
}

TEST(PickleErrors, AbsurdDeclaredSizes) {
  EXPECT_THAT(
      error_of(kProto + "T" + le(0xffffffffu, 4) + "abc" + kStop, "ind.cora.x"),
      HasSubstr("ind.cora.x: offset 2: BINSTRING declares 4294967295 bytes but only 4 remain"));
  EXPECT_THAT(error_of(kProto + "T" + le(0x7fffffffu, 4) + kStop),
              HasSubstr("BINSTRING declares 2147483647 bytes but only 1 remain"));
  EXPECT_THAT(error_of(kProto + "X" + le(0xfffffff0u, 4) + kStop),
              HasSubstr("BINUNICODE declares"));
  EXPECT_THAT(error_of(wrap(long1(1, 9) + std::string(9, '\0'))),
              HasSubstr("does not fit in 64 bits"));
  // shape (2^40, 2^40) with 8 bytes of data: rejected from the shape alone.
  const int64_t big = 1ll << 40;
  EXPECT_THAT(error_of(wrap(ndarray("i4", {long1(big, 6), long1(big, 6)}, "12345678"))),
              HasSubstr("shape overflows"));
  EXPECT_THAT(error_of(wrap(ndarray("f8", {long1(1ll << 61, 8)}, "12345678"))),
              HasSubstr("byte size overflows"));
  EXPECT_THAT(error_of(wrap(ndarray("f8", {long1(big, 6)}, "12345678"))),
              HasSubstr("needs 8796093022208 bytes of data but has 8"));
  EXPECT_THAT(error_of(wrap(ndarray("f8", {i4(-3)}, ""))), HasSubstr("negative ndarray dimension"));
}

TEST(PickleErrors, ArrayDataAndDtype) {
  EXPECT_THAT(error_of(wrap(ndarray("i4", {i1(3)}, "12345678"))),
              HasSubstr("ndarray of shape (3,) and dtype <i4 needs 12 bytes of data but has 8"));
  EXPECT_THAT(error_of(wrap(ndarray("i4", {i1(2)}, "12345678", ">"))),
              HasSubstr("big-endian numpy dtype '>i4'"));
  EXPECT_THAT(error_of(wrap(ndarray(">f8", {i1(1)}, "12345678"))), HasSubstr("big-endian"));
  EXPECT_THAT(error_of(wrap(ndarray("c16", {i1(1)}, std::string(16, '\0')))),
              HasSubstr("unsupported numpy dtype 'c16'"));
  EXPECT_THAT(error_of(wrap(ndarray("O", {i1(1)}, ""))), HasSubstr("unsupported numpy dtype"));
  EXPECT_THAT(error_of(wrap(ndarray("f4", {i1(1)}, "1234") + kMark + kTuple + kBuild)),
              HasSubstr("BUILD applied twice"));
  EXPECT_THAT(error_of(wrap(i1(1) + i1(2) + kBuild)), HasSubstr("BUILD on a int"));
}

TEST(PickleErrors, CsrInconsistent) {
  const std::string d3 = ndarray("f4", {i1(3)}, raw(std::vector<float>{1, 1, 1}));
  auto csr_error = [](const std::string& p) {
    try {
      const Document d = parse(p, "m.pkl");
      to_csr(d, d.root());
    } catch (const DataError& e) {
      return std::string(e.what());
    }
    return std::string("(no error)");
  };
  EXPECT_THAT(csr_error(wrap(csr(2, 3, {0, 2, 1}, {0, 1, 2}, d3))),
              HasSubstr("indptr is not monotone at row 1"));
  EXPECT_THAT(csr_error(wrap(csr(2, 3, {0, 2, 3}, {0, 3, 2}, d3))),
              HasSubstr("column index 3 in row 0 is outside [0, 3)"));
  EXPECT_THAT(csr_error(wrap(csr(2, 3, {0, -1, 3}, {0, 1, 2}, d3))), HasSubstr("not monotone"));
  EXPECT_THAT(csr_error(wrap(csr(3, 3, {0, 2, 3}, {0, 1, 2}, d3))),
              HasSubstr("indptr has 3 entries for 3 rows"));
  EXPECT_THAT(csr_error(wrap(csr(2, 3, {1, 2, 3}, {0, 1, 2}, d3))),
              HasSubstr("indptr[0] is not 0"));
  EXPECT_THAT(csr_error(wrap(csr(2, 3, {0, 1, 2}, {0, 1, 2}, d3))),
              HasSubstr("indptr ends at 2 but there are 3"));
  EXPECT_THAT(csr_error(wrap(csr(2, 3, {0, 2, 4}, {0, 1, 2, 0}, d3))),
              HasSubstr("data has 3 entries but indices has 4"));
  EXPECT_THAT(csr_error(wrap(ndarray("f4", {i1(3)}, raw(std::vector<float>{1, 1, 1})))),
              HasSubstr("2-D"));
  EXPECT_THAT(csr_error(wrap("]")), HasSubstr("expected a csr_matrix"));
  EXPECT_THAT(csr_error(wrap(glob("scipy.sparse.csr", "csr_matrix") + ")" + "\x81" + "}" + kBuild)),
              HasSubstr("_shape"));
  // An unbuilt array (no BUILD) is not an array.
  EXPECT_THAT(
      csr_error(wrap(glob("numpy.core.multiarray", "_reconstruct") + glob("numpy", "ndarray") +
                     i1(0) + kTuple1 + ss("b") + kTuple3 + kReduce)),
      HasSubstr("expected a csr_matrix"));
}

TEST(PickleErrors, AdjacencyShapes) {
  auto adj_error = [](const std::string& p) {
    try {
      const Document d = parse(p, "g");
      to_adjacency(d, d.root());
    } catch (const DataError& e) {
      return std::string(e.what());
    }
    return std::string("(no error)");
  };
  EXPECT_THAT(adj_error(wrap("}" + ss("a") + "]" + "s")), HasSubstr("graph key must be an int"));
  EXPECT_THAT(adj_error(wrap("}" + i1(1) + i1(2) + "s")), HasSubstr("must be a list"));
  EXPECT_THAT(adj_error(wrap("}" + i1(1) + "]" + kNone + "a" + "s")),
              HasSubstr("neighbour of key 1 must be an int"));
  EXPECT_THAT(adj_error(wrap("]")), HasSubstr("expected a dict"));
}

// --- The real files --------------------------------------------------------

TEST(PickleRealFiles, ParseCoraAndTruncateEverywhere) {
  GCN_DATA_ROOT_OR_SKIP(root);
  const auto dir = gcn::find_planetoid_dir("cora", root);
  const Document y = parse_file(dir / "ind.cora.y");
  EXPECT_EQ(y.root().kind, Kind::kNdArray);
  EXPECT_EQ(y.root().shape, (std::vector<int64_t>{140, 7}));

  int checked = 0;
  for (const char* ext : {"x", "y", "tx", "ty", "allx", "ally", "graph"}) {
    const std::string name = std::string("ind.cora.") + ext;
    const std::string bytes = test::read_file(dir / name);
    ASSERT_FALSE(bytes.empty());
    EXPECT_NO_THROW(parse(bytes, name));
    std::vector<size_t> cuts;
    for (size_t off = 0; off < bytes.size(); off += 997) cuts.push_back(off);
    // The label files are small: cut them at every single offset.
    if (std::string(ext) == "y" || std::string(ext) == "ty") {
      cuts.clear();
      for (size_t off = 0; off < bytes.size(); ++off) cuts.push_back(off);
    }
    for (size_t off : cuts) {
      try {
        parse(std::string_view(bytes).substr(0, off), name);
        ADD_FAILURE() << name << " truncated at " << off << " parsed without error";
      } catch (const DataError& e) {
        EXPECT_THAT(std::string(e.what()), HasSubstr(name + ": offset ")) << "cut at " << off;
      }
      ++checked;
    }
  }
  EXPECT_GT(checked, 32000);
}

TEST(PickleRealFiles, RandomByteFlipsNeverCrash) {
  GCN_DATA_ROOT_OR_SKIP(root);
  const auto dir = gcn::find_planetoid_dir("cora", root);
  std::mt19937 rng(1234);
  for (const char* name : {"ind.cora.y", "ind.cora.x"}) {
    const std::string original = test::read_file(dir / name);
    for (int trial = 0; trial < 400; ++trial) {
      std::string bytes = original;
      // Corrupt the opcode-dense head, where a flip changes structure most.
      const size_t head = std::min<size_t>(bytes.size(), 1200);
      for (int k = 0; k < 3; ++k) bytes[rng() % head] = static_cast<char>(rng());
      try {
        const Document d = parse(bytes, name);
        if (d.root().kind == Kind::kCsrMatrix) (void)to_csr(d, d.root());
        if (d.root().kind == Kind::kNdArray) (void)to_dense(d, d.root());
      } catch (const DataError&) {
      }
    }
  }
}

}  // namespace
}  // namespace gcn::pickle
