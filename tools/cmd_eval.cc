// vecpack eval FILE --dataset X.hdf5 | --reference TABLE: what compression cost, measured.
#include <cstdio>

#include "cli_common.h"
#include "measure.h"

namespace vecpack::cli {

static nlohmann::json optional_json(const std::optional<double>& v) { return v ? nlohmann::json(*v) : nlohmann::json(); }

void add_eval(CLI::App& app, Globals&) {
  struct Options {
    std::string file, dataset, reference, metric;
    size_t queries = 1000, k = 10, runs = 3;
    unsigned threads = 0;
    size_t rerank = 0;
    size_t nprobe = 0;
    double recall = 0;
    std::string funnel;
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
  cmd->add_option("--rerank", o->rerank, "Rescore a shortlist of N candidates with the file's rerank rows");
  cmd->add_option("--nprobe", o->nprobe, "Lists each query scans in a table compressed with an ivf stage (0: all)");
  cmd->add_option("--recall", o->recall,
                  "Instead of --nprobe: a recall@10 to reach, e.g. 0.95 (an ivf table picks its lists from the recall it "
                  "measured when compressed; see inspect)");
  cmd->add_option("--funnel", o->funnel, "Measure funnel search, e.g. 32:1000,full (see vecpack search --funnel)");
  cmd->add_option("--metric", o->metric, "ip, cos or l2 (default: the dataset's or the table's)");
  cmd->add_option("--runs", o->runs, "Timed search runs; the median is reported")->capture_default_str();
  cmd->add_option("--seed", o->seed, "Seed for sampling queries")->capture_default_str();
  cmd->add_flag("--json", o->json, "One JSON object on stdout");
  cmd->callback([o] {
    if (o->dataset.empty() && o->reference.empty()) throw Error("eval needs --dataset FILE.hdf5 or --reference TABLE");
    if (o->k == 0 || o->queries == 0) throw Error("-k and --queries must be at least 1");
    SearchOptions search;
    if (!o->funnel.empty()) search.funnel = parse_funnel(o->funnel);
    search.threads = o->threads;
    search.k = o->k;
    search.rerank = o->rerank;
    search.nprobe = o->nprobe;
    search.recall = o->recall;
    Table t = Table::open(o->file);
    Metric metric = o->metric.empty() ? t.metric() : parse_metric(o->metric);
    if (!search.funnel.empty()) {  // fails now, not after computing the ground truth, when the table cannot funnel
      std::vector<float> probe(t.dim(), 1.f);
      t.search(probe.data(), 1, search, metric);
    }
    GroundTruth truth = o->dataset.empty()
                            ? truth_from_rows(load_table(o->reference, "", ReadOptions{}), o->reference, o->queries, metric,
                                              o->seed, o->threads)
                            : truth_from_dataset(o->dataset, o->queries);
    if (o->metric.empty() && !o->dataset.empty()) metric = truth.metric;
    Quality q = measure_quality(t, truth, metric, search);
    Spread seconds = time_search(t, truth, metric, search, o->runs);

    TableInfo info = t.info();
    const double bpv = bytes_per_vector(t);
    const unsigned threads = threads_in_use(o->threads);
    nlohmann::json j;
    j["file"] = o->file;
    j["codec"] = info.spec;
    j["rows"] = info.rows;
    j["dim"] = info.dim;
    j["metric"] = metric_name(metric);
    j["bytes_per_vector"] = bpv;
    j["code_size"] = info.rows ? info.code_bytes / info.rows : 0;
    j["compression_ratio"] = 4.0 * double(info.dim) / bpv;
    j["file_bytes"] = info.file_bytes;
    j["queries"] = truth.nq;
    j["k"] = o->k;
    j["threads"] = threads;
    if (!o->funnel.empty()) j["funnel"] = o->funnel;
    j["recall@1"] = optional_json(q.recall1);
    j["recall@10"] = optional_json(q.recall10);
    j["recall@100"] = optional_json(q.recall100);
    j["mse"] = optional_json(q.mse);
    j["qps"] = double(truth.nq) / seconds.median;
    j["search_seconds"] = {{"median", seconds.median}, {"min", seconds.min}, {"max", seconds.max}};
    j["isa"] = kernel_isa();
    if (o->json) return print_json(j);
    auto fmt = [](const std::optional<double>& v) { return v ? std::to_string(*v).substr(0, 6) : std::string("-"); };
    std::printf("%s (%s) against %s: %zu queries, metric %s\n", o->file.c_str(), info.spec.c_str(), truth.name.c_str(),
                truth.nq, metric_name(metric));
    if (!o->funnel.empty()) std::printf("  funnel search %s\n", o->funnel.c_str());
    std::printf("  bytes per vector  %.2f   (f32: %zu, %.1fx smaller)\n", bpv, 4 * info.dim, 4.0 * info.dim / bpv);
    std::printf("  recall@1 %s   recall@10 %s   recall@100 %s\n", fmt(q.recall1).c_str(), fmt(q.recall10).c_str(),
                fmt(q.recall100).c_str());
    if (q.mse) std::printf("  reconstruction MSE  %.3g\n", *q.mse);
    std::printf("  %.0f queries/s (k=%zu, %u threads, kernels %s)\n", j["qps"].get<double>(), o->k, threads, kernel_isa());
  });
}

}  // namespace vecpack::cli
