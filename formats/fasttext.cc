#include "formats/fasttext.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_set>
#include <utility>
#include <vector>

#include "formats/word2vec.h"
#include "parallel.h"
#include "subwords.h"
#include "text_io.h"
#include "vecpack/errors.h"

namespace vecpack {
namespace {

// ------------------------------------------------------------------------------------ .vec

// fastText's own .vec files are word2vec text whose lines end "vd \n"; the word2vec reader
// already ignores trailing blanks.
Table read_vec(const std::string& path, const ReadOptions& options) {
  return read_word2vec_text(path, options, "fasttext-vec");
}

void write_vec(const Table& table, const std::string& path, const WriteOptions& options) {
  const size_t dim = table.dim();
  if (dim == 0) throw Error("cannot write " + path + " as fasttext-vec: the table has dimension 0");
  io::OutputFile out(path);
  io::ProgressScope progress(options.progress, "writing " + path, table.size());
  out.write_integer(table.size());
  out.put(' ');
  out.write_integer(dim);
  out.put('\n');
  std::string scratch;
  io::for_each_row_block(table, [&](size_t first, size_t count, const float* values) {
    for (size_t r = 0; r < count; ++r) {
      std::string_view key = io::row_key(table, first + r, scratch);
      io::check_writable_key(key, first + r, "fasttext-vec", false);
      out.write(key);
      out.put(' ');
      // Every value is followed by a space, the last one too, as fastText writes them.
      for (const float* value = values + r * dim; value != values + (r + 1) * dim; ++value) {
        out.write_float(*value);
        out.put(' ');
      }
      out.put('\n');
    }
    progress.advance(first + count);
  });
  out.commit();
}

// ------------------------------------------------------------------------------------ .bin/.ftz

constexpr int32_t kModelMagic = 793712314;
constexpr int32_t kOldestVersion = 11, kNewestVersion = 12;
constexpr int32_t kSupervisedModel = 3;  // fastText's model_name::sup
// Dictionary words end with a NUL; no real word is this long, so a longer run means damage.
constexpr size_t kMaxWordBytes = size_t{1} << 16;
constexpr size_t kSmallestEntryBytes = 1 + 8 + 1;  // an empty word's NUL, its count and its type
constexpr uint64_t kCentroidsPerSubquantizer = 256;  // codes are single bytes
constexpr size_t kChunkFloats = size_t{1} << 22;     // 16 MiB per read of the input matrix
constexpr size_t kWordBatch = size_t{1} << 14;       // words between progress reports
constexpr std::string_view kEndOfSentence = "</s>";

std::string at_offset(uint64_t offset) { return " (byte offset " + std::to_string(offset) + ")"; }

void to_native_floats(float* values, size_t count) {
  if constexpr (std::endian::native == std::endian::big) {
    for (size_t i = 0; i < count; ++i) {
      values[i] = std::bit_cast<float>(__builtin_bswap32(std::bit_cast<uint32_t>(values[i])));
    }
  }
}

template <class T>
T from_little_endian(const unsigned char* bytes) {
  using Bits = std::conditional_t<sizeof(T) == 8, uint64_t, std::conditional_t<sizeof(T) == 4, uint32_t, uint8_t>>;
  Bits bits = 0;
  for (size_t i = 0; i < sizeof(T); ++i) bits |= static_cast<Bits>(Bits{bytes[i]} << (8 * i));
  return std::bit_cast<T>(bits);
}

// Sequential little-endian reads from a model file. Sizes read from the file are checked with
// require() before anything is allocated for them, so a damaged header cannot make us
// allocate more than the file could hold.
class ModelReader {
 public:
  explicit ModelReader(const std::string& path) : in_(path) {}

  const std::string& path() const { return in_.path(); }
  uint64_t offset() const { return in_.position(); }
  uint64_t disk_position() const { return in_.disk_position(); }
  uint64_t file_size() const { return in_.file_size(); }
  // Bytes left; unknown for gzip input, which is checked as it is read instead.
  std::optional<uint64_t> remaining() const {
    if (in_.compressed()) return std::nullopt;
    return in_.file_size() > offset() ? in_.file_size() - offset() : 0;
  }

  [[noreturn]] void fail(uint64_t offset, const std::string& message) const {
    throw ParseError(path(), 0, 0, message + at_offset(offset));
  }
  [[noreturn]] void truncated(uint64_t offset, const std::string& what, uint64_t needed, uint64_t found) const {
    fail(offset, "truncated: " + what + " needs " + std::to_string(needed) + " bytes, " + std::to_string(found) +
                     " remain");
  }

