// The CPU backend's inner loops, compiled once per instruction set (the
// x86-64 baseline, x86-64-v3 with AVX2, x86-64-v4 with AVX-512) and chosen at
// run time for the CPU at hand (cpu_kernels()).
//
// Every variant computes the same bits: each output element is summed in the
// same order with the same roundings (wider vectors only compute more
// independent elements at once; -ffp-contract=off keeps every product and sum
// two roundings, never a fused multiply-add), and the same library functions
// are called (the graph-attention softmax's expf: the library's in the
// baseline, an operation-for-operation copy of glibc's in the variants with
// FMA, cpu_kernels_gat.hpp). tests/test_cpu_ops.cpp holds every variant this
// CPU can run to the baseline, bit for bit, and tests/test_gat_ops.cpp
// (GatKernels) the graph-attention kernels to plain loops.
#pragma once

#include <cstdint>
#include <vector>

namespace gcn::cpu {

struct AdamScalars {
  float beta1, beta2, one_minus_b1, one_minus_b2, eps, weight_decay;
  float step_size;  // lr / (1 - beta1^step), from double
  float bc2_sqrt;   // sqrt(1 - beta2^step), from double
};

// One graph-attention call (cpu_kernels_gat.hpp): bh = batch · heads
// columns of scores and coefficients, ch channels per head, ld = bh · ch
// columns of features; the edges as gcn::EdgeLists holds them.
struct GatShape {
  int heads;
  int64_t bh, ch, ld;
  const int32_t* in_ptr;    // (N + 1): the edges into node i are [in_ptr[i], in_ptr[i + 1])
  const int32_t* in_src;    // (E) src(e)
  const int32_t* edge_dst;  // (E) dst(e)
  const int32_t* out_ptr;   // (N + 1)
  const int32_t* out_edge;  // (E) edge ids grouped by source
};

struct CpuKernels {
  const char* isa;  // "baseline", "avx2", "avx512"
  // The rows order[g0..g1) of c (n columns) = A's rows · b (k, n) (+ bias):
  // A in CSR, order its rows sorted by length (longest first, rows_by_length);
  // each element sums its row's entries in stored order (float), then adds
  // the bias.
  void (*spmm)(const int32_t* indptr, const int32_t* indices, const float* values, const int32_t* order,
               const float* b, int64_t n, const float* bias, float* c, int64_t g0, int64_t g1);
  // c rows [r0, r1) (n columns, row stride ldc >= n) = a rows (k columns,
  // row stride lda) · b (k rows, row stride ldb >= n): each element
  // accumulates a[i][p] * b[p][j] in double in p order.
  void (*gemm_nn)(const float* a, int64_t lda, const float* b, int64_t ldb, int64_t k, int64_t n, float* c,
                  int64_t ldc, int64_t r0, int64_t r1);
  // acc rows [r0, r1) of (m, n) doubles = the sum over p in [p0, p1) of
  // a[p][i] * b[p][j], in p order, skipping a's zeros (they add nothing, not
  // even a -0 or a 0 * inf). a: rows of m floats at stride lda >= m; b: rows
  // of n floats at stride ldb >= n. accumulate: the sums start from acc's
  // values (continuing an earlier range of p), else from 0.
  void (*gemm_tn)(const float* a, int64_t lda, int64_t m, const float* b, int64_t ldb, int64_t n, int64_t p0,
                  int64_t p1, int64_t r0, int64_t r1, double* acc, bool accumulate);
  // The rows [r0, r1) of a (rows, cols) tensor stored at row stride ld:
  // y = dropout(relu(x)) element by element, kept (and scaled) when drop is
  // false or dropout_keep_keyed(key, r·cols + j, p) (the index within the
  // tensor, whatever its stride).
  void (*relu_dropout_forward)(const float* x, float* y, int64_t ld, int64_t cols, int64_t r0, int64_t r1, bool drop,
                               float p, float scale, uint64_t key);
  // dx = y > 0 ? dy * scale : 0, over the same kind of rows.
  void (*relu_dropout_backward)(const float* dy, const float* y, float* dx, int64_t ld, int64_t cols, int64_t r0,
                                int64_t r1, float scale);
  // acc (cols) doubles += the rows [r0, r1) of x (rows of cols floats at
  // row stride ld >= cols), each column in row order.
  void (*column_sum)(const float* x, int64_t ld, int64_t cols, int64_t r0, int64_t r1, double* acc);
  // One Adam step over [i0, i1) (torch.optim.Adam's float32 element update).
  void (*adam)(float* params, const float* grads, float* m, float* v, int64_t i0, int64_t i1, const AdamScalars& s);
  // The same over the rows [r0, r1) of a (rows, batch·cols) block of a
  // batch of models: model k's columns with s[k], skipped where skip[k].
  void (*adam_block)(float* params, const float* grads, float* m, float* v, int64_t cols, int batch, int64_t r0,
                     int64_t r1, const AdamScalars* s, const uint8_t* skip);
  // spmm with b and c at row strides ldb, ldc >= n (a column block of a
  // batch of models): each element the bits spmm gives the block alone.
  void (*spmm_strided)(const int32_t* indptr, const int32_t* indices, const float* values, const int32_t* order,
                       const float* b, int64_t ldb, int64_t n, const float* bias, float* c, int64_t ldc, int64_t g0,
                       int64_t g1);
  // y = dropout(elu(x)) (elu(x) = x > 0 ? x : gcn::elu_expm1(x)), over the
  // same rows as relu_dropout_forward, with the same mask.
  void (*elu_dropout_forward)(const float* x, float* y, int64_t ld, int64_t cols, int64_t r0, int64_t r1, bool drop,
                              float p, float scale, uint64_t key);
  // dx = (dy · elu'(x)) · scale where kept (the mask recomputed when drop),
  // else 0; elu'(x) = 1 where y > 0, else y · (1 - p) + 1.
  void (*elu_dropout_backward)(const float* dy, const float* y, float* dx, int64_t ld, int64_t cols, int64_t r0,
                               int64_t r1, bool drop, float p, float scale, uint64_t key);
  // The rows [r0, r1) of a dropout mask's factors: m[r · ld + j] (j < cols)
  // = scale where dropout_keep_keyed(key, r · cols + j, p), else 0 (the
  // mask relu_dropout_forward multiplies by).
  void (*dropout_factors)(float* m, int64_t ld, int64_t cols, int64_t r0, int64_t r1, float p, float scale,
                          uint64_t key);
  // out[e] = values[e] times the mask factor of its element, for the entries
  // of the rows [r0, r1) of a CSR matrix (n_rows, n_cols): the element
  // r · n_cols + col, or (transposed: the matrix is the transpose of the one
  // dropped) col · n_rows + r.
  void (*sparse_dropout)(const int32_t* indptr, const int32_t* indices, const float* values, int64_t n_rows,
                         int64_t n_cols, bool transposed, float p, float scale, uint64_t key, float* out, int64_t r0,
                         int64_t r1);
  // Graph attention (cpu_kernels_gat.hpp has the formulas and summation
  // orders). mask: the attention dropout's factors (E, bh) from
  // dropout_factors, or null (no dropout); a node range [i0, i1) each.
  // s_src, s_dst (N, bh) of the nodes [i0, i1).
  void (*gat_scores)(const GatShape& g, const float* xw, const float* att_src, const float* att_dst, float* s_src,
                     float* s_dst, int64_t i0, int64_t i1);
  // alpha (E, bh) of the edges into the nodes [i0, i1).
  void (*gat_softmax)(const GatShape& g, const float* s_src, const float* s_dst, float* alpha, int64_t i0,
                      int64_t i1);
  // out rows [i0, i1) = Σ over the in-edges of (alpha · mask) · xw[src] (+ bias).
  void (*gat_aggregate)(const GatShape& g, const float* alpha, const float* mask, const float* xw, const float* bias,
                        float* out, int64_t i0, int64_t i1);
  // d_alpha of the edges into, and ds_dst of, the target nodes [i0, i1);
  // dots: (E, bh) scratch.
  void (*gat_backward_targets)(const GatShape& g, const float* dout, const float* xw, const float* s_src,
                               const float* s_dst, const float* alpha, const float* mask, float* dots,
                               float* d_alpha, float* ds_dst, int64_t i0, int64_t i1);
  // ds_src and dxw of the source nodes [j0, j1).
  void (*gat_backward_sources)(const GatShape& g, const float* dout, const float* att_src, const float* att_dst,
                               const float* alpha, const float* mask, const float* d_alpha, const float* ds_dst,
                               float* ds_src, float* dxw, int64_t j0, int64_t j1);
  // d_att (ld) = Σ over the nodes [0, n_nodes) of ds[j, kh] · xw[j, kh, c],
  // in node order, in double; acc: ld doubles of scratch.
  void (*gat_attention_grad)(const GatShape& g, int64_t n_nodes, const float* ds, const float* xw, float* d_att,
                             double* acc);
  // y = the exp gat_softmax computes (std::exp's bits with glibc), element
  // by element.
  void (*softmax_exp)(const float* x, float* y, int64_t n);
};

// A CSR matrix's rows by number of entries, longest first (ties by index).
std::vector<int32_t> rows_by_length(const std::vector<int32_t>& indptr);

// The fastest variant this CPU runs (chosen once; GCN_CPU_ISA=baseline|avx2|avx512
// picks one, for tests and comparisons).
const CpuKernels& cpu_kernels();
// Every variant this CPU can run, the baseline first.
std::vector<const CpuKernels*> available_cpu_kernels();

// The variants (cpu_kernels_<isa>.cpp).
const CpuKernels& kernels_baseline();
const CpuKernels* kernels_avx2();    // null where not compiled (not x86-64)
const CpuKernels* kernels_avx512();  // null where not compiled

}  // namespace gcn::cpu
