// Host-side compressed sparse row matrix (float32 values, int32 indices),
// the interchange format between loaders and backends.
#pragma once

#include <cstdint>
#include <vector>

namespace gcn {

struct CsrMatrix {
  int32_t n_rows = 0;
  int32_t n_cols = 0;
  std::vector<int32_t> indptr;   // (n_rows + 1)
  std::vector<int32_t> indices;  // (nnz) column of each entry, sorted within a row
  std::vector<float> values;     // (nnz)

  int64_t nnz() const { return static_cast<int64_t>(indices.size()); }

  // Throws gcn::DataError when the arrays are inconsistent (sizes, monotone
  // indptr, column indices in range). `what` names the matrix in the message.
  void validate(const char* what) const;

  // The transpose, also in CSR with sorted columns (used for Xᵀ and Âᵀ).
  CsrMatrix transposed() const;
};

}  // namespace gcn
