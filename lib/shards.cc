// Sharded tables: a folder of .vecpack shards and a manifest.json written last. The shards are
// one table to search: their segments become one store (RowStore::concatenate), their vocabularies
// become parts of one KeyIndex, and the engine runs over the whole as over a single file.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>

#include "atomic_file.h"
#include "manifest.h"
#include "bytes.h"
#include "mapped_file.h"
#include "table_impl.h"
#include "vecpack/errors.h"

namespace vecpack {
namespace {

constexpr const char* kManifestFormat = "vecpack-shards";
constexpr uint64_t kMaxManifestBytes = 64u << 20;
constexpr const char* kChangesSuffix = ".changes";

// A shard's file name must stay inside the folder, except for a changes folder's base file.
void check_shard_name(const std::string& name, const std::string& folder, const std::string& where) {
  const std::string base = std::filesystem::path(folder).lexically_normal().filename().string();
  if (name.rfind("../", 0) == 0 && base.size() > std::string(kChangesSuffix).size() &&
      base.ends_with(kChangesSuffix) && name.substr(3) == base.substr(0, base.size() - std::string(kChangesSuffix).size()))
    return;
  if (name.empty() || name.find('/') != std::string::npos || name == "." || name == ".." || name == kManifestName)
    throw FormatError(where + ": shard file name '" + name + "' is not a plain file name in the folder");
}

}  // namespace

std::string changes_folder_of(const std::string& file) { return file + kChangesSuffix; }

std::string hex64(uint64_t value) {
  char text[17];
  std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(value));
  return text;
}

uint64_t fingerprint(const Codec& codec) {
  const std::vector<uint8_t> parameters = codec.serialize();
  return xxh64(parameters.data(), parameters.size());
}

uint64_t file_checksum(const std::string& path) {
  MappedFile file(path);
  return xxh64(file.data(), file.size());
}

namespace {

// A count in the manifest must be a JSON integer: get<uint64_t>() of a fraction, a negative
// number or 1e99 converts a double that does not fit (undefined behaviour) instead of failing.
uint64_t count_of(const nlohmann::json& value, const char* name) {
  if (!value.is_number_unsigned()) {
    throw std::domain_error(std::string("'") + name + "' must be a non-negative integer, not " + value.dump());
  }
  return value.get<uint64_t>();
}

}  // namespace

Manifest read_manifest(const std::string& folder) {
  const std::string path = (std::filesystem::path(folder) / kManifestName).string();
  std::error_code error;
  const auto size = std::filesystem::file_size(path, error);
  if (error)
    throw IoError(folder, std::string("is a folder without ") + kManifestName +
                              " (a sharded table is complete only once its manifest is written)");
  if (size > kMaxManifestBytes) throw FormatError(path + ": " + std::to_string(size) + " bytes, over the 64 MiB limit");
  std::ifstream in(path, std::ios::binary);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  Manifest m;
  try {
    const nlohmann::json j = nlohmann::json::parse(text);
    if (j.at("format").get<std::string>() != kManifestFormat) throw std::domain_error("format is not '" + std::string(kManifestFormat) + "'");
    const uint64_t version = count_of(j.at("version"), "version");
    if (version != 1 && version != 2) throw std::domain_error("version " + j.at("version").dump() + " is not supported");
    m.rows = count_of(j.at("rows"), "rows");
    m.dim = count_of(j.at("dim"), "dim");
    m.metric = parse_metric(j.at("metric").get<std::string>());
    m.keys = j.at("keys").get<bool>();
    m.spec = j.at("spec").get<std::string>();
    m.fingerprint = j.at("codec_fingerprint").get<std::string>();
    m.rerank_spec = j.value("rerank_spec", "");
    m.partition_fingerprint = j.value("partition_fingerprint", "");
    m.generation = j.contains("generation") ? count_of(j.at("generation"), "generation") : 0;
    if (j.contains("deleted")) {
      const auto& deleted = j.at("deleted");
      m.deleted = {deleted.at("file").get<std::string>(), deleted.at("xxh64").get<std::string>(),
                   count_of(deleted.at("count"), "deleted.count")};
      check_shard_name(m.deleted.file, folder, path);
      if (m.deleted.count > m.rows) throw std::domain_error("more deleted rows than rows");
    }
    uint64_t next_row = 0;
    for (const auto& s : j.at("shards")) {
      Manifest::Shard shard{s.at("file").get<std::string>(), s.value("xxh64", ""), count_of(s.at("rows"), "rows"),
                            count_of(s.at("first_row"), "first_row"), count_of(s.at("bytes"), "bytes")};
      if (s.contains("key_range")) {
        shard.low_key = s.at("key_range").at(0).get<std::string>();
        shard.high_key = s.at("key_range").at(1).get<std::string>();
      }
      check_shard_name(shard.file, folder, path);
      if (shard.first_row != next_row)
        throw std::domain_error("shard " + shard.file + " starts at row " + std::to_string(shard.first_row) + ", expected " +
                                std::to_string(next_row));
      next_row += shard.rows;
      m.shards.push_back(std::move(shard));
    }
    if (m.shards.empty()) throw std::domain_error("no shards");
    if (next_row != m.rows) throw std::domain_error("shards hold " + std::to_string(next_row) + " rows, not " + std::to_string(m.rows));
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    throw FormatError(path + ": " + e.what());
  }
  return m;
}

