#include "nn/layers/conv_stack.hpp"

#include <algorithm>
#include <limits>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "gcn/error.hpp"
#include "nn/layers/act_dropout.hpp"

namespace gcn {

std::vector<std::unique_ptr<Layer>> ConvStackType::build(const ModelShape& s, const BuildOptions& options) const {
  std::vector<std::unique_ptr<Layer>> layers;
  const Activation act = elu() ? Activation::kElu : Activation::kRelu;
  for (int k = 0; k < s.layers; ++k) {
    layers.push_back(make_conv(s, k, k == 0 ? s.input_dropout : 0.0f));
    if (k + 1 < s.layers) {
      layers.push_back(std::make_unique<ActDropout>(fmt::format("act{}", k + 1), s.out_cols(k), act,
                                                    options.max_dropout, options.per_model_dropout,
                                                    static_cast<uint32_t>(k)));
    }
  }
  return layers;
}

std::string ConvStackType::describe(const ModelShape& s, const std::string& dropout) const {
  std::string out = s.input_dropout > 0.0f ? fmt::format("dropout({}) -> ", s.input_dropout) : "";
  for (int k = 0; k < s.layers; ++k) {
    out += conv_text(s, k);
    if (k + 1 < s.layers) out += fmt::format(" -> {} -> dropout({}) -> ", activation(), dropout);
  }
  return out;
}

ConvStackType::StackDims ConvStackType::stack_dims(const TensorShapes& file, const std::string& path,
                                                   const std::string& suffix, int rank, int in_dim, int out_dim) {
  StackDims d;
  auto name = [&](int k) { return fmt::format("conv{}.{}", k + 1, suffix); };
  while (d.layers < 16 && file.count(name(d.layers)) > 0) ++d.layers;
  for (int k = 0; k < d.layers; ++k) {
    const std::vector<int64_t>& shape = file.at(name(k));
    const bool ok = static_cast<int>(shape.size()) == rank &&
                    std::all_of(shape.begin(), shape.end(), [](int64_t x) {
                      return x > 0 && x <= std::numeric_limits<int32_t>::max();
                    });
    if (!ok) {
      throw DataError(fmt::format("{}: {} [{}] must be a non-empty {}", path, name(k), fmt::join(shape, ", "),
                                  rank == 2 ? "matrix" : fmt::format("tensor of rank {}", rank)));
    }
    if (k == 0) d.n_features = static_cast<int32_t>(shape[static_cast<std::size_t>(in_dim)]);
    d.out_cols.push_back(shape[static_cast<std::size_t>(out_dim)]);
  }
  return d;
}

ModelShape ConvStackType::stack_shape(const StackDims& d, int32_t multiplier, const std::string& path) const {
  ModelShape s;
  s.type = this;
  s.hyper = default_hyper();
  s.layers = d.layers;
  s.n_features = d.n_features;
  s.n_classes = static_cast<int32_t>(d.out_cols.back());
  s.hiddens.clear();
  for (int k = 0; k + 1 < d.layers; ++k) {
    if (d.out_cols[static_cast<std::size_t>(k)] % multiplier != 0) {
      throw DataError(fmt::format("{}: conv{} has {} outputs, not a multiple of its {} heads", path, k + 1,
                                  d.out_cols[static_cast<std::size_t>(k)], multiplier));
    }
    s.hiddens.push_back(static_cast<int32_t>(d.out_cols[static_cast<std::size_t>(k)] / multiplier));
  }
  s.hidden = s.hiddens.empty() ? 16 : s.hiddens.front();
  if (std::all_of(s.hiddens.begin(), s.hiddens.end(), [&](int32_t h) { return h == s.hidden; })) s.hiddens.clear();
  return s;
}

}  // namespace gcn
