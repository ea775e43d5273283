// vecpack._vecpack: the trainable shared-parameter tables, SharedEmbedding and its three kinds
// (vecpack/embeddings.h). Ids arrive as int64 arrays of any shape; forward returns a new float32
// array of shape ids.shape + (dim,); parameters are writable float32 views of the table's own
// arrays (base: the table object).
#include <optional>
#include <string>
#include <vector>

#include "common.h"

namespace vecpack::python {

void bind_embeddings(py::module_& m) {
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
      throw Error(py::str(py::type::of(self).attr("__name__")).cast<std::string>() + ".backward: grad has shape " +
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
      .def("__len__", &SharedEmbedding::size, "The number of ids (rows).")
      .def_property_readonly("dim", &SharedEmbedding::dim, "Values per row.")
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
           py::arg("seed") = 1234, py::arg("tables") = 1, py::arg("optimizer") = "sgd", py::arg("init_std") = 0.0f,
           R"doc(n_ids ids of dim values from a pool of buckets rows, k hashes per id, with per-id
weights unless weights=False; tables id spaces share the pool. optimizer: 'sgd' or 'adagrad';
init_std: the spread of each value of a row at the start (0: 1 / sqrt(dim)). Seeded: the same arguments give the
same table.)doc")
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
          py::arg("ids"), py::arg("grad"), py::arg("table_ids") = py::none(),
          "Accumulates grad (ids.shape + (dim,)), the loss gradient for the rows of ids (of table_ids), "
          "into the pool and weights they use; step() applies it.")
      .def_property_readonly("buckets", &HashEmbedding::buckets, "Rows of the shared pool.")
      .def_property_readonly("k", &HashEmbedding::k, "Hashes (pool rows) per id.")
      .def_property_readonly("has_weights", &HashEmbedding::has_weights, "Whether each id weighs its k pool rows.")
      .def_property_readonly("tables", &HashEmbedding::tables, "Id spaces sharing the pool.")
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
           py::arg("optimizer") = "sgd", py::arg("init_std") = 0.0f,
           "n_ids ids of dim values from ceil(n_ids / m) quotient rows and m remainder rows combined by op; "
           "optimizer: 'sgd' or 'adagrad'.")
      .def_property_readonly("m", &QREmbedding::m, "Remainder rows (the modulus).")
      .def_property_readonly("op", [](const QREmbedding& e) { return qr_op_name(e.op()); },
                             "How a quotient and a remainder row combine: 'mult', 'add' or 'concat'.")
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
           py::arg("seed") = 1234, py::arg("optimizer") = "sgd", py::arg("init_std") = 0.0f,
           "Blocks of block_rows[b] ids in block_dims[b] dimensions, each projected to dim; optimizer: 'sgd' or "
           "'adagrad'.")
      .def_property_readonly("block_rows", &MixedDimEmbedding::block_rows, "Ids per block, most frequent block first.")
      .def_property_readonly("block_dims", &MixedDimEmbedding::block_dims, "Dimensions per block.")
      .def("__repr__", [](const MixedDimEmbedding& e) {
        return "<vecpack.MixedDimEmbedding " + std::to_string(e.size()) + " ids x " + std::to_string(e.dim()) + ", " +
               std::to_string(e.block_rows().size()) + " blocks, " + std::to_string(e.parameter_bytes()) + " bytes>";
      });
}

}  // namespace vecpack::python
