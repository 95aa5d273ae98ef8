// Counter-based random numbers shared by host and device code: the value for
// (seed, stream, index) is a pure function, so the CPU and CUDA backends draw
// the same dropout masks, and any epoch's mask is reproducible on its own.
// Also the one transcendental of a dropout layer (ELU's expm1), shared the
// same way so that both backends compute the same bits.
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

// The seed of dropout site `site`: each dropout of an epoch (the input
// features, each activation, each attention layer) draws its own masks from
// the run's seed. Site 0 is the seed itself (the tutorial GCN's one dropout).
GCN_HD uint64_t site_seed(uint64_t seed, uint32_t site) {
  return site == 0 ? seed : mix64(seed ^ (0xD1B54A32D192ED03ull * site));
}

// ---- the ELU's expm1, shared by host and device code the same way ------------
// expm1(x) for x <= 0 (ELU's negative side; x > 0 is computed as 0, NaN and
// ±0 come back as they are), within about one ulp of the exact value, in
// float operations only: no library call and no fused multiply-add, so the
// CPU (every instruction set; a loop of it vectorises) and CUDA compute the
// same bits. expm1(x) = 2^k · expm1(r) + (2^k - 1) with k = round(x / ln 2),
// r = x - k ln 2 (Cody-Waite, |r| <= ln 2 / 2) and expm1(r) its Taylor
// series to r^8 (the next term is below 2^-31 of it).
#if defined(__CUDA_ARCH__)
#define GCN_FMUL(a, b) __fmul_rn(a, b)
#define GCN_FADD(a, b) __fadd_rn(a, b)
#else
#define GCN_FMUL(a, b) ((a) * (b))
#define GCN_FADD(a, b) ((a) + (b))
#endif
GCN_HD float elu_expm1(float x) {
  // Clamped to [-30, 0] (NaN to -30: no undefined conversion below); below
  // -25 ln 2 the result rounds to -1 anyway.
  const float xs = x >= -30.0f ? (x <= 0.0f ? x : 0.0f) : -30.0f;
  // round(xs / ln 2) by the 1.5 · 2^23 shift (exact: |k| <= 44).
  const float kf = GCN_FADD(GCN_FADD(GCN_FMUL(xs, 1.44269504f), 12582912.0f), -12582912.0f);
  const float r = GCN_FADD(GCN_FADD(xs, -GCN_FMUL(kf, 0.693359375f)), GCN_FMUL(kf, 2.12194440e-4f));
  float q = 2.48015873e-5f;  // 1/8!
  q = GCN_FADD(GCN_FMUL(q, r), 1.98412698e-4f);
  q = GCN_FADD(GCN_FMUL(q, r), 1.38888889e-3f);
  q = GCN_FADD(GCN_FMUL(q, r), 8.33333333e-3f);
  q = GCN_FADD(GCN_FMUL(q, r), 4.16666667e-2f);
  q = GCN_FADD(GCN_FMUL(q, r), 1.66666667e-1f);
  q = GCN_FADD(GCN_FMUL(q, r), 0.5f);
  const float p = GCN_FADD(r, GCN_FMUL(GCN_FMUL(r, r), q));  // expm1(r)
  const uint32_t bits = static_cast<uint32_t>(static_cast<int32_t>(kf) + 127) << 23;
#if defined(__CUDA_ARCH__)
  const float t = __uint_as_float(bits);  // 2^k
#else
  float t;
  __builtin_memcpy(&t, &bits, sizeof t);
#endif
  const float y = GCN_FADD(GCN_FMUL(t, p), GCN_FADD(t, -1.0f));
  return x == 0.0f || x != x ? x : y;
}
#undef GCN_FMUL
#undef GCN_FADD

}  // namespace gcn
