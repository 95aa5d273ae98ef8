// The synthetic SBM dataset: spec parsing and its errors, determinism (seed,
// OpenMP thread count), the Dataset edge contract, the statistics the spec
// asks for (degree, homophily, feature signal, split), and that a GCN learns it.
// DISABLED_GenerateAMillionNodes times a large graph
// (--gtest_also_run_disabled_tests --gtest_filter='*Million*'; $GCN_SYNTHETIC_SPEC
// overrides its spec).
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "gcn/data/dataset.hpp"
#include "gcn/backend/devices.hpp"
#include "gcn/error.hpp"
#include "gcn/data/synthetic.hpp"
#include "gcn/train/trainer.hpp"

namespace gcn {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

// Restores the OpenMP thread count a test changed.
class ThreadCountGuard {
 public:
  ThreadCountGuard() : saved_(omp_get_max_threads()) {}
  ~ThreadCountGuard() { omp_set_num_threads(saved_); }

 private:
  int saved_;
};

std::string usage_message(const std::string& arg) {
  try {
    parse_synthetic_spec(arg);
  } catch (const UsageError& e) {
    return e.what();
  }
  ADD_FAILURE() << "no UsageError for " << arg;
  return {};
}

void expect_same(const Dataset& a, const Dataset& b) {
  EXPECT_EQ(a.labels, b.labels);
  EXPECT_EQ(a.edge_src, b.edge_src);
  EXPECT_EQ(a.edge_dst, b.edge_dst);
  EXPECT_EQ(a.features.indptr, b.features.indptr);
  EXPECT_EQ(a.features.indices, b.features.indices);
  EXPECT_EQ(a.features.values, b.features.values);
  EXPECT_EQ(a.split, b.split);
}

double edge_homophily(const Dataset& d) {
  int64_t same = 0;
  for (int64_t e = 0; e < d.n_edges(); ++e)
    same += d.labels[d.edge_src[e]] == d.labels[d.edge_dst[e]];
  return static_cast<double>(same) / static_cast<double>(d.n_edges());
}

// ---- names and specs --------------------------------------------------------

TEST(SyntheticSpec, Names) {
  EXPECT_TRUE(is_synthetic_name("synthetic"));
  EXPECT_TRUE(is_synthetic_name("synthetic:nodes=100"));
  EXPECT_FALSE(is_synthetic_name("cora"));
  EXPECT_FALSE(is_synthetic_name("synthetics"));
  EXPECT_FALSE(is_synthetic_name("synthetic2:nodes=1"));
  EXPECT_FALSE(is_synthetic_name(""));
  EXPECT_THROW(parse_synthetic_spec("cora"), UsageError);
}

TEST(SyntheticSpec, DefaultsAndEveryKey) {
  const SyntheticSpec def = parse_synthetic_spec("synthetic");
  EXPECT_EQ(to_string(def), to_string(SyntheticSpec{}));
  EXPECT_EQ(to_string(parse_synthetic_spec("synthetic:")), to_string(SyntheticSpec{}));

  const SyntheticSpec s = parse_synthetic_spec(
      "synthetic:test=300,val=200,train_per_class=5,seed=18446744073709551615,signal=0.25,"
      "homophily=0.6,classes=4,nnz=8,features=64,degree=6.5,nodes=1000");
  EXPECT_EQ(s.nodes, 1000);
  EXPECT_EQ(s.degree, 6.5);
  EXPECT_EQ(s.features, 64);
  EXPECT_EQ(s.nnz_per_row, 8);
  EXPECT_EQ(s.classes, 4);
  EXPECT_EQ(s.homophily, 0.6);
  EXPECT_EQ(s.feature_signal, 0.25);
  EXPECT_EQ(s.seed, 18446744073709551615ull);
  EXPECT_EQ(s.train_per_class, 5);
  EXPECT_EQ(s.val, 200);
  EXPECT_EQ(s.test, 300);
  EXPECT_EQ(to_string(s),
            "synthetic:nodes=1000,degree=6.5,features=64,nnz=8,classes=4,homophily=0.6,signal=0.25,"
            "seed=18446744073709551615,train_per_class=5,val=200,test=300");
}

TEST(SyntheticSpec, RoundTrips) {
  SyntheticSpec s;
  s.nodes = 123457;
  s.degree = 1.0 / 3.0;
  s.homophily = 0.1 + 0.2;  // not the literal 0.3
  s.feature_signal = 1e-7;
  s.seed = 42;
  const std::string text = to_string(s);
  const SyntheticSpec back = parse_synthetic_spec(text);
  EXPECT_EQ(back.nodes, s.nodes);
  EXPECT_EQ(back.degree, s.degree);
  EXPECT_EQ(back.homophily, s.homophily);
  EXPECT_EQ(back.feature_signal, s.feature_signal);
  EXPECT_EQ(back.seed, s.seed);
  EXPECT_EQ(to_string(back), text);
}

TEST(SyntheticSpec, Errors) {
  EXPECT_THAT(usage_message("synthetic:nodez=5"),
              AllOf(HasSubstr("unknown key 'nodez'"), HasSubstr("nodes, degree")));
  EXPECT_THAT(usage_message("synthetic:nodes=-5"),
              AllOf(HasSubstr("nodes=-5"), HasSubstr("[2, 2147483646]")));
  EXPECT_THAT(usage_message("synthetic:nodes=1"), HasSubstr("[2, 2147483646]"));
  EXPECT_THAT(usage_message("synthetic:nodes=2147483647"), HasSubstr("[2, 2147483646]"));
  EXPECT_THAT(usage_message("synthetic:nodes=99999999999999999999"), HasSubstr("out of range"));
  EXPECT_THAT(usage_message("synthetic:degree=abc"),
              AllOf(HasSubstr("degree='abc' is not a number"), HasSubstr("[0, nodes-1]")));
  EXPECT_THAT(usage_message("synthetic:degree=10x"), HasSubstr("degree='10x'"));
  EXPECT_THAT(usage_message("synthetic:degree="), HasSubstr("degree=''"));
  EXPECT_THAT(usage_message("synthetic:degree=nan"), HasSubstr("degree"));
  EXPECT_THAT(usage_message("synthetic:nodes=100,degree=100"), HasSubstr("[0, nodes-1]"));
  EXPECT_THAT(usage_message("synthetic:nodes=1.5"), HasSubstr("nodes='1.5' is not an integer"));
  EXPECT_THAT(usage_message("synthetic:nodes=2000000000,degree=2,val=0,test=0"),
              AllOf(HasSubstr("int32"), HasSubstr("degree")));
  EXPECT_THAT(usage_message("synthetic:nodes=2000000,degree=1100"), HasSubstr("int32"));
  EXPECT_THAT(usage_message("synthetic:nodes=2000000,nnz=2000,features=5000"),
              AllOf(HasSubstr("int32"), HasSubstr("nnz")));
  EXPECT_THAT(usage_message("synthetic:nodes=1000,val=500,test=500"),
              AllOf(HasSubstr("split does not fit"), HasSubstr("1140")));
  EXPECT_THAT(usage_message("synthetic:val=-1"), HasSubstr("val=-1"));
  EXPECT_THAT(usage_message("synthetic:features=0"), HasSubstr("features=0"));
  EXPECT_THAT(usage_message("synthetic:features=10,nnz=11"), HasSubstr("[1, features=10]"));
  EXPECT_THAT(usage_message("synthetic:classes=1"), HasSubstr("[2, 1000]"));
  EXPECT_THAT(usage_message("synthetic:classes=1001"), HasSubstr("[2, 1000]"));
  EXPECT_THAT(usage_message("synthetic:homophily=1.01"), HasSubstr("homophily=1.01"));
  EXPECT_THAT(usage_message("synthetic:signal=-0.1"), HasSubstr("[0, 1]"));
  EXPECT_THAT(usage_message("synthetic:seed=-1"), HasSubstr("seed"));
  EXPECT_THAT(usage_message("synthetic:features=20,nnz=10,classes=5,signal=1"),
              AllOf(HasSubstr("signal=1"), HasSubstr("4 wide")));
  EXPECT_THAT(usage_message("synthetic:nodes=10,nodes=20"), HasSubstr("given twice"));
  EXPECT_THAT(usage_message("synthetic:nodes"), HasSubstr("not key=value"));
  EXPECT_THAT(usage_message("synthetic:nodes=10,,degree=2"), HasSubstr("empty item"));
  EXPECT_THAT(usage_message("synthetic:nodes=3000,"), HasSubstr("trailing ','"));
  // One line each.
  EXPECT_THAT(usage_message("synthetic:nodes=1000,val=500,test=500"), Not(HasSubstr("\n")));

  // make_synthetic checks a spec built in code too.
  SyntheticSpec bad;
  bad.classes = 1;
  EXPECT_THROW(make_synthetic(bad), UsageError);
}

TEST(SyntheticSpec, ClassSmallerThanTrainPerClass) {
  // Fits on paper (2*10 <= 20 nodes) but the labels are random, so a class
  // has fewer than 10 nodes.
  try {
    make_synthetic(
        parse_synthetic_spec("synthetic:nodes=20,degree=2,classes=2,train_per_class=10,"
                             "val=0,test=0,features=4,nnz=2"));
    ADD_FAILURE() << "no UsageError";
  } catch (const UsageError& e) {
    EXPECT_THAT(e.what(), HasSubstr("fewer than train_per_class=10"));
  }
}

// ---- determinism ------------------------------------------------------------

TEST(Synthetic, SameSeedSameDataDifferentSeedDifferentData) {
  const std::string arg = "synthetic:nodes=4000,degree=7,features=100,nnz=10,classes=5,seed=3";
  const Dataset a = make_synthetic(parse_synthetic_spec(arg));
  const Dataset b = make_synthetic(parse_synthetic_spec(arg));
  EXPECT_EQ(a.name, "synthetic");
  expect_same(a, b);
  const Dataset c = make_synthetic(parse_synthetic_spec(arg + "0"));  // seed=30
  EXPECT_NE(a.labels, c.labels);
  EXPECT_NE(a.edge_dst, c.edge_dst);
  EXPECT_NE(a.features.indices, c.features.indices);
}

TEST(Synthetic, IndependentOfThreadCount) {
  ThreadCountGuard guard;
  const SyntheticSpec s = parse_synthetic_spec("synthetic:nodes=30000,degree=9,seed=11");
  omp_set_num_threads(1);
  const Dataset one = make_synthetic(s);
  omp_set_num_threads(2);
  const Dataset two = make_synthetic(s);
  omp_set_num_threads(5);
  const Dataset five = make_synthetic(s);
  expect_same(one, two);
  expect_same(one, five);
}

// ---- structure and statistics -----------------------------------------------

TEST(Synthetic, EdgesAreSymmetricSortedUniqueWithoutSelfLoops) {
  const Dataset d =
      make_synthetic(parse_synthetic_spec("synthetic:nodes=5000,degree=13,classes=3"));
  ASSERT_GT(d.n_edges(), 0);
  d.validate();  // sorted by (src, dst), no duplicates, no self loops, in range
  for (int64_t e = 0; e < d.n_edges(); ++e) {
    ASSERT_NE(d.edge_src[e], d.edge_dst[e]);
    if (e > 0) {
      ASSERT_LT(std::make_pair(d.edge_src[e - 1], d.edge_dst[e - 1]),
                std::make_pair(d.edge_src[e], d.edge_dst[e]));
    }
    // The reverse edge is present (edges are sorted, so binary search).
    const auto rev = std::make_pair(d.edge_dst[e], d.edge_src[e]);
    int64_t lo = 0, hi = d.n_edges();
    while (lo < hi) {
      const int64_t mid = (lo + hi) / 2;
      if (std::make_pair(d.edge_src[mid], d.edge_dst[mid]) < rev)
        lo = mid + 1;
      else
        hi = mid;
    }
    ASSERT_TRUE(lo < d.n_edges() && d.edge_src[lo] == rev.first && d.edge_dst[lo] == rev.second)
        << "edge " << e << " has no reverse";
  }
}

TEST(Synthetic, AverageDegreeAndHomophily) {
  struct Case {
    double degree, homophily;
    int classes;
  };
  for (const Case c : {Case{10, 0.8, 7}, Case{7, 0.3, 4}, Case{3.3, 1.0, 5}, Case{20, 0.0, 2},
                       Case{16, 0.95, 10}}) {
    SyntheticSpec s;
    s.nodes = 20000;
    s.degree = c.degree;
    s.homophily = c.homophily;
    s.classes = c.classes;
    const Dataset d = make_synthetic(s);
    const double avg = static_cast<double>(d.n_edges()) / static_cast<double>(d.n_nodes);
    EXPECT_NEAR(avg, c.degree, 0.1 * c.degree) << to_string(s);
    EXPECT_NEAR(edge_homophily(d), c.homophily, 0.05) << to_string(s);
  }
}

TEST(Synthetic, DegreeZeroAndTinyGraphs) {
  const Dataset none = make_synthetic(
      parse_synthetic_spec("synthetic:nodes=100,degree=0,train_per_class=2,val=10,test=10"));
  EXPECT_EQ(none.n_edges(), 0);
  // Two nodes, homophily 1: a node alone in its class still links (to the other).
  const Dataset two =
      make_synthetic(parse_synthetic_spec("synthetic:nodes=2,degree=1,features=2,nnz=1,classes=2,"
                                          "homophily=1,train_per_class=0,val=1,test=1"));
  EXPECT_EQ(two.n_edges(), 2);
  EXPECT_EQ(two.count(kValBit), 1);
  EXPECT_EQ(two.count(kTestBit), 1);
}

TEST(Synthetic, Split) {
  const SyntheticSpec s =
      parse_synthetic_spec("synthetic:nodes=3000,classes=6,train_per_class=15,val=400,test=700");
  const Dataset d = make_synthetic(s);
  EXPECT_EQ(d.count(kTrainBit), 6 * 15);
  EXPECT_EQ(d.count(kValBit), 400);
  EXPECT_EQ(d.count(kTestBit), 700);
  std::vector<int> train_per_class(6, 0);
  int32_t last_train_of_class[6] = {};
  int32_t last_val = -1, first_test = d.n_nodes, last_test = -1;
  for (int32_t i = 0; i < d.n_nodes; ++i) {
    const uint8_t b = d.split[i];
    ASSERT_TRUE(b == 0 || b == kTrainBit || b == kValBit || b == kTestBit) << "node " << i;
    if (b == kTrainBit) {
      ++train_per_class[d.labels[i]];
      last_train_of_class[d.labels[i]] = i;
    }
    if (b == kValBit) last_val = i;
    if (b == kTestBit) first_test = std::min(first_test, i), last_test = i;
  }
  EXPECT_THAT(train_per_class, ::testing::Each(15));
  EXPECT_LT(last_val, first_test);
  // In node order: every node before a class's last training node is in train
  // when it has that class; every unassigned node lies after the last test node.
  for (int32_t i = 0; i < d.n_nodes; ++i) {
    if (i < last_train_of_class[d.labels[i]]) EXPECT_EQ(d.split[i], kTrainBit) << i;
    if (d.split[i] == 0) EXPECT_GT(i, last_test) << i;
  }
}

TEST(Synthetic, FeaturesAreNormalisedAndCarryTheClass) {
  const SyntheticSpec s =
      parse_synthetic_spec("synthetic:nodes=4000,features=300,nnz=12,classes=6,signal=0.5");
  const Dataset d = make_synthetic(s);
  const CsrMatrix& x = d.features;
  ASSERT_EQ(x.n_rows, 4000);
  ASSERT_EQ(x.n_cols, 300);
  ASSERT_EQ(x.nnz(), 4000 * 12);
  int64_t in_band = 0;
  std::vector<int64_t> column_count(300, 0);
  for (int32_t i = 0; i < x.n_rows; ++i) {
    ASSERT_EQ(x.indptr[i + 1] - x.indptr[i], 12);
    double sum = 0;
    for (int32_t k = x.indptr[i]; k < x.indptr[i + 1]; ++k) {
      sum += x.values[k];
      if (k > x.indptr[i]) ASSERT_LT(x.indices[k - 1], x.indices[k]);  // sorted, distinct
      const int32_t c = d.labels[i];
      in_band += x.indices[k] >= c * 300 / 6 && x.indices[k] < (c + 1) * 300 / 6;
      ++column_count[x.indices[k]];
    }
    ASSERT_NEAR(sum, 1.0, 1e-5) << "row " << i;
  }
  // 6 of 12 from the band, and the 6 uniform ones hit it with probability ~1/6.
  const double frac = static_cast<double>(in_band) / static_cast<double>(x.nnz());
  EXPECT_NEAR(frac, 0.5 + 0.5 * (50.0 - 6.0) / 294.0, 0.02);
  // Every column is used (the uniform part covers them all).
  EXPECT_THAT(column_count, ::testing::Each(::testing::Gt(0)));

  // normalize_features leaves them as they are.
  CsrMatrix again = x;
  normalize_features(again);
  EXPECT_EQ(again.values, x.values);

  // nnz == features: every column in every row.
  const Dataset full = make_synthetic(parse_synthetic_spec(
      "synthetic:nodes=200,features=10,nnz=10,classes=2,signal=0.5,val=50,test=50"));
  for (int32_t i = 0; i < 200; ++i) {
    for (int32_t k = 0; k < 10; ++k) ASSERT_EQ(full.features.indices[i * 10 + k], k);
  }
}

// ---- learning ---------------------------------------------------------------

TEST(Synthetic, GcnLearnsItWellAboveChance) {
  const Dataset d = make_synthetic(parse_synthetic_spec(
      "synthetic:nodes=3000,degree=8,classes=5,features=200,nnz=10,homophily=0.7,signal=0.3,"
      "val=500,test=1000,seed=1"));
  auto be = make_cpu_backend(1);  // one thread: no OpenMP spinning on a loaded machine
  TrainConfig cfg;
  cfg.epochs = 100;
  cfg.log_every = 100;
  const auto t0 = std::chrono::steady_clock::now();
  const TrainResult r = train_gcn(*be, d, cfg);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_EQ(r.history.size(), 100u);
  std::printf("synthetic GCN: test acc %.3f (chance 0.2), val acc %.3f, %.2f s\n",
              r.history.back().test_acc, r.history.back().val_acc, seconds);
  EXPECT_GT(r.history.back().test_acc, 0.6);  // ~0.97; wall time ~0.3 s (printed, not asserted)
}

// ---- scale (disabled by default) --------------------------------------------

TEST(Synthetic, DISABLED_GenerateAMillionNodes) {
  // $GCN_SYNTHETIC_SPEC overrides the spec, e.g. synthetic:nodes=2000000,degree=50 (10^8 edges).
  const char* env = std::getenv("GCN_SYNTHETIC_SPEC");
  const SyntheticSpec s =
      parse_synthetic_spec(env && *env ? env : "synthetic:nodes=1000000,degree=20");
  const auto t0 = std::chrono::steady_clock::now();
  const Dataset d = make_synthetic(s);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("%s: %lld edges, %lld feature nnz, %.2f s with %d threads\n", to_string(s).c_str(),
              static_cast<long long>(d.n_edges()), static_cast<long long>(d.features.nnz()),
              seconds, omp_get_max_threads());
  EXPECT_NEAR(static_cast<double>(d.n_edges()) / d.n_nodes, s.degree, 0.1 * s.degree);
}

}  // namespace
}  // namespace gcn
