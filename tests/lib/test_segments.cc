// Segments: the engine scans runs of codes that carry their own ids. A store cut into segments
// with id maps, in any order, must search exactly like the flat table it was cut from.
#include <doctest/doctest.h>

#include <algorithm>
#include <numeric>
#include <random>

#include "row_store.h"
#include "search.h"
#include "test_util.h"
#include "vecpack/errors.h"
#include "vecpack/table.h"

using namespace vecpack;

namespace {

// The rows of a flat store, shuffled and cut in two segments, each with an id map.
std::shared_ptr<const RowStore> shuffled_segments(const RowStore& flat, size_t cut, uint64_t seed) {
  const size_t n = flat.rows(), cs = flat.codec().code_size();
  const uint8_t* codes = flat.contiguous_codes();
  REQUIRE(codes);
  std::vector<int64_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::shuffle(order.begin(), order.end(), std::mt19937_64(seed));
  RowStore::Segments segments;
  for (auto [begin, end] : {std::pair<size_t, size_t>{0, cut}, {cut, n}}) {
    auto ids = std::make_shared<std::vector<int64_t>>(order.begin() + begin, order.begin() + end);
    auto bytes = std::make_shared<std::vector<uint8_t>>(ids->size() * cs);
    for (size_t i = 0; i < ids->size(); ++i)
      std::copy_n(codes + size_t((*ids)[i]) * cs, cs, bytes->data() + i * cs);
    auto owner = std::make_shared<std::pair<decltype(ids), decltype(bytes)>>(ids, bytes);
    segments.push_back(std::make_shared<Segment>(bytes->data(), ids->size(), 0, ids->data(), 0, owner));
  }
  return std::make_shared<RowStore>(std::shared_ptr<const Codec>(&flat.codec(), [](const Codec*) {}), std::move(segments));
}

// The same rows as three segments with consecutive id bases (a sharded table's shape).
std::shared_ptr<const RowStore> ranged_segments(const std::shared_ptr<const RowStore>& flat, std::vector<size_t> cuts) {
  std::vector<std::shared_ptr<const RowStore>> parts;
  size_t begin = 0;
  cuts.push_back(flat->rows());
  for (size_t end : cuts) {
    parts.push_back(flat->slice(begin, end - begin));
    begin = end;
  }
  return RowStore::concatenate(parts);
}

std::shared_ptr<const RowStore> encode_store(const std::string& spec, const std::vector<float>& x, size_t d) {
  auto codec = std::make_shared<Codec>(spec);
  const size_t n = x.size() / d;
  codec->train(x.data(), n, d);
  auto codes = std::make_shared<std::vector<uint8_t>>(n * codec->code_size());
  codec->encode(x.data(), n, codes->data());
  return std::make_shared<RowStore>(codec, codes->data(), n, codes);
}

void check_same(const SearchResult& want, const SearchResult& got) {
  REQUIRE(want.ids.size() == got.ids.size());
  CHECK(want.ids == got.ids);
  for (size_t i = 0; i < want.scores.size(); ++i) {
    CAPTURE(i);
    CHECK(want.scores[i] == got.scores[i]);
  }
}

}  // namespace

TEST_CASE("segments: two id-mapped segments in shuffled order search like the flat table") {
  const size_t n = 3000, d = 32;
  const auto x = test::clustered_rows(n, d, 40, 11);
  const auto queries = test::clustered_rows(300, d, 40, 12);
  // Row kernels (f32 and int8 below 8 queries), 8-bit tables, 4-bit fast scan with its scan
  // layout, byte tables and popcounts: each codec's fastest path.
  for (std::string spec : {"f32", "int8", "pq:m=8", "pq:m=16,nbits=4", "rbin:bits=2", "binary", "rabitq"}) {
    CAPTURE(spec);
    const auto flat = encode_store(spec, x, d);
    const auto mapped = shuffled_segments(*flat, 1100, 5);
    CHECK(mapped->rows() == n);
    CHECK(mapped->contiguous_codes() == nullptr);
    const size_t nq = spec.rfind("pq", 0) == 0 || spec == "rbin:bits=2" ? 300 : 5;
    for (Metric metric : {Metric::ip, Metric::cos, Metric::l2})
      for (unsigned threads : {1u, 2u}) {
        const std::string metric_text = metric_name(metric);
        CAPTURE(metric_text);
        CAPTURE(threads);
        SearchOptions options;
        options.k = 10;
        options.threads = threads;
        check_same(search_store(*flat, queries.data(), nq, metric, options),
                   search_store(*mapped, queries.data(), nq, metric, options));
      }
    // Rows decode by id through the map.
    std::vector<float> want(d), got(d);
    for (size_t id : {size_t(0), size_t(1234), n - 1}) {
      flat->reconstruct(id, 1, want.data());
      mapped->reconstruct(id, 1, got.data());
      CHECK(want == got);
    }
  }
}

