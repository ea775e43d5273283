#include "search.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <numeric>

#include "block_scorer.h"
#include "funnel.h"
#include "kernels/kernels.h"
#include "parallel.h"
#include "partition.h"
#include "vecpack/errors.h"

namespace vecpack {

// Heap order: a is "better" than b when its score is larger, or equal with a smaller id. A
// function object, so that the standard algorithms inline it.
static constexpr auto better = [](const TopK::Item& a, const TopK::Item& b) {
  return a.score > b.score || (a.score == b.score && a.id < b.id);
};

// Quickselect whose partitions move every element without a data-dependent branch: the scores
// it sees come in no order, and a branch on each comparison would be mispredicted half the time
// (several times the cost of the moves).
float kth_largest(float* keys, size_t n, size_t k) {
  size_t lo = 0, hi = n;
  while (hi - lo > 8) {
    const float a = keys[lo], b = keys[lo + (hi - lo) / 2], c = keys[hi - 1];
    const float pivot = std::max(std::min(a, b), std::min(std::max(a, b), c));  // median of three
    size_t above = lo;  // [lo, above): > pivot
    for (size_t i = lo; i < hi; ++i) {
      const float v = keys[i];
      keys[i] = keys[above];
      keys[above] = v;
      above += v > pivot;
    }
    if (k < above) {
      hi = above;
      continue;
    }
    size_t equal = above;  // [above, equal): == pivot, which holds at least the pivot itself
    for (size_t i = above; i < hi; ++i) {
      const float v = keys[i];
      keys[i] = keys[equal];
      keys[equal] = v;
      equal += v == pivot;
    }
    if (k < equal) return pivot;
    lo = equal;
  }
  std::sort(keys + lo, keys + hi, std::greater<float>());
  return keys[k];
}

// Keeps the k best of items (k <= items.size()), in no order, and returns the worst kept (its
// score NaN-free). The k-th best score is selected among plain floats, then the items better
// than it move to the front and the ties at it aside, without branching on the scores; only
// more ties than places need the ids.
static TopK::Item keep_best(std::vector<TopK::Item>& items, size_t k) {
  using Item = TopK::Item;
  const size_t n = items.size();
  constexpr size_t kStackItems = 512;
  float stack_keys[kStackItems];
  Item stack_ties[kStackItems];
  std::vector<float> heap_keys(n > kStackItems ? n : 0);
  std::vector<Item> heap_ties(n > kStackItems ? n : 0);
  float* keys = n > kStackItems ? heap_keys.data() : stack_keys;
  Item* ties = n > kStackItems ? heap_ties.data() : stack_ties;
  for (size_t i = 0; i < n; ++i) keys[i] = rank_key(items[i].score);
  const float kth = kth_largest(keys, n, k - 1);
  size_t above = 0, tied = 0;
  for (size_t i = 0; i < n; ++i) {
    const Item item = items[i];
    const float key = rank_key(item.score);
    items[above] = item;  // above <= i: that place has been read
    ties[tied] = item;
    above += key > kth;
    tied += key == kth;
  }
  // Of the ties, the smallest ids fill the places left (above < k <= above + tied).
  const size_t places = k - above;
  if (tied > places)
    std::nth_element(ties, ties + (places - 1), ties + tied, [](const Item& a, const Item& b) { return a.id < b.id; });
  int64_t last_id = ties[0].id;
  for (size_t t = 0; t < places; ++t) {
    items[above + t] = ties[t];
    last_id = std::max(last_id, ties[t].id);
  }
  items.resize(k);
  return {kth, last_id};
}

void TopK::tighten() {
  if (reservoir_ && items_.size() >= k_) cut();
}

void TopK::cut() {
  kth_ = keep_best(items_, k_);
  cut_ = true;
}

void TopK::push(float score, int64_t id) {
  Item item{score, id};
  if (reservoir_) {
    if (cut_ && !better(item, kth_)) return;
    items_.push_back(item);
    if (items_.size() >= limit()) cut();
    return;
  }
  if (items_.size() < k_) {
    items_.push_back(item);
    std::push_heap(items_.begin(), items_.end(), better);
    return;
  }
  if (k_ == 0 || !better(item, items_.front())) return;
  // Replace the worst and sift it down: one pass instead of pop_heap + push_heap.
  const size_t n = items_.size();
  size_t i = 0;
  for (;;) {
    size_t child = 2 * i + 1;
    if (child >= n) break;
    if (child + 1 < n && better(items_[child], items_[child + 1])) ++child;  // the worse child
    if (!better(item, items_[child])) break;
    items_[i] = items_[child];
    i = child;
  }
  items_[i] = item;
}

void TopK::sorted_into(int64_t* ids, float* scores) const {
  std::vector<Item> sorted = items_;
  std::sort(sorted.begin(), sorted.end(), better);
  for (size_t i = 0; i < k_; ++i) {
    ids[i] = i < sorted.size() ? sorted[i].id : -1;
    scores[i] = i < sorted.size() ? sorted[i].score : NAN;
  }
}

void TopK::best_into(int64_t* ids, float* scores) const {
  size_t count = std::min(k_, items_.size());
  const Item* best = items_.data();
  std::vector<Item> cut;
  if (items_.size() > k_) {
    cut = items_;
    keep_best(cut, k_);
    best = cut.data();
  }
  for (size_t i = 0; i < k_; ++i) {
    ids[i] = i < count ? best[i].id : -1;
    scores[i] = i < count ? best[i].score : NAN;
  }
}

namespace {

size_t block_rows_for(size_t d) {
  // Keep a decoded block around 256 KiB so it stays in L2 while the queries stream over it.
  size_t rows = (256 * 1024) / (sizeof(float) * std::max<size_t>(d, 1));
  return std::clamp<size_t>(rows / 64 * 64, 256, 4096);
}

// A block of rows of one segment: what one scoring call sees.
struct ScanBlock {
  const Segment* segment;
  size_t row, count;  // rows [row, row + count) of the segment
  const ScanLayout* layout;
};

CodeBlock code_block(const ScanBlock& b, size_t code_size) {
  return {b.segment->codes() + b.row * code_size, b.count, b.segment->position() + b.row, b.layout, b.row};
}

// Every segment cut into blocks of `block` rows (a multiple of 64, so each block starts one of
// the segment's scan-layout blocks); a block never spans two segments. The cut depends on the
// segments alone, never on the number of threads.
std::vector<ScanBlock> scan_blocks(const RowStore& store, size_t block) {
  const Quantizer& quantizer = store.codec().quantizer();
  const size_t code_size = store.codec().code_size();
  std::vector<ScanBlock> blocks;
  for (const auto& segment : store.segments()) {
    const ScanLayout* layout = segment->rows() ? segment->layout(quantizer, code_size) : nullptr;
    for (size_t row = 0; row < segment->rows(); row += block)
      blocks.push_back({segment.get(), row, std::min(block, segment->rows() - row), layout});
  }
  return blocks;
}

// Rescores each query's candidates from the rerank rows; scores stay "larger is better".
// The candidates' codes are prefetched, decoded together and scored by one kernel call. When the
// first-pass codec bounds its scores from above (Quantizer::upper_bound_scorer), candidates are
// taken best first and one whose bound cannot beat the k-th rescored row is skipped.
void rescore(const RowStore& rows, const float* prepared, size_t nq, size_t d, Metric metric, size_t shortlist,
             const std::vector<int64_t>& candidate_ids, const std::vector<float>& candidate_scores, const RowStore& first_pass, const float* first_pass_queries,
             size_t k, unsigned threads, SearchResult& result) {
  const size_t code_size = first_pass.codec().code_size(), rerank_code_size = rows.codec().code_size();
  const kernels::KernelTable& kernel = kernels::active();
  const bool gather_codes = !(rows.codec().capabilities() & kSharedParameters);
  parallel_for(nq, threads, [&](size_t q, unsigned) {
    const float* query = prepared + q * d;
    const int64_t* ids = candidate_ids.data() + q * shortlist;
    thread_local std::vector<int64_t> best_first;  // the candidates in the order they are rescored
    const auto bounds = first_pass.codec().upper_bound_scorer(first_pass_queries + q * d, 1, metric);
    thread_local std::vector<float> decoded, dot, sq, scored, keys;
    thread_local std::vector<RowStore::Location> where;
    thread_local std::vector<uint8_t> gathered;
    size_t count = 0;
    while (count < shortlist && ids[count] >= 0) ++count;
    TopK top(k);
    double qq = 0;  // l2 only
    if (metric == Metric::l2)
      for (size_t j = 0; j < d; ++j) qq += double(query[j]) * query[j];
    auto score = [&](float dot_value, float sq_value) {
      return metric == Metric::ip    ? dot_value
             : metric == Metric::cos ? (sq_value > 0 ? dot_value / std::sqrt(sq_value) : 0.f)
                                     : -std::max(0.f, float(qq - 2.0 * dot_value + sq_value));
    };
    if (bounds) {
      // Best first, so that the k-th rescored score rises early and bounds skip the most.
      const float* first_scores = candidate_scores.data() + q * shortlist;
      std::vector<size_t> order(count);
      std::iota(order.begin(), order.end(), size_t{0});
      std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
        return first_scores[a] > first_scores[b] || (first_scores[a] == first_scores[b] && ids[a] < ids[b]);
      });
      best_first.resize(count);
      for (size_t c = 0; c < count; ++c) best_first[c] = ids[order[c]];
      ids = best_first.data();
      std::vector<float> row(d);
      for (size_t c = 0; c < count; ++c) {
        if (top.full()) {
          const RowStore::Location at = first_pass.locate(ids[c]);
          float bound;
          bounds->score({at.segment->codes() + at.row * code_size, 1, at.segment->position() + at.row}, &bound, 1);
          if (bound < top.threshold()) continue;
        }
        rows.reconstruct(static_cast<size_t>(ids[c]), 1, row.data());
        float one_dot, one_sq;
        kernel.dot_f32_rows(query, row.data(), 1, d, &one_dot, &one_sq);
        top.push(score(one_dot, one_sq), ids[c]);
      }
    } else {
      // In id order: the kernel's rounding may depend on a row's place in the call, and the
      // shortlist comes in no order (which would make scores depend on the thread count).
      best_first.assign(ids, ids + count);
      std::sort(best_first.begin(), best_first.end());
      ids = best_first.data();
      where.resize(count);
      decoded.resize(count * d);
      dot.resize(count);
      sq.resize(count);
      for (size_t c = 0; c < count; ++c) {
        where[c] = rows.locate(ids[c]);
        const uint8_t* code = where[c].segment->codes() + where[c].row * rerank_code_size;
        for (size_t line = 0; line < rerank_code_size; line += 64) __builtin_prefetch(code + line);
      }
      if (gather_codes) {
        // One decode call for the shortlist: the codes copied side by side (rows own their codes).
        gathered.resize(count * rerank_code_size);
        for (size_t c = 0; c < count; ++c)
          std::memcpy(gathered.data() + c * rerank_code_size, where[c].segment->codes() + where[c].row * rerank_code_size,
                      rerank_code_size);
        rows.codec().decode(gathered.data(), count, decoded.data(), 0);
      } else {
        for (size_t c = 0; c < count; ++c)
          rows.codec().decode(where[c].segment->codes() + where[c].row * rerank_code_size, 1, decoded.data() + c * d,
                              where[c].segment->position() + where[c].row);
      }
      kernel.dot_f32_rows(query, decoded.data(), count, d, dot.data(), metric == Metric::ip ? nullptr : sq.data());
      // Only rows scoring at least the k-th best can stay: selected first, the heap sees a few.
      scored.resize(count);
      for (size_t c = 0; c < count; ++c) scored[c] = score(dot[c], sq[c]);
      float kth = -INFINITY;
      if (count > k) {
        keys.resize(count);
        for (size_t c = 0; c < count; ++c) keys[c] = rank_key(scored[c]);
        kth = kth_largest(keys.data(), count, k - 1);
      }
      for (size_t c = 0; c < count; ++c)
        if (!(scored[c] < kth)) top.push(scored[c], ids[c]);  // NaN passes, as every row did
    }
    top.sorted_into(result.ids.data() + q * k, result.scores.data() + q * k);
  });
}

