// Pieces shared by the files of the compiled module vecpack._vecpack: the handle types, the
// translation of C++ errors into vecpack._errors' classes, and numpy conversions.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>
#include <vector>

#include "vecpack/vecpack.h"

namespace py = pybind11;

namespace vecpack::python {

using FloatArray = py::array_t<float, py::array::c_style | py::array::forcecast>;
using ByteArray = py::array_t<uint8_t, py::array::c_style | py::array::forcecast>;

// A table plus the file it was opened from (shown by repr). Copies share the rows.
struct TableHandle {
  Table table;
  std::string path;
  // The decoded rows, once `vectors` has decoded them (read-only; null until then). Touched
  // only with the GIL held.
  mutable py::object decoded;
};

// The keys of a table as a lazy, read-only sequence of str.
struct KeyList {
  Table table;
};

// Rows of a 1-D (one row) or 2-D float array; checks the width against the expected dimension.
struct Rows {
  FloatArray array;
  size_t count = 0;
  bool single = false;
};

// Turns the C++ error hierarchy into vecpack._errors' Python classes (register it once).
void translate_errors(std::exception_ptr thrown);
// A file name from str, bytes or any os.PathLike.
std::string fs_path(const py::handle& path);
// A read-only array over memory owned by `base`: numpy keeps base alive as long as the array.
py::array read_only_view(py::dtype dtype, std::vector<py::ssize_t> shape, const void* data, py::handle base);
Rows as_rows(const py::handle& input, size_t dim, const char* what);
// Copies any array of numbers into one C-contiguous float32 buffer: the only conversion.
std::vector<float> to_float_vector(const py::handle& input, size_t& rows, size_t& dim);
py::array_t<float> float_matrix(size_t rows, size_t dim);

// The module's parts, one file each.
void bind_tables(py::module_& m);      // tables.cc: Table, KeyList, open/read/write/compress, formats
void bind_codec(py::module_& m);       // codec.cc: Codec, codecs()
void bind_embeddings(py::module_& m);  // embeddings.cc: the trainable shared-parameter tables

}  // namespace vecpack::python
