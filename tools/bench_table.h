// Shared by bench and tune: one codec's measured figures, and their Markdown/CSV/JSON forms.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "measure.h"

namespace vecpack::cli {

struct BenchSettings {
  size_t k = 10;
  unsigned threads = 0;
  size_t runs = 3;
  size_t train_size = 100000;
  uint64_t seed = 1234;
};

std::vector<std::string> split_specs(const std::string& text);

// Libraries measured beside vecpack, each through a Python driver in tools/bench that takes
// --dataset --specs --queries -k --threads --runs --train-size --seed and prints JSON rows.
struct Peer {
  const char* library;  // "faiss": the value of "library" in its rows
  const char* title;    // "FAISS"
  const char* option;   // "--faiss"
  const char* script;   // "faiss_driver.py"
  const char* specs_help;
};
const std::vector<Peer>& peers();

// Queries and exact neighbours for a bench: an ann-benchmarks HDF5 file as it is; any other
// table with a file of queries (exact neighbours by f32 search, cached in cache_dir when given)
// or with rows sampled as queries.
GroundTruth load_bench_truth(const std::string& dataset, const std::string& queries_file, size_t queries,
                             const std::string& metric, const BenchSettings& s, Progress* progress,
                             const std::string& cache_dir = {});

// Compresses base with spec `runs` times (train and encode timed), saves it once into
// scratch_dir to weigh the file, and measures recall, MSE and search speed.
// One JSON row: library, spec, train_seconds, encode_vectors_per_second, bytes_per_vector,
// file_bytes, compression_ratio, recall@1/10/100, mse, queries_per_second,
// codes_per_second_per_core (timed figures as {median, min, max}).
nlohmann::json bench_spec(const Table& base, const GroundTruth& truth, const std::string& spec, const BenchSettings& s,
                          const std::string& scratch_dir);

// Markdown: vecpack rows, each followed by the peer rows paired with it (a row's "pair" is the
// index of its vecpack row) and the ratio vecpack/peer of every figure.
std::string bench_markdown(const nlohmann::json& result);
// bench.json, bench.csv and bench.md in folder (each written atomically).
void write_bench_outputs(const nlohmann::json& result, const std::string& folder);

}  // namespace vecpack::cli
