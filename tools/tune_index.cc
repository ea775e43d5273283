// vecpack tune DATASET --recall R --index: builds the ivf table at a few list counts, and for
// each rerank depth finds the fewest lists a query must probe to reach the target on half of
// the queries; the fastest of those wins and is confirmed on the other half.
#include "tune_index.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <optional>

#include "cli_common.h"
#include "measure.h"

namespace vecpack::cli {
namespace {

constexpr size_t kRecallAt = 10;

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Every other query: parity 0 tunes, parity 1 confirms what was tuned on queries it never saw.
GroundTruth every_other(const GroundTruth& all, size_t parity) {
  GroundTruth out;
  out.originals = all.originals;
  out.metric = all.metric;
  out.name = all.name;
  out.depth = all.depth;
  const size_t d = all.originals.dim();
  for (size_t q = parity; q < all.nq; q += 2) {
    out.queries.insert(out.queries.end(), all.queries.begin() + static_cast<std::ptrdiff_t>(q * d),
                       all.queries.begin() + static_cast<std::ptrdiff_t>((q + 1) * d));
    out.neighbours.insert(out.neighbours.end(), all.neighbours.begin() + static_cast<std::ptrdiff_t>(q * all.depth),
                          all.neighbours.begin() + static_cast<std::ptrdiff_t>((q + 1) * all.depth));
    out.exclude.push_back(all.exclude[q]);
    ++out.nq;
  }
  return out;
}

// recall@10 of a search at k = 10 (11 when queries are rows of the table: their own row is
// dropped), as a user searches; measure_quality searches deeper for recall@100.
double recall_at_10(const Table& table, const GroundTruth& truth, SearchOptions options) {
  const bool excluding = std::any_of(truth.exclude.begin(), truth.exclude.end(), [](int64_t row) { return row >= 0; });
  options.k = kRecallAt + (excluding ? 1 : 0);
  if (options.rerank) options.rerank = std::max(options.rerank, options.k);
  return recall_of(table.search(truth.queries.data(), truth.nq, options, truth.metric), truth, kRecallAt);
}

// 1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 14, 16, 20, ... (quarter steps between powers of two: a
// query's cost grows with nprobe, so a coarser ladder overshoots the nprobe a target needs) and
// every list last.
std::vector<size_t> nprobe_ladder(size_t lists) {
  std::vector<size_t> out;
  for (size_t p = 1; p < lists; p *= 2)
    for (size_t step = 0; step < 4; ++step) {
      const size_t nprobe = p + p * step / 4;
      if (nprobe < lists && (out.empty() || nprobe > out.back())) out.push_back(nprobe);
    }
  out.push_back(lists);
  return out;
}

// Four powers of two around sqrt(n), each list holding at least 64 rows on average.
std::vector<size_t> lists_grid(size_t n) {
  size_t base = 1;
  while (base * base * 4 <= n) base *= 2;
  std::vector<size_t> out;
  for (size_t lists : {base / 2, base, base * 2, base * 4})
    if (lists >= 16 && lists * 64 <= n) out.push_back(lists);
  if (out.empty()) out.push_back(std::max<size_t>(1, std::min<size_t>(16, n / 64)));
  return out;
}

struct Trial {
  size_t lists = 0, rerank = 0, nprobe = 0;
  double recall = 0, seconds_per_batch = 0, queries_per_second = 0, build_seconds = 0, bytes_per_vector = 0;
  bool reached = false;
  std::string spec;
};

nlohmann::json trial_json(const Trial& t) {
  nlohmann::json j = {{"spec", t.spec},
                      {"lists", t.lists},
                      {"rerank", t.rerank},
                      {"reached", t.reached},
                      {"recall@10", t.recall},
                      {"bytes_per_vector", t.bytes_per_vector},
                      {"build_seconds", t.build_seconds}};
  j["nprobe"] = t.reached ? nlohmann::json(t.nprobe) : nlohmann::json(nullptr);
  j["queries_per_second"] = t.reached ? nlohmann::json(t.queries_per_second) : nlohmann::json(nullptr);
  return j;
}

std::string fixed(double value, int digits) {
  char text[64];
  std::snprintf(text, sizeof text, "%.*f", digits, value);
  return text;
}

}  // namespace

void tune_index(const IndexTuneRequest& request, Progress* progress) {
  if (!(request.recall > 0 && request.recall <= 1)) throw Error("tune --index needs --recall R with 0 < R <= 1");
  BenchSettings settings = request.settings;
  settings.runs = 1;
  const GroundTruth all = load_bench_truth(request.dataset, request.queries_file, request.queries, request.table_metric,
                                           settings, progress);
  if (all.depth < kRecallAt) throw Error(all.name + ": its neighbour lists hold " + std::to_string(all.depth) + ", recall@10 needs 10");
  if (all.nq < 20) throw Error(all.name + ": " + std::to_string(all.nq) + " queries are too few to tune on half and confirm on the other");
  const GroundTruth tune = every_other(all, 0), confirm = every_other(all, 1);
  const Table& rows = all.originals;
  const size_t n = rows.size(), d = rows.dim();
  const std::string codec = !request.codec.empty() ? request.codec
                            : d % 2 == 0           ? "pq:m=" + std::to_string(d / 2) + ",nbits=4"
                                                   : std::string("int8");
  // Residuals need ip or l2 (a cos table scores unit rows, which residuals are not).
  const bool residual = all.metric != Metric::cos && codec_chain_of(codec).find('/') == std::string::npos;
  const std::vector<size_t> lists_to_try = request.lists.empty() ? lists_grid(n) : request.lists;
  std::vector<size_t> depths{0};
  if (!request.rerank_codec.empty()) depths.insert(depths.end(), {20, 30, 50, 100, 200});

  CompressOptions options;
  options.threads = settings.threads;
  options.seed = settings.seed;
  options.train_size = settings.train_size;
  options.progress = progress;
  options.rerank_spec = request.rerank_codec;

  const auto start = std::chrono::steady_clock::now();
  std::vector<Trial> trials;
  std::optional<Table> best_table;
  std::optional<size_t> best;  // index in trials
  Table rows_for_metric = rows;
  rows_for_metric.set_metric(all.metric);
  for (size_t lists : lists_to_try) {
    if (lists == 0 || lists > n) throw Error("--lists " + std::to_string(lists) + " must be within 1.." + std::to_string(n));
    const std::string spec =
        "ivf:lists=" + std::to_string(lists) + (residual ? ",residual=on" : "") + "/" + codec;
    if (request.chatty) std::fprintf(stderr, "building %s%s\n", spec.c_str(),
                                     request.rerank_codec.empty() ? "" : (" + " + request.rerank_codec + " rerank").c_str());
    const auto build_start = std::chrono::steady_clock::now();
    const Table built = rows_for_metric.compress(spec, options);
    const double build_seconds = seconds_since(build_start);
    const double rerank_bytes = double(built.info().rerank_bytes) / double(std::max<size_t>(n, 1));
    bool improved = false;
    for (size_t depth : depths) {
      Trial trial;
      trial.lists = lists;
      trial.rerank = depth;
      trial.spec = built.spec();
      trial.build_seconds = build_seconds;
      trial.bytes_per_vector = bytes_per_vector(built) - (depth ? 0 : rerank_bytes);  // depth 0 keeps no rerank rows
      SearchOptions search;
      search.threads = settings.threads;
      search.rerank = depth;
      for (size_t nprobe : nprobe_ladder(lists)) {
        search.nprobe = nprobe;
        const double recall = recall_at_10(built, tune, search);
        trial.recall = std::max(trial.recall, recall);
        if (recall >= request.recall) {
          trial.reached = true;
          trial.recall = recall;
          trial.nprobe = nprobe;
          break;
        }
      }
      if (trial.reached) {
        search.k = kRecallAt;
        if (search.rerank) search.rerank = std::max(search.rerank, search.k);
        const Spread spread = time_search(built, tune, tune.metric, search, 3);
        trial.seconds_per_batch = spread.median;
        trial.queries_per_second = double(tune.nq) / std::max(spread.median, 1e-9);
      }
      if (request.chatty)
        std::fprintf(stderr, "  rerank %3zu: %s\n", depth,
                     trial.reached ? ("nprobe " + std::to_string(trial.nprobe) + ", recall@10 " + fixed(trial.recall, 3) + ", " +
                                      fixed(trial.queries_per_second, 0) + " queries/s")
                                         .c_str()
                                   : ("recall@10 " + fixed(trial.recall, 3) + " at most").c_str());
      trials.push_back(trial);
      if (trial.reached && (!best || trial.queries_per_second > trials[*best].queries_per_second)) {
        best = trials.size() - 1;
        improved = true;
      }
    }
    if (improved) best_table = built;
  }
  if (!best) {
    double most = 0;
    for (const Trial& t : trials) most = std::max(most, t.recall);
    throw Error("no ivf table reaches recall@10 " + fixed(request.recall, 3) + " on " + all.name + " (best: " + fixed(most, 3) +
                " with every list probed); a finer codec (--codec), or a finer rerank codec (--rerank-codec f16) reaches more");
  }
  const Trial winner = trials[*best];
  SearchOptions chosen;
  chosen.threads = settings.threads;
  chosen.nprobe = winner.nprobe;
  chosen.rerank = winner.rerank;
  const double confirmed = recall_at_10(*best_table, confirm, chosen);

  // The winner's curve on every query, at its rerank depth: what `search --recall` reads.
  RecallCurve curve;
  curve.k = kRecallAt;
  curve.rerank = winner.rerank;
  curve.queries = all.nq;
  // Without a file of queries, tuning sampled the table's own rows (each dropped from its list).
  curve.measured_on = std::any_of(all.exclude.begin(), all.exclude.end(), [](int64_t row) { return row >= 0; }) ? "rows"
                                                                                                                 : "queries";
  for (size_t nprobe : nprobe_ladder(winner.lists)) {
    chosen.nprobe = nprobe;
    curve.points.emplace_back(nprobe, recall_at_10(*best_table, all, chosen));
  }
  const double tune_seconds = seconds_since(start);

  nlohmann::json result = {{"dataset", request.dataset},
                           {"rows", n},
                           {"dim", d},
                           {"metric", metric_name(all.metric)},
                           {"queries", {{"tune", tune.nq}, {"confirm", confirm.nq}}},
                           {"k", kRecallAt},
                           {"threads", threads_in_use(settings.threads)},
                           {"isa", kernel_isa()},
                           {"goal", {{"recall@10", request.recall}}},
                           {"rerank_codec", request.rerank_codec},
                           {"seconds", tune_seconds}};
  nlohmann::json won = trial_json(winner);
  won["confirmed_recall@10"] = confirmed;
  result["winner"] = won;
  nlohmann::json listed = nlohmann::json::array();
  for (const Trial& t : trials) listed.push_back(trial_json(t));
  result["trials"] = listed;
  nlohmann::json points = nlohmann::json::array();
  for (const auto& [nprobe, recall] : curve.points) points.push_back({nprobe, recall});
  result["curve"] = points;

  if (!request.apply.empty()) {
    Table in = load_table(request.apply[0], "", ReadOptions{});
    in.set_metric(all.metric);
    if (!winner.rerank) options.rerank_spec.clear();  // the winner reads no rerank rows
    in.compress(winner.spec, options).with_recall_curve(curve).save(request.apply[1]);
    result["applied"] = {{"input", request.apply[0]}, {"output", request.apply[1]}};
  }
  if (request.json) return print_json(result);

  std::printf("winner: %s%s, nprobe %zu: recall@10 %.3f (held-out queries: %.3f), %.0f queries/s, %.1f bytes/vector, "
              "built in %.1f s\n",
              winner.spec.c_str(),
              winner.rerank ? (" + " + request.rerank_codec + " rerank " + std::to_string(winner.rerank)).c_str() : "",
              winner.nprobe, winner.recall, confirmed, winner.queries_per_second, winner.bytes_per_vector, winner.build_seconds);
  if (confirmed < request.recall)
    std::printf("note: the held-out queries fall short of %.3f; tune for a little more (--recall %.3f)\n", request.recall,
                std::min(1.0, request.recall + (request.recall - confirmed)));
  std::printf("\n%s: %zu rows, %zu queries to tune and %zu to confirm, %u threads, tuned in %.0f s\n", all.name.c_str(), n,
              tune.nq, confirm.nq, threads_in_use(settings.threads), tune_seconds);
  std::printf("%8s %7s %7s %10s %10s %9s %8s\n", "lists", "rerank", "nprobe", "recall@10", "queries/s", "B/vector", "build s");
  for (const Trial& t : trials)
    std::printf("%8zu %7zu %7s %10.3f %10s %9.1f %8.1f\n", t.lists, t.rerank, t.reached ? std::to_string(t.nprobe).c_str() : "-",
                t.recall, t.reached ? fixed(t.queries_per_second, 0).c_str() : "-", t.bytes_per_vector, t.build_seconds);
  std::string curve_text;
  for (const auto& [nprobe, recall] : curve.points)
    curve_text += (curve_text.empty() ? "" : ", ") + std::to_string(nprobe) + ": " + fixed(recall, 3);
  std::printf("\nthe winner's recall@10 by nprobe on all %zu queries: %s\n", all.nq, curve_text.c_str());
  if (!request.apply.empty())
    std::printf("wrote %s: %s%s, with this curve (search --recall picks nprobe from it)\n", request.apply[1].c_str(),
                winner.spec.c_str(), winner.rerank ? (" + " + request.rerank_codec + " rerank").c_str() : "");
}

}  // namespace vecpack::cli
