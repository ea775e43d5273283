// vecpack verify FILE: every checksum and structure; exit 4 when anything is damaged.
#include <cstdio>
#include <iostream>

#include "cli_common.h"

namespace vecpack::cli {

void add_verify(CLI::App& app, Globals& globals) {
  auto files = std::make_shared<std::vector<std::string>>();
  auto* cmd = app.add_subcommand("verify", "Check every checksum and structure of .vecpack files");
  cmd->add_option("files", *files, ".vecpack files")->required();
  cmd->callback([files, &globals] {
    bool all_ok = true;
    for (const auto& file : *files) {
      VerifyReport report = Table::verify(file);
      if (!globals.quiet)
        for (const auto& c : report.checks)
          std::printf("%s: %s %-4s offset %llu, %llu bytes\n", file.c_str(), c.ok ? "ok     " : "DAMAGED", c.section.type.c_str(),
                      static_cast<unsigned long long>(c.section.offset), static_cast<unsigned long long>(c.section.length));
      for (const auto& p : report.problems) std::fprintf(stderr, "vecpack: error: %s\n", p.c_str());
      if (report.ok() && !globals.quiet) std::printf("%s: ok\n", file.c_str());
      all_ok = all_ok && report.ok();
    }
    if (!all_ok) throw Exit{kBadFormat};
  });
}

}  // namespace vecpack::cli
