// Inverted-file partitions: coarse centroids that split a table's rows into lists, stored list
// by list so that a probed list is one segment of codes (docs/SEARCH.md).
//
// A partition is a layer between the table and its codec, not a codec: the codec encodes the
// rows (or, with residuals, each row minus its list's centroid) and scores blocks exactly as it
// does for a flat table. With residuals, a query is scored against list l as
//   ip:  q . c_l + score(q, residual codes)
//   l2:  score(q - c_l, residual codes)        (-|q - c_l - r|^2 = -|q - x|^2)
// which is exact for the decoded rows; cos would need each decoded row's norm, so a cos table
// partitions without residuals.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "row_store.h"
#include "vecpack/types.h"

namespace vecpack {

struct PartitionSpec {
  size_t lists = 0;
  bool residual = false;
};

// Splits "ivf:lists=N[,residual=on]" off a spec string: returns the partition (lists 0: none)
// and sets `codec_spec` to the remaining stages. The ivf stage may stand anywhere before the
// quantizer; its centroids live in the table's own space, before any transform. Throws
// SpecError for bad arguments and for residuals in a chain with transforms.
PartitionSpec split_partition_spec(std::string_view spec, std::string& codec_spec);

class Partition {
 public:
  // Rows per list a partition trains on, when the table has them.
  static constexpr size_t kTrainRowsPerList = 256;
  // probe() ranks lists in rounds whose ends grow by this factor (1, 4, 16, ...); a search
  // scans a round for every query before the next, with the floors the earlier ones set.
  static constexpr size_t kProbeRoundGrowth = 4;
  struct TrainSettings {
    uint64_t seed = 1234;
    unsigned threads = 0;
    Progress* progress = nullptr;
  };

  // centroids: lists x dim. metric: the table's; for cos the centroids are unit length.
  Partition(size_t dim, std::vector<float> centroids, bool residual, Metric metric);
  // Coarse k-means on n sample rows (unit rows for cos).
  static Partition train(const float* x, size_t n, size_t d, Metric metric, const PartitionSpec& spec,
                         const TrainSettings& settings);

  size_t lists() const { return lists_; }
  size_t dim() const { return d_; }
  bool residual() const { return residual_; }
  Metric metric() const { return metric_; }
  const float* centroid(size_t list) const { return centroids_.data() + list * d_; }
  const std::vector<float>& centroids() const { return centroids_; }
  std::string spec() const;

  // The list of each of n rows: its nearest centroid (of the unit row, for cos).
  void assign(const float* x, size_t n, uint32_t* lists, unsigned threads = 0) const;
  // The nprobe lists each of nq queries probes (nq x nprobe): the best centroid scores for the
  // metric (ip and cos: q . c, l2: -|q - c|^2), ties to the smaller list. They come in rounds
  // of closeness: the best list, then the rest of the best kProbeRoundGrowth, then of the best
  // kProbeRoundGrowth^2, ...; within a round in no particular order. Queries as the engine
  // prepares them (unit length for cos).
  // When dots is not null it receives q . c for each probed list (nq x nprobe, same order).
  std::vector<uint32_t> probe(const float* queries, size_t nq, size_t nprobe, std::vector<float>* dots = nullptr,
                              unsigned threads = 1) const;

 private:
  size_t d_, lists_;
  std::vector<float> centroids_;
  std::vector<float> half_sq_;  // |c|^2 / 2, for l2 probing
  bool residual_;
  Metric metric_;
};

// A partitioned store's segments are its lists in order, once per shard of a sharded table:
// list l is segments l, l + lists, l + 2 * lists, ... (segments may be empty).
inline size_t list_of_segment(size_t segment_index, size_t lists) { return segment_index % lists; }
// Rows in each list, over every shard.
std::vector<size_t> list_rows(const RowStore& store, size_t lists);
// The identity of a trained partition (its centroids and residual flag), for sharded tables.
uint64_t partition_fingerprint(const Partition& partition);

// The IVFC section (docs/FORMAT.md): the partition and the list sizes of `store`, whose
// segments are its lists (see list_of_segment).
std::vector<uint8_t> partition_section(const Partition& partition, const RowStore& store);
// A table's partition from its IVFC section, and the lists as segments of its stored codes
// (n codes in list order, `ids` the row id of each, both kept alive by owner). where: for messages.
struct OpenedPartition {
  std::shared_ptr<const Partition> partition;
  RowStore::Segments lists;
};
OpenedPartition open_partition(const uint8_t* section, size_t size, Metric metric, size_t n, size_t d,
                               const uint8_t* codes, size_t code_size, const int64_t* ids,
                               std::shared_ptr<const void> owner, std::shared_ptr<const MappedFile> mapping,
                               const std::string& where);

// Rows stored list by list: a store with one segment per list (possibly empty), whose id map
// holds the rows' ids in list order. codes: n codes in row (id) order, as a flat store holds
// them; lists: the list of every row.
std::shared_ptr<const RowStore> partitioned_store(std::shared_ptr<const Codec> codec, const uint8_t* codes, size_t n,
                                                  const uint32_t* lists, size_t list_count);

}  // namespace vecpack
