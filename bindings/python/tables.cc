// vecpack._vecpack: tables (open, read, write, compress, search, get) and the format list.
#include <cstring>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common.h"

namespace vecpack::python {
namespace {

// ---------------------------------------------------------------- tables

size_t row_index(const Table& table, py::ssize_t index) {
  const auto n = static_cast<py::ssize_t>(table.size());
  if (index < 0) index += n;
  if (index < 0 || index >= n)
    throw py::index_error("row " + std::to_string(index) + " is out of range (" + std::to_string(n) + " rows)");
  return static_cast<size_t>(index);
}

py::str key_text(std::string_view key) {
  // Keys are UTF-8; surrogateescape keeps any stray byte readable instead of failing.
  PyObject* text = PyUnicode_DecodeUTF8(key.data(), static_cast<py::ssize_t>(key.size()), "surrogateescape");
  if (!text) throw py::error_already_set();
  return py::reinterpret_steal<py::str>(text);
}

py::array_t<float> rows_of_keys(const Table& table, const py::sequence& keys) {
  const size_t n = py::len(keys), d = table.dim();
  auto out = float_matrix(n, d);
  float* data = out.mutable_data();
  for (size_t i = 0; i < n; ++i) {
    std::vector<float> v = table.get(keys[i].cast<std::string>());
    std::copy(v.begin(), v.end(), data + i * d);
  }
  return out;
}

py::array_t<float> rows_at(const Table& table, const std::vector<size_t>& rows) {
  const size_t d = table.dim();
  auto out = float_matrix(rows.size(), d);
  float* data = out.mutable_data();
  {
    py::gil_scoped_release release;
    for (size_t i = 0; i < rows.size(); ++i) table.reconstruct(rows[i], 1, data + i * d);
  }
  return out;
}

// Every row of the table, decoded into a new array.
py::array_t<float> decode_all(const Table& t) {
  py::array_t<float> out({static_cast<py::ssize_t>(t.size()), static_cast<py::ssize_t>(t.dim())});
  float* data = out.mutable_data();
  {
    py::gil_scoped_release release;
    if (t.size()) t.reconstruct(0, t.size(), data);
  }
  return out;
}

py::object get_item(const TableHandle& self, const py::object& item) {
  const Table& t = self.table;
  if (py::isinstance<py::str>(item)) {
    std::vector<float> v = t.get(item.cast<std::string>());  // NotFoundError: a KeyError
    return py::array_t<float>(static_cast<py::ssize_t>(v.size()), v.data());
  }
  if (PyIndex_Check(item.ptr()) && !py::isinstance<py::array>(item)) {
    std::vector<float> v(t.dim());
    size_t row = row_index(t, py::cast<py::ssize_t>(item));
    t.reconstruct(row, 1, v.data());
    return py::array_t<float>(static_cast<py::ssize_t>(v.size()), v.data());
  }
  if (py::isinstance<py::slice>(item)) {
    py::ssize_t start = 0, stop = 0, step = 0, length = 0;
    if (!item.cast<py::slice>().compute(static_cast<py::ssize_t>(t.size()), &start, &stop, &step, &length))
      throw py::error_already_set();
    if (step == 1) {
      auto out = float_matrix(static_cast<size_t>(length), t.dim());
      float* data = out.mutable_data();
      {
        py::gil_scoped_release release;
        if (length) t.reconstruct(static_cast<size_t>(start), static_cast<size_t>(length), data);
      }
      return out;
    }
    std::vector<size_t> rows(static_cast<size_t>(length));
    for (py::ssize_t i = 0; i < length; ++i) rows[i] = static_cast<size_t>(start + i * step);
    return rows_at(t, rows);
  }
  if (py::isinstance<py::sequence>(item) || py::isinstance<py::array>(item)) {
    py::sequence items = py::isinstance<py::array>(item) ? py::sequence(item.attr("tolist")()) : item.cast<py::sequence>();
    bool all_keys = py::len(items) > 0;
    for (auto element : items) all_keys = all_keys && py::isinstance<py::str>(element);
    if (all_keys) return rows_of_keys(t, items);
    std::vector<size_t> rows;
    for (auto element : items) {
      if (!PyIndex_Check(element.ptr())) throw py::type_error("a list of keys must hold only str, a list of rows only int");
      rows.push_back(row_index(t, py::cast<py::ssize_t>(element)));
    }
    return rows_at(t, rows);
  }
  throw py::type_error("a table is indexed by a key (str), a row (int), a slice, or a list of keys or rows");
}

// funnel: None, a string "32:1000,full", or a sequence of stages, each DIMS, "full" or
// (DIMS or "full", CANDIDATES or None). A sequence is spelled as the string and parsed by the
// library's one parser, which checks every value.
std::vector<FunnelStage> funnel_stages(const py::handle& funnel) {
  if (funnel.is_none()) return {};
  if (py::isinstance<py::str>(funnel)) return parse_funnel(funnel.cast<std::string>());
  if (!py::isinstance<py::sequence>(funnel))
    throw py::type_error("funnel must be a string such as '32:1000,full' or a list such as [(32, 1000), 'full']");
  auto spell = [](const py::handle& v, const char* what) -> std::string {
    if (py::isinstance<py::str>(v)) return v.cast<std::string>();
    if (!PyIndex_Check(v.ptr())) throw py::type_error(std::string("funnel: ") + what + " must be an int or 'full'");
    return std::to_string(v.cast<py::ssize_t>());
  };
  std::string text;
  for (auto item : funnel.cast<py::sequence>()) {
    if (!text.empty()) text += ",";
    if (py::isinstance<py::str>(item) || !py::isinstance<py::sequence>(item)) {
      text += spell(item, "a stage's dimension count");
      continue;
    }
    auto pair = item.cast<py::sequence>();
    if (py::len(pair) != 2) throw py::value_error("funnel: a stage is DIMS or (DIMS, CANDIDATES)");
    text += spell(pair[0], "a stage's dimension count");
    if (!pair[1].is_none()) text += ":" + spell(pair[1], "a stage's candidate count");
  }
  if (text.empty()) throw py::value_error("funnel: give at least one stage, or None");
  return parse_funnel(text);
}

// Row ids from an array of ints, or from keys (str) looked up in the table.
std::vector<int64_t> row_ids_of(const Table& table, const py::handle& rows, const char* what) {
  std::vector<int64_t> ids;
  if (py::isinstance<py::str>(rows)) throw py::type_error(std::string(what) + ": give a list of keys or of row ids, not one str");
  // numpy arrays without a Python object per element: ids of any integer type, or a mask.
  if (py::isinstance<py::array>(rows)) {
    const py::array array = py::reinterpret_borrow<py::array>(rows);
    const char kind = array.dtype().kind();
    if (kind == 'b') {
      const auto mask = py::array_t<bool, py::array::c_style | py::array::forcecast>::ensure(rows);
      if (mask.ndim() != 1 || size_t(mask.size()) != table.size())
        throw py::value_error(std::string(what) + ": a boolean mask needs one value per row (" + std::to_string(table.size()) + ")");
      for (py::ssize_t i = 0; i < mask.size(); ++i)
        if (mask.data()[i]) ids.push_back(i);
      return ids;
    }
    if (kind == 'i' || kind == 'u') {
      const auto values = py::array_t<int64_t, py::array::c_style | py::array::forcecast>::ensure(rows);
      if (values.ndim() > 1) throw py::value_error(std::string(what) + ": give a 1-D array of row ids");
      return std::vector<int64_t>(values.data(), values.data() + values.size());
    }
  }
  const py::list items = py::list(py::iter(rows));
  ids.reserve(items.size());
  for (const py::handle item : items) {
    if (py::isinstance<py::str>(item)) {
      const std::string key = item.cast<std::string>();
      auto row = table.find(key);
      if (!row) throw NotFoundError(std::string(what) + ": key '" + key + "' is not in the table");
      ids.push_back(static_cast<int64_t>(*row));
    } else {
      ids.push_back(item.cast<int64_t>());
    }
  }
  return ids;
}

// allow / deny of search(): row ids or keys; at most one of them.
RowFilter row_filter(const Table& table, const py::handle& allow, const py::handle& deny) {
  if (!allow.is_none() && !deny.is_none()) throw py::value_error("search: give allow or deny, not both");
  if (!allow.is_none()) {
    const std::vector<int64_t> ids = row_ids_of(table, allow, "allow");
    return RowFilter::allow(ids.data(), ids.size(), table.size());
  }
  if (!deny.is_none()) {
    const std::vector<int64_t> ids = row_ids_of(table, deny, "deny");
    return RowFilter::deny(ids.data(), ids.size(), table.size());
  }
  return {};
}

py::tuple search(const Table& table, const py::handle& queries, size_t k, std::optional<size_t> rerank,
                 std::optional<std::string> metric, unsigned threads, const py::handle& funnel = py::none(),
                 size_t nprobe = 0, double recall = 0, const py::handle& allow = py::none(),
                 const py::handle& deny = py::none()) {
  if (k == 0) throw py::value_error("k must be at least 1");
  Rows q = as_rows(queries, table.dim(), "queries");
  SearchOptions options;
  options.k = k;
  options.threads = threads;
  options.rerank = rerank.value_or(0);
  options.nprobe = nprobe;
  options.recall = recall;
  options.funnel = funnel_stages(funnel);
  options.filter = row_filter(table, allow, deny);
  std::optional<Metric> chosen;
  if (metric) chosen = parse_metric(*metric);
  SearchResult result;
  {
    py::gil_scoped_release release;
    result = table.search(q.array.data(), q.count, options, chosen);
  }
  std::vector<py::ssize_t> shape = q.single ? std::vector<py::ssize_t>{py::ssize_t(result.k)}
                                            : std::vector<py::ssize_t>{py::ssize_t(result.nq), py::ssize_t(result.k)};
  py::array_t<int64_t> ids(shape);
  py::array_t<float> scores(shape);
  std::copy(result.ids.begin(), result.ids.end(), ids.mutable_data());
  std::copy(result.scores.begin(), result.scores.end(), scores.mutable_data());
  return py::make_tuple(ids, scores);
}

CompressOptions compress_options(std::optional<size_t> train_size, uint64_t seed, unsigned threads) {
  CompressOptions options;
  if (train_size) options.train_size = *train_size;
  options.seed = seed;
  options.threads = threads;
  return options;
}

// What compress() encodes with: a spec string to train, a trained Codec, or a model Table whose
// codec and ivf partition encode without training (e.g. shared by the shards of one table).
struct Encoding {
  std::string spec;
  const Codec* codec = nullptr;
  const Table* model = nullptr;
  bool trained() const { return codec || model; }
  Table apply(const Table& rows, const CompressOptions& options) const {
    if (model) return rows.compress(*model, options);
    if (codec) return rows.compress(*codec, options);
    return rows.compress(spec, options);
  }
};

Encoding encoding_of(const py::object& codec) {
  Encoding out;
  if (py::isinstance<py::str>(codec)) out.spec = codec.cast<std::string>();
  else if (py::isinstance<Codec>(codec)) out.codec = &codec.cast<const Codec&>();
  else if (py::isinstance<TableHandle>(codec)) out.model = &codec.cast<const TableHandle&>().table;
  else throw py::type_error("spec must be a spec string, a trained vecpack.Codec or a vecpack.Table to encode like");
  if (out.codec && !out.codec->trained())
    throw Error("codec '" + out.codec->spec() + "' is not trained (train it, or pass a spec string)");
  return out;
}

TableHandle compress_array(const py::handle& x, const py::object& codec, std::optional<std::vector<std::string>> keys,
                           std::optional<size_t> train_size, const std::string& metric,
                           std::optional<std::string> rerank, uint64_t seed, unsigned threads,
                           std::optional<std::vector<uint64_t>> counts, std::optional<std::vector<uint32_t>> row_tables) {
  const Metric chosen_metric = parse_metric(metric);
  const Encoding encoding = encoding_of(codec);
  const bool trained = encoding.trained();
  const std::string& spec = encoding.spec;
  // A codec that keeps float rows as they are (f32) takes the rows as given (checks the spec
  // before copying anything).
  const bool partitioned = !trained && codec_chain_of(spec) != spec;  // an ivf stage
  const uint32_t caps = trained ? 0u : Codec(codec_chain_of(spec)).capabilities();
  const bool lossless =
      !trained && !partitioned && (caps & kFloatRows) && !(caps & kTransform) && !rerank && !counts && !row_tables;
  if (rerank) Codec check_rerank(*rerank);
  size_t rows = 0, dim = 0;
  std::vector<float> values = to_float_vector(x, rows, dim);
  std::vector<std::string> key_list = keys ? std::move(*keys) : std::vector<std::string>{};
  py::gil_scoped_release release;
  if (lossless) {
    // f32 keeps the rows as given: no second copy through compress(), but the same NaN rule.
    for (size_t i = 0; i < rows; ++i)
      if (first_non_finite(values.data() + i * dim, dim) != dim)
        throw Error("row " + std::to_string(i) + " contains NaN or infinity");
    return {Table::from_rows(std::move(values), dim, std::move(key_list), chosen_metric), {}};
  }
  Table uncompressed = Table::from_rows(std::move(values), dim, std::move(key_list), chosen_metric);
  if (counts) uncompressed = uncompressed.with_counts(std::move(*counts));
  CompressOptions options = compress_options(train_size, seed, threads);
  options.rerank_spec = rerank.value_or("");
  if (row_tables) options.row_tables = std::move(*row_tables);
  return {encoding.apply(uncompressed, options), {}};
}

}  // namespace

void bind_tables(py::module_& m) {
  py::class_<KeyList>(m, "KeyList", "The keys of a table in row order: a lazy, read-only sequence of str.")
      .def("__len__", [](const KeyList& self) { return self.table.size(); }, "The number of keys: one per row.")
      .def("__getitem__",
           [](const KeyList& self, py::ssize_t index) { return key_text(self.table.key(row_index(self.table, index))); },
           py::arg("index"), "The key of row index (negative counts from the end); keys[i:j] gives a list.")
      .def("__getitem__",
           [](const KeyList& self, const py::slice& slice) {
             py::ssize_t start = 0, stop = 0, step = 0, length = 0;
             if (!slice.compute(static_cast<py::ssize_t>(self.table.size()), &start, &stop, &step, &length))
               throw py::error_already_set();
             py::list out;
             for (py::ssize_t i = 0; i < length; ++i)
               out.append(key_text(self.table.key(static_cast<size_t>(start + i * step))));
             return out;
           })
      .def("__contains__",
           [](const KeyList& self, const py::object& key) {
             return py::isinstance<py::str>(key) && self.table.find(key.cast<std::string>()).has_value();
           },
           py::arg("key"), "Whether key (a str) is one of the keys; O(1).")
      .def(
          "index",
          [](const KeyList& self, const std::string& key) {
            auto row = self.table.find(key);
            if (!row) throw py::value_error("'" + key + "' is not in the keys");
            return *row;
          },
          py::arg("key"), "The row of key; ValueError when the table does not have it.")
      .def("__repr__",
           [](const KeyList& self) { return "<vecpack.KeyList of " + std::to_string(self.table.size()) + " keys>"; });

  py::class_<TableHandle>(m, "Table", R"doc(A table of vectors, optionally keyed by strings.

Open one with vecpack.open(), read one with vecpack.read(), or build one from an array with
vecpack.compress(). Tables are immutable and safe to search from many threads at once.)doc")
      .def("__len__", [](const TableHandle& self) { return self.table.size(); }, "The number of rows.")
      .def("__contains__",
           [](const TableHandle& self, const py::object& key) {
             return py::isinstance<py::str>(key) && self.table.find(key.cast<std::string>()).has_value();
           },
           py::arg("key"), "Whether the table has a row keyed key (a str); O(1).")
      .def("__getitem__", &get_item, py::arg("item"),
           R"doc(Decoded rows as float32: t['king'] (a key; with subwords, also a word the table lacks),
t[5] (a row; negative counts from the end), t[2:9] or t[::2] (rows x dim), and t[['a', 'b']] or
t[[3, 7]] (a list of keys or of rows). KeyError for a key the table cannot answer, IndexError
for a row out of range.)doc")
      .def_property_readonly("dim", [](const TableHandle& self) { return self.table.dim(); }, "Values per row.")
      .def_property_readonly("spec", [](const TableHandle& self) { return self.table.spec(); },
                             "The codec spec, canonical (every argument spelled out).")
      .def_property_readonly("metric", [](const TableHandle& self) { return metric_name(self.table.metric()); },
                             "'ip', 'cos' or 'l2': how search() compares rows unless told otherwise.")
      .def_property_readonly("has_keys", [](const TableHandle& self) { return self.table.has_keys(); },
                             "Whether the rows are keyed by strings (t.keys lists them).")
      .def_property_readonly("has_subwords", [](const TableHandle& self) { return self.table.has_subwords(); },
                             "True when unknown words get a vector from their character n-grams.")
      .def(
          "fit_subwords",
          [](const TableHandle& self, uint64_t buckets, uint32_t minn, uint32_t maxn, size_t keep_rows, unsigned threads) {
            SubwordFitOptions options;
            options.buckets = buckets;
            options.minn = minn;
            options.maxn = maxn;
            options.keep_rows = keep_rows;
            options.threads = threads;
            py::gil_scoped_release release;
            return TableHandle{self.table.fit_subwords(options), {}};
          },
          py::arg("buckets") = 100000, py::arg("minn") = 3, py::arg("maxn") = 6, py::arg("keep_rows") = 0,
          py::arg("threads") = 0,
          R"doc(This keyed table with an n-gram pool fitted to its words, so that t["unseen"] gets a vector.

The pool (buckets rows, fastText's n-gram hashing with '<' '>' markers, lengths minn..maxn)
is fitted by ridge least squares so that the mean of a word's n-gram rows approximates its row.
It is stored in the file and compressed along with the table. keep_rows: rows kept after the
fit (0: all); in a frequency-sorted table the dropped rare words are then answered from their
n-grams.)doc")
      .def_property_readonly(
          "counts",
          [](const py::object& self_object) -> py::object {
            const Table& t = self_object.cast<const TableHandle&>().table;
            if (!t.counts()) return py::none();
            return read_only_view(py::dtype::of<uint64_t>(), {static_cast<py::ssize_t>(t.size())}, t.counts(), self_object);
          },
          "How often each row's key occurs in its corpus (uint64, read-only, no copy), or None when unknown. "
          "fastText models carry word counts; mixdim ranks rows by them.")
      .def(
          "with_counts",
          [](const TableHandle& self, std::vector<uint64_t> counts) {
            return TableHandle{self.table.with_counts(std::move(counts)), {}};
          },
          py::arg("counts"), "This table with row counts (one non-negative integer per row) attached, saved with it.")
      .def_property_readonly(
          "path",
          [](const TableHandle& self) -> py::object {
            if (self.path.empty()) return py::none();
            return py::str(self.path);
          },
          "The .vecpack file the table is mapped from, or None for a table in memory.")
      .def_property_readonly(
          "keys",
          [](const TableHandle& self) -> py::object {
            if (!self.table.has_keys()) return py::none();
            return py::cast(KeyList{self.table});
          },
          "The keys in row order (a lazy sequence of str), or None when the table has none.")
      .def(
          "find",
          [](const TableHandle& self, const std::string& key) -> py::object {
            auto row = self.table.find(key);
            return row ? py::object(py::int_(*row)) : py::none();
          },
          py::arg("key"), "The row of key, or None.")
      .def_property_readonly(
          "vectors",
          [](const py::object& self_object) -> py::array {
            const auto& self = self_object.cast<const TableHandle&>();
            const Table& t = self.table;
            const auto rows = static_cast<py::ssize_t>(t.size()), dim = static_cast<py::ssize_t>(t.dim());
            if (const float* stored = t.float_rows())
              return read_only_view(py::dtype::of<float>(), {rows, dim}, stored, self_object);
            if (self.decoded) return self.decoded.cast<py::array>();
            py::array_t<float> decoded = decode_all(t);
            decoded.attr("setflags")(py::arg("write") = false);
            self.decoded = decoded;
            return decoded;
          },
          R"doc(Every row as a float32 array (rows x dim), read-only.

For an f32 table this is a view of the stored rows (of the memory mapping for an opened file):
no copy, and the array keeps the table alive. For other codecs the first access decodes every
row and the table keeps that array: later accesses return the same one, and it takes
rows x dim x 4 bytes for as long as the table lives. decode() gives a new, writable array each
time; t[i] or t[i:j] decode a few rows.)doc")
      .def(
          "decode",
          [](const TableHandle& self) { return decode_all(self.table); },
          "Every row decoded into a new, writable float32 array (rows x dim); the table keeps no copy.")
      .def_property_readonly(
          "codes",
          [](const py::object& self_object) -> py::object {
            const Table& t = self_object.cast<const TableHandle&>().table;
            if (!t.codes()) return py::none();
            const auto rows = static_cast<py::ssize_t>(t.size());
            const auto width = static_cast<py::ssize_t>(t.codec().code_size());
            return read_only_view(py::dtype::of<uint8_t>(), {rows, width}, t.codes(), self_object);
          },
          "The stored codes as a read-only uint8 view (rows x code_size), or None when the codec has no per-row codes.")
      .def(
          "search",
          [](const TableHandle& self, const py::handle& queries, size_t k, std::optional<size_t> rerank,
             std::optional<std::string> metric, unsigned threads, const py::object& funnel, size_t nprobe,
             double recall, const py::object& allow, const py::object& deny) {
            return search(self.table, queries, k, rerank, std::move(metric), threads, funnel, nprobe, recall, allow, deny);
          },
          py::arg("queries"), py::arg("k") = 10, py::arg("rerank") = py::none(), py::arg("metric") = py::none(),
          py::arg("threads") = 0, py::arg("funnel") = py::none(), py::arg("nprobe") = 0, py::arg("recall") = 0.0,
          py::kw_only(), py::arg("allow") = py::none(), py::arg("deny") = py::none(),
          R"doc(Exact top-k rows for each query, scored on the stored codes.

queries: one vector (1-D) or one per row (2-D), any float dtype.
Returns (ids, scores): int64 and float32 arrays of shape (k,) for one query, (nq, k) for
several. Similarities (ip, cos) descend; l2 gives squared distances, ascending. Ties go to
the smaller row; missing entries (fewer than k rows) have id -1.
metric: 'ip', 'cos' or 'l2' instead of the table's. threads: 0 for one per core.
funnel: shortlist on leading dimensions, then rescore with more and finally all of them, e.g.
[(32, 1000), (128, 100)] or '32:1000,128:100,full' (codecs f32, f16, bf16, int8, after any
transforms; a stage without a count keeps twice the next stage's, the last max(100, 10 k)).
nprobe: for a table compressed with an ivf stage (e.g. 'ivf:lists=1024/pq:m=50,nbits=4'), the
lists each query scans (0: all of them, the codec's exact result).
recall: instead of nprobe, a recall@10 to reach (e.g. 0.95): the fewest lists whose recall,
measured when the table was compressed, reaches it (recall_curve() shows the measurements); with
no rerank given, the table's rerank rows rescore the depth the curve was measured with.
allow, deny: row ids (ints, e.g. a numpy array), a boolean mask of len(table), or keys; only the allowed rows, or all but the
denied ones, are returned. The scan skips the others (few allowed rows are scanned alone,
exactly, even in an ivf table). Deleted rows are never returned.)doc")
      .def(
          "add",
          [](TableHandle& self, const py::handle& rows, std::optional<std::vector<std::string>> keys, bool replace,
             unsigned threads) {
            size_t n = 0, dim = 0;
            std::vector<float> values = to_float_vector(rows, n, dim);
            if (n && dim != self.table.dim())
              throw py::value_error("add: rows have " + std::to_string(dim) + " columns, the table " +
                                    std::to_string(self.table.dim()));
            Table added = Table::from_rows(std::move(values), self.table.dim(), keys ? std::move(*keys) : std::vector<std::string>{},
                                           self.table.metric());
            AddOptions options;
            options.replace = replace;
            options.threads = threads;
            py::gil_scoped_release release;
            if (self.path.empty()) {
              self.table = self.table.add(added, options);
            } else {
              TableWriter writer(self.path);
              self.table = writer.add(added, options);
            }
            self.decoded = py::object();
          },
          py::arg("rows"), py::arg("keys") = py::none(), py::kw_only(), py::arg("replace") = false, py::arg("threads") = 0,
          R"doc(Appends rows (one row or a 2-D array), encoded by the table's trained codec (and ivf lists)
without training. keys: one new key per row, required when the table has keys. A key the table
holds already is an Error unless replace=True, which deletes its old row. A table opened from a
file or folder changes on disk: the new rows go into a delta file and a new generation of the
table is published atomically; other readers keep the generation they opened.)doc")
      .def(
          "delete",
          [](TableHandle& self, const py::handle& rows) {
            const std::vector<int64_t> ids = row_ids_of(self.table, rows, "delete");
            py::gil_scoped_release release;
            if (self.path.empty()) {
              self.table = self.table.remove_ids(ids);
            } else {
              TableWriter writer(self.path);
              self.table = writer.remove_ids(ids);
            }
          },
          py::arg("rows"),
          R"doc(Deletes rows by key or row id (a list or array). Search, get and most_similar never return
them; row ids stay as they are until compact(). On disk, as add().)doc")
      .def(
          "compact",
          [](TableHandle& self) {
            py::gil_scoped_release release;
            if (self.path.empty()) {
              self.table = self.table.compacted();
            } else {
              TableWriter writer(self.path);
              self.table = writer.compact();
            }
            self.decoded = py::object();
          },
          "Rewrites the live rows as one table, renumbered in id order; on disk atomically, as add().")
      .def_property_readonly(
          "row_tables",
          [](const TableHandle& self) -> py::object {
            const uint32_t* tables = self.table.row_tables();
            if (!tables) return py::none();
            py::array_t<uint32_t> out(py::ssize_t(self.table.size()));
            std::copy(tables, tables + self.table.size(), out.mutable_data());
            return out;
          },
          "The feature table of each row (uint32, len(table) values) when compressed with row_tables, else None.")
      .def(
          "rows_in_table",
          [](const TableHandle& self, uint32_t table) {
            const std::vector<int64_t> ids = self.table.rows_in_table(table).ids();
            py::array_t<int64_t> out(py::ssize_t(ids.size()));
            std::copy(ids.begin(), ids.end(), out.mutable_data());
            return out;
          },
          py::arg("table"), "Row ids of one feature table, e.g. for search(allow=t.rows_in_table(1)).")
      .def_property_readonly("deleted_rows", [](const TableHandle& self) { return self.table.deleted_rows(); },
                             "Rows deleted and not yet compacted away (len() counts them until compact()).")
      .def(
          "recall_curve",
          [](const TableHandle& self) {
            const RecallCurve& curve = self.table.recall_curve();
            py::list points;
            for (const auto& [nprobe, recall] : curve.points) points.append(py::make_tuple(nprobe, recall));
            py::dict out;
            out["k"] = curve.k;
            out["rerank"] = curve.rerank;
            out["queries"] = curve.queries;
            out["measured_on"] = curve.measured_on;
            out["points"] = points;
            return out;
          },
          "An ivf table's recall@k against nprobe, measured on held-out rows when it was compressed: a dict of k, "
          "rerank, queries and points [(nprobe, recall), ...]; points is empty for other tables.")
      .def(
          "info",
          [](const TableHandle& self) {
            return py::module_::import("json").attr("loads")(self.table.info_json());
          },
          "Codec, sizes and sections as a dict: the same object `vecpack inspect --json` prints.")
      .def(
          "save",
          [](const TableHandle& self, const py::object& path_object) {
            std::string path = fs_path(path_object);
            py::gil_scoped_release release;
            self.table.save(path);
          },
          py::arg("path"), "Writes a .vecpack file atomically (a temporary file beside it, then a rename).")
      .def(
          "compress",
          [](const TableHandle& self, const py::object& codec, std::optional<size_t> train_size, uint64_t seed,
             unsigned threads, std::optional<std::string> rerank, std::optional<std::vector<uint32_t>> row_tables) {
            CompressOptions options = compress_options(train_size, seed, threads);
            options.rerank_spec = rerank.value_or("");
            if (row_tables) options.row_tables = std::move(*row_tables);
            const Encoding encoding = encoding_of(codec);
            py::gil_scoped_release release;
            return TableHandle{encoding.apply(self.table, options), {}};
          },
          py::arg("spec"), py::arg("train_size") = py::none(), py::arg("seed") = 1234, py::arg("threads") = 0,
          py::arg("rerank") = py::none(), py::arg("row_tables") = py::none(),
          R"doc(This table's rows re-encoded with a codec spec such as 'f16' or 'int8'.

The codec trains on a seeded sample of train_size rows (None: 100,000; 0: every row). spec may
also be a trained vecpack.Codec, which encodes the rows as it is (no training), or a Table to
encode like (its trained codec and ivf partition).
rerank: a second codec spec (e.g. 'int8') every row is also stored with, so that
search(rerank=N) rescores a shortlist of N candidates with it. row_tables: the feature table
of each row (ints), for codecs that share one pool across tables (hash). The result is in
memory; save() writes it.)doc");

  m.def(
      "open",
      [](const py::object& path_object) {
        std::string path = fs_path(path_object);
        py::gil_scoped_release release;
        return TableHandle{Table::open(path), path};
      },
      py::arg("path"), R"doc(Maps a .vecpack file and returns its Table.

O(1) in the file's size: rows are read from the mapping when used, so opening a large file
costs almost no memory. Raises IoError (an OSError) when the file cannot be opened and
FormatError when it is not a sound .vecpack file.)doc");
  m.def(
      "read",
      [](const py::object& path_object, std::optional<std::string> format, std::optional<size_t> limit, bool allow_nan,
         const py::object& max_memory) {
        std::string path = fs_path(path_object);
        ReadOptions options;
        options.limit = limit.value_or(0);
        options.allow_nan = allow_nan;
        if (py::isinstance<py::str>(max_memory)) {
          options.max_memory = parse_memory_size(max_memory.cast<std::string>());
        } else if (!max_memory.is_none()) {
          const int64_t bytes = max_memory.cast<int64_t>();
          if (bytes <= 0) throw py::value_error("max_memory must be a positive number of bytes, a size string, or None");
          options.max_memory = static_cast<uint64_t>(bytes);
        }
        py::gil_scoped_release release;
        Table table = read_table(path, format.value_or(""), options);
        const bool mapped = table.info().file_bytes != 0;
        return TableHandle{std::move(table), mapped ? path : std::string()};
      },
      py::arg("path"), py::arg("format") = py::none(), py::arg("limit") = py::none(), py::arg("allow_nan") = false,
      py::arg("max_memory") = py::none(),
      R"doc(Reads a table in any format vecpack knows (see formats()).

format: a name from formats(); None detects it from the content and the extension. Text
formats may be gzip-compressed (.gz). limit: read at most this many rows. allow_nan: keep
rows with NaN or infinity instead of raising ParseError. max_memory: bytes, or a size such
as "4G", "50%" or "none"; an input that declares (or grows to) a larger table raises
MemoryLimitError (a MemoryError) before allocating it; None: 80% of the available memory.
A .vecpack file is mapped whole, as
by open() (limit and allow_nan do not apply); other formats are read into memory as f32.)doc");
  m.def(
      "write",
      [](const TableHandle& table, const py::object& path_object, std::optional<std::string> format) {
        std::string path = fs_path(path_object);
        py::gil_scoped_release release;
        write_table(table.table, path, format.value_or(""));
      },
      py::arg("table"), py::arg("path"), py::arg("format") = py::none(),
      "Writes a table in a format from formats() (None: from the extension); text formats gzip when the name ends in .gz.");
  m.def(
      "write_manifest",
      [](const py::object& folder, const std::vector<std::string>& files) {
        std::string path = fs_path(folder);
        py::gil_scoped_release release;
        write_manifest(path, files);
      },
      py::arg("folder"), py::arg("files"),
      R"doc(Makes a folder of .vecpack shards one table: writes folder/manifest.json atomically.

files: the shard file names (relative to the folder) in row order. Every shard must share the
dimension, metric, keys-or-not, rerank spec and the trained codec (its fingerprint); otherwise
Error names the shard. open(folder) then maps every shard as one table.)doc");
  m.def("compress", &compress_array, py::arg("X"), py::arg("spec"), py::arg("keys") = py::none(),
        py::arg("train_size") = py::none(), py::arg("metric") = "cos", py::arg("rerank") = py::none(),
        py::arg("seed") = 1234, py::arg("threads") = 0, py::arg("counts") = py::none(), py::arg("row_tables") = py::none(),
        R"doc(Builds a table from an array (rows x dim, any float dtype) and encodes it with a codec spec.

spec may also be a trained vecpack.Codec: the rows are encoded with it, without training, so
that tables built apart (e.g. the shards of one table) share one codec; or a Table to encode
like: its trained codec and, for an ivf table, its partition (the same lists, so the tables can
be shards of one ivf table; the metric must be the model's).
keys: one unique str per row, or None. train_size: rows sampled for training the codec (None:
100,000; 0: all). metric: 'cos', 'ip' or 'l2', kept with the table for search(). rerank: a
second codec spec every row is also stored with, for search(rerank=N). counts: how often each
row occurs (mixdim ranks rows by them), kept with the table. row_tables: the feature table of
each row, for hash. The array is converted to float32 once; with spec 'f32' (and nothing else)
that copy is the table.)doc");
  m.def("formats", []() {
    py::list out;
    for (const FormatDescriptor* f : format_list()) {
      py::dict format;
      format["name"] = f->name;
      format["description"] = f->description;
      format["extensions"] = std::vector<std::string>(f->extensions.begin(), f->extensions.end());
      format["can_read"] = f->read != nullptr;
      format["can_write"] = f->write != nullptr;
      out.append(format);
    }
    return out;
  }, "The table formats as dicts: name, description, extensions, can_read, can_write.");
}

}  // namespace vecpack::python
