// vecpack._vecpack: the compiled half of the Python package `vecpack`.
//
// Tables, codecs, format readers and writers, and the translation of C++ errors into the
// Python exception classes of vecpack/_errors.py. The pure-Python half (vecpack/) adds the
// gensim-style queries, repr and the package docs. Every call that may run for long (open,
// read, write, train, encode, decode, search, compress) releases the GIL.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstring>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "tools/inspect_json.h"
#include "vecpack/vecpack.h"

namespace py = pybind11;

namespace vecpack::python {
namespace {

using FloatArray = py::array_t<float, py::array::c_style | py::array::forcecast>;
using ByteArray = py::array_t<uint8_t, py::array::c_style | py::array::forcecast>;

// A table plus the file it was opened from (shown by repr). Copies share the rows.
struct TableHandle {
  Table table;
  std::string path;
};

// The keys of a table as a lazy, read-only sequence of str.
struct KeyList {
  Table table;
};

// ---------------------------------------------------------------- errors

// Raises the Python class `name` of vecpack._errors with the C++ message and extra attributes.
void raise_error(const char* name, const char* message, const py::dict& attributes = {}) {
  py::object type = py::module_::import("vecpack._errors").attr(name);
  py::object error = type(message);
  for (auto [key, value] : attributes) py::setattr(error, key, value);
  PyErr_SetObject(type.ptr(), error.ptr());
}

void translate_errors(std::exception_ptr thrown) {
  try {
    if (thrown) std::rethrow_exception(thrown);
  } catch (const IoError& e) {
    py::dict attributes;
    attributes["filename"] = e.path();
    if (e.errno_value()) {
      attributes["errno"] = e.errno_value();
      attributes["strerror"] = std::strerror(e.errno_value());
    }
    raise_error("IoError", e.what(), attributes);
  } catch (const FormatError& e) {
    py::dict attributes;
    attributes["section"] = e.section();
    attributes["offset"] = e.offset();
    raise_error("FormatError", e.what(), attributes);
  } catch (const ParseError& e) {
    py::dict attributes;
    attributes["file"] = e.file();
    attributes["line"] = e.line();
    attributes["column"] = e.column();
    raise_error("ParseError", e.what(), attributes);
  } catch (const SpecError& e) {
    raise_error("SpecError", e.what());
  } catch (const NotFoundError& e) {
    raise_error("NotFoundError", e.what());
  } catch (const Error& e) {
    raise_error("Error", e.what());
  }
}

// ---------------------------------------------------------------- arguments

// A file name from str, bytes or any os.PathLike.
std::string fs_path(const py::handle& path) {
  return py::module_::import("os").attr("fsdecode")(path).cast<std::string>();
}

// ---------------------------------------------------------------- numpy helpers

// A read-only array over memory owned by `base`: numpy keeps base alive as long as the array.
py::array read_only_view(py::dtype dtype, std::vector<py::ssize_t> shape, const void* data, py::handle base) {
  py::array view(dtype, std::move(shape), {}, data, base);
  view.attr("setflags")(py::arg("write") = false);
  return view;
}

// Rows of a 1-D (one row) or 2-D float array; checks the width against the expected dimension.
struct Rows {
  FloatArray array;
  size_t count = 0;
  bool single = false;
};

Rows as_rows(const py::handle& input, size_t dim, const char* what) {
  Rows rows{FloatArray::ensure(input)};
  if (!rows.array) throw py::type_error(std::string(what) + " must be an array of numbers");
  if (rows.array.ndim() == 1) {
    rows.single = true;
    rows.count = 1;
  } else if (rows.array.ndim() == 2) {
    rows.count = static_cast<size_t>(rows.array.shape(0));
  } else {
    throw py::value_error(std::string(what) + " must be 1-D (one vector) or 2-D (one vector per row), not " +
                          std::to_string(rows.array.ndim()) + "-D");
  }
  size_t width = static_cast<size_t>(rows.array.shape(rows.array.ndim() - 1));
  if (dim && width != dim)
    throw py::value_error(std::string(what) + " have dimension " + std::to_string(width) + "; expected " +
                          std::to_string(dim));
  return rows;
}

// Copies any array of numbers into one C-contiguous float32 buffer: the only conversion.
std::vector<float> to_float_vector(const py::handle& input, size_t& rows, size_t& dim) {
  py::module_ np = py::module_::import("numpy");
  py::array source = np.attr("asarray")(input);
  if (source.ndim() != 2)
    throw py::value_error("X must be a 2-D array (rows x dimension), not " + std::to_string(source.ndim()) + "-D");
  rows = static_cast<size_t>(source.shape(0));
  dim = static_cast<size_t>(source.shape(1));
  std::vector<float> out(rows * dim);
  if (out.empty()) return out;
  // numpy writes the converted values straight into `out`; the capsule only marks it as borrowed.
  py::array_t<float> target({rows, dim}, out.data(), py::capsule(out.data(), [](void*) {}));
  np.attr("copyto")(target, source, py::arg("casting") = "same_kind");
  return out;
}

py::array_t<float> float_matrix(size_t rows, size_t dim) {
  return py::array_t<float>({rows, dim});
}

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
// (DIMS or "full", CANDIDATES or None).
std::vector<FunnelStage> funnel_stages(const py::handle& funnel) {
  if (funnel.is_none()) return {};
  if (py::isinstance<py::str>(funnel)) return parse_funnel(funnel.cast<std::string>());
  if (!py::isinstance<py::sequence>(funnel))
    throw py::type_error("funnel must be a string such as '32:1000,full' or a list such as [(32, 1000), 'full']");
  auto count = [](const py::handle& v, const char* what) -> size_t {
    if (v.is_none()) return 0;
    if (!PyIndex_Check(v.ptr())) throw py::type_error(std::string("funnel: ") + what + " must be an int");
    auto n = v.cast<py::ssize_t>();
    if (n <= 0) throw py::value_error(std::string("funnel: ") + what + " must be positive");
    return size_t(n);
  };
  auto dims = [&](const py::handle& v) -> size_t {
    if (py::isinstance<py::str>(v)) {
      auto text = v.cast<std::string>();
      if (text != "full" && text != "all") throw py::value_error("funnel: '" + text + "' is not 'full'");
      return 0;
    }
    return count(v, "a stage's dimension count");
  };
  std::vector<FunnelStage> stages;
  for (auto item : funnel.cast<py::sequence>()) {
    if (py::isinstance<py::str>(item) || !py::isinstance<py::sequence>(item)) {
      stages.push_back({dims(item), 0});
      continue;
    }
    auto pair = item.cast<py::sequence>();
    if (py::len(pair) != 2) throw py::value_error("funnel: a stage is DIMS or (DIMS, CANDIDATES)");
    stages.push_back({dims(pair[0]), count(pair[1], "a stage's candidate count")});
  }
  if (stages.empty()) throw py::value_error("funnel: give at least one stage, or None");
  return stages;
}

py::tuple search(const Table& table, const py::handle& queries, size_t k, std::optional<size_t> rerank,
                 std::optional<std::string> metric, unsigned threads, const py::handle& funnel = py::none()) {
  if (k == 0) throw py::value_error("k must be at least 1");
  Rows q = as_rows(queries, table.dim(), "queries");
  SearchOptions options;
  options.k = k;
  options.threads = threads;
  options.rerank = rerank.value_or(0);
  options.funnel = funnel_stages(funnel);
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

// A spec string, or a trained Codec that encodes without training (e.g. shared by shards).
const Codec* trained_codec(const py::object& codec) {
  if (py::isinstance<py::str>(codec)) return nullptr;
  if (!py::isinstance<Codec>(codec)) throw py::type_error("codec must be a spec string or a trained vecpack.Codec");
  return &codec.cast<const Codec&>();
}

TableHandle compress_array(const py::handle& x, const py::object& codec, std::optional<std::vector<std::string>> keys,
                           std::optional<size_t> train_size, const std::string& metric,
                           std::optional<std::string> rerank, uint64_t seed, unsigned threads,
                           std::optional<std::vector<uint64_t>> counts, std::optional<std::vector<uint32_t>> row_tables) {
  const Metric chosen_metric = parse_metric(metric);
  const Codec* trained = trained_codec(codec);
  const std::string spec = trained ? std::string() : codec.cast<std::string>();
  if (trained && !trained->trained()) throw Error("codec '" + trained->spec() + "' is not trained (train it, or pass a spec string)");
  // f32 keeps the rows as given (checks the spec before copying anything).
  const bool lossless = !trained && Codec(spec).spec() == "f32" && !rerank && !counts && !row_tables;
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
  if (trained) return {uncompressed.compress(*trained, options), {}};
  return {uncompressed.compress(spec, options), {}};
}

// ---------------------------------------------------------------- codecs

py::dict codec_description(const CodecDescriptor& d) {
  static const std::pair<uint32_t, const char*> capability_names[] = {
      {kExactDecode, "exact_decode"},     {kAsymmetricSearch, "asymmetric_search"}, {kSymmetricSearch, "symmetric_search"},
      {kNeedsTraining, "needs_training"}, {kPerVectorCodes, "per_vector_codes"},     {kTransform, "transform"},
      {kSharedParameters, "shared_parameters"}, {kExperimental, "experimental"}, {kRowTables, "row_tables"}};
  static const char* type_names[] = {"integer", "real", "choice", "flag"};
  py::list capabilities, params;
  for (const auto& [bit, name] : capability_names)
    if (d.capabilities & bit) capabilities.append(name);
  for (const ParamSpec& p : d.params) {
    py::dict param;
    param["name"] = p.name;
    param["type"] = type_names[static_cast<int>(p.type)];
    param["default"] = p.default_value;
    param["min"] = p.min;
    param["max"] = p.max;
    param["choices"] = p.choices ? p.choices : "";
    param["help"] = p.help;
    params.append(param);
  }
  py::dict out;
  out["name"] = d.name;
  out["kind"] = d.kind == StageKind::quantizer ? "quantizer" : "transform";
  out["description"] = d.description;
  out["capabilities"] = capabilities;
  out["params"] = params;
  return out;
}

py::object codec_property(const Codec& codec, size_t (Codec::*property)() const) {
  if (!codec.trained()) return py::none();
  return py::int_((codec.*property)());
}

}  // namespace
}  // namespace vecpack::python

namespace {
using namespace vecpack;
using namespace vecpack::python;

void bind_tables(py::module_& m) {
  py::class_<KeyList>(m, "KeyList", "The keys of a table in row order: a lazy, read-only sequence of str.")
      .def("__len__", [](const KeyList& self) { return self.table.size(); })
      .def("__getitem__",
           [](const KeyList& self, py::ssize_t index) { return key_text(self.table.key(row_index(self.table, index))); })
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
           })
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
      .def("__len__", [](const TableHandle& self) { return self.table.size(); })
      .def("__contains__",
           [](const TableHandle& self, const py::object& key) {
             return py::isinstance<py::str>(key) && self.table.find(key.cast<std::string>()).has_value();
           })
      .def("__getitem__", &get_item, py::arg("item"))
      .def_property_readonly("dim", [](const TableHandle& self) { return self.table.dim(); })
      .def_property_readonly("spec", [](const TableHandle& self) { return self.table.spec(); },
                             "The codec spec, canonical (every argument spelled out).")
      .def_property_readonly("metric", [](const TableHandle& self) { return metric_name(self.table.metric()); },
                             "'ip', 'cos' or 'l2': how search() compares rows unless told otherwise.")
      .def_property_readonly("has_keys", [](const TableHandle& self) { return self.table.has_keys(); })
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
            if (t.codes() && t.spec() == "f32")
              return read_only_view(py::dtype::of<float>(), {rows, dim}, t.codes(), self_object);
            py::array_t<float> decoded({rows, dim});
            float* out = decoded.mutable_data();
            {
              py::gil_scoped_release release;
              if (rows) t.reconstruct(0, t.size(), out);
            }
            return decoded;
          },
          R"doc(Every row as a float32 array (rows x dim).

