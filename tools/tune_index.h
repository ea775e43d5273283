// vecpack tune DATASET --recall R --index: the lists, nprobe and rerank depth of an ivf table
// that reach a recall@10 at the most queries per second, measured on the dataset's queries.
#pragma once

#include <string>
#include <vector>

#include "bench_table.h"

namespace vecpack::cli {

struct IndexTuneRequest {
  std::string dataset, queries_file, table_metric;
  std::string codec;                 // the quantizer chain after the ivf stage; empty: pq:m=d/2,nbits=4
  std::string rerank_codec = "int8";  // empty: no rerank section
  double recall = 0;
  size_t queries = 1000;
  std::vector<size_t> lists;        // empty: four sizes around sqrt(rows)
  std::vector<std::string> apply;   // IN OUT, or empty
  BenchSettings settings;
  bool json = false, chatty = false;
};

void tune_index(const IndexTuneRequest& request, Progress* progress);

}  // namespace vecpack::cli
