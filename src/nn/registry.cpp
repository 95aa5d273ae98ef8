// The list of model types and what is derived from it: lookup by name, the
// union of their hyperparameter flags, the registry as JSON.
#include "gcn/nn/registry.hpp"

#include <algorithm>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "gcn/error.hpp"
#include "gcn/suggest.hpp"

namespace gcn {

// Each model type's file (src/nn/layers/) defines one of these.
const ModelType& gcn_model_type();
const ModelType& sage_model_type();
const ModelType& gat_model_type();
const ModelType& cheb_model_type();
const ModelType& sgc_model_type();
const ModelType& appnp_model_type();
const ModelType& arma_model_type();

const std::vector<const ModelType*>& model_types() {
  static const std::vector<const ModelType*> types = {
      &gcn_model_type(),
      &sage_model_type(),
      &gat_model_type(),
      &cheb_model_type(),
      &sgc_model_type(),
      &appnp_model_type(),
      &arma_model_type(),
  };
  return types;
}

const ModelType& find_model_type(const std::string& name) {
  std::vector<std::string> names;
  for (const ModelType* t : model_types()) {
    if (name == t->name()) return *t;
    names.emplace_back(t->name());
  }
  std::string list;
  for (std::size_t i = 0; i < names.size(); ++i) {
    list += (i == 0 ? "" : i + 1 == names.size() ? " or " : ", ") + names[i];
  }
  throw UsageError(fmt::format("--model: '{}' is not a model{}; use {}", name, did_you_mean(name, names), list));
}

std::string HyperParam::key() const {
  std::string k = name;
  std::replace(k.begin(), k.end(), '-', '_');
  return k;
}

bool ModelType::elu() const { return std::string(activation()) == "ELU"; }

int32_t ModelType::width_multiplier(const ModelShape&, int) const { return 1; }

void ModelType::validate(const ModelShape&) const {}

HyperValues ModelType::default_hyper() const {
  HyperValues v;
  for (const HyperParam& p : hyper_params()) v[p.name] = p.default_value;
  return v;
}

std::optional<HyperParam> ModelType::find_hyper(const std::string& name) const {
  for (const HyperParam& p : hyper_params()) {
    if (p.name == name) return p;
  }
  return std::nullopt;
}

std::vector<HyperFlag> hyper_flags() {
  std::vector<HyperFlag> flags;
  for (const ModelType* t : model_types()) {
    for (const HyperParam& p : t->hyper_params()) {
      auto it = std::find_if(flags.begin(), flags.end(), [&](const HyperFlag& f) { return f.param.name == p.name; });
      if (it == flags.end()) {
        flags.push_back({p, {t}});
        continue;
      }
      // One flag for several models: each model's own help where they differ.
      if (it->models.size() == 1 && it->param.help != p.help) {
        it->param.help = fmt::format("{}: {}", it->models.front()->name(), it->param.help);
      }
      if (it->param.help.find(p.help) == std::string::npos) it->param.help += fmt::format("; {}: {}", t->name(), p.help);
      it->models.push_back(t);
    }
  }
  return flags;
}

namespace {

// A float as its shortest decimal (0.01, not 0.009999999776482582).
double number(float v) { return std::stod(fmt::format("{}", v)); }

nlohmann::json recipe_json(const Recipe& r) {
  nlohmann::json hyper = nlohmann::json::object();
  for (const auto& [name, value] : r.hyper) hyper[name] = value;
  return {{"epochs", r.epochs},
          {"layers", r.layers},
          {"hidden", r.hidden},
          {"lr", number(r.lr)},
          {"weight_decay", number(r.weight_decay)},
          {"dropout", number(r.dropout)},
          {"input_dropout", number(r.input_dropout)},
          {"hyper", hyper},
          {"early_stopping", r.early_stopping},
          {"script", r.script},
          {"unsupported", r.unsupported}};
}

}  // namespace

std::string registry_json() {
  nlohmann::json models = nlohmann::json::array();
  for (const ModelType* t : model_types()) {
    nlohmann::json hyper = nlohmann::json::array();
    for (const HyperParam& p : t->hyper_params()) {
      hyper.push_back({{"name", p.name},
                       {"key", p.key()},
                       {"kind", p.kind == HyperParam::Kind::kInt ? "int" : p.kind == HyperParam::Kind::kBool ? "bool" : "float"},
                       {"default", p.default_value},
                       {"min", p.min},
                       {"max", p.max},
                       {"max_exclusive", p.max_exclusive},
                       {"architecture", p.architecture},
                       {"help", p.help}});
    }
    nlohmann::json citation = nlohmann::json::object();
    for (const char* dataset : {"cora", "citeseer", "pubmed"}) {
      if (const std::optional<Recipe> r = t->citation(dataset)) citation[dataset] = recipe_json(*r);
    }
    models.push_back({{"name", t->name()},
                      {"pyg_class", t->pyg_class()},
                      {"summary", t->summary()},
                      {"activation", t->activation()},
                      {"uses_edge_weights", t->uses_edge_weights()},
                      {"hyper", hyper},
                      {"defaults", recipe_json(t->defaults())},
                      {"citation", citation}});
  }
  return nlohmann::json{{"models", models}}.dump(2) + "\n";
}

}  // namespace gcn
