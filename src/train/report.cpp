#include "gcn/train/report.hpp"

#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <algorithm>
#include <random>

#include <fmt/format.h>

#include "gcn/error.hpp"

namespace gcn {

double json_number(float value) { return std::stod(fmt::format("{}", value)); }

nlohmann::json model_json(const TrainConfig& c) {
  nlohmann::json out = {{"model", c.model->name()},
                        {"layers", c.layers},
                        {"hiddens", c.hiddens},
                        {"input_dropout", json_number(c.input_dropout)}};
  for (const HyperParam& p : c.model->hyper_params()) {
    const auto it = c.hyper.find(p.name);
    if (it == c.hyper.end()) continue;
    switch (p.kind) {
      case HyperParam::Kind::kInt: out[p.key()] = static_cast<int64_t>(it->second); break;
      case HyperParam::Kind::kBool: out[p.key()] = it->second != 0.0; break;
      case HyperParam::Kind::kFloat: out[p.key()] = json_number(static_cast<float>(it->second)); break;
    }
  }
  return out;
}

SeedSummary summarize(const std::vector<double>& values) {
  SeedSummary s;
  s.n = static_cast<int>(values.size());
  if (s.n == 0) return s;
  double sum = 0;
  for (double v : values) sum += v;
  s.mean = sum / s.n;
  s.ci95_low = s.ci95_high = s.mean;
  if (s.n < 2) return s;
  double sq = 0;
  for (double v : values) sq += (v - s.mean) * (v - s.mean);
  s.std = std::sqrt(sq / (s.n - 1));
  // Two-sided 97.5% quantiles of Student's t for 1..30 degrees of freedom.
  static const double kT[] = {12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
                              2.201,  2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
                              2.080,  2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042};
  const int df = s.n - 1;
  // Beyond 30 degrees of freedom t approaches the normal 1.960 like 1/df.
  const double t = df <= 30 ? kT[df - 1] : 1.960 + (2.042 - 1.960) * 30.0 / df;
  const double half = t * s.std / std::sqrt(static_cast<double>(s.n));
  s.ci95_low = s.mean - half;
  s.ci95_high = s.mean + half;
  return s;
}

namespace {

nlohmann::json epoch_json(const EpochStats& s) {
  return {{"epoch", s.epoch},         {"loss", s.loss},       {"val_loss", s.val_loss},
          {"train_acc", s.train_acc}, {"val_acc", s.val_acc}, {"test_acc", s.test_acc}};
}

nlohmann::json history_json(const TrainResult& res) {
  nlohmann::json history = nlohmann::json::array();
  for (const EpochStats& s : res.history) history.push_back(epoch_json(s));
  return history;
}

nlohmann::json timing_json(const TrainResult& res) {
  return {{"train_s", res.train_s}, {"epoch_ms_median", res.epoch_ms_median}, {"cuda_graph", res.graph_replayed}};
}

nlohmann::json summary_json(const std::vector<double>& v) {
  const SeedSummary s = summarize(v);
  return {{"mean", s.mean}, {"std", s.std}, {"ci95", {s.ci95_low, s.ci95_high}}};
}

}  // namespace

std::vector<ConfigSummary> summarize_configurations(const RunReport& r) {
  struct Acc {
    ConfigSummary row;
    std::vector<double> val, test, final_test;
    double epochs = 0;
  };
  std::vector<Acc> groups;
  for (std::size_t i = 0; i < r.results.size(); ++i) {
    const TrainConfig& c = i < r.model_configs.size() ? r.model_configs[i] : r.config;
    auto same = [&](const Acc& g) {
      return g.row.config.hidden == c.hidden && g.row.config.lr == c.lr && g.row.config.weight_decay == c.weight_decay &&
             g.row.config.dropout == c.dropout;
    };
    auto it = std::find_if(groups.begin(), groups.end(), same);
    if (it == groups.end()) {
      groups.push_back(Acc{});
      it = groups.end() - 1;
      it->row.config = c;
    }
    const TrainResult& res = r.results[i];
    it->row.seeds.push_back(r.seeds[i]);
    it->val.push_back(res.selected().val_acc);
    it->test.push_back(res.selected().test_acc);
    it->final_test.push_back(res.final_stats().test_acc);
    it->epochs += res.selected().epoch;
  }
  std::vector<ConfigSummary> out;
  for (Acc& g : groups) {
    g.row.val_acc = summarize(g.val);
    g.row.test_acc = summarize(g.test);
    g.row.final_test_acc = summarize(g.final_test);
    g.row.selected_epoch_mean = g.epochs / static_cast<double>(g.val.size());
    out.push_back(g.row);
  }
  std::stable_sort(out.begin(), out.end(), [](const ConfigSummary& a, const ConfigSummary& b) {
    if (a.val_acc.mean != b.val_acc.mean) return a.val_acc.mean > b.val_acc.mean;
    return a.test_acc.mean > b.test_acc.mean;
  });
  return out;
}

std::string format_table(const std::vector<ConfigSummary>& rows, TableFormat format) {
  std::string out;
  if (format == TableFormat::kCsv) {
    out = "rank,hidden,lr,weight_decay,dropout,seeds,val_acc_mean,val_acc_std,test_acc_mean,test_acc_std,"
          "test_acc_ci95_low,test_acc_ci95_high,selected_epoch_mean\n";
    for (std::size_t i = 0; i < rows.size(); ++i) {
      const ConfigSummary& r = rows[i];
      out += fmt::format("{},{},{},{},{},{},{:.6f},{:.6f},{:.6f},{:.6f},{:.6f},{:.6f},{:.2f}\n", i + 1,
                         r.config.hidden, r.config.lr, r.config.weight_decay, r.config.dropout, r.seeds.size(),
                         r.val_acc.mean, r.val_acc.std, r.test_acc.mean, r.test_acc.std, r.test_acc.ci95_low,
                         r.test_acc.ci95_high, r.selected_epoch_mean);
    }
    return out;
  }
  out = "| rank | hidden | lr | weight decay | dropout | seeds | val acc | test acc | test 95% CI | epoch |\n"
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const ConfigSummary& r = rows[i];
    out += fmt::format("| {} | {} | {} | {} | {} | {} | {:.4f} ± {:.4f} | {:.4f} ± {:.4f} | {:.4f} .. {:.4f} | {:.1f} |\n",
                       i + 1, r.config.hidden, r.config.lr, r.config.weight_decay, r.config.dropout, r.seeds.size(),
                       r.val_acc.mean, r.val_acc.std, r.test_acc.mean, r.test_acc.std, r.test_acc.ci95_low,
                       r.test_acc.ci95_high, r.selected_epoch_mean);
  }
  return out;
}

