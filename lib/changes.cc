// Tables that change: rows added and deleted in memory (Table::add, remove, compacted) and on
// disk, one generation at a time (TableWriter).
//
// On disk a generation is a manifest (manifest.h) naming files that are never modified once
// written: the base rows, a delta shard per add, and one file of deleted ids. A change writes its
// new files, then replaces the manifest atomically, then removes the files only the replaced
// generation named. Readers map the files of the generation they opened, and a mapping outlives
// the removal of its file, so they keep their snapshot.
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <set>

#include "atomic_file.h"
#include "bytes.h"
#include "manifest.h"
#include "mapped_file.h"
#include "table_impl.h"
#include "vecpack/errors.h"

namespace vecpack {
namespace fs = std::filesystem;

namespace {

constexpr char kDeletedMagic[8] = {'V', 'P', 'D', 'E', 'L', 'E', 'T', 'E'};

std::string deleted_file_name(uint64_t generation) { return kDeletedPrefix + std::to_string(generation) + ".ids"; }

// Writes the ids (ascending) as folder/deleted-<generation>.ids: the magic, the count, the ids
// (int64 little-endian) and the xxh64 of everything before it.
Manifest::Deleted write_deleted(const std::string& folder, uint64_t generation, const std::vector<int64_t>& ids) {
  std::vector<uint8_t> bytes(kDeletedMagic, kDeletedMagic + 8);
  auto put = [&](uint64_t value) {
    for (int i = 0; i < 8; ++i) bytes.push_back(static_cast<uint8_t>(value >> (8 * i)));
  };
  put(ids.size());
  for (int64_t id : ids) put(static_cast<uint64_t>(id));
  const uint64_t checksum = xxh64(bytes.data(), bytes.size());
  put(checksum);
  const std::string name = deleted_file_name(generation);
  AtomicFile out((fs::path(folder) / name).string());
  out.write(bytes.data(), bytes.size());
  out.commit();
  return {name, hex64(checksum), ids.size()};
}

std::vector<int64_t> sorted_union(const std::vector<int64_t>& a, std::vector<int64_t> b) {
  std::sort(b.begin(), b.end());
  std::vector<int64_t> out;
  std::set_union(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(out));
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

}  // namespace

std::vector<int64_t> read_deleted(const std::string& folder, const Manifest& manifest) {
  const std::string path = (fs::path(folder) / manifest.deleted.file).string();
  MappedFile file(path);
  const uint8_t* p = file.data();
  auto fail = [&](const std::string& what) -> std::vector<int64_t> { throw FormatError(path + ": " + what); };
  if (file.size() < 24 || std::memcmp(p, kDeletedMagic, 8) != 0) fail("not a file of deleted row ids");
  auto get = [&](uint64_t offset) {
    uint64_t value = 0;
    for (int i = 0; i < 8; ++i) value |= uint64_t(p[offset + i]) << (8 * i);
    return value;
  };
  const uint64_t count = get(8);
  if (count != manifest.deleted.count || file.size() != 24 + 8 * count)
    fail(std::to_string(file.size()) + " bytes for " + std::to_string(count) + " ids; the manifest says " +
         std::to_string(manifest.deleted.count));
  const uint64_t checksum = xxh64(p, file.size() - 8);
  if (checksum != get(file.size() - 8) || hex64(checksum) != manifest.deleted.checksum) fail("checksum mismatch");
  std::vector<int64_t> ids(count);
  for (uint64_t i = 0; i < count; ++i) {
    ids[i] = static_cast<int64_t>(get(16 + 8 * i));
    if (ids[i] < 0 || uint64_t(ids[i]) >= manifest.rows || (i && ids[i] <= ids[i - 1]))
      fail("id " + std::to_string(ids[i]) + " at " + std::to_string(i) + " is out of order or beyond the table's rows");
  }
  return ids;
}

// What Table and TableWriter share: checks, and new table states built from old ones.
struct TableChanges {
  static const Table::Impl& impl_of(const Table& table) {
    if (!table.impl_) throw Error("the table is empty");
    return *table.impl_;
  }

  static void check_changeable(const Table& table, const char* what) {
    const Table::Impl& impl = impl_of(table);
    if (impl.store->codec().capabilities() & kSharedParameters)
      throw Error(std::string(what) + ": codec '" + table.spec() +
                  "' fits its parameters to every row in place, so rows cannot be added to or moved in it without "
                  "refitting; compress the changed table again from its source rows");
    if (impl.subwords)
      throw Error(std::string(what) + ": the table carries an n-gram pool, fitted to its words; change the table "
                  "before fitting the pool (Table::fit_subwords, vecpack compress --subwords)");
  }

