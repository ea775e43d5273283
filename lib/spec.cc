// Spec strings: parsing, validation against the registry, and helpful errors.
#include <algorithm>
#include <charconv>
#include <cmath>

#include "vecpack/errors.h"
#include "vecpack/registry.h"

namespace vecpack {

void CodecArgs::set(std::string name, std::string value) {
  for (auto& [k, v] : items_)
    if (k == name) {
      v = std::move(value);
      return;
    }
  items_.emplace_back(std::move(name), std::move(value));
}

bool CodecArgs::has(std::string_view name) const {
  for (const auto& item : items_)
    if (item.first == name) return true;
  return false;
}

const std::string& CodecArgs::text(std::string_view name) const {
  for (const auto& item : items_)
    if (item.first == name) return item.second;
  throw SpecError("codec argument '" + std::string(name) + "' is not set");
}

int64_t CodecArgs::integer(std::string_view name) const { return std::stoll(text(name)); }
double CodecArgs::real(std::string_view name) const { return std::stod(text(name)); }
bool CodecArgs::flag(std::string_view name) const {
  const auto& v = text(name);
  return v == "on" || v == "true" || v == "1" || v == "yes";
}

const CodecDescriptor* find_codec(std::string_view name) {
  for (const CodecDescriptor* d : codec_list())
    if (name == d->name) return d;
  return nullptr;
}

std::vector<std::string> capability_names(uint32_t caps) {
  static const std::pair<uint32_t, const char*> names[] = {
      {kExactDecode, "exact_decode"},     {kAsymmetricSearch, "asymmetric_search"}, {kSymmetricSearch, "symmetric_search"},
      {kNeedsTraining, "needs_training"}, {kPerVectorCodes, "per_vector_codes"},     {kTransform, "transform"},
      {kSharedParameters, "shared_parameters"}, {kExperimental, "experimental"}, {kRowTables, "row_tables"},
      {kNeedsKeys, "needs_keys"},         {kPrefixDecodable, "prefix_decodable"},   {kFloatRows, "float_rows"}};
  std::vector<std::string> out;
  for (const auto& [bit, name] : names)
    if (caps & bit) out.push_back(name);
  return out;
}

static size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j)
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

static std::string nearest_codec(std::string_view name) {
  const CodecDescriptor* best = nullptr;
  size_t best_distance = SIZE_MAX;
  for (const CodecDescriptor* d : codec_list()) {
    size_t dist = edit_distance(name, d->name);
    if (dist < best_distance) best_distance = dist, best = d;
  }
  return best ? best->name : "";
}

static std::string trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return std::string(s);
}

std::vector<StageSpec> parse_spec(std::string_view spec) {
  auto fail = [&](size_t stage, const std::string& message) -> void {
    throw SpecError("codec spec '" + std::string(spec) + "': stage " + std::to_string(stage) + ": " + message);
  };
  if (trim(spec).empty()) throw SpecError("codec spec is empty (try 'vecpack codecs' for the list)");
  std::vector<StageSpec> stages;
  size_t start = 0, index = 1;
  while (start <= spec.size()) {
    size_t slash = spec.find('/', start);
    std::string_view part = spec.substr(start, slash == std::string_view::npos ? std::string_view::npos : slash - start);
    StageSpec stage;
    size_t colon = part.find(':');
    stage.name = trim(part.substr(0, colon));
    if (stage.name.empty()) fail(index, "missing codec name");
    if (colon != std::string_view::npos) {
      std::string_view args = part.substr(colon + 1);
      size_t a = 0;
      while (a <= args.size()) {
        size_t comma = args.find(',', a);
        std::string_view arg = args.substr(a, comma == std::string_view::npos ? std::string_view::npos : comma - a);
        size_t eq = arg.find('=');
        std::string key = eq == std::string_view::npos ? "" : trim(arg.substr(0, eq));
        std::string value = trim(eq == std::string_view::npos ? arg : arg.substr(eq + 1));
        if (value.empty()) fail(index, "'" + stage.name + "' has an empty argument");
        if (eq != std::string_view::npos && key.empty()) fail(index, "'" + stage.name + "' has an argument without a name");
        stage.args.emplace_back(std::move(key), std::move(value));
        if (comma == std::string_view::npos) break;
        a = comma + 1;
      }
    }
    stages.push_back(std::move(stage));
    if (slash == std::string_view::npos) break;
    start = slash + 1;
    ++index;
  }
  return stages;
}

