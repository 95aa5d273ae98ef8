// The Planetoid loader on the real Cora and CiteSeer files, against numbers
// computed independently with PyG 2.4 by scripts/planetoid_reference.py;
// plus the data-root logic, test.index parsing, cross-file validation,
// normalize_features and the CsrMatrix / Dataset helpers.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <numeric>
#include <limits>
#include <string>
#include <vector>

#include "gcn/data/csr.hpp"
#include "gcn/data/dataset.hpp"
#include "gcn/error.hpp"
#include "gcn/data/planetoid.hpp"
#include "test_util.hpp"

namespace gcn {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

constexpr const char* kExts[] = {"x", "y", "tx", "ty", "allx", "ally", "graph", "test.index"};

// Reference values: output of `scripts/planetoid_reference.py` (PyG 2.4.0,
// torch 1.13, Planetoid(root, name) and T.NormalizeFeatures()).
struct Reference {
  const char* name;
  int32_t n_nodes, n_edges, n_features, n_classes, n_train, n_val, n_test;
  int64_t nnz;
  std::vector<int32_t> class_counts;
  std::vector<int32_t> probe_nodes, probe_labels, probe_out_degree;
  std::vector<int32_t> first_src, first_dst, last_src, last_dst;
  double normalized_sum;
  int32_t row_a;  // the first test node
  std::vector<int32_t> row0_cols, row_a_cols;
  int32_t zero_rows;
  std::vector<int32_t> first_zero_rows;
};

const Reference kCora{"cora",
                      2708,
                      10556,
                      1433,
                      7,
                      140,
                      500,
                      1000,
                      49216,
                      {351, 217, 418, 818, 426, 298, 180},
                      {0, 1, 2, 139, 140, 639, 640, 2706, 2707, 1708, 1709, 1710, 2705},
                      {3, 4, 4, 1, 4, 3, 3, 3, 3, 3, 2, 2, 3},
                      {3, 3, 5, 8, 2, 1, 6, 4, 4, 6, 5, 5, 1},
                      {0, 0, 0, 1, 1},
                      {633, 1862, 2582, 2, 652},
                      {2706, 2707, 2707, 2707, 2707},
                      {2707, 165, 598, 1473, 2706},
                      2708.0000444874167,
                      1708,
                      {19, 81, 146, 315, 774, 877, 1194, 1247, 1274},
                      {7,   41,  65,   192,  203,  225,  230,  233,  550,  584,
                       619, 917, 1172, 1174, 1177, 1181, 1263, 1267, 1340, 1351},
                      0,
                      {}};

const Reference kCiteSeer{
    "citeseer",
    3327,
    9104,
    3703,
    6,
    120,
    500,
    1000,
    105165,
    {264, 590, 668, 701, 596, 508},
    {0, 1, 2, 139, 140, 639, 640, 3325, 3326, 2312, 2313, 2314, 3324, 2407, 2489, 2553},
    {3, 1, 5, 5, 1, 0, 2, 1, 5, 4, 5, 4, 3, 0, 0, 0},
    {1, 5, 1, 2, 1, 2, 2, 1, 1, 4, 2, 6, 3, 1, 1, 1},
    {0, 1, 1, 1, 1},
    {628, 158, 486, 1097, 2919},
    {3324, 3324, 3324, 3325, 3326},
    {131, 268, 2820, 1643, 33},
    3312.000040203333,
    2312,
    {184,  257,  362,  560,  565,  597,  600,  601,  637,  729,  805,  816,  942,  1116, 1435, 1545,
     1623, 1635, 1846, 2085, 2338, 2343, 2565, 2604, 2696, 2741, 2918, 2970, 3502, 3548, 3647},
    {18,   95,   166,  177,  196,  563,  600,  619,  685,  694,  805,  865,
     1031, 1087, 1158, 1194, 1239, 1249, 1327, 1405, 1416, 1610, 1613, 1725,
     1797, 1931, 2191, 2324, 2461, 2615, 3030, 3059, 3163, 3403},
    15,
    {2407, 2489, 2553, 2682, 2781}};

std::vector<int32_t> row_cols(const CsrMatrix& m, int32_t r) {
  return {m.indices.begin() + m.indptr[r], m.indices.begin() + m.indptr[r + 1]};
}

double total(const CsrMatrix& m) { return std::accumulate(m.values.begin(), m.values.end(), 0.0); }

void check_against_reference(const Reference& ref, const fs::path& root) {
  SCOPED_TRACE(ref.name);
  const Dataset raw = load_planetoid(ref.name, root, /*normalize=*/false);
  const Dataset ds = load_planetoid(ref.name, root);
  EXPECT_EQ(ds.n_nodes, ref.n_nodes);
  EXPECT_EQ(ds.n_edges(), ref.n_edges);
  EXPECT_EQ(ds.n_features, ref.n_features);
  EXPECT_EQ(ds.n_classes, ref.n_classes);
  EXPECT_EQ(ds.count(kTrainBit), ref.n_train);
  EXPECT_EQ(ds.count(kValBit), ref.n_val);
  EXPECT_EQ(ds.count(kTestBit), ref.n_test);
  EXPECT_EQ(ds.features.nnz(), ref.nnz);
  EXPECT_NO_THROW(ds.validate());

  std::vector<int32_t> counts(static_cast<size_t>(ds.n_classes), 0);
  for (int32_t l : ds.labels) ++counts[static_cast<size_t>(l)];
  EXPECT_EQ(counts, ref.class_counts);

  std::vector<int32_t> degree(static_cast<size_t>(ds.n_nodes), 0);
  for (int32_t s : ds.edge_src) ++degree[static_cast<size_t>(s)];
  for (size_t i = 0; i < ref.probe_nodes.size(); ++i) {
    const auto n = static_cast<size_t>(ref.probe_nodes[i]);
    EXPECT_EQ(ds.labels[n], ref.probe_labels[i]) << "label of node " << n;
    EXPECT_EQ(degree[n], ref.probe_out_degree[i]) << "degree of node " << n;
  }
  const std::vector<int32_t> first_src(ds.edge_src.begin(), ds.edge_src.begin() + 5);
  const std::vector<int32_t> first_dst(ds.edge_dst.begin(), ds.edge_dst.begin() + 5);
  const std::vector<int32_t> last_src(ds.edge_src.end() - 5, ds.edge_src.end());
  const std::vector<int32_t> last_dst(ds.edge_dst.end() - 5, ds.edge_dst.end());
  EXPECT_EQ(first_src, ref.first_src);
  EXPECT_EQ(first_dst, ref.first_dst);
  EXPECT_EQ(last_src, ref.last_src);
  EXPECT_EQ(last_dst, ref.last_dst);

  // Binary features: the raw sum is the nnz; normalised rows are exactly 1/k in float32.
  EXPECT_EQ(total(raw.features), static_cast<double>(ref.nnz));
  EXPECT_NEAR(total(ds.features), ref.normalized_sum, 1e-6);
  for (const auto& [r, cols] :
       {std::pair{0, ref.row0_cols}, std::pair{ref.row_a, ref.row_a_cols}}) {
    EXPECT_EQ(row_cols(ds.features, r), cols) << "row " << r;
    const float expected = 1.0f / static_cast<float>(cols.size());
    for (int32_t k = ds.features.indptr[r]; k < ds.features.indptr[r + 1]; ++k) {
      EXPECT_EQ(raw.features.values[k], 1.0f);
      EXPECT_EQ(ds.features.values[k], expected);
    }
  }
  std::vector<int32_t> zero_rows;
  for (int32_t r = 0; r < ds.n_nodes; ++r) {
    if (ds.features.indptr[r] == ds.features.indptr[r + 1]) zero_rows.push_back(r);
  }
  EXPECT_EQ(static_cast<int32_t>(zero_rows.size()), ref.zero_rows);
  zero_rows.resize(std::min<size_t>(zero_rows.size(), 5));
  EXPECT_EQ(zero_rows, ref.first_zero_rows);

  // Splits: train = [0, n_train), val = the next 500.
  for (int32_t i = 0; i < ds.n_nodes; ++i) {
    EXPECT_EQ((ds.split[i] & kTrainBit) != 0, i < ref.n_train);
    EXPECT_EQ((ds.split[i] & kValBit) != 0, i >= ref.n_train && i < ref.n_train + 500);
  }
}

TEST(PlanetoidReal, CoraMatchesPyG) {
  GCN_DATA_ROOT_OR_SKIP(root);
  check_against_reference(kCora, root);
}

TEST(PlanetoidReal, CiteSeerMatchesPyG) {
  GCN_PLANETOID_ROOT_OR_SKIP(root, "citeseer");
  check_against_reference(kCiteSeer, root);
}

// A temp copy of Cora's files, in `layout` ("flat" or "pyg").
struct CoraCopy {
  test::TempDir tmp;
  fs::path dir;
  explicit CoraCopy(const fs::path& src_root, bool pyg = false) {
    const fs::path src = find_planetoid_dir("cora", src_root);
    dir = pyg ? tmp.path() / "Cora" / "raw" : tmp.path();
    fs::create_directories(dir);
    for (const char* e : kExts)
      fs::copy_file(src / (std::string("ind.cora.") + e), dir / (std::string("ind.cora.") + e));
  }
  void replace(const char* ext, const std::string& bytes) const {
    test::write_file(dir / (std::string("ind.cora.") + ext), bytes);
  }
  std::string error(const char* name = "cora") const {
    try {
      load_planetoid(name, tmp.path());
    } catch (const DataError& e) {
      return e.what();
    }
    return "(no error)";
  }
};

TEST(PlanetoidFiles, FlatAndPyGLayoutsAreFound) {
  GCN_DATA_ROOT_OR_SKIP(root);
  const CoraCopy flat(root);
  EXPECT_EQ(find_planetoid_dir("Cora", flat.tmp.path()), flat.tmp.path());
  EXPECT_EQ(load_planetoid("CORA", flat.tmp.path()).n_nodes, 2708);
  const CoraCopy pyg(root, /*pyg=*/true);
  EXPECT_EQ(find_planetoid_dir("cora", pyg.tmp.path()), pyg.tmp.path() / "Cora" / "raw");
  const Dataset ds = load_planetoid("cora", pyg.tmp.path());
  EXPECT_EQ(ds.name, "Cora");
  EXPECT_EQ(ds.n_edges(), 10556);
}

TEST(PlanetoidFiles, MissingRootGivesClearError) {
  const test::TempDir tmp;
  const fs::path missing = tmp.path() / "nowhere";
  try {
    find_planetoid_dir("cora", missing);
    FAIL() << "no error";
  } catch (const DataError& e) {
    const std::string msg = e.what();
    EXPECT_THAT(msg, HasSubstr("Planetoid dataset Cora not found"));
    EXPECT_THAT(msg, HasSubstr(missing.string() + " (does not exist)"));
    EXPECT_THAT(msg, HasSubstr((missing / "Cora" / "raw").string()));
    EXPECT_THAT(msg, HasSubstr("scripts/get_datasets.sh"));
    EXPECT_THAT(msg, HasSubstr("--data-root"));
    EXPECT_THAT(msg, HasSubstr("GCN_DATA_ROOT"));
  }
  test::write_file(tmp.path() / "ind.cora.x", "x");
  try {
    find_planetoid_dir("cora", tmp.path());
    FAIL() << "no error";
  } catch (const DataError& e) {
    EXPECT_THAT(std::string(e.what()), HasSubstr("missing ind.cora.y"));
  }
  EXPECT_THROW(load_planetoid("cora", missing), DataError);
}

TEST(PlanetoidFiles, InconsistentFilesAreDataErrors) {
  GCN_DATA_ROOT_OR_SKIP(root);
  GCN_PLANETOID_ROOT_OR_SKIP(citeseer_root, "citeseer");
  const fs::path citeseer = find_planetoid_dir("citeseer", citeseer_root);
  {
    const CoraCopy c(root);
    c.replace("tx", test::read_file(citeseer / "ind.citeseer.tx"));
    EXPECT_THAT(c.error(),
                HasSubstr("ind.cora.tx: 3703 feature columns but ind.cora.allx has 1433"));
  }
  {
    const CoraCopy c(root);
    c.replace("ty", test::read_file(citeseer / "ind.citeseer.ty"));
    EXPECT_THAT(c.error(), HasSubstr("ind.cora.ty: 6 label columns but ind.cora.ally has 7"));
  }
  {
    const CoraCopy c(root);
    c.replace("y", test::read_file(citeseer / "ind.citeseer.y"));
    EXPECT_THAT(c.error(), HasSubstr("label columns"));
  }
  {
    const CoraCopy c(root);
    c.replace("x", test::read_file(c.dir / "ind.cora.tx"));
    EXPECT_THAT(c.error(), HasSubstr("ind.cora.x has 1000 rows but ind.cora.y has 140"));
  }
  {
    const CoraCopy c(root);
    std::string idx;
    for (int i = 0; i < 999; ++i) idx += std::to_string(1708 + i) + "\n";
    c.replace("test.index", idx);
    EXPECT_THAT(c.error(), HasSubstr("ind.cora.test.index has 999 rows but ind.cora.tx has 1000"));
  }
  {
    const CoraCopy c(root);
    std::string idx;
    for (int i = 0; i < 999; ++i) idx += std::to_string(1708 + i) + "\n";
    c.replace("test.index", idx + "1708\n");
    EXPECT_THAT(c.error(), HasSubstr("index 1708 appears more than once"));
  }
  {
    const CoraCopy c(root);
    std::string idx;
    for (int i = 0; i < 1000; ++i) idx += std::to_string(i < 999 ? 1708 + i : 90000000) + "\n";
    c.replace("test.index", idx);
    EXPECT_THAT(c.error(), HasSubstr("ind.cora.test.index: index 90000000 is out of range"));
  }
  {
    const CoraCopy c(root);
    // defaultdict(list) {0: [5000]}: a neighbour past the 2708 nodes.
    static const char kGraph[] =
        "\x80\x02"
        "ccollections\ndefaultdict\nc__builtin__\nlist\n"
        "\x85R(K\x00](M\x88\x13"
        "eu.";
    c.replace("graph", std::string(kGraph, sizeof kGraph - 1));
    EXPECT_THAT(c.error(),
                HasSubstr("ind.cora.graph: neighbour 5000 of node 0 is outside [0, 2708)"));
  }
  {
    const CoraCopy c(root);
    const std::string allx = test::read_file(c.dir / "ind.cora.allx");
    c.replace("allx", allx.substr(0, allx.size() / 2));
    EXPECT_THAT(c.error(), HasSubstr((c.dir / "ind.cora.allx").string() +
                                     ": the file is truncated or damaged: BINSTRING declares "));
    EXPECT_THAT(c.error(), HasSubstr("Delete it and fetch it again with `scripts/get_datasets.sh"));
  }
}

// Rows of docs/bad-input.md not covered by the tests above.
TEST(BadInput, EmptyFileIsADataError) {
  GCN_DATA_ROOT_OR_SKIP(root);
  for (const char* ext : {"x", "graph", "ty", "test.index"}) {
    const CoraCopy c(root);
    c.replace(ext, "");
    EXPECT_THAT(c.error(), HasSubstr((c.dir / (std::string("ind.cora.") + ext)).string() +
                                     ": the file is empty (0 bytes)"))
        << ext;
  }
}

// Eight files named ind.<name>.*, each holding `bytes` (only the first one
// read, x, matters to these tests: the loader stops at its error).
void fake_files(const fs::path& dir, const std::string& name, const std::string& bytes) {
  fs::create_directories(dir);
  for (const char* e : kExts) test::write_file(dir / ("ind." + name + "." + e), bytes);
}

std::string load_error(const std::string& name, const fs::path& root) {
  try {
    load_planetoid(name, root);
  } catch (const DataError& e) {
    return e.what();
  }
  return "(no error)";
}

// The working directory changed for one scope.
class ScopedCwd {
 public:
  explicit ScopedCwd(const fs::path& dir) : old_(fs::current_path()) { fs::current_path(dir); }
  ~ScopedCwd() { fs::current_path(old_); }
  ScopedCwd(const ScopedCwd&) = delete;
  ScopedCwd& operator=(const ScopedCwd&) = delete;

