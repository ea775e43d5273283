#include "partition.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <numeric>

#include "block_scorer.h"
#include "bytes.h"
#include "kernels/kernels.h"
#include "kmeans.h"
#include "parallel.h"
#include "search.h"
#include "vecpack/errors.h"
#include "vecpack/registry.h"

namespace vecpack {

namespace {

constexpr size_t kMaxLists = size_t{1} << 24;

// The arguments of the ivf stage, checked like a codec's.
const CodecDescriptor kIvfStage{
    "ivf",
    "inverted-file partition: rows split into lists by coarse k-means; a search scans the nprobe lists nearest a query",
    StageKind::transform,
    0,
    {{"lists", ParamType::integer, "1024", 1, double(kMaxLists), nullptr, "lists (coarse centroids)"},
     {"residual", ParamType::flag, "off", 0, 0, nullptr,
      "encode each row minus its list's centroid (metrics ip and l2; a chain without transforms)"}},
    nullptr,
};

std::string join_stage(const StageSpec& stage) {
  std::string text = stage.name, args;
  for (const auto& [key, value] : stage.args) args += (args.empty() ? "" : ",") + (key.empty() ? value : key + "=" + value);
  return args.empty() ? text : text + ":" + args;
}

}  // namespace

PartitionSpec split_partition_spec(std::string_view spec, std::string& codec_spec) {
  const std::vector<StageSpec> stages = parse_spec(spec);
  PartitionSpec out;
  codec_spec.clear();
  for (size_t i = 0; i < stages.size(); ++i) {
    if (stages[i].name != kIvfStage.name) {
      codec_spec += (codec_spec.empty() ? "" : "/") + join_stage(stages[i]);
      continue;
    }
    if (out.lists) throw SpecError("spec '" + std::string(spec) + "': stage " + std::to_string(i + 1) + ": a second ivf stage");
    if (i + 1 == stages.size())
      throw SpecError("spec '" + std::string(spec) + "': stage " + std::to_string(i + 1) +
                      ": ivf partitions the rows of a codec and must be followed by one, e.g. ivf:lists=1024/pq:m=50,nbits=4");
    const CodecArgs args = validate_args(kIvfStage, stages[i], i, spec);
    out.lists = static_cast<size_t>(args.integer("lists"));
    out.residual = args.flag("residual");
  }
  if (out.residual && stages.size() > 2)
    throw SpecError("spec '" + std::string(spec) +
                    "': ivf residual=on needs a chain without transforms (the residual of a transformed row is not the "
                    "transform of its residual); drop the transforms or residual=on");
  return out;
}

Partition::Partition(size_t dim, std::vector<float> centroids, bool residual, Metric metric)
    : d_(dim), lists_(dim ? centroids.size() / dim : 0), centroids_(std::move(centroids)), residual_(residual), metric_(metric) {
  if (residual_ && metric_ == Metric::cos)
    throw Error("ivf residual=on needs metric ip or l2: a cosine needs each decoded row's norm (use metric ip on unit "
                "rows, or residual=off)");
  half_sq_.resize(lists_);
  for (size_t l = 0; l < lists_; ++l) {
    double s = 0;
    for (size_t j = 0; j < d_; ++j) s += double(centroid(l)[j]) * centroid(l)[j];
    half_sq_[l] = float(s / 2);
  }
}

Partition Partition::train(const float* x, size_t n, size_t d, Metric metric, const PartitionSpec& spec,
                           const TrainSettings& settings) {
  if (spec.lists > n)
    throw Error("ivf: lists=" + std::to_string(spec.lists) + " exceeds the " + std::to_string(n) +
                " training rows (at most one list per row; fewer lists, or more training rows with --train-size)");
  std::vector<float> unit;
  if (metric == Metric::cos) {
    unit.assign(x, x + n * d);
    normalize_rows(unit.data(), n, d);
    x = unit.data();
  }
  KMeansOptions options;
  options.seed = settings.seed;
  options.threads = settings.threads;
  options.progress = settings.progress;
  options.progress_task = "ivf lists";
  options.want_assignments = false;
  options.max_points_per_centroid = kTrainRowsPerList;
  options.max_iterations = 12;  // coarse lists gain little from more; build time grows with each
  KMeansResult result = kmeans(x, n, d, spec.lists, options);
  if (metric == Metric::cos) normalize_rows(result.centroids.data(), spec.lists, d);
  return Partition(d, std::move(result.centroids), spec.residual, metric);
}

std::string Partition::spec() const {
  return "ivf:lists=" + std::to_string(lists_) + (residual_ ? ",residual=on" : "");
}

void Partition::assign(const float* x, size_t n, uint32_t* lists, unsigned threads) const {
  if (metric_ != Metric::cos) return assign_nearest(x, n, d_, centroids_.data(), lists_, lists, nullptr, threads);
  const size_t block = 4096;
  parallel_for((n + block - 1) / block, threads, [&](size_t b, unsigned) {
    const size_t begin = b * block, count = std::min(block, n - begin);
    std::vector<float> unit(x + begin * d_, x + (begin + count) * d_);
    normalize_rows(unit.data(), count, d_);
    assign_nearest(unit.data(), count, d_, centroids_.data(), lists_, lists + begin, nullptr, 1);
  });
}

namespace {

struct PlaceScratch {
  std::vector<uint32_t> items;
  std::vector<float> keys, select;
};

// Moves the `best` items of items[0, n) with the largest keys to the front and the others after
// them, each side in its former order, so that of equal keys the one that came first wins. No
// branch depends on a key: they come in no order.
void place_best(uint32_t* items, float* keys, size_t n, size_t best, PlaceScratch& scratch) {
  if (best >= n) return;
  scratch.select.assign(keys, keys + n);
  const float kth = kth_largest(scratch.select.data(), n, best - 1);
  size_t above = 0;
  for (size_t i = 0; i < n; ++i) above += keys[i] > kth;
  scratch.items.resize(n);
  scratch.keys.resize(n);
  size_t front = 0, back = best, ties_left = best - above;
  for (size_t i = 0; i < n; ++i) {
    const bool tie = keys[i] == kth, take = keys[i] > kth || (tie && ties_left > 0);
    ties_left -= tie && take;
    const size_t to = take ? front : back;
    front += take;
    back += !take;
    scratch.items[to] = items[i];
    scratch.keys[to] = keys[i];
  }
  std::copy_n(scratch.items.data(), n, items);
  std::copy_n(scratch.keys.data(), n, keys);
}

}  // namespace

std::vector<uint32_t> Partition::probe(const float* queries, size_t nq, size_t nprobe, std::vector<float>* dots,
                                       unsigned threads) const {
  nprobe = std::min(nprobe, lists_);
  if (dots) dots->clear();
  if (nprobe == 0) return {};
  std::vector<uint32_t> out(nq * nprobe);
  if (dots) dots->resize(nq * nprobe);
  const size_t chunk = 256;  // queries whose centroid scores are held at once (one GEMM)
  const kernels::KernelTable& kernel = kernels::active();
  parallel_for((nq + chunk - 1) / chunk, threads, [&](size_t c, unsigned) {
    thread_local std::vector<float> scores;
    // Not thread_local: in a shared library each use of one may cost a call.
    std::vector<uint32_t> order;
    std::vector<float> run_maxima, keys;
    std::vector<size_t> rounds;
    PlaceScratch scratch;
    const size_t q0 = c * chunk, qn = std::min(chunk, nq - q0);
    scores.resize(qn * lists_);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(qn), int(lists_), int(d_), 1.f, queries + q0 * d_, int(d_),
                centroids_.data(), int(d_), 0.f, scores.data(), int(lists_));
    for (size_t q = 0; q < qn; ++q) {
      float* s = scores.data() + q * lists_;
      // l2: -|q - c|^2 = 2 (q.c - |c|^2 / 2) - |q|^2, ranked by q.c - |c|^2 / 2.
      if (metric_ == Metric::l2)
        for (size_t l = 0; l < lists_; ++l) s[l] -= half_sq_[l];
      // A threshold first: the nprobe-th best of the maxima of short runs is at most the
      // nprobe-th best score (nprobe runs hold a score at least that high), so only scores at
      // or above it compete. A NaN score bounds nothing.
      const size_t run = std::clamp<size_t>(lists_ / (4 * nprobe), 1, 16), runs = (lists_ + run - 1) / run;
      run_maxima.resize(runs);
      for (size_t r = 0; r < runs; ++r) {
        float most = -INFINITY;
        for (size_t l = r * run; l < std::min(lists_, r * run + run); ++l) most = s[l] > most ? s[l] : most;
        run_maxima[r] = most;
      }
      const float floor = kth_largest(run_maxima.data(), runs, nprobe - 1);
      // The lists at or above the floor, in list order: at least nprobe of them, unless scores
      // are NaN or -infinity, which then compete with every list (NaN ranks last).
      order.resize(lists_);
      order.resize(kernel.select_above(s, lists_, std::nextafter(floor, -INFINITY), order.data()));
      if (order.size() < nprobe) {
        order.resize(lists_);
        std::iota(order.begin(), order.end(), 0u);
      }
      keys.resize(order.size());
      for (size_t i = 0; i < order.size(); ++i) keys[i] = rank_key(s[order[i]]);
      // The best nprobe first, then among them the best of each earlier round of closeness.
      place_best(order.data(), keys.data(), order.size(), nprobe, scratch);
      rounds.clear();
      for (size_t first = 1; first < nprobe; first *= kProbeRoundGrowth) rounds.push_back(first);
      for (size_t r = rounds.size(), group = nprobe; r-- > 0; group = rounds[r])
        place_best(order.data(), keys.data(), group, rounds[r], scratch);
      std::copy_n(order.begin(), nprobe, out.begin() + static_cast<std::ptrdiff_t>((q0 + q) * nprobe));
      if (dots)
        for (size_t p = 0; p < nprobe; ++p)
          (*dots)[(q0 + q) * nprobe + p] = s[order[p]] + (metric_ == Metric::l2 ? half_sq_[order[p]] : 0.f);
    }
  });
  return out;
}