void write_manifest_file(const std::string& folder, const Manifest& m) {
  nlohmann::json shards = nlohmann::json::array();
  for (const Manifest::Shard& shard : m.shards) {
    nlohmann::json entry = {{"file", shard.file}, {"rows", shard.rows}, {"first_row", shard.first_row}, {"bytes", shard.bytes}};
    if (!shard.checksum.empty()) entry["xxh64"] = shard.checksum;
    if (m.keys && shard.rows && !(shard.low_key.empty() && shard.high_key.empty())) entry["key_range"] = {shard.low_key, shard.high_key};
    shards.push_back(std::move(entry));
  }
  const bool changed = m.generation > 0 || !m.deleted.file.empty();
  nlohmann::json j = {{"format", kManifestFormat},
                      {"version", changed ? 2 : 1},
                      {"rows", m.rows},
                      {"dim", m.dim},
                      {"metric", metric_name(m.metric)},
                      {"keys", m.keys},
                      {"spec", m.spec},
                      {"codec_fingerprint", m.fingerprint},
                      {"shards", std::move(shards)}};
  if (!m.rerank_spec.empty()) j["rerank_spec"] = m.rerank_spec;
  if (!m.partition_fingerprint.empty()) j["partition_fingerprint"] = m.partition_fingerprint;
  if (changed) j["generation"] = m.generation;
  if (!m.deleted.file.empty()) j["deleted"] = {{"file", m.deleted.file}, {"count", m.deleted.count}, {"xxh64", m.deleted.checksum}};
  const std::string text = j.dump(1) + "\n";
  AtomicFile out((std::filesystem::path(folder) / kManifestName).string());
  out.write(text.data(), text.size());
  out.commit();
}

Table Table::slice(size_t begin, size_t count) const {
  if (!impl_) throw Error("the table is empty");
  const Impl& impl = *impl_;
  auto out = std::make_shared<Impl>();
  out->store = impl.store->slice(begin, count);
  // A slice of an ivf table keeps the partition (its rows in their lists), so slices are shards.
  out->partition = impl.partition;
  out->recall_curve = impl.recall_curve;
  if (impl.rerank) out->rerank = impl.rerank->slice(begin, count);
  if (const uint64_t* counts = impl.row_counts()) {
    out->counts = counts + begin;
    out->counts_owner = impl.row_counts_owner();
  }
  if (has_keys()) {
    std::vector<std::string> keys(count);
    for (size_t i = 0; i < count; ++i) keys[i] = std::string(key(begin + i));
    auto bytes = std::make_shared<std::vector<uint8_t>>(build_vocabulary(keys));
    out->keys.add(KeyIndex::Part{VocabularyView(bytes->data(), bytes->size(), count, "keys"), 0, bytes, bytes->data(), bytes->size()});
  }
  if (impl.row_tables) {
    out->row_tables = impl.row_tables + begin;
    out->row_tables_owner = impl.row_tables_owner;
  }
  std::vector<int64_t> deleted;
  for (int64_t id : impl.deleted)
    if (id >= static_cast<int64_t>(begin) && id < static_cast<int64_t>(begin + count)) deleted.push_back(id - static_cast<int64_t>(begin));
  out->set_deleted(std::move(deleted));
  TableMeta meta = meta_;
  return Table(std::move(out), std::move(meta));
}

