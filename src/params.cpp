#include "gcn/params.hpp"

#include <cmath>

#include "gcn/rng.hpp"

namespace gcn {

ParamLayout::ParamLayout(const GcnShape& s) {
  w1 = 0;
  b1 = w1 + static_cast<int64_t>(s.n_features) * s.hidden;
  w2 = b1 + s.hidden;
  b2 = w2 + static_cast<int64_t>(s.hidden) * s.n_classes;
  total = b2 + s.n_classes;
}

std::vector<float> glorot_init(const GcnShape& shape, uint64_t seed) {
  const ParamLayout layout(shape);
  std::vector<float> p(static_cast<std::size_t>(layout.total), 0.0f);
  auto fill = [&](int64_t offset, int64_t fan_in, int64_t fan_out, uint64_t stream) {
    const float bound = static_cast<float>(std::sqrt(6.0 / static_cast<double>(fan_in + fan_out)));
    for (int64_t i = 0; i < fan_in * fan_out; ++i) {
      p[offset + i] = (2.0f * uniform01(seed, stream, static_cast<uint64_t>(i)) - 1.0f) * bound;
    }
  };
  fill(layout.w1, shape.n_features, shape.hidden, 0x57317);
  fill(layout.w2, shape.hidden, shape.n_classes, 0x57327);
  return p;
}

}  // namespace gcn
