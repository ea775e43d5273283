// vecpack._vecpack: the compiled half of the Python package `vecpack`.
//
// Tables, codecs, format readers and writers, and the translation of C++ errors into the
// Python exception classes of vecpack/_errors.py. The pure-Python half (vecpack/) adds the
// gensim-style queries, repr and the package docs. Every call that may run for long (open,
// read, write, train, encode, decode, search, compress) releases the GIL.
#include "common.h"

PYBIND11_MODULE(_vecpack, m) {
  using namespace vecpack::python;
  m.doc() = "The compiled core of the vecpack package; import vecpack instead.";
  py::register_exception_translator(&translate_errors);
  bind_codec(m);
  bind_tables(m);
  bind_embeddings(m);
  m.def("version", &vecpack::version, "The library version, e.g. '0.1.0'.");
  m.def("kernel_isa", &vecpack::kernel_isa, "The instruction set the search kernels use on this CPU.");
}
