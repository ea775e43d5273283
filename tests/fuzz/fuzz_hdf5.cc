// Fuzz target: the HDF5 reader (formats/hdf5.cc) on a damaged file, as a table ("train" and
// "words_train") and as an ann-benchmarks dataset (train, test, neighbors, "distance").
// libhdf5 itself parses the file; what vecpack adds (shape, type and size checks before any
// read, and the checks of what it reads) must turn every damaged file into a vecpack::Error.
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  vecpack::fuzz::read_format("hdf5", "hdf5", data, size);
  vecpack::fuzz::expect_errors([&] {
    const std::string& path = vecpack::fuzz::write_input("hdf5", data, size);
    vecpack::AnnDataset dataset = vecpack::read_ann_dataset(path);
    vecpack::fuzz::exercise_table(dataset.train);
  });
  return 0;
}
