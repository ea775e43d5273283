// Lookup-table scans for codes whose score is a sum of per-codebook table entries: product
// quantization today, additive quantizers alike. A row's code holds m indices of nbits each,
// packed as pq_pack packs them; a query's score of a row is
//   sum over j of table_j(index_j)
// where the codec fills, per query, m tables of 2^nbits floats. Two scorers read such codes:
//   * table_scorer: float tables, any nbits, queries interleaved in groups so that a row's
//     indices are read once for all of them (lib/kernels' pq_scan);
//   * fastscan_scorer: 4-bit indices only, tables quantized to uint8 and looked up 16 rows at a
//     time by byte shuffles (pq4_fastscan), over codes transposed in blocks of 64 rows
//     (fastscan_layout), with a threshold that rules rows out inside the kernel.
// For cos the squared norm of a decoded row must be a sum of per-codebook entries too
// (row_sq_tables; true of pq, whose codebooks cover disjoint dimensions).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "vecpack/codec.h"

namespace vecpack {

struct TableCodes {
  size_t m = 0;        // codebooks (indices per row)
  unsigned nbits = 0;  // bits per index
  size_t ksub() const { return size_t{1} << nbits; }
  size_t code_size() const { return (m * nbits + 7) / 8; }
};

// Fills query q's tables: m x 2^nbits floats, larger is better (for l2, minus the distance terms).
using FillTables = std::function<void(size_t q, float* tables)>;

// row_sq_tables: for cos, m x 2^nbits squared-norm entries whose sum over a row's indices is the
// squared norm of the decoded row; ignored for ip and l2.
std::unique_ptr<CodeScorer> table_scorer(TableCodes codes, size_t nq, Metric metric, const FillTables& fill,
                                         std::vector<float> row_sq_tables);

// Sums of more than this many 4-bit indices could overflow the kernel's uint16 sums.
inline constexpr size_t kFastScanMaxM = 256;

// codes.nbits must be 4 and codes.m at most kFastScanMaxM. Scores are the quantized table sums
// (each off by at most m * scale / 2, see table_scan.cc); a rerank stage gives exact ones.
std::unique_ptr<CodeScorer> fastscan_scorer(TableCodes codes, size_t nq, Metric metric, const FillTables& fill,
                                            std::vector<float> row_sq_tables);

// The layout fastscan_scorer reads: n rows' codes transposed in blocks of 64, with each row's
// cosine scale. Blocks without it (or starting off a 64-row boundary) are transposed per call.
std::shared_ptr<const ScanLayout> fastscan_layout(TableCodes codes, const uint8_t* rows, size_t n,
                                                  const std::vector<float>& row_sq_tables);

}  // namespace vecpack
