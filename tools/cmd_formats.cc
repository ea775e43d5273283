// vecpack formats: the format registry, with what each can do.
#include <cstdio>

#include "cli_common.h"

namespace vecpack::cli {

void add_formats(CLI::App& app, Globals&) {
  auto json = std::make_shared<bool>(false);
  auto* cmd = app.add_subcommand("formats", "List the formats convert reads and writes");
  cmd->add_flag("--json", *json, "JSON on stdout");
  cmd->callback([json] {
    nlohmann::json out = nlohmann::json::array();
    for (const FormatDescriptor* f : format_list()) {
      std::string extensions;
      for (const char* e : f->extensions) extensions += (extensions.empty() ? "" : " ") + std::string(e);
      out.push_back({{"name", f->name}, {"description", f->description}, {"extensions", f->extensions},
                     {"read", f->read != nullptr}, {"write", f->write != nullptr}, {"sniffed", f->sniff != nullptr}});
      if (*json) continue;
      std::printf("%-13s %-5s %-18s %s\n", f->name, f->write ? "rw" : "r", extensions.c_str(), f->description);
    }
    if (*json) print_json(out);
  });
}

}  // namespace vecpack::cli
