// vecpack convert IN OUT: between any two formats (the .vecpack side stores f32 rows).
#include <iostream>

#include "cli_common.h"

namespace vecpack::cli {

void add_convert(CLI::App& app, Globals& globals) {
  struct Options {
    std::string input, output, from, to, metric;
    size_t limit = 0;
    bool allow_nan = false;
  };
  auto o = std::make_shared<Options>();
  auto* cmd = app.add_subcommand("convert", "Convert a table between formats (word2vec, glove, hdf5, vecpack)");
  cmd->add_option("input", o->input, "Input file")->required();
  cmd->add_option("output", o->output, "Output file")->required();
  cmd->add_option("--from", o->from, "Input format (default: from content or extension)");
  cmd->add_option("--to", o->to, "Output format (default: from extension)");
  cmd->add_option("--limit", o->limit, "Read at most N rows");
  cmd->add_option("--metric", o->metric, "Metric stored with the table: ip, cos or l2");
  cmd->add_flag("--allow-nan", o->allow_nan, "Accept NaN and infinite values");
  cmd->callback([o, &globals] {
    auto progress = make_progress(globals);
    ReadOptions read;
    read.limit = o->limit;
    read.allow_nan = o->allow_nan;
    read.progress = progress.get();
    Table t = load_table(o->input, o->from, read);
    if (!o->metric.empty()) t.set_metric(parse_metric(o->metric));
    WriteOptions write;
    write.progress = progress.get();
    write_table(t, o->output, o->to, write);
    if (!globals.quiet)
      std::cerr << "wrote " << o->output << ": " << t.size() << " rows x " << t.dim() << (t.has_keys() ? ", keyed" : "") << "\n";
  });
}

}  // namespace vecpack::cli
