// Owning, move-only memory on a backend (RAII). Copies are explicit:
// to_host()/from_host(), never implicit.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "gcn/backend/backend.hpp"
#include "gcn/error.hpp"

namespace gcn {

template <class T>
class Buffer {
 public:
  Buffer() = default;
  Buffer(Backend& backend, int64_t count) : backend_(&backend), count_(count) {
    if (count_ > 0) data_ = static_cast<T*>(backend.allocate(bytes()));
  }
  Buffer(Backend& backend, const std::vector<T>& host) : Buffer(backend, static_cast<int64_t>(host.size())) {
    from_host(host);
  }
  ~Buffer() { release(); }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  Buffer(Buffer&& o) noexcept { swap(o); }
  Buffer& operator=(Buffer&& o) noexcept {
    if (this != &o) {
      release();
      swap(o);
    }
    return *this;
  }

  T* data() { return data_; }
  const T* data() const { return data_; }
  int64_t size() const { return count_; }
  std::size_t bytes() const { return static_cast<std::size_t>(count_) * sizeof(T); }

  void zero() {
    if (count_ > 0) backend_->fill_zero(data_, bytes());
  }
  void from_host(const std::vector<T>& host) {
    if (static_cast<int64_t>(host.size()) != count_) {
      throw Error("Buffer::from_host: " + std::to_string(host.size()) + " values for a buffer of " +
                  std::to_string(count_));
    }
    if (count_ > 0) backend_->upload(data_, host.data(), bytes());
  }
  std::vector<T> to_host() const {
    std::vector<T> out(static_cast<std::size_t>(count_));
    if (count_ > 0) backend_->download(out.data(), data_, bytes());
    return out;
  }

 private:
  void release() noexcept {
    if (data_ != nullptr) backend_->deallocate(data_);
    data_ = nullptr;
    count_ = 0;
  }
  void swap(Buffer& o) noexcept {
    std::swap(backend_, o.backend_);
    std::swap(data_, o.data_);
    std::swap(count_, o.count_);
  }

  Backend* backend_ = nullptr;
  T* data_ = nullptr;
  int64_t count_ = 0;
};

// A float matrix owned on a backend.
class Matrix {
 public:
  Matrix() = default;
  Matrix(Backend& backend, int64_t rows, int64_t cols)
      : buf_(backend, rows * cols), rows_(rows), cols_(cols) {}
  MatRef ref() { return {buf_.data(), rows_, cols_}; }
  ConstMatRef ref() const { return {buf_.data(), rows_, cols_}; }
  float* data() { return buf_.data(); }
  const float* data() const { return buf_.data(); }
  int64_t rows() const { return rows_; }
  int64_t cols() const { return cols_; }
  Buffer<float>& buffer() { return buf_; }
  const Buffer<float>& buffer() const { return buf_; }

 private:
  Buffer<float> buf_;
  int64_t rows_ = 0;
  int64_t cols_ = 0;
};

}  // namespace gcn
