// Typed errors. Everything below main() throws one of these; main() catches,
// prints one line and exits non-zero (no exit() in library code).
#pragma once

#include <stdexcept>
#include <string>

namespace gcn {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A data file is missing, unreadable or malformed. The message names the file.
class DataError : public Error {
 public:
  using Error::Error;
};

// Invalid or conflicting options.
class UsageError : public Error {
 public:
  using Error::Error;
};

// No usable device, a failed CUDA/cuBLAS/cuSPARSE call, out of device memory.
class DeviceError : public Error {
 public:
  using Error::Error;
};

// Training produced a non-finite value.
class NumericError : public Error {
 public:
  using Error::Error;
};

}  // namespace gcn
