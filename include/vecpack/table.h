// Table: n rows of dimension d, optionally keyed by strings, stored with a codec chain.
// A Table is an in-memory table or a read-only view of a memory-mapped .vecpack file.
// Copies are cheap and share the rows; rows are immutable once built.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "vecpack/codec.h"
#include "vecpack/types.h"

namespace vecpack {

struct Manifest;      // internal: a folder table's manifest
struct TableChanges;  // internal: building changed tables

// Describes where a table came from and how it is searched; stored in the META section.
struct TableMeta {
  Metric metric = Metric::cos;
  std::string source_format;  // "glove", "word2vec", "hdf5", ... or empty
  std::string source_path;
  bool rows_by_frequency = false;  // the source lists rows most frequent first (word2vec, GloVe, fastText)
  std::string tool_version;   // the vecpack that wrote the file
  std::string created;        // ISO 8601 UTC
};

struct SectionInfo {
  std::string type;  // fourcc, e.g. "CODE"
  uint64_t offset = 0, length = 0, checksum = 0;
};

struct TableInfo {
  size_t rows = 0, dim = 0;
  std::string spec;
  bool has_keys = false;
  uint64_t code_bytes = 0;       // per-row codes of all rows
  uint64_t parameter_bytes = 0;  // trained codec parameters
  // An ivf partition's centroids and list offsets plus a row id per stored row (0 without).
  uint64_t partition_bytes = 0;
  uint64_t key_bytes = 0;        // vocabulary with its index
  uint64_t subword_bytes = 0;    // n-gram pool codes and parameters (0 without subwords)
  size_t subword_rows = 0;
  std::string subword_spec;
  uint64_t rerank_bytes = 0;     // rerank codes and parameters (0 without)
  std::string rerank_spec;
  uint64_t file_bytes = 0;       // 0 for an in-memory table
  std::vector<SectionInfo> sections;  // empty for an in-memory table
  // A sharded table (a folder with manifest.json): its shards in row order; file_bytes is
  // their total and sections are empty.
  struct Shard {
    std::string file;  // relative to the folder
    uint64_t first_row = 0, rows = 0, bytes = 0;
  };
  std::vector<Shard> shards;
  // A table that has changed (Table::add, remove): how many changes it has seen, its rows
  // deleted and not yet compacted away, and its rows added since it was last compacted.
  uint64_t generation = 0;
  size_t deleted_rows = 0;
  size_t added_rows = 0;
};

// Where compress() spent its time, for benchmarks.
struct CompressReport {
  double train_seconds = 0;
  double encode_seconds = 0;
  size_t train_rows = 0;
};

// Out-of-vocabulary vectors from character n-grams, computed as fastText computes them: the
// word wrapped in '<' and '>', its n-grams of minn..maxn UTF-8 characters (single-character
// n-grams at either end excluded), each hashed with 32-bit FNV-1a over bytes sign-extended to
// 32 bits, modulo `buckets`. A pruned pool (fastText .ftz) keeps only some buckets: `pruned`
// maps bucket -> pool row, sorted by bucket, and n-grams of other buckets are dropped.
// An unpruned pool has `buckets` rows, one per bucket.
struct SubwordScheme {
  uint32_t minn = 3, maxn = 6;
  uint64_t buckets = 2000000;
  bool is_pruned = false;
  std::vector<std::pair<uint32_t, uint32_t>> pruned;
};

// Pool rows of the n-grams of `word`, in fastText's order, repeats kept (they weigh twice).
std::vector<uint64_t> subword_rows(const SubwordScheme& scheme, std::string_view word);

// Fitting an n-gram pool to a word table (Table::fit_subwords): hash embeddings over character
// n-grams with fastText's hashing and '<' '>' markers.
struct SubwordFitOptions {
  uint64_t buckets = 100000;      // pool rows
  uint32_t minn = 3, maxn = 6;    // n-gram lengths in characters
  double ridge = 1e-3;            // relative to the mean diagonal of the normal equations
  size_t iterations = 40;         // conjugate-gradient steps at most
  // Rows kept after fitting (0: all). The pool is fitted to every word, then rows from keep_rows
  // on are dropped: with a frequency-sorted table the rare words are answered from n-grams and
  // their rows no longer take space.
  size_t keep_rows = 0;
  unsigned threads = 0;
  Progress* progress = nullptr;
};

struct CompressOptions {
  size_t train_size = 100000;  // rows sampled (seeded) for training; 0: all rows
  unsigned threads = 0;        // 0: one per core
  uint64_t seed = 1234;
  bool allow_nan = false;      // otherwise a NaN/Inf row is an Error naming the row
  Progress* progress = nullptr;
  CompressReport* report = nullptr;  // filled in when not null
  std::string subword_spec;          // codec of the subword pool, if any; empty: the table's spec
  // A second encoding of every row, stored beside the codes, that search(rerank = N) rescores a
  // shortlist of N candidates with (e.g. "int8" behind "pq:m=25"). Empty: keep the table's
  // rerank rows, if any.
  std::string rerank_spec;
  // The feature table of each row (size() values), for codecs that share one pool across
  // several tables (kRowTables: hash). Empty: none; an error for other codecs.
  std::vector<uint32_t> row_tables;
};

struct VerifyReport {
  struct Check {
    SectionInfo section;
    bool ok = false;
  };
  std::vector<Check> checks;
  std::vector<std::string> problems;  // empty when the file is sound
  bool ok() const { return problems.empty(); }
};

// Adding rows to a table (Table::add, TableWriter::add).
struct AddOptions {
  // A key the table holds already: its old row is deleted and the new one added. Otherwise such
  // a key is an Error naming it.
  bool replace = false;
  unsigned threads = 0;  // 0: one per core
  Progress* progress = nullptr;
};

class Table {
 public:
  Table();  // empty: 0 x 0
  ~Table();
  Table(const Table&);
  Table& operator=(const Table&);
  Table(Table&&) noexcept;
  Table& operator=(Table&&) noexcept;

