// RowStore: what a table holds for its rows. The engine, the file writer, the CLI and the
// bindings see only this interface. Per-vector codecs use CodesStore (a codes section plus the
// codec); codecs whose rows share parameters implement RowStore themselves.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string_view>

#include "container.h"
#include "vecpack/codec.h"

namespace vecpack {

// Scores row ranges of one store against a fixed query batch. Safe to call from many threads.
class RowScorer {
 public:
  virtual ~RowScorer() = default;
  // out[q * ld + i] for rows begin..begin+count; larger is better (see CodeScorer).
  virtual void score(size_t begin, size_t count, float* out, size_t ld) const = 0;
  // For each of the nq queries, the rows begin..begin+count whose score is above thresholds[q]
  // (see CodeScorer::select_above); rows in out are relative to begin. The default scores all.
  virtual void select_above(size_t begin, size_t count, size_t nq, const float* thresholds, BlockCandidates& out) const;
};

// The section types that hold one set of rows: the table's own rows use CODC/CODE; other row
// sets in the same file (a subword pool, rerank codes) use their own pair.
struct StoreSections {
  std::string_view codec = "CODC";
  std::string_view codes = "CODE";
};

class RowStore {
 public:
  virtual ~RowStore() = default;
  virtual size_t rows() const = 0;
  virtual size_t dim() const = 0;
  virtual const Codec& codec() const = 0;
  virtual void reconstruct(size_t begin, size_t count, float* out) const = 0;
  // queries: nq x dim in the table's space (unit length for cos).
  virtual std::unique_ptr<RowScorer> scorer(const float* queries, size_t nq, Metric metric) const = 0;
  // Scores that bound the original rows' scores from above (Quantizer::upper_bound_scorer);
  // null when the rows have no such bound.
  virtual std::unique_ptr<RowScorer> upper_bound_scorer(const float*, size_t, Metric) const { return nullptr; }
  // Rows [begin, begin + count) as a store of their own, sharing this one's data; Error when
  // the rows cannot be taken apart.
  virtual std::shared_ptr<const RowStore> slice(size_t begin, size_t count) const;
  virtual uint64_t code_bytes() const = 0;
  virtual uint64_t parameter_bytes() const = 0;
  // Writes the codec, the codes and whatever other sections the rows need.
  virtual void write(ContainerWriter& writer, const StoreSections& sections = {}) const = 0;
};

class CodesStore final : public RowStore {
 public:
  // codes: rows x codec.code_size() bytes, kept alive by owner. first_row: the position of the
  // first of them in their table (a slice's rows keep their place for codecs that need it).
  CodesStore(std::shared_ptr<const Codec> codec, const uint8_t* codes, size_t rows, std::shared_ptr<const void> owner,
             size_t first_row = 0);
  // Reads the codec and codes sections from a container; the codes are used in place. keys: the
  // table's, bound to a codec that derives rows from keys (Codec::needs_keys).
  static std::shared_ptr<CodesStore> open(const ContainerReader& file, size_t rows, size_t dim,
                                          const StoreSections& sections = {}, const KeyLookup& keys = {});

  size_t rows() const override { return rows_; }
  size_t dim() const override { return codec_->dim(); }
  const Codec& codec() const override { return *codec_; }
  void reconstruct(size_t begin, size_t count, float* out) const override;
  std::unique_ptr<RowScorer> scorer(const float* queries, size_t nq, Metric metric) const override;
  std::unique_ptr<RowScorer> upper_bound_scorer(const float* queries, size_t nq, Metric metric) const override;
  std::shared_ptr<const RowStore> slice(size_t begin, size_t count) const override;
  uint64_t code_bytes() const override { return uint64_t(rows_) * code_size_; }
  uint64_t parameter_bytes() const override { return parameters_; }
  void write(ContainerWriter& writer, const StoreSections& sections = {}) const override;
  const uint8_t* codes() const { return codes_; }

 private:
  std::shared_ptr<const Codec> codec_;
  const uint8_t* codes_;
  size_t rows_, code_size_, first_row_;
  uint64_t parameters_;
  std::shared_ptr<const void> owner_;
  std::shared_ptr<const MappedFile> mapping_;  // set when the codes are in a mapped file
  mutable std::atomic<bool> scanned_{false};
  mutable std::once_flag layout_built_;
  mutable std::shared_ptr<const ScanLayout> layout_;  // the codec's scan layout, built on the first search
};

}  // namespace vecpack
