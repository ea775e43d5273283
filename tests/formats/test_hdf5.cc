#include <doctest/doctest.h>
#include <hdf5.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "test_util.h"
#include "vecpack/errors.h"
#include "vecpack/formats.h"
#include "vecpack/table.h"

using namespace vecpack;

namespace {

// Builds HDF5 files the way h5py does (ann-benchmarks layout) with the C API.
class H5Writer {
 public:
  explicit H5Writer(const std::string& path, hid_t create = H5P_DEFAULT, hid_t access = H5P_DEFAULT) {
    file_ = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, create, access);
    REQUIRE(file_ >= 0);
  }
  ~H5Writer() {
    if (dataset_create_ != H5P_DEFAULT) H5Pclose(dataset_create_);
    H5Fclose(file_);
  }
  // Datasets from here on keep their data in their object header.
  void compact() {
    dataset_create_ = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_layout(dataset_create_, H5D_COMPACT);
  }
  hid_t file() const { return file_; }

  void matrix(const char* name, hid_t file_type, hid_t memory_type, const void* data, std::vector<hsize_t> dims) {
    hid_t space = H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr);
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    hid_t dataset = H5Dcreate2(file_, name, file_type, space, lcpl, dataset_create_, H5P_DEFAULT);
    REQUIRE(dataset >= 0);
    REQUIRE(H5Dwrite(dataset, memory_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0);
    H5Dclose(dataset);
    H5Pclose(lcpl);
    H5Sclose(space);
  }

  void strings(const char* name, const std::vector<std::string>& values, bool variable) {
    hsize_t count = values.size();
    hid_t type = H5Tcopy(H5T_C_S1);
    H5Tset_cset(type, H5T_CSET_UTF8);
    std::vector<const char*> pointers;
    std::vector<char> fixed;
    size_t width = 1;
    for (const auto& v : values) width = std::max(width, v.size());
    if (variable) {
      H5Tset_size(type, H5T_VARIABLE);
      for (const auto& v : values) pointers.push_back(v.c_str());
    } else {
      H5Tset_size(type, width);
      H5Tset_strpad(type, H5T_STR_NULLPAD);
      fixed.assign(width * count, '\0');
      for (size_t i = 0; i < count; ++i) std::memcpy(fixed.data() + i * width, values[i].data(), values[i].size());
    }
    hid_t space = H5Screate_simple(1, &count, nullptr);
    hid_t dataset = H5Dcreate2(file_, name, type, space, H5P_DEFAULT, dataset_create_, H5P_DEFAULT);
    REQUIRE(dataset >= 0);
    REQUIRE(H5Dwrite(dataset, type, H5S_ALL, H5S_ALL, H5P_DEFAULT,
                     variable ? static_cast<const void*>(pointers.data()) : fixed.data()) >= 0);
    H5Dclose(dataset);
    H5Sclose(space);
    H5Tclose(type);
  }

  void attribute(const char* name, const std::string& value, bool variable) {
    hid_t type = H5Tcopy(H5T_C_S1);
    H5Tset_cset(type, H5T_CSET_UTF8);
    H5Tset_size(type, variable ? H5T_VARIABLE : value.size());
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t attribute = H5Acreate2(file_, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
    const char* text = value.c_str();
    REQUIRE(H5Awrite(attribute, type, variable ? static_cast<const void*>(&text) : text) >= 0);
    H5Aclose(attribute);
    H5Sclose(space);
    H5Tclose(type);
  }

 private:
  hid_t file_ = -1;
  hid_t dataset_create_ = H5P_DEFAULT;
};

struct AnnFixture {
  static constexpr size_t kTrain = 60, kTest = 5, kDim = 8, kK = 10;
  std::vector<float> train = test::clustered_rows(kTrain, kDim, 4, 21);
  std::vector<float> test_rows = test::clustered_rows(kTest, kDim, 4, 22);
  std::vector<int64_t> neighbors;
  std::vector<std::string> words;

  AnnFixture() {
    for (size_t i = 0; i < kTest * kK; ++i) neighbors.push_back(static_cast<int64_t>((i * 7) % kTrain));
    for (size_t i = 0; i < kTrain; ++i) words.push_back(i == 3 ? "caf\xC3\xA9" : "w" + std::to_string(i));
  }

