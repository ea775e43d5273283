// What eval, bench and tune measure, computed one way: recall against exact neighbours,
// reconstruction error against the original rows, and search speed as a median of runs.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "vecpack/vecpack.h"

namespace vecpack::cli {

// Queries with their exact neighbours among the rows of `originals`, best first.
struct GroundTruth {
  Table originals;                 // the uncompressed rows, in the evaluated tables' row order
  std::vector<float> queries;      // nq x dim
  std::vector<int64_t> neighbours; // nq x depth
  std::vector<int64_t> exclude;    // per query: its own row, left out of every list, or -1
  size_t nq = 0, depth = 0;
  Metric metric = Metric::cos;
  std::string name;
};

// An ann-benchmarks HDF5 file: its train set, test queries and neighbours, and metric.
GroundTruth truth_from_dataset(const std::string& path, size_t max_queries);
// Queries sampled (seeded) from the table's own rows; exact neighbours by f32 search, each
// query's own row left out.
GroundTruth truth_from_rows(Table originals, std::string name, size_t max_queries, Metric metric, uint64_t seed,
                            unsigned threads);
// Separate query vectors; exact neighbours by f32 search over all rows, kept in cache_dir (when
// not empty) under a name derived from both files' paths, sizes and times, so reruns skip it.
GroundTruth truth_from_queries(Table originals, std::string name, const Table& queries, size_t max_queries,
                               Metric metric, unsigned threads, const std::string& queries_path = {},
                               const std::string& cache_dir = {});

struct Spread {
  double median = 0, min = 0, max = 0;
};
Spread spread_of(std::vector<double> values);

struct Quality {
  std::optional<double> recall1, recall10, recall100;  // absent when the truth is not that deep
  std::optional<double> mse;                           // absent when rows do not correspond
};
// recall@r of search results against the truth's first r neighbours (r <= truth.depth); each
// query's excluded row is skipped, so found may hold one row more than r.
double recall_of(const SearchResult& found, const GroundTruth& truth, size_t r);

// `search` says how the table is searched (threads, rerank, funnel); its k is set here.
Quality measure_quality(const Table& table, const GroundTruth& truth, Metric metric, const SearchOptions& search);

// Wall-clock seconds of searching every query at k, over `runs` runs.
Spread time_search(const Table& table, const GroundTruth& truth, Metric metric, const SearchOptions& search, size_t runs);

// Compressed size per row: codes (and rerank codes) plus codec parameters shared by all rows,
// divided by n.
double bytes_per_vector(const Table& table);

unsigned threads_in_use(unsigned requested);

}  // namespace vecpack::cli
