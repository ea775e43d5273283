// vecpack eval FILE --dataset X.hdf5 | --reference TABLE: what compression cost, measured.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <thread>
#include <unordered_set>

#include "cli_common.h"

namespace vecpack::cli {
namespace {

struct Truth {
  std::vector<float> queries;           // nq x d
  std::vector<int64_t> neighbours;      // nq x depth, exact, best first
  std::vector<int64_t> exclude;         // per query: a row left out of both lists (its own), or -1
  size_t nq = 0, depth = 0;
  Metric metric = Metric::cos;
  Table originals;                      // rows in the same order as the evaluated table, for MSE
  std::string name;
};

Truth from_dataset(const std::string& path, size_t max_queries) {
  AnnDataset ds = read_ann_dataset(path, /*load_train=*/true);
  Truth t;
  t.nq = std::min(max_queries, ds.test_rows);
  t.depth = ds.neighbors_k;
  t.queries.assign(ds.test.begin(), ds.test.begin() + t.nq * ds.dim);
  t.neighbours.resize(t.nq * t.depth);
  for (size_t i = 0; i < t.nq * t.depth; ++i) t.neighbours[i] = ds.neighbors[i];
  t.exclude.assign(t.nq, -1);
  t.metric = ds.metric;
  t.originals = std::move(ds.train);
  t.name = path;
  return t;
}

// Queries are rows of the reference itself; each query's own row is left out of both lists.
Truth from_reference(const std::string& path, size_t max_queries, Metric metric, uint64_t seed, unsigned threads) {
  Truth t;
  t.originals = load_table(path, "", ReadOptions{});
  t.metric = metric;
  t.name = path;
  const size_t n = t.originals.size(), d = t.originals.dim();
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
  SearchOptions options;
  options.k = t.depth + 1;
  options.threads = threads;
  SearchResult r = t.originals.search(t.queries.data(), t.nq, options, metric);
  for (size_t q = 0; q < t.nq; ++q) {
    size_t kept = 0;
    for (size_t j = 0; j < r.k && kept < t.depth; ++j)
      if (r.ids_of(q)[j] != t.exclude[q]) t.neighbours.push_back(r.ids_of(q)[j]), ++kept;
    for (; kept < t.depth; ++kept) t.neighbours.push_back(-1);
  }
  return t;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

void add_eval(CLI::App& app, Globals&) {
  struct Options {
    std::string file, dataset, reference, metric;
    size_t queries = 1000, k = 10, runs = 3;
    unsigned threads = 0;
    uint64_t seed = 1234;
    bool json = false;
  };
  auto o = std::make_shared<Options>();
  auto* cmd = app.add_subcommand("eval", "Measure size, recall, reconstruction error and speed of a .vecpack file");
  cmd->add_option("file", o->file, ".vecpack file")->required();
  auto* dataset = cmd->add_option("--dataset", o->dataset, "ann-benchmarks HDF5 file (test queries, exact neighbours)");
  auto* reference = cmd->add_option("--reference", o->reference, "The uncompressed table; queries are sampled from its rows");
  dataset->excludes(reference);
  cmd->add_option("--queries", o->queries, "Number of queries")->capture_default_str();
  cmd->add_option("-k", o->k, "Neighbours per query for the speed figure")->capture_default_str();
  cmd->add_option("--threads", o->threads, "Threads (0: one per core)");
  cmd->add_option("--metric", o->metric, "ip, cos or l2 (default: the dataset's or the table's)");
  cmd->add_option("--runs", o->runs, "Timed search runs; the median is reported")->capture_default_str();
  cmd->add_option("--seed", o->seed, "Seed for sampling queries")->capture_default_str();
  cmd->add_flag("--json", o->json, "One JSON object on stdout");
  cmd->callback([o] {
    if (o->dataset.empty() && o->reference.empty()) throw Error("eval needs --dataset FILE.hdf5 or --reference TABLE");
    if (o->k == 0 || o->queries == 0) throw Error("-k and --queries must be at least 1");
    Table t = Table::open(o->file);
    Metric metric = o->metric.empty() ? t.metric() : parse_metric(o->metric);
    Truth truth = o->dataset.empty() ? from_reference(o->reference, o->queries, metric, o->seed, o->threads)
                                     : from_dataset(o->dataset, o->queries);
    if (o->metric.empty() && !o->dataset.empty()) metric = truth.metric;
    if (truth.originals.dim() != t.dim())
      throw Error("dimension " + std::to_string(t.dim()) + " of " + o->file + " differs from " + std::to_string(truth.originals.dim()) +
                  " of " + truth.name);
    const size_t d = t.dim(), nq = truth.nq;

    // Recall: found top-r against exact top-r, for r = 1, 10, 100 where the truth is deep enough.
    SearchOptions deep;
    deep.k = std::min(truth.depth, t.size()) + 1;
    deep.threads = o->threads;
    SearchResult found = t.search(truth.queries.data(), nq, deep, metric);
    nlohmann::json j;
    for (size_t r : {size_t(1), size_t(10), size_t(100)}) {
      std::string name = "recall@" + std::to_string(r);
      if (r > truth.depth) {
        j[name] = nullptr;
        continue;
      }
      double total = 0;
      for (size_t q = 0; q < nq; ++q) {
        std::unordered_set<int64_t> want(truth.neighbours.begin() + q * truth.depth, truth.neighbours.begin() + q * truth.depth + r);
        size_t kept = 0, hits = 0;
        for (size_t i = 0; i < found.k && kept < r; ++i) {
          int64_t id = found.ids_of(q)[i];
          if (id < 0 || id == truth.exclude[q]) continue;
          ++kept;
          hits += want.count(id);
        }
        total += double(hits) / double(r);
      }
      j[name] = total / double(nq);
    }

    // Reconstruction error against the original rows, on an even sample of up to 10,000 rows.
    if (truth.originals.size() == t.size()) {
      size_t samples = std::min<size_t>(10000, t.size()), step = t.size() / samples;
      std::vector<float> a(d), b(d);
      double err = 0;
      for (size_t s = 0; s < samples; ++s) {
        truth.originals.reconstruct(s * step, 1, a.data());
        t.reconstruct(s * step, 1, b.data());
        for (size_t i = 0; i < d; ++i) err += double(a[i] - b[i]) * double(a[i] - b[i]);
      }
      j["mse"] = err / double(samples * d);
    } else {
      j["mse"] = nullptr;
    }

    // Speed: the median of several timed runs at the requested k.
    SearchOptions timed;
    timed.k = o->k;
    timed.threads = o->threads;
    std::vector<double> runs;
    for (size_t i = 0; i < std::max<size_t>(1, o->runs); ++i) {
      auto start = std::chrono::steady_clock::now();
      t.search(truth.queries.data(), nq, timed, metric);
      runs.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    }
    double seconds = median(runs);

    TableInfo info = t.info();
    double bpv = double(info.code_bytes + info.parameter_bytes) / double(std::max<size_t>(1, info.rows));
    j["file"] = o->file;
    j["codec"] = info.spec;
    j["rows"] = info.rows;
    j["dim"] = d;
    j["metric"] = metric_name(metric);
    j["bytes_per_vector"] = bpv;
    j["code_size"] = info.rows ? info.code_bytes / info.rows : 0;
    j["compression_ratio"] = 4.0 * double(d) / bpv;
    j["file_bytes"] = info.file_bytes;
    j["queries"] = nq;
    j["k"] = o->k;
    j["threads"] = o->threads ? o->threads : std::max(1u, std::thread::hardware_concurrency());
    j["qps"] = double(nq) / seconds;
    j["search_seconds"] = seconds;
    j["search_seconds_all"] = runs;
    j["isa"] = kernel_isa();
    if (o->json) return print_json(j);
    auto fmt = [](const nlohmann::json& v) { return v.is_null() ? std::string("-") : std::to_string(v.get<double>()).substr(0, 6); };
    std::printf("%s (%s) against %s: %zu queries, metric %s\n", o->file.c_str(), info.spec.c_str(), truth.name.c_str(), nq,
                metric_name(metric));
    std::printf("  bytes per vector  %.2f   (f32: %zu, %.1fx smaller)\n", bpv, 4 * d, 4.0 * d / bpv);
    std::printf("  recall@1 %s   recall@10 %s   recall@100 %s\n", fmt(j["recall@1"]).c_str(), fmt(j["recall@10"]).c_str(),
                fmt(j["recall@100"]).c_str());
    if (!j["mse"].is_null()) std::printf("  reconstruction MSE  %.3g\n", j["mse"].get<double>());
    std::printf("  %.0f queries/s (k=%zu, %u threads, kernels %s)\n", j["qps"].get<double>(), o->k, j["threads"].get<unsigned>(),
                kernel_isa());
  });
}

}  // namespace vecpack::cli
