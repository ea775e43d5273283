// Small value types shared by the whole public API.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace vecpack {

// The largest row dimension a table or codec accepts.
inline constexpr size_t kMaxDimension = size_t{1} << 16;

// How rows are compared. cos scores are true cosines of the stored (decoded) rows;
// rows are stored as given, never silently normalised.
enum class Metric : uint8_t { ip = 0, cos = 1, l2 = 2 };

const char* metric_name(Metric metric) noexcept;
// Accepts "ip", "dot", "cos", "cosine", "angular", "l2", "euclidean"; throws SpecError otherwise.
Metric parse_metric(std::string_view name);

// One stage of a funnel search: score the previous stage's candidates (all rows for the first)
// with the first `dims` dimensions of the codes and keep the best `candidates`.
struct FunnelStage {
  size_t dims = 0;        // 0: all (full); only the last stage may be full
  size_t candidates = 0;  // 0: twice the next stage's; the last truncated stage: max(100, 10 k)
};

// Parses "32:1000,128:100,full" (DIMS[:CANDIDATES] per stage, "full" for all dimensions).
// Throws SpecError.
std::vector<FunnelStage> parse_funnel(std::string_view text);

// The rows a search may return, as a bitmap over row ids [0, rows()). The engine checks it inside
// the scan: a block with no allowed row is not scored, and when few rows are allowed they are
// gathered and scanned alone (exactly, even in an ivf table). Copies share the bits.
class RowFilter {
 public:
  RowFilter() = default;  // no filter: every row may be returned
  // Only these ids, or every id in [0, rows) but these. An id outside [0, rows) is an Error.
  static RowFilter allow(const int64_t* ids, size_t count, size_t rows);
  static RowFilter deny(const int64_t* ids, size_t count, size_t rows);
  // Every id in [0, rows): the identity of intersect().
  static RowFilter all(size_t rows);

  bool active() const { return words_ != nullptr; }
  size_t rows() const { return rows_; }
  size_t allowed() const { return allowed_; }  // ids allowed (active filters only)
  bool allows(int64_t id) const {
    return !words_ || (static_cast<uint64_t>(id) < rows_ && ((*words_)[static_cast<uint64_t>(id) >> 6] >> (id & 63)) & 1);
  }
  // True when some id in [first, first + count) is allowed.
  bool any_in(int64_t first, size_t count) const;
  // True when every id in [first, first + count) is allowed.
  bool all_in(int64_t first, size_t count) const;
  // The ids both allow; an inactive filter allows everything.
  RowFilter intersect(const RowFilter& other) const;
  // The allowed ids, ascending.
  std::vector<int64_t> ids() const;
  const uint64_t* words() const { return words_ ? words_->data() : nullptr; }

 private:
  RowFilter(std::shared_ptr<const std::vector<uint64_t>> words, size_t rows);
  std::shared_ptr<const std::vector<uint64_t>> words_;
  size_t rows_ = 0, allowed_ = 0;
};

struct SearchOptions {
  size_t k = 10;
  unsigned threads = 0;  // 0: one per core
  size_t rerank = 0;     // shortlist size rescored with the table's rerank section; 0: off
  // Lists scanned per query in a table with an ivf partition (the nprobe lists whose centroids
  // score best); 0: every list, which gives the codec's exact result. Ignored by other tables.
  size_t nprobe = 0;
  // A recall@10 to reach instead of nprobe, in (0, 1]: the table picks the fewest lists whose
  // recall, measured when the partition was built (Table::recall_curve), reaches it. 0: off.
  double recall = 0;
  // Funnel (adaptive) search on leading dimensions, for codecs whose codes decode dimension by
  // dimension (kPrefixDecodable). A final full stage is implied. Empty: off.
  std::vector<FunnelStage> funnel;
  // Rows the search may return (inactive: all). A table with deleted rows adds its own.
  RowFilter filter;
};

// Recall@k of an ivf table's search against the exact neighbours of the rows it was built from,
// measured when the partition was built: held-out rows of the table as queries (each one's own
// row left out of both sides), the table's rerank section at depth `rerank` (0: none).
struct RecallCurve {
  size_t k = 0, rerank = 0, queries = 0;
  std::vector<std::pair<size_t, double>> points;  // (nprobe, recall), nprobe increasing
  // The queries: "rows" (held-out rows of the table itself) or "queries" (the caller's, e.g. a
  // dataset's test queries through `vecpack tune --index`).
  std::string measured_on = "rows";
  bool empty() const { return points.empty(); }
};

// Row-major nq x k. For ip and cos, scores are similarities in descending order; for l2 they
// are squared Euclidean distances in ascending order. Ties break by smaller row id.
// Where the table has fewer than k rows, missing entries have id -1.
struct SearchResult {
  size_t nq = 0, k = 0;
  std::vector<int64_t> ids;
  std::vector<float> scores;
  const int64_t* ids_of(size_t query) const { return ids.data() + query * k; }
  const float* scores_of(size_t query) const { return scores.data() + query * k; }
};

// Receives progress of long operations (training, encoding, converting). The CLI draws a bar on
// a TTY; library users may pass their own or none.
class Progress {
 public:
  virtual ~Progress() = default;
  virtual void begin(std::string_view task, uint64_t total) = 0;  // total 0: unknown
  virtual void advance(uint64_t done) = 0;                          // absolute count
  virtual void end() = 0;
};

}  // namespace vecpack
