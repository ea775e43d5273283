// Readers and writers of foreign embedding formats, listed as data in formats/registry.cc.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "vecpack/table.h"

namespace vecpack {

// What a reader does with a key that is not valid UTF-8.
enum class UnicodeErrors {
  strict,   // a ParseError naming the line (or byte offset)
  replace,  // each invalid sequence becomes U+FFFD
  ignore,   // invalid bytes are dropped
};

struct ReadOptions {
  size_t limit = 0;          // read at most this many rows; 0: all
  bool allow_nan = false;    // otherwise NaN/Inf is a ParseError naming the line
  bool lenient = false;      // a row count that disagrees with the header is a warning, not an error
  UnicodeErrors unicode_errors = UnicodeErrors::strict;
  // Bytes the reader may allocate for the table it builds; an input that declares more (rows x
  // dim, n-gram pools, array shapes) or grows past it (gzip text) is a MemoryLimitError before
  // the allocation. 0: default_memory_limit(); kNoMemoryLimit: none.
  uint64_t max_memory = 0;
  Progress* progress = nullptr;
};
inline constexpr uint64_t kNoMemoryLimit = ~uint64_t{0};
// 80% of the memory available when called (MemAvailable, capped by RLIMIT_AS and the cgroup's
// memory.max when set).
uint64_t default_memory_limit();
// "80%", "512M", "4G", "1.5T", "123456" (bytes) or "none": bytes for ReadOptions::max_memory.
// Throws SpecError naming the text.
uint64_t parse_memory_size(std::string_view text);

struct WriteOptions {
  Progress* progress = nullptr;
};

// One external format. Text formats read and write transparent gzip when the path ends in .gz.
struct FormatDescriptor {
  const char* name;          // "word2vec", "word2vec-bin", "glove", "hdf5", "vecpack"
  const char* description;   // one line
  std::vector<const char*> extensions;  // lower case, with the dot: ".txt", ".bin"
  // True if the first bytes (after gzip decompression) look like this format.
  bool (*sniff)(const uint8_t* head, size_t size);
  Table (*read)(const std::string& path, const ReadOptions& options);
  void (*write)(const Table& table, const std::string& path, const WriteOptions& options);
  // The format's files list rows most frequent first (word2vec, GloVe and fastText write them
  // so): codecs that use frequency (mixdim) may take the row order as the frequency order.
  bool rows_by_frequency = false;
};

const std::vector<const FormatDescriptor*>& format_list();
const FormatDescriptor* find_format(std::string_view name);
// By name when given, else by content where the extension is ambiguous, else by extension.
// Throws Error naming the path and the known formats when nothing matches.
const FormatDescriptor& detect_format(const std::string& path, std::string_view name = {});

Table read_table(const std::string& path, std::string_view format = {}, const ReadOptions& options = {});
void write_table(const Table& table, const std::string& path, std::string_view format = {},
                 const WriteOptions& options = {});

// An ann-benchmarks HDF5 file: train/test/neighbors(/distances) and attribute "distance".
struct AnnDataset {
  Table train;                      // keyed when the file has "words_train"
  std::vector<float> test;          // test_rows x dim
  size_t test_rows = 0, dim = 0;
  std::vector<int32_t> neighbors;   // test_rows x neighbors_k, exact neighbours in train
  size_t neighbors_k = 0;
  Metric metric = Metric::cos;      // from "distance": angular -> cos, euclidean -> l2, dot -> ip
};
// load_train false skips the (large) train set: eval needs only queries and neighbours.
// options.max_memory bounds the queries and neighbours too; options.limit applies to train.
AnnDataset read_ann_dataset(const std::string& path, bool load_train = true, const ReadOptions& options = {});

}  // namespace vecpack
