// Comparing a result with a reference, element by element, as a GoogleTest
// assertion: |got - ref| <= atol + rtol * |ref|. A failure names how many
// elements are off and the worst one (index, row and column, both values),
// so a mismatch can be found without a debugger.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <iomanip>
#include <sstream>
#include <vector>

namespace gcn::test {

struct Tolerance {
  double atol = 1e-5;
  double rtol = 1e-5;
};

// cols > 0 reports the worst element as (row, col) of a row-major matrix.
template <class T>
::testing::AssertionResult all_close(const std::vector<T>& got, const std::vector<T>& ref, Tolerance tol,
                                     int64_t cols = 0) {
  if (got.size() != ref.size()) {
    return ::testing::AssertionFailure() << "size " << got.size() << " != reference size " << ref.size();
  }
  int64_t n_bad = 0;
  int64_t worst = -1;
  double worst_excess = -1.0;  // how far past the tolerance; +inf for NaN/inf mismatches
  for (std::size_t i = 0; i < got.size(); ++i) {
    const double g = static_cast<double>(got[i]);
    const double r = static_cast<double>(ref[i]);
    double excess;
    if (std::isnan(r) || std::isnan(g)) {
      excess = (std::isnan(r) && std::isnan(g)) ? -1.0 : INFINITY;
    } else if (std::isinf(r) || std::isinf(g)) {
      excess = (g == r) ? -1.0 : INFINITY;
    } else {
      excess = std::fabs(g - r) - (tol.atol + tol.rtol * std::fabs(r));
    }
    if (excess > 0.0) {
      ++n_bad;
      if (excess > worst_excess) {
        worst_excess = excess;
        worst = static_cast<int64_t>(i);
      }
    }
  }
  if (n_bad == 0) return ::testing::AssertionSuccess();
  std::ostringstream where;
  where.precision(9);
  where << n_bad << " of " << got.size() << " elements differ beyond atol=" << tol.atol << " rtol=" << tol.rtol
        << "; largest difference at index " << worst;
  if (cols > 0) where << " (row " << worst / cols << ", col " << worst % cols << ")";
  where << ": got " << static_cast<double>(got[worst]) << ", reference " << static_cast<double>(ref[worst])
        << ", |diff| = " << std::fabs(static_cast<double>(got[worst]) - static_cast<double>(ref[worst]));
  return ::testing::AssertionFailure() << where.str();
}

// Exact equality (integers, or floats that must match bit for bit in value).
template <class T>
::testing::AssertionResult all_equal(const std::vector<T>& got, const std::vector<T>& ref, int64_t cols = 0) {
  if (got.size() != ref.size()) {
    return ::testing::AssertionFailure() << "size " << got.size() << " != reference size " << ref.size();
  }
  int64_t n_bad = 0;
  int64_t first = -1;
  for (std::size_t i = 0; i < got.size(); ++i) {
    if (!(got[i] == ref[i])) {
      if (first < 0) first = static_cast<int64_t>(i);
      ++n_bad;
    }
  }
  if (n_bad == 0) return ::testing::AssertionSuccess();
  std::ostringstream where;
  where.precision(9);
  where << n_bad << " of " << got.size() << " elements differ; first at index " << first;
  if (cols > 0) where << " (row " << first / cols << ", col " << first % cols << ")";
  where << ": got " << +got[first] << ", reference " << +ref[first];
  return ::testing::AssertionFailure() << where.str();
}

// The same bits element by element (memcmp per element: NaN payloads and the
// sign of zero count). A failure names how many differ and the first one,
// with both bit patterns.
template <class T>
::testing::AssertionResult same_bits(const std::vector<T>& got, const std::vector<T>& ref, int64_t cols = 0) {
  if (got.size() != ref.size()) {
    return ::testing::AssertionFailure() << "size " << got.size() << " != reference size " << ref.size();
  }
  int64_t n_bad = 0;
  int64_t first = -1;
  for (std::size_t i = 0; i < got.size(); ++i) {
    if (std::memcmp(&got[i], &ref[i], sizeof(T)) != 0) {
      if (first < 0) first = static_cast<int64_t>(i);
      ++n_bad;
    }
  }
  if (n_bad == 0) return ::testing::AssertionSuccess();
  std::ostringstream where;
  where.precision(9);
  where << n_bad << " of " << got.size() << " elements differ in their bits; first at index " << first;
  if (cols > 0) where << " (row " << first / cols << ", col " << first % cols << ")";
  unsigned long long g = 0, r = 0;
  std::memcpy(&g, &got[first], sizeof(T) < sizeof g ? sizeof(T) : sizeof g);
  std::memcpy(&r, &ref[first], sizeof(T) < sizeof r ? sizeof(T) : sizeof r);
  where << ": got " << +got[first] << " (0x" << std::hex << g << "), reference " << std::dec << +ref[first] << " (0x"
        << std::hex << r << ")";
  return ::testing::AssertionFailure() << where.str();
}

}  // namespace gcn::test
