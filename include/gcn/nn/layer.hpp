// What a layer of the epoch program is (the interface every file under
// src/nn/layers/ implements) and what it plans against: the Planner
// (parameters, workspace tensors, prepared outputs) and the TrainingRows
// (the host matrices the training pass's restricted products are cut from).
//
// A layer names its tensors in the workspace (conv1.xw, conv1.out,
// act1.out.train, ...) and its parameters in one flat array, in PyG's
// state_dict order. A batch of models of one shape runs as one: every tensor
// and parameter is column-blocked (Backend's batch layout).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "gcn/backend/backend.hpp"
#include "gcn/backend/step_state.hpp"
#include "gcn/data/csr.hpp"
#include "gcn/nn/device_graph.hpp"
#include "gcn/nn/workspace.hpp"

namespace gcn {

enum class Pass { kTrain = 0, kEval = 1 };
inline int pass_index(Pass pass) { return static_cast<int>(pass); }
inline const char* pass_suffix(Pass pass) { return pass == Pass::kTrain ? ".train" : ".eval"; }

// Dropout sites (gcn/rng.hpp site_seed): each dropout of an epoch draws from
// its own site of the run's seed. The activation after layer k draws at
// site k (the tutorial GCN's one dropout at site 0, its old stream), the
// input features at kInputSite, layer k's attention at kAttentionSite + k;
// a layer's other dropouts at kLayerSite + 16·k + j.
constexpr uint32_t kInputSite = 100;
constexpr uint32_t kAttentionSite = 200;
constexpr uint32_t kLayerSite = 300;

// What a layer's ops run against: pointers that stay fixed from epoch to
// epoch. batch models side by side: every tensor and parameter is
// column-blocked (Backend's batch layout), steps has batch entries.
struct LayerContext {
  Backend* backend = nullptr;
  const DeviceGraph* graph = nullptr;
  const Workspace* ws = nullptr;
  const float* params = nullptr;
  float* grads = nullptr;
  const StepState* step = nullptr;
  int batch = 1;
};

// What a layer declares while the model is planned: parameters (offsets in
// the flat array), tensors, and the outputs of prepared products.
class Planner {
 public:
  Planner(Workspace& ws, const DeviceGraph& graph, int batch) : ws_(ws), graph_(graph), batch_(batch) {}

  const DeviceGraph& graph() const { return graph_; }
  int64_t n_nodes() const { return graph_.n_nodes(); }
  int batch() const { return batch_; }

  // A parameter tensor (rows, cols) of each model: its offset in the flat
  // array, which holds the batch's (rows, batch·cols) block there.
  int64_t add_param(int64_t rows, int64_t cols);
  int64_t n_params() const { return n_params_; }  // one model's
  const ParamBlocks& blocks() const { return blocks_; }
  // The (rows, cols) of each parameter, in order (checked against ParamLayout).
  const std::vector<std::pair<int64_t, int64_t>>& param_shapes() const { return shapes_; }

  Workspace::Id tensor(const std::string& name, int64_t rows, int64_t cols) { return ws_.add(name, rows, cols); }
  // A tensor of constants, filled from `host` (rows · cols) when the model's
  // memory is allocated (the products' fixed operands).
  Workspace::Id constant(const std::string& name, int64_t rows, int64_t cols, std::vector<float> host);

  // The output of a product run with prepared = true in `pass`: a tensor, or
  // a slice (rows, cols) of the gradient array; starting from zeros or from
  // the bias at bias_offset.
  void prepare(Pass pass, Workspace::Id tensor, int64_t bias_offset) {
    prepares_.push_back({pass, tensor, -1, 0, 0, bias_offset});
  }
  void prepare_grad(Pass pass, int64_t grad_offset, int64_t rows, int64_t cols) {
    prepares_.push_back({pass, -1, grad_offset, rows, cols, -1});
  }

  struct Prepare {
    Pass pass;
    Workspace::Id tensor;
    int64_t grad_offset, rows, cols;
    int64_t bias_offset;
  };
  const std::vector<Prepare>& prepares() const { return prepares_; }
  struct Constant {
    Workspace::Id tensor;
    std::vector<float> host;
  };
  const std::vector<Constant>& constants() const { return constants_; }

 private:
  Workspace& ws_;
  const DeviceGraph& graph_;
  int batch_;
  int64_t n_params_ = 0;
  ParamBlocks blocks_;
  std::vector<std::pair<int64_t, int64_t>> shapes_;
  std::vector<Prepare> prepares_;
  std::vector<Constant> constants_;
};

// The host-side structures the training pass's restricted products are cut
// from (see model.cpp), made on first use while the model is planned.
class TrainingRows {
 public:
  TrainingRows(const DeviceGraph& graph, bool restrict) : graph_(graph), restrict_(restrict) {}
  const DeviceGraph& graph() const { return graph_; }
  bool restrict() const { return restrict_; }
  const CsrMatrix& adj();    // gcn_norm's Â
  const CsrMatrix& adj_t();  // Âᵀ
  const CsrMatrix& x_t();    // Xᵀ
  // A key for a derived matrix: what it is and which rows it keeps.
  static std::string key(const std::string& what, const RowMask& mask);

 private:
  const DeviceGraph& graph_;
  bool restrict_;
  std::optional<CsrMatrix> adj_, adj_t_, x_t_;
};

class Layer {
 public:
  virtual ~Layer() = default;
  // "GCNConv(1433, 16)", "ReLU -> dropout(0.5)".
  virtual std::string describe() const = 0;
  // Whether the forward differs between training and evaluation.
  virtual bool depends_on_pass() const = 0;
  virtual int64_t out_cols() const = 0;
  // Whether backward() can also write the column sums of its input gradient
  // (the previous layer's bias gradient) in the same pass.
  virtual bool fuses_column_sums() const { return false; }
  // The offset of the bias in the flat parameter array, or -1.
  virtual int64_t bias_offset() const { return -1; }

  // Declares the parameters (appended in order) and the tensors. in[pass] is
  // the input of each pass (-1: the graph's sparse features X);
  // shared_output: the outputs of both passes are one tensor (the reused
  // prefix). Sets out[pass]. The gradient with respect to the input
  // (grad_in of backward) is declared by the model.
  virtual void plan(Planner& planner, const Workspace::Id in[2], bool shared_output, Workspace::Id out[2]) = 0;
  virtual void forward(const LayerContext& ctx, Pass pass) const = 0;
  // Training pass: from grad_out (dL/d out) the parameter gradients into
  // ctx.grads and, when grad_in >= 0, dL/d in; col_sums (when not null)
  // receives the column sums of dL/d in. bias_grad_done: whoever produced
  // grad_out also wrote this layer's bias gradient.
  virtual void backward(const LayerContext& ctx, Workspace::Id grad_out, Workspace::Id grad_in, float* col_sums,
                        bool bias_grad_done) const = 0;
  // The training pass's restricted products (planned after plan(), from the
  // last layer to the first). needed_out: the rows of this layer's output
  // the loss reads (the last layer: the training rows), else null;
  // grad_out_rows: the rows where dL/d out can be non-zero. Returns the rows
  // where dL/d in can be non-zero. The default restricts nothing.
  virtual RowMask plan_training_rows(TrainingRows& rows, const RowMask* needed_out, const RowMask& grad_out_rows);
};

}  // namespace gcn
