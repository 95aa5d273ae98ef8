// Explicit lists of configurations for gcn-train --configs (what a random
// sweep hands over): "lr=0.01,hidden=32;lr=0.02,dropout=0.3" is two
// configurations, each key overriding the command line's value.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace gcn {

struct ConfigPoint {
  std::optional<float> lr, weight_decay, dropout;
  std::optional<int> hidden;
};

// Configurations separated by ';', each key=value pairs separated by ','
// (keys lr, weight_decay (or wd), dropout, hidden; a key at most once per
// configuration; finite numbers, hidden an integer). Throws gcn::UsageError
// naming the configuration and what is wrong. Values are checked for range
// by TrainConfig::validate later.
std::vector<ConfigPoint> parse_config_list(const std::string& text);

}  // namespace gcn
