// vecpack codecs: the registry, with every codec's parameters.
#include <cstdio>

#include "cli_common.h"

namespace vecpack::cli {

static nlohmann::json capabilities_json(uint32_t caps) { return capability_names(caps); }

void add_codecs(CLI::App& app, Globals&) {
  auto json = std::make_shared<bool>(false);
  auto* cmd = app.add_subcommand("codecs", "List the codecs and their parameters");
  cmd->add_flag("--json", *json, "JSON on stdout");
  cmd->callback([json] {
    nlohmann::json out = nlohmann::json::array();
    for (const CodecDescriptor* d : codec_list()) {
      nlohmann::json params = nlohmann::json::array();
      for (const auto& p : d->params)
        params.push_back({{"name", p.name}, {"default", p.default_value}, {"min", p.min}, {"max", p.max},
                          {"choices", p.choices ? p.choices : ""}, {"help", p.help}});
      out.push_back({{"name", d->name}, {"kind", d->kind == StageKind::quantizer ? "quantizer" : "transform"},
                     {"description", d->description}, {"capabilities", capabilities_json(d->capabilities)},
                     {"params", params}});
      if (*json) continue;
      std::printf("%-10s %-9s %s\n", d->name, d->kind == StageKind::quantizer ? "quantizer" : "transform", d->description);
      for (const auto& p : d->params)
        std::printf("%-20s %s=%s  %s\n", "", p.name, p.default_value, p.help);
    }
    if (*json) print_json(out);
  });
}

}  // namespace vecpack::cli
