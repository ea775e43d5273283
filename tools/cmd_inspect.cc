// vecpack inspect FILE: what a .vecpack file holds, section by section.
#include <cstdio>
#include <iostream>

#include "cli_common.h"

namespace vecpack::cli {

void add_inspect(CLI::App& app, Globals&) {
  struct Options {
    std::string file;
    bool json = false;
  };
  auto o = std::make_shared<Options>();
  auto* cmd = app.add_subcommand("inspect", "Show a .vecpack file's (or sharded table's) codec, sizes and sections");
  cmd->add_option("file", o->file, ".vecpack file, or the folder of a sharded table")->required();
  cmd->add_flag("--json", o->json, "One JSON object on stdout");
  cmd->callback([o] {
    Table t = Table::open(o->file);
    nlohmann::json j = nlohmann::json::parse(t.info_json());
    if (o->json) return print_json(j);
    std::printf("%s\n", o->file.c_str());
    std::printf("  rows        %zu\n  dim         %zu\n  metric      %s\n  codec       %s (%llu bytes per row%s)\n", t.size(),
                t.dim(), metric_name(t.metric()), t.spec().c_str(), static_cast<unsigned long long>(j["code_size"].get<uint64_t>()),
                t.codec().capabilities() & kSharedParameters ? ", the rest in parameters shared by the rows" : "");
    std::printf("  keys        %s\n", t.has_keys() ? "yes" : "no");
    if (t.counts()) std::printf("  counts      yes (how often each row occurs, FREQ)\n");
    std::printf("  file        %s, %.2f bytes per vector, %.1fx smaller than f32\n",
                human_bytes(j["bytes"]["file"].get<uint64_t>()).c_str(), j["bytes_per_vector"].get<double>(),
                j["compression_ratio"].get<double>());
    if (j.contains("rerank"))
      std::printf("  rerank      %s, %s\n", j["rerank"]["codec"].get<std::string>().c_str(),
                  human_bytes(j["rerank"]["bytes"].get<uint64_t>()).c_str());
    if (j.contains("recall_curve")) {
      const auto& curve = j["recall_curve"];
      std::string points;
      for (const auto& point : curve["points"])
        points += (points.empty() ? "" : ", ") + std::to_string(point[0].get<size_t>()) + ": " +
                  std::to_string(point[1].get<double>()).substr(0, 5);
      std::printf("  recall@%zu    by nprobe (%zu %s%s): %s\n", curve["k"].get<size_t>(), curve["queries"].get<size_t>(),
                  curve["measured_on"] == "queries" ? "tuning queries" : "held-out rows",
                  curve["rerank"].get<size_t>() ? (", rerank " + std::to_string(curve["rerank"].get<size_t>())).c_str() : "",
                  points.c_str());
    }
    if (t.has_subwords()) {
      const auto& sw = j["subwords"];
      std::printf("  subwords    %llu n-gram rows (%u..%u characters, %llu buckets%s), %s, %s\n",
                  static_cast<unsigned long long>(sw["rows"].get<uint64_t>()), sw["minn"].get<unsigned>(),
                  sw["maxn"].get<unsigned>(), static_cast<unsigned long long>(sw["buckets"].get<uint64_t>()),
                  sw["pruned"].get<bool>() ? ", pruned" : "", sw["codec"].get<std::string>().c_str(),
                  human_bytes(sw["bytes"].get<uint64_t>()).c_str());
    }
    if (!t.meta().source_format.empty())
      std::printf("  source      %s (%s)\n", t.meta().source_path.c_str(), t.meta().source_format.c_str());
    if (j.contains("changes")) {
      const auto& c = j["changes"];
      const size_t deleted = c["deleted_rows"].get<size_t>(), added = c["added_rows"].get<size_t>();
      std::printf("  changes     generation %llu: %zu rows added, %zu deleted since the last compaction\n",
                  static_cast<unsigned long long>(c["generation"].get<uint64_t>()), added, deleted);
      // Deleted rows are still scanned and delta shards are scanned as more segments: past a
      // share of the table, one compaction pays for itself.
      if (deleted + added > t.size() / 5)
        std::printf("  suggestion  compact: %zu of %zu rows are deleted or in deltas (vecpack compact %s)\n",
                    deleted + added, t.size(), o->file.c_str());
    }
    if (j.contains("shards")) {
      std::printf("  shards      %zu\n", j["shards"].size());
      for (const auto& s : j["shards"])
        std::printf("    %s  rows %12llu..%-12llu  %12s\n", s["file"].get<std::string>().c_str(),
                    static_cast<unsigned long long>(s["first_row"].get<uint64_t>()),
                    static_cast<unsigned long long>(s["first_row"].get<uint64_t>() + s["rows"].get<uint64_t>()),
                    human_bytes(s["bytes"].get<uint64_t>()).c_str());
      return;
    }
    std::printf("  written by  %s, %s\n", t.meta().tool_version.c_str(), t.meta().created.c_str());
    std::printf("  sections\n");
    for (const auto& s : j["sections"])
      std::printf("    %s  offset %12llu  %12s  xxh64 %s\n", s["type"].get<std::string>().c_str(),
                  static_cast<unsigned long long>(s["offset"].get<uint64_t>()),
                  human_bytes(s["length"].get<uint64_t>()).c_str(), s["xxh64"].get<std::string>().c_str());
  });
}

}  // namespace vecpack::cli
