// Argument checks shared by the backends: the same shape rules and the same
// messages on every device.
#pragma once

#include <cstdint>
#include <string>

#include <fmt/format.h>

#include "gcn/backend.hpp"
#include "gcn/error.hpp"

namespace gcn::detail {

inline void require(bool ok, const char* op, const std::string& detail) {
  if (!ok) throw Error(fmt::format("{}: {}", op, detail));
}

inline std::string shape(ConstMatRef m) { return fmt::format("({}, {})", m.rows, m.cols); }

// c (M, N) = op(a) (M, K) · op(b) (K, N): the sizes, after checking that they fit.
struct GemmDims {
  int64_t m, n, k;
};
inline GemmDims gemm_dims(ConstMatRef a, bool trans_a, ConstMatRef b, bool trans_b, ConstMatRef c) {
  const int64_t m = trans_a ? a.cols : a.rows;
  const int64_t k = trans_a ? a.rows : a.cols;
  const int64_t kb = trans_b ? b.cols : b.rows;
  const int64_t n = trans_b ? b.rows : b.cols;
  require(k == kb && c.rows == m && c.cols == n, "gemm",
          fmt::format("op(a) {} x op(b) {} -> {} (trans_a={}, trans_b={})", shape(a), shape(b), shape(c), trans_a,
                      trans_b));
  return {m, n, k};
}

}  // namespace gcn::detail