  // The rows the added keys replace (ascending); Error for a key the table holds unless replace.
  static std::vector<int64_t> replaced_rows(const Table& table, const Table& rows, bool replace) {
    std::vector<int64_t> replaced;
    if (!rows.has_keys()) return replaced;
    for (size_t i = 0; i < rows.size(); ++i) {
      const std::string_view key = rows.key(i);
      if (auto row = table.find(key)) {
        if (!replace)
          throw Error("add: key '" + std::string(key) + "' is already in the table (row " + std::to_string(*row) +
                      "); ask to replace its row (AddOptions::replace, --replace, replace=True) or delete it first");
        replaced.push_back(static_cast<int64_t>(*row));
      }
    }
    std::sort(replaced.begin(), replaced.end());
    return replaced;
  }

  // rows encoded as table encodes its own, after every check.
  static std::shared_ptr<Table::Impl> encode_addition(const Table& table, const Table& rows, const AddOptions& options) {
    check_changeable(table, "add");
    const Table::Impl& impl = impl_of(table);
    const Table::Impl& extra = impl_of(rows);
    if (rows.dim() != table.dim())
      throw Error("add: the rows have dimension " + std::to_string(rows.dim()) + ", the table " + std::to_string(table.dim()));
    if (rows.has_keys() != table.has_keys())
      throw Error(table.has_keys() ? "add: the table has keys: give each new row one"
                                   : "add: the table has no keys, so the new rows must have none");
    CompressOptions encode;
    encode.threads = options.threads;
    encode.progress = options.progress;
    return encode_like(impl, rows, extra, encode);
  }

  // table's rows followed by delta's, with `deleted` deleted.
  static Table appended(const Table& table, const Table::Impl& delta, std::vector<int64_t> deleted) {
    const Table::Impl& impl = impl_of(table);
    auto out = std::make_shared<Table::Impl>();
    out->store = RowStore::concatenate({impl.store, delta.store});
    if (impl.rerank) out->rerank = RowStore::concatenate({impl.rerank, delta.rerank});
    out->partition = impl.partition;
    out->recall_curve = impl.recall_curve;
    out->keys = impl.keys;
    for (const KeyIndex::Part& part : delta.keys.parts()) {
      KeyIndex::Part moved = part;
      moved.first_row += table.size();
      out->keys.add(std::move(moved));
    }
    out->generation = impl.generation;
    out->added_rows = impl.added_rows + delta.store->rows();
    out->set_deleted(std::move(deleted));
    return Table(std::move(out), table.meta_);
  }

  static Table with_deleted(const Table& table, std::vector<int64_t> deleted) {
    auto out = std::make_shared<Table::Impl>(impl_of(table));
    out->set_deleted(std::move(deleted));
    return Table(std::move(out), table.meta_);
  }

  static std::vector<int64_t> ids_of_keys(const Table& table, const std::vector<std::string>& keys) {
    if (!table.has_keys()) throw Error("delete: the table has no keys; delete rows by id");
    std::vector<int64_t> ids;
    for (const std::string& key : keys) {
      auto row = table.find(key);
      if (!row) throw NotFoundError("delete: key '" + key + "' is not in the table");
      ids.push_back(static_cast<int64_t>(*row));
    }
    return ids;
  }

  static void check_ids(const Table& table, const std::vector<int64_t>& ids) {
    for (int64_t id : ids)
      if (id < 0 || static_cast<uint64_t>(id) >= table.size())
        throw NotFoundError("delete: row id " + std::to_string(id) + " is outside the table's " + std::to_string(table.size()) +
                            " rows");
  }

  static Table compacted(const Table& table) {
    const Table::Impl& impl = impl_of(table);
    if (impl.deleted.empty() && impl.added_rows == 0 && impl.generation == 0) return table;
    if (!impl.deleted.empty()) check_changeable(table, "compact");
    const RowFilter keep = impl.live.active() ? impl.live : RowFilter::all(table.size());
    // One run of codes in id order, as a freshly encoded table has (an ivf table keeps its lists).
    const bool flat = !impl.partition;
    auto out = std::make_shared<Table::Impl>();
    out->store = impl.store->kept(keep, flat);
    if (impl.rerank) out->rerank = impl.rerank->kept(keep, true);
    out->partition = impl.partition;
    out->recall_curve = impl.recall_curve;
    out->subwords = impl.subwords;
    const std::vector<int64_t> live = keep.ids();
    if (table.has_keys()) {
      std::vector<std::string> keys;
      keys.reserve(live.size());
      for (int64_t id : live) keys.emplace_back(table.key(static_cast<size_t>(id)));
      auto bytes = std::make_shared<std::vector<uint8_t>>(build_vocabulary(keys));
      out->keys.add(KeyIndex::Part{VocabularyView(bytes->data(), bytes->size(), keys.size(), "keys"), 0, bytes, bytes->data(),
                                   bytes->size()});
    }
    if (impl.row_tables) {
      auto kept = std::make_shared<std::vector<uint32_t>>();
      for (int64_t id : live) kept->push_back(impl.row_tables[id]);
      out->row_tables = kept->data();
      out->row_tables_owner = kept;
    }
    if (const uint64_t* counts = impl.row_counts()) {
      auto kept = std::make_shared<std::vector<uint64_t>>();
      for (int64_t id : live) kept->push_back(counts[id]);
      out->counts = kept->data();
      out->counts_owner = kept;
    }
    return Table(std::move(out), table.meta_);
  }