  // Throws unless `bytes` more bytes may follow.
  void require(uint64_t bytes, const std::string& what) const {
    std::optional<uint64_t> left = remaining();
    if (left && bytes > *left) truncated(offset(), what, bytes, *left);
  }

  // Throws unless `count` items of `item_bytes` each may follow. Compared in items, so that a
  // count from a damaged header cannot overflow count x item_bytes and pass the check.
  void require_items(uint64_t count, uint64_t item_bytes, const std::string& what) const {
    std::optional<uint64_t> left = remaining();
    if (!left || count <= *left / item_bytes) return;
    const bool overflows = count > std::numeric_limits<uint64_t>::max() / item_bytes;
    fail(offset(), "truncated: " + what + " needs " +
                       (overflows ? std::string("more than 2^64") : std::to_string(count * item_bytes)) + " bytes, " +
                       std::to_string(*left) + " remain");
  }

  void read_exact(void* out, size_t size, const std::string& what) {
    const uint64_t start = offset();
    size_t got = in_.read(out, size);
    if (got < size) truncated(start, what, size, got);
  }
  // Elements worth reserving for `wanted` items read next: all of them when require() has
  // bounded them by the file size, else (gzip) a start that grows as data really arrives.
  size_t reserve_bound(uint64_t wanted) const {
    return static_cast<size_t>(remaining() ? wanted : std::min<uint64_t>(wanted, uint64_t{1} << 20));
  }
  // Reads `size` bytes in chunks, so that gzip input promising more than it holds fails
  // before the whole promised size is allocated.
  std::vector<uint8_t> byte_array(uint64_t size, const std::string& what) {
    require(size, what);
    std::vector<uint8_t> out;
    out.reserve(reserve_bound(size));
    const uint64_t start = offset();
    while (out.size() < size) {
      const size_t chunk = static_cast<size_t>(std::min<uint64_t>(size - out.size(), uint64_t{1} << 24));
      out.resize(out.size() + chunk);
      size_t got = in_.read(out.data() + out.size() - chunk, chunk);
      if (got < chunk) truncated(start, what, size, out.size() - chunk + got);
    }
    return out;
  }
  // How many of `size` bytes were read: fewer only at the end of input.
  size_t read_some(void* out, size_t size) { return in_.read(out, size); }

  template <class T>
  T scalar(const char* what) {
    unsigned char bytes[sizeof(T)];
    const uint64_t start = offset();
    size_t got = in_.read(bytes, sizeof(T));
    if (got < sizeof(T)) truncated(start, what, sizeof(T), got);
    return from_little_endian<T>(bytes);
  }
  int32_t int32(const char* what) { return scalar<int32_t>(what); }
  int64_t int64(const char* what) { return scalar<int64_t>(what); }
  uint8_t uint8(const char* what) { return scalar<uint8_t>(what); }

  // A 0/1 byte (a C++ bool as fastText writes it).
  bool flag(const char* what) {
    const uint64_t start = offset();
    uint8_t value = uint8(what);
    if (value > 1) fail(start, std::string(what) + " must be 0 or 1, found " + std::to_string(value));
    return value == 1;
  }

  // The next word: bytes up to a NUL, which is consumed.
  std::string_view word(uint64_t entry) {
    const uint64_t start = offset();
    std::string_view token;
    bool terminated = false;
    in_.read_until('\0', kMaxWordBytes, token, terminated);
    if (!terminated) {
      if (token.size() >= kMaxWordBytes) {
        fail(start, "dictionary entry " + std::to_string(entry) + " has no NUL within " +
                        std::to_string(kMaxWordBytes) + " bytes; not a fastText model, or damaged");
      }
      fail(start, "truncated: dictionary entry " + std::to_string(entry) + " ends before its word's NUL");
    }
    return token;
  }

