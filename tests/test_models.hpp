// Fixtures shared by the model tests: a tiny graph, and the comparison of a
// batched run with the same model trained alone.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

#include "gcn/data/dataset.hpp"
#include "gcn/train/trainer.hpp"

namespace gcn {
namespace {

// A small graph with a directed edge (so Âᵀ differs from Â), an isolated node,
// sparse non-negative features and all three splits.
Dataset tiny_dataset() {
  Dataset d;
  d.name = "tiny";
  d.n_nodes = 7;
  d.n_features = 5;
  d.n_classes = 3;
  d.edge_src = {0, 0, 1, 1, 2, 3, 3, 4, 5};
  d.edge_dst = {1, 3, 0, 2, 1, 0, 4, 3, 4};  // 5 -> 4 has no reverse; 6 is isolated
  std::mt19937 gen(3);
  std::uniform_real_distribution<float> u(0.1f, 1.0f);
  d.features.n_rows = 7;
  d.features.n_cols = 5;
  d.features.indptr = {0};
  for (int i = 0; i < 7; ++i) {
    for (int j = 0; j < 5; ++j) {
      if ((i + 2 * j) % 3 != 0) {
        d.features.indices.push_back(j);
        d.features.values.push_back(u(gen));
      }
    }
    d.features.indptr.push_back(static_cast<int32_t>(d.features.indices.size()));
  }
  d.labels = {0, 1, 2, 1, 0, 2, 1};
  d.split = {kTrainBit, kTrainBit, kTrainBit, kTrainBit, kValBit, kTestBit, kTestBit};
  return d;
}

template <class T>
auto bits_of(T v) {
  using U = std::conditional_t<sizeof(T) == 8, uint64_t, uint32_t>;
  U u;
  std::memcpy(&u, &v, sizeof u);
  return u;
}

// Each model of a batch against the same model trained alone: every epoch's
// figures, the selected and best epochs, early stopping and the parameters,
// bit for bit.
void expect_same_run(const TrainResult& batched, const TrainResult& alone, const std::string& what) {
  ASSERT_EQ(batched.history.size(), alone.history.size()) << what;
  for (std::size_t e = 0; e < alone.history.size(); ++e) {
    const EpochStats &b = batched.history[e], &a = alone.history[e];
    ASSERT_EQ(b.epoch, a.epoch) << what;
    ASSERT_EQ(bits_of(b.loss), bits_of(a.loss)) << what << " epoch " << a.epoch;
    ASSERT_EQ(bits_of(b.val_loss), bits_of(a.val_loss)) << what << " epoch " << a.epoch;
    ASSERT_EQ(b.train_acc, a.train_acc) << what << " epoch " << a.epoch;
    ASSERT_EQ(b.val_acc, a.val_acc) << what << " epoch " << a.epoch;
    ASSERT_EQ(b.test_acc, a.test_acc) << what << " epoch " << a.epoch;
  }
  EXPECT_EQ(batched.selected_epoch, alone.selected_epoch) << what;
  EXPECT_EQ(batched.best_epoch, alone.best_epoch) << what;
  EXPECT_EQ(batched.stopped_early, alone.stopped_early) << what;
  ASSERT_EQ(batched.params.size(), alone.params.size()) << what;
  for (std::size_t i = 0; i < alone.params.size(); ++i) {
    ASSERT_EQ(bits_of(batched.params[i]), bits_of(alone.params[i]))
        << what << " parameter " << i;
  }
}

}  // namespace
}  // namespace gcn