  static const std::vector<int64_t>& deleted(const Table& table) { return impl_of(table).deleted; }
  static std::string partition_fingerprint_of(const Table& table) {
    const auto& partition = impl_of(table).partition;
    return partition ? hex64(partition_fingerprint(*partition)) : std::string();
  }
  static std::vector<TableInfo::Shard> shards(const Table& table) { return impl_of(table).shards; }
};

Table Table::add(const Table& rows, const AddOptions& options) const {
  if (rows.size() == 0) return *this;
  TableChanges::check_changeable(*this, "add");
  const std::vector<int64_t> replaced = TableChanges::replaced_rows(*this, rows, options.replace);
  auto delta = TableChanges::encode_addition(*this, rows, options);
  return TableChanges::appended(*this, *delta, sorted_union(TableChanges::deleted(*this), replaced));
}

Table Table::remove(const std::vector<std::string>& keys) const {
  return TableChanges::with_deleted(*this, sorted_union(TableChanges::deleted(*this), TableChanges::ids_of_keys(*this, keys)));
}

Table Table::remove_ids(const std::vector<int64_t>& ids) const {
  TableChanges::check_ids(*this, ids);
  return TableChanges::with_deleted(*this, sorted_union(TableChanges::deleted(*this), ids));
}

Table Table::compacted() const { return TableChanges::compacted(*this); }

size_t Table::deleted_rows() const { return impl_ ? impl_->deleted.size() : 0; }

bool Table::is_deleted(size_t row) const { return impl_ && impl_->live.active() && !impl_->live.allows(static_cast<int64_t>(row)); }

// ---------------------------------------------------------------------------------------------

struct TableWriter::Impl {
  std::string path;    // the table as named: a file or a folder
  std::string folder;  // where its manifests are: the folder, or the file's changes folder
  bool file_table = false;
  int lock_fd = -1;
  Table table;

  ~Impl() {
    // A file's changes folder with no manifest (after compaction, or a first change that never
    // landed) holds nothing a reader needs. It goes while the lock is held: a writer that opened
    // the lock file before then finds it unlinked when it gets the lock, and starts again.
    std::error_code error;
    if (lock_fd >= 0 && file_table && !fs::exists(fs::path(folder) / kManifestName, error)) fs::remove_all(folder, error);
    if (lock_fd >= 0) close(lock_fd);
  }

  // The manifest of the newest generation; a file without changes yet is its own first shard.
  Manifest manifest() const {
    std::error_code error;
    if (fs::exists(fs::path(folder) / kManifestName, error)) return read_manifest(folder);
    Manifest m;
    m.rows = table.size();
    m.dim = table.dim();
    m.metric = table.metric();
    m.keys = table.has_keys();
    m.spec = table.spec();
    m.fingerprint = hex64(fingerprint(table.codec()));
    m.rerank_spec = table.info().rerank_spec;
    m.partition_fingerprint = TableChanges::partition_fingerprint_of(table);
    m.shards.push_back({"../" + fs::path(path).filename().string(), "", table.size(), 0, fs::file_size(path)});
    return m;
  }