 private:
  io::InputFile in_;
};

struct ModelArgs {
  int32_t dim = 0, model = 0, bucket = 0, minn = 0, maxn = 0;
};

ModelArgs read_args(ModelReader& reader, int32_t version) {
  const char* names[12] = {"dim",  "ws",    "epoch",  "minCount", "neg",  "wordNgrams",
                           "loss", "model", "bucket", "minn",     "maxn", "lrUpdateRate"};
  int32_t values[12];
  uint64_t offsets[12];
  for (int i = 0; i < 12; ++i) {
    offsets[i] = reader.offset();
    values[i] = reader.int32(names[i]);
  }
  reader.scalar<double>("the sampling threshold t");
  ModelArgs args{.dim = values[0], .model = values[7], .bucket = values[8], .minn = values[9], .maxn = values[10]};
  if (args.dim <= 0 || static_cast<uint64_t>(args.dim) > kMaxDimension) {
    reader.fail(offsets[0], "the dimension must be between 1 and " + std::to_string(kMaxDimension) + ", found " +
                                std::to_string(args.dim));
  }
  for (int i : {8, 9, 10}) {
    if (values[i] < 0) reader.fail(offsets[i], std::string(names[i]) + " is negative (" + std::to_string(values[i]) + ")");
  }
  // fastText's backward compatibility: version 11 supervised models use no character n-grams.
  if (version == 11 && args.model == kSupervisedModel) args.maxn = 0;
  if (args.maxn > 0 && (uint32_t(args.minn) > kMaxSubwordLength || uint32_t(args.maxn) > kMaxSubwordLength)) {
    reader.fail(offsets[9], "n-gram lengths " + std::to_string(args.minn) + ".." + std::to_string(args.maxn) +
                                " exceed the supported " + std::to_string(kMaxSubwordLength) + " characters");
  }
  return args;
}

struct Dictionary {
  uint64_t words = 0;                    // nwords: rows 0..words-1 of the input matrix
  std::vector<std::string> kept_words;   // the first min(limit, words), as stored
  std::vector<uint64_t> counts;          // occurrences of each kept word in the training corpus
  std::vector<std::pair<size_t, std::string>> repaired_keys;  // kept_words index -> key, for invalid UTF-8
  int64_t prune_size = -1;               // -1: not pruned
  std::vector<std::pair<int32_t, int32_t>> prune_pairs;  // bucket -> n-gram row, in file order
  uint64_t prune_offset = 0;
};

Dictionary read_dictionary(ModelReader& reader, const ReadOptions& options) {
  Dictionary dict;
  const uint64_t size_offset = reader.offset();
  const int32_t size = reader.int32("the dictionary size");
  const uint64_t words_offset = reader.offset();
  const int32_t words = reader.int32("the dictionary's word count");
  const int32_t labels = reader.int32("the dictionary's label count");
  reader.int64("the token count");
  const uint64_t prune_size_offset = reader.offset();
  dict.prune_size = reader.int64("the pruned n-gram count");
  if (size < 0) reader.fail(size_offset, "the dictionary size is negative (" + std::to_string(size) + ")");
  if (words < 0 || words > size || labels < 0) {
    reader.fail(words_offset, "the dictionary has " + std::to_string(size) + " entries, of which " +
                                  std::to_string(words) + " words and " + std::to_string(labels) + " labels");
  }
  if (dict.prune_size < -1) {
    reader.fail(prune_size_offset, "the pruned n-gram count must be -1 or more, found " + std::to_string(dict.prune_size));
  }
  reader.require(uint64_t(size) * kSmallestEntryBytes, "a dictionary of " + std::to_string(size) + " entries");

  dict.words = static_cast<uint64_t>(words);
  const uint64_t kept = options.limit ? std::min<uint64_t>(options.limit, dict.words) : dict.words;
  dict.kept_words.reserve(reader.reserve_bound(kept));
  std::string scratch;
  for (int32_t entry = 0; entry < size; ++entry) {
    const uint64_t entry_offset = reader.offset();
    std::string_view word = reader.word(static_cast<uint64_t>(entry));
    if (uint64_t(entry) < kept) {
      if (word.empty()) reader.fail(entry_offset, "dictionary entry " + std::to_string(entry) + " has an empty word");
      // The key may be repaired, but the vector comes from the stored bytes, as in fastText.
      std::string_view key = io::utf8_key(reader.path(), 0, word, options.unicode_errors, scratch, at_offset(entry_offset));
      if (key.data() != word.data()) dict.repaired_keys.emplace_back(dict.kept_words.size(), std::string(key));
      dict.kept_words.emplace_back(word);  // the view dies with the next read
    }
    const uint64_t count_offset = reader.offset();
    const int64_t count = reader.int64("a dictionary entry's count");
    if (uint64_t(entry) < kept) {
      if (count < 0) reader.fail(count_offset, "dictionary entry " + std::to_string(entry) + " has a negative count (" + std::to_string(count) + ")");
      dict.counts.push_back(static_cast<uint64_t>(count));
    }
    const uint64_t type_offset = reader.offset();
    const uint8_t type = reader.uint8("a dictionary entry's type");
    // Row i of the input matrix belongs to entry i, so the words must come first.
    const uint8_t expected = entry < words ? 0 : 1;
    if (type != expected) {
      reader.fail(type_offset, "dictionary entry " + std::to_string(entry) + " has type " + std::to_string(type) +
                                   ", expected " + std::to_string(expected) + " (" +
                                   (expected == 0 ? "word" : "label") + ")");
    }
  }

  if (dict.prune_size > 0) {
    dict.prune_offset = reader.offset();
    reader.require_items(uint64_t(dict.prune_size), 8, std::to_string(dict.prune_size) + " pruned n-gram pairs");
    dict.prune_pairs.reserve(reader.reserve_bound(uint64_t(dict.prune_size)));
    for (int64_t i = 0; i < dict.prune_size; ++i) {
      const uint64_t pair_offset = reader.offset();
      int32_t bucket = reader.int32("a pruned n-gram's bucket");
      int32_t row = reader.int32("a pruned n-gram's row");
      if (bucket < 0 || row < 0) {
        reader.fail(pair_offset, "pruned n-gram pair " + std::to_string(i) + " is negative (" + std::to_string(bucket) +
                                     " -> " + std::to_string(row) + ")");
      }
      dict.prune_pairs.emplace_back(bucket, row);
    }
  }
  return dict;
}

// fastText's product quantizer: each row is nsubq one-byte codes, code j choosing one of 256
// centroids of dsub values (lastdsub for the last sub-quantizer).
struct ProductQuantizer {
  int32_t dim = 0, nsubq = 0, dsub = 0, lastdsub = 0;
  std::vector<float> centroids;  // dim x 256

