// vecpack._vecpack: codec chains (train, encode, decode, pickling) and the codec list.
#include <string>
#include <vector>

#include "common.h"

namespace vecpack::python {
namespace {

// ---------------------------------------------------------------- codecs

py::dict codec_description(const CodecDescriptor& d) {
  static const char* type_names[] = {"integer", "real", "choice", "flag"};
  py::list capabilities, params;
  for (const std::string& name : capability_names(d.capabilities)) capabilities.append(name);
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

void bind_codec(py::module_& m) {
  py::class_<Codec>(m, "Codec", R"doc(A codec chain built from a spec string, e.g. 'int8' or 'f16'.

Train it on a sample, then encode rows to codes (uint8, code_size bytes per row) and decode
them back. Codecs pickle (with their trained parameters), so they travel to worker processes.
Training changes the codec: do not train while other threads encode with it.)doc")
      .def(py::init<std::string_view>(), py::arg("spec"),
           "A codec chain from a spec string such as 'int8', 'pq:m=25' or 'pca:k=64/int8' (vecpack.codecs() lists "
           "them); SpecError for a bad one. It is untrained until train() is called.")
      .def_property_readonly("spec", &Codec::spec, "The canonical spec, every parameter spelled out.")
      .def_property_readonly("trained", &Codec::trained, "Whether the codec has been trained (and can encode).")
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
  m.def("codecs", [] {
    py::list out;
    for (const CodecDescriptor* d : codec_list()) out.append(codec_description(*d));
    return out;
  }, "The codecs as dicts (as `vecpack codecs --json`): name, kind, description, capabilities, params.");
}

}  // namespace vecpack::python
