#include "measure.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>
#include <unordered_set>

#include "cli_common.h"

namespace vecpack::cli {

GroundTruth truth_from_dataset(const std::string& path, size_t max_queries) {
  AnnDataset ds = read_ann_dataset(path, /*load_train=*/true);
  GroundTruth t;
  t.nq = std::min(max_queries, ds.test_rows);
  t.depth = ds.neighbors_k;
  t.queries.assign(ds.test.begin(), ds.test.begin() + t.nq * ds.dim);
  t.neighbours.assign(ds.neighbors.begin(), ds.neighbors.begin() + t.nq * t.depth);
  t.exclude.assign(t.nq, -1);
  t.metric = ds.metric;
  t.originals = std::move(ds.train);
  t.name = path;
  return t;
}

// Exact neighbours by searching the f32 rows, dropping each query's excluded row.
static void search_exact(GroundTruth& t, unsigned threads) {
  SearchOptions options;
  options.k = std::min(t.depth + 1, t.originals.size());
  options.threads = threads;
  SearchResult r = t.originals.search(t.queries.data(), t.nq, options, t.metric);
  t.neighbours.clear();
  for (size_t q = 0; q < t.nq; ++q) {
    size_t kept = 0;
    for (size_t j = 0; j < r.k && kept < t.depth; ++j)
      if (r.ids_of(q)[j] != t.exclude[q] && r.ids_of(q)[j] >= 0) t.neighbours.push_back(r.ids_of(q)[j]), ++kept;
    for (; kept < t.depth; ++kept) t.neighbours.push_back(-1);
  }
}

GroundTruth truth_from_rows(Table originals, std::string name, size_t max_queries, Metric metric, uint64_t seed,
                            unsigned threads) {
  GroundTruth t;
  t.originals = std::move(originals);
  t.metric = metric;
  t.name = std::move(name);
  const size_t n = t.originals.size(), d = t.originals.dim();
  if (n < 2) throw Error(t.name + ": needs at least 2 rows to sample queries from");
  t.nq = std::min(max_queries, n);
  t.depth = std::min<size_t>(100, n - 1);
  std::mt19937_64 rng(seed);
  std::vector<size_t> rows(n);
  for (size_t i = 0; i < n; ++i) rows[i] = i;
  for (size_t i = 0; i < t.nq; ++i) std::swap(rows[i], rows[i + rng() % (n - i)]);
  t.queries.resize(t.nq * d);
  for (size_t i = 0; i < t.nq; ++i) {
    t.originals.reconstruct(rows[i], 1, t.queries.data() + i * d);
    t.exclude.push_back(static_cast<int64_t>(rows[i]));
  }
  search_exact(t, threads);
  return t;
}

namespace {

constexpr char kCacheMagic[] = "vecpack exact neighbours 1\n";

std::string file_identity(const std::string& path) {
  std::error_code ec;
  auto size = std::filesystem::file_size(path, ec);
  auto time = std::filesystem::last_write_time(path, ec).time_since_epoch().count();
  return std::filesystem::absolute(path, ec).string() + "|" + std::to_string(size) + "|" + std::to_string(time);
}

bool read_cached(const std::string& path, GroundTruth& t) {
  std::ifstream in(path, std::ios::binary);
  char magic[sizeof(kCacheMagic) - 1];
  uint64_t nq = 0, depth = 0;
  if (!in.read(magic, sizeof(magic)) || std::string(magic, sizeof(magic)) != kCacheMagic) return false;
  if (!in.read(reinterpret_cast<char*>(&nq), 8) || !in.read(reinterpret_cast<char*>(&depth), 8)) return false;
  if (nq != t.nq || depth != t.depth) return false;
  t.neighbours.resize(nq * depth);
  return bool(in.read(reinterpret_cast<char*>(t.neighbours.data()), std::streamsize(nq * depth * sizeof(int64_t))));
}

void write_cached(const std::string& path, const GroundTruth& t) {
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    uint64_t nq = t.nq, depth = t.depth;
    out.write(kCacheMagic, sizeof(kCacheMagic) - 1);
    out.write(reinterpret_cast<const char*>(&nq), 8);
    out.write(reinterpret_cast<const char*>(&depth), 8);
    out.write(reinterpret_cast<const char*>(t.neighbours.data()), std::streamsize(t.neighbours.size() * sizeof(int64_t)));
    if (!out) return;  // a cache that cannot be written only costs time next run
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
}

}  // namespace

GroundTruth truth_from_queries(Table originals, std::string name, const Table& queries, size_t max_queries,
                               Metric metric, unsigned threads, const std::string& queries_path,
                               const std::string& cache_dir) {
  if (queries.dim() != originals.dim())
    throw Error("queries have dimension " + std::to_string(queries.dim()) + ", the table " + std::to_string(originals.dim()));
  GroundTruth t;
  t.originals = std::move(originals);
  t.metric = metric;
  t.name = std::move(name);
  t.nq = std::min(max_queries, queries.size());
  t.depth = std::min<size_t>(100, t.originals.size());
  t.queries.resize(t.nq * queries.dim());
  if (t.nq) queries.reconstruct(0, t.nq, t.queries.data());
  t.exclude.assign(t.nq, -1);
  std::string cache;
  if (!cache_dir.empty() && !queries_path.empty()) {
    std::string identity = file_identity(t.name) + "|" + file_identity(queries_path) + "|" + std::to_string(t.nq) +
                           "|" + std::to_string(t.depth) + "|" + metric_name(metric);
    char hex[17];
    std::snprintf(hex, sizeof(hex), "%016zx", std::hash<std::string>{}(identity));
    cache = cache_dir + "/exact-neighbours-" + hex + ".bin";
    if (read_cached(cache, t)) return t;
  }
  search_exact(t, threads);
  if (!cache.empty()) write_cached(cache, t);
  return t;
}

Spread spread_of(std::vector<double> values) {
  if (values.empty()) return {};
  std::sort(values.begin(), values.end());
  return {values[values.size() / 2], values.front(), values.back()};
}

double recall_of(const SearchResult& found, const GroundTruth& truth, size_t r) {
  if (truth.nq == 0) return 0;
  double total = 0;
  for (size_t q = 0; q < truth.nq; ++q) {
    const int64_t* want_begin = truth.neighbours.data() + q * truth.depth;
    const std::unordered_set<int64_t> want(want_begin, want_begin + r);
    size_t kept = 0, hits = 0;
    for (size_t i = 0; i < found.k && kept < r; ++i) {
      const int64_t id = found.ids_of(q)[i];
      if (id < 0 || id == truth.exclude[q]) continue;
      ++kept;
      hits += want.count(id);
    }
    total += double(hits) / double(r);
  }
  return total / double(truth.nq);
}

Quality measure_quality(const Table& table, const GroundTruth& truth, Metric metric, const SearchOptions& search) {
  if (truth.originals.dim() != table.dim())
    throw Error("dimension " + std::to_string(table.dim()) + " differs from " + std::to_string(truth.originals.dim()) +
                " of " + truth.name);
  Quality quality;
  SearchOptions deep = search;
  deep.k = std::min(truth.depth, table.size()) + 1;
  SearchResult found = table.search(truth.queries.data(), truth.nq, deep, metric);
  auto recall_at = [&](size_t r) -> std::optional<double> {
    if (r > truth.depth || truth.nq == 0) return std::nullopt;
    return recall_of(found, truth, r);
  };
  quality.recall1 = recall_at(1);
  quality.recall10 = recall_at(10);
  quality.recall100 = recall_at(100);

  // Reconstruction error against the original rows, on an even sample of up to 10,000 rows.
  if (truth.originals.size() == table.size() && table.size() > 0) {
    const size_t d = table.dim(), samples = std::min<size_t>(10000, table.size()), step = table.size() / samples;
    std::vector<float> a(d), b(d);
    double err = 0;
    for (size_t s = 0; s < samples; ++s) {
      truth.originals.reconstruct(s * step, 1, a.data());
      table.reconstruct(s * step, 1, b.data());
      for (size_t i = 0; i < d; ++i) err += double(a[i] - b[i]) * double(a[i] - b[i]);
    }
    quality.mse = err / double(samples * d);
  }
  return quality;
}

Spread time_search(const Table& table, const GroundTruth& truth, Metric metric, const SearchOptions& options, size_t runs) {
  std::vector<double> seconds;
  for (size_t i = 0; i < std::max<size_t>(1, runs); ++i) {
    auto start = std::chrono::steady_clock::now();
    table.search(truth.queries.data(), truth.nq, options, metric);
    seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  return spread_of(seconds);
}

double bytes_per_vector(const Table& table) {
  TableInfo info = table.info();
  return double(info.code_bytes + info.parameter_bytes + info.partition_bytes + info.rerank_bytes) /
         double(std::max<size_t>(1, info.rows));
}

unsigned threads_in_use(unsigned requested) {
  return requested ? requested : std::max(1u, std::thread::hardware_concurrency());
}

}  // namespace vecpack::cli
