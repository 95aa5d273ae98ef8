#include <cctype>
#include <string>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "gcn/backend/devices.hpp"
#include "gcn/error.hpp"
#include "gcn/suggest.hpp"

namespace gcn {

DeviceSpec parse_device(const std::string& text) {
  if (text == "cpu") return {DeviceSpec::Kind::kCpu, 0};
  if (text == "auto") return {DeviceSpec::Kind::kAuto, 0};
  if (text == "cuda") return {DeviceSpec::Kind::kCuda, 0};
  const std::string prefix = "cuda:";
  if (text.rfind(prefix, 0) == 0 && text.size() > prefix.size() && text.size() <= prefix.size() + 4) {
    int index = 0;
    for (std::size_t i = prefix.size(); i < text.size(); ++i) {
      if (std::isdigit(static_cast<unsigned char>(text[i])) == 0) index = -1;
      if (index < 0) break;
      index = index * 10 + (text[i] - '0');
    }
    if (index >= 0) return {DeviceSpec::Kind::kCuda, index};
  }
  throw UsageError(fmt::format("--device: '{}' is not a device{}; use cpu, cuda, cuda:N or auto", text,
                               did_you_mean(text, {"cpu", "cuda", "auto"})));
}

std::unique_ptr<Backend> make_backend(const DeviceSpec& spec, int cpu_threads) {
  switch (spec.kind) {
    case DeviceSpec::Kind::kCpu:
      return make_cpu_backend(cpu_threads);
    case DeviceSpec::Kind::kCuda:
      return make_cuda_backend(spec.index);
    case DeviceSpec::Kind::kAuto: {
      std::string why;
      if (cuda_device_count(&why) > 0) return make_cuda_backend(0);
      // e.g. "--device auto: no NVIDIA driver found; using the CPU"
      spdlog::info("--device auto: {}; using the CPU", why);
      return make_cpu_backend(cpu_threads);
    }
  }
  throw UsageError("unknown device kind");
}

}  // namespace gcn
