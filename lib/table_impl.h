// Internal state behind Table handles.
#pragma once

#include <algorithm>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "partition.h"
#include "row_store.h"
#include "vecpack/table.h"
#include "vocabulary.h"

namespace vecpack {

// An n-gram pool that answers keys the table does not have (see SubwordScheme).
struct SubwordPool {
  SubwordScheme scheme;
  Table pool;  // unkeyed, the table's dimension
};

// The keys of a table's rows: one VOCB section, or for a sharded table one per shard, each
// covering a contiguous range of rows.
class KeyIndex {
 public:
  struct Part {
    VocabularyView view;
    uint64_t first_row = 0;
    std::shared_ptr<const void> owner;  // keeps the VOCB bytes alive (mapping or buffer)
    const uint8_t* bytes = nullptr;
    uint64_t size = 0;
  };
  void add(Part part) {
    rows_ += part.view.size();
    parts_.push_back(std::move(part));
  }
  bool empty() const { return rows_ == 0; }
  uint64_t rows() const { return rows_; }
  uint64_t bytes() const {
    uint64_t total = 0;
    for (const Part& p : parts_) total += p.size;
    return total;
  }
  // The row of key; a row the filter does not allow (deleted) is skipped, so a key replaced in a
  // later part resolves there.
  std::optional<uint64_t> find(std::string_view key, const RowFilter& live = {}) const {
    for (const Part& p : parts_)
      if (auto row = p.view.find(key))
        if (live.allows(static_cast<int64_t>(p.first_row + *row))) return p.first_row + *row;
    return std::nullopt;
  }
  std::string_view key(uint64_t row) const {
    auto after = std::upper_bound(parts_.begin(), parts_.end(), row,
                                  [](uint64_t r, const Part& p) { return r < p.first_row; });
    const Part& p = *(after - 1);  // parts start at row 0
    return p.view.key(row - p.first_row);
  }
  const std::vector<Part>& parts() const { return parts_; }

 private:
  std::vector<Part> parts_;
  uint64_t rows_ = 0;
};

// A sharded table's row counts, gathered from its shards on first use, so that opening stays
// O(1) in the rows.
struct ShardCounts {
  std::vector<Table> shards;
  std::once_flag gathered;
  std::vector<uint64_t> values;  // empty when a shard has none
};

struct Table::Impl {
  std::shared_ptr<const RowStore> store;
  std::shared_ptr<const Partition> partition;  // an inverted-file partition of store's rows; null: none
  RecallCurve recall_curve;                     // the partition's, measured when it was built; empty: none
  KeyIndex keys;
  std::shared_ptr<const SubwordPool> subwords;  // null: none
  std::shared_ptr<const RowStore> rerank;       // the same rows, encoded again for rescoring; null: none
  const uint32_t* row_tables = nullptr;         // size() feature-table ids (RTBL), or null
  std::shared_ptr<const void> row_tables_owner;  // keeps them alive (mapping or buffer)
  const uint64_t* counts = nullptr;             // size() row counts (FREQ), or null
  std::shared_ptr<const void> counts_owner;     // keeps them alive (mapping or buffer)
  std::shared_ptr<ShardCounts> shard_counts;    // a sharded table's, when counts is null

  // The rows' counts, or null: FREQ, or a sharded table's shards' gathered.
  const uint64_t* row_counts() const {
    if (counts || !shard_counts) return counts;
    std::call_once(shard_counts->gathered, [this] {
      std::vector<uint64_t> all;
      for (const Table& shard : shard_counts->shards) {
        const uint64_t* part = shard.counts();
        if (!part) return;
        all.insert(all.end(), part, part + shard.size());
      }
      shard_counts->values = std::move(all);
    });
    return shard_counts->values.empty() ? nullptr : shard_counts->values.data();
  }
  std::shared_ptr<const void> row_counts_owner() const {
    return counts ? counts_owner : std::shared_ptr<const void>(shard_counts);
  }
  // A table that has changed: its deleted ids (ascending), the filter that leaves them out of
  // every search (inactive when none), its generation and the rows added since compaction.
  std::vector<int64_t> deleted;
  RowFilter live;
  uint64_t generation = 0;
  size_t added_rows = 0;
  void set_deleted(std::vector<int64_t> ids) {
    deleted = std::move(ids);
    live = deleted.empty() ? RowFilter() : RowFilter::deny(deleted.data(), deleted.size(), store->rows());
  }

  std::vector<SectionInfo> sections;  // of the file, when opened from one
  uint64_t file_bytes = 0;
  std::vector<TableInfo::Shard> shards;  // of a sharded table
};

// `rows` encoded as `model` encodes its own: with its trained codec, its ivf partition and its
// trained rerank codec (table.cc).
std::shared_ptr<Table::Impl> encode_like(const Table::Impl& model, const Table& rows, const Table::Impl& rows_impl,
                                         const CompressOptions& options);

// The table's keys by position, for codecs that derive rows from them (Codec::bind_keys);
// empty when there are none. The lookup keeps the key bytes alive.
inline KeyLookup key_lookup(const KeyIndex& keys) {
  if (keys.empty()) return {};
  return [keys](size_t row) { return keys.key(row); };
}

}  // namespace vecpack
