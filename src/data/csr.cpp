// CsrMatrix::validate and CsrMatrix::transposed.
#include "gcn/data/csr.hpp"

#include <cmath>
#include <string>

#include "gcn/error.hpp"

namespace gcn {

void CsrMatrix::validate(const char* what) const {
  const std::string name = what ? what : "matrix";
  auto fail = [&](const std::string& msg) { throw DataError(name + ": " + msg); };
  if (n_rows < 0 || n_cols < 0) {
    fail("negative shape (" + std::to_string(n_rows) + ", " + std::to_string(n_cols) + ")");
  }
  if (indptr.size() != static_cast<size_t>(n_rows) + 1) {
    fail("indptr has " + std::to_string(indptr.size()) + " entries for " + std::to_string(n_rows) +
         " rows (expected rows + 1)");
  }
  if (values.size() != indices.size()) {
    fail("values has " + std::to_string(values.size()) + " entries but indices has " +
         std::to_string(indices.size()));
  }
  if (indptr[0] != 0) fail("indptr[0] is " + std::to_string(indptr[0]) + ", not 0");
  if (static_cast<int64_t>(indptr.back()) != nnz()) {
    fail("indptr ends at " + std::to_string(indptr.back()) + " but there are " +
         std::to_string(nnz()) + " entries");
  }
  for (int32_t r = 0; r < n_rows; ++r) {
    if (indptr[r + 1] < indptr[r]) fail("indptr decreases at row " + std::to_string(r));
    // A later decrease could still end at nnz: bound every entry before reading the row.
    if (indptr[r + 1] > nnz()) {
      fail("indptr[" + std::to_string(r + 1) + "] = " + std::to_string(indptr[r + 1]) + " is past the " +
           std::to_string(nnz()) + " entries");
    }
    for (int32_t k = indptr[r]; k < indptr[r + 1]; ++k) {
      if (indices[k] < 0 || indices[k] >= n_cols) {
        fail("column " + std::to_string(indices[k]) + " in row " + std::to_string(r) +
             " is outside [0, " + std::to_string(n_cols) + ")");
      }
      if (k > indptr[r] && indices[k] < indices[k - 1]) {
        fail("columns of row " + std::to_string(r) + " are not sorted");
      }
      if (!std::isfinite(values[k])) {
        fail("value at row " + std::to_string(r) + ", column " + std::to_string(indices[k]) + " is " +
             (std::isnan(values[k]) ? "NaN" : "infinite"));
      }
    }
  }
}

CsrMatrix CsrMatrix::transposed() const {
  CsrMatrix t;
  t.n_rows = n_cols;
  t.n_cols = n_rows;
  t.indptr.assign(static_cast<size_t>(n_cols) + 1, 0);
  t.indices.resize(indices.size());
  t.values.resize(values.size());
  for (int32_t c : indices) ++t.indptr[static_cast<size_t>(c) + 1];
  for (int32_t c = 0; c < n_cols; ++c) t.indptr[c + 1] += t.indptr[c];
  // Walking the rows in order fills each output row with increasing columns.
  std::vector<int32_t> next(t.indptr.begin(), t.indptr.end() - 1);
  for (int32_t r = 0; r < n_rows; ++r) {
    for (int32_t k = indptr[r]; k < indptr[r + 1]; ++k) {
      const int32_t dst = next[indices[k]]++;
      t.indices[dst] = r;
      t.values[dst] = values[k];
    }
  }
  return t;
}

}  // namespace gcn