TEST_CASE("segments: rerank finds each candidate's rerank codes through the id maps") {
  const size_t n = 2500, d = 24;
  const auto x = test::clustered_rows(n, d, 30, 21);
  const auto queries = test::clustered_rows(7, d, 30, 22);
  for (std::string spec : {"pq:m=6,nbits=4", "rabitq"}) {
    CAPTURE(spec);
    const auto flat = encode_store(spec, x, d), flat_rerank = encode_store("int8", x, d);
    const auto mapped = shuffled_segments(*flat, 700, 1), mapped_rerank = shuffled_segments(*flat_rerank, 1900, 2);
    for (Metric metric : {Metric::cos, Metric::l2}) {
      SearchOptions options;
      options.k = 10;
      options.rerank = 60;
      check_same(search_store(*flat, queries.data(), 7, metric, options, flat_rerank.get()),
                 search_store(*mapped, queries.data(), 7, metric, options, mapped_rerank.get()));
    }
  }
}

TEST_CASE("segments: consecutive id bases (a sharded table's shape), funnel search, and the table's own path") {
  const size_t n = 5000, d = 40;
  const auto x = test::clustered_rows(n, d, 50, 31);
  const auto queries = test::clustered_rows(6, d, 50, 32);
  const auto flat = encode_store("int8", x, d);
  // Cuts that are not multiples of the engine's 64-row blocks.
  const auto ranged = ranged_segments(flat, {1000, 1001, 3333});
  CHECK(ranged->segments().size() == 4);
  const auto mapped = shuffled_segments(*flat, 2600, 9);
  SearchOptions options;
  options.k = 10;
  check_same(search_store(*flat, queries.data(), 6, Metric::cos, options),
             search_store(*ranged, queries.data(), 6, Metric::cos, options));
  options.funnel = parse_funnel("16:200");
  const SearchResult funnel = search_store(*flat, queries.data(), 6, Metric::cos, options);
  check_same(funnel, search_store(*ranged, queries.data(), 6, Metric::cos, options));
  check_same(funnel, search_store(*mapped, queries.data(), 6, Metric::cos, options));

  // A flat store is what a table searches.
  std::vector<float> rows = x;
  Table table = Table::from_rows(std::move(rows), d).compress("int8");
  options.funnel.clear();
  const SearchResult from_table = table.search(queries.data(), 6, options);
  const SearchResult from_mapped = search_store(*shuffled_segments(*std::make_shared<RowStore>(
                                                    std::shared_ptr<const Codec>(&table.codec(), [](const Codec*) {}),
                                                    table.codes(), n, nullptr),
                                                1, 3),
                                                queries.data(), 6, table.metric(), options);
  check_same(from_table, from_mapped);
}

TEST_CASE("segments: ids that no segment holds, and what id maps rule out") {
  const size_t n = 600, d = 8;
  const auto x = test::clustered_rows(n, d, 5, 41);
  const auto flat = encode_store("f16", x, d);
  const auto mapped = shuffled_segments(*flat, 100, 4);
  std::vector<float> row(d);
  CHECK_THROWS_AS(mapped->reconstruct(n, 1, row.data()), NotFoundError);
  CHECK_THROWS_AS(mapped->locate(-1), NotFoundError);
  // Slices of id-mapped segments keep every segment in its place, with the rows of the range.
  const auto picked = mapped->slice(150, 300);
  CHECK(picked->rows() == 300);
  CHECK(picked->segments().size() == mapped->segments().size());
  std::vector<float> expected(300 * d), sliced(300 * d);
  flat->reconstruct(150, 300, expected.data());
  picked->reconstruct(0, 300, sliced.data());
  CHECK(expected == sliced);
  for (size_t s = 0; s < picked->segments().size(); ++s)
    for (size_t r = 0; r < picked->segments()[s]->rows(); ++r) {
      const int64_t id = picked->segments()[s]->id(r);
      CHECK((id >= 0 && id < 300));
    }
  // Slices of ranged segments keep their rows and renumber their ids from 0.
  const auto ranged = ranged_segments(flat, {250});
  const auto slice = ranged->slice(200, 100);
  CHECK(slice->rows() == 100);
  CHECK(slice->segments().size() == 2);
  std::vector<float> want(100 * d), got(100 * d);
  flat->reconstruct(200, 100, want.data());
  slice->reconstruct(0, 100, got.data());
  CHECK(want == got);
}
