// GraphSAGE, GAT and models of any depth: PyG's parameter names, layouts and
// initialisation, checkpoints, finite-difference gradients of every layer
// type (3-layer models included), batches bit for bit against single runs,
// and the CUDA backend against the CPU.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "gcn/train/checkpoint.hpp"
#include "gcn/nn/device_graph.hpp"
#include "gcn/backend/devices.hpp"
#include "gcn/error.hpp"
#include "gcn/nn/model.hpp"
#include "gcn/nn/params.hpp"
#include "gcn/nn/registry.hpp"
#include "gcn/data/planetoid.hpp"
#include "gcn/rng.hpp"
#include "gcn/train/trainer.hpp"
#include "test_models.hpp"
#include "test_step.hpp"
#include "test_util.hpp"

namespace gcn {
namespace {

// One architecture of a registered model type: its depth and widths, and
// hyperparameters other than the type's defaults (every dropout of the
// type at 0 unless a test sets it).
struct Arch {
  const char* name;
  const char* type;
  int layers;
  std::vector<int32_t> hiddens;
  int hidden;
  HyperValues hyper;
};

// The rates among a type's hyperparameters (they are set per test).
bool is_rate(const HyperParam& p) { return p.kind == HyperParam::Kind::kFloat && p.max_exclusive && p.max == 1.0; }

ModelShape shape_of(const Arch& a, int32_t f = 5, int32_t c = 3) {
  ModelShape s = ModelShape::of(a.type, f, a.hidden, c);
  s.layers = a.layers;
  s.hiddens = a.hiddens;
  for (const HyperParam& p : s.type->hyper_params()) {
    if (is_rate(p)) s.hyper[p.name] = 0.0;
  }
  for (const auto& [name, value] : a.hyper) s.hyper[name] = value;
  return s;
}

// The shape with every dropout of the type (its rate hyperparameters) at p.
ModelShape with_rates(ModelShape s, float p) {
  for (const HyperParam& h : s.type->hyper_params()) {
    if (is_rate(h)) s.hyper[h.name] = static_cast<double>(p);
  }
  return s;
}

// p, or 0 where the type refuses input dropout with its own rates as set in
// s (arma: its first skip term would drop the dropped features again).
float input_dropout_for(const ModelShape& s, float p) {
  ModelShape t = s;
  t.input_dropout = p;
  try {
    t.validate();
  } catch (const UsageError&) {
    return 0.0f;
  }
  return p;
}

// Every registered model, at two depths at least.
const std::vector<Arch>& archs() {
  static const std::vector<Arch> all = {
      {"gcn3", "gcn", 3, {4, 3}, 4, {}},  {"sage2", "sage", 2, {}, 4, {}},
      {"sage3", "sage", 3, {4, 3}, 4, {}}, {"gat2", "gat", 2, {}, 3, {{"heads", 2}}},
      {"gat3", "gat", 3, {}, 2, {{"heads", 3}}}, {"gcn1", "gcn", 1, {}, 16, {}},
      {"sgc1", "sgc", 1, {}, 16, {{"K", 1}}},  {"sgc3", "sgc", 1, {}, 16, {{"K", 3}}},
      // cheb K = 4: every term of its Clenshaw recurrence (−b_{k+2} from K = 4).
      {"cheb2", "cheb", 2, {}, 4, {{"K", 2}}}, {"cheb3", "cheb", 3, {4, 3}, 4, {{"K", 4}}},
      {"appnp2", "appnp", 2, {}, 4, {{"K", 3}, {"alpha", 0.2}}},
      {"appnp3", "appnp", 3, {4, 3}, 4, {{"K", 3}, {"alpha", 0.2}}},
      {"arma2", "arma", 2, {}, 4, {{"stacks", 2}}},
      {"arma3", "arma", 3, {4, 3}, 4, {{"stacks", 3}}},
  };
  return all;
}

TEST(ModelParams, EveryRegisteredModelIsInTheTable) {
  for (const ModelType* t : model_types()) {
    const auto in_table = [&](const Arch& a) { return std::string(a.type) == t->name(); };
    EXPECT_TRUE(std::any_of(archs().begin(), archs().end(), in_table))
        << t->name() << " is registered but not in archs(): add it, with a deeper variant";
  }
}

// ---- the parameters -----------------------------------------------------------

TEST(ModelParams, PyGNamesAndShapes) {
  ModelShape sage = ModelShape::of("sage", 5, 4, 3);
  const ParamLayout ls(sage);
  std::vector<std::string> names;
  std::vector<std::vector<int64_t>> shapes;
  for (const ParamTensor& t : ls.tensors) {
    names.push_back(t.name);
    shapes.push_back(t.file_shape);
  }
  EXPECT_EQ(names, (std::vector<std::string>{"conv1.lin_l.weight", "conv1.lin_l.bias", "conv1.lin_r.weight",
                                             "conv2.lin_l.weight", "conv2.lin_l.bias", "conv2.lin_r.weight"}));
  EXPECT_EQ(shapes, (std::vector<std::vector<int64_t>>{{4, 5}, {4}, {4, 5}, {3, 4}, {3}, {3, 4}}));
  EXPECT_EQ(ls.total, 20 + 4 + 20 + 12 + 3 + 12);

  // SGConv(5, 3, K): its Linear's weight and bias, whatever K and --hidden.
  ModelShape sgc = ModelShape::of("sgc", 5, 4, 3);
  sgc.layers = 1;
  sgc.hyper["K"] = 3;
  const ParamLayout lsg(sgc);
  names.clear();
  shapes.clear();
  for (const ParamTensor& t : lsg.tensors) {
    names.push_back(t.name);
    shapes.push_back(t.file_shape);
  }
  EXPECT_EQ(names, (std::vector<std::string>{"conv1.lin.weight", "conv1.lin.bias"}));
  EXPECT_EQ(shapes, (std::vector<std::vector<int64_t>>{{3, 5}, {3}}));
  EXPECT_EQ(lsg.total, 15 + 3);
  EXPECT_EQ(sgc.describe(), "sgc 5-3");

  // ChebConv(5, 4, K=2) -> ChebConv(4, 3, K=2): PyG's state_dict order (the bias, then lins).
  ModelShape cheb = ModelShape::of("cheb", 5, 4, 3);
  cheb.hyper["K"] = 2;
  const ParamLayout lc(cheb);
  names.clear();
  shapes.clear();
  for (const ParamTensor& t : lc.tensors) {
    names.push_back(t.name);
    shapes.push_back(t.file_shape);
  }
  EXPECT_EQ(names, (std::vector<std::string>{"conv1.bias", "conv1.lins.0.weight", "conv1.lins.1.weight", "conv2.bias",
                                             "conv2.lins.0.weight", "conv2.lins.1.weight"}));
  EXPECT_EQ(shapes, (std::vector<std::vector<int64_t>>{{4}, {4, 5}, {4, 5}, {3}, {3, 4}, {3, 4}}));
  EXPECT_EQ(lc.total, 4 + 40 + 3 + 24);
  EXPECT_EQ(cheb.describe(), "cheb 5-4-3 K=2");

  ModelShape gat = ModelShape::of("gat", 5, 4, 3);
  gat.hyper["heads"] = 2;
  const ParamLayout lg(gat);
  names.clear();
  shapes.clear();
  for (const ParamTensor& t : lg.tensors) {
    names.push_back(t.name);
    shapes.push_back(t.file_shape);
  }
  EXPECT_EQ(names, (std::vector<std::string>{"conv1.lin.weight", "conv1.att_src", "conv1.att_dst", "conv1.bias",
                                             "conv2.lin.weight", "conv2.att_src", "conv2.att_dst", "conv2.bias"}));
  // GATConv(5, 4, heads=2) then GATConv(8, 3, heads=1, concat=False).
  EXPECT_EQ(shapes, (std::vector<std::vector<int64_t>>{
                        {8, 5}, {1, 2, 4}, {1, 2, 4}, {8}, {3, 8}, {1, 1, 3}, {1, 1, 3}, {3}}));
  EXPECT_EQ(lg.total, 40 + 8 + 8 + 8 + 24 + 3 + 3 + 3);

  // benchmark/citation/appnp.py's Net: lin1, lin2 (torch Linears); APPNP has no parameters.
  ModelShape appnp = ModelShape::of("appnp", 5, 4, 3);
  appnp.layers = 3;
  appnp.hiddens = {4, 6};
  const ParamLayout la(appnp);
  names.clear();
  shapes.clear();
  for (const ParamTensor& t : la.tensors) {
    names.push_back(t.name);
    shapes.push_back(t.file_shape);
  }
  EXPECT_EQ(names, (std::vector<std::string>{"lin1.weight", "lin1.bias", "lin2.weight", "lin2.bias", "lin3.weight",
                                             "lin3.bias"}));
  EXPECT_EQ(shapes, (std::vector<std::vector<int64_t>>{{4, 5}, {4}, {6, 4}, {6}, {3, 6}, {3}}));
  EXPECT_EQ(la.total, 20 + 4 + 24 + 6 + 18 + 3);
  EXPECT_EQ(appnp.describe(), "appnp 5-4-6-3");

  // ARMAConv(5, 4, num_stacks=2) then ARMAConv(4, 3, num_stacks=2), PyG's registration order.
  ModelShape arma = ModelShape::of("arma", 5, 4, 3);
  arma.hyper["stacks"] = 2;
  const ParamLayout lr(arma);
  names.clear();
  shapes.clear();
  for (const ParamTensor& t : lr.tensors) {
    names.push_back(t.name);
    shapes.push_back(t.file_shape);
  }
  EXPECT_EQ(names, (std::vector<std::string>{"conv1.weight", "conv1.init_weight", "conv1.root_weight", "conv1.bias",
                                             "conv2.weight", "conv2.init_weight", "conv2.root_weight",
                                             "conv2.bias"}));
  EXPECT_EQ(shapes, (std::vector<std::vector<int64_t>>{{1, 2, 4, 4},
                                                       {2, 5, 4},
                                                       {1, 2, 5, 4},
                                                       {1, 2, 1, 4},
                                                       {1, 2, 3, 3},
                                                       {2, 4, 3},
                                                       {1, 2, 4, 3},
                                                       {1, 2, 1, 3}}));
  EXPECT_EQ(lr.total, 32 + 40 + 40 + 8 + 18 + 24 + 24 + 6);
  EXPECT_EQ(arma.describe(), "arma 5-4-3 stacks=2");

  ModelShape deep{5, 16, 3};
  deep.layers = 4;
  deep.hiddens = {8, 6, 4};
  const ParamLayout ld(deep);
  ASSERT_EQ(ld.tensors.size(), 8u);
  EXPECT_EQ(ld.tensors[6].name, "conv4.lin.weight");
  EXPECT_EQ(ld.tensors[6].file_shape, (std::vector<int64_t>{3, 4}));
  EXPECT_EQ(deep.describe(), "gcn 5-8-6-4-3");
  EXPECT_EQ(gat.describe(), "gat 5-2x4-3");

  ModelShape bad = deep;
  bad.hiddens = {8, 6};
  EXPECT_THROW(bad.validate(), UsageError);
  bad = deep;
  bad.layers = 0;
  EXPECT_THROW(bad.validate(), UsageError);
}

// PyG 2.8's initialisation: glorot over the last two dimensions of PyG's
// shape; SAGEConv's and SGConv's Linear kaiming-uniform(a = sqrt 5), i.e.
// ±1/sqrt(in), and its bias uniform in ±1/sqrt(in); other biases zero.
TEST(ModelParams, InitialisationFollowsPyG) {
  for (const Arch& a : archs()) {
    const ModelShape s = shape_of(a, 40, 7);
    const ParamLayout layout(s);
    const std::vector<float> p = init_params(s, 5), again = init_params(s, 5), other = init_params(s, 6);
    EXPECT_EQ(p, again) << a.name;
    EXPECT_NE(p, other) << a.name;
    for (const ParamTensor& t : layout.tensors) {
      double bound = 0.0;
      const std::vector<int64_t> fs = t.file_shape;
      // PyG's Linear and torch's with their default initialisers (SAGEConv's, SGConv's, APPNP's
      // Linears): ±1/sqrt(in), the bias too.
      const bool fan_in = std::string(a.type) == "sage" || std::string(a.type) == "sgc" ||
                          std::string(a.type) == "appnp";
      if (t.name.find("bias") != std::string::npos && !fan_in) {
        bound = 0.0;
      } else if (fan_in) {
        bound = 1.0 / std::sqrt(static_cast<double>(s.in_cols(t.layer)));
      } else {
        bound = std::sqrt(6.0 / static_cast<double>(fs[fs.size() - 2] + fs.back()));
      }
      float largest = 0.0f;
      for (int64_t i = 0; i < t.size(); ++i) largest = std::max(largest, std::abs(p[t.offset + i]));
      EXPECT_LE(largest, bound * (1 + 1e-6)) << a.name << " " << t.name;
      if (bound > 0.0 && t.size() >= 20) EXPECT_GT(largest, 0.7 * bound) << a.name << " " << t.name;
      if (bound == 0.0) EXPECT_EQ(largest, 0.0f) << a.name << " " << t.name;
    }
  }
  // The tutorial GCN keeps its exact draws (streams 0x57317 and 0x57327).
  const ModelShape gcn{6, 4, 3};
  const ParamLayout layout(gcn);
  const std::vector<float> p = init_params(gcn, 9);
  const auto w1 = static_cast<float>(std::sqrt(6.0 / (6 + 4))), w2 = static_cast<float>(std::sqrt(6.0 / (4 + 3)));
  const int64_t o1 = layout.find("conv1.lin.weight")->offset, o2 = layout.find("conv2.lin.weight")->offset;
  for (int64_t i = 0; i < 24; ++i) EXPECT_EQ(p[o1 + i], (2.0f * uniform01(9, 0x57317, i) - 1.0f) * w1);
  for (int64_t i = 0; i < 12; ++i) EXPECT_EQ(p[o2 + i], (2.0f * uniform01(9, 0x57327, i) - 1.0f) * w2);
}

TEST(ModelParams, CheckpointsRoundTripEveryArchitecture) {
  for (const Arch& a : archs()) {
    const ModelShape s = shape_of(a, 6, 4);
    const ParamLayout layout(s);
    std::vector<float> flat(static_cast<std::size_t>(layout.total));
    for (std::size_t i = 0; i < flat.size(); ++i) flat[i] = 0.5f + static_cast<float>(i);
    const SafetensorsFile file = parse_safetensors(serialize_safetensors(model_to_safetensors(s, flat)), a.name);
    const ModelShape back = shape_from_safetensors(file, a.name);
    EXPECT_TRUE(back.same_parameters(s)) << a.name << ": " << back.describe() << " vs " << s.describe();
    EXPECT_EQ(model_from_safetensors(file, back, a.name), flat) << a.name;
    for (const ParamTensor& w : layout.tensors) {
      const Tensor32* t = file.find(w.name);
      ASSERT_NE(t, nullptr);
      if (w.layout == ParamTensor::Layout::kTransposed) {
        // A weight is PyG's [out, in]: element (o, i) is ours (i, o).
        EXPECT_EQ(t->data[1 * w.rows + 2], flat[w.offset + 2 * w.cols + 1]) << a.name << " " << w.name;
      } else if (w.layout == ParamTensor::Layout::kStacked && w.file_shape.size() == 4 && w.file_shape[1] > 1 &&
                 w.file_shape[3] > 1) {
        // PyG [A, K, R, C]: element (0, 1, r, 1) is ours (r, C + 1), r = R - 1.
        const int64_t k = w.file_shape[1], r = w.file_shape[2] - 1, c = w.file_shape[3];
        EXPECT_EQ(t->data[(1 * w.file_shape[2] + r) * c + 1], flat[w.offset + r * (k * c) + c + 1])
            << a.name << " " << w.name;
      }
    }
  }
  // A file of one kind for a model of another: named, one line.
  ModelShape gat = shape_of(archs()[3]);
  const SafetensorsFile f = model_to_safetensors(gat, init_params(gat, 1));
  try {
    model_from_safetensors(f, ModelShape{5, 4, 3}, "x.safetensors");
    FAIL() << "a GAT file read as a GCN";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("unexpected tensor \"conv1.att_"), std::string::npos) << e.what();
  }
}

// ---- gradients ------------------------------------------------------------------

struct GradCase {
  Arch arch;
  float dropout, input_dropout, type_dropouts;  // type_dropouts: each of the type's own rates (GAT's attention, ...)
};

class LayerGradients : public ::testing::TestWithParam<GradCase> {};

// The analytic gradient of every parameter against central differences of the
// training loss (dropout masks are fixed by the seed and the epoch).
TEST_P(LayerGradients, MatchFiniteDifferences) {
  const GradCase& gc = GetParam();
  auto be = make_cpu_backend(1);
  const Dataset d = tiny_dataset();
  ModelShape shape = with_rates(shape_of(gc.arch), gc.type_dropouts);
  shape.input_dropout = input_dropout_for(shape, gc.input_dropout);
  const DeviceGraph graph(*be, d);
  GcnModel model(graph, shape, gc.dropout);
  std::vector<float> p = init_params(shape, 11);
  const ParamLayout layout(shape);
  std::mt19937 gen(5);
  std::uniform_real_distribution<float> u(-0.3f, 0.3f);
  for (const ParamTensor& t : layout.tensors) {  // non-zero biases
    if (t.name.find("bias") != std::string::npos) {
      for (int64_t i = 0; i < t.size(); ++i) p[t.offset + i] = u(gen);
    }
  }
  auto loss_at = [&](const std::vector<float>& params) {
    model.set_params(params);
    model.set_step(test::step_at(0, 99));
    model.train_forward_backward();
    return static_cast<double>(model.metrics(1).loss);
  };
  loss_at(p);
  const std::vector<float> grad = model.grads();
  ASSERT_EQ(static_cast<int64_t>(grad.size()), layout.total);
  int checked_nonzero = 0;
  for (int64_t i = 0; i < layout.total; ++i) {
    const float h = 1e-3f;
    std::vector<float> plus = p, minus = p;
    plus[i] += h;
    minus[i] -= h;
    const double fd = (loss_at(plus) - loss_at(minus)) / (2.0 * h);
    EXPECT_NEAR(grad[i], fd, 5e-4 + 1e-2 * std::abs(fd)) << gc.arch.name << " parameter " << i;
    checked_nonzero += std::abs(fd) > 1e-3;
  }
  EXPECT_GT(checked_nonzero, layout.total / 4) << gc.arch.name;  // not vacuous
}

std::vector<GradCase> grad_cases() {
  std::vector<GradCase> out;
  for (const Arch& a : archs()) {
    out.push_back({a, 0.0f, 0.0f, 0.0f});
    out.push_back({a, 0.4f, 0.3f, 0.35f});
    const std::vector<HyperParam> hp = find_model_type(a.type).hyper_params();
    if (std::any_of(hp.begin(), hp.end(), is_rate)) out.push_back({a, 0.4f, 0.3f, 0.0f});  // input dropout alone
  }
  return out;
}

INSTANTIATE_TEST_SUITE_P(Models, LayerGradients, ::testing::ValuesIn(grad_cases()),
                         [](const ::testing::TestParamInfo<GradCase>& info) {
                           const GradCase& g = info.param;
                           return std::string(g.arch.name) + (g.dropout == 0      ? "_plain"
                                                              : g.type_dropouts > 0 ? "_dropout"
                                                                                    : "_input_dropout");
                         });

// ---- batches ---------------------------------------------------------------------

// Every architecture's batch (mixed seeds, rates and dropouts; best-val and
// patience, so models stop at different epochs) is each model's single run,
// bit for bit.
TEST(ModelBatch, EveryArchitectureIsItsSingleRunsBitForBit) {
  auto be = make_cpu_backend(0);
  const Dataset d = tiny_dataset();
  const DeviceGraph graph(*be, d);
  for (const Arch& a : archs()) {
    ModelShape shape = with_rates(shape_of(a), 0.3f);
    shape.input_dropout = input_dropout_for(shape, 0.2f);
    std::vector<TrainConfig> configs;
    const float lrs[] = {0.01f, 0.05f, 0.2f, 0.01f};
    const float drops[] = {0.5f, 0.0f, 0.3f, 0.6f};
    for (int k = 0; k < 4; ++k) {
      TrainConfig c;
      c.epochs = 40;
      c.seed = static_cast<uint64_t>(3 * k + 2);
      c.lr = lrs[k];
      c.dropout = drops[k];
      c.hidden = a.hidden;
      c.model = shape.type;
      c.layers = a.layers;
      c.hiddens = a.hiddens;
      c.hyper = shape.hyper;
      c.input_dropout = shape.input_dropout;
      c.select = Selection::kBestVal;
      c.patience = 12;
      c.log_every = 5;
      configs.push_back(c);
    }
    Trainer batch(graph, shape, static_cast<int>(configs.size()), /*with_dropout=*/true);
    const std::vector<TrainResult> results = batch.train_batch(configs);
    ASSERT_EQ(results.size(), configs.size());
    for (std::size_t k = 0; k < configs.size(); ++k) {
      Trainer alone(graph, shape, configs[k].dropout);
      expect_same_run(results[k], alone.train(configs[k]), std::string(a.name) + " model " + std::to_string(k));
    }
    // The models differ (their seeds and rates reach the results).
    EXPECT_NE(results[0].params, results[2].params) << a.name;
  }
}

// ---- end to end ----------------------------------------------------------------

// GraphSAGE and GAT with their recipes learn Cora (10 seeds against PyG's means are
// in the README; here one seed each, far inside the band).
TEST(ModelTraining, SageAndGatLearnCora) {
  GCN_DATA_ROOT_OR_SKIP(root);
  const Dataset cora = load_planetoid("cora", root);
  auto be = make_cpu_backend(0);
  const DeviceGraph graph(*be, cora);
  for (const char* name : {"sage", "gat"}) {
    // The model's defaults (its PyG example's recipe).
    TrainConfig c;
    c.model = &find_model_type(name);
    const Recipe r = c.model->defaults();
    c.epochs = r.epochs;
    c.hidden = r.hidden;
    c.lr = r.lr;
    c.weight_decay = r.weight_decay;
    c.dropout = r.dropout;
    c.input_dropout = r.input_dropout;
    c.hyper = c.model->default_hyper();
    for (const auto& [k, v] : r.hyper) c.hyper[k] = v;
    c.log_every = 50;
    Trainer t(graph, c.shape(cora.n_features, cora.n_classes), c.dropout);
    const TrainResult res = t.train(c);
    EXPECT_GT(res.final_stats().test_acc, 0.75) << name;
    EXPECT_GT(res.final_stats().train_acc, 0.9) << name;
  }
}

// ---- CUDA ----------------------------------------------------------------------

// Each architecture on the CUDA backend against the CPU: the same weights,
// ten epochs with every dropout on (both backends draw the same masks), per
// epoch losses and final weights close; a rerun is the same bits.
TEST(CudaModels, EveryArchitectureMatchesTheCpu) {
  std::string why;
  if (cuda_device_count(&why) == 0) {
    if (test::require_gpu()) FAIL() << "GCN_REQUIRE_GPU=1 but " << why;
    GTEST_SKIP() << "no usable CUDA GPU: " << why;
  }
  auto cpu = make_cpu_backend(1);
  auto gpu = make_cuda_backend(0);
  const Dataset d = tiny_dataset();
  const DeviceGraph gc(*cpu, d), gg(*gpu, d);
  for (const Arch& a : archs()) {
    TrainConfig c;
    c.epochs = 10;
    const ModelShape arch = with_rates(shape_of(a), 0.3f);
    c.hidden = a.hidden;
    c.model = arch.type;
    c.layers = a.layers;
    c.hiddens = a.hiddens;
    c.hyper = arch.hyper;
    c.dropout = 0.4f;
    c.input_dropout = input_dropout_for(arch, 0.2f);
    const ModelShape s = c.shape(d.n_features, d.n_classes);
    Trainer tc(gc, s, c.dropout), tg(gg, s, c.dropout);
    const TrainResult rc = tc.train(c), rg = tg.train(c), rg2 = tg.train(c);
    ASSERT_EQ(rc.history.size(), rg.history.size());
    for (std::size_t e = 0; e < rc.history.size(); ++e) {
      EXPECT_NEAR(rg.history[e].loss, rc.history[e].loss, 1e-4 + 1e-4 * std::abs(rc.history[e].loss))
          << a.name << " epoch " << e + 1;
      EXPECT_EQ(bits_of(rg2.history[e].loss), bits_of(rg.history[e].loss)) << a.name << " rerun epoch " << e + 1;
    }
    ASSERT_EQ(rc.params.size(), rg.params.size());
    for (std::size_t i = 0; i < rc.params.size(); ++i) {
      EXPECT_NEAR(rg.params[i], rc.params[i], 2e-4 + 1e-3 * std::abs(rc.params[i])) << a.name << " param " << i;
      EXPECT_EQ(bits_of(rg2.params[i]), bits_of(rg.params[i])) << a.name << " rerun param " << i;
    }
  }
}

}  // namespace
}  // namespace gcn