  // skip: a dataset to leave out; test_dim: columns of "test".
  void write(const std::string& path, const std::string& skip = {}, size_t test_dim = kDim) const {
    H5Writer h5(path);
    if (skip != "train") h5.matrix("train", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, train.data(), {kTrain, kDim});
    std::vector<float> queries = test_rows;
    queries.resize(kTest * test_dim);
    if (skip != "test") h5.matrix("test", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, queries.data(), {kTest, test_dim});
    if (skip != "neighbors") h5.matrix("neighbors", H5T_STD_I64LE, H5T_NATIVE_INT64, neighbors.data(), {kTest, kK});
    std::vector<float> distances(kTest * kK, 0.5f);
    h5.matrix("distances", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, distances.data(), {kTest, kK});
    if (skip != "words_train") h5.strings("words_train", words, true);
    h5.attribute("distance", "euclidean", true);
    h5.attribute("point_type", "float", true);
  }
};

class FailingProgress : public Progress {
 public:
  void begin(std::string_view, uint64_t) override {}
  void advance(uint64_t) override { throw std::runtime_error("disk on fire"); }
  void end() override {}
};

}  // namespace

TEST_CASE("hdf5: an ann-benchmarks file reads as a keyed table and as a dataset") {
  test::TempDir dir;
  AnnFixture ann;
  std::string path = dir.file("glove-8-euclidean.hdf5");
  ann.write(path);

  CHECK(std::string(detect_format(path).name) == "hdf5");
  Table train = read_table(path);
  CHECK_FALSE(train.meta().rows_by_frequency);
  REQUIRE(train.size() == AnnFixture::kTrain);
  REQUIRE(train.dim() == AnnFixture::kDim);
  CHECK(test::all_rows(train) == ann.train);
  REQUIRE(train.has_keys());
  CHECK(train.key(3) == "caf\xC3\xA9");
  CHECK(*train.find("w59") == 59);
  CHECK(train.metric() == Metric::l2);
  CHECK(train.meta().source_format == "hdf5");
  CHECK(train.meta().source_path == path);

  AnnDataset data = read_ann_dataset(path);
  CHECK(data.test_rows == AnnFixture::kTest);
  CHECK(data.dim == AnnFixture::kDim);
  CHECK(data.neighbors_k == AnnFixture::kK);
  CHECK(data.metric == Metric::l2);
  CHECK(data.test == ann.test_rows);
  REQUIRE(data.neighbors.size() == ann.neighbors.size());
  for (size_t i = 0; i < ann.neighbors.size(); ++i) CHECK(data.neighbors[i] == ann.neighbors[i]);
  CHECK(data.train.size() == AnnFixture::kTrain);
  CHECK(data.train.key(3) == "caf\xC3\xA9");

  AnnDataset light = read_ann_dataset(path, false);
  CHECK(light.train.size() == 0);
  CHECK(light.test == ann.test_rows);

  // Queries and neighbours count against the memory limit: 5 x 8 floats and 5 x 10 ids.
  ReadOptions small;
  small.max_memory = 360;
  CHECK(read_ann_dataset(path, false, small).test_rows == AnnFixture::kTest);
  small.max_memory = 359;
  MemoryLimitError too_much = test::caught<MemoryLimitError>([&] { read_ann_dataset(path, false, small); });
  CHECK_MESSAGE(test::contains(too_much.what(), "would need 360 bytes (datasets 'test' (5 x 8) and "
                                                     "'neighbors' (5 x 10))"),
                std::string(too_much.what()));

  ReadOptions options;
  options.limit = 10;
  Table first = read_table(path, {}, options);
  CHECK(first.size() == 10);
  CHECK(first.key(9) == "w9");
}

