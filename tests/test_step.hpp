// A step state and a metrics ring in a backend's memory, for tests of the ops
// that read or write them (dropout, the loss, the evaluation, Adam).
#pragma once

#include <cstdint>
#include <cstring>
#include <vector>

#include "gcn/backend/backend.hpp"
#include "gcn/backend/buffer.hpp"
#include "gcn/backend/step_state.hpp"

namespace gcn::test {

class StepRing {
 public:
  StepRing(Backend& be, const StepState& initial = StepState{}, int32_t slots = 1)
      : be_(&be), step_(be, static_cast<int64_t>(sizeof(StepState))),
        ring_(be, static_cast<int64_t>(sizeof(EpochMetrics)) * slots), slots_(slots) {
    set(initial);
    ring_.zero();
  }
  StepState* state() { return reinterpret_cast<StepState*>(step_.data()); }
  MetricsRing ring() { return {reinterpret_cast<EpochMetrics*>(ring_.data()), slots_}; }

  void set(const StepState& s) { be_->upload(step_.data(), &s, sizeof s); }
  StepState get() const {
    StepState s{};
    be_->download(&s, step_.data(), sizeof s);
    return s;
  }
  EpochMetrics slot(int32_t i = 0) const { return slots()[static_cast<std::size_t>(i)]; }
  std::vector<EpochMetrics> slots() const {
    std::vector<EpochMetrics> all(static_cast<std::size_t>(slots_));
    be_->download(all.data(), ring_.data(), all.size() * sizeof(EpochMetrics));
    return all;
  }
  // Every slot set to m (a sentinel: a test then sees which slots an op wrote).
  void fill_slots(const EpochMetrics& m) {
    const std::vector<EpochMetrics> all(static_cast<std::size_t>(slots_), m);
    be_->upload(ring_.data(), all.data(), all.size() * sizeof(EpochMetrics));
  }

 private:
  Backend* be_;
  Buffer<uint8_t> step_, ring_;
  int32_t slots_;
};

// A step state for the given epoch count (the running epoch is epoch + 1) and
// dropout seed.
inline StepState step_at(int64_t epoch, uint64_t dropout_seed = 0) {
  StepState s{};
  s.epoch = epoch;
  s.dropout_seed = dropout_seed;
  return s;
}

// The same bytes (NaN payloads and the sign of zero count).
inline bool same_bytes(const EpochMetrics& a, const EpochMetrics& b) { return std::memcmp(&a, &b, sizeof a) == 0; }
inline bool same_bytes(const StepState& a, const StepState& b) { return std::memcmp(&a, &b, sizeof a) == 0; }

// A slot no op writes: every field a value an op would not produce.
inline EpochMetrics sentinel_metrics() {
  EpochMetrics m{};
  m.loss = -123.0f;
  m.val_loss = -456.0f;
  m.correct[0] = m.correct[1] = m.correct[2] = -7;
  m.epoch = -9;
  return m;
}

}  // namespace gcn::test
