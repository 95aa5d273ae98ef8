// Seeded random inputs shared by the op tests (CPU against plain loops, CUDA
// against the CPU).
#pragma once

#include <cstddef>
#include <cstdint>
#include <random>
#include <vector>

#include "gcn/data/csr.hpp"

namespace gcn::test {

inline std::vector<float> random_floats(std::size_t n, uint32_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

// Random CSR with sorted columns; every `empty_every`-th row has no entries.
inline CsrMatrix random_csr(int32_t rows, int32_t cols, double density, int empty_every, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> value(-1.0f, 1.0f);
  std::bernoulli_distribution take(density);
  CsrMatrix m;
  m.n_rows = rows;
  m.n_cols = cols;
  m.indptr.push_back(0);
  for (int32_t i = 0; i < rows; ++i) {
    if (empty_every <= 0 || i % empty_every != 0) {
      for (int32_t j = 0; j < cols; ++j) {
        if (take(rng)) {
          m.indices.push_back(j);
          m.values.push_back(value(rng));
        }
      }
    }
    m.indptr.push_back(static_cast<int32_t>(m.indices.size()));
  }
  return m;
}

}  // namespace gcn::test
