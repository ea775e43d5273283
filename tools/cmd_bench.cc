// vecpack bench DATASET --codecs SPEC[;SPEC...]: every codec's figures on one data set, side by
// side with FAISS (and its ratio) when asked, as Markdown, CSV, JSON and a recall-vs-bytes plot.
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "bench_table.h"
#include "cli_common.h"
#include "measure.h"
#include "scripts.h"

namespace vecpack::cli {

std::vector<std::string> split_specs(const std::string& text) {  // declared in bench_table.h
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= text.size()) {
    size_t semi = text.find(';', start);
    std::string part = text.substr(start, semi == std::string::npos ? std::string::npos : semi - start);
    while (!part.empty() && part.front() == ' ') part.erase(part.begin());
    while (!part.empty() && part.back() == ' ') part.pop_back();
    if (!part.empty()) out.push_back(part);
    if (semi == std::string::npos) break;
    start = semi + 1;
  }
  return out;
}

static nlohmann::json spread_json(const Spread& s) { return {{"median", s.median}, {"min", s.min}, {"max", s.max}}; }
static nlohmann::json optional_json(const std::optional<double>& v) { return v ? nlohmann::json(*v) : nlohmann::json(); }

// "SPEC+RERANK@N": SPEC's codes shortlist N rows that RERANK's rows rescore, e.g. "pq:m=25+int8@100".
struct RerankedSpec {
  std::string spec, rerank_spec;
  size_t shortlist = 0;
};

static RerankedSpec parse_reranked_spec(const std::string& text) {
  RerankedSpec out{text, "", 0};
  size_t plus = text.find('+');
  if (plus == std::string::npos) return out;
  out.spec = text.substr(0, plus);
  std::string rest = text.substr(plus + 1);
  size_t at = rest.rfind('@');
  try {
    if (at == std::string::npos) throw std::invalid_argument("no @");
    size_t used = 0;
    out.shortlist = std::stoul(rest.substr(at + 1), &used);
    if (used != rest.size() - at - 1 || out.shortlist == 0) throw std::invalid_argument("not a count");
  } catch (const std::exception&) {
    throw SpecError("'" + text + "': a reranked spec is SPEC+RERANK@N, e.g. pq:m=25+int8@100");
  }
  out.rerank_spec = rest.substr(0, at);
  return out;
}

nlohmann::json bench_spec(const Table& base, const GroundTruth& truth, const std::string& spec_text, const BenchSettings& s,
                          const std::string& scratch_dir) {
  const unsigned threads = threads_in_use(s.threads);
  const RerankedSpec reranked = parse_reranked_spec(spec_text);
  const std::string& spec = reranked.spec;
  std::vector<double> train, encode;
  Table packed;
  for (size_t r = 0; r < std::max<size_t>(1, s.runs); ++r) {
    CompressReport report;
    CompressOptions options;
    options.train_size = s.train_size;
    options.threads = s.threads;
    options.seed = s.seed;
    options.report = &report;
    options.rerank_spec = reranked.rerank_spec;
    packed = base.compress(spec, options);
    train.push_back(report.train_seconds);
    encode.push_back(double(base.size()) / std::max(report.encode_seconds, 1e-9));
  }
  // Saved once so the file size on disk is part of the figures.
  std::string path = scratch_dir + "/bench-" + std::to_string(::getpid()) + ".vecpack";
  packed.save(path);
  uint64_t file_bytes = std::filesystem::file_size(path);
  Table mapped = Table::open(path);
  SearchOptions search;
  search.k = s.k;
  search.threads = s.threads;
  search.rerank = reranked.shortlist;
  Quality q = measure_quality(mapped, truth, truth.metric, search);
  Spread seconds = time_search(mapped, truth, truth.metric, search, s.runs);
  std::filesystem::remove(path);

  const double nq = double(truth.nq), n = double(base.size());
  Spread qps_spread{nq / seconds.median, nq / seconds.max, nq / seconds.min};
  Spread codes_spread{n * nq / seconds.median / threads, n * nq / seconds.max / threads, n * nq / seconds.min / threads};
  const double bpv = bytes_per_vector(mapped);
  return {{"library", "vecpack"},
          {"spec", reranked.shortlist ? mapped.spec() + "+" + mapped.info().rerank_spec + "@" +
                                            std::to_string(reranked.shortlist)
                                      : mapped.spec()},
          {"train_seconds", spread_json(spread_of(train))},
          {"encode_vectors_per_second", spread_json(spread_of(encode))},
          {"bytes_per_vector", bpv},
          {"code_size", mapped.info().rows ? mapped.info().code_bytes / mapped.info().rows : 0},
          {"parameter_bytes", mapped.info().parameter_bytes},
          {"file_bytes", file_bytes},
          {"compression_ratio", 4.0 * double(base.dim()) / bpv},
          {"recall@1", optional_json(q.recall1)},
          {"recall@10", optional_json(q.recall10)},
          {"recall@100", optional_json(q.recall100)},
          {"mse", optional_json(q.mse)},
          {"queries_per_second", spread_json(qps_spread)},
          {"codes_per_second_per_core", spread_json(codes_spread)}};
}