  // An uncompressed (f32) table. keys: empty, or one unique key per row.
  static Table from_rows(std::vector<float> rows, size_t dim, std::vector<std::string> keys = {},
                         Metric metric = Metric::cos);
  // Maps a .vecpack file. O(1) in the number of rows: reads the header and small sections only.
  // A folder is a sharded table (see write_manifest): every shard is mapped, keys route to
  // their shard, search runs over all rows and merges exactly; row ids are global.
  static Table open(const std::string& path);
  // Checks every checksum and structure of a .vecpack file without trusting it; of a sharded
  // table, the manifest, every shard's checksum in it, and every shard.
  static VerifyReport verify(const std::string& path);

  size_t size() const;
  size_t dim() const;
  const TableMeta& meta() const { return meta_; }
  Metric metric() const { return meta_.metric; }
  void set_metric(Metric metric) { meta_.metric = metric; }
  void set_source(std::string format, std::string path, bool rows_by_frequency = false);
  std::string spec() const;
  const Codec& codec() const;
  TableInfo info() const;
  // An ivf table's recall@10 against nprobe, measured when its partition was built and kept in
  // the file; empty for other tables (and ivf files written before it was measured).
  const RecallCurve& recall_curve() const;
  // This ivf table with a recall curve measured elsewhere, e.g. by `vecpack tune --index` on the
  // caller's own queries, which a recall target (SearchOptions::recall) then reads. Error for a
  // table without a partition or a curve whose nprobe values do not rise within 1..lists.
  Table with_recall_curve(RecallCurve curve) const;
  // info() and the table's metadata as one JSON object (text): what `vecpack inspect --json`
  // prints and Table.info() returns in Python.
  std::string info_json() const;

