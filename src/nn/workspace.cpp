#include "gcn/nn/workspace.hpp"

#include <fmt/format.h>

namespace gcn {

namespace {
constexpr std::size_t kAlign = 256;  // cudaMalloc's alignment, and a cache line multiple
std::size_t aligned(std::size_t n) { return (n + kAlign - 1) / kAlign * kAlign; }
}  // namespace

Workspace::Id Workspace::push(Entry e) {
  if (base_ != nullptr) throw Error(fmt::format("workspace: '{}' added after the allocation", e.name));
  if (find(e.name) >= 0) throw Error(fmt::format("workspace: '{}' declared twice", e.name));
  e.offset = total_;
  total_ += aligned(e.bytes);
  entries_.push_back(std::move(e));
  return static_cast<Id>(entries_.size()) - 1;
}

Workspace::Id Workspace::add(std::string name, int64_t rows, int64_t cols) {
  if (rows < 0 || cols < 1) throw Error(fmt::format("workspace: '{}' has shape ({}, {})", name, rows, cols));
  Entry e;
  e.name = std::move(name);
  e.rows = rows;
  e.cols = cols;
  e.bytes = static_cast<std::size_t>(rows) * static_cast<std::size_t>(cols) * sizeof(float);
  return push(std::move(e));
}

Workspace::Id Workspace::add_bytes(std::string name, std::size_t bytes) {
  Entry e;
  e.name = std::move(name);
  e.bytes = bytes;
  return push(std::move(e));
}

void Workspace::allocate(Backend& backend) {
  if (base_ != nullptr) throw Error("workspace: allocated twice");
  backend_ = &backend;
  base_ = backend.allocate(total_ > 0 ? total_ : 1);
}

Workspace::~Workspace() {
  if (base_ != nullptr) backend_->deallocate(base_);
}

const Workspace::Entry& Workspace::entry(Id id) const {
  if (id < 0 || id >= static_cast<Id>(entries_.size())) throw Error(fmt::format("workspace: no tensor {}", id));
  return entries_[static_cast<std::size_t>(id)];
}

void* Workspace::pointer(Id id) const {
  const Entry& e = entry(id);
  if (base_ == nullptr) throw Error(fmt::format("workspace: '{}' used before the allocation", e.name));
  return static_cast<char*>(base_) + e.offset;
}

MatRef Workspace::mat(Id id) const {
  const Entry& e = entry(id);
  if (e.cols == 0) throw Error(fmt::format("workspace: '{}' is not a matrix", e.name));
  return MatRef{static_cast<float*>(pointer(id)), e.rows, e.cols};
}

Workspace::Id Workspace::find(const std::string& name) const {
  for (std::size_t i = 0; i < entries_.size(); ++i) {
    if (entries_[i].name == name) return static_cast<Id>(i);
  }
  return -1;
}

}  // namespace gcn