void write_manifest(const std::string& folder, const std::vector<std::string>& shard_files) {
  if (shard_files.empty()) throw Error("write_manifest: no shard files given for " + folder);
  Manifest manifest;
  uint64_t rows = 0;
  std::optional<Table> first;
  std::string first_name;
  uint64_t first_fingerprint = 0;
  for (const std::string& name : shard_files) {
    check_shard_name(name, folder, folder);
    const std::string path = (std::filesystem::path(folder) / name).string();
    Table shard = Table::open(path);
    const TableInfo info = shard.info();
    const uint64_t codec_fingerprint = fingerprint(shard.codec());
    if (shard.has_subwords()) throw Error(name + ": a sharded table cannot carry a subword pool");
    if (shard.codec().capabilities() & kSharedParameters)
      throw Error(name + ": codec '" + shard.codec().spec() +
                  "' places rows by their position in one table; such a table cannot be split into shards");
    if (!first) {
      first = shard;
      first_name = name;
      first_fingerprint = codec_fingerprint;
    } else {
      auto differs = [&](const std::string& what, const std::string& mine, const std::string& theirs) {
        throw Error(name + ": " + what + " " + mine + " differs from " + first_name + "'s (" + theirs +
                    "); every shard must hold rows of one table, encoded by one trained codec");
      };
      if (shard.dim() != first->dim()) differs("dimension", std::to_string(shard.dim()), std::to_string(first->dim()));
      if (shard.metric() != first->metric()) differs("metric", metric_name(shard.metric()), metric_name(first->metric()));
      if (shard.has_keys() != first->has_keys())
        differs("keys", shard.has_keys() ? "present" : "absent", first->has_keys() ? "present" : "absent");
      if (codec_fingerprint != first_fingerprint)
        differs("codec", "'" + shard.spec() + "' (fingerprint " + hex64(codec_fingerprint) + ")",
                "'" + first->spec() + "', fingerprint " + hex64(first_fingerprint));
      const auto& partition = shard.impl_->partition;
      const auto& first_partition = first->impl_->partition;
      if (!partition != !first_partition)
        differs("ivf partition", partition ? "'" + partition->spec() + "'" : "(none)",
                first_partition ? "'" + first_partition->spec() + "'" : "none");
      if (partition && partition_fingerprint(*partition) != partition_fingerprint(*first_partition))
        differs("ivf partition", "'" + partition->spec() + "' (fingerprint " + hex64(partition_fingerprint(*partition)) + ")",
                "'" + first_partition->spec() + "', fingerprint " + hex64(partition_fingerprint(*first_partition)) +
                    "; train the partition once and compress every shard with it");
      // Rerank codes are decoded shard by shard, so each shard may train its own (e.g. int8 ranges).
      if (info.rerank_spec != first->info().rerank_spec)
        differs("rerank codec", "'" + info.rerank_spec + "'", "'" + first->info().rerank_spec + "'");
    }
    Manifest::Shard entry{name, hex64(file_checksum(path)), shard.size(), rows, info.file_bytes};
    if (shard.has_keys() && shard.size()) {
      std::string_view low = shard.key(0), high = low;
      for (size_t i = 1; i < shard.size(); ++i) {
        const std::string_view k = shard.key(i);
        low = std::min(low, k);
        high = std::max(high, k);
      }
      entry.low_key = low;
      entry.high_key = high;
    }
    manifest.shards.push_back(std::move(entry));
    rows += shard.size();
  }
  manifest.rows = rows;
  manifest.dim = first->dim();
  manifest.metric = first->metric();
  manifest.keys = first->has_keys();
  manifest.spec = first->spec();
  manifest.fingerprint = hex64(first_fingerprint);
  manifest.rerank_spec = first->info().rerank_spec;
  if (const auto& partition = first->impl_->partition) manifest.partition_fingerprint = hex64(partition_fingerprint(*partition));
  write_manifest_file(folder, manifest);
}

Table Table::open_shards(const std::string& folder) {
  // A writer may replace the manifest and remove the files of the generation it replaced while
  // this reader opens them: then the newer generation is opened instead.
  for (int attempt = 0;; ++attempt) {
    const Manifest manifest = read_manifest(folder);
    try {
      return open_generation(folder, manifest);
    } catch (const Error&) {
      if (attempt >= 8 || read_manifest(folder).generation == manifest.generation) throw;
    }
  }
}

