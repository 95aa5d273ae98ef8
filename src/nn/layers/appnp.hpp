// APPNP's propagation as sparse block operators (appnp.cpp), exposed for
// tests/test_appnp_arma.cpp.
#pragma once

#include <vector>

#include "gcn/data/csr.hpp"

namespace gcn {

// One block of a block operator over an (N, N) matrix M: adj · M + eye · I.
struct OperatorBlock {
  double adj = 0.0;
  double eye = 0.0;
};
// The (R·N, C·N) operator of R × C blocks of M (square), each entry's value
// computed in double (adj · M_ij, plus eye on the diagonal) and rounded to
// float once; a block's entries in column order, zero blocks left out.
CsrMatrix block_operator(const CsrMatrix& m, const std::vector<std::vector<OperatorBlock>>& blocks);

// APPNP(K, alpha)'s operators over Â (appnp.cpp's comment): the forward's
// single (K = 1), first, step and last, and the backward's (over Âᵀ).
struct AppnpOperators {
  CsrMatrix single, first, step, last;
  CsrMatrix single_t, first_t, step_t, last_t;
};
AppnpOperators appnp_operators(const CsrMatrix& adj, double alpha);

}  // namespace gcn