nlohmann::json to_json(const RunReport& r) {
  using nlohmann::json;
  const Dataset& d = *r.dataset;
  const TrainConfig& c = r.config;
  json runs = json::array();
  std::vector<double> test, val, final_test;
  for (std::size_t i = 0; i < r.results.size(); ++i) {
    const TrainResult& res = r.results[i];
    const TrainConfig& mc = i < r.model_configs.size() ? r.model_configs[i] : c;
    runs.push_back({{"seed", r.seeds[i]},
                    {"config",
                     {{"hidden", mc.hidden},
                      {"lr", json_number(mc.lr)},
                      {"weight_decay", json_number(mc.weight_decay)},
                      {"dropout", json_number(mc.dropout)},
                      {"seed", mc.seed}}},
                    {"final", epoch_json(res.final_stats())},
                    {"selected", epoch_json(res.selected())},
                    {"best_epoch", res.best_epoch},
                    {"stopped_early", res.stopped_early},
                    {"interrupted", res.interrupted},
                    {"timing", timing_json(res)},
                    {"history", history_json(res)}});
    test.push_back(res.selected().test_acc);
    val.push_back(res.selected().val_acc);
    final_test.push_back(res.final_stats().test_acc);
  }
  const TrainResult& first = r.results.front();
  json timing = timing_json(first);
  timing["load_s"] = r.load_s;
  timing["total_s"] = r.total_s;
  timing["train_total_s"] = r.train_total_s;
  timing["models_per_s"] = r.train_total_s > 0 ? static_cast<double>(r.results.size()) / r.train_total_s : 0.0;
  json configurations = json::array();
  for (const ConfigSummary& s : summarize_configurations(r)) {
    auto seed_json = [](const SeedSummary& v) {
      return json{{"mean", v.mean}, {"std", v.std}, {"ci95", {v.ci95_low, v.ci95_high}}};
    };
    configurations.push_back({{"hidden", s.config.hidden},
                              {"lr", json_number(s.config.lr)},
                              {"weight_decay", json_number(s.config.weight_decay)},
                              {"dropout", json_number(s.config.dropout)},
                              {"seeds", s.seeds},
                              {"val_acc", seed_json(s.val_acc)},
                              {"test_acc", seed_json(s.test_acc)},
                              {"final_test_acc", seed_json(s.final_test_acc)},
                              {"selected_epoch_mean", s.selected_epoch_mean}});
  }
  json batches = json::array();
  for (const BatchGroup& b : r.batches) {
    batches.push_back({{"hidden", b.hidden},
                       {"models", b.models},
                       {"batch", b.batch},
                       {"batches", b.batches},
                       {"planned_mb", static_cast<double>(b.planned_bytes) / (1024.0 * 1024.0)}});
  }
  auto floats = [](const std::vector<float>& v) {
    json a = json::array();
    for (float x : v) a.push_back(json_number(x));
    return a;
  };
  json out = json{
      {"dataset",
       {{"name", d.name},
        {"num_nodes", d.n_nodes},
        {"num_edges", d.n_edges()},
        {"num_features", d.n_features},
        {"num_classes", d.n_classes},
        {"num_train", d.count(kTrainBit)},
        {"num_val", d.count(kValBit)},
        {"num_test", d.count(kTestBit)}}},
      {"config",
       {{"dataset", r.dataset_arg},
        {"data_root", r.data_root},
        {"device", r.device_arg},
        {"epochs", c.epochs},
        {"lr", json_number(c.lr)},
        {"weight_decay", json_number(c.weight_decay)},
        {"hidden", c.hidden},
        {"dropout", json_number(c.dropout)},
        {"seed", r.seeds.front()},
        {"runs", r.results.size()},
        {"loss", loss_name(c.loss)},
        {"select", selection_name(c.select)},
        {"patience", c.patience},
        {"early_stopping", c.early_stopping},
        {"log_every", c.log_every},
        {"cuda_graph", c.cuda_graph},
        {"threads", r.threads},
        {"normalize_features", r.normalize_features},
        {"init", r.init_path},
        {"resume", r.resume_path},
        {"checkpoint", r.checkpoint_path},
        {"checkpoint_every", r.checkpoint_every},
        {"save", r.save_path},
        {"save_dir", r.save_dir},
        {"predictions", r.predictions_path},
        {"batch", r.batch_arg},
        {"configs", r.configs_arg},
        {"grid",
         {{"hidden", r.grid_hidden.empty() ? std::vector<int>{c.hidden} : r.grid_hidden},
          {"lr", r.grid_lr.empty() ? floats({c.lr}) : floats(r.grid_lr)},
          {"weight_decay", r.grid_weight_decay.empty() ? floats({c.weight_decay}) : floats(r.grid_weight_decay)},
          {"dropout", r.grid_dropout.empty() ? floats({c.dropout}) : floats(r.grid_dropout)}}}}},
      {"device", r.device},
      {"history", history_json(first)},
      {"final", epoch_json(first.final_stats())},
      {"selected", epoch_json(first.selected())},
      {"best_epoch", first.best_epoch},
      {"stopped_early", first.stopped_early},
      {"timing", timing},
      {"memory", {{"peak_host_mb", r.peak_host_mb}, {"peak_device_mb", r.peak_device_mb}}},
      {"interrupted", r.interrupted},
      {"runs", runs},
      {"configurations", configurations},
      {"batches", batches},
      {"summary",
       {{"runs", r.results.size()},
        {"select", selection_name(c.select)},
        {"test_acc", summary_json(test)},
        {"val_acc", summary_json(val)},
        {"final_test_acc", summary_json(final_test)}}},
  };
  out["config"].update(model_json(c));
  return out;
}

double peak_host_memory_mb() {
  struct rusage usage {};
  if (::getrusage(RUSAGE_SELF, &usage) != 0) return 0.0;
  return static_cast<double>(usage.ru_maxrss) / 1024.0;  // Linux reports KiB
}

}  // namespace gcn