std::vector<size_t> list_rows(const RowStore& store, size_t lists) {
  const auto& segments = store.segments();
  if (lists == 0 || segments.size() % lists)
    throw Error("a partitioned store has " + std::to_string(segments.size()) + " segments for " + std::to_string(lists) +
                " lists");
  std::vector<size_t> rows(lists, 0);
  for (size_t s = 0; s < segments.size(); ++s) rows[list_of_segment(s, lists)] += segments[s]->rows();
  return rows;
}

uint64_t partition_fingerprint(const Partition& partition) {
  ByteWriter w;
  w.put<uint32_t>(partition.residual() ? 1u : 0u);
  w.put<uint64_t>(partition.dim());
  w.put<uint64_t>(partition.lists());
  w.put_bytes(partition.centroids().data(), partition.centroids().size() * sizeof(float));
  const std::vector<uint8_t> bytes = w.take();
  return xxh64(bytes.data(), bytes.size());
}

// Layout (version 1): u32 version, u32 flags (bit 0: residuals), u64 d, u64 lists, then
// lists x d f32 centroids and lists + 1 u64 offsets (the first row of each list in stored order,
// then n).
std::vector<uint8_t> partition_section(const Partition& partition, const RowStore& store) {
  const std::vector<size_t> rows = list_rows(store, partition.lists());
  ByteWriter w;
  w.put<uint32_t>(1);
  w.put<uint32_t>(partition.residual() ? 1u : 0u);
  w.put<uint64_t>(partition.dim());
  w.put<uint64_t>(partition.lists());
  w.put_bytes(partition.centroids().data(), partition.centroids().size() * sizeof(float));
  uint64_t offset = 0;
  w.put<uint64_t>(0);
  for (size_t count : rows) w.put<uint64_t>(offset += count);
  return w.take();
}