For an f32 table this is a read-only view of the stored rows (of the memory mapping for an
opened file): no copy, and the array keeps the table alive. Other codecs decode every row
into a new array on each access; use t[i] or t[i:j] for a few rows.)doc")
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
             std::optional<std::string> metric, unsigned threads, const py::object& funnel) {
            return search(self.table, queries, k, rerank, std::move(metric), threads, funnel);
          },
          py::arg("queries"), py::arg("k") = 10, py::arg("rerank") = py::none(), py::arg("metric") = py::none(),
          py::arg("threads") = 0, py::arg("funnel") = py::none(),
          R"doc(Exact top-k rows for each query, scored on the stored codes.

queries: one vector (1-D) or one per row (2-D), any float dtype.
Returns (ids, scores): int64 and float32 arrays of shape (k,) for one query, (nq, k) for
several. Similarities (ip, cos) descend; l2 gives squared distances, ascending. Ties go to
the smaller row; missing entries (fewer than k rows) have id -1.
metric: 'ip', 'cos' or 'l2' instead of the table's. threads: 0 for one per core.
funnel: shortlist on leading dimensions, then rescore with more and finally all of them, e.g.
[(32, 1000), (128, 100)] or '32:1000,128:100,full' (codecs f32, f16, bf16, int8, after any
transforms; a stage without a count keeps twice the next stage's, the last max(100, 10 k)).)doc")
      .def(
          "info",
          [](const TableHandle& self) {
            return py::module_::import("json").attr("loads")(inspect_json(self.table).dump());
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
            const Codec* trained = trained_codec(codec);
            const std::string spec = trained ? std::string() : codec.cast<std::string>();
            py::gil_scoped_release release;
            return TableHandle{trained ? self.table.compress(*trained, options) : self.table.compress(spec, options), {}};
          },
          py::arg("spec"), py::arg("train_size") = py::none(), py::arg("seed") = 1234, py::arg("threads") = 0,
          py::arg("rerank") = py::none(), py::arg("row_tables") = py::none(),
          R"doc(This table's rows re-encoded with a codec spec such as 'f16' or 'int8'.

The codec trains on a seeded sample of train_size rows (None: 100,000; 0: every row). spec may
also be a trained vecpack.Codec, which encodes the rows as it is (no training).
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
      [](const py::object& path_object, std::optional<std::string> format, std::optional<size_t> limit, bool allow_nan) {
        std::string path = fs_path(path_object);
        ReadOptions options;
        options.limit = limit.value_or(0);
        options.allow_nan = allow_nan;
        py::gil_scoped_release release;
        Table table = read_table(path, format.value_or(""), options);
        const bool mapped = table.info().file_bytes != 0;
        return TableHandle{std::move(table), mapped ? path : std::string()};
      },
      py::arg("path"), py::arg("format") = py::none(), py::arg("limit") = py::none(), py::arg("allow_nan") = false,
      R"doc(Reads a table in any format vecpack knows (see formats()).

format: a name from formats(); None detects it from the content and the extension. Text
formats may be gzip-compressed (.gz). limit: read at most this many rows. allow_nan: keep
rows with NaN or infinity instead of raising ParseError. A .vecpack file is mapped whole, as
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
that tables built apart (e.g. the shards of one table) share one codec.
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
  m.def("codecs", [] {
    py::list out;
    for (const CodecDescriptor* d : codec_list()) out.append(codec_description(*d));
    return out;
  }, "The codecs as dicts (as `vecpack codecs --json`): name, kind, description, capabilities, params.");
}

void bind_codec(py::module_& m) {
  py::class_<Codec>(m, "Codec", R"doc(A codec chain built from a spec string, e.g. 'int8' or 'f16'.

Train it on a sample, then encode rows to codes (uint8, code_size bytes per row) and decode
them back. Codecs pickle (with their trained parameters), so they travel to worker processes.
Training changes the codec: do not train while other threads encode with it.)doc")
      .def(py::init<std::string_view>(), py::arg("spec"))
      .def_property_readonly("spec", &Codec::spec)
      .def_property_readonly("trained", &Codec::trained)
      .def_property_readonly("dim", [](const Codec& c) { return codec_property(c, &Codec::dim); },
                             "Input dimension once trained, else None.")
      .def_property_readonly("code_size", [](const Codec& c) { return codec_property(c, &Codec::code_size); },
                             "Bytes per encoded row once trained, else None.")
      .def(
          "train",
          [](Codec& self, const py::handle& x, uint64_t seed, unsigned threads) -> Codec& {
            Rows rows = as_rows(x, 0, "training rows");
            if (rows.single) throw py::value_error("training rows must be 2-D (rows x dimension)");
            TrainOptions options;
            options.seed = seed;
            options.threads = threads;
            const size_t dim = static_cast<size_t>(rows.array.shape(1));
            py::gil_scoped_release release;
            self.train(rows.array.data(), rows.count, dim, options);
            return self;
          },
          py::arg("X"), py::arg("seed") = 1234, py::arg("threads") = 0, "Learns the codec's parameters; returns the codec.")
      .def(
          "encode",
          [](const Codec& self, const py::handle& x, unsigned threads) {
            Rows rows = as_rows(x, self.dim(), "rows to encode");
            const size_t width = self.code_size();
            py::array_t<uint8_t> codes(rows.single ? std::vector<py::ssize_t>{py::ssize_t(width)}
                                                   : std::vector<py::ssize_t>{py::ssize_t(rows.count), py::ssize_t(width)});
            uint8_t* out = codes.mutable_data();
            {
              py::gil_scoped_release release;
              self.encode(rows.array.data(), rows.count, out, threads);
            }
            return codes;
          },
          py::arg("X"), py::arg("threads") = 0, "Codes of each row: uint8, (n, code_size); one row gives (code_size,).")
      .def(
          "decode",
          [](const Codec& self, const py::handle& input) {
            ByteArray codes = ByteArray::ensure(input);
            if (!codes || codes.ndim() < 1 || codes.ndim() > 2)
              throw py::value_error("codes must be a 1-D or 2-D uint8 array");
            const size_t width = self.code_size();
            if (static_cast<size_t>(codes.shape(codes.ndim() - 1)) != width)
              throw py::value_error("codes have " + std::to_string(codes.shape(codes.ndim() - 1)) +
                                    " bytes per row; this codec writes " + std::to_string(width));
            const size_t n = codes.ndim() == 2 ? static_cast<size_t>(codes.shape(0)) : 1;
            const auto dim = static_cast<py::ssize_t>(self.dim());
            auto shape = codes.ndim() == 2 ? std::vector<py::ssize_t>{py::ssize_t(n), dim} : std::vector<py::ssize_t>{dim};
            py::array_t<float> rows(shape);
            float* out = rows.mutable_data();
            {
              py::gil_scoped_release release;
              self.decode(codes.data(), n, out);
            }
            return rows;
          },
          py::arg("codes"), "Decoded rows (float32) of codes made by encode().")
      .def("__repr__",
           [](const Codec& c) {
             std::string text = "<vecpack.Codec '" + c.spec() + "'";
             text += c.trained() ? ", dim " + std::to_string(c.dim()) + ", " + std::to_string(c.code_size()) + " bytes per row>"
                                 : ", untrained>";
             return text;
           })
      .def(py::pickle(
          // State: the spec, and the trained parameters (None before training).
          [](const Codec& c) -> py::tuple {
            if (!c.trained()) return py::make_tuple(c.spec(), py::none());
            std::vector<uint8_t> blob = c.serialize();
            return py::make_tuple(c.spec(), py::bytes(reinterpret_cast<const char*>(blob.data()), blob.size()));
          },
          [](const py::tuple& state) {
            if (state.size() != 2) throw py::value_error("not a pickled vecpack.Codec");
            if (state[1].is_none()) return Codec(state[0].cast<std::string>());
            std::string blob = state[1].cast<std::string>();
            return Codec::load(reinterpret_cast<const uint8_t*>(blob.data()), blob.size());
          }));
}

}  // namespace

