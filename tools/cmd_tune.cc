// vecpack tune DATASET --budget BYTES | --recall R: the codec that loses least within a size
// budget (or the smallest that keeps a recall), chosen on a sample and confirmed on all rows.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <random>

#include "bench_table.h"
#include "cli_common.h"
#include "measure.h"
#include "tune_index.h"

namespace vecpack::cli {
namespace {

struct Candidate {
  std::string spec;
  nlohmann::json sample, full;  // bench rows
  double estimated_bytes = 0;   // per vector on all rows
};

double quality_of(const nlohmann::json& row, const std::string& metric) {
  if (metric == "mse") return row["mse"].is_number() ? -row["mse"].get<double>() : -INFINITY;
  return row["recall@10"].is_number() ? row["recall@10"].get<double>() : -INFINITY;
}

// Better quality first; equal quality prefers lower error, then fewer bytes.
bool ranks_before(const nlohmann::json& a, const nlohmann::json& b, const std::string& metric) {
  double qa = quality_of(a, metric), qb = quality_of(b, metric);
  if (qa != qb) return qa > qb;
  double ma = a["mse"].is_number() ? a["mse"].get<double>() : INFINITY;
  double mb = b["mse"].is_number() ? b["mse"].get<double>() : INFINITY;
  if (ma != mb) return ma < mb;
  return a["bytes_per_vector"].get<double>() < b["bytes_per_vector"].get<double>();
}

std::vector<std::string> registry_grid() {
  std::vector<std::string> specs;
  for (const CodecDescriptor* d : codec_list()) {
    // Codecs with shared parameters are fitted to every row of a table in place: a trial on a
    // sample would not say what they do on the table.
    if (d->kind != StageKind::quantizer || (d->capabilities & (kExperimental | kSharedParameters))) continue;
    if (d->tune_grid.empty()) specs.push_back(d->name);
    for (const char* spec : d->tune_grid) specs.push_back(spec);
  }
  return specs;
}

// Candidates sized to a budget of `budget` bytes per vector (codes plus shared parameters
// spread over `rows` rows, dimension d), so that the budget is used rather than left to the
// fixed sizes of the registry's grid: pq and opq with as many 8-bit sub-quantizers as fit, fast
// scan with twice as many 4-bit ones, fewer and larger 10-bit codebooks, residual quantization,
// the score-aware loss for ip tables, and, when the budget holds an int8 rerank section (d bytes), a pq shortlist
// rescored from it.
std::vector<std::string> budget_grid(double budget, size_t d, size_t rows, Metric metric) {
  std::vector<std::string> specs;
  const double n = static_cast<double>(std::max<size_t>(rows, 1));
  const auto codebook_bytes = [&](unsigned nbits) { return double(d) * double(size_t{1} << nbits) * 4 / n; };
  const auto largest_m = [&](double bytes, unsigned nbits) -> size_t {
    const double room = bytes - codebook_bytes(nbits);
    if (room < 1) return 0;
    return std::min<size_t>(d, static_cast<size_t>(std::floor(room * 8 / nbits)));
  };
  const auto m_spec = [](size_t m, const char* rest = "") { return "pq:m=" + std::to_string(m) + rest; };
  if (const size_t m = largest_m(budget, 8); m >= 1) {
    specs.push_back(m_spec(m));
    specs.push_back("opq:m=" + std::to_string(m) + "/" + m_spec(m));
    if (metric == Metric::ip) specs.push_back(m_spec(m, ",loss=aniso"));
  }
  if (size_t m = largest_m(budget, 4); m >= 2) {
    m -= m % 2;  // whole bytes
    specs.push_back(m_spec(m, ",nbits=4"));
    if (metric == Metric::ip) specs.push_back(m_spec(m, ",nbits=4,loss=aniso"));
  }
  // 10-bit tables (m x 1,024 entries) still score by lookup up to m = 64.
  if (const size_t m = largest_m(budget, 10); m >= 1 && m <= 64) specs.push_back(m_spec(m, ",nbits=10"));
  // rq: one byte per stage and one for the norm, each stage a 256 x d codebook; cos tables put
  // l2norm first, so that the stages spend nothing on row norms the cosine ignores.
  const double per_stage = 1 + 256.0 * double(d) * 4 / n;
  if (budget >= 1 + 2 * per_stage) {
    const size_t m = std::min<size_t>(32, static_cast<size_t>(std::floor((budget - 1) / per_stage)));
    specs.push_back(std::string(metric == Metric::cos ? "l2norm/" : "") + "rq:m=" + std::to_string(m));
  }
  const double rerank_bytes = double(d) + double(d) * 8 / n;  // int8 codes and their ranges
  if (const size_t m = largest_m(budget - rerank_bytes, 8); m >= 4) specs.push_back(m_spec(m, "+int8@100"));
  return specs;
}

// A seeded sample of rows as an f32 table, for the first round.
Table sample_rows(const Table& all, size_t rows, uint64_t seed) {
  const size_t n = all.size(), d = all.dim();
  if (rows >= n) return all;
  std::vector<size_t> index(n);
  for (size_t i = 0; i < n; ++i) index[i] = i;
  std::mt19937_64 rng(seed);
  for (size_t i = 0; i < rows; ++i) std::swap(index[i], index[i + rng() % (n - i)]);
  index.resize(rows);
  std::sort(index.begin(), index.end());
  std::vector<float> x(rows * d);
  for (size_t i = 0; i < rows; ++i) all.reconstruct(index[i], 1, x.data() + i * d);
  return Table::from_rows(std::move(x), d, {}, all.metric());
}

}  // namespace

void add_tune(CLI::App& app, Globals& globals) {
  struct Options {
    std::string dataset, queries_file, metric = "recall@10", table_metric;
    double budget = 0, recall = 0, time_limit = 0;
    size_t queries = 1000, sample = 20000, finalists = 3;
    std::vector<std::string> apply;
    BenchSettings settings;
    bool json = false, index = false;
    std::string index_codec, rerank_codec = "int8";
    std::vector<size_t> lists;
  };
  auto o = std::make_shared<Options>();
  auto* cmd = app.add_subcommand("tune", "Pick the codec for a size budget or a recall target, measured on your data");
  cmd->add_option("dataset", o->dataset, "ann-benchmarks HDF5 file, or any table (queries: --queries FILE or sampled rows)")
      ->required();
  auto* budget = cmd->add_option("--budget", o->budget, "Bytes per vector at most (codes + shared parameters / rows)");
  auto* recall = cmd->add_option("--recall", o->recall, "Smallest codec whose recall@10 reaches this");
  budget->excludes(recall);
  cmd->add_option("--metric", o->metric, "What 'loses least' means with --budget: recall@10 or mse")
      ->check(CLI::IsMember({"recall@10", "mse"}))
      ->capture_default_str();
  cmd->add_option("--time-limit", o->time_limit, "Seconds for the first round; untried candidates are reported as skipped");
  cmd->add_option("--queries", o->queries_file, "File of query vectors (for a dataset that is not ann-benchmarks HDF5)");
  cmd->add_option("-n,--num-queries", o->queries, "Number of queries on all rows")->capture_default_str();
  cmd->add_option("--sample", o->sample, "Rows in the first round")->capture_default_str();
  cmd->add_option("--finalists", o->finalists, "Candidates measured on all rows")->capture_default_str();
  cmd->add_option("--threads", o->settings.threads, "Threads (0: one per core)");
  cmd->add_option("--seed", o->settings.seed, "Seed")->capture_default_str();
  cmd->add_option("--table-metric", o->table_metric, "ip, cos or l2 for a dataset without one");
  cmd->add_option("--apply", o->apply, "IN OUT: compress IN with the winner into OUT")->expected(2);
  cmd->add_flag("--json", o->json, "JSON on stdout");
  auto* index = cmd->add_flag("--index", o->index,
                              "With --recall: the ivf table (lists, nprobe, rerank depth) that reaches it at the most "
                              "queries/s, tuned on half the queries and confirmed on the other half");
  cmd->add_option("--codec", o->index_codec, "With --index: the codec after the ivf stage (default pq:m=dim/2,nbits=4)")
      ->needs(index);
  cmd->add_option("--rerank-codec", o->rerank_codec, "With --index: the rerank rows' codec ('' for none)")
      ->needs(index)
      ->capture_default_str();
  cmd->add_option("--lists", o->lists, "With --index: list counts to try (default: four around sqrt(rows))")
      ->needs(index)
      ->delimiter(',');
  index->excludes(budget);
  cmd->callback([o, &globals] {
    if (o->index) {
      if (o->recall <= 0) throw Error("tune --index needs --recall R: the recall@10 the index must reach");
      IndexTuneRequest request;
      request.dataset = o->dataset;
      request.queries_file = o->queries_file;
      request.table_metric = o->table_metric;
      request.codec = o->index_codec;
      request.rerank_codec = o->rerank_codec;
      request.recall = o->recall;
      request.queries = o->queries;
      request.lists = o->lists;
      request.apply = o->apply;
      request.settings = o->settings;
      request.json = o->json;
      request.chatty = !globals.quiet && ::isatty(STDERR_FILENO);
      auto progress = make_progress(globals);
      return tune_index(request, progress.get());
    }
    if (o->budget <= 0 && o->recall <= 0) throw Error("tune needs --budget BYTES or --recall R");
    if (o->recall > 1) throw Error("--recall is a fraction between 0 and 1");
    const bool chatty = !globals.quiet && ::isatty(STDERR_FILENO);
    auto progress = make_progress(globals);
    auto start = std::chrono::steady_clock::now();  // reset when the first round begins
    auto elapsed = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(); };

    BenchSettings quick = o->settings;
    quick.runs = 1;
    GroundTruth full = load_bench_truth(o->dataset, o->queries_file, o->queries, o->table_metric, quick, progress.get());
    const size_t n = full.originals.size();
    Table sample = sample_rows(full.originals, o->sample, o->settings.seed);
    GroundTruth small = truth_from_rows(sample, "sample", std::min<size_t>(200, sample.size()), full.metric,
                                        o->settings.seed, o->settings.threads);
    std::string scratch = std::filesystem::temp_directory_path().string();

    // Round 1: every candidate on the sample; the time limit counts from here, and at least one
    // candidate is always measured.
    start = std::chrono::steady_clock::now();
    std::vector<Candidate> tried;
    size_t measured = 0;
    std::vector<std::string> skipped;
    std::vector<std::string> grid = registry_grid();
    if (o->budget > 0)
      for (auto& spec : budget_grid(o->budget, full.originals.dim(), n, full.metric))
        if (std::find(grid.begin(), grid.end(), spec) == grid.end()) grid.push_back(std::move(spec));
    for (const auto& spec : grid) {
      if (o->time_limit > 0 && measured > 0 && elapsed() > o->time_limit) {
        skipped.push_back(spec);
        continue;
      }
      if (chatty) std::fprintf(stderr, "sample: %s\n", spec.c_str());
      Candidate c{spec};
      c.sample = bench_spec(sample, small, spec, quick, scratch);
      ++measured;
      c.estimated_bytes = c.sample["code_size"].get<double>() + c.sample["parameter_bytes"].get<double>() / double(n);
      if (o->budget > 0 && c.estimated_bytes > o->budget) continue;
      tried.push_back(std::move(c));
    }
    auto text = [](double v) {
      char buf[32];
      std::snprintf(buf, sizeof(buf), "%g", v);
      return std::string(buf);
    };
    if (tried.empty() && !skipped.empty())
      throw Error("the time limit ended the first round before a codec within the budget was measured; raise --time-limit");
    if (tried.empty())
      throw Error("no codec fits " + text(o->budget) + " bytes per vector (" + std::to_string(full.originals.dim()) +
                  " dimensions); 'vecpack codecs' lists what exists");
    if (o->budget > 0) {
      std::sort(tried.begin(), tried.end(), [&](const Candidate& a, const Candidate& b) {
        return ranks_before(a.sample, b.sample, o->metric);
      });
    } else {
      // Smallest first among those near the target on the sample; the full round decides.
      std::sort(tried.begin(), tried.end(), [&](const Candidate& a, const Candidate& b) {
        bool ra = quality_of(a.sample, "recall@10") >= o->recall - 0.02, rb = quality_of(b.sample, "recall@10") >= o->recall - 0.02;
        if (ra != rb) return ra;
        return a.estimated_bytes < b.estimated_bytes;
      });
    }
    if (tried.size() > o->finalists) tried.resize(o->finalists);

    // Round 2: the finalists on all rows.
    for (auto& c : tried) {
      if (chatty) std::fprintf(stderr, "all rows: %s\n", c.spec.c_str());
      c.full = bench_spec(full.originals, full, c.spec, quick, scratch);
    }
    const Candidate* winner = nullptr;
    for (const auto& c : tried) {
      if (o->budget > 0) {
        if (c.full["bytes_per_vector"].get<double>() > o->budget) continue;
        if (!winner || ranks_before(c.full, winner->full, o->metric)) winner = &c;
      } else {
        if (quality_of(c.full, "recall@10") < o->recall) continue;
        if (!winner || c.full["bytes_per_vector"].get<double>() < winner->full["bytes_per_vector"].get<double>()) winner = &c;
      }
    }
    if (!winner) {
      double best = 0;
      for (const auto& c : tried) best = std::max(best, quality_of(c.full, "recall@10"));
      throw Error("no codec reaches recall@10 " + text(o->recall) + " on all rows (best: " + text(best) + ")");
    }

    nlohmann::json finalists = nlohmann::json::array();
    for (const auto& c : tried) finalists.push_back(c.full);
    nlohmann::json result = {{"dataset", o->dataset},
                             {"rows", n},
                             {"dim", full.originals.dim()},
                             {"metric", metric_name(full.metric)},
                             {"queries", full.nq},
                             {"k", quick.k},
                             {"threads", threads_in_use(o->settings.threads)},
                             {"runs", 1},
                             {"isa", kernel_isa()},
                             {"goal", o->budget > 0 ? nlohmann::json{{"budget", o->budget}, {"metric", o->metric}}
                                                    : nlohmann::json{{"recall@10", o->recall}}},
                             {"winner", winner->full},
                             {"results", finalists},
                             {"skipped", skipped}};
    if (!o->apply.empty()) {
      Table in = load_table(o->apply[0], "", ReadOptions{});
      CompressOptions options;
      options.threads = o->settings.threads;
      options.seed = o->settings.seed;
      options.progress = progress.get();
      in.compress(winner->spec, options).save(o->apply[1]);
      result["applied"] = {{"input", o->apply[0]}, {"output", o->apply[1]}};
    }
    if (o->json) return print_json(result);
    const auto& w = winner->full;
    std::printf("winner: %s   %.1f bytes/vector (%.1fx smaller), recall@10 %.4f, MSE %.3g, %.0f queries/s\n",
                winner->spec.c_str(), w["bytes_per_vector"].get<double>(), w["compression_ratio"].get<double>(),
                quality_of(w, "recall@10"), w["mse"].is_number() ? w["mse"].get<double>() : NAN,
                w["queries_per_second"]["median"].get<double>());
    std::printf("\nfinalists on all rows:\n%s", bench_markdown(result).c_str());
    if (!skipped.empty()) {
      std::printf("\nskipped (time limit):");
      for (const auto& s : skipped) std::printf(" %s", s.c_str());
      std::printf("\n");
    }
    if (!o->apply.empty()) std::printf("\nwrote %s with %s\n", o->apply[1].c_str(), winner->spec.c_str());
  });
}

}  // namespace vecpack::cli