// The probed lists, grouped: each list that some query probes is scanned once per batch, by one
// worker, for every query that probes it (its codes stay in cache from one query to the next).
// Workers take lists, not queries, so a single query spreads over every core; each worker keeps
// heaps of its own, merged at the end. Lists are visited in rounds of closeness (below), so that
// each query's heaps reach a high threshold early and most rows are skipped.
// A query's scorer (its tables) is built once; with l2 residuals it is built per list it probes,
// from the query minus the centroid. Lists hold rows in id-map order, so ties at a heap's
// threshold are always selected and TopK decides by id; the result does not depend on the number
// of threads. Each query's first_k are written best first when `sorted`, else in no order (a
// shortlist to rescore).
void scan_partition(const RowStore& store, const Partition& partition, const float* prepared,
                    const float* scored_queries, size_t nq, size_t d, Metric metric, size_t nprobe, size_t first_k,
                    unsigned threads, bool sorted, const RowFilter& filter, int64_t* out_ids, float* out_scores) {
  const Codec& codec = store.codec();
  const Quantizer& quantizer = codec.quantizer();
  const size_t code_size = codec.code_size(), block = block_rows_for(d), lists = partition.lists();
  const bool residual = partition.residual(), shifted_scorers = residual && metric == Metric::l2;
  std::vector<float> centroid_dots;  // q . c of each probed list: the offset of ip residuals
  // A worker is worth waking for tens of thousands of rows; a query of a few lists runs alone.
  const size_t rows_per_list = store.rows() / std::max<size_t>(lists, 1) + 1;
  threads = std::max<unsigned>(1, std::min<size_t>(threads, nq * std::min(nprobe, lists) * rows_per_list / 32768));
  const std::vector<uint32_t> probed = partition.probe(prepared, nq, nprobe, residual ? &centroid_dots : nullptr, threads);
  nprobe = probed.size() / std::max<size_t>(nq, 1);

  std::vector<std::unique_ptr<CodeScorer>> scorers(shifted_scorers ? 0 : nq);
  std::vector<std::vector<TopK>> heaps(threads, std::vector<TopK>(nq, TopK(first_k)));
  std::vector<float> floors(nq, -INFINITY);
  // Scores list `list` for query q into `top`; rows below `floor` are never selected.
  // A list is one segment per shard (list_of_segment).
  const std::vector<size_t> rows_in_list = list_rows(store, lists);
  auto scan_list = [&](uint32_t list, size_t q, float centroid_dot, TopK& top, float floor, std::vector<float>& shifted,
                       BlockCandidates& candidates, std::vector<float>& keys) {
    const float* query = scored_queries + q * d;
    const float* c = partition.centroid(list);
    float offset = 0;  // added to the scorer's scores: q . c for ip residuals
    std::unique_ptr<CodeScorer> own;
    if (shifted_scorers) {
      shifted.resize(d);
      for (size_t j = 0; j < d; ++j) shifted[j] = query[j] - c[j];
      own = codec.scorer(shifted.data(), 1, metric);
    } else if (residual) {
      offset = centroid_dot;
    }
    const CodeScorer& scorer = own ? *own : *scorers[q];
    for (size_t s = list; s < store.segments().size(); s += lists) {
      const Segment& segment = *store.segments()[s];
      if (!segment.rows()) continue;
      const ScanLayout* layout = segment.layout(quantizer, code_size);
      for (size_t row = 0; row < segment.rows(); row += block) {
        const ScanBlock scan_block{&segment, row, std::min(block, segment.rows() - row), layout};
        const float threshold = std::max(floor, top.full() ? std::nextafter(top.threshold(), -INFINITY) : -INFINITY) - offset;
        scorer.select_above(code_block(scan_block, code_size), 1, &threshold, candidates);
        // A heap with no threshold yet (a query's first list) takes every row: only those at
        // or above the k-th best of them can stay, selected at once instead of by cuts.
        float kth = -INFINITY;
        const size_t found = candidates.offsets[1] - candidates.offsets[0];
        if (!top.full() && !filter.active() && found > 2 * first_k) {
          keys.resize(found);
          for (size_t i = 0; i < found; ++i) keys[i] = rank_key(candidates.scores[candidates.offsets[0] + i]);
          kth = kth_largest(keys.data(), found, first_k - 1);
        }
        for (size_t i = candidates.offsets[0]; i < candidates.offsets[1]; ++i) {
          if (candidates.scores[i] < kth) continue;
          const int64_t id = segment.id(row + candidates.rows[i]);
          if (filter.allows(id)) top.push(candidates.scores[i] + offset, id);
        }
        if (kth > -INFINITY) top.tighten();
      }
    }
  };

  parallel_for(scorers.size(), threads, [&](size_t q, unsigned) { scorers[q] = codec.scorer(scored_queries + q * d, 1, metric); });

  // Rounds of probe ranks [0, 1), [1, 4), [4, 16), ...: every query scans its nearest lists
  // first, and the k-th score its heaps hold after a round is a floor for the next. Within a
  // round each list is scanned once, for every query that probes it at a rank of the round.
  std::vector<size_t> first_visit(lists + 1);
  std::vector<size_t> visitors;  // probe indices q * nprobe + rank
  std::vector<uint32_t> visited;
  for (size_t low = 0, high = 1; low < nprobe; low = high, high *= Partition::kProbeRoundGrowth) {
    const size_t top_rank = std::min(high, nprobe);
    std::fill(first_visit.begin(), first_visit.end(), 0);
    for (size_t q = 0; q < nq; ++q)
      for (size_t r = low; r < top_rank; ++r) ++first_visit[probed[q * nprobe + r] + 1];
    std::partial_sum(first_visit.begin(), first_visit.end(), first_visit.begin());
    visitors.resize(first_visit.back());
    std::vector<size_t> next(first_visit.begin(), first_visit.end() - 1);
    for (size_t q = 0; q < nq; ++q)
      for (size_t r = low; r < top_rank; ++r) visitors[next[probed[q * nprobe + r]]++] = q * nprobe + r;
    visited.clear();  // the lists with rows and visitors
    for (size_t l = 0; l < lists; ++l)
      if (first_visit[l + 1] > first_visit[l] && rows_in_list[l]) visited.push_back(static_cast<uint32_t>(l));

    parallel_for(visited.size(), threads, [&](size_t task, unsigned worker) {
      const uint32_t list = visited[task];
      std::vector<float> shifted, keys;
      BlockCandidates candidates;
      for (size_t v = first_visit[list]; v < first_visit[list + 1]; ++v) {
        const size_t probe = visitors[v], q = probe / nprobe;
        scan_list(list, q, residual ? centroid_dots[probe] : 0.f, heaps[worker][q], floors[q], shifted, candidates, keys);
      }
    });
    // Each full heap's k-th score bounds the result's from below; ties with it may still enter
    // (by id), hence the step below it.
    for (size_t q = 0; q < nq; ++q)
      for (unsigned w = 0; w < threads; ++w)
        if (heaps[w][q].full()) floors[q] = std::max(floors[q], std::nextafter(heaps[w][q].threshold(), -INFINITY));
  }
  parallel_for((nq + 63) / 64, threads, [&](size_t chunk, unsigned) {
    for (size_t q = chunk * 64; q < std::min(nq, chunk * 64 + 64); ++q) {
      TopK merged(threads == 1 ? 0 : first_k);
      const TopK& best = threads == 1 ? heaps[0][q] : merged;
      for (unsigned w = 0; w < threads && threads > 1; ++w)
        for (const auto& item : heaps[w][q].items()) merged.push(item.score, item.id);
      if (sorted) best.sorted_into(out_ids + q * first_k, out_scores + q * first_k);
      else best.best_into(out_ids + q * first_k, out_scores + q * first_k);
    }
  });
}

