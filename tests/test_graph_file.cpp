// The graph file (gcn/graph_file.hpp), its typed safetensors container
// (gcn/safetensors.hpp) and the node splits (gcn/split.hpp): what a valid file
// becomes, every malformed tensor refused with one line naming it, PyG's
// RandomNodeSplit counts, and the export round trip.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "gcn/error.hpp"
#include "gcn/data/graph.hpp"
#include "gcn/data/graph_file.hpp"
#include "gcn/data/safetensors.hpp"
#include "gcn/data/split.hpp"

namespace gcn {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

const std::string kName = "g.safetensors";

template <typename T>
std::string le(const std::vector<T>& values) {
  std::string s;
  for (T v : values) append_le<T>(s, v);
  return s;
}

TensorBytes i64(const std::string& name, std::vector<int64_t> shape, const std::vector<int64_t>& v) {
  return {name, Dtype::kI64, std::move(shape), le(v)};
}
TensorBytes i32(const std::string& name, std::vector<int64_t> shape, const std::vector<int32_t>& v) {
  return {name, Dtype::kI32, std::move(shape), le(v)};
}
TensorBytes f32(const std::string& name, std::vector<int64_t> shape, const std::vector<float>& v) {
  return {name, Dtype::kF32, std::move(shape), le(v)};
}
TensorBytes mask(const std::string& name, const std::vector<uint8_t>& v, Dtype dtype = Dtype::kBool) {
  return {name, dtype, {static_cast<int64_t>(v.size())}, le(v)};
}

// A small valid graph: 5 nodes, 3 features, 3 classes; node 4 unlabelled and
// isolated; edge 0 -> 1 twice and a self loop on 2, given out of order.
struct Graph {
  std::map<std::string, TensorBytes> tensors;
  std::map<std::string, std::string> metadata{{"format", "gcn-train graph"}, {"format_version", "1"}, {"name", "tiny"}};