 private:
  fs::path old_;
};

// scripts/get_datasets.sh fetches cora and citeseer unless named, into the
// project's datasets/ unless given --dest: the message gives the command that
// fetches this dataset into this root.
TEST(BadInput, MissingDatasetGivesTheExactFetchCommand) {
  const test::TempDir tmp;
  const fs::path root = tmp.path() / "no where";
  const std::string msg = load_error("PubMed", root);
  EXPECT_THAT(msg, HasSubstr("Planetoid dataset PubMed not found"));
  EXPECT_THAT(msg, HasSubstr("Fetch it with `scripts/get_datasets.sh --dest '" + root.string() +
                             "' pubmed`, or pass --data-root / set GCN_DATA_ROOT"));
  // The default root, datasets/ in the working directory, is the script's default.
  const ScopedCwd cwd(tmp.path());
  EXPECT_THAT(load_error("pubmed", "datasets"),
              HasSubstr("Fetch it with `scripts/get_datasets.sh pubmed`"));
}

TEST(BadInput, EmptyFileNamesItsPathAndTheFetchCommand) {
  const test::TempDir tmp;
  fake_files(tmp.path(), "cora", "");
  EXPECT_EQ(load_error("cora", tmp.path()),
            (tmp.path() / "ind.cora.x").string() +
                ": the file is empty (0 bytes). Fetch it again with `scripts/get_datasets.sh --dest " +
                tmp.path().string() + " cora`");
  // PyG's layout: the command fetches into the folder that holds the file.
  const fs::path raw = tmp.path() / "pyg" / "CiteSeer" / "raw";
  fake_files(raw, "citeseer", "");
  EXPECT_THAT(load_error("citeseer", tmp.path() / "pyg"),
              HasSubstr("Fetch it again with `scripts/get_datasets.sh --dest " + raw.string() +
                        " citeseer`"));
}

TEST(BadInput, TruncatedFileNamesItsPathAndTheFetchCommand) {
  const test::TempDir tmp;
  // A protocol-2 pickle cut off after its first opcode (EMPTY_DICT), then one
  // cut inside a BININT's 4 bytes.
  fake_files(tmp.path(), "cora", std::string("\x80\x02}", 3));
  EXPECT_EQ(load_error("cora", tmp.path()),
            (tmp.path() / "ind.cora.x").string() +
                ": the file is truncated: reached the end of the data without a STOP opcode "
                "(offset 3 of its 3 bytes). Delete it and fetch it again with "
                "`scripts/get_datasets.sh --dest " + tmp.path().string() + " cora`");
  fake_files(tmp.path(), "cora", std::string("\x80\x02J\x01\x02", 5));
  EXPECT_THAT(load_error("cora", tmp.path()),
              HasSubstr("ind.cora.x: the file is truncated: BININT needs 4 bytes but only 2 remain "
                        "(offset 2 of its 5 bytes). Delete it and fetch it again"));
  // Other malformed content keeps the reader's words.
  fake_files(tmp.path(), "cora", std::string("\x80\x02Z", 3));
  EXPECT_THAT(load_error("cora", tmp.path()),
              HasSubstr("ind.cora.x: offset 2: unknown or unsupported opcode 0x5a"));
}

TEST(BadInput, MissingFileIsNamed) {
  GCN_DATA_ROOT_OR_SKIP(root);
  const CoraCopy c(root);
  fs::remove(c.dir / "ind.cora.tx");
  EXPECT_THAT(c.error(), HasSubstr("missing ind.cora.tx"));
}

// NaN or infinite feature values: a one-word patch of the real allx (its data
// holds float32 1.0 = 00 00 80 3f) is refused, naming the file and the entry. (ind.cora.x
// itself only sizes the training split in PyG's processing, so allx it is.)
TEST(BadInput, NonFiniteFeaturesAreRefused) {
  GCN_DATA_ROOT_OR_SKIP(root);
  for (const std::string& bad : {std::string("\x00\x00\xc0\x7f", 4), std::string("\x00\x00\x80\x7f", 4)}) {
    const CoraCopy c(root);
    std::string x = test::read_file(c.dir / "ind.cora.allx");
    const std::size_t at = x.rfind(std::string("\x00\x00\x80\x3f", 4));
    ASSERT_NE(at, std::string::npos);
    x.replace(at, 4, bad);
    c.replace("allx", x);
    const std::string err = c.error();
    EXPECT_THAT(err, HasSubstr("ind.cora.allx: value at row "));
    EXPECT_THAT(err, ::testing::AnyOf(HasSubstr("is NaN"), HasSubstr("is infinite")));
  }
}

// Labels are the argmax of one-hot rows, so they cannot leave [0, C); a label
// matrix of another width is the error that can happen.
TEST(BadInput, LabelWidthMismatchIsRefused) {
  GCN_DATA_ROOT_OR_SKIP(root);
  GCN_PLANETOID_ROOT_OR_SKIP(citeseer_root, "citeseer");
  const CoraCopy c(root);
  c.replace("ally", test::read_file(find_planetoid_dir("citeseer", citeseer_root) / "ind.citeseer.ally"));
  EXPECT_THAT(c.error(), HasSubstr("label columns"));
}

TEST(PlanetoidTestIndex, Parsing) {
  EXPECT_EQ(parse_test_index("3\n1\r\n 2\t7\n\n", "f"), (std::vector<int64_t>{3, 1, 2, 7}));
  auto error = [](const std::string& text) {
    try {
      parse_test_index(text, "ind.x.test.index");
    } catch (const DataError& e) {
      return std::string(e.what());
    }
    return std::string("(no error)");
  };
  EXPECT_THAT(error("1\n2\nabc\n"),
              HasSubstr("ind.x.test.index: line 3: 'abc' is not a non-negative integer"));
  EXPECT_THAT(error("-1\n"), HasSubstr("'-1' is not a non-negative integer"));
  EXPECT_THAT(error("1.5\n"), HasSubstr("is not a non-negative integer"));
  EXPECT_THAT(error("99999999999999999999999\n"), HasSubstr("out of range"));
  EXPECT_THAT(error(""), HasSubstr("ind.x.test.index: contains no test indices"));
  EXPECT_THAT(error(" \n\n"), HasSubstr("contains no test indices"));
}

TEST(PlanetoidNames, CanonicalNamesAndRoot) {
  EXPECT_EQ(planetoid_canonical_name("cora"), "Cora");
  EXPECT_EQ(planetoid_canonical_name("CiteSeer"), "CiteSeer");
  EXPECT_EQ(planetoid_canonical_name("PUBMED"), "PubMed");
  try {
    planetoid_canonical_name("reddit");
    FAIL() << "no error";
  } catch (const UsageError& e) {
    EXPECT_THAT(std::string(e.what()), HasSubstr("Cora, CiteSeer, PubMed"));
  }
  test::ScopedEnv env("GCN_DATA_ROOT", "/from/env");
  EXPECT_EQ(resolve_data_root(std::string("/from/cli")), fs::path("/from/cli"));
  EXPECT_EQ(resolve_data_root(std::nullopt), fs::path("/from/env"));
  env.set("");
  EXPECT_EQ(resolve_data_root(std::nullopt), fs::path("datasets"));
  env.unset();
  EXPECT_EQ(resolve_data_root(std::nullopt), fs::path("datasets"));
}

CsrMatrix make_csr(int32_t rows, int32_t cols, std::vector<int32_t> indptr,
                   std::vector<int32_t> indices, std::vector<float> values) {
  CsrMatrix m;
  m.n_rows = rows;
  m.n_cols = cols;
  m.indptr = std::move(indptr);
  m.indices = std::move(indices);
  m.values = std::move(values);
  return m;
}

TEST(NormalizeFeatures, MirrorsPyG) {
  // Rows: [1, 3], [0.25, 0.25] (sum < 1: left alone by clamp(min=1)), [] (zero row).
  CsrMatrix m = make_csr(3, 3, {0, 2, 4, 4}, {0, 2, 0, 1}, {1, 3, 0.25f, 0.25f});
  normalize_features(m);
  EXPECT_EQ(m.values, (std::vector<float>{0.25f, 0.75f, 0.25f, 0.25f}));
  EXPECT_EQ(m.indptr, (std::vector<int32_t>{0, 2, 4, 4}));

  // A negative entry shifts every element by -min (PyG: x - x.min()), so the
  // implicit zeros become 1 and the result is stored densely.
  CsrMatrix neg = make_csr(2, 2, {0, 1, 1}, {1}, {-1});
  normalize_features(neg);
  // Dense before: [[0, -1], [0, 0]] -> shifted [[1, 0], [1, 1]] -> rows / max(sum, 1).
  EXPECT_EQ(neg.indptr, (std::vector<int32_t>{0, 2, 4}));
  EXPECT_EQ(neg.values, (std::vector<float>{1, 0, 0.5f, 0.5f}));

  // Fully stored and positive: min > 0 is subtracted too.
  CsrMatrix full = make_csr(1, 2, {0, 2}, {0, 1}, {2, 4});
  normalize_features(full);
  EXPECT_EQ(full.values, (std::vector<float>{0, 1}));

  CsrMatrix empty = make_csr(0, 5, {0}, {}, {});
  EXPECT_NO_THROW(normalize_features(empty));
}

TEST(CsrMatrixTest, ValidateAndTranspose) {
  const CsrMatrix m = make_csr(2, 3, {0, 2, 3}, {0, 2, 1}, {1, 2, 3});
  EXPECT_NO_THROW(m.validate("m"));
  const CsrMatrix t = m.transposed();
  EXPECT_EQ(t.n_rows, 3);
  EXPECT_EQ(t.n_cols, 2);
  EXPECT_EQ(t.indptr, (std::vector<int32_t>{0, 1, 2, 3}));
  EXPECT_EQ(t.indices, (std::vector<int32_t>{0, 1, 0}));
  EXPECT_EQ(t.values, (std::vector<float>{1, 3, 2}));
  EXPECT_NO_THROW(t.validate("t"));
  const CsrMatrix tt = t.transposed();
  EXPECT_EQ(tt.indptr, m.indptr);
  EXPECT_EQ(tt.indices, m.indices);
  EXPECT_EQ(tt.values, m.values);

  auto error = [](const CsrMatrix& x) {
    try {
      x.validate("A");
    } catch (const DataError& e) {
      return std::string(e.what());
    }
    return std::string("(no error)");
  };
  EXPECT_THAT(error(make_csr(2, 3, {0, 2}, {0, 1}, {1, 1})),
              HasSubstr("A: indptr has 2 entries for 2 rows"));
  EXPECT_THAT(error(make_csr(2, 3, {0, 2, 1}, {0, 1}, {1, 1})), HasSubstr("indptr ends at 1"));
  EXPECT_THAT(error(make_csr(2, 3, {0, 2, 2}, {0, 3}, {1, 1})),
              HasSubstr("column 3 in row 0 is outside [0, 3)"));
  EXPECT_THAT(error(make_csr(2, 3, {0, 2, 2}, {2, 1}, {1, 1})), HasSubstr("not sorted"));
  EXPECT_THAT(error(make_csr(2, 3, {0, 2, 2}, {0, 1}, {1})), HasSubstr("values has 1 entries"));
  EXPECT_THAT(error(make_csr(1, 3, {0, 2}, {0, 1}, {1, 1})), HasSubstr("(no error)"));
  EXPECT_THAT(error(make_csr(2, 3, {0, 2, 1}, {0, 1, 2}, {1, 1, 1})),
              HasSubstr("indptr ends at 1"));
  EXPECT_THAT(error(make_csr(2, 3, {0, 3, 2}, {0, 1, 2}, {1, 1, 1})),
              HasSubstr("indptr ends at 2"));
  EXPECT_THAT(error(make_csr(2, 3, {0, 3, 3}, {0, 1, 2}, {1, 1, 1})), HasSubstr("(no error)"));
  EXPECT_THAT(error(make_csr(3, 3, {0, 3, 2, 3}, {0, 1, 2}, {1, 1, 1})),
              HasSubstr("indptr decreases at row 1"));
  // An indptr that overshoots and comes back down to nnz must be caught before
  // the overshooting row is read (it would index past the arrays).
  EXPECT_THAT(error(make_csr(2, 3, {0, 100, 3}, {0, 1, 2}, {1, 1, 1})),
              HasSubstr("indptr[1] = 100 is past the 3 entries"));
  EXPECT_THAT(error(make_csr(1, 3, {0, 2}, {0, 1}, {1, std::numeric_limits<float>::quiet_NaN()})),
              HasSubstr("value at row 0, column 1 is NaN"));
  EXPECT_THAT(error(make_csr(1, 3, {0, 1}, {2}, {-std::numeric_limits<float>::infinity()})),
              HasSubstr("value at row 0, column 2 is infinite"));
}

TEST(DatasetTest, CountAndValidate) {
  Dataset ds;
  ds.name = "tiny";
  ds.n_nodes = 3;
  ds.n_features = 2;
  ds.n_classes = 2;
  ds.features = make_csr(3, 2, {0, 1, 1, 2}, {0, 1}, {1, 1});
  ds.labels = {0, 1, 1};
  ds.edge_src = {0, 1, 1};
  ds.edge_dst = {1, 0, 2};
  ds.split = {kTrainBit, kValBit | kTestBit, kTestBit};
  EXPECT_EQ(ds.count(kTrainBit), 1);
  EXPECT_EQ(ds.count(kTestBit), 2);
  EXPECT_NO_THROW(ds.validate());
  auto error = [](const Dataset& d) {
    try {
      d.validate();
    } catch (const DataError& e) {
      return std::string(e.what());
    }
    return std::string("(no error)");
  };
  Dataset bad = ds;
  bad.labels[2] = 2;
  EXPECT_THAT(error(bad), HasSubstr("dataset tiny: label 2 of node 2 is outside [0, 2)"));
  bad = ds;
  bad.edge_dst[2] = 1;
  EXPECT_THAT(error(bad), HasSubstr("self loop"));
  bad = ds;
  std::swap(bad.edge_src[0], bad.edge_src[2]);
  std::swap(bad.edge_dst[0], bad.edge_dst[2]);
  EXPECT_THAT(error(bad), HasSubstr("not sorted"));
  bad = ds;
  bad.edge_dst[0] = 3;
  EXPECT_THAT(error(bad), HasSubstr("outside [0, 3)"));
  bad = ds;
  bad.split.pop_back();
  EXPECT_THAT(error(bad), HasSubstr("2 split flags for 3 nodes"));
  bad = ds;
  bad.n_features = 3;
  EXPECT_THAT(error(bad), HasSubstr("features are (3, 2)"));
}

}  // namespace
}  // namespace gcn
