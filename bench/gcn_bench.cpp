// gcn-bench: times every backend op on every available device, at Cora's
// shape and grown to 2,000,000 rows, so the curve shows where launch overhead
// ends and memory bandwidth begins.
//
// Each (op, device, size) first runs on the CPU reference and on the device
// with the same inputs and compares the results (atol + rtol·|ref|); a
// mismatch turns the benchmark into an error instead of a timing. Times come
// from the backend's markers (CUDA events on the GPU, the steady clock on the
// CPU) after a warm-up run; counters give the achieved bandwidth (GBps, from
// the bytes each op must move at least) and GFLOPps where it means something,
// and pct_peak_bw where the device's peak bandwidth is known.
//
//   gcn-bench [--device cpu|cuda|all] [--max-rows N] [--threads N] [google benchmark flags]
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "gcn/backend.hpp"
#include "gcn/buffer.hpp"
#include "gcn/dataset.hpp"
#include "gcn/devices.hpp"
#include "gcn/error.hpp"
#include "gcn/graph.hpp"
#include "gcn/model.hpp"
#include "gcn/rng.hpp"
#include "gcn/synthetic.hpp"

namespace {

using gcn::Backend;
using gcn::Buffer;
using gcn::ConstMatRef;
using gcn::MatRef;

constexpr int kHidden = 16;
constexpr int kClasses = 7;
const int64_t kRowSizes[] = {2708, 20000, 200000, 2000000};

// Host inputs of one size: a Cora-like graph (average degree 4, as Cora's 3.9)
// with sparse features (nnz 18 per row of 1433, as Cora's 1.3%).
struct HostInputs {
  int64_t rows = 0;
  gcn::CsrMatrix adj;       // Â (rows, rows)
  gcn::CsrMatrix features;  // X (rows, F)
  std::vector<int32_t> labels;
  std::vector<uint8_t> split;
  std::vector<float> hidden;   // (rows, 16)
  std::vector<float> logits;   // (rows, 7)
  std::vector<float> w1;       // (F, 16)
  std::vector<float> w2;       // (16, 7)
  int64_t n_train = 0;
};

std::vector<float> random_vector(int64_t n, uint64_t seed, float scale) {
  std::vector<float> v(static_cast<std::size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[i] = (2.0f * gcn::uniform01(seed, 0xbe7c, static_cast<uint64_t>(i)) - 1.0f) * scale;
  return v;
}

const HostInputs& inputs(int64_t rows) {
  static std::map<int64_t, HostInputs> cache;
  auto it = cache.find(rows);
  if (it != cache.end()) return it->second;
  gcn::SyntheticSpec spec;
  spec.nodes = rows;
  spec.degree = 4.0;
  spec.features = 1433;
  spec.nnz_per_row = 18;
  spec.classes = kClasses;
  spec.seed = 1;
  const gcn::Dataset d = gcn::make_synthetic(spec);
  HostInputs in;
  in.rows = rows;
  in.adj = gcn::gcn_norm(d.n_nodes, d.edge_src, d.edge_dst);
  in.features = d.features;
  in.labels = d.labels;
  in.split = d.split;
  in.n_train = d.count(gcn::kTrainBit);
  in.hidden = random_vector(rows * kHidden, 2, 1.0f);
  in.logits = random_vector(rows * kClasses, 3, 5.0f);
  in.w1 = random_vector(static_cast<int64_t>(spec.features) * kHidden, 4, 0.06f);
  in.w2 = random_vector(kHidden * kClasses, 5, 0.5f);
  return cache.emplace(rows, std::move(in)).first->second;
}

// The backends, created once.
struct Devices {
  std::unique_ptr<Backend> cpu;
  std::unique_ptr<Backend> cuda;
};
Devices& devices() {
  static Devices d;
  return d;
}

// One op ready to run on one backend: `run` enqueues it, `result` reads its
// output back (for validation).
struct OpInstance {
  std::function<void()> run;
  std::function<std::vector<float>()> result;
  std::vector<std::shared_ptr<void>> keep;  // buffers and matrices the closures use
};

template <class T>
std::shared_ptr<Buffer<T>> upload(Backend& be, const std::vector<T>& host, OpInstance& op) {
  auto b = std::make_shared<Buffer<T>>(be, host);
  op.keep.push_back(b);
  return b;
}
std::shared_ptr<Buffer<float>> scratch(Backend& be, int64_t n, OpInstance& op) {
  auto b = std::make_shared<Buffer<float>>(be, n);
  b->zero();
  op.keep.push_back(b);
  return b;
}
std::function<std::vector<float>()> read(const std::shared_ptr<Buffer<float>>& b) {
  return [b] { return b->to_host(); };
}

// The gradient followed by the loss, for validating the classifier ops.
std::function<std::vector<float>()> read_grad_and_loss(const std::shared_ptr<Buffer<float>>& grad,
                                                       const std::shared_ptr<Buffer<float>>& loss) {
  return [grad, loss] {
    std::vector<float> r = grad->to_host();
    r.push_back(loss->to_host()[0]);
    return r;
  };
}

struct OpSpec {
  std::string name;
  double tol;  // atol = rtol
  // bytes moved and floating-point operations of one run (for the counters)
  std::function<double(const HostInputs&)> bytes;
  std::function<double(const HostInputs&)> flops;
  std::function<OpInstance(Backend&, const HostInputs&)> make;
};

std::vector<OpSpec> op_specs() {
  std::vector<OpSpec> ops;
  const auto nc = [](const HostInputs& in) { return static_cast<double>(in.rows) * kClasses; };
  const auto nh = [](const HostInputs& in) { return static_cast<double>(in.rows) * kHidden; };
  const auto none = [](const HostInputs&) { return 0.0; };

  ops.push_back({"fused_log_softmax_nll", 1e-5,
                 [=](const HostInputs& in) { return nc(in) * 8 + in.rows * 5.0; }, none,
                 [](Backend& be, const HostInputs& in) {
                   OpInstance op;
                   auto x = upload(be, in.logits, op);
                   auto y = upload(be, in.labels, op);
                   auto s = upload(be, in.split, op);
                   auto grad = scratch(be, in.rows * kClasses, op);
                   auto loss = scratch(be, 1, op);
                   const int64_t n = in.n_train;
                   op.run = [&be, x, y, s, grad, loss, n, rows = in.rows] {
                     be.log_softmax_nll({x->data(), rows, kClasses}, y->data(), s->data(), gcn::kTrainBit, n,
                                        loss->data(), grad->data());
                   };
                   op.result = read_grad_and_loss(grad, loss);
                   return op;
                 }});
  ops.push_back({"unfused_log_softmax_then_nll", 1e-5,
                 [=](const HostInputs& in) { return nc(in) * 16 + in.rows * 5.0; }, none,
                 [](Backend& be, const HostInputs& in) {
                   OpInstance op;
                   auto x = upload(be, in.logits, op);
                   auto y = upload(be, in.labels, op);
                   auto s = upload(be, in.split, op);
                   auto logp = scratch(be, in.rows * kClasses, op);
                   auto grad = scratch(be, in.rows * kClasses, op);
                   auto loss = scratch(be, 1, op);
                   const int64_t n = in.n_train;
                   op.run = [&be, x, y, s, logp, grad, loss, n, rows = in.rows] {
                     be.log_softmax({x->data(), rows, kClasses}, {logp->data(), rows, kClasses});
                     be.nll_loss({logp->data(), rows, kClasses}, y->data(), s->data(), gcn::kTrainBit, n,
                                 loss->data(), grad->data());
                   };
                   op.result = read_grad_and_loss(grad, loss);
                   return op;
                 }});
  ops.push_back({"argmax_correct", 0.0, [=](const HostInputs& in) { return nc(in) * 4 + in.rows * 5.0; }, none,
                 [](Backend& be, const HostInputs& in) {
                   OpInstance op;
                   auto x = upload(be, in.logits, op);
                   auto y = upload(be, in.labels, op);
                   auto s = upload(be, in.split, op);
                   auto correct = std::make_shared<Buffer<int32_t>>(be, 3);
                   op.keep.push_back(correct);
                   op.run = [&be, x, y, s, correct, rows = in.rows] {
                     be.argmax_correct({x->data(), rows, kClasses}, y->data(), s->data(), nullptr, correct->data());
                   };
                   op.result = [correct] {
                     const std::vector<int32_t> c = correct->to_host();
                     return std::vector<float>(c.begin(), c.end());
                   };
                   return op;
                 }});
  ops.push_back({"column_sum", 1e-4, [=](const HostInputs& in) { return nh(in) * 4; }, nh,
                 [](Backend& be, const HostInputs& in) {
                   OpInstance op;
                   auto x = upload(be, in.hidden, op);
                   auto out = scratch(be, kHidden, op);
                   op.run = [&be, x, out, rows = in.rows] { be.column_sum({x->data(), rows, kHidden}, out->data()); };
                   op.result = read(out);
                   return op;
                 }});
  ops.push_back({"relu_dropout_forward", 0.0, [=](const HostInputs& in) { return nh(in) * 8; }, none,
                 [](Backend& be, const HostInputs& in) {
                   OpInstance op;
                   auto x = upload(be, in.hidden, op);
                   auto y = scratch(be, in.rows * kHidden, op);
                   op.run = [&be, x, y, rows = in.rows] {
                     be.relu_dropout_forward({x->data(), rows, kHidden}, {y->data(), rows, kHidden}, 0.5f, 7, 1);
                   };
                   op.result = read(y);
                   return op;
                 }});
  // Â·H: index and value of each entry, the output, and H read once (gathers hit cache).
  const auto spmm_bytes = [](const gcn::CsrMatrix& a, int64_t cols) {
    return static_cast<double>(a.nnz()) * 8 + (a.n_rows + 1) * 4.0 + (a.n_rows + a.n_cols) * cols * 4.0;
  };
  ops.push_back({"spmm_adj_x16", 1e-5, [=](const HostInputs& in) { return spmm_bytes(in.adj, kHidden); },
                 [](const HostInputs& in) { return 2.0 * in.adj.nnz() * kHidden; },
                 [](Backend& be, const HostInputs& in) {
                   OpInstance op;
                   std::shared_ptr<gcn::SparseMatrix> a = be.upload_csr(in.adj);
                   op.keep.push_back(a);
                   auto h = upload(be, in.hidden, op);
                   auto out = scratch(be, in.rows * kHidden, op);
                   op.run = [&be, a, h, out, rows = in.rows] {
                     be.spmm(*a, {h->data(), rows, kHidden}, {out->data(), rows, kHidden});
                   };
                   op.result = read(out);
                   return op;
                 }});
  ops.push_back({"spmm_features_x_w1", 1e-5, [=](const HostInputs& in) { return spmm_bytes(in.features, kHidden); },
                 [](const HostInputs& in) { return 2.0 * in.features.nnz() * kHidden; },
                 [](Backend& be, const HostInputs& in) {
                   OpInstance op;
                   std::shared_ptr<gcn::SparseMatrix> x = be.upload_csr(in.features);
                   op.keep.push_back(x);
                   auto w = upload(be, in.w1, op);
                   auto out = scratch(be, in.rows * kHidden, op);
                   op.run = [&be, x, w, out, rows = in.rows, f = in.features.n_cols] {
                     be.spmm(*x, {w->data(), f, kHidden}, {out->data(), rows, kHidden});
                   };
                   op.result = read(out);
                   return op;
                 }});
  ops.push_back({"gemm_h_w2", 1e-5, [=](const HostInputs& in) { return nh(in) * 4 + nc(in) * 4; },
                 [](const HostInputs& in) { return 2.0 * in.rows * kHidden * kClasses; },
                 [](Backend& be, const HostInputs& in) {
                   OpInstance op;
                   auto h = upload(be, in.hidden, op);
                   auto w = upload(be, in.w2, op);
                   auto out = scratch(be, in.rows * kClasses, op);
                   op.run = [&be, h, w, out, rows = in.rows] {
                     be.gemm({h->data(), rows, kHidden}, false, {w->data(), kHidden, kClasses}, false,
                             {out->data(), rows, kClasses});
                   };
                   op.result = read(out);
                   return op;
                 }});
  ops.push_back({"gemm_weight_grad_ht_g", 1e-4, [=](const HostInputs& in) { return nh(in) * 4 + nc(in) * 4; },
                 [](const HostInputs& in) { return 2.0 * in.rows * kHidden * kClasses; },
                 [](Backend& be, const HostInputs& in) {
                   OpInstance op;
                   auto h = upload(be, in.hidden, op);
                   auto g = upload(be, in.logits, op);
                   auto out = scratch(be, kHidden * kClasses, op);
                   op.run = [&be, h, g, out, rows = in.rows] {
                     be.gemm({h->data(), rows, kHidden}, true, {g->data(), rows, kClasses}, false,
                             {out->data(), kHidden, kClasses});
                   };
                   op.result = read(out);
                   return op;
                 }});
  // Adam over a parameter vector as large as the hidden activations (the
  // model's own 23k parameters are launch-bound at every size).
  ops.push_back({"adam_step", 1e-5, [=](const HostInputs& in) { return nh(in) * 28; }, none,
                 [](Backend& be, const HostInputs& in) {
                   OpInstance op;
                   const int64_t n = in.rows * kHidden;
                   auto p = upload(be, in.hidden, op);
                   auto g = upload(be, random_vector(n, 9, 0.1f), op);
                   auto m = scratch(be, n, op);
                   auto v = scratch(be, n, op);
                   auto step = std::make_shared<int64_t>(0);
                   op.keep.push_back(step);
                   // Validation compares one step from the same state; timing keeps stepping.
                   op.run = [&be, p, g, m, v, n, step] {
                     be.adam_step(p->data(), g->data(), m->data(), v->data(), n, gcn::AdamConfig{}, ++*step);
                   };
                   op.result = read(p);
                   return op;
                 }});
  return ops;
}

// Compares the device's result with the CPU's; "" when they agree.
std::string validate(const OpSpec& spec, const HostInputs& in, Backend& device) {
  OpInstance ref = spec.make(*devices().cpu, in);
  OpInstance got = spec.make(device, in);
  ref.run();
  got.run();
  const std::vector<float> r = ref.result(), g = got.result();
  if (r.size() != g.size()) return fmt::format("{} values, CPU has {}", g.size(), r.size());
  double worst = 0;
  std::size_t at = 0;
  for (std::size_t i = 0; i < r.size(); ++i) {
    const double excess = std::abs(static_cast<double>(g[i]) - r[i]) - spec.tol * (1.0 + std::abs(r[i]));
    if (!(excess <= 0.0) && (excess > worst || std::isnan(excess))) {
      worst = std::isnan(excess) ? INFINITY : excess;
      at = i;
      if (std::isnan(excess)) break;
    }
  }
  if (worst > 0) return fmt::format("mismatch at {}: got {}, CPU {}", at, g[at], r[at]);
  return "";
}

void register_all(const std::vector<std::string>& device_names, int64_t max_rows) {
  for (const OpSpec& spec : op_specs()) {
    for (const std::string& dev : device_names) {
      for (int64_t rows : kRowSizes) {
        if (rows > max_rows) continue;
        const std::string name = fmt::format("{}/{}/rows:{}", spec.name, dev, rows);
        benchmark::RegisterBenchmark(name.c_str(), [spec, dev, rows](benchmark::State& state) {
          Backend& be = dev == "cpu" ? *devices().cpu : *devices().cuda;
          const HostInputs& in = inputs(rows);
          if (dev != "cpu") {
            const std::string why = validate(spec, in, be);
            if (!why.empty()) {
              state.SkipWithError(("validation against the CPU failed: " + why).c_str());
              return;
            }
          }
          OpInstance op = spec.make(be, in);
          op.run();  // warm-up: first-touch, workspaces, lazy library initialisation
          be.synchronize();
          double total_s = 0;
          for (auto _ : state) {
            be.clear_markers();
            const int t0 = be.record_marker();
            op.run();
            const int t1 = be.record_marker();
            const double s = be.elapsed_ms(t0, t1) / 1e3;
            state.SetIterationTime(s);
            total_s += s;
          }
          if (total_s <= 0) return;
          const double runs_per_s = static_cast<double>(state.iterations()) / total_s;
          const double gbs = spec.bytes(in) * runs_per_s / 1e9, gflops = spec.flops(in) * runs_per_s / 1e9;
          state.counters["GBps"] = gbs;
          if (gflops > 0) state.counters["GFLOPps"] = gflops;
          const double peak = be.peak_bandwidth_gbs();
          if (peak > 0) state.counters["pct_peak_bw"] = 100.0 * gbs / peak;
          state.counters["rows"] = static_cast<double>(rows);
        })->UseManualTime()->Unit(benchmark::kMicrosecond);
      }
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  std::string device = "all";
  int64_t max_rows = 2000000;
  int threads = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "gcn-bench: error: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    try {
      if (a == "--device") {
        device = value();
      } else if (a == "--max-rows") {
        max_rows = std::stoll(value());
      } else if (a == "--threads") {
        threads = std::stoi(value());
      } else {
        std::fprintf(stderr,
                     "gcn-bench: error: unknown option %s (gcn-bench [--device cpu|cuda|all] [--max-rows N] "
                     "[--threads N] [--benchmark_* flags])\n",
                     a.c_str());
        return 2;
      }
    } catch (const std::exception&) {
      std::fprintf(stderr, "gcn-bench: error: %s: not a number\n", a.c_str());
      return 2;
    }
  }
  if (device != "cpu" && device != "cuda" && device != "all") {
    std::fprintf(stderr, "gcn-bench: error: --device %s: use cpu, cuda or all\n", device.c_str());
    return 2;
  }
  // The backends go before main returns: the CUDA runtime tears itself down
  // at exit ahead of static objects created before its first call (as
  // devices() is), so a backend destroyed with them would call into a runtime
  // that is unloading.
  struct ReleaseDevices {
    ~ReleaseDevices() {
      devices().cuda.reset();
      devices().cpu.reset();
    }
  } release_devices;
  try {
    devices().cpu = gcn::make_cpu_backend(threads);
    std::vector<std::string> names;
    if (device != "cuda") names.push_back("cpu");
    std::string why;
    if (device != "cpu") {
      if (gcn::cuda_device_count(&why) > 0) {
        devices().cuda = gcn::make_cuda_backend(0);
        names.push_back("cuda");
        benchmark::AddCustomContext("gpu", devices().cuda->describe());
        benchmark::AddCustomContext("gpu_peak_bandwidth_gbs", fmt::format("{}", devices().cuda->peak_bandwidth_gbs()));
      } else if (device == "cuda") {
        std::fprintf(stderr, "gcn-bench: error: --device cuda: %s\n", why.c_str());
        return 1;
      } else {
        std::fprintf(stderr, "gcn-bench: no usable GPU (%s); CPU only\n", why.c_str());
      }
    }
    benchmark::AddCustomContext("cpu_backend", devices().cpu->describe());
    register_all(names, max_rows);
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "gcn-bench: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