  bool has_keys() const;
  std::optional<size_t> find(std::string_view key) const;  // O(1) pages touched
  std::string_view key(size_t row) const;                   // throws NotFoundError if no keys
  // The row of `key`; for a key not in the table, the mean of its n-gram rows when the table
  // has subwords (zeros when no n-gram of it is in a pruned pool, as fastText answers).
  // Throws NotFoundError otherwise.
  std::vector<float> get(std::string_view key) const;
  std::vector<float> row(size_t index) const;
  void reconstruct(size_t begin, size_t count, float* out) const;  // decoded rows, count x dim
  // The stored per-row codes, size() x codec().code_size() bytes row after row (for f32, the
  // rows themselves), valid as long as any copy of this table lives; nullptr when the rows are
  // not stored as per-row codes. In a mapped table they point into the mapping.
  const uint8_t* codes() const;
  // The rows as stored float32 values (size() x dim(), row after row) when the codec keeps them
  // as they are (kFloatRows, no transform) in one run; nullptr otherwise. Same lifetime as codes().
  const float* float_rows() const;

  // How often each row's key occurs in its corpus (fastText models carry word counts):
  // size() values, or null when unknown. Saved in the FREQ section; mixdim ranks rows by them.
  const uint64_t* counts() const;
  // This table with counts attached (size() values).
  Table with_counts(std::vector<uint64_t> counts) const;
  // The feature table of each row (size() values) when the table was compressed with row tables
  // (CompressOptions::row_tables; saved in the RTBL section), or null.
  const uint32_t* row_tables() const;
  // The rows of one feature table, as a search filter (SearchOptions::filter). Error without
  // row tables.
  RowFilter rows_in_table(uint32_t table) const;

  // Subwords (see SubwordScheme): tables converted from fastText .bin/.ftz carry them.
  bool has_subwords() const;
  const SubwordScheme& subword_scheme() const;  // throws Error when the table has none
  Table subword_pool() const;                   // unkeyed, dim() columns; throws when none
  // This table with an n-gram pool attached (pool: unkeyed, dim() columns, rows matching the
  // scheme). The pool is saved in the same file and compressed along with the table.
  Table with_subwords(SubwordScheme scheme, Table pool) const;
  // This keyed table with a pool fitted so that the mean of a word's n-gram rows approximates its
  // row (ridge least squares over every word): get() then answers words not in the table, as
  // fastText and Magnitude do. The pool is f32 until the table is compressed.
  Table fit_subwords(const SubwordFitOptions& options = {}) const;

  // Exact top-k over the stored codes with the codec's fastest scorer. metric: the table's
  // unless given. queries: nq x dim, row-major.
  SearchResult search(const float* queries, size_t nq, const SearchOptions& options = {},
                      std::optional<Metric> metric = std::nullopt) const;

  // Re-encodes this table's rows with a codec spec (trained on a seeded sample). The spec may
  // start with an inverted-file partition, e.g. "ivf:lists=1024/pq:m=50,nbits=4" (see
  // SearchOptions::nprobe and docs/SEARCH.md).
  Table compress(std::string_view spec, const CompressOptions& options = {}) const;
  // Encodes this table's rows with a codec trained elsewhere (e.g. on a sample, once for all the
  // shards of a table); train_size and seed are unused, except by options.rerank_spec.
  Table compress(const Codec& trained, const CompressOptions& options = {}) const;
  // Encodes this table's rows as `model` encodes its own: with its trained codec and, when it
  // has one, its ivf partition (the same centroids, so the tables can be shards of one table,
  // and its recall curve). Rerank codes follow options.rerank_spec as above. The metrics must agree
  // when the model has a partition.
  Table compress(const Table& model, const CompressOptions& options = {}) const;
  // Writes a .vecpack file atomically: a temporary file beside it, fsync, rename.
  void save(const std::string& path) const;
  // Rows [begin, begin + count) as a table of their own (codes shared, keys re-indexed).
  Table slice(size_t begin, size_t count) const;

  // Tables that change. Row ids stay as they are until compaction: a deleted row keeps its id
  // and is never returned by search, find or get; added rows take the ids after size().
  // These return a new table in memory and leave this one as it is; TableWriter changes a table
  // on disk. size() counts deleted rows until compacted().
  //
  // This table with `rows` appended, encoded by this table's trained codec (and ivf partition)
  // without training. rows: same dimension, keys exactly when this table has them, each key new
  // to this table unless options.replace. Error for codecs that place rows by position.
  Table add(const Table& rows, const AddOptions& options = {}) const;
  // This table with rows deleted, by key (NotFoundError for a key it does not hold) or by id
  // (an id deleted already stays deleted).
  Table remove(const std::vector<std::string>& keys) const;
  Table remove_ids(const std::vector<int64_t>& ids) const;
  // The rows not deleted, renumbered 0.. in id order, as one table.
  Table compacted() const;
  size_t deleted_rows() const;
  bool is_deleted(size_t row) const;

