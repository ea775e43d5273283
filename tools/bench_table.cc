#include "bench_table.h"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "vecpack/errors.h"

namespace vecpack::cli {
namespace {

struct Column {
  const char* key;
  const char* title;
  bool timed;  // {median, min, max}
};

const Column kColumns[] = {
    {"bytes_per_vector", "bytes/vector", false},
    {"compression_ratio", "ratio", false},
    {"train_seconds", "train s", true},
    {"encode_vectors_per_second", "encode vectors/s", true},
    {"recall@1", "recall@1", false},
    {"recall@10", "recall@10", false},
    {"recall@100", "recall@100", false},
    {"mse", "MSE", false},
    {"queries_per_second", "queries/s", true},
    {"codes_per_second_per_core", "codes/s/core", true},
};

std::optional<double> figure(const nlohmann::json& row, const Column& c) {
  if (!row.contains(c.key) || row[c.key].is_null()) return std::nullopt;
  const auto& v = c.timed ? row[c.key]["median"] : row[c.key];
  if (!v.is_number()) return std::nullopt;
  return v.get<double>();
}

std::string number(std::optional<double> v, const Column& c) {
  if (!v) return "-";
  char buf[32];
  double x = *v;
  std::string key = c.key;
  if (key.rfind("recall", 0) == 0) std::snprintf(buf, sizeof(buf), "%.4f", x);
  else if (key == "mse") std::snprintf(buf, sizeof(buf), "%.3g", x);
  else if (key == "compression_ratio") std::snprintf(buf, sizeof(buf), "%.1fx", x);
  else if (key == "bytes_per_vector") std::snprintf(buf, sizeof(buf), "%.1f", x);
  else if (key == "train_seconds") std::snprintf(buf, sizeof(buf), "%.3f", x);
  else if (x >= 1e9) std::snprintf(buf, sizeof(buf), "%.2fG", x / 1e9);
  else if (x >= 1e6) std::snprintf(buf, sizeof(buf), "%.2fM", x / 1e6);
  else if (x >= 1e4) std::snprintf(buf, sizeof(buf), "%.1fk", x / 1e3);
  else std::snprintf(buf, sizeof(buf), "%.0f", x);
  return buf;
}

std::string markdown_row(const std::string& library, const std::string& spec, const std::vector<std::string>& cells) {
  std::string line = "| " + library + " | " + spec + " |";
  for (const auto& c : cells) line += " " + c + " |";
  return line + "\n";
}

std::vector<nlohmann::json> rows_of(const nlohmann::json& result, const std::string& library) {
  std::vector<nlohmann::json> out;
  for (const auto& r : result["results"])
    if (r.value("library", "") == library) out.push_back(r);
  return out;
}

void write_atomically(const std::string& path, const std::string& text) {
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << text;
    if (!out) throw IoError(tmp, "write");
  }
  std::filesystem::rename(tmp, path);
}

}  // namespace

const std::vector<Peer>& peers() {
  static const std::vector<Peer> list = {
      {"faiss", "FAISS", "--faiss", "faiss_driver.py", "FAISS index-factory strings separated by ';', paired in order with --codecs ('-' skips one)"},
      {"usearch", "USearch", "--usearch", "usearch_driver.py", "USearch exact-search dtypes (f32;f16;bf16;i8), paired in order with --codecs ('-' skips one)"},
      {"scann", "ScaNN", "--scann", "scann_driver.py", "ScaNN brute-force modes (bf;bf-int8;ahD[:t=T][+f32|int8|bf16@N], e.g. ah2 = 4-bit AH codes on 2-d blocks), paired in order with --codecs ('-' skips one)"},
  };
  return list;
}

