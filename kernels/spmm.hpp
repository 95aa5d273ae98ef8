// Launchers for the hand-written CSR SpMM: the deterministic fallback behind
// cuSPARSE (and a baseline gcn-bench compares it with), and the product of a
// batch of models with their own values (dropout on sparse features, made by
// launch_sparse_dropout). Row-major device
// memory, enqueued on `stream`.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>
#include <vector>

#include "gcn/backend/step_state.hpp"

namespace gcn::kernels {

// A balanced schedule of a CSR matrix's rows, made once on the host: rows
// are cut into segments of at most kSegmentNnz non-zeros, so a row with
// thousands of entries (a frequent word of Xᵀ) is many work items instead of
// one long serial loop. A row in one segment has part = -1; the segments of a
// longer row write partial sums to parts [first, first + count) and the one
// that finishes last adds them in segment order, so the summation order of
// every output element is fixed by the matrix alone.
struct SpmmSegment {
  int32_t row;
  int32_t begin, end;  // non-zeros [begin, end) of the row
  int32_t part;        // this segment's partial-sum slot, -1 when the row is one segment
  int32_t first;       // the row's first slot
  int32_t count;       // the row's number of segments
  int32_t counter;     // the row's completion counter, -1 when the row is one segment
  int32_t pad;
};
constexpr int32_t kSegmentNnz = 128;

struct SpmmSchedule {
  std::vector<SpmmSegment> segments;
  int32_t n_parts = 0;     // partial-sum slots (each holds n floats for a product with n columns)
  int32_t n_counters = 0;  // rows cut into more than one segment
};
// The schedule of a CSR matrix (indptr: rows + 1 entries, on the host).
SpmmSchedule make_spmm_schedule(const std::vector<int32_t>& indptr);

// c (rows, n) = A (rows, k; CSR: indices / values (nnz)) · b (k, n), plus
// bias (n) on every row when bias is not null. segments / n_segments: A's
// schedule on the device; partials: n_parts * n floats of scratch;
// counters: n_counters zeros, left at zero. Each output element sums its
// row's non-zeros in stored order (one segment after another), multiply then
// add with no fused multiply-add, then adds the bias: bit-identical from run
// to run, and to the CPU backend for rows of at most kSegmentNnz entries.
void launch_csr_spmm(const SpmmSegment* segments, int64_t n_segments, const int32_t* indices, const float* values,
                     int64_t n, const float* b, float* c, const float* bias, float* partials, unsigned* counters,
                     cudaStream_t stream);

// The same product for a batch of models in one launch (the model is the
// grid's y index): model k's column block c[:, k·n .. (k + 1)·n) (c: row
// stride batch · n) = A with the values values[k · nnz ..) times b's block
// k (b: row stride batch · n), no bias; each block the bits of the product
// of that block alone. partials: batch · n_parts · n floats; counters:
// batch · n_counters zeros, left at zero.
void launch_csr_spmm_batch(const SpmmSegment* segments, int64_t n_segments, const int32_t* indices,
                           const float* values, int64_t nnz, int64_t n, int batch, const float* b, float* c,
                           float* partials, int64_t n_parts, unsigned* counters, int64_t n_counters,
                           cudaStream_t stream);

// values (batch · nnz): model k's copy of A's values (CSR: indptr (rows + 1),
// indices, a_values (nnz), `cols` columns) with dropout(p): the entry (r, c)
// is element r · cols + c of the matrix dropped (transposed: c · rows + r),
// kept iff gcn::dropout_keep(site_seed(steps[k].dropout_seed, site),
// steps[k].epoch + 1, element, p) and scaled by 1 / (1 - p); p <= 0 copies.
void launch_sparse_dropout(const int32_t* indptr, const int32_t* indices, const float* a_values, int64_t rows,
                           int64_t cols, int64_t nnz, bool transposed, float p, const StepState* steps, int batch,
                           uint32_t site, float* values, cudaStream_t stream);

}  // namespace gcn::kernels
