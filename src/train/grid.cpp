#include "gcn/train/grid.hpp"

#include <cerrno>
#include <cmath>
#include <cstdlib>

#include <fmt/format.h>

#include "gcn/error.hpp"

namespace gcn {

namespace {

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string cur;
  for (char ch : s) {
    if (ch == sep) {
      out.push_back(cur);
      cur.clear();
    } else {
      cur += ch;
    }
  }
  out.push_back(cur);
  return out;
}

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t") - b + 1);
}

}  // namespace

std::vector<ConfigPoint> parse_config_list(const std::string& text) {
  constexpr std::size_t kMaxText = 1 << 20;
  if (text.size() > kMaxText) throw UsageError(fmt::format("--configs: {} bytes (at most {})", text.size(), kMaxText));
  std::vector<ConfigPoint> out;
  std::vector<std::string> items = split(text, ';');
  if (!items.empty() && trim(items.back()).empty()) items.pop_back();  // a trailing ';'
  if (items.empty()) throw UsageError("--configs: no configuration given");
  for (std::size_t i = 0; i < items.size(); ++i) {
    const std::string where = fmt::format("--configs: configuration {}", i + 1);
    if (trim(items[i]).empty()) throw UsageError(where + " is empty");
    ConfigPoint point;
    for (const std::string& raw : split(items[i], ',')) {
      const std::string pair = trim(raw);
      const auto eq = pair.find('=');
      if (eq == std::string::npos) {
        throw UsageError(fmt::format("{}: '{}' is not key=value (keys: lr, weight_decay, dropout, hidden)", where, pair));
      }
      const std::string key = trim(pair.substr(0, eq)), value = trim(pair.substr(eq + 1));
      errno = 0;
      char* end = nullptr;
      const double v = std::strtod(value.c_str(), &end);
      if (value.empty() || end != value.c_str() + value.size() || errno == ERANGE || !std::isfinite(v)) {
        throw UsageError(fmt::format("{}: {}={} is not a finite number", where, key, value));
      }
      auto set = [&](auto& field, auto number) {
        if (field) throw UsageError(fmt::format("{}: {} is given twice", where, key));
        field = number;
      };
      if (key == "lr") {
        set(point.lr, static_cast<float>(v));
      } else if (key == "weight_decay" || key == "weight-decay" || key == "wd") {
        set(point.weight_decay, static_cast<float>(v));
      } else if (key == "dropout") {
        set(point.dropout, static_cast<float>(v));
      } else if (key == "hidden") {
        if (v != std::floor(v) || v < 1 || v > 65536) {
          throw UsageError(fmt::format("{}: hidden={} is not a width in [1, 65536]", where, value));
        }
        set(point.hidden, static_cast<int>(v));
      } else {
        throw UsageError(fmt::format("{}: unknown key '{}' (keys: lr, weight_decay, dropout, hidden)", where, key));
      }
    }
    out.push_back(point);
  }
  return out;
}

}  // namespace gcn