// Below this share of a table's rows allowed, a flat filtered search gathers them (search_gathered):
// copying a row's codes costs about what scanning a few rows does, and gathered 4-bit codes
// are scanned in a layout built per search.
constexpr double kGatherShare = 0.25;

}  // namespace

// The allowed rows of a filtered search copied into a store of their own (ids 0..m-1 in the
// order of their table ids, so ties still break by table id), searched there without the
// filter, and their ids mapped back.
// Residual codes are read against their list's centroid, so an ivf table with residuals keeps its
// lists (RowStore::kept) and every list is scanned.
static SearchResult search_gathered(const RowStore& store, const float* queries, size_t nq, Metric metric,
                                    const SearchOptions& options, const RowStore* rerank_store, const Partition* partition) {
  const std::vector<int64_t> ids = options.filter.ids();
  SearchOptions inner = options;
  inner.filter = RowFilter();
  inner.nprobe = 0;
  const bool residual = partition && partition->residual();
  const auto gathered = residual ? store.kept(options.filter) : store.gathered(ids);
  const auto gathered_rerank = rerank_store ? rerank_store->gathered(ids) : nullptr;
  SearchResult result =
      search_store(*gathered, queries, nq, metric, inner, gathered_rerank.get(), residual ? partition : nullptr);
  for (int64_t& id : result.ids)
    if (id >= 0) id = ids[static_cast<size_t>(id)];
  return result;
}