static std::string param_names(const CodecDescriptor& d) {
  if (d.params.empty()) return d.name + std::string(" takes no arguments");
  std::string s = d.name + std::string(" takes: ");
  for (size_t i = 0; i < d.params.size(); ++i) s += (i ? ", " : "") + std::string(d.params[i].name);
  return s;
}

static std::string format_bound(double v) {
  if (v == std::floor(v) && std::fabs(v) < 1e15) return std::to_string(static_cast<long long>(v));
  return std::to_string(v);
}

std::unique_ptr<Stage> create_stage(const StageSpec& stage, size_t index, std::string_view whole_spec) {
  const CodecDescriptor* d = find_codec(stage.name);
  if (!d) {
    std::string near = nearest_codec(stage.name);
    throw SpecError("codec spec '" + std::string(whole_spec) + "': stage " + std::to_string(index) + " '" + stage.name +
                    "' is not a codec" + (near.empty() ? "" : "; did you mean '" + near + "'?") +
                    " ('vecpack codecs' lists them)");
  }
  return d->create(validate_args(*d, stage, index, whole_spec));
}

CodecArgs validate_args(const CodecDescriptor& descriptor, const StageSpec& stage, size_t index, std::string_view whole_spec) {
  auto fail = [&](const std::string& message) -> void {
    throw SpecError("codec spec '" + std::string(whole_spec) + "': stage " + std::to_string(index) + " '" + stage.name +
                    "': " + message);
  };
  const CodecDescriptor* d = &descriptor;
  CodecArgs args;
  size_t positional = 0;
  for (const auto& [given_key, value] : stage.args) {
    const ParamSpec* p = nullptr;
    if (given_key.empty()) {
      if (positional >= d->params.size()) fail("too many arguments (" + param_names(*d) + ")");
      p = &d->params[positional++];
    } else {
      for (const auto& candidate : d->params)
        if (given_key == candidate.name) p = &candidate;
      if (!p) fail("unknown argument '" + given_key + "' (" + param_names(*d) + ")");
    }
    if (args.has(p->name)) fail("argument '" + std::string(p->name) + "' given twice");
    switch (p->type) {
      case ParamType::integer:
      case ParamType::real: {
        double v = 0;
        const char* b = value.data();
        const char* e = b + value.size();
        bool ok;
        if (p->type == ParamType::integer) {
          long long iv = 0;
          auto r = std::from_chars(b, e, iv);
          ok = r.ec == std::errc() && r.ptr == e;
          v = static_cast<double>(iv);
        } else {
          auto r = std::from_chars(b, e, v);
          ok = r.ec == std::errc() && r.ptr == e && std::isfinite(v);
        }
        if (!ok) fail(std::string(p->name) + "=" + value + " is not " + (p->type == ParamType::integer ? "an integer" : "a number"));
        if (v < p->min || v > p->max)
          fail(std::string(p->name) + "=" + value + " is out of range (" + format_bound(p->min) + ".." + format_bound(p->max) + ")");
        break;
      }
      case ParamType::choice: {
        std::string_view choices = p->choices ? p->choices : "";
        bool found = false;
        size_t s = 0;
        while (s <= choices.size()) {
          size_t bar = choices.find('|', s);
          if (choices.substr(s, bar == std::string_view::npos ? std::string_view::npos : bar - s) == value) found = true;
          if (bar == std::string_view::npos) break;
          s = bar + 1;
        }
        if (!found) fail(std::string(p->name) + "=" + value + " is not one of " + std::string(choices));
        break;
      }
      case ParamType::flag:
        if (value != "on" && value != "off" && value != "true" && value != "false" && value != "1" && value != "0" &&
            value != "yes" && value != "no")
          fail(std::string(p->name) + "=" + value + " is not on or off");
        break;
    }
    args.set(p->name, value);
  }
  for (const auto& p : d->params)
    if (!args.has(p.name)) args.set(p.name, p.default_value ? p.default_value : "");
  return args;
}

}  // namespace vecpack
