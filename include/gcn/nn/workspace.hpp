// A model's memory, planned before the first epoch: every parameter array,
// activation, gradient and scratch tensor has a name and a shape, and all of
// them live in one backend allocation (as llm.c lays out its parameter and
// activation tensors). A tensor keeps one meaning for the whole epoch; ops
// get their pointers from here, so the pointers never change from epoch to
// epoch (which a recorded CUDA graph needs).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "gcn/backend/backend.hpp"
#include "gcn/error.hpp"

namespace gcn {

class Workspace {
 public:
  using Id = int;

  // ---- planning (before allocate) ----
  // A float matrix (rows, cols).
  Id add(std::string name, int64_t rows, int64_t cols);
  // Raw bytes for a typed object (the step state, the metrics ring).
  Id add_bytes(std::string name, std::size_t bytes);

  // One allocation for every tensor (each aligned to 256 bytes); contents
  // are unspecified until written. Throws gcn::DeviceError when it does not fit.
  void allocate(Backend& backend);
  ~Workspace();
  Workspace() = default;
  Workspace(const Workspace&) = delete;
  Workspace& operator=(const Workspace&) = delete;

  // ---- use (after allocate) ----
  MatRef mat(Id id) const;
  template <class T>
  T* get(Id id) const {
    return static_cast<T*>(pointer(id));
  }
  void* pointer(Id id) const;
  std::size_t bytes(Id id) const { return entry(id).bytes; }
  const std::string& name(Id id) const { return entry(id).name; }
  Id find(const std::string& name) const;  // -1 when absent
  // The bytes allocate() takes (known while planning).
  std::size_t total_bytes() const { return total_; }

 private:
  struct Entry {
    std::string name;
    int64_t rows = 0, cols = 0;  // cols == 0: raw bytes
    std::size_t bytes = 0;
    std::size_t offset = 0;
  };
  const Entry& entry(Id id) const;
  Id push(Entry e);

  std::vector<Entry> entries_;
  std::size_t total_ = 0;
  Backend* backend_ = nullptr;
  void* base_ = nullptr;
};

}  // namespace gcn