  struct Impl;  // internal

 private:
  friend void write_manifest(const std::string& folder, const std::vector<std::string>& shard_files);
  friend class TableWriter;
  friend struct TableChanges;
  static Table open_file(const std::string& path);
  static VerifyReport verify_file(const std::string& path);
  static Table open_shards(const std::string& folder);
  static Table open_generation(const std::string& folder, const Manifest& manifest);
  static VerifyReport verify_shards(const std::string& folder);
  explicit Table(std::shared_ptr<const Impl> impl, TableMeta meta);
  std::shared_ptr<const Impl> impl_;
  TableMeta meta_;
};

// Changes a table on disk (a .vecpack file or a folder table) one generation at a time. Each
// change writes new files only (a delta shard of the added rows, the set of deleted ids) and then
// swaps the manifest atomically: a reader that opened a generation keeps it, a new open sees the
// newest complete one, and a crash leaves the old generation or the new, never a mixture. A
// file's changes live in the folder FILE.changes beside it until compact() folds them back in.
// One writer at a time: the constructor takes an advisory lock and throws LockedError naming the
// process that holds it.
class TableWriter {
 public:
  explicit TableWriter(const std::string& path);
  ~TableWriter();
  TableWriter(const TableWriter&) = delete;
  TableWriter& operator=(const TableWriter&) = delete;

  const Table& table() const;  // the newest generation
  // As Table::add, remove, remove_ids; each writes one generation and returns it. An add costs
  // in proportion to the rows added, a remove to the rows deleted so far.
  const Table& add(const Table& rows, const AddOptions& options = {});
  const Table& remove(const std::vector<std::string>& keys);
  const Table& remove_ids(const std::vector<int64_t>& ids);
  // Rewrites the live rows as one file (a file's changes folder is removed; a folder table
  // becomes one shard), atomically, and removes the files no generation needs any more.
  const Table& compact();
  // Removes files of the table's folder that the newest generation does not use (left by
  // earlier generations or by writers that crashed); returns how many. Readers that mapped them
  // keep their view.
  size_t vacuum();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Builds an uncompressed table row by row, as readers stream a file.
class TableBuilder {
 public:
  explicit TableBuilder(size_t dim = 0);  // dim 0: fixed by the first row
  ~TableBuilder();
  TableBuilder(TableBuilder&&) noexcept;
  TableBuilder& operator=(TableBuilder&&) noexcept;

  void reserve(size_t rows);
  size_t dim() const;
  size_t size() const;
  // Appends a keyed row of dim() values; a key seen before is skipped (the first is kept)
  // and counted. Returns false when skipped.
  bool add(std::string_view key, const float* values, size_t count);
  // Appends an unkeyed row. A builder is keyed or unkeyed, not both.
  void add(const float* values, size_t count);
  size_t duplicates() const;
  Table finish(Metric metric = Metric::cos);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Makes `folder` a sharded table: checks that the shards (.vecpack files in the folder, named
// relative to it, in row order) share dimension, metric, keys-or-not, rerank spec and codec (the
// fingerprint of its trained parameters), then writes folder/manifest.json atomically: every
// shard's rows, first row, size, xxh64 checksum and key range. Write it last: a reader never
// sees a table whose shards are not all complete. A key in two shards resolves to the first.
// Throws Error naming the shard at fault.
void write_manifest(const std::string& folder, const std::vector<std::string>& shard_files);

// Index of the first NaN or infinity in values, or count when all are finite.
size_t first_non_finite(const float* values, size_t count);

// The codec chain of a spec that Table::compress takes: the spec without its ivf stage.
// Throws SpecError for a bad ivf stage; the chain itself is checked by Codec.
std::string codec_chain_of(std::string_view spec);

}  // namespace vecpack
