// vecpack get FILE KEY...: decoded rows by key (or by row number with --row).
#include <iostream>

#include "cli_common.h"

namespace vecpack::cli {

void add_get(CLI::App& app, Globals&) {
  struct Options {
    std::string file;
    std::vector<std::string> keys;
    bool rows = false, json = false;
  };
  auto o = std::make_shared<Options>();
  auto* cmd = app.add_subcommand("get", "Print the vectors of keys (GloVe text format, or JSON)");
  cmd->add_option("file", o->file, ".vecpack file")->required();
  cmd->add_option("keys", o->keys, "Keys (or row numbers with --row)")->required();
  cmd->add_flag("--row", o->rows, "Arguments are row numbers");
  cmd->add_flag("--json", o->json, "One JSON object {key: vector}");
  cmd->callback([o] {
    Table t = Table::open(o->file);
    nlohmann::json j = nlohmann::json::object();
    std::string text;
    for (const auto& key : o->keys) {
      std::vector<float> v;
      if (o->rows) {
        size_t row = 0;
        try {
          row = std::stoull(key);
        } catch (const std::exception&) {
          throw Error("'" + key + "' is not a row number");
        }
        if (row >= t.size()) throw NotFoundError("row " + key + " is out of range (" + std::to_string(t.size()) + " rows)");
        v = t.row(row);
      } else {
        v = t.get(key);
      }
      if (o->json) {
        j[key] = v;
        continue;
      }
      text += key;
      for (float x : v) text += " " + float_text(x);
      text += "\n";
    }
    if (o->json) print_json(j);
    else std::cout << text;
  });
}

}  // namespace vecpack::cli
