// gcn-train --configs: the list parser, by hand.
#include <gtest/gtest.h>

#include <string>

#include "gcn/error.hpp"
#include "gcn/train/grid.hpp"

namespace gcn {
namespace {

TEST(ConfigList, ParsesKeysAndLeavesTheRestUnset) {
  const std::vector<ConfigPoint> v = parse_config_list("lr=0.01,hidden=32; wd=5e-4 , dropout = 0.3;lr=1e-3;");
  ASSERT_EQ(v.size(), 3u);
  EXPECT_EQ(*v[0].lr, 0.01f);
  EXPECT_EQ(*v[0].hidden, 32);
  EXPECT_FALSE(v[0].dropout.has_value());
  EXPECT_FALSE(v[0].weight_decay.has_value());
  EXPECT_EQ(*v[1].weight_decay, 5e-4f);
  EXPECT_EQ(*v[1].dropout, 0.3f);
  EXPECT_FALSE(v[1].lr.has_value());
  EXPECT_EQ(*v[2].lr, 1e-3f);
  EXPECT_EQ(parse_config_list("weight_decay=0").front().weight_decay, 0.0f);
  EXPECT_EQ(parse_config_list("weight-decay=1").front().weight_decay, 1.0f);
}

TEST(ConfigList, RejectsMalformedListsNamingTheConfiguration) {
  const std::pair<const char*, const char*> cases[] = {
      {"", "no configuration given"},
      {";", "configuration 1 is empty"},
      {"lr=0.01;;lr=0.02", "configuration 2 is empty"},
      {"lr", "configuration 1: 'lr' is not key=value"},
      {"lr=0.01;momentum=0.9", "configuration 2: unknown key 'momentum'"},
      {"lr=abc", "lr=abc is not a finite number"},
      {"lr=", "lr= is not a finite number"},
      {"lr=nan", "is not a finite number"},
      {"lr=1e999", "is not a finite number"},
      {"lr=0.01x", "is not a finite number"},
      {"hidden=16.5", "hidden=16.5 is not a width"},
      {"hidden=0", "hidden=0 is not a width"},
      {"lr=0.1,lr=0.2", "lr is given twice"},
      {"wd=0.1,weight_decay=0.2", "weight_decay is given twice"},
  };
  for (const auto& [text, message] : cases) {
    try {
      parse_config_list(text);
      ADD_FAILURE() << "'" << text << "' was accepted";
    } catch (const UsageError& e) {
      EXPECT_NE(std::string(e.what()).find(message), std::string::npos) << text << " -> " << e.what();
      EXPECT_EQ(std::string(e.what()).rfind("--configs: ", 0), 0u) << e.what();
    }
  }
  EXPECT_THROW(parse_config_list(std::string(2 << 20, 'x')), UsageError);
}

}  // namespace
}  // namespace gcn