PYBIND11_MODULE(_vecpack, m) {
  m.doc() = "The compiled core of the vecpack package; import vecpack instead.";
  py::register_exception_translator(&translate_errors);
  bind_codec(m);
  bind_tables(m);
  m.def("version", &vecpack::version, "The library version, e.g. '0.1.0'.");
  m.def("kernel_isa", &vecpack::kernel_isa, "The instruction set the search kernels use on this CPU.");

  // ---------------------------------------------------------------- trainable shared-parameter tables
  // SharedEmbedding and its three kinds (vecpack/embeddings.h). Ids arrive as int64 arrays of any
  // shape; forward returns a new float32 array of shape ids.shape + (dim,); parameters are
  // writable float32 views of the table's own arrays (base: the table object).
  {
    using namespace vecpack;
    using vecpack::python::FloatArray;
    using IdArray = py::array_t<int64_t, py::array::c_style | py::array::forcecast>;
    using TableIdArray = py::array_t<uint32_t, py::array::c_style | py::array::forcecast>;
    // Integers only: forcecast would truncate 2.7 to 2 without a word.
    auto integer_array = [](const py::handle& input, const char* what) {
      py::array a = py::module_::import("numpy").attr("asarray")(input);
      if (a.size() && a.dtype().kind() != 'i' && a.dtype().kind() != 'u')
        throw py::type_error(std::string(what) + " must be integers, not " + py::str(a.dtype()).cast<std::string>());
      return a;
    };
    auto ids_of = [integer_array](const py::handle& input) { return IdArray::ensure(integer_array(input, "ids")); };
    auto table_ids_of = [integer_array](const py::handle& input, const IdArray& ids) -> std::optional<TableIdArray> {
      if (input.is_none()) return std::nullopt;
      py::array a = integer_array(input, "table_ids");
      if (a.size() && py::module_::import("numpy").attr("min")(a).cast<int64_t>() < 0)
        throw NotFoundError("table_ids must not be negative");
      TableIdArray t = TableIdArray::ensure(a);
      if (t.size() != ids.size())
        throw Error("table_ids has " + std::to_string(t.size()) + " entries for " + std::to_string(ids.size()) + " ids");
      return t;
    };
    auto row_shape = [](const IdArray& ids, size_t dim) {
      std::vector<py::ssize_t> shape(ids.shape(), ids.shape() + ids.ndim());
      shape.push_back(static_cast<py::ssize_t>(dim));
      return shape;
    };
    auto shape_text = [](const std::vector<py::ssize_t>& shape) {
      std::string text = "(";
      for (size_t i = 0; i < shape.size(); ++i) text += (i ? ", " : "") + std::to_string(shape[i]);
      return text + (shape.size() == 1 ? ",)" : ")");
    };
    // grad must have shape ids.shape + (dim,).
    auto grad_of = [row_shape, shape_text](const py::object& self, const IdArray& ids, const py::handle& input) {
      const auto& table = self.cast<const SharedEmbedding&>();
      FloatArray grad = FloatArray::ensure(input);
      if (!grad) throw py::type_error("grad must be an array of numbers");
      const auto expected = row_shape(ids, table.dim());
      const std::vector<py::ssize_t> shape(grad.shape(), grad.shape() + grad.ndim());
      if (shape != expected)
        throw Error(py::str(self.get_type().attr("__name__")).cast<std::string>() + ".backward: grad has shape " +
                    shape_text(shape) + "; expected " + shape_text(expected) + " (ids.shape + (dim,))");
      return grad;
    };
    auto optimizer_of = [](const py::object& name) { return parse_optimizer(name.cast<std::string>()); };

    py::class_<SharedEmbedding>(m, "SharedEmbedding", R"doc(A trainable lookup table whose rows share parameters.

The base of HashEmbedding, QREmbedding and MixedDimEmbedding. A training step:
    rows = table.forward(ids)              # float32, ids.shape + (dim,)
    ...                                    # the gradient of the loss with respect to rows
    table.backward(ids, grad)              # accumulates, sparse: only touched rows
    table.step(lr)                         # SGD or Adagrad on the touched rows; clears gradients
`parameters` maps each parameter name to a writable float32 view of the table's own array.)doc")
        .def("__len__", &SharedEmbedding::size)
        .def_property_readonly("dim", &SharedEmbedding::dim)
        .def(
            "forward",
            [ids_of, row_shape](const SharedEmbedding& self, const py::handle& ids_in) {
              IdArray ids = ids_of(ids_in);
              py::array_t<float> out(row_shape(ids, self.dim()));
              float* data = out.mutable_data();
              py::gil_scoped_release release;
              self.forward(ids.data(), static_cast<size_t>(ids.size()), data);
              return out;
            },
            py::arg("ids"), "The rows of ids (int64, any shape): a new float32 array, ids.shape + (dim,).")
        .def(
            "backward",
            [ids_of, grad_of](const py::object& self_object, const py::handle& ids_in, const py::handle& grad_in) {
              auto& self = self_object.cast<SharedEmbedding&>();
              IdArray ids = ids_of(ids_in);
              FloatArray grad = grad_of(self_object, ids, grad_in);
              const auto n = static_cast<size_t>(ids.size());
              py::gil_scoped_release release;
              self.backward(ids.data(), n, grad.data(), n, self.dim());
            },
            py::arg("ids"), py::arg("grad"),
            "Accumulates the parameters' gradients; grad (ids.shape + (dim,)) is dLoss/drows.")
        .def(
            "step",
            [optimizer_of](SharedEmbedding& self, float lr, const py::object& optimizer) {
              const Optimizer chosen = optimizer.is_none() ? self.optimizer() : optimizer_of(optimizer);
              py::gil_scoped_release release;
              self.step(lr, chosen);
            },
            py::arg("lr"), py::arg("optimizer") = py::none(),
            "Applies 'sgd' or 'adagrad' (default: the table's optimizer) to the touched rows, then clears the gradients.")
        .def("zero_grad", &SharedEmbedding::zero_grad, "Drops the accumulated gradients without applying them.")
        .def_property(
            "optimizer", [](const SharedEmbedding& self) { return optimizer_name(self.optimizer()); },
            [optimizer_of](SharedEmbedding& self, const py::object& name) { self.set_optimizer(optimizer_of(name)); },
            "'sgd' or 'adagrad': what step(lr) applies.")
        .def("parameter_count", &SharedEmbedding::parameter_count, "Floats in all parameter arrays.")
        .def("parameter_bytes", &SharedEmbedding::parameter_bytes, "4 x parameter_count().")
        .def_property_readonly(
            "parameters",
            [](const py::object& self_object) {
              auto& self = self_object.cast<SharedEmbedding&>();
              py::dict out;
              for (const ParameterView& v : self.parameters())
                out[py::str(v.name)] = py::array(py::dtype::of<float>(),
                                                 {static_cast<py::ssize_t>(v.rows), static_cast<py::ssize_t>(v.cols)}, {},
                                                 v.data, self_object);
              return out;
            },
            "{name: float32 array}: writable views of the parameters (no copy; writes change the table).")
        .def(
            "to_table",
            [](const SharedEmbedding& self) {
              py::gil_scoped_release release;
              return vecpack::python::TableHandle{self.to_table(), {}};
            },
            "Every decoded row as an uncompressed vecpack.Table (metric 'ip').")
        .def(
            "save",
            [](const SharedEmbedding& self, const py::handle& path, const std::string& spec) {
              const std::string file = vecpack::python::fs_path(path);
              py::gil_scoped_release release;
              self.save(file, spec);
            },
            py::arg("path"), py::arg("spec") = "f16", "Writes the decoded rows, compressed with spec, to a .vecpack file.");

    py::class_<HashEmbedding, SharedEmbedding>(m, "HashEmbedding", R"doc(Hash embeddings: row(i) = sum_j w[i, j] pool[h_j(i)].

h_j(i) = xxh64(the 8 little-endian bytes of i, seed j) % buckets. weights=False fixes every w
at 1 (the plain hashing trick). tables > 1 multiplexes that many id spaces in one pool: pass
table_ids to forward/backward (see vecpack/embeddings.h for how the table id is hashed in).)doc")
        .def(py::init([optimizer_of](size_t n_ids, size_t dim, size_t buckets, size_t k, bool weights, uint64_t seed,
                                     uint32_t tables, const py::object& optimizer, float init_std) {
               return std::make_unique<HashEmbedding>(n_ids, dim, buckets, k, weights, seed, tables,
                                                      EmbeddingOptions{optimizer_of(optimizer), init_std});
             }),
             py::arg("n_ids"), py::arg("dim"), py::arg("buckets"), py::arg("k") = 2, py::arg("weights") = true,
             py::arg("seed") = 1234, py::arg("tables") = 1, py::arg("optimizer") = "sgd", py::arg("init_std") = 0.0f)
        .def(
            "forward",
            [ids_of, table_ids_of, row_shape](const HashEmbedding& self, const py::handle& ids_in, const py::handle& tables_in) {
              IdArray ids = ids_of(ids_in);
              auto tables = table_ids_of(tables_in, ids);
              py::array_t<float> out(row_shape(ids, self.dim()));
              float* data = out.mutable_data();
              py::gil_scoped_release release;
              self.forward(ids.data(), tables ? tables->data() : nullptr, static_cast<size_t>(ids.size()), data);
              return out;
            },
            py::arg("ids"), py::arg("table_ids") = py::none(), "The rows of ids (of table_ids, default table 0).")
        .def(
            "backward",
            [ids_of, table_ids_of, grad_of](const py::object& self_object, const py::handle& ids_in, const py::handle& grad_in,
                                            const py::handle& tables_in) {
              auto& self = self_object.cast<HashEmbedding&>();
              IdArray ids = ids_of(ids_in);
              auto tables = table_ids_of(tables_in, ids);
              FloatArray grad = grad_of(self_object, ids, grad_in);
              const auto n = static_cast<size_t>(ids.size());
              py::gil_scoped_release release;
              self.backward(ids.data(), tables ? tables->data() : nullptr, n, grad.data(), n, self.dim());
            },
            py::arg("ids"), py::arg("grad"), py::arg("table_ids") = py::none())
        .def_property_readonly("buckets", &HashEmbedding::buckets)
        .def_property_readonly("k", &HashEmbedding::k)
        .def_property_readonly("has_weights", &HashEmbedding::has_weights)
        .def_property_readonly("tables", &HashEmbedding::tables)
        .def("buckets_of", &HashEmbedding::buckets_of, py::arg("id"), py::arg("table") = 0,
             "The pool rows h_0(id) .. h_{k-1}(id).")
        .def("__repr__", [](const HashEmbedding& e) {
          return "<vecpack.HashEmbedding " + std::to_string(e.size()) + " ids x " + std::to_string(e.dim()) + ", buckets " +
                 std::to_string(e.buckets()) + ", k " + std::to_string(e.k()) + (e.has_weights() ? "" : ", no weights") +
                 ", " + std::to_string(e.parameter_bytes()) + " bytes>";
        });

    py::class_<QREmbedding, SharedEmbedding>(m, "QREmbedding", R"doc(Quotient-remainder embeddings: row(i) = op(Q[i // m], R[i % m]).

op: 'mult' (elementwise product), 'add' (sum) or 'concat' (Q gives ceil(dim/2) columns, R the rest).)doc")
        .def(py::init([optimizer_of](size_t n_ids, size_t dim, size_t m, const std::string& op, uint64_t seed,
                                     const py::object& optimizer, float init_std) {
               return std::make_unique<QREmbedding>(n_ids, dim, m, parse_qr_op(op), seed,
                                                    EmbeddingOptions{optimizer_of(optimizer), init_std});
             }),
             py::arg("n_ids"), py::arg("dim"), py::arg("m"), py::arg("op") = "mult", py::arg("seed") = 1234,
             py::arg("optimizer") = "sgd", py::arg("init_std") = 0.0f)
        .def_property_readonly("m", &QREmbedding::m)
        .def_property_readonly("op", [](const QREmbedding& e) { return qr_op_name(e.op()); })
        .def("__repr__", [](const QREmbedding& e) {
          return "<vecpack.QREmbedding " + std::to_string(e.size()) + " ids x " + std::to_string(e.dim()) + ", m " +
                 std::to_string(e.m()) + ", op " + qr_op_name(e.op()) + ", " + std::to_string(e.parameter_bytes()) + " bytes>";
        });

    py::class_<MixedDimEmbedding, SharedEmbedding>(m, "MixedDimEmbedding", R"doc(Mixed-dimension embeddings by frequency block.

Ids are frequency ranks; block b holds block_rows[b] ids in block_dims[b] dimensions and a
projection (block_dims[b] x dim): row(i) = E_b[i - start_b] @ P_b. n_ids, when given, must be
the sum of block_rows.)doc")
        .def(py::init([optimizer_of](std::vector<size_t> block_rows, std::vector<size_t> block_dims, size_t dim,
                                     const py::object& n_ids, uint64_t seed, const py::object& optimizer, float init_std) {
               return std::make_unique<MixedDimEmbedding>(std::move(block_rows), std::move(block_dims), dim,
                                                          n_ids.is_none() ? 0 : n_ids.cast<size_t>(), seed,
                                                          EmbeddingOptions{optimizer_of(optimizer), init_std});
             }),
             py::arg("block_rows"), py::arg("block_dims"), py::arg("dim"), py::arg("n_ids") = py::none(),
             py::arg("seed") = 1234, py::arg("optimizer") = "sgd", py::arg("init_std") = 0.0f)
        .def_property_readonly("block_rows", &MixedDimEmbedding::block_rows)
        .def_property_readonly("block_dims", &MixedDimEmbedding::block_dims)
        .def("__repr__", [](const MixedDimEmbedding& e) {
          return "<vecpack.MixedDimEmbedding " + std::to_string(e.size()) + " ids x " + std::to_string(e.dim()) + ", " +
                 std::to_string(e.block_rows().size()) + " blocks, " + std::to_string(e.parameter_bytes()) + " bytes>";
        });
  }
}
