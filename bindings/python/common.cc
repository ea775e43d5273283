// Errors, arguments and numpy conversions shared by the module's files (common.h).
#include "common.h"

namespace vecpack::python {

// ---------------------------------------------------------------- errors

// Raises the Python class `name` of vecpack._errors with the C++ message and extra attributes.
static void raise_error(const char* name, const char* message, const py::dict& attributes = {}) {
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
  } catch (const LockedError& e) {
    raise_error("LockedError", e.what());
  } catch (const MemoryLimitError& e) {
    raise_error("MemoryLimitError", e.what());
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

}  // namespace vecpack::python
