// vecpack convert IN OUT: between any two formats (the .vecpack side stores f32 rows).
#include <iostream>

#include "cli_common.h"

namespace vecpack::cli {

void add_convert(CLI::App& app, Globals& globals) {
  struct Options {
    InputOptions input;
    std::string output, to;
  };
  auto o = std::make_shared<Options>();
  auto* cmd = app.add_subcommand("convert", "Convert a table between formats (vecpack formats lists them)");
  add_input_options(cmd, o->input, "Input file");
  cmd->add_option("output", o->output, "Output file")->required();
  cmd->add_option("--to", o->to, "Output format (default: from extension)");
  cmd->callback([o, &globals] {
    auto progress = make_progress(globals);
    Table t = read_input(o->input, progress.get());
    WriteOptions write;
    write.progress = progress.get();
    write_table(t, o->output, o->to, write);
    if (!globals.quiet)
      std::cerr << "wrote " << o->output << ": " << t.size() << " rows x " << t.dim() << (t.has_keys() ? ", keyed" : "") << "\n";
  });
}

}  // namespace vecpack::cli
