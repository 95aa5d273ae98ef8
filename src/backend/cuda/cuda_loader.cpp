// The CUDA entry points of a build with CUDA (gcn/devices.hpp): the CUDA
// backend lives in a module, libgcn_cuda.so (src/backend/cuda/cuda_module.hpp), loaded with
// dlopen on the first call, never at start-up, so that a CPU run and --version
// map none of the CUDA libraries (cuBLAS, cuSPARSE, the runtime).
//
// On the first call, once per process:
//   1. GCN_CUDA_MODULE=path, when set, must name an existing file (checked
//      first: a mistake in it is reported on any machine);
//   2. the NVIDIA driver is probed: dlopen("libcuda.so.1") (not in a cudasim
//      build, whose module simulates the device); without it, no module is
//      loaded and the reason is "no NVIDIA driver found";
//   3. the module is looked for: $GCN_CUDA_MODULE alone when set, else beside
//      the executable, in <exe dir>/../lib/gcn-train/ (an install), and at its
//      path in the build tree (so tests and benchmarks find it); the first
//      that exists is loaded (RTLD_NOW | RTLD_LOCAL) and its table checked.
// The module and the driver stay loaded until the process exits: backends and
// the objects they made hold code of the module.
#include <dlfcn.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <system_error>
#include <vector>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "cuda_module.hpp"
#include "gcn/backend/devices.hpp"
#include "gcn/error.hpp"

#if !defined(GCN_CUDA_MODULE_FILE) || !defined(GCN_CUDA_MODULE_BUILD_PATH) || !defined(GCN_CUDA_MODULE_INTERFACE)
#error "GCN_CUDA_MODULE_FILE, GCN_CUDA_MODULE_BUILD_PATH and GCN_CUDA_MODULE_INTERFACE are set by src/CMakeLists.txt"
#endif

namespace gcn {
namespace {

namespace fs = std::filesystem;
using cuda_module::TableV1;

// The outcome of the one attempt to load the module.
struct Module {
  const TableV1* table = nullptr;
  // When table is null. why: one line for cuda_device_count (and --device
  // auto's log line); error: the one line make_cuda_backend throws.
  std::string why, error;
};

Module unavailable(const std::string& reason) {
  Module m;
  m.why = "the CUDA backend is not available: " + reason;
  m.error = "--device cuda: " + m.why + "; use --device cpu";
  return m;
}

std::string last_dl_error() {
  const char* e = dlerror();
  return e != nullptr ? e : "unknown dlopen error";
}

// dlerror() begins with the file name when the failure is about that file.
std::string without_prefix(std::string message, const std::string& path) {
  const std::string prefix = path + ": ";
  if (message.rfind(prefix, 0) == 0) message.erase(0, prefix.size());
  return message;
}

bool file_exists(const fs::path& p) {
  std::error_code ec;
  return fs::exists(p, ec);
}

// Where the module may be, in order (see the top of this file).
std::vector<fs::path> search_path() {
  std::vector<fs::path> paths;
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec && exe.has_parent_path()) {
    paths.push_back(exe.parent_path() / GCN_CUDA_MODULE_FILE);
    paths.push_back((exe.parent_path() / ".." / "lib" / "gcn-train" / GCN_CUDA_MODULE_FILE).lexically_normal());
  }
  const fs::path built = GCN_CUDA_MODULE_BUILD_PATH;
  bool seen = false;
  for (const fs::path& p : paths) seen = seen || p == built;
  if (!seen) paths.push_back(built);
  return paths;
}

Module load_module() {
  const char* env = std::getenv("GCN_CUDA_MODULE");
  const bool from_env = env != nullptr && *env != '\0';
  if (from_env && !file_exists(env)) {
    return unavailable(fmt::format("GCN_CUDA_MODULE={} does not exist", env));
  }

#ifndef GCN_CUDA_SIM
  // The driver first: on a machine without one (most CPU machines), nothing of
  // CUDA is loaded. The handle is kept: the CUDA runtime opens it again.
  if (dlopen("libcuda.so.1", RTLD_LAZY | RTLD_LOCAL) == nullptr) {
    const std::string e = last_dl_error();
    Module m;
    m.why = "no NVIDIA driver found";
    if (e.find("No such file or directory") == std::string::npos) {
      m.why += " (libcuda.so.1 is not loadable: " + e + ")";
    }
    m.error = "--device cuda: no usable CUDA GPU: no NVIDIA driver found (libcuda.so.1 is not loadable: " + e +
              "); use --device cpu";
    return m;
  }
#endif

  fs::path path;
  if (from_env) {
    // Absolute: dlopen searches the library path for a name without a slash.
    std::error_code ec;
    path = fs::absolute(env, ec);
    if (ec) path = env;
  } else {
    const std::vector<fs::path> paths = search_path();
    for (const fs::path& p : paths) {
      if (file_exists(p)) {
        path = p;
        break;
      }
    }
    if (path.empty()) {
      std::string where;
      for (const fs::path& p : paths) where += (where.empty() ? "" : ", ") + p.parent_path().string();
      return unavailable(fmt::format("{} is in none of {} (set GCN_CUDA_MODULE to its path)", GCN_CUDA_MODULE_FILE,
                                     where));
    }
  }

  const std::string file = path.string();
  void* handle = dlopen(file.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    return unavailable(fmt::format("cannot load {}: {}", file, without_prefix(last_dl_error(), file)));
  }
  using Entry = const TableV1* (*)();
  const auto entry = reinterpret_cast<Entry>(dlsym(handle, GCN_CUDA_MODULE_ENTRY));
  if (entry == nullptr) {
    return unavailable(fmt::format("{} is not a gcn-train CUDA module (no {} in it)", file, GCN_CUDA_MODULE_ENTRY));
  }
  const TableV1* table = entry();
  // abi_version comes first in every version of the table; the rest is read
  // only once it matches.
  const bool same_abi = table != nullptr && table->abi_version == cuda_module::kAbiVersion &&
                        table->table_size == sizeof(TableV1);
  if (!same_abi) {
    return unavailable(fmt::format("{} was built for another gcn-train (module ABI {}, this gcn-train needs {})", file,
                                   table != nullptr ? table->abi_version : 0u, cuda_module::kAbiVersion));
  }
  if (table->interface_id == nullptr || std::strcmp(table->interface_id, GCN_CUDA_MODULE_INTERFACE) != 0) {
    return unavailable(fmt::format("{} was built from other headers (interface {}, this gcn-train's is {})", file,
                                   table->interface_id != nullptr ? table->interface_id : "none",
                                   GCN_CUDA_MODULE_INTERFACE));
  }
  spdlog::debug("CUDA backend: loaded {}", file);
  Module m;
  m.table = table;
  return m;
}

const Module& module() {
  static const Module m = load_module();
  return m;
}

}  // namespace

bool cuda_compiled() { return true; }

int cuda_device_count(std::string* why) {
  const Module& m = module();
  if (m.table == nullptr) {
    if (why != nullptr) *why = m.why;
    return 0;
  }
  return m.table->device_count(why);
}

std::unique_ptr<Backend> make_cuda_backend(int device_index) {
  const Module& m = module();
  if (m.table == nullptr) throw DeviceError(m.error);
  return m.table->make_backend(device_index);
}

}  // namespace gcn
