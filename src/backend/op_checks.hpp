// Argument checks shared by the backends: the same shape rules and the same
// messages on every device.
#pragma once

#include <cstdint>
#include <string>
#include <type_traits>

#include <fmt/format.h>

#include "gcn/backend/backend.hpp"
#include "gcn/error.hpp"

namespace gcn::detail {

// Throws Error("op: detail") unless ok. detail is a message, or a callable
// that makes one: every op checks its arguments on every call, in the epoch
// loop too, so a message with numbers in it is formatted only on failure.
template <class Detail>
inline void require(bool ok, const char* op, Detail&& detail) {
  if (ok) return;
  if constexpr (std::is_invocable_v<Detail>) {
    throw Error(fmt::format("{}: {}", op, detail()));
  } else {
    throw Error(fmt::format("{}: {}", op, detail));
  }
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
          [&] {
            return fmt::format("op(a) {} x op(b) {} -> {} (trans_a={}, trans_b={})", shape(a), shape(b), shape(c),
                               trans_a, trans_b);
          });
  return {m, n, k};
}

}  // namespace gcn::detail
