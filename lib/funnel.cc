#include "funnel.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>

#include "block_scorer.h"
#include "kernels/kernels.h"
#include "parallel.h"
#include "search.h"
#include "vecpack/errors.h"

namespace vecpack {

std::vector<FunnelStage> parse_funnel(std::string_view text) {
  auto fail = [&](const std::string& why) {
    throw SpecError("funnel '" + std::string(text) + "': " + why +
                    " (expected DIMS[:CANDIDATES] stages, e.g. 32:1000,128:100,full)");
  };
  auto number = [&](std::string_view part, std::string_view what) {
    size_t v = 0;
    auto r = std::from_chars(part.data(), part.data() + part.size(), v);
    if (part.empty() || r.ec != std::errc() || r.ptr != part.data() + part.size() || v == 0)
      fail("'" + std::string(part) + "' is not a positive " + std::string(what));
    return v;
  };
  std::vector<FunnelStage> stages;
  size_t start = 0;
  while (start <= text.size()) {
    size_t comma = text.find(',', start);
    std::string_view part = text.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start);
    while (!part.empty() && part.front() == ' ') part.remove_prefix(1);
    while (!part.empty() && part.back() == ' ') part.remove_suffix(1);
    if (part.empty()) fail("empty stage");
    FunnelStage stage;
    size_t colon = part.find(':');
    std::string_view dims = part.substr(0, colon);
    if (dims != "full" && dims != "all") stage.dims = number(dims, "dimension count");
    if (colon != std::string_view::npos) stage.candidates = number(part.substr(colon + 1), "candidate count");
    stages.push_back(stage);
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return stages;
}

namespace {

struct Step {
  size_t dims;  // leading dimensions scored; the last step has all
  size_t keep;  // candidates kept; the last step keeps k
};

// Validates the stages against the codes' dimension, appends the full stage when missing and
// fills in default candidate counts (each twice the next stage's; the last truncated stage
// max(100, 10 k)), never fewer than k nor more than the rows.
std::vector<Step> resolve(const std::vector<FunnelStage>& given, size_t full, size_t k, size_t n) {
  auto fail = [](size_t i, const std::string& why) {
    throw Error("funnel stage " + std::to_string(i + 1) + ": " + why);
  };
  std::vector<Step> steps;
  for (size_t i = 0; i < given.size(); ++i) {
    const FunnelStage& s = given[i];
    if (s.dims > full)
      fail(i, std::to_string(s.dims) + " dimensions exceed the " + std::to_string(full) + " of the codes (1.." +
                  std::to_string(full) + ", or full)");
    const bool is_full = s.dims == 0 || s.dims == full;
    if (is_full && i + 1 != given.size()) fail(i, "only the last stage may use all dimensions");
    if (is_full && s.candidates) fail(i, "the full stage returns the k best; leave out its candidate count");
    if (!is_full && !steps.empty() && s.dims <= steps.back().dims)
      fail(i, std::to_string(s.dims) + " dimensions do not exceed the previous stage's " +
                  std::to_string(steps.back().dims));
    if (!is_full) steps.push_back({s.dims, s.candidates});
  }
  size_t next = 0;
  for (size_t i = steps.size(); i-- > 0;) {
    size_t keep = steps[i].keep ? steps[i].keep : (next ? 2 * next : std::max<size_t>(100, 10 * k));
    steps[i].keep = std::min(std::max(keep, k), n);
    next = steps[i].keep;
  }
  steps.push_back({full, k});
  return steps;
}

// Keeps the best `keep` (score, id) pairs of one query: scores above a threshold are appended
// and, when half as many again have gathered, cut back to `keep` with nth_element, which raises
// the threshold. Cheaper than a heap when `keep` is in the thousands. Rows must arrive in
// increasing id order, so that equal scores keep the smaller id, as TopK does.
class Selector {
 public:
  explicit Selector(size_t keep) : keep_(keep), limit_(keep + keep / 2 + 256) {}

  // scores of rows first_row.. of a segment.
  void add(const float* scores, size_t count, const Segment& segment, size_t first_row, const kernels::KernelTable& k) {
    for (size_t g = 0; g < count; g += kGroup) {  // groups that cannot enter are skipped at once
      const size_t n = std::min(kGroup, count - g);
      if (k.max_f32(scores + g, n) <= threshold_) continue;
      if (items_.size() < size_ + kGroup) items_.resize(std::max(2 * items_.size(), size_ + kGroup));
      // Branch-free append: every score is written, the count advances only for those that pass.
      TopK::Item* out = items_.data() + size_;
      size_t passed = 0;
      for (size_t i = 0; i < n; ++i) {
        out[passed] = {scores[g + i], segment.id(first_row + g + i)};
        passed += scores[g + i] > threshold_;
      }
      size_ += passed;
      if (size_ >= limit_) cut();
    }
  }

