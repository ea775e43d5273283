// Table::info_json: what `vecpack inspect --json` and the Python module's Table.info() report.
#include <cstdio>
#include <nlohmann/json.hpp>

#include "vecpack/table.h"

namespace vecpack {

std::string Table::info_json() const {
  const Table& t = *this;
  TableInfo info = t.info();
  nlohmann::json j;
  j["rows"] = info.rows;
  j["dim"] = info.dim;
  j["metric"] = metric_name(t.metric());
  j["codec"] = info.spec;
  j["code_size"] = info.rows ? info.code_bytes / info.rows : 0;
  j["keys"] = info.has_keys;
  j["counts"] = t.counts() != nullptr;  // row counts (FREQ)
  j["bytes"] = {{"file", info.file_bytes}, {"codes", info.code_bytes}, {"codec_parameters", info.parameter_bytes},
                {"keys", info.key_bytes}};
  if (info.partition_bytes) j["bytes"]["partition"] = info.partition_bytes;
  // Parameters count too (codecs with shared parameters store nearly everything there), and so
  // does a partition (its row ids are 8 bytes a row).
  const uint64_t stored = info.code_bytes + info.parameter_bytes + info.partition_bytes;
  j["bytes_per_vector"] = info.rows ? double(stored) / double(info.rows) : 0.0;
  j["compression_ratio"] = stored ? double(info.rows) * info.dim * 4 / double(stored) : 0.0;
  if (!info.rerank_spec.empty()) {
    j["rerank"] = {{"codec", info.rerank_spec}, {"bytes", info.rerank_bytes}};
    j["bytes"]["rerank"] = info.rerank_bytes;
  }
  if (const RecallCurve& curve = t.recall_curve(); !curve.empty())
    j["recall_curve"] = {{"k", curve.k},           {"rerank", curve.rerank},          {"queries", curve.queries},
                         {"points", curve.points}, {"measured_on", curve.measured_on}};
  if (t.has_subwords()) {
    const SubwordScheme& scheme = t.subword_scheme();
    j["subwords"] = {{"minn", scheme.minn},        {"maxn", scheme.maxn},
                     {"buckets", scheme.buckets},  {"pruned", scheme.is_pruned},
                     {"rows", info.subword_rows},  {"codec", info.subword_spec},
                     {"bytes", info.subword_bytes}};
    j["bytes"]["subwords"] = info.subword_bytes;
  }
  j["source"] = {{"format", t.meta().source_format}, {"path", t.meta().source_path}};
  j["tool_version"] = t.meta().tool_version;
  j["created"] = t.meta().created;
  nlohmann::json sections = nlohmann::json::array();
  for (const auto& s : info.sections) {
    char checksum[17];
    std::snprintf(checksum, sizeof(checksum), "%016llx", static_cast<unsigned long long>(s.checksum));
    sections.push_back({{"type", s.type}, {"offset", s.offset}, {"length", s.length}, {"xxh64", checksum}});
  }
  j["sections"] = sections;
  if (info.generation || info.deleted_rows || info.added_rows)
    j["changes"] = {{"generation", info.generation}, {"deleted_rows", info.deleted_rows}, {"added_rows", info.added_rows}};
  if (!info.shards.empty()) {
    nlohmann::json shards = nlohmann::json::array();
    for (const auto& s : info.shards)
      shards.push_back({{"file", s.file}, {"first_row", s.first_row}, {"rows", s.rows}, {"bytes", s.bytes}});
    j["shards"] = shards;
  }
  return j.dump();
}

}  // namespace vecpack