GroundTruth load_bench_truth(const std::string& dataset, const std::string& queries_file, size_t queries,
                              const std::string& metric, const BenchSettings& s, Progress* progress,
                              const std::string& cache_dir) {
  const FormatDescriptor& format = detect_format(dataset);
  if (std::string(format.name) == "hdf5" && queries_file.empty() && dataset.find(".h5:") == std::string::npos &&
      dataset.find(".hdf5:") == std::string::npos) {
    GroundTruth t = truth_from_dataset(dataset, queries);
    if (!metric.empty()) throw Error("--metric: an ann-benchmarks dataset fixes its metric (" + std::string(metric_name(t.metric)) + ")");
    return t;
  }
  ReadOptions read;
  read.progress = progress;
  Table base = load_table(dataset, "", read);
  Metric m = metric.empty() ? base.metric() : parse_metric(metric);
  if (queries_file.empty()) return truth_from_rows(std::move(base), dataset, queries, m, s.seed, s.threads);
  Table q = load_table(queries_file, "", ReadOptions{});
  return truth_from_queries(std::move(base), dataset, q, queries, m, s.threads, queries_file, cache_dir);
}

void add_bench(CLI::App& app, Globals& globals) {
  struct Options {
    std::string dataset, codecs, queries_file, out = "vecpack-bench", metric;
    std::vector<std::string> peer_specs = std::vector<std::string>(peers().size());
    size_t queries = 1000;
    BenchSettings settings;
    bool json = false, no_plot = false;
  };
  auto o = std::make_shared<Options>();
  auto* cmd = app.add_subcommand("bench", "Measure codecs on one data set (optionally beside FAISS): table, CSV, JSON, plot");
  cmd->add_option("dataset", o->dataset, "ann-benchmarks HDF5 file, or any table (queries: --queries FILE or sampled rows)")
      ->required();
  cmd->add_option("--codecs", o->codecs, "Codec specs separated by ';', e.g. 'f32;f16;int8'; SPEC+RERANK@N rescores N candidates with a second codec, e.g. 'bf16+f32@100'")->required();
  cmd->add_option("--queries", o->queries_file, "File of query vectors (for a dataset that is not ann-benchmarks HDF5)");
  cmd->add_option("-n,--num-queries", o->queries, "Number of queries")->capture_default_str();
  cmd->add_option("-k", o->settings.k, "Neighbours per query for the speed figures")->capture_default_str();
  cmd->add_option("--threads", o->settings.threads, "Threads (0: one per core)");
  cmd->add_option("--runs", o->settings.runs, "Repetitions of each timed figure (median and spread kept)")->capture_default_str();
  cmd->add_option("--train-size", o->settings.train_size, "Rows sampled for training")->capture_default_str();
  cmd->add_option("--seed", o->settings.seed, "Seed")->capture_default_str();
  cmd->add_option("--metric", o->metric, "ip, cos or l2 for a dataset without one");
  cmd->add_option("--out", o->out, "Folder for bench.md, bench.csv, bench.json and bench.png")->capture_default_str();
  for (size_t p = 0; p < peers().size(); ++p) cmd->add_option(peers()[p].option, o->peer_specs[p], peers()[p].specs_help);
  cmd->add_flag("--no-plot", o->no_plot, "Skip the PNG plot");
  cmd->add_flag("--json", o->json, "Print the JSON result instead of the Markdown table");
  cmd->callback([o, &globals] {
    auto specs = split_specs(o->codecs);
    if (specs.empty()) throw Error("--codecs lists no codec");
    for (const auto& spec : specs) {  // every spec valid before hours of work
      RerankedSpec parsed = parse_reranked_spec(spec);
      Codec check(parsed.spec);
      if (parsed.shortlist) Codec check_rerank(parsed.rerank_spec);
    }
    std::filesystem::create_directories(o->out);
    auto progress = make_progress(globals);
    const bool chatty = !globals.quiet && ::isatty(STDERR_FILENO);

    GroundTruth truth =
        load_bench_truth(o->dataset, o->queries_file, o->queries, o->metric, o->settings, progress.get(), o->out);
    nlohmann::json result = {{"dataset", o->dataset},
                             {"rows", truth.originals.size()},
                             {"dim", truth.originals.dim()},
                             {"metric", metric_name(truth.metric)},
                             {"queries", truth.nq},
                             {"k", o->settings.k},
                             {"threads", threads_in_use(o->settings.threads)},
                             {"runs", o->settings.runs},
                             {"isa", kernel_isa()},
                             {"tool", std::string("vecpack ") + version()}};
    nlohmann::json rows = nlohmann::json::array();
    for (size_t i = 0; i < specs.size(); ++i) {
      if (chatty) std::fprintf(stderr, "[%zu/%zu] %s\n", i + 1, specs.size(), specs[i].c_str());
      rows.push_back(bench_spec(truth.originals, truth, specs[i], o->settings, o->out));
    }
    for (size_t p = 0; p < peers().size(); ++p) {
      const Peer& peer = peers()[p];
      // Position i pairs with the i-th vecpack codec; an empty or '-' entry has no counterpart.
      std::vector<std::string> wanted;
      std::vector<size_t> pair_of;
      size_t position = 0, start = 0;
      const std::string& list = o->peer_specs[p];
      while (start <= list.size() && !list.empty()) {
        size_t semi = list.find(';', start);
        auto parts = split_specs(list.substr(start, semi == std::string::npos ? std::string::npos : semi - start));
        if (!parts.empty() && parts[0] != "-") wanted.push_back(parts[0]), pair_of.push_back(position);
        ++position;
        if (semi == std::string::npos) break;
        start = semi + 1;
      }
      if (wanted.empty()) continue;
      std::string joined;
      for (const auto& w : wanted) joined += (joined.empty() ? "" : ";") + w;
      if (std::string(detect_format(o->dataset).name) != "hdf5" || !o->queries_file.empty())
        throw Error(std::string(peer.option) + " needs an ann-benchmarks HDF5 dataset (train/test/neighbors)");
      if (chatty) std::fprintf(stderr, "%s: %s\n", peer.title, o->peer_specs[p].c_str());
      std::string out;
      int code = run_capture({python_interpreter(), bench_script(peer.script), "--dataset", o->dataset, "--specs",
                              joined, "--queries", std::to_string(truth.nq), "-k", std::to_string(o->settings.k),
                              "--threads", std::to_string(threads_in_use(o->settings.threads)), "--runs",
                              std::to_string(o->settings.runs), "--train-size", std::to_string(o->settings.train_size),
                              "--seed", std::to_string(o->settings.seed)},
                             out);
      nlohmann::json peer_result = nlohmann::json::parse(out.empty() ? "{}" : out, nullptr, false);
      if (code != 0 || peer_result.is_discarded() || peer_result.contains("error"))
        throw Error(std::string("the ") + peer.title + " driver failed (exit " + std::to_string(code) + ")" +
                    (peer_result.is_object() && peer_result.contains("error") ? ": " + peer_result["error"].get<std::string>()
                                                                              : ""));
      result["builds"][peer.library] = peer_result.value("build", "");
      size_t index = 0;
      for (auto& row : peer_result["results"]) {
        if (index < pair_of.size()) row["pair"] = pair_of[index];
        ++index;
        rows.push_back(row);
      }
    }
    result["results"] = rows;

    write_bench_outputs(result, o->out);
    if (!o->no_plot) {
      std::string ignored;
      int code = run_capture({python_interpreter(), bench_script("plot.py"), o->out + "/bench.json", o->out + "/bench.png"}, ignored);
      if (code != 0) std::cerr << "vecpack: warning: no plot (the plot script exited " << code << "; is matplotlib installed?)\n";
    }
    if (o->json) print_json(result);
    else std::cout << bench_markdown(result);
  });
}

}  // namespace vecpack::cli