  void merge(const Selector& other) {
    if (items_.size() < size_ + other.size_) items_.resize(size_ + other.size_);
    for (size_t i = 0; i < other.size_; ++i)
      if (other.items_[i].score >= threshold_) items_[size_++] = other.items_[i];
    cut();
  }

  // The ids kept, best first.
  std::vector<int64_t> ids() {
    cut();
    std::sort(items_.begin(), items_.begin() + static_cast<std::ptrdiff_t>(size_), better);
    std::vector<int64_t> out(size_);
    for (size_t i = 0; i < size_; ++i) out[i] = items_[i].id;
    return out;
  }

 private:
  static constexpr size_t kGroup = 32;
  static constexpr auto better = [](const TopK::Item& a, const TopK::Item& b) {
    return a.score > b.score || (a.score == b.score && a.id < b.id);
  };

  // Selects by score alone (NaN never enters), then settles equal scores at the cut by id.
  void cut() {
    if (size_ <= keep_) return;
    const auto begin = items_.begin(), end = begin + static_cast<std::ptrdiff_t>(size_);
    std::nth_element(begin, begin + static_cast<std::ptrdiff_t>(keep_ - 1), end,
                     [](const TopK::Item& a, const TopK::Item& b) { return a.score > b.score; });
    const float kth = items_[keep_ - 1].score;
    if (std::any_of(begin + static_cast<std::ptrdiff_t>(keep_), end, [kth](const TopK::Item& i) { return i.score == kth; })) {
      auto ties = std::partition(begin, end, [kth](const TopK::Item& i) { return i.score > kth; });
      auto rest = std::partition(ties, end, [kth](const TopK::Item& i) { return i.score == kth; });
      std::sort(ties, rest, better);
    }
    size_ = keep_;
    threshold_ = std::max(threshold_, kth);
  }