OpenedPartition open_partition(const uint8_t* section, size_t size, Metric metric, size_t n, size_t d,
                               const uint8_t* codes, size_t code_size, const int64_t* ids,
                               std::shared_ptr<const void> owner, std::shared_ptr<const MappedFile> mapping,
                               const std::string& where) {
  ByteReader r(section, size, where);
  const uint32_t version = r.get<uint32_t>();
  if (version != 1) r.fail("version " + std::to_string(version) + " is not supported (this vecpack reads version 1)");
  const uint32_t flags = r.get<uint32_t>();
  if (flags > 1) r.fail("unknown flags " + std::to_string(flags));
  const bool residual = flags & 1u;
  const uint64_t dim = r.get<uint64_t>(), lists = r.get<uint64_t>();
  if (dim != d) r.fail("dimension " + std::to_string(dim) + " disagrees with META dimension " + std::to_string(d));
  // A shard of a partitioned table (a slice, rows added later) may hold fewer rows than lists.
  if (lists == 0 || lists > kMaxLists) r.fail(std::to_string(lists) + " lists is out of range (1.." + std::to_string(kMaxLists) + ")");
  if (residual && metric == Metric::cos) r.fail("residual lists need metric ip or l2, and META says cos");
  const uint8_t* centroid_bytes = r.take(lists * d * sizeof(float));  // checked against the section before allocating
  std::vector<float> centroids(lists * d);
  std::memcpy(centroids.data(), centroid_bytes, centroids.size() * sizeof(float));
  for (size_t i = 0; i < centroids.size(); ++i)
    if (!std::isfinite(centroids[i])) r.fail("centroid value " + std::to_string(i) + " is not finite");
  std::vector<uint64_t> offsets(lists + 1);
  std::memcpy(offsets.data(), r.take((lists + 1) * sizeof(uint64_t)), offsets.size() * sizeof(uint64_t));
  r.expect_end();
  if (offsets.front() != 0 || offsets.back() != n)
    r.fail("list offsets run from " + std::to_string(offsets.front()) + " to " + std::to_string(offsets.back()) +
           ", not from 0 to the " + std::to_string(n) + " rows");
  for (size_t l = 0; l < lists; ++l)
    if (offsets[l + 1] < offsets[l]) r.fail("list " + std::to_string(l) + " ends before it starts");
  OpenedPartition out;
  out.partition = std::make_shared<Partition>(d, std::move(centroids), residual, metric);
  for (size_t l = 0; l < lists; ++l)
    out.lists.push_back(std::make_shared<Segment>(codes + offsets[l] * code_size, offsets[l + 1] - offsets[l], 0,
                                                  ids + offsets[l], 0, owner, mapping));
  return out;
}

std::shared_ptr<const RowStore> partitioned_store(std::shared_ptr<const Codec> codec, const uint8_t* codes, size_t n,
                                                  const uint32_t* lists, size_t list_count) {
  const size_t cs = codec->code_size();
  std::vector<uint64_t> offsets(list_count + 1, 0);
  for (size_t i = 0; i < n; ++i) ++offsets[lists[i] + 1];
  std::partial_sum(offsets.begin(), offsets.end(), offsets.begin());
  auto owned = std::make_shared<OwnedRows>();
  owned->codes.resize(n * cs);
  owned->ids.resize(n);
  std::vector<uint64_t> next(offsets.begin(), offsets.end() - 1);
  for (size_t i = 0; i < n; ++i) {
    const uint64_t at = next[lists[i]]++;
    std::copy_n(codes + i * cs, cs, owned->codes.data() + at * cs);
    owned->ids[at] = static_cast<int64_t>(i);
  }
  return std::make_shared<RowStore>(std::move(codec), segments_of(owned, cs, offsets));
}

}  // namespace vecpack
