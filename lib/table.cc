#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <numeric>
#include <random>
#include <stdexcept>

#include "bytes.h"
#include "container.h"
#include "parallel.h"
#include "search.h"
#include "subwords.h"
#include "manifest.h"
#include "table_impl.h"
#include "vecpack/errors.h"

#ifndef VECPACK_VERSION
#define VECPACK_VERSION "0.0.0"
#endif

namespace vecpack {

static constexpr uint64_t kMaxMetaBytes = 16u << 20;
static constexpr uint64_t kMaxRows = uint64_t(1) << 40;
static constexpr StoreSections kSubwordSections{"SUBC", "SUBW"};
static constexpr StoreSections kRerankSections{"RRKC", "RRNK"};
static constexpr StoreSections kListSections{"CODC", "LIST"};
static constexpr const char* kSubwordHashName = "fasttext";

size_t first_non_finite(const float* values, size_t count) {
  // A branch-free scan of the exponent bits (vectorizable) first; the position only when needed.
  uint32_t any = 0;
  for (size_t i = 0; i < count; ++i) {
    uint32_t bits;
    std::memcpy(&bits, values + i, sizeof(bits));
    any |= static_cast<uint32_t>((bits & 0x7f800000u) == 0x7f800000u);
  }
  if (!any) return count;
  for (size_t i = 0; i < count; ++i)
    if (!std::isfinite(values[i])) return i;
  return count;
}

Table::Table() = default;
Table::~Table() = default;
Table::Table(const Table&) = default;
Table& Table::operator=(const Table&) = default;
Table::Table(Table&&) noexcept = default;
Table& Table::operator=(Table&&) noexcept = default;
Table::Table(std::shared_ptr<const Impl> impl, TableMeta meta) : impl_(std::move(impl)), meta_(std::move(meta)) {}

static std::string now_iso8601() {
  std::time_t t = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

static void attach_vocabulary(Table::Impl& impl, std::shared_ptr<const void> owner, const uint8_t* data, uint64_t size,
                              size_t rows, const std::string& where) {
  impl.keys = KeyIndex();
  impl.keys.add(KeyIndex::Part{VocabularyView(data, size, rows, where), 0, std::move(owner), data, size});
}

Table Table::from_rows(std::vector<float> rows, size_t dim, std::vector<std::string> keys, Metric metric) {
  if (dim == 0 || dim > kMaxDimension)
    throw Error("a table's dimension must be 1.." + std::to_string(kMaxDimension) + ", not " + std::to_string(dim));
  if (rows.size() % dim != 0)
    throw Error("row data has " + std::to_string(rows.size()) + " values, not a multiple of the dimension " + std::to_string(dim));
  const size_t n = rows.size() / dim;
  if (!keys.empty() && keys.size() != n)
    throw Error("table has " + std::to_string(n) + " rows but " + std::to_string(keys.size()) + " keys");
  auto codec = std::make_shared<Codec>("f32");
  codec->train(nullptr, 0, dim);
  auto data = std::make_shared<std::vector<float>>(std::move(rows));
  auto impl = std::make_shared<Impl>();
  impl->store = std::make_shared<RowStore>(codec, reinterpret_cast<const uint8_t*>(data->data()), n, data);
  if (!keys.empty()) {
    auto bytes = std::make_shared<std::vector<uint8_t>>(build_vocabulary(keys));
    VocabularyView check(bytes->data(), bytes->size(), n, "keys");
    for (size_t i = 0; i < n; ++i) {
      auto found = check.find(keys[i]);
      if (found && *found != i)
        throw Error("duplicate key '" + keys[i] + "' at rows " + std::to_string(*found) + " and " + std::to_string(i));
    }
    attach_vocabulary(*impl, bytes, bytes->data(), bytes->size(), n, "keys");
  }
  TableMeta meta;
  meta.metric = metric;
  return Table(std::move(impl), std::move(meta));
}

Table Table::open(const std::string& path) {
  std::error_code error;
  if (std::filesystem::is_directory(path, error)) return open_shards(path);
  // A file that has changed: its newest generation is described in the folder beside it.
  const std::string changes = changes_folder_of(path);
  if (std::filesystem::exists(std::filesystem::path(changes) / kManifestName, error)) return open_shards(changes);
  return open_file(path);
}

Table Table::open_file(const std::string& path) {
  ContainerReader file(path);
  ByteSpan meta_bytes = file.section("META", /*verify=*/false);
  if (meta_bytes.size > kMaxMetaBytes)
    throw FormatError(path + ": section META is " + std::to_string(meta_bytes.size) + " bytes, over the 16 MiB limit", "META",
                      file.find("META")->offset);
  file.section("META", /*verify=*/true);
  auto meta_fail = [&](const std::string& message) {
    throw FormatError(path + ": section META: " + message, "META", file.find("META")->offset);
  };
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(meta_bytes.data, meta_bytes.data + meta_bytes.size);
  } catch (const nlohmann::json::exception& e) {
    meta_fail(std::string("not valid JSON: ") + e.what());
  }
  uint64_t n = 0, d = 0;
  TableMeta meta;
  bool has_keys = false;
  std::optional<SubwordScheme> scheme;
  uint64_t subword_rows_count = 0;
  bool has_rerank = false;
  bool has_partition = false;
  RecallCurve recall_curve;
  // Counts must be JSON integers: get<uint64_t>() of a fraction, a negative number or 1e99 would
  // convert a double that does not fit (undefined behaviour) instead of failing.
  auto count_field = [](const nlohmann::json& object, const char* name, uint64_t max) -> uint64_t {
    const nlohmann::json& value = object.at(name);
    if (!value.is_number_unsigned() || value.get<uint64_t>() > max)
      throw std::domain_error("'" + std::string(name) + "' must be an integer 0.." + std::to_string(max) + ", not " +
                              value.dump());
    return value.get<uint64_t>();
  };
  try {
    n = count_field(j, "n", UINT64_MAX);
    d = count_field(j, "d", UINT64_MAX);
    meta.metric = parse_metric(j.at("metric").get<std::string>());
    has_keys = j.value("keys", false);
    if (j.contains("source")) {
      meta.source_format = j["source"].value("format", "");
      meta.source_path = j["source"].value("path", "");
      meta.rows_by_frequency = j["source"].value("rows_by_frequency", false);
    }
    meta.tool_version = j.value("tool", "");
    meta.created = j.value("created", "");
    if (j.contains("subwords")) {
      const auto& sw = j.at("subwords");
      if (sw.at("scheme").get<std::string>() != kSubwordHashName)
        meta_fail("unknown subword scheme '" + sw.at("scheme").get<std::string>() + "'");
      scheme.emplace();
      scheme->minn = static_cast<uint32_t>(count_field(sw, "minn", UINT32_MAX));
      scheme->maxn = static_cast<uint32_t>(count_field(sw, "maxn", UINT32_MAX));
      scheme->buckets = count_field(sw, "buckets", UINT64_MAX);
      scheme->is_pruned = sw.at("pruned").get<bool>();
      subword_rows_count = count_field(sw, "rows", UINT64_MAX);
    }
    has_rerank = j.contains("rerank");
    has_partition = j.contains("partition");
    if (has_partition && j.at("partition").contains("recall")) {
      const auto& r = j.at("partition").at("recall");
      const uint64_t lists = count_field(j.at("partition"), "lists", UINT64_MAX);
      recall_curve.k = count_field(r, "k", 1u << 20);
      recall_curve.rerank = count_field(r, "rerank", 1u << 20);
      recall_curve.queries = count_field(r, "queries", UINT64_MAX);
      recall_curve.measured_on = r.value("measured_on", "rows");
      if (recall_curve.measured_on != "rows" && recall_curve.measured_on != "queries")
        throw std::domain_error("partition.recall.measured_on '" + recall_curve.measured_on + "' is neither 'rows' nor 'queries'");
      for (const auto& point : r.at("points")) {
        if (!point.at(0).is_number_unsigned()) throw std::domain_error("partition.recall: an nprobe is not an integer");
        const uint64_t nprobe = point.at(0).get<uint64_t>();
        const double recall = point.at(1).get<double>();
        if (nprobe == 0 || nprobe > lists || !(recall >= 0 && recall <= 1) ||
            (!recall_curve.points.empty() && nprobe <= recall_curve.points.back().first))
          throw std::domain_error("partition.recall: point (" + std::to_string(nprobe) + ", " + std::to_string(recall) +
                    ") is not an nprobe of 1.." + std::to_string(lists) + " in increasing order with a recall in [0, 1]");
        recall_curve.points.emplace_back(nprobe, recall);
      }
    }
  } catch (const std::exception& e) {
    meta_fail(std::string("missing or invalid field: ") + e.what());
  }
  if (n > kMaxRows) meta_fail("row count " + std::to_string(n) + " is implausible");
  if (subword_rows_count > kMaxRows) meta_fail("subword row count " + std::to_string(subword_rows_count) + " is implausible");
  auto impl = std::make_shared<Impl>();
  if (has_keys) {
    ByteSpan vocab = file.section("VOCB", /*verify=*/false);
    attach_vocabulary(*impl, file.mapping(), vocab.data, vocab.size, n, path + ": section VOCB");
  }
  const KeyLookup keys = key_lookup(impl->keys);
  if (has_partition) {
    // Codes list by list (LIST), the row id of each stored code (IVFI), the partition (IVFC).
    auto stored = RowStore::open(file, n, d, kListSections, keys);
    const SectionInfo* ids = file.find("IVFI");
    if (!ids) throw FormatError(path + ": META names a partition but section IVFI is missing", "IVFI", 0);
    if (ids->length != checked_mul(n, 8, "IVFI"))
      throw FormatError(path + ": section IVFI has " + std::to_string(ids->length) + " bytes, " + std::to_string(n) +
                            " row ids need " + std::to_string(n * 8),
                        "IVFI", ids->offset);
    ByteSpan lists = file.section("IVFC", /*verify=*/true);
    OpenedPartition opened = open_partition(
        lists.data, lists.size, meta.metric, n, d, stored->contiguous_codes(), stored->codec().code_size(),
        reinterpret_cast<const int64_t*>(file.section("IVFI", /*verify=*/false).data), file.mapping(), file.mapping(),
        path + ": section IVFC");
    impl->partition = std::move(opened.partition);
    impl->recall_curve = std::move(recall_curve);
    impl->store = stored->regrouped(std::move(opened.lists));
  } else {
    impl->store = RowStore::open(file, n, d, {}, keys);
  }
  if (has_rerank) impl->rerank = RowStore::open(file, n, d, kRerankSections, keys);
  // An optional section of one value of `width` bytes per row, used in place; null when absent.
  auto per_row = [&](const char* type, uint64_t width, const char* what) -> const uint8_t* {
    const SectionInfo* section = file.find(type);
    if (!section) return nullptr;
    if (section->length != checked_mul(n, width, type))
      throw FormatError(path + ": section " + type + " has " + std::to_string(section->length) + " bytes, " +
                            std::to_string(n) + " " + what + " need " + std::to_string(n * width),
                        type, section->offset);
    return file.section(type, /*verify=*/false).data;
  };
  if (const uint8_t* tables = per_row("RTBL", 4, "row tables")) {
    impl->row_tables = reinterpret_cast<const uint32_t*>(tables);
    impl->row_tables_owner = file.mapping();
  }
  if (const uint8_t* counts = per_row("FREQ", 8, "row counts")) {
    impl->counts = reinterpret_cast<const uint64_t*>(counts);
    impl->counts_owner = file.mapping();
  }
  if (scheme) {
    if (scheme->is_pruned) {
      ByteSpan map = file.section("SUBM", /*verify=*/true);
      scheme->pruned = parse_pruned_buckets(map.data, map.size, path + ": section SUBM", file.find("SUBM")->offset);
    }
    auto pool_impl = std::make_shared<Impl>();
    pool_impl->store = RowStore::open(file, subword_rows_count, d, kSubwordSections);
    try {
      check_subword_scheme(*scheme, subword_rows_count);
    } catch (const Error& e) {
      meta_fail(e.what());
    }
    TableMeta pool_meta;
    pool_meta.metric = meta.metric;
    impl->subwords = std::make_shared<SubwordPool>(SubwordPool{std::move(*scheme), Table(std::move(pool_impl), pool_meta)});
  }
  impl->sections = file.sections();
  impl->file_bytes = file.file_size();
  return Table(std::move(impl), std::move(meta));
}

VerifyReport Table::verify(const std::string& path) {
  std::error_code error;
  if (std::filesystem::is_directory(path, error)) return verify_shards(path);
  const std::string changes = changes_folder_of(path);
  if (std::filesystem::exists(std::filesystem::path(changes) / kManifestName, error)) return verify_shards(changes);
  return verify_file(path);
}

VerifyReport Table::verify_file(const std::string& path) {
  VerifyReport report = ContainerReader::verify(path);
  if (!report.ok()) return report;
  try {
    Table t = open_file(path);
    // Structural checks beyond checksums: every key offset is inside the blob.
    if (t.has_keys())
      for (size_t i = 0; i < t.size(); ++i) t.impl_->keys.key(i);
  } catch (const Error& e) {
    report.problems.push_back(e.what());
  }
  return report;
}

size_t Table::size() const { return impl_ ? impl_->store->rows() : 0; }
size_t Table::dim() const { return impl_ ? impl_->store->dim() : 0; }
void Table::set_source(std::string format, std::string path, bool rows_by_frequency) {
  meta_.source_format = std::move(format);
  meta_.source_path = std::move(path);
  meta_.rows_by_frequency = rows_by_frequency;
}

static const Table::Impl& require(const std::shared_ptr<const Table::Impl>& impl) {
  if (!impl) throw Error("the table is empty");
  return *impl;
}

std::string Table::spec() const {
  if (!impl_) return "";
  return impl_->partition ? impl_->partition->spec() + "/" + impl_->store->codec().spec() : impl_->store->codec().spec();
}
const Codec& Table::codec() const { return require(impl_).store->codec(); }

TableInfo Table::info() const {
  TableInfo info;
  if (!impl_) return info;
  info.rows = size();
  info.dim = dim();
  info.spec = spec();
  info.has_keys = has_keys();
  info.code_bytes = impl_->store->code_bytes();
  info.parameter_bytes = impl_->store->parameter_bytes();
  if (const auto& partition = impl_->partition)
    info.partition_bytes = 24 + partition->centroids().size() * sizeof(float) + 8 * (partition->lists() + 1) + 8 * size();
  info.key_bytes = impl_->keys.bytes();
  info.file_bytes = impl_->file_bytes;
  info.sections = impl_->sections;
  info.shards = impl_->shards;
  info.generation = impl_->generation;
  info.deleted_rows = impl_->deleted.size();
  info.added_rows = impl_->added_rows;
  if (impl_->rerank) {
    info.rerank_spec = impl_->rerank->codec().spec();
    info.rerank_bytes = impl_->rerank->code_bytes() + impl_->rerank->parameter_bytes();
  }
  if (const auto& sw = impl_->subwords) {
    const RowStore& pool = *sw->pool.impl_->store;
    info.subword_rows = pool.rows();
    info.subword_spec = pool.codec().spec();
    info.subword_bytes = pool.code_bytes() + pool.parameter_bytes() + (sw->scheme.is_pruned ? 8 + 8 * sw->scheme.pruned.size() : 0);
  }
  return info;
}

bool Table::has_keys() const { return impl_ && !impl_->keys.empty(); }

std::optional<size_t> Table::find(std::string_view key) const {
  if (!has_keys()) return std::nullopt;
  auto row = impl_->keys.find(key, impl_->live);
  if (!row) return std::nullopt;
  return static_cast<size_t>(*row);
}

std::string_view Table::key(size_t row) const {
  if (!has_keys()) throw NotFoundError("the table has no keys");
  return impl_->keys.key(row);
}

std::vector<float> Table::get(std::string_view key) const {
  if (auto row_index = find(key)) return row(*row_index);
  if (!has_subwords()) {
    // Codecs that derive rows from keys (subword n-grams) answer keys the table lacks.
    if (impl_)
      if (auto derived = impl_->store->codec().vector_for_key(key)) return std::move(*derived);
    throw NotFoundError("key '" + std::string(key) + "' is not in the table");
  }
  // As fastText: the mean of the n-gram rows, repeats counted; zeros when there are none.
  const SubwordPool& sw = *impl_->subwords;
  const size_t d = dim();
  std::vector<float> sum(d, 0.0f), ngram(d);
  // fastText gives its end-of-sentence token no n-grams.
  std::vector<uint64_t> rows = key == "</s>" ? std::vector<uint64_t>{} : subword_rows(sw.scheme, key);
  for (uint64_t r : rows) {
    sw.pool.reconstruct(r, 1, ngram.data());
    for (size_t i = 0; i < d; ++i) sum[i] += ngram[i];
  }
  if (!rows.empty()) {
    const float scale = 1.0f / static_cast<float>(rows.size());
    for (float& v : sum) v *= scale;
  }
  return sum;
}

bool Table::has_subwords() const { return impl_ && impl_->subwords; }

const SubwordScheme& Table::subword_scheme() const {
  if (!has_subwords()) throw Error("the table has no subwords");
  return impl_->subwords->scheme;
}

Table Table::subword_pool() const {
  if (!has_subwords()) throw Error("the table has no subwords");
  return impl_->subwords->pool;
}

Table Table::with_subwords(SubwordScheme scheme, Table pool) const {
  const auto& impl = require(impl_);
  if (pool.dim() != dim())
    throw Error("subwords: the pool has dimension " + std::to_string(pool.dim()) + ", the table " + std::to_string(dim()));
  check_subword_scheme(scheme, pool.size());
  auto pool_impl = std::make_shared<Impl>();
  pool_impl->store = require(pool.impl_).store;  // keys of the pool are not kept
  auto out = std::make_shared<Impl>(impl);
  out->subwords = std::make_shared<SubwordPool>(SubwordPool{std::move(scheme), Table(std::move(pool_impl), pool.meta_)});
  out->sections.clear();
  out->file_bytes = 0;
  return Table(std::move(out), meta_);
}

std::vector<float> Table::row(size_t index) const {
  std::vector<float> out(dim());
  reconstruct(index, 1, out.data());
  return out;
}

void Table::reconstruct(size_t begin, size_t count, float* out) const {
  const Impl& impl = require(impl_);
  impl.store->reconstruct(begin, count, out);
  // Residual codes decode to the row minus its list's centroid.
  if (impl.partition && impl.partition->residual()) {
    const size_t d = dim();
    for (size_t i = 0; i < count; ++i) {
      const size_t segment = impl.store->locate(static_cast<int64_t>(begin + i)).segment_index;
      const float* c = impl.partition->centroid(list_of_segment(segment, impl.partition->lists()));
      for (size_t j = 0; j < d; ++j) out[i * d + j] += c[j];
    }
  }
}

const uint64_t* Table::counts() const { return impl_ ? impl_->row_counts() : nullptr; }

const uint32_t* Table::row_tables() const { return impl_ ? impl_->row_tables : nullptr; }

RowFilter Table::rows_in_table(uint32_t table) const {
  const uint32_t* tables = row_tables();
  if (!tables)
    throw Error("the table has no row tables (compress with row tables: CompressOptions::row_tables, --row-tables)");
  std::vector<int64_t> ids;
  for (size_t i = 0; i < size(); ++i)
    if (tables[i] == table) ids.push_back(static_cast<int64_t>(i));
  return RowFilter::allow(ids.data(), ids.size(), size());
}

Table Table::with_counts(std::vector<uint64_t> counts) const {
  const auto& impl = require(impl_);
  if (counts.size() != size())
    throw Error("with_counts: " + std::to_string(counts.size()) + " counts for a table of " + std::to_string(size()) + " rows");
  auto owned = std::make_shared<std::vector<uint64_t>>(std::move(counts));
  auto out = std::make_shared<Impl>(impl);
  out->counts = owned->data();
  out->counts_owner = owned;
  out->sections.clear();
  out->file_bytes = 0;
  return Table(std::move(out), meta_);
}

Table Table::with_recall_curve(RecallCurve curve) const {
  const auto& impl = require(impl_);
  if (!impl.partition) throw Error("with_recall_curve: a recall curve belongs to an ivf table, and this table has no partition");
  if (curve.k == 0 || curve.points.empty()) throw Error("with_recall_curve: the curve needs k >= 1 and at least one point");
  if (curve.measured_on != "rows" && curve.measured_on != "queries")
    throw Error("with_recall_curve: measured_on is 'rows' or 'queries', not '" + curve.measured_on + "'");
  size_t last = 0;
  for (const auto& [nprobe, recall] : curve.points) {
    if (nprobe <= last || nprobe > impl.partition->lists() || !(recall >= 0 && recall <= 1))
      throw Error("with_recall_curve: point (" + std::to_string(nprobe) + ", " + std::to_string(recall) +
                  ") is out of order or out of range (nprobe rises within 1.." + std::to_string(impl.partition->lists()) +
                  ", recall within 0..1)");
    last = nprobe;
  }
  auto out = std::make_shared<Impl>(impl);
  out->recall_curve = std::move(curve);
  out->sections.clear();
  out->file_bytes = 0;
  return Table(std::move(out), meta_);
}

const uint8_t* Table::codes() const {
  return impl_ ? impl_->store->contiguous_codes() : nullptr;
}

const float* Table::float_rows() const {
  if (!impl_) return nullptr;
  const uint32_t caps = impl_->store->codec().capabilities();
  if (!(caps & kFloatRows) || (caps & kTransform)) return nullptr;
  return reinterpret_cast<const float*>(impl_->store->contiguous_codes());
}

const RecallCurve& Table::recall_curve() const {
  static const RecallCurve none;
  return impl_ ? impl_->recall_curve : none;
}

namespace {

// The search options a recall target stands for: the fewest lists whose measured recall reaches
// it (every list when none does), and the curve's rerank depth when the search names none.
SearchOptions options_for_recall(const SearchOptions& asked, const Table::Impl& impl) {
  if (asked.recall == 0) return asked;
  if (!(asked.recall > 0 && asked.recall <= 1))
    throw Error("search: recall " + std::to_string(asked.recall) + " is not a target in (0, 1]");
  if (!impl.partition)
    throw Error("search: a recall target picks the lists an ivf table scans, and this table has no ivf partition "
                "(it scans every row: its recall is the codec's)");
  if (asked.nprobe) throw Error("search: give a recall target or nprobe, not both");
  const RecallCurve& curve = impl.recall_curve;
  if (curve.empty())
    throw Error("search: this ivf table holds no recall curve (it was written before vecpack measured one); give nprobe, "
                "or compress it again");
  SearchOptions options = asked;
  options.nprobe = impl.partition->lists();
  for (const auto& [nprobe, recall] : curve.points)
    if (recall >= asked.recall) {
      options.nprobe = nprobe;
      break;
    }
  if (options.rerank == 0 && impl.rerank) options.rerank = curve.rerank;
  return options;
}

// Recall@10 against nprobe of `built` (an ivf table compressed from `source`), on held-out rows:
// up to 500 rows of the source as queries, each one's own row dropped from its exact and its
// ivf neighbours. nprobe doubles from 1 to every list.
RecallCurve measure_recall_curve(const Table& source, const Table& built, size_t lists, bool reranks, uint64_t seed,
                                 unsigned threads, Progress* progress) {
  RecallCurve curve;
  const size_t n = source.size(), d = source.dim();
  if (n < 20 || lists == 0) return curve;
  size_t steps = 2;  // the exact neighbours, then each nprobe
  for (size_t nprobe = 1; nprobe < lists; nprobe *= 2) ++steps;
  if (progress) progress->begin("recall by nprobe", steps);
  size_t done = 0;
  curve.k = 10;
  curve.rerank = reranks ? 100 : 0;
  curve.queries = std::clamp<size_t>(n / 20, 1, 500);
  std::vector<size_t> picked(n);
  std::iota(picked.begin(), picked.end(), size_t(0));
  std::mt19937_64 rng(seed ^ 0x5bd1e995u);
  for (size_t i = 0; i < curve.queries; ++i) std::swap(picked[i], picked[i + rng() % (n - i)]);
  std::vector<float> queries(curve.queries * d);
  for (size_t i = 0; i < curve.queries; ++i) source.reconstruct(picked[i], 1, queries.data() + i * d);
  // The k nearest other rows of each query.
  auto others = [&](const SearchResult& r, size_t q) {
    std::vector<int64_t> ids;
    for (size_t i = 0; i < r.k && ids.size() < curve.k; ++i)
      if (r.ids_of(q)[i] >= 0 && r.ids_of(q)[i] != static_cast<int64_t>(picked[q])) ids.push_back(r.ids_of(q)[i]);
    return ids;
  };
  SearchOptions exact;
  exact.k = curve.k + 1;
  exact.threads = threads;
  const SearchResult truth = source.search(queries.data(), curve.queries, exact);
  if (progress) progress->advance(++done);
  std::vector<std::vector<int64_t>> want(curve.queries);
  for (size_t q = 0; q < curve.queries; ++q) {
    want[q] = others(truth, q);
    std::sort(want[q].begin(), want[q].end());
  }
  for (size_t nprobe = 1;; nprobe = std::min(lists, nprobe * 2)) {
    SearchOptions options = exact;
    options.nprobe = nprobe;
    options.rerank = curve.rerank;
    const SearchResult found = built.search(queries.data(), curve.queries, options);
    size_t hits = 0, total = 0;
    for (size_t q = 0; q < curve.queries; ++q) {
      for (int64_t id : others(found, q)) hits += std::binary_search(want[q].begin(), want[q].end(), id);
      total += want[q].size();
    }
    curve.points.emplace_back(nprobe, total ? double(hits) / double(total) : 1.0);
    if (progress) progress->advance(++done);
    if (nprobe == lists) break;
  }
  if (progress) progress->end();
  return curve;
}

}  // namespace

SearchResult Table::search(const float* queries, size_t nq, const SearchOptions& asked, std::optional<Metric> metric) const {
  const auto& impl = require(impl_);
  const size_t d = dim();
  for (size_t q = 0; q < nq; ++q)
    if (first_non_finite(queries + q * d, d) != d) throw Error("query " + std::to_string(q) + " contains NaN or infinity");
  SearchOptions options = options_for_recall(asked, impl);
  if (options.filter.active() && options.filter.rows() != size())
    throw Error("search: the filter covers " + std::to_string(options.filter.rows()) + " rows, the table has " +
                std::to_string(size()));
  options.filter = options.filter.intersect(impl.live);
  return search_store(*impl.store, queries, nq, metric.value_or(meta_.metric), options, impl.rerank.get(),
                      impl.partition.get());
}

// Trains `spec` on a seeded sample of the table's rows and encodes every row with it.
static double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Every row of `table` encoded with a trained codec, in parallel blocks.
// With a partition, each row goes to its list (minus the list's centroid, with residuals).
static std::shared_ptr<const RowStore> encode_rows(const Table& table, std::shared_ptr<const Codec> codec,
                                                   const CompressOptions& options, CompressReport* report,
                                                   const Partition* partition = nullptr) {
  const size_t n = table.size(), d = table.dim();
  auto encode_start = std::chrono::steady_clock::now();
  const size_t cs = codec->code_size();
  auto codes = std::make_shared<std::vector<uint8_t>>(checked_mul(n, cs, "codes"));
  const size_t block = 4096;
  std::atomic<size_t> done{0};
  std::vector<uint32_t> lists(partition ? n : 0);
  if (options.progress) options.progress->begin("encoding", n);
  parallel_for((n + block - 1) / block, options.threads, [&](size_t b, unsigned worker) {
    size_t begin = b * block, count = std::min(block, n - begin);
    std::vector<float> rows(count * d);
    table.reconstruct(begin, count, rows.data());
    if (!options.allow_nan)
      for (size_t i = 0; i < count; ++i)
        if (first_non_finite(rows.data() + i * d, d) != d)
          throw Error("row " + std::to_string(begin + i) + " contains NaN or infinity (allow with --allow-nan)");
    if (partition) {
      partition->assign(rows.data(), count, lists.data() + begin, 1);
      if (partition->residual())
        for (size_t i = 0; i < count; ++i) {
          const float* c = partition->centroid(lists[begin + i]);
          for (size_t j = 0; j < d; ++j) rows[i * d + j] -= c[j];
        }
    }
    codec->encode(rows.data(), count, codes->data() + begin * cs, 1, begin);
    size_t now = done += count;
    if (options.progress && worker == 0) options.progress->advance(now);
  });
  if (options.progress) options.progress->end();
  if (report) report->encode_seconds = seconds_since(encode_start);
  if (partition) return partitioned_store(std::move(codec), codes->data(), n, lists.data(), partition->lists());
  return std::make_shared<RowStore>(std::move(codec), codes->data(), n, codes);
}

// Binds the table's keys to a codec that derives rows from them.
static void bind_table_keys(Codec& codec, const Table::Impl& impl) {
  if (!(codec.capabilities() & kNeedsKeys)) return;
  if (impl.keys.empty())
    throw Error("codec '" + codec.spec() + "' derives rows from their keys (words); the table has no keys");
  codec.bind_keys(key_lookup(impl.keys));
}

// partition: where a spec with an ivf stage leaves its trained partition; null where such a
// stage is not allowed (rerank codes, n-gram pools).
static std::shared_ptr<const RowStore> train_and_encode(const Table& table, const Table::Impl& impl, std::string_view spec,
                                                        const CompressOptions& options, CompressReport* report,
                                                        std::shared_ptr<const Partition>* partition = nullptr) {
  std::string codec_spec;
  const PartitionSpec partition_spec = split_partition_spec(spec, codec_spec);
  if (partition_spec.lists && !partition)
    throw Error("spec '" + std::string(spec) + "': an ivf partition belongs to the table's own codec, not to rerank codes "
                "or an n-gram pool");
  auto codec = std::make_shared<Codec>(codec_spec);
  if (partition_spec.lists && (codec->capabilities() & kSharedParameters))
    throw Error("spec '" + std::string(spec) + "': codec '" + codec->spec() +
                "' places rows by their position in the table, which an ivf partition reorders; drop the ivf stage");
  const size_t n = table.size(), d = table.dim();
  if (n == 0) throw Error("cannot compress an empty table");
  bind_table_keys(*codec, impl);
  RowContext context;
  context.key = key_lookup(impl.keys);
  context.counts = impl.row_counts();
  context.frequency_ordered = table.meta().rows_by_frequency;
  context.source_format = table.meta().source_format;
  if (!options.row_tables.empty()) {
    if (!(codec->capabilities() & kRowTables))
      throw Error("codec '" + codec->spec() + "' takes no feature table per row (row tables are for codecs that share "
                  "one pool across tables, such as hash)");
    if (options.row_tables.size() != n)
      throw Error("row tables: " + std::to_string(options.row_tables.size()) + " values for a table of " +
                  std::to_string(n) + " rows");
    context.tables = options.row_tables.data();
  }

  // Training sample: a seeded choice of rows, read in row order.
  std::vector<size_t> picked(n);
  std::iota(picked.begin(), picked.end(), size_t(0));
  size_t m = n;
  // Codecs whose rows share parameters fit those to every row, in table order.
  const bool every_row = codec->capabilities() & kSharedParameters;
  if (options.train_size && options.train_size < n && !every_row) {
    std::mt19937_64 rng(options.seed);
    for (size_t i = 0; i < options.train_size; ++i) std::swap(picked[i], picked[i + rng() % (n - i)]);
    m = options.train_size;
    picked.resize(m);
    std::sort(picked.begin(), picked.end());
  }
  std::vector<float> sample(m * d);
  size_t kept = 0;
  for (size_t i = 0; i < m; ++i) {
    float* row_out = sample.data() + kept * d;
    table.reconstruct(picked[i], 1, row_out);
    if (first_non_finite(row_out, d) != d) {
      if (every_row)
        throw Error("row " + std::to_string(picked[i]) + " contains NaN or infinity; codec '" + codec->spec() +
                    "' fits every row in place and cannot leave it out");
      if (!options.allow_nan) throw Error("row " + std::to_string(picked[i]) + " contains NaN or infinity (allow with --allow-nan)");
      continue;
    }
    ++kept;
  }
  auto train_start = std::chrono::steady_clock::now();
  std::shared_ptr<const Partition> trained_partition;
  if (partition_spec.lists) {
    Partition::TrainSettings settings;
    settings.seed = options.seed;
    settings.threads = options.threads;
    settings.progress = options.progress;
    // Coarse centroids keep improving up to a few hundred rows per list, more than a codec
    // needs: the partition trains on up to 256 rows per list (never fewer than the codec's).
    const size_t wanted = std::min(n, std::max(kept, Partition::kTrainRowsPerList * partition_spec.lists));
    std::vector<float> partition_rows;
    size_t partition_kept = kept;
    if (wanted > kept) {
      std::vector<size_t> rows(n);
      std::iota(rows.begin(), rows.end(), size_t(0));
      std::mt19937_64 rng(options.seed ^ 0x9e3779b97f4a7c15ull);
      for (size_t i = 0; i < wanted && wanted < n; ++i) std::swap(rows[i], rows[i + rng() % (n - i)]);
      rows.resize(wanted);
      std::sort(rows.begin(), rows.end());
      partition_rows.resize(wanted * d);
      partition_kept = 0;
      for (size_t row : rows) {
        float* out = partition_rows.data() + partition_kept * d;
        table.reconstruct(row, 1, out);
        if (first_non_finite(out, d) == d) ++partition_kept;
      }
    }
    trained_partition = std::make_shared<Partition>(Partition::train(wanted > kept ? partition_rows.data() : sample.data(),
                                                                     partition_kept, d, table.metric(), partition_spec, settings));
    if (trained_partition->residual()) {
      // The codec learns the residuals it will encode.
      std::vector<uint32_t> lists(kept);
      trained_partition->assign(sample.data(), kept, lists.data(), options.threads);
      for (size_t i = 0; i < kept; ++i)
        for (size_t j = 0; j < d; ++j) sample[i * d + j] -= trained_partition->centroid(lists[i])[j];
    }
  }
  TrainOptions train;
  train.seed = options.seed;
  train.threads = options.threads;
  train.progress = options.progress;
  if (every_row) train.rows = &context;
  codec->train(sample.data(), kept, d, train);
  sample = {};
  if (report) {
    report->train_seconds = seconds_since(train_start);
    report->train_rows = kept;
  }
  if (partition) *partition = trained_partition;
  return encode_rows(table, std::move(codec), options, report, trained_partition.get());
}

// This table's rows encoded with a codec (and a partition) trained elsewhere.
static std::shared_ptr<Table::Impl> encode_with_trained(const Table& table, const Table::Impl& impl, const Codec& trained,
                                                        std::shared_ptr<const Partition> partition,
                                                        const CompressOptions& options) {
  if (!trained.trained()) throw Error("codec '" + trained.spec() + "' is not trained (train it, or pass a spec string)");
  if (trained.dim() != table.dim())
    throw Error("codec '" + trained.spec() + "' was trained for dimension " + std::to_string(trained.dim()) +
                ", the table has " + std::to_string(table.dim()));
  if (impl.subwords) throw Error("a table with subwords is compressed from a spec string (its pool trains its own codec)");
  if (!options.row_tables.empty())
    throw Error("row tables are used when a codec is trained; '" + trained.spec() + "' is trained already");
  if (trained.capabilities() & kSharedParameters)
    throw Error("codec '" + trained.spec() + "' was fitted in place to the rows it was trained on and encodes no others; "
                "compress this table from the spec string");
  // A private copy: the table keeps it alive however long the caller's codec lives.
  const std::vector<uint8_t> parameters = trained.serialize();
  auto loaded = std::make_shared<Codec>(Codec::load(parameters.data(), parameters.size()));
  bind_table_keys(*loaded, impl);
  std::shared_ptr<const Codec> codec = std::move(loaded);
  auto out = std::make_shared<Table::Impl>();
  out->store = encode_rows(table, std::move(codec), options, options.report, partition.get());
  out->partition = std::move(partition);
  out->keys = impl.keys;
  out->counts = impl.row_counts();
  out->counts_owner = impl.row_counts_owner();
  out->rerank = options.rerank_spec.empty() ? impl.rerank : train_and_encode(table, impl, options.rerank_spec, options, nullptr);
  return out;
}

std::shared_ptr<Table::Impl> encode_like(const Table::Impl& model, const Table& rows, const Table::Impl& rows_impl,
                                         const CompressOptions& options) {
  auto out = encode_with_trained(rows, rows_impl, model.store->codec(), model.partition, options);
  out->rerank = nullptr;
  if (model.rerank) {
    const std::vector<uint8_t> parameters = model.rerank->codec().serialize();
    CompressOptions rerank_options = options;
    rerank_options.progress = nullptr;
    out->rerank = encode_rows(rows, std::make_shared<Codec>(Codec::load(parameters.data(), parameters.size())), rerank_options, nullptr);
  }
  out->recall_curve = model.recall_curve;
  return out;
}

Table Table::compress(const Codec& trained, const CompressOptions& options) const {
  auto out = encode_with_trained(*this, require(impl_), trained, nullptr, options);
  TableMeta meta = meta_;
  meta.tool_version.clear();
  meta.created.clear();
  return Table(std::move(out), std::move(meta));
}

Table Table::compress(const Table& model, const CompressOptions& options) const {
  const Impl& trained = require(model.impl_);
  const auto& partition = trained.partition;
  if (partition && partition->metric() != metric())
    throw Error(std::string("the model's ivf partition was trained for metric ") + metric_name(partition->metric()) +
                " and this table's metric is " + metric_name(metric()) + "; compress both with one metric");
  auto out = encode_with_trained(*this, require(impl_), trained.store->codec(), partition, options);
  // The curve measured on the model's rows stands for these rows too: same lists, same codec.
  if (partition) out->recall_curve = trained.recall_curve;
  TableMeta meta = meta_;
  meta.tool_version.clear();
  meta.created.clear();
  return Table(std::move(out), std::move(meta));
}

Table Table::compress(std::string_view spec, const CompressOptions& options) const {
  const auto& impl = require(impl_);
  // The n-gram pool's rows are hash buckets: no keys, no frequencies, no meaning in their order.
  std::string codec_spec;
  split_partition_spec(spec, codec_spec);
  if (impl.subwords && options.subword_spec.empty() && (Codec(codec_spec).capabilities() & kSharedParameters))
    throw Error("the table's n-gram pool is compressed with the table's codec unless it is given one, and '" +
                std::string(spec) + "' fits rows in place by their position, keys or frequencies, which the pool's "
                "hash buckets do not have: give the pool a codec of its own (--subword-codec f16, "
                "CompressOptions::subword_spec)");
  auto out = std::make_shared<Impl>();
  out->store = train_and_encode(*this, impl, spec, options, options.report, &out->partition);
  if (!options.row_tables.empty()) {
    auto tables = std::make_shared<std::vector<uint32_t>>(options.row_tables);
    out->row_tables = tables->data();
    out->row_tables_owner = tables;
  } else if (impl.row_tables) {
    out->row_tables = impl.row_tables;
    out->row_tables_owner = impl.row_tables_owner;
  }
  out->keys = impl.keys;
  out->counts = impl.row_counts();
  out->counts_owner = impl.row_counts_owner();
  // Rerank codes come from this table's rows as they are now, so a lossy input loses twice.
  CompressOptions rerank_options = options;
  rerank_options.row_tables.clear();
  out->rerank = options.rerank_spec.empty() ? impl.rerank : train_and_encode(*this, impl, options.rerank_spec, rerank_options, nullptr);
  if (impl.subwords) {
    CompressOptions pool_options = options;
    pool_options.report = nullptr;
    pool_options.rerank_spec.clear();
    pool_options.row_tables.clear();
    std::string pool_spec = options.subword_spec;
    if (pool_spec.empty()) split_partition_spec(spec, pool_spec);  // the table's codec, without its partition
    out->subwords = std::make_shared<SubwordPool>(
        SubwordPool{impl.subwords->scheme, impl.subwords->pool.compress(pool_spec, pool_options)});
  }
  TableMeta meta = meta_;
  meta.tool_version.clear();
  meta.created.clear();
  Impl* built = out.get();
  Table table(std::move(out), std::move(meta));
  if (built->partition)
    built->recall_curve =
        measure_recall_curve(*this, table, built->partition->lists(), built->rerank != nullptr, options.seed, options.threads,
                             options.progress);
  return table;
}

std::string codec_chain_of(std::string_view spec) {
  std::string chain;
  split_partition_spec(spec, chain);
  return chain;
}

void Table::save(const std::string& path) const {
  const auto& impl = require(impl_);
  // A file holds no deleted rows: they would come back when it is read.
  if (!impl.deleted.empty()) return compacted().save(path);
  nlohmann::json j;
  j["format"] = "vecpack";
  j["n"] = size();
  j["d"] = dim();
  j["metric"] = metric_name(meta_.metric);
  j["spec"] = spec();
  j["code_size"] = impl.store->codec().code_size();
  j["keys"] = has_keys();
  if (!meta_.source_format.empty() || !meta_.source_path.empty())
    j["source"] = {{"format", meta_.source_format}, {"path", meta_.source_path}};
  if (meta_.rows_by_frequency) j["source"]["rows_by_frequency"] = true;
  if (impl.rerank) j["rerank"] = {{"spec", impl.rerank->codec().spec()}, {"code_size", impl.rerank->codec().code_size()}};
  if (impl.partition) {
    j["partition"] = {{"spec", impl.partition->spec()}, {"lists", impl.partition->lists()}};
    const RecallCurve& curve = impl.recall_curve;
    if (!curve.empty())
      j["partition"]["recall"] = {{"k", curve.k},           {"rerank", curve.rerank},          {"queries", curve.queries},
                                  {"points", curve.points}, {"measured_on", curve.measured_on}};
  }
  if (impl.subwords) {
    const SubwordScheme& scheme = impl.subwords->scheme;
    j["subwords"] = {{"scheme", kSubwordHashName},
                     {"minn", scheme.minn},
                     {"maxn", scheme.maxn},
                     {"buckets", scheme.buckets},
                     {"pruned", scheme.is_pruned},
                     {"rows", impl.subwords->pool.size()},
                     {"spec", impl.subwords->pool.spec()}};
  }
  j["tool"] = std::string("vecpack ") + VECPACK_VERSION;
  j["created"] = now_iso8601();
  std::string meta_text = j.dump(1);

  ContainerWriter writer(path);
  writer.add("META", meta_text.data(), meta_text.size());
  if (impl.partition) {
    // The codes list by list (LIST, not CODE: a reader that knows no partition refuses the file
    // instead of reading rows in the wrong order), the row id of each, and the partition.
    const std::vector<uint8_t> params = impl.store->codec().serialize();
    writer.add("CODC", params.data(), params.size());
    const size_t cs = impl.store->codec().code_size();
    std::vector<uint8_t> codes;
    std::vector<int64_t> ids;
    codes.reserve(impl.store->code_bytes());
    ids.reserve(size());
    const auto& segments = impl.store->segments();
    const size_t lists = impl.partition->lists();
    for (size_t l = 0; l < lists; ++l)
      for (size_t s = l; s < segments.size(); s += lists) {  // a sharded table's list: one segment per shard
        const Segment& part = *segments[s];
        codes.insert(codes.end(), part.codes(), part.codes() + part.rows() * cs);
        for (size_t r = 0; r < part.rows(); ++r) ids.push_back(part.id(r));
      }
    writer.add("LIST", codes.data(), codes.size(), kCodeAlign);
    writer.add("IVFI", ids.data(), ids.size() * sizeof(int64_t));
    const std::vector<uint8_t> partition = partition_section(*impl.partition, *impl.store);
    writer.add("IVFC", partition.data(), partition.size());
  } else {
    impl.store->write(writer);
  }
  if (has_keys()) {
    const auto& parts = impl.keys.parts();
    if (parts.size() == 1) {
      writer.add("VOCB", parts[0].bytes, parts[0].size);
    } else {  // a sharded table saved as one file: one vocabulary of every key
      std::vector<std::string> keys(size());
      for (size_t i = 0; i < keys.size(); ++i) keys[i] = std::string(impl.keys.key(i));
      const std::vector<uint8_t> merged = build_vocabulary(keys);
      writer.add("VOCB", merged.data(), merged.size());
    }
  }
  if (impl.rerank) impl.rerank->write(writer, kRerankSections);
  if (const uint64_t* counts = impl.row_counts()) writer.add("FREQ", counts, checked_mul(size(), 8, "FREQ"));
  if (impl.row_tables) writer.add("RTBL", impl.row_tables, checked_mul(size(), 4, "RTBL"));
  if (impl.subwords) {
    impl.subwords->pool.impl_->store->write(writer, kSubwordSections);
    if (impl.subwords->scheme.is_pruned) {
      std::vector<uint8_t> map = serialize_pruned_buckets(impl.subwords->scheme);
      writer.add("SUBM", map.data(), map.size());
    }
  }
  writer.commit();
  // The file is a new table: changes recorded beside the one it replaced no longer apply.
  std::error_code error;
  const std::string changes = changes_folder_of(path);
  if (std::filesystem::exists(std::filesystem::path(changes) / kManifestName, error)) std::filesystem::remove_all(changes, error);
}

}  // namespace vecpack