Table Table::open_generation(const std::string& folder, const Manifest& manifest) {
  std::vector<std::shared_ptr<const RowStore>> stores, reranks;
  auto impl = std::make_shared<Impl>();
  impl->shard_counts = std::make_shared<ShardCounts>();
  TableMeta meta;
  for (const Manifest::Shard& entry : manifest.shards) {
    const std::string path = (std::filesystem::path(folder) / entry.file).string();
    Table shard = Table::open_file(path);
    const Impl& part = *shard.impl_;
    auto mismatch = [&](const std::string& what) {
      throw FormatError(path + ": " + what + " disagrees with " + folder + "/" + kManifestName);
    };
    if (shard.size() != entry.rows) mismatch("row count " + std::to_string(shard.size()));
    if (shard.dim() != manifest.dim) mismatch("dimension " + std::to_string(shard.dim()));
    if (shard.has_keys() != manifest.keys) mismatch(shard.has_keys() ? "having keys" : "having no keys");
    if (hex64(fingerprint(shard.codec())) != manifest.fingerprint)
      mismatch("codec '" + shard.spec() + "' (fingerprint " + hex64(fingerprint(shard.codec())) + ")");
    if ((part.rerank ? part.rerank->codec().spec() : std::string()) != manifest.rerank_spec) mismatch("rerank section");
    if (part.subwords) mismatch("subword pool");
    const std::string shard_partition = part.partition ? hex64(partition_fingerprint(*part.partition)) : "";
    if (shard_partition != manifest.partition_fingerprint)
      mismatch(part.partition ? "ivf partition (fingerprint " + shard_partition + ")" : "having no ivf partition");
    if (part.partition && !impl->partition) {
      impl->partition = part.partition;
      impl->recall_curve = part.recall_curve;
    }
    stores.push_back(part.store);
    if (part.rerank) reranks.push_back(part.rerank);
    for (const KeyIndex::Part& keys : part.keys.parts()) {
      KeyIndex::Part moved = keys;
      moved.first_row += entry.first_row;
      impl->keys.add(std::move(moved));
    }
    impl->shards.push_back({entry.file, entry.first_row, entry.rows, shard.info().file_bytes});
    impl->shard_counts->shards.push_back(shard);
    // Shards are written from one table: the first says where its rows came from.
    if (meta.source_format.empty()) {
      meta.source_format = shard.meta().source_format;
      meta.source_path = shard.meta().source_path;
      meta.rows_by_frequency = shard.meta().rows_by_frequency;
    }
    impl->file_bytes += shard.info().file_bytes;
  }
  impl->store = RowStore::concatenate(stores);
  if (!reranks.empty()) impl->rerank = RowStore::concatenate(reranks);
  impl->generation = manifest.generation;
  for (const Manifest::Shard& entry : manifest.shards)
    if (entry.file.rfind(kDeltaPrefix, 0) == 0) impl->added_rows += entry.rows;
  if (!manifest.deleted.file.empty()) impl->set_deleted(read_deleted(folder, manifest));
  meta.metric = manifest.metric;
  return Table(std::move(impl), std::move(meta));
}

VerifyReport Table::verify_shards(const std::string& folder) {
  VerifyReport report;
  Manifest manifest;
  try {
    manifest = read_manifest(folder);
  } catch (const Error& e) {
    report.problems.push_back(e.what());
    return report;
  }
  for (const Manifest::Shard& entry : manifest.shards) {
    const std::string path = (std::filesystem::path(folder) / entry.file).string();
    try {
      const uint64_t bytes = std::filesystem::file_size(path);
      if (bytes != entry.bytes)
        report.problems.push_back(entry.file + ": " + std::to_string(bytes) + " bytes, the manifest says " + std::to_string(entry.bytes));
      else if (!entry.checksum.empty() && hex64(file_checksum(path)) != entry.checksum)
        report.problems.push_back(entry.file + ": xxh64 checksum differs from the manifest's " + entry.checksum);
      // Problems name their shard; the shards' section checks are not listed (they would not).
      for (const auto& problem : verify_file(path).problems) report.problems.push_back(entry.file + ": " + problem);
    } catch (const std::exception& e) {
      report.problems.push_back(entry.file + ": " + e.what());
    }
  }
  if (report.ok()) try {
      open_shards(folder);
    } catch (const Error& e) {
      report.problems.push_back(e.what());
    }
  return report;
}

}  // namespace vecpack