TEST_CASE("hdf5: missing datasets and disagreeing shapes are FormatErrors naming the dataset") {
  test::TempDir dir;
  AnnFixture ann;
  for (const char* missing : {"train", "test", "neighbors"}) {
    CAPTURE(missing);
    std::string path = dir.file(std::string("no-") + missing + ".hdf5");
    ann.write(path, missing);
    FormatError e = test::caught<FormatError>([&] { read_ann_dataset(path); });
    CHECK(test::contains(e.what(), "no dataset '" + std::string(missing) + "'"));
    CHECK(test::contains(e.what(), path));
    CHECK(e.section() == missing);
  }
  FormatError no_train = test::caught<FormatError>([&] { read_table(dir.file("no-train.hdf5")); });
  CHECK(test::contains(no_train.what(), "no dataset 'train'"));

  std::string wide = dir.file("wide.hdf5");
  ann.write(wide, {}, AnnFixture::kDim + 1);
  FormatError shapes = test::caught<FormatError>([&] { read_ann_dataset(wide); });
  CHECK(test::contains(shapes.what(), "dataset 'test' has 9 columns but 'train' has 8"));
  CHECK(shapes.section() == "test");

  // Keys are optional.
  std::string unkeyed = dir.file("unkeyed.hdf5");
  ann.write(unkeyed, "words_train");
  CHECK_FALSE(read_table(unkeyed).has_keys());
}

TEST_CASE("hdf5: neighbour ids outside train, bad shapes, NaN and non-HDF5 files are reported") {
  test::TempDir dir;
  AnnFixture ann;
  ann.neighbors[13] = 1000;
  std::string path = dir.file("bad-ids.hdf5");
  ann.write(path);
  CHECK(test::contains(test::caught<FormatError>([&] { read_ann_dataset(path); }).what(),
                 "dataset 'neighbors': entry [1][3] = 1000 is not a row of 'train' (60 rows)"));

  std::string cube = dir.file("cube.h5");
  {
    H5Writer h5(cube);
    std::vector<float> values(2 * 3 * 4, 1.0f);
    h5.matrix("train", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, values.data(), {2, 3, 4});
    int32_t ints[4] = {1, 2, 3, 4};
    h5.matrix("ints", H5T_STD_I32LE, H5T_NATIVE_INT32, ints, {2, 2});
  }
  CHECK(test::contains(test::caught<FormatError>([&] { read_table(cube); }).what(), "dataset 'train': has 3 dimensions; expected 2"));
  CHECK(test::contains(test::caught<FormatError>([&] { read_table(cube + ":/ints"); }).what(), "expected float32 or float64 elements"));
  CHECK(test::contains(test::caught<FormatError>([&] { read_table(cube + ":/nothing/here"); }).what(), "no dataset '/nothing/here'"));

  std::string nan_file = dir.file("nan.h5");
  {
    H5Writer h5(nan_file);
    float values[4] = {1.0f, std::numeric_limits<float>::quiet_NaN(), 3.0f, 4.0f};
    h5.matrix("train", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, values, {2, 2});
  }
  CHECK(test::contains(test::caught<FormatError>([&] { read_table(nan_file); }).what(), "NaN at row 0, column 1"));
  ReadOptions options;
  options.allow_nan = true;
  CHECK(std::isnan(read_table(nan_file, {}, options).row(0)[1]));

  std::string fake = dir.file("fake.h5");
  test::write_bytes(fake, {'n', 'o', 't', ' ', 'h', 'd', 'f'});
  CHECK(test::contains(test::caught<FormatError>([&] { read_table(fake); }).what(), "not an HDF5 file"));
  CHECK_THROWS_AS(read_table(dir.file("absent.h5")), IoError);
  CHECK_THROWS_AS(read_ann_dataset(dir.file("absent.h5")), IoError);
}

