// A synthetic node-classification dataset that needs no files: a stochastic
// block model (one block per class) with sparse bag-of-words-like features that
// correlate with the class, and a Planetoid-like split.
//
// Everything is a pure function of the spec: each random choice is drawn from
// the counter-based generator in gcn/rng.hpp at a fixed (stream, index), so the
// result is the same on every platform and for any OpenMP thread count.
#pragma once

#include <cstdint>
#include <string>

#include "gcn/data/dataset.hpp"

namespace gcn {

struct SyntheticSpec {
  int64_t nodes = 10000;
  double degree = 10.0;  // average degree after symmetrising (each node draws ~degree/2
                         // targets; every edge is stored in both directions)
  int32_t features = 500;
  int32_t nnz_per_row = 20;  // non-zeros per feature row, all distinct columns
  int32_t classes = 7;
  double homophily = 0.8;       // probability an edge stays inside its block; otherwise the target
                                // is uniform over the other blocks, so the measured edge homophily
                                // is ~homophily (slightly less after de-duplication)
  double feature_signal = 0.5;  // fraction of a row's non-zeros drawn from its class's feature band
                                // [c*F/C, (c+1)*F/C); the rest are uniform over the other columns
  uint64_t seed = 0;
  int32_t train_per_class = 20;  // Planetoid-like split: the first train_per_class nodes of each
  int32_t val = 500;             // class (in node order), then the next `val` nodes, then the
  int32_t test = 1000;           // next `test` nodes
};

// True for "synthetic" and "synthetic:..." (the dataset argument names the generator).
bool is_synthetic_name(const std::string& dataset_arg);

// "synthetic" or "synthetic:key=value,..." with keys nodes, degree, features,
// nnz, classes, homophily, signal, seed, train_per_class, val, test (any subset,
// any order; the rest keep their defaults). Unknown or repeated keys, malformed
// numbers and out-of-range values throw gcn::UsageError with one line naming
// the key and the allowed range.
SyntheticSpec parse_synthetic_spec(const std::string& dataset_arg);

// Throws gcn::UsageError when the spec is out of range (what parse_synthetic_spec
// checks after reading the keys; make_synthetic checks it too).
void validate(const SyntheticSpec& spec);

// Canonical "synthetic:nodes=...,degree=...,..." with every key; parses back to
// an identical spec (doubles are written in shortest round-trip form).
std::string to_string(const SyntheticSpec& spec);

// Generates the dataset (name "synthetic"): labels uniform over the classes;
// coalesced symmetric edges without self loops (the Dataset edge contract);
// features with exactly nnz_per_row entries per row, each 1/nnz_per_row (so
// already row-normalised, as normalize_features would leave them); the split.
// UsageError when the spec is out of range or a class has fewer than
// train_per_class nodes.
Dataset make_synthetic(const SyntheticSpec& spec);

}  // namespace gcn