  const float* centroid(int32_t sub, uint8_t code) const {
    const size_t base = size_t(sub) * kCentroidsPerSubquantizer * size_t(dsub);
    if (sub == nsubq - 1) return centroids.data() + base + size_t(code) * size_t(lastdsub);
    return centroids.data() + base + size_t(code) * size_t(dsub);
  }
  // out[0, dim) = scale * the centroids `codes` (nsubq bytes) name.
  void decode(const uint8_t* codes, float scale, float* out) const {
    for (int32_t sub = 0; sub < nsubq; ++sub) {
      const float* values = centroid(sub, codes[sub]);
      const int32_t width = sub == nsubq - 1 ? lastdsub : dsub;
      float* target = out + size_t(sub) * size_t(dsub);
      for (int32_t i = 0; i < width; ++i) target[i] = scale * values[i];
    }
  }
};

void check_finite(ModelReader& reader, const ReadOptions& options, const float* values, size_t count,
                  uint64_t values_offset, const std::string& what) {
  if (options.allow_nan) return;
  size_t index = first_non_finite(values, count);
  if (index == count) return;
  reader.fail(values_offset + index * sizeof(float),
              std::string(std::isnan(values[index]) ? "NaN" : "infinity") + " in " + what +
                  "; non-finite values are rejected unless allow_nan is set");
}

ProductQuantizer read_quantizer(ModelReader& reader, const ReadOptions& options, int64_t expected_dim, const char* name) {
  ProductQuantizer pq;
  const uint64_t start = reader.offset();
  pq.dim = reader.int32("a product quantizer's dimension");
  pq.nsubq = reader.int32("a product quantizer's sub-quantizer count");
  pq.dsub = reader.int32("a product quantizer's sub-dimension");
  pq.lastdsub = reader.int32("a product quantizer's last sub-dimension");
  const bool consistent = pq.dim == expected_dim && pq.nsubq > 0 && pq.dsub > 0 && pq.lastdsub > 0 &&
                          pq.lastdsub <= pq.dsub &&
                          int64_t(pq.nsubq - 1) * pq.dsub + pq.lastdsub == int64_t(pq.dim);
  if (!consistent) {
    reader.fail(start, std::string("the ") + name + " has dim " + std::to_string(pq.dim) + ", nsubq " +
                           std::to_string(pq.nsubq) + ", dsub " + std::to_string(pq.dsub) + ", lastdsub " +
                           std::to_string(pq.lastdsub) + "; expected dim " + std::to_string(expected_dim) +
                           " = (nsubq - 1) * dsub + lastdsub with 0 < lastdsub <= dsub");
  }
  const uint64_t count = uint64_t(pq.dim) * kCentroidsPerSubquantizer;
  const std::string what = std::string("the ") + name + "'s " + std::to_string(count) + " centroid values";
  reader.require(count * sizeof(float), what);
  pq.centroids.resize(count);
  const uint64_t values_offset = reader.offset();
  reader.read_exact(pq.centroids.data(), count * sizeof(float), what);
  to_native_floats(pq.centroids.data(), count);
  check_finite(reader, options, pq.centroids.data(), count, values_offset, std::string("the ") + name + "'s centroids");
  return pq;
}

// The rows of the input matrix a reader keeps: the first `kept_words` word rows, and the
// `pool_rows` n-gram rows after all `words` word rows.
struct MatrixPlan {
  uint64_t words = 0, kept_words = 0, pool_rows = 0;
  bool pool_wanted = false;
};

struct InputRows {
  std::vector<float> words;  // kept_words x dim
  std::vector<float> pool;   // pool_rows x dim
};

// Checks the input matrix's shape against the dictionary and decides which n-gram rows form
// the pool: all `bucket` of them unpruned, every row a pruned pair can name otherwise.
void plan_pool(ModelReader& reader, const ModelArgs& args, const Dictionary& dict, int64_t rows, uint64_t shape_offset,
               MatrixPlan& plan) {
  if (rows < 0 || uint64_t(rows) < dict.words) {
    reader.fail(shape_offset, "the input matrix has " + std::to_string(rows) + " rows, fewer than the " +
                                  std::to_string(dict.words) + " words");
  }
  const uint64_t ngram_rows = uint64_t(rows) - dict.words;
  plan.pool_wanted = args.maxn > 0 && args.bucket > 0 && ngram_rows > 0;
  if (!plan.pool_wanted) return;
  if (dict.prune_size < 0) {
    if (ngram_rows < uint64_t(args.bucket)) {
      reader.fail(shape_offset, "the input matrix has " + std::to_string(rows) + " rows, expected " +
                                    std::to_string(dict.words) + " words + " + std::to_string(args.bucket) +
                                    " n-gram buckets");
    }
    plan.pool_rows = uint64_t(args.bucket);  // rows past the buckets are never used
    return;
  }
  for (const auto& [bucket, row] : dict.prune_pairs) {
    if (uint64_t(row) >= ngram_rows) {
      reader.fail(dict.prune_offset, "pruned n-gram bucket " + std::to_string(bucket) + " maps to row " +
                                         std::to_string(row) + ", but the input matrix has " +
                                         std::to_string(ngram_rows) + " n-gram rows");
    }
  }
  plan.pool_rows = ngram_rows;
}

// The word vectors and the n-gram pool the reader will hold, against the memory limit: a
// quantized model of a few MB can expand to gigabytes of floats.
void check_plan_memory(const ModelReader& reader, const ReadOptions& options, const ModelArgs& args,
                       const MatrixPlan& plan) {
  const uint64_t pool = plan.pool_wanted ? plan.pool_rows : 0;
  io::MemoryBudget(reader.path(), options)
      .require_floats(plan.kept_words + pool, uint64_t(args.dim),
                      "the model's " + std::to_string(plan.kept_words) + " word rows and " + std::to_string(pool) +
                          " n-gram rows x " + std::to_string(args.dim) + " floats");
}

// Reads `rows` x dim float32 in chunks, into `out` (appended) or nowhere when out is null.
void read_dense_rows(ModelReader& reader, const ReadOptions& options, io::ProgressScope& progress, uint64_t rows,
                     size_t dim, uint64_t first_row, std::vector<float>* out, const std::string& matrix) {
  const uint64_t total = rows * dim;
  if (total == 0) return;
  std::vector<float> scratch;
  if (out) out->reserve(reader.remaining() ? total : std::min<uint64_t>(total, kChunkFloats));
  else scratch.resize(std::min<uint64_t>(total, kChunkFloats));
  for (uint64_t done = 0; done < total;) {
    const size_t count = static_cast<size_t>(std::min<uint64_t>(kChunkFloats, total - done));
    float* target = scratch.data();
    if (out) {
      out->resize(out->size() + count);
      target = out->data() + out->size() - count;
    }
    const uint64_t start = reader.offset();
    const size_t got = reader.read_some(target, count * sizeof(float));
    if (got < count * sizeof(float)) {
      reader.truncated(start, matrix + " from row " + std::to_string(first_row + done / dim),
                       (total - done) * sizeof(float), got);
    }
    to_native_floats(target, count);
    if (!options.allow_nan) {
      size_t index = first_non_finite(target, count);
      if (index < count) {
        const uint64_t at = done + index;
        check_finite(reader, options, target, count, start,
                     "value " + std::to_string(at % dim + 1) + " of input matrix row " +
                         std::to_string(first_row + at / dim));
      }
    }
    done += count;
    progress.advance(reader.disk_position());
  }
}

InputRows read_dense_matrix(ModelReader& reader, const ReadOptions& options, io::ProgressScope& progress,
                            const ModelArgs& args, const Dictionary& dict, MatrixPlan& plan) {
  const uint64_t shape_offset = reader.offset();
  const int64_t rows = reader.int64("the input matrix's row count");
  const int64_t cols = reader.int64("the input matrix's column count");
  if (cols != args.dim) {
    reader.fail(shape_offset, "the input matrix has " + std::to_string(cols) + " columns, expected the dimension " +
                                  std::to_string(args.dim));
  }
  plan_pool(reader, args, dict, rows, shape_offset, plan);
  check_plan_memory(reader, options, args, plan);
  const size_t dim = static_cast<size_t>(args.dim);
  const std::string matrix = "the input matrix of " + std::to_string(rows) + " x " + std::to_string(cols) + " float32";
  // Compared in rows so that rows x row bytes, which may pass 2^64, is never computed.
  const uint64_t row_bytes = dim * sizeof(float);
  if (std::optional<uint64_t> left = reader.remaining(); left && uint64_t(rows) > *left / row_bytes) {
    const bool overflows = uint64_t(rows) > std::numeric_limits<uint64_t>::max() / row_bytes;
    reader.fail(reader.offset(), "truncated: " + matrix + " needs " +
                                     (overflows ? std::string("more than 2^64") : std::to_string(uint64_t(rows) * row_bytes)) +
                                     " bytes, " + std::to_string(*left) + " remain");
  }
  InputRows input;
  const uint64_t pool_first = dict.words;
  const uint64_t pool_rows = plan.pool_wanted ? plan.pool_rows : 0;
  read_dense_rows(reader, options, progress, plan.kept_words, dim, 0, &input.words, matrix);
  read_dense_rows(reader, options, progress, dict.words - plan.kept_words, dim, plan.kept_words, nullptr, matrix);
  read_dense_rows(reader, options, progress, pool_rows, dim, pool_first, &input.pool, matrix);
  read_dense_rows(reader, options, progress, uint64_t(rows) - pool_first - pool_rows, dim, pool_first + pool_rows,
                  nullptr, matrix);
  return input;
}

InputRows read_quantized_matrix(ModelReader& reader, const ReadOptions& options, const ModelArgs& args,
                                const Dictionary& dict, MatrixPlan& plan) {
  const bool qnorm = reader.flag("the norm quantization flag");
  const uint64_t shape_offset = reader.offset();
  const int64_t rows = reader.int64("the input matrix's row count");
  const int64_t cols = reader.int64("the input matrix's column count");
  if (cols != args.dim) {
    reader.fail(shape_offset, "the quantized input matrix has " + std::to_string(cols) +
                                  " columns, expected the dimension " + std::to_string(args.dim));
  }
  plan_pool(reader, args, dict, rows, shape_offset, plan);
  check_plan_memory(reader, options, args, plan);
  const uint64_t codesize_offset = reader.offset();
  const int32_t codesize = reader.int32("the code size");
  if (codesize < 0) reader.fail(codesize_offset, "the code size is negative (" + std::to_string(codesize) + ")");
  std::vector<uint8_t> codes = reader.byte_array(uint64_t(codesize), std::to_string(codesize) + " bytes of codes");
  ProductQuantizer pq = read_quantizer(reader, options, args.dim, "product quantizer");
  // Checked in 64 bits: fastText's int32 code size holds rows x nsubq exactly.
  if (uint64_t(codesize) != uint64_t(rows) * uint64_t(pq.nsubq) || uint64_t(rows) > uint64_t(codesize)) {
    reader.fail(codesize_offset, "the code size is " + std::to_string(codesize) + ", expected rows x nsubq = " +
                                     std::to_string(rows) + " x " + std::to_string(pq.nsubq));
  }
  std::vector<uint8_t> norm_codes;
  ProductQuantizer norms;
  if (qnorm) {
    norm_codes = reader.byte_array(uint64_t(rows), std::to_string(rows) + " norm codes");
    norms = read_quantizer(reader, options, 1, "norm quantizer");
  }

  const size_t dim = static_cast<size_t>(args.dim);
  auto decode = [&](uint64_t first, uint64_t count, std::vector<float>& out) {
    out.resize(count * dim);
    for (uint64_t r = 0; r < count; ++r) {
      const uint64_t row = first + r;
      const float norm = qnorm ? norms.centroid(0, norm_codes[row])[0] : 1.0f;
      pq.decode(codes.data() + row * uint64_t(pq.nsubq), norm, out.data() + r * dim);
    }
  };
  InputRows input;
  decode(0, plan.kept_words, input.words);
  if (plan.pool_wanted) decode(dict.words, plan.pool_rows, input.pool);
  return input;
}

SubwordScheme make_scheme(const ModelArgs& args, const Dictionary& dict) {
  SubwordScheme scheme;
  scheme.minn = static_cast<uint32_t>(args.minn);
  scheme.maxn = static_cast<uint32_t>(args.maxn);
  scheme.buckets = static_cast<uint64_t>(args.bucket);
  scheme.is_pruned = dict.prune_size >= 0;
  if (!scheme.is_pruned) return scheme;
  // fastText loads the pairs into a map, so for a repeated bucket the last pair counts; a
  // bucket at or past `bucket` can never be hashed to.
  std::vector<std::pair<int32_t, int32_t>> pairs = dict.prune_pairs;
  std::stable_sort(pairs.begin(), pairs.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  for (size_t i = 0; i < pairs.size(); ++i) {
    if (i + 1 < pairs.size() && pairs[i + 1].first == pairs[i].first) continue;
    if (uint64_t(pairs[i].first) >= scheme.buckets) continue;
    scheme.pruned.emplace_back(static_cast<uint32_t>(pairs[i].first), static_cast<uint32_t>(pairs[i].second));
  }
  return scheme;
}

// fastText's getWordVector for in-vocabulary words: the mean of the word's own row and its
// n-gram rows, summed in fastText's order and scaled as it does, so the values match.
void compute_word_vectors(const Dictionary& dict, const SubwordScheme& scheme, bool with_ngrams, size_t dim,
                          const std::vector<float>& pool, std::vector<float>& words, const ReadOptions& options,
                          const std::string& path) {
  const size_t count = dict.kept_words.size();
  const uint64_t pool_rows = pool.size() / dim;
  // Without buckets fastText computes no n-grams; with pruning to nothing it keeps none.
  with_ngrams = with_ngrams && scheme.maxn > 0 && scheme.buckets > 0 && !(scheme.is_pruned && scheme.pruned.empty());
  io::ProgressScope progress(options.progress, "word vectors of " + path, count);
  if (!with_ngrams) return;
  const unsigned threads = resolve_threads(0);
  for (size_t batch = 0; batch < count; batch += kWordBatch) {
    const size_t batch_end = std::min(count, batch + kWordBatch);
    const size_t tasks = std::min<size_t>(threads * 4, batch_end - batch);
    parallel_for(tasks, threads, [&](size_t task, unsigned) {
      const size_t first = batch + (batch_end - batch) * task / tasks;
      const size_t last = batch + (batch_end - batch) * (task + 1) / tasks;
      for (size_t i = first; i < last; ++i) {
        const std::string& word = dict.kept_words[i];
        if (word == kEndOfSentence) continue;  // fastText gives "</s>" only its own row
        const std::vector<uint64_t> rows = subword_rows(scheme, word);
        if (rows.empty()) continue;
        float* vector = words.data() + i * dim;
        for (uint64_t row : rows) {
          if (row >= pool_rows) {
            throw Error(path + ": n-gram row " + std::to_string(row) + " of the word " + io::quoted(word) +
                        " is past the " + std::to_string(pool_rows) + " rows of the n-gram pool");
          }
          const float* ngram = pool.data() + row * dim;
          for (size_t k = 0; k < dim; ++k) vector[k] += ngram[k];
        }
        const float scale = static_cast<float>(1.0 / double(rows.size() + 1));
        for (size_t k = 0; k < dim; ++k) vector[k] *= scale;
      }
    });
    progress.advance(batch_end);
  }
}

// Turns the stored words into keys: puts in the repaired ones and drops rows whose repaired
// key repeats an earlier one (as the text readers keep the first).
std::vector<std::string> make_keys(Dictionary& dict, std::vector<float>& words, size_t dim, const std::string& path) {
  std::vector<std::string> keys = std::move(dict.kept_words);
  if (dict.repaired_keys.empty()) return keys;
  for (auto& [index, key] : dict.repaired_keys) keys[index] = std::move(key);
  std::vector<bool> first_of_key(keys.size(), false);
  {
    std::unordered_set<std::string_view> seen;
    seen.reserve(keys.size());
    for (size_t i = 0; i < keys.size(); ++i) first_of_key[i] = seen.insert(keys[i]).second;
  }
  size_t kept = 0;
  for (size_t i = 0; i < keys.size(); ++i) {
    if (!first_of_key[i]) continue;
    if (kept != i) {
      std::copy_n(words.data() + i * dim, dim, words.data() + kept * dim);
      keys[kept] = std::move(keys[i]);
      dict.counts[kept] = dict.counts[i];
    }
    ++kept;
  }
  io::warn_duplicates(path, keys.size() - kept);
  keys.resize(kept);
  dict.counts.resize(kept);
  words.resize(kept * dim);
  return keys;
}

Table read_model(const std::string& path, const ReadOptions& options) {
  ModelReader reader(path);
  ModelArgs args;
  Dictionary dict;
  MatrixPlan plan;
  InputRows input;
  {
    io::ProgressScope progress(options.progress, "reading " + path, reader.file_size());
    const int32_t magic = reader.int32("the magic number");
    if (magic != kModelMagic) {
      reader.fail(0, "not a fastText model: magic " + std::to_string(magic) + ", expected " + std::to_string(kModelMagic));
    }
    const int32_t version = reader.int32("the version");
    if (version < kOldestVersion || version > kNewestVersion) {
      reader.fail(4, "unsupported fastText model version " + std::to_string(version) + ", expected " +
                         std::to_string(kOldestVersion) + " or " + std::to_string(kNewestVersion));
    }
    args = read_args(reader, version);
    dict = read_dictionary(reader, options);
    plan.words = dict.words;
    plan.kept_words = dict.kept_words.size();
    const bool quantized = reader.flag("the input quantization flag");
    input = quantized ? read_quantized_matrix(reader, options, args, dict, plan)
                      : read_dense_matrix(reader, options, progress, args, dict, plan);
    // The output matrix that follows is for training and prediction, not word vectors.
    progress.advance(reader.file_size());
  }

  const size_t dim = static_cast<size_t>(args.dim);
  const SubwordScheme scheme = make_scheme(args, dict);
  compute_word_vectors(dict, scheme, plan.pool_wanted, dim, input.pool, input.words, options, path);
  std::vector<std::string> keys = make_keys(dict, input.words, dim, path);
  Table table = Table::from_rows(std::move(input.words), dim, std::move(keys), Metric::cos);
  table.set_source("fasttext", path);
  table = table.with_counts(std::move(dict.counts));
  if (plan.pool_wanted && !input.pool.empty()) {
    table = table.with_subwords(scheme, Table::from_rows(std::move(input.pool), dim));
  }
  return table;
}

// The magic alone decides, so that a model of a version this reader does not know is still
// recognised and reported as such rather than misread as word2vec binary.
bool sniff_model(const uint8_t* head, size_t size) {
  return size >= 4 && from_little_endian<int32_t>(head) == kModelMagic;
}

}  // namespace

const FormatDescriptor kFasttextVec = {
    .name = "fasttext-vec",
    .description = "fastText text vectors: word2vec text with a space after every value (chosen by name: "
                   "word2vec reads and writes .vec too)",
    .extensions = {".vec"},
    .sniff = nullptr,
    .read = read_vec,
    .write = write_vec,
    .rows_by_frequency = true,
};

const FormatDescriptor kFasttextBin = {
    .name = "fasttext",
    .description = "fastText model (.bin, .ftz; read only): word vectors and the n-gram pool for unknown words",
    .extensions = {".ftz"},
    .sniff = sniff_model,
    .read = read_model,
    .write = nullptr,
    .rows_by_frequency = true,
};

}  // namespace vecpack