TEST_CASE("hdf5: FILE:/group/name reads any 2-D float dataset, float64 converted") {
  test::TempDir dir;
  std::string path = dir.file("any.h5");
  std::vector<double> values = {0.5, -1.25, 3.0, 1e-3, 7.0, 8.5};
  {
    H5Writer h5(path);
    h5.matrix("/group/emb", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, values.data(), {3, 2});
    hid_t group = H5Gopen2(h5.file(), "/group", H5P_DEFAULT);
    H5Gclose(group);
    h5.attribute("distance", "angular", false);  // fixed-length, as older writers store it
  }
  {
    // Fixed-length keys beside the dataset.
    hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    hsize_t count = 3;
    hid_t type = H5Tcopy(H5T_C_S1);
    H5Tset_size(type, 4);
    const char keys[] = "one\0two\0six\0";
    hid_t space = H5Screate_simple(1, &count, nullptr);
    hid_t dataset = H5Dcreate2(file, "/group/words_emb", type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    REQUIRE(H5Dwrite(dataset, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, keys) >= 0);
    H5Dclose(dataset);
    H5Sclose(space);
    H5Tclose(type);
    H5Fclose(file);
  }
  std::string named = path + ":/group/emb";
  CHECK(std::string(detect_format(named).name) == "hdf5");
  Table t = read_table(named);
  REQUIRE(t.size() == 3);
  CHECK(t.dim() == 2);
  CHECK(t.row(2) == std::vector<float>{7.0f, 8.5f});
  CHECK(t.row(1) == std::vector<float>{3.0f, static_cast<float>(1e-3)});
  CHECK(t.key(2) == "six");
  CHECK(t.metric() == Metric::cos);
  CHECK(t.meta().source_path == named);
}

TEST_CASE("hdf5: write_table writes train, words_train and distance; read back exactly") {
  test::TempDir dir;
  std::vector<float> rows = test::clustered_rows(5000, 6, 5, 3);
  rows[0] = -0.0f;
  rows[1] = std::numeric_limits<float>::denorm_min();
  std::vector<std::string> keys;
  for (size_t i = 0; i < 5000; ++i) keys.push_back("k" + std::to_string(i));
  keys[7] = "\xE6\x97\xA5\xE6\x9C\xAC";
  Table table = Table::from_rows(rows, 6, keys, Metric::ip);
  std::string path = dir.file("out.h5");
  write_table(table, path);
  Table back = read_table(path);
  REQUIRE(back.size() == 5000);
  std::vector<float> a = test::all_rows(table), b = test::all_rows(back);
  CHECK(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
  CHECK(back.key(7) == keys[7]);
  CHECK(back.key(4999) == "k4999");
  CHECK(back.metric() == Metric::ip);

  Table unkeyed = Table::from_rows({1, 2, 3, 4}, 2, {}, Metric::l2);
  write_table(unkeyed, dir.file("plain.hdf5"));
  Table plain = read_table(dir.file("plain.hdf5"));
  CHECK_FALSE(plain.has_keys());
  CHECK(plain.row(1) == std::vector<float>{3.0f, 4.0f});
  CHECK(plain.metric() == Metric::l2);

  // A write that fails midway leaves the old file and no temporary.
  FailingProgress failing;
  WriteOptions options;
  options.progress = &failing;
  auto before = test::read_bytes(path);
  size_t files = test::files_in(dir.path());
  CHECK_THROWS_WITH(write_table(table, path, "hdf5", options), "disk on fire");
  CHECK(test::read_bytes(path) == before);
  CHECK(test::files_in(dir.path()) == files);
  CHECK_THROWS_AS(write_table(table, dir.file("missing/out.h5")), IoError);
}

TEST_CASE("hdf5: a key with a NUL byte is refused when writing, not cut short") {
  // HDF5 strings end at NUL: "a\0x" and "a\0y" would both read back as "a", and the reader
  // would then drop the second row as a repeated key.
  test::TempDir dir;
  const std::string path = dir.file("t.h5");
  Table table = Table::from_rows({1, 2, 3, 4}, 2, {std::string("a\0x", 3), std::string("a\0y", 3)});
  Error e = test::caught<Error>([&] { write_table(table, path); });
  CHECK_MESSAGE(test::contains(e.what(), "cannot write row 0 as hdf5: its key 'a\\x00x' contains a NUL byte"), e.what());
  CHECK_FALSE(std::filesystem::exists(path));
}

namespace {

// A table file whose root group holds `extra` string attributes (before or after the datasets)
// and "distance" = "euclidean", in the object-header layout the property lists ask for.
void write_with_attributes(const std::string& path, hid_t create, hid_t access, bool variable, int extra,
                           bool extra_first) {
  H5Writer h5(path, create, access);
  auto extras = [&] {
    for (int i = 0; i < extra; ++i) h5.attribute(("note" + std::to_string(i)).c_str(), std::string(40, 'x'), true);
  };
  if (extra_first) extras();
  std::vector<float> rows = test::clustered_rows(6, 4, 2, 3);
  h5.matrix("train", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, rows.data(), {6, 4});
  if (!extra_first) extras();
  h5.attribute("distance", "euclidean", variable);
}

// The error reading `pristine` with `bytes` written over it at `at` gives.
FormatError read_damaged(const std::string& path, const std::string& pristine, size_t at, const std::string& bytes) {
  std::string copy = pristine;
  copy.replace(at, bytes.size(), bytes);
  test::write_text(path, copy);
  return test::caught<FormatError>([&] { read_table(path); });
}

struct PropertyList {
  hid_t id;
  explicit PropertyList(hid_t cls) : id(H5Pcreate(cls)) {}
  ~PropertyList() { H5Pclose(id); }
};

}  // namespace

TEST_CASE("hdf5: the distance attribute is read in every object-header layout libhdf5 writes") {
  // vecpack reads the root group's attributes itself (libhdf5 1.10 mishandles damaged ones):
  // version 1 headers (the default), version 2 headers with and without creation order, and
  // attributes spread over continuation blocks.
  test::TempDir dir;
  PropertyList latest(H5P_FILE_ACCESS), ordered(H5P_FILE_CREATE);
  H5Pset_libver_bounds(latest.id, H5F_LIBVER_LATEST, H5F_LIBVER_LATEST);
  H5Pset_attr_creation_order(ordered.id, H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED);
  struct Layout {
    const char* name;
    hid_t create, access;
    int extra;
  };
  const Layout layouts[] = {{"version 1", H5P_DEFAULT, H5P_DEFAULT, 0},
                            {"version 1, continued", H5P_DEFAULT, H5P_DEFAULT, 40},
                            {"version 2", H5P_DEFAULT, latest.id, 0},
                            {"version 2, continued", H5P_DEFAULT, latest.id, 6},
                            {"version 2, creation order", ordered.id, latest.id, 3}};
  for (const Layout& layout : layouts) {
    for (bool variable : {true, false}) {
      CAPTURE(layout.name);
      CAPTURE(variable);
      const std::string path = dir.file("t.h5");
      write_with_attributes(path, layout.create, layout.access, variable, layout.extra, false);
      CHECK(read_table(path).metric() == Metric::l2);
    }
  }

  // Attributes in dense storage (a fractal heap) are not read: the metric falls back to cos.
  PropertyList dense(H5P_FILE_CREATE);
  H5Pset_attr_phase_change(dense.id, 0, 0);
  const std::string path = dir.file("dense.h5");
  write_with_attributes(path, dense.id, latest.id, true, 2, true);
  CHECK(read_table(path).metric() == Metric::cos);
}

TEST_CASE("hdf5: a damaged distance attribute is a FormatError, never an allocation of its declared size") {
  test::TempDir dir;
  const std::string path = dir.file("t.h5");
  write_with_attributes(path, H5P_DEFAULT, H5P_DEFAULT, true, 0, false);
  const std::string pristine = test::file_text(path);
  // The attribute message: name "distance\0" then the variable-length string type and a
  // scalar dataspace; its value (after them) is a reference: length, collection, index.
  const size_t name_at = pristine.find(std::string("distance\0", 9));
  REQUIRE(name_at != std::string::npos);
  const size_t gcol = pristine.find("GCOL");
  REQUIRE(gcol != std::string::npos);
  size_t reference = std::string::npos;  // the 8-byte collection address, after the 4-byte length
  for (size_t i = name_at; i + 8 <= pristine.size() && i < name_at + 256; ++i) {
    uint64_t address = 0;
    std::memcpy(&address, pristine.data() + i, 8);
    if (address == gcol) {
      reference = i - 4;
      break;
    }
  }
  REQUIRE(reference != std::string::npos);
  auto damaged = [&](size_t at, const std::string& bytes) { return read_damaged(path, pristine, at, bytes); };

  // A length of 2 GiB (libhdf5 1.10 would allocate and zero it before noticing).
  FormatError huge = damaged(reference, std::string("\xff\xff\xff\x7f", 4));
  CHECK_MESSAGE(test::contains(huge.what(), "attribute 'distance' has a string of 2147483647 bytes"), huge.what());
  // A length the heap object does not hold.
  FormatError longer = damaged(reference, std::string("\x00\x01\x00\x00", 4));
  CHECK_MESSAGE(test::contains(longer.what(), "which has no object 1 of 256 bytes"), longer.what());
  // An object the collection lacks.
  FormatError missing = damaged(reference + 12, std::string("\x07\x00\x00\x00", 4));
  CHECK_MESSAGE(test::contains(missing.what(), "which has no object 7"), missing.what());
  // A name longer than the message (libhdf5 1.10 reads past the message's end).
  FormatError name = damaged(name_at - 6, std::string("\xff\x0f", 2));
  CHECK_MESSAGE(test::contains(name.what(), "attribute 'distance' is damaged: its parts run past the message"),
                name.what());
}

TEST_CASE("hdf5: damaged object headers are FormatErrors before libhdf5 reads them") {
  // libhdf5 1.10 follows a continuation message to any address: 2^64 - 1 crashed H5Fopen.
  test::TempDir dir;
  const std::string path = dir.file("t.h5");
  write_with_attributes(path, H5P_DEFAULT, H5P_DEFAULT, true, 40, false);  // continued headers
  const std::string pristine = test::file_text(path);
  auto u64_at = [&](size_t at) {
    uint64_t value = 0;
    std::memcpy(&value, pristine.data() + at, 8);
    return value;
  };
  // Superblock version 0 at byte 0: the root group's object header address is at byte 64.
  REQUIRE(pristine[8] == 0);
  const size_t root = static_cast<size_t>(u64_at(64));
  REQUIRE(pristine[root] == 1);  // object header version 1: messages from byte 16
  uint32_t header_size = 0;
  std::memcpy(&header_size, pristine.data() + root + 8, 4);
  size_t continuation = 0;
  for (size_t at = root + 16; at + 8 <= root + 16 + header_size;) {
    uint16_t type = 0, size = 0;
    std::memcpy(&type, pristine.data() + at, 2);
    std::memcpy(&size, pristine.data() + at + 2, 2);
    if (type == 0x10) continuation = at + 8;
    at += 8 + size;
  }
  REQUIRE(continuation != 0);
  auto damaged = [&](size_t at, const std::string& bytes) { return read_damaged(path, pristine, at, bytes); };
  FormatError outside = damaged(continuation, std::string(8, '\xff'));
  CHECK_MESSAGE(test::contains(outside.what(), "the object header of the root group continues outside the file"),
                outside.what());
  FormatError huge = damaged(continuation + 8, std::string("\x00\x00\x00\x40\x00\x00\x00\x00", 8));
  CHECK_MESSAGE(test::contains(huge.what(), "the object header of the root group has a block of 1073741824 bytes"),
                huge.what());
  FormatError message = damaged(root + 16 + 2, std::string("\xf0\xff", 2));
  CHECK_MESSAGE(test::contains(message.what(), "has a message of 65520 bytes past its block's end"), message.what());
}

TEST_CASE("hdf5: compact datasets are read, their sizes and string references checked first") {
  // libhdf5 1.10 copies a compact dataset's elements without checking that its buffer holds
  // them, and reads the strings its references name as it does for contiguous ones.
  test::TempDir dir;
  const std::string path = dir.file("t.h5");
  const std::vector<float> rows = test::clustered_rows(6, 3, 2, 3);  // 72 bytes, unlike the keys' 96
  const std::vector<std::string> words = {"a", "bb", "ccc", "d", "e", "f"};
  {
    H5Writer h5(path);
    h5.compact();
    h5.matrix("train", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, rows.data(), {6, 3});
    h5.strings("words_train", words, true);
  }
  Table table = read_table(path);
  CHECK(test::all_rows(table) == rows);
  REQUIRE(table.has_keys());
  CHECK(table.key(2) == "ccc");

  const std::string pristine = test::file_text(path);
  // The keys' layout message: version 3, class 0 (compact), 96 bytes, then 6 references.
  const size_t layout = pristine.find(std::string("\x03\x00\x60\x00", 4));
  REQUIRE(layout != std::string::npos);
  auto damaged = [&](size_t at, const std::string& bytes) { return read_damaged(path, pristine, at, bytes); };
  FormatError index = damaged(layout + 4 + 12, std::string("\x07\x00\x00\x00", 4));
  CHECK_MESSAGE(test::contains(index.what(), "string 0 points at heap collection"), index.what());
  CHECK_MESSAGE(test::contains(index.what(), "which has no object 7"), index.what());
  FormatError size = damaged(layout + 2, std::string("\x50\x00", 2));
  CHECK_MESSAGE(test::contains(size.what(), "dataset 'words_train'"), size.what());
  CHECK_MESSAGE(test::contains(size.what(), "80 bytes"), size.what());
}

TEST_CASE("hdf5: shared messages: committed types are read, the shared-message index is refused") {
  test::TempDir dir;
  const std::vector<float> rows = test::clustered_rows(5, 3, 2, 4);
  const std::string committed = dir.file("committed.h5");
  {
    H5Writer h5(committed);
    hid_t type = H5Tcopy(H5T_IEEE_F32LE);
    REQUIRE(H5Tcommit2(h5.file(), "float_type", type, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT) >= 0);
    h5.matrix("train", type, H5T_NATIVE_FLOAT, rows.data(), {5, 3});
    H5Tclose(type);
  }
  CHECK(test::all_rows(read_table(committed)) == rows);

  // Messages kept in the file's shared-message index are stored where vecpack does not look.
  const std::string indexed = dir.file("indexed.h5");
  {
    PropertyList create(H5P_FILE_CREATE);
    REQUIRE(H5Pset_shared_mesg_nindexes(create.id, 1) >= 0);
    REQUIRE(H5Pset_shared_mesg_index(create.id, 0, H5O_SHMESG_ALL_FLAG, 8) >= 0);
    H5Writer h5(indexed, create.id);
    // The second dataset's messages refer to the first one's, through the index.
    h5.matrix("train", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, rows.data(), {5, 3});
    h5.matrix("copy", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, rows.data(), {5, 3});
  }
  FormatError refused = test::caught<FormatError>([&] { read_table(indexed + ":/copy"); });
  CHECK_MESSAGE(test::contains(refused.what(), "has a message in the file's shared-message index, "
                                                    "which vecpack does not read"),
                std::string(refused.what()));
}

TEST_CASE("hdf5: a dataset that declares more stored bytes than the file has is refused before reading") {
  test::TempDir dir;
  const std::string path = dir.file("t.h5");
  const std::vector<float> rows = test::clustered_rows(5, 3, 2, 4);
  haddr_t offset = HADDR_UNDEF;
  {
    H5Writer h5(path);
    h5.matrix("train", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, rows.data(), {5, 3});
    hid_t dataset = H5Dopen2(h5.file(), "train", H5P_DEFAULT);
    offset = H5Dget_offset(dataset);
    H5Dclose(dataset);
  }
  // The contiguous layout message: version 3, class 1, the data's address, then its size.
  const std::string pristine = test::file_text(path);
  std::string layout("\x03\x01", 2);
  layout.append(reinterpret_cast<const char*>(&offset), 8);
  const size_t at = pristine.find(layout);
  REQUIRE(at != std::string::npos);
  const uint64_t huge = uint64_t{1} << 40;
  FormatError e = read_damaged(path, pristine, at + 10, std::string(reinterpret_cast<const char*>(&huge), 8));
  CHECK_MESSAGE(test::contains(e.what(), "dataset 'train': claims 1099511627776 bytes of data but the file has " +
                                             std::to_string(pristine.size()) + " bytes"),
                std::string(e.what()));
}

TEST_CASE("hdf5: a superblock cut short or naming a driver block larger than the file is refused") {
  // libhdf5 1.10 allocates a driver information block's declared size (up to 4 GiB) first.
  test::TempDir dir;
  const std::string path = dir.file("t.h5");
  write_with_attributes(path, H5P_DEFAULT, H5P_DEFAULT, true, 0, false);
  const std::string pristine = test::file_text(path);
  REQUIRE(pristine[8] == 0);  // superblock version 0: the driver block's address at byte 48
  // Pointing it at byte 0 makes the signature's "\r\n\x1a\n" its size: 168 MiB.
  FormatError driver = read_damaged(path, pristine, 48, std::string(8, '\0'));
  CHECK_MESSAGE(test::contains(driver.what(), "the HDF5 driver information block lies outside the file"),
                std::string(driver.what()));
  test::write_text(path, pristine.substr(0, 67));
  FormatError cut = test::caught<FormatError>([&] { read_table(path); });
  CHECK_MESSAGE(test::contains(cut.what(), "the HDF5 superblock (version 0) is cut short at 67 of its 96 bytes"),
                std::string(cut.what()));
}

TEST_CASE("hdf5: a chunked dataset whose layout disagrees with its type's element size is refused") {
  // libhdf5 1.10 reads the chunks with the layout's element size, past their ends.
  test::TempDir dir;
  const std::string path = dir.file("t.h5");
  const std::vector<float> rows = test::clustered_rows(6, 4, 2, 5);
  {
    H5Writer h5(path);
    PropertyList chunked(H5P_DATASET_CREATE);
    const hsize_t chunk[2] = {2, 4}, dims[2] = {6, 4};
    H5Pset_chunk(chunked.id, 2, chunk);
    hid_t space = H5Screate_simple(2, dims, nullptr);
    hid_t dataset = H5Dcreate2(h5.file(), "train", H5T_IEEE_F32LE, space, H5P_DEFAULT, chunked.id, H5P_DEFAULT);
    REQUIRE(H5Dwrite(dataset, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, rows.data()) >= 0);
    H5Dclose(dataset);
    H5Sclose(space);
  }
  CHECK(test::all_rows(read_table(path)) == rows);
  // The layout message, version 3: class 2 (chunked), 3 dimensions (2, 4 and the element's 4
  // bytes) after the chunk index's address.
  const std::string pristine = test::file_text(path);
  const size_t layout = pristine.find(std::string("\x03\x02\x03", 3));
  REQUIRE(layout != std::string::npos);
  const size_t element = layout + 3 + 8 + 2 * 4;
  REQUIRE(pristine.substr(element, 4) == std::string("\x04\x00\x00\x00", 4));
  FormatError e = read_damaged(path, pristine, element, std::string("\x08\x00\x00\x00", 4));
  CHECK_MESSAGE(test::contains(e.what(), "dataset 'train': its layout message gives elements of 8 "
                                              "bytes; its type has 4"),
                std::string(e.what()));
  // Chunks of 8 rows in a dataset of 6 (H5Dcreate refuses them; libhdf5 1.10 reads them).
  FormatError rows_of_8 = read_damaged(path, pristine, layout + 3 + 8, std::string("\x08\x00\x00\x00", 4));
  CHECK_MESSAGE(test::contains(rows_of_8.what(), "gives chunks of 8 in dimension 0, which the "
                                                      "dataset's shape does not allow"),
                std::string(rows_of_8.what()));

  // The chunk index: a B-tree node ("TREE", type 1) with three chunks, keyed by their sizes,
  // filter masks and offsets (row, column, element).
  const size_t tree = pristine.find(std::string("TREE\x01\x00\x03\x00", 8));
  REQUIRE(tree != std::string::npos);
  const size_t key_bytes = 8 + 3 * 8, second_key = tree + 24 + key_bytes + 8;
  REQUIRE(pristine.substr(second_key + 8, 8) == std::string("\x02\0\0\0\0\0\0\0", 8));  // starts at row 2
  FormatError between = read_damaged(path, pristine, second_key + 8, std::string("\x03", 1));
  CHECK_MESSAGE(test::contains(between.what(), "its chunk index places a chunk at 3 in dimension 0, "
                                                    "not a chunk boundary"),
                std::string(between.what()));
  FormatError outside = read_damaged(path, pristine, second_key + 8, std::string("\x06", 1));
  CHECK_MESSAGE(test::contains(outside.what(), "places a chunk at 6 in dimension 0"), std::string(outside.what()));
  FormatError size = read_damaged(path, pristine, second_key, std::string("\x40", 1));
  CHECK_MESSAGE(test::contains(size.what(), "has an unfiltered chunk of 64 bytes; its chunks have 32"),
                std::string(size.what()));
}