  // Makes `next` the newest generation, then removes the files only `previous` named.
  void publish(const Manifest& previous, const Manifest& next) {
    write_manifest_file(folder, next);
    std::set<std::string> kept{next.deleted.file};
    for (const auto& shard : next.shards) kept.insert(shard.file);
    std::vector<std::string> old{previous.deleted.file};
    for (const auto& shard : previous.shards) old.push_back(shard.file);
    for (const std::string& file : old)
      if (!file.empty() && !kept.count(file) && file.rfind("../", 0) != 0) {
        std::error_code error;
        fs::remove(fs::path(folder) / file, error);
      }
    table = Table::open(path);
  }
};

TableWriter::TableWriter(const std::string& path) : impl_(std::make_unique<Impl>()) {
  Impl& w = *impl_;
  w.path = path;
  std::error_code error;
  if (fs::is_directory(path, error)) {
    w.folder = path;
  } else if (fs::is_regular_file(path, error)) {
    w.file_table = true;
    w.folder = changes_folder_of(path);
    fs::create_directory(w.folder, error);
    if (error) throw IoError(w.folder, "cannot be created: " + error.message());
  } else {
    throw IoError(path, "is not a table (no such file or folder)");
  }
  const std::string lock_path = (fs::path(w.folder) / kLockName).string();
  for (int attempt = 0;; ++attempt) {
    if (w.file_table) fs::create_directory(w.folder, error);
    w.lock_fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (w.lock_fd < 0) throw IoError(lock_path, std::string("cannot be opened: ") + std::strerror(errno));
    if (flock(w.lock_fd, LOCK_EX | LOCK_NB) != 0) {
      const int why = errno;
      char pid[32] = {};
      const ssize_t got = pread(w.lock_fd, pid, sizeof pid - 1, 0);
      close(w.lock_fd);
      w.lock_fd = -1;
      if (why == EWOULDBLOCK)
        throw LockedError("table " + path + " is locked by pid " + (got > 0 ? std::string(pid) : std::string("?")) +
                          " (another writer is changing it); try again when it has finished");
      throw IoError(lock_path, std::string("cannot be locked: ") + std::strerror(why));
    }
    // The lock counts only on the file that still has the name: a writer that finished may
    // have removed it between our open and our lock.
    struct stat held {}, named {};
    if (fstat(w.lock_fd, &held) == 0 && stat(lock_path.c_str(), &named) == 0 && held.st_ino == named.st_ino &&
        held.st_dev == named.st_dev)
      break;
    close(w.lock_fd);
    w.lock_fd = -1;
    if (attempt >= 8) throw LockedError("table " + path + ": its lock file keeps being replaced; try again");
  }
  const std::string pid = std::to_string(getpid());
  if (ftruncate(w.lock_fd, 0) != 0 || pwrite(w.lock_fd, pid.data(), pid.size(), 0) != ssize_t(pid.size()))
    throw IoError(lock_path, std::string("cannot be written: ") + std::strerror(errno));
  w.table = Table::open(path);
}

TableWriter::~TableWriter() = default;

const Table& TableWriter::table() const { return impl_->table; }

// The manifest entry of a shard file just written.
static Manifest::Shard shard_entry(const std::string& folder, const std::string& file, const Table& table, uint64_t first_row) {
  const std::string path = (fs::path(folder) / file).string();
  Manifest::Shard shard;
  shard.file = file;
  shard.checksum = hex64(file_checksum(path));
  shard.rows = table.size();
  shard.first_row = first_row;
  shard.bytes = fs::file_size(path);
  if (table.has_keys() && table.size()) {
    std::string_view low = table.key(0), high = low;
    for (size_t i = 1; i < table.size(); ++i) {
      low = std::min(low, table.key(i));
      high = std::max(high, table.key(i));
    }
    shard.low_key = low;
    shard.high_key = high;
  }
  return shard;
}

// Every delta shard is scanned as segments of its own (an ivf table: one per list), so an add
// that would leave more than this many merges the deltas into one: their codes are copied, not
// encoded again, and the rows keep their ids. The cost is in proportion to the rows added since
// the last compaction, which `inspect` suggests once they pass a fifth of the table.
constexpr size_t kMaxDeltaShards = 8;

const Table& TableWriter::add(const Table& rows, const AddOptions& options) {
  Impl& w = *impl_;
  if (rows.size() == 0) return w.table;
  const Manifest previous = w.manifest();
  TableChanges::check_changeable(w.table, "add");
  const std::vector<int64_t> replaced = TableChanges::replaced_rows(w.table, rows, options.replace);
  Table encoded(TableChanges::encode_addition(w.table, rows, options), w.table.meta());
  Manifest next = previous;
  next.generation = previous.generation + 1;
  uint64_t first_row = previous.rows;
  size_t deltas = 0;
  while (deltas < next.shards.size() && next.shards[next.shards.size() - 1 - deltas].file.rfind(kDeltaPrefix, 0) == 0) ++deltas;
  if (deltas + 1 > kMaxDeltaShards) {
    const size_t first = next.shards.size() - deltas;
    first_row = next.shards[first].first_row;
    Table merged = Table::open_file((fs::path(w.folder) / next.shards[first].file).string());
    for (size_t i = first + 1; i < next.shards.size(); ++i) {
      const Table part = Table::open_file((fs::path(w.folder) / next.shards[i].file).string());
      merged = TableChanges::appended(merged, TableChanges::impl_of(part), {});
    }
    encoded = TableChanges::appended(merged, TableChanges::impl_of(encoded), {});
    next.shards.resize(first);
  }
  const std::string file = kDeltaPrefix + std::to_string(next.generation) + ".vecpack";
  encoded.save((fs::path(w.folder) / file).string());
  next.shards.push_back(shard_entry(w.folder, file, encoded, first_row));
  next.rows = first_row + encoded.size();
  if (!replaced.empty())
    next.deleted = write_deleted(w.folder, next.generation, sorted_union(TableChanges::deleted(w.table), replaced));
  w.publish(previous, next);
  return w.table;
}

const Table& TableWriter::remove(const std::vector<std::string>& keys) {
  return remove_ids(TableChanges::ids_of_keys(impl_->table, keys));
}

const Table& TableWriter::remove_ids(const std::vector<int64_t>& ids) {
  Impl& w = *impl_;
  TableChanges::check_ids(w.table, ids);
  const Manifest previous = w.manifest();
  Manifest next = previous;
  next.generation = previous.generation + 1;
  next.deleted = write_deleted(w.folder, next.generation, sorted_union(TableChanges::deleted(w.table), ids));
  w.publish(previous, next);
  return w.table;
}

const Table& TableWriter::compact() {
  Impl& w = *impl_;
  const Manifest previous = w.manifest();
  if (previous.generation == 0 && previous.deleted.file.empty()) return w.table;  // nothing changed
  const Table compacted = w.table.compacted();
  Manifest next;
  next.rows = compacted.size();
  next.dim = previous.dim;
  next.metric = previous.metric;
  next.keys = previous.keys;
  next.spec = previous.spec;
  next.fingerprint = previous.fingerprint;
  next.rerank_spec = previous.rerank_spec;
  next.partition_fingerprint = previous.partition_fingerprint;
  next.generation = previous.generation + 1;
  const std::string file = kCompactedPrefix + std::to_string(next.generation) + ".vecpack";
  const std::string compacted_path = (fs::path(w.folder) / file).string();
  compacted.save(compacted_path);
  next.shards.push_back(shard_entry(w.folder, file, compacted, 0));
  if (!w.file_table) {
    w.publish(previous, next);
    return w.table;
  }
  // A file: the compacted rows become the file itself. Each step leaves a complete table: the
  // manifest names the compacted copy; then the file is that copy (a second link, renamed over
  // it); then the manifest goes and the file is read alone.
  write_manifest_file(w.folder, next);
  const std::string staged = w.path + ".tmp-compact";
  std::error_code error;
  fs::remove(staged, error);
  if (link(compacted_path.c_str(), staged.c_str()) != 0)
    throw IoError(staged, std::string("cannot be linked to the compacted table: ") + std::strerror(errno));
  if (rename(staged.c_str(), w.path.c_str()) != 0) throw IoError(w.path, std::string("cannot be replaced: ") + std::strerror(errno));
  fsync_folder(fs::path(w.path).parent_path().string());
  fs::remove(fs::path(w.folder) / kManifestName, error);
  fsync_folder(w.folder);
  vacuum();
  w.table = Table::open(w.path);
  return w.table;
}

size_t TableWriter::vacuum() {
  Impl& w = *impl_;
  std::error_code error;
  std::set<std::string> used{kManifestName, kLockName};
  if (fs::exists(fs::path(w.folder) / kManifestName, error)) {
    const Manifest m = read_manifest(w.folder);
    used.insert(m.deleted.file);
    for (const auto& shard : m.shards) used.insert(shard.file);
  }
  // Only files writers make: a folder may hold other files of its owner's.
  auto written_by_writers = [](const std::string& name) {
    for (const char* prefix : {kDeltaPrefix, kDeletedPrefix, kCompactedPrefix})
      if (name.rfind(prefix, 0) == 0) return true;
    return name.find(".tmp-") != std::string::npos;
  };
  size_t removed = 0;
  for (const auto& entry : fs::directory_iterator(w.folder, error)) {
    const std::string name = entry.path().filename().string();
    if (used.count(name) || !entry.is_regular_file(error) || !written_by_writers(name)) continue;
    if (fs::remove(entry.path(), error)) ++removed;
  }
  if (w.file_table && fs::remove(w.path + ".tmp-compact", error)) ++removed;
  return removed;
}

}  // namespace vecpack