std::string bench_markdown(const nlohmann::json& result) {
  std::string md = "vecpack bench: " + result.value("dataset", "") + " (" + std::to_string(result.value("rows", 0)) + " x " +
                   std::to_string(result.value("dim", 0)) + ", " + result.value("metric", "") + "), " +
                   std::to_string(result.value("queries", 0)) + " queries, k=" + std::to_string(result.value("k", 0)) + ", " +
                   std::to_string(result.value("threads", 0)) + " threads, kernels " + result.value("isa", "") +
                   "; medians of " + std::to_string(result.value("runs", 0)) + " runs\n";
  for (const Peer& peer : peers())
    if (result.contains("builds") && result["builds"].contains(peer.library))
      md += std::string(peer.title) + ": " + result["builds"][peer.library].get<std::string>() + "\n";
  md += "\n| library | spec |";
  for (const auto& c : kColumns) md += std::string(" ") + c.title + " |";
  md += "\n|---|---|";
  for (size_t i = 0; i < std::size(kColumns); ++i) md += "---:|";
  md += "\n";
  auto vp = rows_of(result, "vecpack");
  size_t longest = vp.size();
  for (const Peer& peer : peers()) longest = std::max(longest, rows_of(result, peer.library).size());
  for (size_t i = 0; i < longest; ++i) {
    std::vector<std::string> cells;
    if (i < vp.size()) {
      for (const auto& c : kColumns) cells.push_back(number(figure(vp[i], c), c));
      md += markdown_row("vecpack", "`" + vp[i].value("spec", "") + "`", cells);
    }
    for (const Peer& peer : peers()) {
      // The peer row paired with vecpack row i ("pair"), or the i-th one when rows carry no pair.
      auto other = rows_of(result, peer.library);
      const nlohmann::json* found = nullptr;
      for (size_t j = 0; j < other.size(); ++j)
        if (other[j].contains("pair") ? other[j]["pair"].get<size_t>() == i : j == i) found = &other[j];
      if (!found) continue;
      const auto& row = *found;
      if (row.contains("error") && !row["error"].is_null()) {
        md += std::string("| ") + peer.title + " | `" + row.value("spec", "") + "` | error: " + row["error"].get<std::string>() + " |\n";
        continue;
      }
      cells.clear();
      for (const auto& c : kColumns) cells.push_back(number(figure(row, c), c));
      md += markdown_row(peer.title, "`" + row.value("spec", "") + "`", cells);
      if (i >= vp.size()) continue;
      cells.clear();
      for (const auto& c : kColumns) {
        auto a = figure(vp[i], c), b = figure(row, c);
        char buf[32];
        if (a && b && *b != 0) std::snprintf(buf, sizeof(buf), "%.2f", *a / *b);
        cells.push_back(a && b && *b != 0 ? buf : "-");
      }
      md += markdown_row(std::string("vecpack/") + peer.title, "", cells);
    }
  }
  return md;
}

void write_bench_outputs(const nlohmann::json& result, const std::string& folder) {
  write_atomically(folder + "/bench.json", result.dump(2) + "\n");
  write_atomically(folder + "/bench.md", bench_markdown(result));
  std::string csv = "library,spec";
  for (const auto& c : kColumns) {
    csv += std::string(",") + c.key;
    if (c.timed) csv += std::string(",") + c.key + "_min," + c.key + "_max";
  }
  csv += ",file_bytes,error\n";
  for (const auto& r : result["results"]) {
    csv += r.value("library", "") + ",\"" + r.value("spec", "") + "\"";
    for (const auto& c : kColumns) {
      auto v = figure(r, c);
      csv += "," + (v ? std::to_string(*v) : std::string());
      if (c.timed) {
        for (const char* edge : {"min", "max"}) {
          bool have = r.contains(c.key) && r[c.key].is_object() && r[c.key][edge].is_number();
          csv += "," + (have ? std::to_string(r[c.key][edge].get<double>()) : std::string());
        }
      }
    }
    csv += "," + (r.contains("file_bytes") ? std::to_string(r["file_bytes"].get<uint64_t>()) : std::string());
    csv += ",\"" + (r.contains("error") && r["error"].is_string() ? r["error"].get<std::string>() : std::string()) + "\"\n";
  }
  write_atomically(folder + "/bench.csv", csv);
}

}  // namespace vecpack::cli