  Graph() {
    set(i64("edge_index", {2, 6}, {1, 0, 2, 0, 2, 3, /**/ 0, 1, 2, 1, 1, 2}));
    set(f32("x", {5, 3}, {1, 0, 0, /**/ 0, 2, 0, /**/ 0, 0, 0, /**/ 1, 1, 1, /**/ 0, 0, 3}));
    set(i64("y", {5}, {0, 1, 2, 1, -1}));
    set(mask("train_mask", {1, 1, 0, 0, 0}));
    set(mask("val_mask", {0, 0, 1, 0, 0}));
    set(mask("test_mask", {0, 0, 0, 1, 0}));
  }
  Graph& set(TensorBytes t) {
    tensors[t.name] = std::move(t);
    return *this;
  }
  Graph& drop(const std::string& name) {
    tensors.erase(name);
    return *this;
  }
  std::string bytes() const {
    std::vector<TensorBytes> list;
    for (const auto& [_, t] : tensors) list.push_back(t);
    return serialize_typed_safetensors(metadata, list);
  }
  GraphFile parse() const { return parse_graph_file(bytes(), kName); }
  std::string error() const {
    try {
      parse();
    } catch (const DataError& e) {
      return e.what();
    }
    ADD_FAILURE() << "parse_graph_file accepted a malformed file";
    return "";
  }
};

TEST(SafetensorsView, ReadsEveryGraphDtypeAndRoundTrips) {
  const std::vector<TensorBytes> in = {mask("b", {1, 0, 1}), mask("u", {7, 0}, Dtype::kU8), i32("i", {2}, {-5, 7}),
                                       i64("l", {1, 2}, {-1, int64_t{1} << 40}), f32("f", {}, {2.5f})};
  const std::string bytes = serialize_typed_safetensors({{"k", "v"}}, in);
  const SafetensorsView v = parse_safetensors_view(bytes, "t");
  EXPECT_EQ(v.metadata.at("k"), "v");
  ASSERT_EQ(v.tensors.size(), 5u);
  EXPECT_EQ(v.find("b")->integer(2), 1);
  EXPECT_EQ(v.find("u")->integer(0), 7);
  EXPECT_EQ(v.find("i")->integer(0), -5);
  EXPECT_EQ(v.find("l")->integer(1), int64_t{1} << 40);
  EXPECT_THAT(v.find("l")->shape, ElementsAre(1, 2));
  EXPECT_EQ(v.find("f")->f32(0), 2.5f);
  EXPECT_TRUE(v.find("f")->shape.empty());
  // Every tensor starts at an offset aligned to its element size.
  const uint64_t header = TensorView::load_le<uint64_t>(bytes.data());
  for (const TensorView& t : v.tensors) {
    const auto offset = static_cast<std::size_t>(t.bytes.data() - (bytes.data() + 8 + header));
    EXPECT_EQ(offset % dtype_size(t.dtype), 0u) << t.name;
  }
}

TEST(SafetensorsView, RefusesOtherDtypesAndBrokenContainers) {
  auto error = [](const std::string& bytes) {
    try {
      parse_safetensors_view(bytes, "t");
    } catch (const DataError& e) {
      return std::string(e.what());
    }
    return std::string("(accepted)");
  };
  auto file = [](const std::string& header, const std::string& data) {
    std::string s;
    append_le<uint64_t>(s, header.size());
    return s + header + data;
  };
  EXPECT_THAT(error(file(R"({"a":{"dtype":"F64","shape":[1],"data_offsets":[0,8]}})", std::string(8, '\0'))),
              HasSubstr("dtype F64 is not read here"));
  EXPECT_THAT(error(file(R"({"a":{"dtype":"I64","shape":[2],"data_offsets":[0,8]}})", std::string(8, '\0'))),
              HasSubstr("shape [2] of I64 needs 16"));
  EXPECT_THAT(error(file(R"({"a":{"dtype":"I32","shape":[1],"data_offsets":[0,4]}})", std::string(6, '\0'))),
              HasSubstr("2 bytes after the last tensor"));
  EXPECT_THAT(error(file(R"({"a":1,"a":2})", "")), HasSubstr("duplicate key"));
  EXPECT_THAT(error("\xff\xff\xff\xff\xff\xff\xff\xff{}"), HasSubstr("header length"));
  EXPECT_THAT(error(file(R"({"a":{"dtype":"U8","shape":[4611686018427387904,8],"data_offsets":[0,0]}})", "")),
              HasSubstr("too large"));
  EXPECT_THROW(serialize_typed_safetensors({}, {i64("a", {3}, {1, 2})}), Error);
}

TEST(GraphFile, AValidFileAsPyGHasIt) {
  const GraphFile g = Graph().parse();
  const Dataset& d = g.data;
  EXPECT_EQ(d.name, "tiny");
  EXPECT_EQ(d.n_nodes, 5);
  EXPECT_EQ(d.n_features, 3);
  EXPECT_EQ(d.n_classes, 3);
  EXPECT_TRUE(g.has_masks);
  EXPECT_TRUE(d.edges_as_given);
  // Sorted by (src, dst); the duplicate and the self loop are kept.
  EXPECT_THAT(d.edge_src, ElementsAre(0, 0, 1, 2, 2, 3));
  EXPECT_THAT(d.edge_dst, ElementsAre(1, 1, 0, 1, 2, 2));
  EXPECT_THAT(d.labels, ElementsAre(0, 1, 2, 1, -1));
  EXPECT_THAT(d.split, ElementsAre(kTrainBit, kTrainBit, kValBit, kTestBit, 0));
  // Zeros are not stored; the features are as written (not normalised).
  EXPECT_THAT(d.features.indptr, ElementsAre(0, 1, 2, 2, 5, 6));
  EXPECT_THAT(d.features.indices, ElementsAre(0, 1, 0, 1, 2, 2));
  EXPECT_THAT(d.features.values, ElementsAre(1, 2, 1, 1, 1, 3));
  EXPECT_NO_THROW(d.validate());
}

TEST(GraphFile, GcnNormSeesTheEdgesAsPyGsLayerDoes) {
  // Into node 1: 0 -> 1 twice and 2 -> 1; into 2: its own loop (replaced by
  // one of weight 1, as add_remaining_self_loops) and 3 -> 2.
  const Dataset d = Graph().parse().data;
  const CsrMatrix a = gcn_norm(d.n_nodes, d.edge_src, d.edge_dst);
  // In-degrees with the self loop: 0: 2, 1: 4, 2: 2, 3: 1, 4: 1.
  EXPECT_THAT(a.indptr, ElementsAre(0, 2, 5, 7, 8, 9));
  EXPECT_THAT(a.indices, ElementsAre(0, 1, 0, 1, 2, 2, 3, 3, 4));
  const double s8 = 1.0 / std::sqrt(8.0);
  const std::vector<double> expected = {0.5, s8, 2 * s8, 0.25, s8, 0.5, 1 / std::sqrt(2.0), 1.0, 1.0};
  for (std::size_t k = 0; k < expected.size(); ++k) EXPECT_NEAR(a.values[k], expected[k], 1e-7) << k;
}

TEST(GraphFile, CsrFeaturesInt32IndicesAndUint8Masks) {
  Graph g;
  g.drop("x");
  // Row 1's columns unsorted, an explicit zero in row 3; 4 columns by metadata.
  g.set(i32("x_indptr", {6}, {0, 1, 3, 3, 5, 6}))
      .set(i32("x_indices", {6}, {0, 2, 1, 0, 3, 1}))
      .set(f32("x_values", {6}, {1, 5, 4, 0, 7, 3}))
      .set(i32("edge_index", {2, 1}, {3, 0}))
      .set(i32("y", {5}, {0, 1, 2, 1, -1}))
      .set(mask("train_mask", {1, 1, 0, 0, 0}, Dtype::kU8))
      .set(f32("edge_weight", {1}, {1.0f}));
  g.metadata["num_features"] = "4";
  const Dataset d = g.parse().data;
  EXPECT_EQ(d.n_features, 4);
  EXPECT_THAT(d.features.indptr, ElementsAre(0, 1, 3, 3, 4, 5));
  EXPECT_THAT(d.features.indices, ElementsAre(0, 1, 2, 3, 1));
  EXPECT_THAT(d.features.values, ElementsAre(1, 4, 5, 7, 3));
  EXPECT_THAT(d.edge_src, ElementsAre(3));
  EXPECT_EQ(d.count(kTrainBit), 2);
}

TEST(GraphFile, OptionalPartsAndDefaults) {
  Graph g;
  g.metadata.clear();
  g.drop("train_mask").drop("val_mask").drop("test_mask");
  const GraphFile f = g.parse();
  EXPECT_FALSE(f.has_masks);
  EXPECT_EQ(f.data.name, "g");  // the file's stem
  EXPECT_EQ(f.data.count(kTrainBit), 0);
  g.metadata["num_classes"] = "9";
  EXPECT_EQ(g.parse().data.n_classes, 9);
  g.metadata["format"] = "pt";  // what some writers add by habit
  EXPECT_NO_THROW(g.parse());
}

TEST(GraphFile, EveryBadTensorIsOneLineNamingIt) {
  struct Case {
    const char* what;
    std::function<void(Graph&)> change;
    const char* expected;
  };
  const std::vector<Case> cases = {
      {"edge out of range", [](Graph& g) { g.set(i64("edge_index", {2, 1}, {0, 5})); },
       "edge_index: edge 0 (0 -> 5) has an endpoint outside [0, 5)"},
      {"negative edge", [](Graph& g) { g.set(i64("edge_index", {2, 1}, {-1, 0})); }, "outside [0, 5)"},
      {"edge_index [E, 2]", [](Graph& g) { g.set(i64("edge_index", {3, 2}, {0, 1, 1, 0, 2, 3})); },
       "expected [2, E]"},
      {"edge_index transposed hint", [](Graph& g) { g.set(i64("edge_index", {1, 2}, {0, 1})); },
       "save edge_index.t()"},
      {"edge_index float", [](Graph& g) { g.set(f32("edge_index", {2, 1}, {0, 1})); },
       "edge_index is F32, expected I64 or I32"},
      {"no edge_index", [](Graph& g) { g.drop("edge_index"); }, "no edge_index tensor"},
      {"x int", [](Graph& g) { g.set(i64("x", {5, 1}, {1, 0, 0, 0, 0})); }, "x is I64, expected F32"},
      {"x rank 1", [](Graph& g) { g.set(f32("x", {5}, {1, 0, 0, 0, 0})); }, "x has shape [5], expected [N, F]"},
      {"x NaN", [](Graph& g) { g.set(f32("x", {5, 1}, {1, 0, std::nanf(""), 0, 0})); },
       "x: value at row 2, column 0 is NaN"},
      {"x inf",
       [](Graph& g) { g.set(f32("x", {5, 1}, {1, 0, 0, std::numeric_limits<float>::infinity(), 0})); },
       "x: value at row 3, column 0 is infinite"},
      {"x no columns", [](Graph& g) { g.set(f32("x", {5, 0}, {})); }, "F must be in [1,"},
      {"no features", [](Graph& g) { g.drop("x"); }, "no node features"},
      {"x and csr", [](Graph& g) { g.set(i64("x_indptr", {6}, {0, 0, 0, 0, 0, 0})); }, "holds both x and CSR"},
      {"csr without values",
       [](Graph& g) {
         g.drop("x").set(i64("x_indptr", {6}, {0, 0, 0, 0, 0, 1})).set(i64("x_indices", {1}, {0}));
       },
       "x_indptr without x_values"},
      {"csr decreasing",
       [](Graph& g) {
         g.drop("x").set(i64("x_indptr", {6}, {0, 1, 0, 1, 1, 1})).set(i64("x_indices", {1}, {0}));
         g.set(f32("x_values", {1}, {1}));
       },
       "x_indptr decreases at row 1"},
      {"csr end",
       [](Graph& g) {
         g.drop("x").set(i64("x_indptr", {6}, {0, 0, 0, 0, 0, 0})).set(i64("x_indices", {1}, {0}));
         g.set(f32("x_values", {1}, {1}));
       },
       "x_indptr ends at 0 but x_indices has 1 entries"},
      {"csr column past num_features",
       [](Graph& g) {
         g.drop("x").set(i64("x_indptr", {6}, {0, 1, 1, 1, 1, 1})).set(i64("x_indices", {1}, {7}));
         g.set(f32("x_values", {1}, {1}));
         g.metadata["num_features"] = "3";
       },
       "x_indices holds column 7 but metadata num_features is 3"},
      {"csr repeated column",
       [](Graph& g) {
         g.drop("x").set(i64("x_indptr", {6}, {0, 2, 2, 2, 2, 2})).set(i64("x_indices", {2}, {1, 1}));
         g.set(f32("x_values", {2}, {1, 1}));
       },
       "column 1 appears twice in row 0"},
      {"csr values NaN",
       [](Graph& g) {
         g.drop("x").set(i64("x_indptr", {6}, {0, 1, 1, 1, 1, 1})).set(i64("x_indices", {1}, {0}));
         g.set(f32("x_values", {1}, {std::nanf("")}));
       },
       "x_values[0] is NaN"},
      {"no y", [](Graph& g) { g.drop("y"); }, "no y tensor"},
      {"y float", [](Graph& g) { g.set(f32("y", {5}, {0, 1, 2, 1, 0})); }, "y is F32, expected I64 or I32"},
      {"y [N, 1]", [](Graph& g) { g.set(i64("y", {5, 1}, {0, 1, 2, 1, 0})); }, "save y.view(-1)"},
      {"y length", [](Graph& g) { g.set(i64("y", {4}, {0, 1, 2, 1})); }, "y has shape [4], expected [5]"},
      {"y below -1", [](Graph& g) { g.set(i64("y", {5}, {0, 1, -2, 1, 0})); }, "label -2 of node 2 is outside [-1,"},
      {"y past num_classes",
       [](Graph& g) {
         g.metadata["num_classes"] = "2";
         g.set(i64("y", {5}, {0, 1, 2, 1, 0}));
       },
       "label 2 of node 2 is outside [-1, 2)"},
      {"y too many classes", [](Graph& g) { g.set(i64("y", {5}, {0, 1, 1000000, 1, 0})); }, "at most 65536 classes"},
      {"all unlabelled", [](Graph& g) { g.set(i64("y", {5}, {-1, -1, -1, -1, -1})); }, "no node has a label"},
      {"mask length", [](Graph& g) { g.set(mask("val_mask", {0, 1})); }, "val_mask has shape [2], expected [5]"},
      {"mask of several splits",
       [](Graph& g) { g.set(TensorBytes{"train_mask", Dtype::kBool, {5, 2}, std::string(10, '\0')}); },
       "save one column"},
      {"mask value", [](Graph& g) { g.set(mask("test_mask", {0, 0, 2, 0, 0}, Dtype::kU8)); },
       "test_mask: value 2 at node 2"},
      {"mask float", [](Graph& g) { g.set(f32("test_mask", {5}, {0, 0, 0, 0, 0})); }, "expected BOOL or U8"},
      {"mask on an unlabelled node", [](Graph& g) { g.set(mask("test_mask", {0, 0, 0, 1, 1})); },
       "test_mask: node 4 is unlabelled"},
      {"one mask missing", [](Graph& g) { g.drop("val_mask"); }, "val_mask is missing"},
      {"negative edge weight", [](Graph& g) { g.set(f32("edge_weight", {6}, {1, 1, -0.5f, 1, 1, 1})); },
       "edge_weight: edge 2 has weight -0.5; weights must be finite and non-negative"},
      {"NaN edge weight", [](Graph& g) { g.set(f32("edge_weight", {6}, {1, 1, 1, 1, NAN, 1})); },
       "edge_weight: edge 4 has weight nan; weights must be finite and non-negative"},
      {"edge weight length", [](Graph& g) { g.set(f32("edge_weight", {2}, {1, 1})); },
       "edge_weight has shape [2], expected [6]"},
      {"unknown tensor", [](Graph& g) { g.set(f32("edge_attr", {1}, {1})); }, "unknown tensor \"edge_attr\""},
      {"model checkpoint", [](Graph& g) { g.metadata["format"] = "gcn-train training state"; },
       "a gcn-train file of another kind"},
      {"newer version", [](Graph& g) { g.metadata["format_version"] = "2"; }, "graph format version '2'"},
      {"bad num_classes", [](Graph& g) { g.metadata["num_classes"] = "seven"; }, "metadata num_classes is 'seven'"},
  };
  for (const Case& c : cases) {
    Graph g;
    c.change(g);
    const std::string e = g.error();
    EXPECT_THAT(e, AllOf(HasSubstr(kName + ": "), HasSubstr(c.expected))) << c.what;
    EXPECT_THAT(e, Not(HasSubstr("\n"))) << c.what;
  }
}

TEST(GraphFile, ExportRoundTripDenseAndCsr) {
  Dataset d = Graph().parse().data;
  for (const bool widen : {false, true}) {
    if (widen) {  // 5 x 2000 with 6 non-zeros: the CSR triple is smaller than dense x
      d.n_features = d.features.n_cols = 2000;
    }
    const std::string bytes = serialize_graph_file(d);
    const SafetensorsView v = parse_safetensors_view(bytes, "t");
    EXPECT_EQ(v.find("x") != nullptr, !widen);
    EXPECT_EQ(v.find("x_indptr") != nullptr, widen);
    EXPECT_EQ(v.metadata.at("format"), "gcn-train graph");
    const GraphFile back = parse_graph_file(bytes, "t");
    EXPECT_EQ(back.data.name, d.name);
    EXPECT_EQ(back.data.n_features, d.n_features);
    EXPECT_EQ(back.data.edge_src, d.edge_src);
    EXPECT_EQ(back.data.edge_dst, d.edge_dst);
    EXPECT_EQ(back.data.labels, d.labels);
    EXPECT_EQ(back.data.split, d.split);
    EXPECT_EQ(back.data.features.indices, d.features.indices);
    EXPECT_EQ(back.data.features.values, d.features.values);
  }
}

TEST(GraphFile, ToUndirectedAsPyG) {
  Dataset d = Graph().parse().data;
  to_undirected(d);
  // Both directions, duplicates merged, the self loop kept once.
  EXPECT_THAT(d.edge_src, ElementsAre(0, 1, 1, 2, 2, 2, 3));
  EXPECT_THAT(d.edge_dst, ElementsAre(1, 0, 2, 1, 2, 3, 2));
  EXPECT_NO_THROW(d.validate());
}

// edge_weight moves with its edge when the edges are sorted; all ones is the
// unweighted graph; --export-graph writes it back; --to-undirected sums the
// weights of merged edges (PyG's ToUndirected, reduce "add": a self loop
// meets itself and doubles).
TEST(GraphFile, EdgeWeightsAsPyG) {
  // Given order: 1->0, 0->1, 2->2, 0->1, 2->1, 3->2.
  Dataset d = Graph().set(f32("edge_weight", {6}, {1, 2, 3, 4, 5, 6})).parse().data;
  EXPECT_THAT(d.edge_src, ElementsAre(0, 0, 1, 2, 2, 3));
  EXPECT_THAT(d.edge_dst, ElementsAre(1, 1, 0, 1, 2, 2));
  EXPECT_THAT(d.edge_weight, ElementsAre(2, 4, 1, 5, 3, 6));
  const Dataset back = parse_graph_file(serialize_graph_file(d), kName).data;
  EXPECT_EQ(back.edge_weight, d.edge_weight);
  EXPECT_EQ(back.edge_src, d.edge_src);
  EXPECT_TRUE(Graph().set(f32("edge_weight", {6}, {1, 1, 1, 1, 1, 1})).parse().data.edge_weight.empty());
  EXPECT_EQ(Graph().set(f32("edge_weight", {6}, {1, 1, 0, 1, 1, 1})).parse().data.edge_weight.size(), 6u);
  to_undirected(d);
  EXPECT_THAT(d.edge_src, ElementsAre(0, 1, 1, 2, 2, 2, 3));
  EXPECT_THAT(d.edge_dst, ElementsAre(1, 0, 2, 1, 2, 3, 2));
  EXPECT_THAT(d.edge_weight, ElementsAre(7, 7, 5, 5, 6, 6, 6));
  EXPECT_NO_THROW(d.validate());
  d.edge_weight[1] = -1.0f;
  EXPECT_THROW(d.validate(), DataError);
  d.edge_weight.pop_back();
  EXPECT_THROW(d.validate(), DataError);
}

TEST(GraphFile, DatasetNames) {
  EXPECT_TRUE(is_graph_file_name("a/b.safetensors"));
  EXPECT_TRUE(is_graph_file_name("file:graph.bin"));
  EXPECT_FALSE(is_graph_file_name("cora"));
  EXPECT_FALSE(is_graph_file_name(".safetensors"));
  EXPECT_EQ(graph_file_path("file:x/y"), "x/y");
  EXPECT_EQ(graph_file_path("x/y.safetensors"), "x/y.safetensors");
}

TEST(DatasetEdges, UnlabelledNodesOnlyOutsideTheSplit) {
  Dataset d = Graph().parse().data;
  d.split[4] = kTestBit;
  EXPECT_THROW(d.validate(), DataError);
  d = Graph().parse().data;
  d.edges_as_given = false;  // Planetoid's contract: no duplicates, no self loops
  EXPECT_THROW(d.validate(), DataError);
}

// A labelled dataset of n nodes with the given class sizes (and `unlabelled`
// nodes with -1), classes interleaved.
Dataset labelled(const std::vector<int>& class_sizes, int unlabelled = 0) {
  Dataset d;
  d.name = "labels";
  std::vector<int> left = class_sizes;
  bool any = true;
  while (any) {
    any = false;
    for (std::size_t c = 0; c < left.size(); ++c) {
      if (left[c]-- > 0) {
        d.labels.push_back(static_cast<int32_t>(c));
        any = true;
      }
    }
    if (unlabelled-- > 0) {
      d.labels.push_back(-1);
      any = true;
    }
  }
  d.n_nodes = static_cast<int32_t>(d.labels.size());
  d.n_classes = static_cast<int32_t>(class_sizes.size());
  d.features.n_rows = d.n_nodes;
  d.features.indptr.assign(static_cast<std::size_t>(d.n_nodes) + 1, 0);
  return d;
}

// PyG's RandomNodeSplit(split="random") counts: per class min(size, k); val
// min(num_val, rest); test min(num_test, rest - val), rest = the labelled
// nodes not in train (PyG's rest also holds unlabelled nodes; ours does not).
TEST(NodeSplit, RandomCountsArePyGs) {
  struct Case {
    std::vector<int> sizes;
    int64_t per_class;
    SplitSize val, test;
    int unlabelled;
  };
  const std::vector<Case> cases = {
      {{351, 217, 418, 818, 426, 298, 180}, 20, {500, false}, {1000, false}, 0},  // Cora's classes
      {{351, 217, 418, 818, 426, 298, 180}, 300, {500, false}, {1000, false}, 0},
      {{351, 217, 418, 818, 426, 298, 180}, 5, {0.1, true}, {0.2, true}, 0},
      {{3, 50, 0, 7}, 10, {30, false}, {1000, false}, 0},
      {{40, 40}, 20, {10, false}, {10, false}, 25},
  };
  for (const Case& c : cases) {
    Dataset d = labelled(c.sizes, c.unlabelled);
    NodeSplitSpec spec;
    spec.train_per_class = c.per_class;
    spec.num_val = c.val;
    spec.num_test = c.test;
    spec.seed = 3;
    random_node_split(d, spec);
    int64_t train = 0, labelled_nodes = 0;
    for (int s : c.sizes) {
      train += std::min<int64_t>(s, c.per_class);
      labelled_nodes += s;
    }
    const int64_t rest = labelled_nodes - train;
    const int64_t val = std::min(c.val.resolve(d.n_nodes), rest);
    const int64_t test = std::min(c.test.resolve(d.n_nodes), rest - val);
    EXPECT_EQ(d.count(kTrainBit), train);
    EXPECT_EQ(d.count(kValBit), val);
    EXPECT_EQ(d.count(kTestBit), test);
    std::vector<int64_t> per_class(c.sizes.size(), 0);
    for (int32_t i = 0; i < d.n_nodes; ++i) {
      EXPECT_TRUE(d.split[i] == 0 || d.split[i] == kTrainBit || d.split[i] == kValBit || d.split[i] == kTestBit);
      if (d.labels[i] < 0) EXPECT_EQ(d.split[i], 0) << "unlabelled node " << i << " in a split";
      if (d.split[i] == kTrainBit) ++per_class[static_cast<std::size_t>(d.labels[i])];
    }
    for (std::size_t k = 0; k < c.sizes.size(); ++k) {
      EXPECT_EQ(per_class[k], std::min<int64_t>(c.sizes[k], c.per_class));
    }
    EXPECT_NO_THROW(d.validate());
  }
  // The 5 / 0.1 / 0.2 case on Cora's 2708 nodes: PyG 2.8 draws 35 / 271 / 542.
  Dataset cora = labelled({351, 217, 418, 818, 426, 298, 180});
  random_node_split(cora, {5, {0.1, true}, {0.2, true}, 0});
  EXPECT_EQ(cora.count(kTrainBit), 35);
  EXPECT_EQ(cora.count(kValBit), 271);
  EXPECT_EQ(cora.count(kTestBit), 542);
}

TEST(NodeSplit, RandomIsAFunctionOfTheSeed) {
  Dataset a = labelled({100, 100, 100}), b = a, c = a;
  random_node_split(a, {20, {50, false}, {50, false}, 1});
  random_node_split(b, {20, {50, false}, {50, false}, 1});
  random_node_split(c, {20, {50, false}, {50, false}, 2});
  EXPECT_EQ(a.split, b.split);
  EXPECT_NE(a.split, c.split);
}

TEST(NodeSplit, SizesAsPyGTakesThem) {
  EXPECT_EQ(SplitSize::parse("500", "--num-val").resolve(10), 500);
  EXPECT_EQ(SplitSize::parse("0.25", "--num-val").resolve(10), 2);  // round(2.5) = 2, as Python
  EXPECT_EQ(SplitSize::parse("0.35", "--num-val").resolve(10), 4);  // round(3.5) = 4
  EXPECT_EQ(SplitSize::parse("1.0", "--num-val").resolve(7), 7);
  EXPECT_EQ(SplitSize::parse("1e-1", "--num-val").resolve(2708), 271);
  for (const char* bad : {"", "-1", "abc", "1.5", "0.5x", "-0.1"}) {
    EXPECT_THROW(SplitSize::parse(bad, "--num-val"), UsageError) << bad;
  }
}

TEST(NodeSplit, OrderedInNodeOrder) {
  Dataset d = labelled({3, 3}, 2);  // labels 0 1 -1 0 1 -1 0 1
  ordered_node_split(d, {1, {2, false}, {10, false}, 0});
  EXPECT_THAT(d.split, ElementsAre(kTrainBit, kTrainBit, 0, kValBit, kValBit, 0, kTestBit, kTestBit));
}

TEST(NodeSplit, ApplySplitChoicesAndErrors) {
  auto usage = [](const std::function<void()>& f) {
    try {
      f();
    } catch (const UsageError& e) {
      return std::string(e.what());
    }
    return std::string("(no usage error)");
  };
  GraphFile no_masks = [] {
    Graph g;
    g.drop("train_mask").drop("val_mask").drop("test_mask");
    return g.parse();
  }();
  SplitRequest request;
  const std::string e = usage([&] { apply_split(no_masks.data, request, true, false, "g.safetensors"); });
  EXPECT_THAT(e, AllOf(HasSubstr("g.safetensors has no train_mask"), HasSubstr("--split random"),
                       HasSubstr("--split planetoid")));
  request.kind = SplitKind::kRandom;
  EXPECT_THAT(apply_split(no_masks.data, request, true, false, "g"), HasSubstr("RandomNodeSplit"));
  EXPECT_EQ(no_masks.data.count(kTrainBit), 4);  // every labelled node (20 per class)

  GraphFile with_masks = Graph().parse();
  EXPECT_EQ(apply_split(with_masks.data, SplitRequest{}, true, true, "g"), "the file's masks");
  EXPECT_EQ(with_masks.data.count(kTrainBit), 2);

  Dataset planetoid = labelled({5, 5});
  planetoid.split.assign(10, 0);
  planetoid.split[0] = kTrainBit;
  SplitRequest sized;
  sized.sizes_given = true;
  EXPECT_THAT(usage([&] { apply_split(planetoid, sized, false, false, "cora"); }), HasSubstr("--split random"));
  SplitRequest seeded;
  seeded.seed_given = true;
  EXPECT_THAT(usage([&] { apply_split(planetoid, seeded, false, false, "cora"); }),
              HasSubstr("--split-seed seeds --split random only"));
  SplitRequest file;
  file.kind = SplitKind::kFile;
  EXPECT_THAT(usage([&] { apply_split(planetoid, file, false, false, "cora"); }), HasSubstr("not a graph file"));
  EXPECT_EQ(apply_split(planetoid, SplitRequest{}, false, false, "cora"), "planetoid");
  EXPECT_EQ(planetoid.count(kTrainBit), 1);  // its own split, untouched
  EXPECT_THROW(parse_split_kind("public"), UsageError);

  Graph empty_train;
  empty_train.set(mask("train_mask", {0, 0, 0, 0, 0}));
  GraphFile g = empty_train.parse();
  EXPECT_THROW(apply_split(g.data, SplitRequest{}, true, true, "g"), DataError);
}

}  // namespace
}  // namespace gcn
