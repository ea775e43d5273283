// What a table holds for its rows: a trained codec and the segments of codes it encoded.
//
// A segment is the unit the search engine scans: a run of consecutive codes whose rows carry
// ids, either id_base + i or ids[i] from an id map. A flat table is one segment; a sharded table
// is its shards' segments with shifted id bases; an inverted file is one segment per list with
// an id map; a table that changes is base and delta segments. The engine, the file writer, the
// CLI and the bindings see only RowStore, and no codec knows which kind of store it serves.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string_view>
#include <vector>

#include "container.h"
#include "vecpack/codec.h"

namespace vecpack {

class MappedFile;

class Segment {
 public:
  // codes: rows x code_size bytes kept alive by owner. id_base: the id of the first row; ids,
  // when not null, the id of every row instead (rows int64 values, also kept alive by owner).
  // position: where the first row lies in the table the codec was fitted to (codecs with
  // shared parameters place rows by it). mapping: the file the codes are mapped from, if any.
  Segment(const uint8_t* codes, size_t rows, int64_t id_base, const int64_t* ids, size_t position,
          std::shared_ptr<const void> owner, std::shared_ptr<const MappedFile> mapping = nullptr);

  const uint8_t* codes() const { return codes_; }
  size_t rows() const { return rows_; }
  int64_t id(size_t row) const { return ids_ ? ids_[row] : id_base_ + static_cast<int64_t>(row); }
  bool has_id_map() const { return ids_ != nullptr; }
  int64_t id_base() const { return id_base_; }
  const int64_t* id_map() const { return ids_; }
  size_t position() const { return position_; }
  const std::shared_ptr<const void>& owner() const { return owner_; }
  const std::shared_ptr<const MappedFile>& mapping() const { return mapping_; }

  // The quantizer's scan layout of these codes (null when it has none), built on the first call;
  // on that call a mapped segment also asks for its codes to be read ahead.
  const ScanLayout* layout(const Quantizer& quantizer, size_t code_size) const;

 private:
  const uint8_t* codes_;
  size_t rows_;
  int64_t id_base_;
  const int64_t* ids_;
  size_t position_;
  std::shared_ptr<const void> owner_;
  std::shared_ptr<const MappedFile> mapping_;
  mutable std::once_flag layout_built_;
  mutable std::shared_ptr<const ScanLayout> layout_;
};

// Codes and row ids held in memory, cut into segments with id maps: segment i holds rows
// [starts[i], starts[i + 1]) and keeps the whole buffer alive.
struct OwnedRows {
  std::vector<uint8_t> codes;
  std::vector<int64_t> ids;
};
std::vector<std::shared_ptr<const Segment>> segments_of(const std::shared_ptr<const OwnedRows>& rows, size_t code_size,
                                                        const std::vector<uint64_t>& starts);

// The section types that hold one set of rows: the table's own rows use CODC/CODE; other row
// sets in the same file (a subword pool, rerank codes) use their own pair.
struct StoreSections {
  std::string_view codec = "CODC";
  std::string_view codes = "CODE";
};

class RowStore {
 public:
  using Segments = std::vector<std::shared_ptr<const Segment>>;
  RowStore(std::shared_ptr<const Codec> codec, Segments segments);
  // One segment of rows x codec.code_size() bytes, ids 0.., kept alive by owner.
  RowStore(std::shared_ptr<const Codec> codec, const uint8_t* codes, size_t rows, std::shared_ptr<const void> owner);
  // Reads the codec and codes sections from a container; the codes are used in place. keys: the
  // table's, bound to a codec that derives rows from keys (kNeedsKeys).
  static std::shared_ptr<RowStore> open(const ContainerReader& file, size_t rows, size_t dim,
                                        const StoreSections& sections = {}, const KeyLookup& keys = {});
  // The rows of several stores of one trained codec as one store: the ids of part p follow
  // those of the parts before it.
  static std::shared_ptr<const RowStore> concatenate(const std::vector<std::shared_ptr<const RowStore>>& parts);

  size_t rows() const { return rows_; }
  size_t dim() const { return codec_->dim(); }
  const Codec& codec() const { return *codec_; }
  const Segments& segments() const { return segments_; }

  struct Location {
    const Segment* segment;
    size_t row;
    size_t segment_index;  // of segment in segments()
  };
  // Where the row with this id is stored; NotFoundError when no row has it.
  Location locate(int64_t id) const;
  // Checks, once, that the segments' ids are the rows' ids 0..rows-1, each once (an id map read
  // from a file may be damaged); FormatError otherwise. Search calls it before reading ids.
  void check_ids() const { id_index(); }
  // The same codec over other segments (the codes of a file regrouped into lists, say).
  std::shared_ptr<const RowStore> regrouped(Segments segments) const;
  // Decodes the rows with ids begin .. begin + count - 1.
  void reconstruct(size_t begin, size_t count, float* out) const;
  // Rows [begin, begin + count) as a store of their own, ids from 0, sharing this one's codes
  // (with id maps: a copy of them that keeps every segment in its place).
  std::shared_ptr<const RowStore> slice(size_t begin, size_t count) const;
  // The rows with these ids (each stored) as a store of one segment, ids 0.. in the given order.
  std::shared_ptr<const RowStore> gathered(const std::vector<int64_t>& ids) const;
  // The rows a filter allows, renumbered 0.. in id order, every segment in its place (an ivf
  // list stays a list); the codes are copied. flat: one segment in id order instead (for a store
  // with no lists), whose codes are then contiguous.
  std::shared_ptr<const RowStore> kept(const RowFilter& keep, bool flat = false) const;
  // The codes of every row in id order when they lie in one run (one segment, ids 0..), else null.
  const uint8_t* contiguous_codes() const;

  uint64_t code_bytes() const { return uint64_t(rows_) * code_size_; }
  uint64_t parameter_bytes() const;
  // Writes the codec and the codes, in id order.
  void write(ContainerWriter& writer, const StoreSections& sections = {}) const;

 private:
  struct ParameterBytes {
    std::once_flag measured;
    uint64_t value = 0;
  };
  struct IdIndex {
    std::once_flag built;
    // Set once built: call_once costs thread-local writes on every call, and locate() runs
    // per rescored row.
    std::atomic<bool> ready{false};
    bool ranges = false;               // each segment holds ids [id_base, id_base + rows)
    std::vector<int64_t> first_ids;    // ranges: each segment's id base, ascending
    std::vector<size_t> order;         // ranges: segment indices in that order
    std::vector<uint64_t> dense;       // otherwise: segment << 40 | row of each id 0..rows-1
  };
  const IdIndex& id_index() const;
  std::shared_ptr<const RowStore> slice_mapped(size_t begin, size_t count) const;

  std::shared_ptr<const Codec> codec_;
  Segments segments_;
  size_t rows_ = 0, code_size_ = 0;
  std::shared_ptr<ParameterBytes> parameter_bytes_;  // shared with slices: measured once
  std::unique_ptr<IdIndex> id_index_;
};

}  // namespace vecpack