  size_t keep_, limit_;
  float threshold_ = -INFINITY;
  std::vector<TopK::Item> items_;  // the first size_ are kept
  size_t size_ = 0;
};

// The first stage: every row scored on its first m dimensions (only those bytes of each code are
// read), the best `keep` per query. queries: nq x full, in the quantizer's space.
std::vector<std::vector<int64_t>> first_stage(const RowStore& store, const float* queries, size_t nq, size_t m,
                                              size_t keep, Metric metric, unsigned requested_threads) {
  constexpr size_t kBlock = 512;  // a block's scores stay in L2
  // Queries selected together; fewer when shortlists are long, to bound the candidates held.
  const size_t chunk = std::clamp<size_t>((size_t{1} << 22) / keep, 1, 256);
  const Quantizer& quantizer = store.codec().quantizer();
  const size_t n = store.rows(), full = quantizer.dim_in(), stride = store.codec().code_size();
  const auto& kt = kernels::active();
  keep_blas_single_threaded();
  // Blocks of whole segments, split among workers in runs, as the main engine splits them.
  struct Block {
    const Segment* segment;
    size_t row, count;
  };
  std::vector<Block> blocks;
  for (const auto& segment : store.segments())
    for (size_t row = 0; row < segment->rows(); row += kBlock)
      blocks.push_back({segment.get(), row, std::min(kBlock, segment->rows() - row)});
  const unsigned threads = std::max<unsigned>(
      1, std::min<unsigned>({resolve_threads(requested_threads), unsigned((n + 4095) / 4096), unsigned(std::max<size_t>(1, blocks.size()))}));
  const size_t per_worker = (blocks.size() + threads - 1) / threads;
  std::vector<std::vector<int64_t>> out(nq);
  for (size_t q0 = 0; q0 < nq; q0 += chunk) {
    const size_t qn = std::min(chunk, nq - q0);
    std::vector<float> prefix(qn * m);
    for (size_t q = 0; q < qn; ++q) std::memcpy(&prefix[q * m], queries + (q0 + q) * full, m * sizeof(float));
    const GemmScorer scorer(prefix.data(), qn, m, metric, [&quantizer, stride, m](const uint8_t* c, size_t, size_t count, float* x) {
      quantizer.decode_prefix(c, count, stride, m, x);
    });
    std::vector<std::vector<Selector>> selected(threads, std::vector<Selector>(qn, Selector(keep)));
    parallel_for(threads, threads, [&](size_t w, unsigned) {
      const size_t begin = w * per_worker, end = std::min(blocks.size(), begin + per_worker);
      std::vector<float> scores(qn * kBlock);
      for (size_t b = begin; b < end; ++b) {
        const Block& block = blocks[b];
        const size_t count = block.count;
        scorer.score({block.segment->codes() + block.row * stride, count}, scores.data(), count);
        for (size_t q = 0; q < qn; ++q) selected[w][q].add(scores.data() + q * count, count, *block.segment, block.row, kt);
      }
    });
    for (size_t q = 0; q < qn; ++q) {
      for (unsigned w = 1; w < threads; ++w) selected[0][q].merge(selected[w][q]);
      out[q0 + q] = selected[0][q].ids();
    }
  }
  return out;
}

}  // namespace

SearchResult funnel_search(const RowStore& store, const float* queries, size_t nq, Metric metric,
                           const SearchOptions& options) {
  if (options.rerank)
    throw Error("search: a funnel and rerank cannot be combined (the funnel's last stage already rescores)");
  const Codec& codec = store.codec();
  const Quantizer& quantizer = codec.quantizer();
  if (!(quantizer.capabilities() & kPrefixDecodable))
    throw Error("funnel search needs codes that decode dimension by dimension (f32, f16, bf16 or int8, after any "
                "transforms); the codec '" + codec.spec() + "' has none");
  const size_t full = quantizer.dim_in(), n = store.rows(), k = options.k, stride = codec.code_size();
  const std::vector<Step> steps = resolve(options.funnel, full, k, n);
  SearchOptions plain = options;
  plain.funnel.clear();
  if (nq == 0 || n == 0 || steps.size() == 1) return search_store(store, queries, nq, metric, plain);

  const std::vector<float> transformed = codec.transform_queries(queries, nq, metric);
  std::vector<std::vector<int64_t>> shortlist =
      first_stage(store, transformed.data(), nq, steps[0].dims, steps[0].keep, metric, options.threads);

  // Later stages, query by query, on the survivors of the one before.
  auto code_of = [&store, stride](int64_t id) {
    const RowStore::Location at = store.locate(id);
    return at.segment->codes() + at.row * stride;
  };
  const auto& kt = kernels::active();

  SearchResult result;
  result.nq = nq;
  result.k = k;
  result.ids.assign(nq * k, -1);
  result.scores.assign(nq * k, NAN);
  parallel_for(nq, resolve_threads(options.threads), [&](size_t q, unsigned) {
    const float* query = transformed.data() + q * full;
    std::vector<int64_t> ids = std::move(shortlist[q]);
    std::vector<float> rows, dot, sq, scores;
    std::vector<uint8_t> gathered;
    for (size_t s = 1; s < steps.size(); ++s) {
      const size_t count = ids.size(), m = steps[s].dims;
      scores.resize(count);
      if (s + 1 == steps.size()) {
        // All dimensions: the codec's own scorer, as a search without a funnel scores.
        gathered.resize(count * stride);
        for (size_t c = 0; c < count; ++c) std::memcpy(&gathered[c * stride], code_of(ids[c]), stride);
        if (count) quantizer.scorer(query, 1, metric)->score({gathered.data(), count}, scores.data(), count);
      } else {
        rows.resize(count * m);
        dot.resize(count);
        sq.resize(count);
        for (size_t c = 0; c < count; ++c) quantizer.decode_prefix(code_of(ids[c]), 1, stride, m, &rows[c * m]);
        double query_sq = 0;
        for (size_t j = 0; j < m; ++j) query_sq += double(query[j]) * query[j];
        if (count) kt.dot_f32_rows(query, rows.data(), count, m, dot.data(), sq.data());
        finish_scores(metric, float(query_sq), dot.data(), sq.data(), count, scores.data());
      }
      TopK top(steps[s].keep);
      for (size_t c = 0; c < count; ++c) top.push(scores[c], ids[c]);
      if (s + 1 == steps.size()) {
        top.sorted_into(result.ids.data() + q * k, result.scores.data() + q * k);
      } else {
        std::vector<int64_t> next(steps[s].keep);
        std::vector<float> unused(steps[s].keep);
        top.sorted_into(next.data(), unused.data());
        ids.clear();
        for (int64_t id : next)
          if (id >= 0) ids.push_back(id);
      }
    }
  });
  if (metric == Metric::l2)
    for (size_t i = 0; i < result.scores.size(); ++i)
      if (result.ids[i] >= 0) result.scores[i] = std::max(0.f, -result.scores[i]);
  return result;
}

}  // namespace vecpack