SearchResult search_store(const RowStore& store, const float* queries, size_t nq, Metric metric,
                          const SearchOptions& options, const RowStore* rerank_store, const Partition* partition) {
  if (options.k == 0) throw Error("search: k must be at least 1");
  if (partition && options.nprobe > partition->lists())
    throw Error("search: nprobe=" + std::to_string(options.nprobe) + " exceeds the table's " +
                std::to_string(partition->lists()) + " lists (nprobe must be 1.." + std::to_string(partition->lists()) +
                ", or 0 for every list)");
  if (options.filter.active()) {
    // A filter allowing few rows is answered from those rows alone, gathered into a store of
    // their own: less to scan than the table, or than the lists an ivf partition would probe,
    // and exact. Codecs that place rows by position cannot have their rows moved.
    const RowFilter& filter = options.filter;
    const bool movable = !(store.codec().capabilities() & kSharedParameters);
    const size_t n = store.rows();
    const bool probing = partition && (partition->residual() || options.nprobe);
    const double probed_share = probing ? double(options.nprobe ? options.nprobe : partition->lists()) / partition->lists() : 1.0;
    // A probe of a share p of the lists meets a share f of allowed rows among what it scans: to
    // find as many of them as unfiltered, it would scan p / f of the table, where gathering scans
    // f. Gathering wins below f = sqrt(p), and is exact.
    const double gather_share = std::min(kGatherShare, std::sqrt(probed_share));
    if (movable && (filter.allowed() <= gather_share * double(n) || !options.funnel.empty()))
      return search_gathered(store, queries, nq, metric, options, rerank_store, partition);
    if (!options.funnel.empty())
      throw Error("search: codec '" + store.codec().spec() + "' places rows by their position, so a filtered search "
                  "cannot gather them for a funnel; search without the funnel");
  }
  if (!options.funnel.empty()) {
    if (partition && (partition->residual() || options.nprobe))
      throw Error("search: funnel search scans every row; it cannot be combined with an ivf partition's nprobe or residuals");
    return funnel_search(store, queries, nq, metric, options);
  }
  if (options.rerank && !rerank_store)
    throw Error("search: this table has no rerank section (compress with --rerank SPEC to add one)");
  const size_t d = store.dim(), n = store.rows(), k = options.k;
  // With rerank the first pass keeps a longer shortlist, rescored below.
  const size_t first_k = options.rerank ? std::max(k, options.rerank) : k;
  SearchResult result;
  result.nq = nq;
  result.k = first_k;
  result.ids.assign(nq * first_k, -1);
  result.scores.assign(nq * first_k, NAN);
  if (nq == 0) {
    result.k = k;
    result.ids.resize(0);
    result.scores.resize(0);
    return result;
  }

  keep_blas_single_threaded();
  store.check_ids();  // an id map read from a file is checked once, before any id is returned
  std::vector<float> prepared(queries, queries + nq * d);
  if (metric == Metric::cos) normalize_rows(prepared.data(), nq, d);

  // A chain with transforms gets the queries as given, like its rows (scaling does not commute
  // with a centring transform); it normalises cos queries after its transforms.
  const Codec& codec = store.codec();
  const float* scored_queries = (codec.capabilities() & kTransform) ? queries : prepared.data();
  const size_t code_size = codec.code_size();
  // A partition probed for a few lists reads only those; the flat scan's blocks (and every
  // segment's layout) are made for a flat scan alone.
  const bool probing = partition && (partition->residual() || options.nprobe);
  const std::vector<ScanBlock> blocks = probing ? std::vector<ScanBlock>{} : scan_blocks(store, block_rows_for(d));
  const unsigned threads = std::max<unsigned>(
      1, std::min<unsigned>({resolve_threads(options.threads), unsigned((n + 4095) / 4096), unsigned(std::max<size_t>(1, blocks.size()))}));

  // Pushes the rows of blocks [begin, end) into heaps (one per query of the scorer).
  const RowFilter& filter = options.filter;
  auto scan = [&](const CodeScorer& scorer, size_t queries, size_t begin, size_t end, TopK* heaps) {
    std::vector<float> thresholds(queries);
    BlockCandidates candidates;
    int64_t largest_id = std::numeric_limits<int64_t>::min();  // of the rows scanned so far
    for (size_t b = begin; b < end; ++b) {
      const ScanBlock& block = blocks[b];
      const Segment& segment = *block.segment;
      // A row that ties a full heap's worst score enters it only with a smaller id. When every
      // id of the block is larger than all ids before it (a flat table, shards in order), no tie
      // can enter and the scorer may skip rows at or below the threshold; otherwise (id maps)
      // ties are selected too and TopK decides by id.
      const bool ids_after = !segment.has_id_map() && segment.id(block.row) > largest_id;
      // A filter is checked per row only in blocks that hold both allowed and excluded rows.
      bool check_rows = false;
      if (filter.active()) {
        if (!segment.has_id_map() && !filter.any_in(segment.id(block.row), block.count)) continue;
        check_rows = segment.has_id_map() || !filter.all_in(segment.id(block.row), block.count);
      }
      for (size_t q = 0; q < queries; ++q)
        thresholds[q] = !heaps[q].full() ? -INFINITY
                        : ids_after      ? heaps[q].threshold()
                                         : std::nextafter(heaps[q].threshold(), -INFINITY);
      scorer.select_above(code_block(block, code_size), queries, thresholds.data(), candidates);
      for (size_t q = 0; q < queries; ++q) {
        TopK& top = heaps[q];
        for (size_t p = candidates.offsets[q]; p < candidates.offsets[q + 1]; ++p)
          if (!ids_after || !top.full() || candidates.scores[p] > top.threshold()) {
            const int64_t id = segment.id(block.row + candidates.rows[p]);
            if (!check_rows || filter.allows(id)) top.push(candidates.scores[p], id);
          }
      }
      for (size_t r = ids_after ? block.count - 1 : 0; r < block.count; ++r)
        largest_id = std::max(largest_id, segment.id(block.row + r));
    }
  };

  // Queries scored together: more are split into tiles of the codec's size (CodecDescriptor::query_tile).
  const size_t query_tile = std::max<size_t>(1, codec.quantizer().descriptor().query_tile);
  // A partition scans the probed lists. nprobe 0 (every list), without residuals, is the flat
  // scan below over the lists' segments: the codec's exact result, in one batch.
  if (probing) {
    if (partition->metric() != metric && partition->residual())
      throw Error(std::string("search: the ivf residuals were encoded for metric ") + metric_name(partition->metric()) +
                  "; search with that metric");
    // Batches bound the heaps (a worker holds first_k items for each query of a batch).
    constexpr size_t kPartitionBatch = 4096;
    const size_t nprobe = options.nprobe ? options.nprobe : partition->lists();
    auto scan_queries = [&](size_t begin, size_t end, unsigned workers) {
      for (size_t q0 = begin; q0 < end; q0 += kPartitionBatch)
        scan_partition(store, *partition, prepared.data() + q0 * d, scored_queries + q0 * d,
                       std::min(kPartitionBatch, end - q0), d, metric, nprobe, first_k, workers, options.rerank == 0,
                       options.filter, result.ids.data() + q0 * first_k, result.scores.data() + q0 * first_k);
    };
    // With queries enough for every worker, each takes a share of them and scans its lists
    // alone, with no rounds to wait for; fewer queries share their lists among the workers. A
    // share reads a list once more than the whole batch would, which is cheap while the codes
    // stay in cache and costs memory bandwidth when they do not (10M rows: 14% fewer queries/s
    // on 2 threads), so large tables share lists. A query's result is the same either way.
    constexpr uint64_t kCachedCodeBytes = uint64_t(32) << 20;
    const unsigned workers = std::max<unsigned>(1, resolve_threads(options.threads));
    const size_t rows_per_list = n / partition->lists() + 1;
    if (workers > 1 && store.code_bytes() <= kCachedCodeBytes && nq >= 16 * size_t(workers) &&
        nq * std::min(nprobe, partition->lists()) * rows_per_list >= 32768 * size_t(workers)) {
      const size_t share = (nq + workers - 1) / workers;
      parallel_for(workers, workers, [&](size_t w, unsigned) { scan_queries(w * share, std::min(nq, (w + 1) * share), 1); });
    } else {
      scan_queries(0, nq, workers);
    }
  } else if (nq > query_tile) {
    // Tiles of query_tile queries, each scanned over all rows by one worker: no heap is filled
    // twice and a worker's scorer holds only its tile's tables. The tiles, and so the shapes of
    // every scoring call, are the same for any number of threads.
    const size_t tiles = (nq + query_tile - 1) / query_tile;
    const unsigned workers = std::max<unsigned>(1, std::min<unsigned>(resolve_threads(options.threads), unsigned(tiles)));
    parallel_for(tiles, workers, [&](size_t tile, unsigned) {
      const size_t first = tile * query_tile, count = std::min(query_tile, nq - first);
      auto scorer = codec.scorer(scored_queries + first * d, count, metric);
      std::vector<TopK> heaps(count, TopK(first_k));
      scan(*scorer, count, 0, blocks.size(), heaps.data());
      for (size_t q = 0; q < count; ++q)
        heaps[q].sorted_into(result.ids.data() + (first + q) * first_k, result.scores.data() + (first + q) * first_k);
    });
  } else {
    const size_t qn = nq;
    auto scorer = codec.scorer(scored_queries, qn, metric);
    // Each worker owns a contiguous run of blocks and its own heaps; they merge at the end.
    // Every row is scored by the same call shape for any number of threads: BLAS results, which
    // can differ in the last bit with the shape, then do not depend on the thread count.
    std::vector<std::vector<TopK>> heaps(threads, std::vector<TopK>(qn, TopK(first_k)));
    const size_t per_worker = (blocks.size() + threads - 1) / threads;
    parallel_for(threads, threads, [&](size_t w, unsigned) {
      const size_t begin = w * per_worker, end = std::min(blocks.size(), begin + per_worker);
      if (begin < end) scan(*scorer, qn, begin, end, heaps[w].data());
    });
    for (size_t q = 0; q < qn; ++q) {
      TopK merged(first_k);
      for (unsigned w = 0; w < threads; ++w)
        for (const auto& item : heaps[w][q].items()) merged.push(item.score, item.id);
      merged.sorted_into(result.ids.data() + q * first_k, result.scores.data() + q * first_k);
    }
  }
  if (options.rerank) {
    std::vector<int64_t> shortlist = std::move(result.ids);
    std::vector<float> shortlist_scores = std::move(result.scores);
    result.k = k;
    result.ids.assign(nq * k, -1);
    result.scores.assign(nq * k, NAN);
    rescore(*rerank_store, prepared.data(), nq, d, metric, first_k, shortlist, shortlist_scores, store, scored_queries, k,
            std::max<unsigned>(1, resolve_threads(options.threads)), result);
  }
  if (metric == Metric::l2)
    for (size_t i = 0; i < result.scores.size(); ++i)
      if (result.ids[i] >= 0) result.scores[i] = std::max(0.f, -result.scores[i]);
  return result;
}

}  // namespace vecpack
