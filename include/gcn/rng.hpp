// Counter-based random numbers shared by host and device code: the value for
// (seed, stream, index) is a pure function, so the CPU and CUDA backends draw
// the same dropout masks, and any epoch's mask is reproducible on its own.
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define GCN_HD __host__ __device__ __forceinline__
#else
#define GCN_HD inline
#endif

namespace gcn {

// SplitMix64 finaliser: a bijective 64-bit mix with full avalanche.
GCN_HD uint64_t mix64(uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// The per-(seed, stream) key; hoisted out of loops over the index.
GCN_HD uint64_t stream_key(uint64_t seed, uint64_t stream) { return mix64(seed ^ mix64(stream)); }

// Uniform float in [0, 1) with 24 random bits (exactly representable).
GCN_HD float uniform01_keyed(uint64_t key, uint64_t index) {
  // Through uint32: a 24-bit value converts exactly, and the signed
  // conversion avoids the slow unsigned 64-bit path on x86.
  return static_cast<float>(static_cast<int32_t>(mix64(key + index) >> 40)) * (1.0f / 16777216.0f);
}
GCN_HD float uniform01(uint64_t seed, uint64_t stream, uint64_t index) {
  return uniform01_keyed(stream_key(seed, stream), index);
}

// Dropout keeps element `index` with probability 1 - p.
GCN_HD bool dropout_keep_keyed(uint64_t key, uint64_t index, float p) { return uniform01_keyed(key, index) >= p; }
GCN_HD bool dropout_keep(uint64_t seed, uint64_t stream, uint64_t index, float p) {
  return dropout_keep_keyed(stream_key(seed, stream), index, p);
}

}  // namespace gcn
