// vecpack add / delete / compact / vacuum: tables that change, one generation at a time.
#include <fstream>
#include <iostream>

#include "cli_common.h"

namespace vecpack::cli {
namespace {

// One key (or row id) per line of a file, blank lines skipped.
std::vector<std::string> lines_of(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw IoError(path, "cannot be opened");
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (!line.empty()) lines.push_back(line);
  }
  return lines;
}

std::vector<int64_t> row_ids(const std::vector<std::string>& texts) {
  std::vector<int64_t> ids;
  for (const std::string& text : texts) {
    size_t used = 0;
    long long id = -1;
    try {
      id = std::stoll(text, &used);
    } catch (const std::exception&) {
    }
    if (used != text.size() || id < 0) throw Error("'" + text + "' is not a row id");
    ids.push_back(id);
  }
  return ids;
}

void print_generation(const Globals& globals, const std::string& what, const Table& t) {
  if (globals.quiet) return;
  const TableInfo info = t.info();
  std::cerr << what << ": generation " << info.generation << ", " << t.size() - t.deleted_rows() << " rows";
  if (info.deleted_rows) std::cerr << " (+" << info.deleted_rows << " deleted)";
  std::cerr << "\n";
}

}  // namespace

void add_change_commands(CLI::App& app, Globals& globals) {
  {
    struct Options {
      std::string table;
      InputOptions input;
      bool replace = false;
      unsigned threads = 0;
    };
    auto o = std::make_shared<Options>();
    auto* cmd = app.add_subcommand("add", "Add rows to a table with its trained codec (no retraining)");
    cmd->add_option("table", o->table, "The table: a .vecpack file or a folder table")->required();
    add_input_options(cmd, o->input, "The new rows, in any readable format (with keys when the table has keys)");
    cmd->add_flag("--replace", o->replace, "A key the table holds already: replace its row (otherwise an error)");
    cmd->add_option("--threads", o->threads, "Encoding threads (0: one per core)");
    cmd->footer(
        "The new rows are encoded into a delta file beside the table, and a new generation is published\n"
        "atomically: readers keep the generation they opened. `vecpack compact` folds deltas back in.");
    cmd->callback([o, &globals] {
      TableWriter writer(o->table);
      auto progress = make_progress(globals);
      Table rows = read_input(o->input, progress.get());
      AddOptions options;
      options.replace = o->replace;
      options.threads = o->threads;
      options.progress = progress.get();
      const Table& t = writer.add(rows, options);
      print_generation(globals, "added " + std::to_string(rows.size()) + " rows", t);
    });
  }
  {
    struct Options {
      std::string table, from;
      std::vector<std::string> rows;
      bool ids = false;
    };
    auto o = std::make_shared<Options>();
    auto* cmd = app.add_subcommand("delete", "Delete rows by key (or by row id with --ids)");
    cmd->add_option("table", o->table, "The table: a .vecpack file or a folder table")->required();
    cmd->add_option("rows", o->rows, "Keys, or row ids with --ids");
    cmd->add_option("--from", o->from, "A file of keys (or row ids), one per line");
    cmd->add_flag("--ids", o->ids, "The rows are row ids");
    cmd->footer("Deleted rows are never returned by search or get; their ids stay until `vecpack compact`.");
    cmd->callback([o, &globals] {
      std::vector<std::string> rows = o->rows;
      if (!o->from.empty()) {
        const auto more = lines_of(o->from);
        rows.insert(rows.end(), more.begin(), more.end());
      }
      if (rows.empty()) throw Error("delete: name the rows to delete (arguments or --from FILE)");
      TableWriter writer(o->table);
      const Table& t = o->ids ? writer.remove_ids(row_ids(rows)) : writer.remove(rows);
      print_generation(globals, "deleted " + std::to_string(rows.size()) + " rows", t);
    });
  }
  {
    auto table = std::make_shared<std::string>();
    auto* cmd = app.add_subcommand("compact", "Rewrite a changed table's live rows as one file, atomically");
    cmd->add_option("table", *table, "The table: a .vecpack file or a folder table")->required();
    cmd->callback([table, &globals] {
      TableWriter writer(*table);
      const size_t before = writer.table().size();
      const Table& t = writer.compact();
      if (!globals.quiet) std::cerr << "compacted: " << before << " -> " << t.size() << " rows\n";
    });
  }
  {
    auto table = std::make_shared<std::string>();
    auto* cmd = app.add_subcommand("vacuum", "Remove files of a table's folder that its newest generation does not use");
    cmd->add_option("table", *table, "The table: a .vecpack file or a folder table")->required();
    cmd->callback([table, &globals] {
      TableWriter writer(*table);
      const size_t removed = writer.vacuum();
      if (!globals.quiet) std::cerr << "removed " << removed << " unused files\n";
    });
  }
}

}  // namespace vecpack::cli
