// Codecs: the trained stages that turn vectors into bytes and back.
//
// A codec chain ("spec string") is zero or more transforms followed by one quantizer, e.g.
// "int8" or "whiten:k=64/pq:m=16". Each stage is created from a const CodecDescriptor listed
// in the registry (registry.h). Stages are trained in order on a sample, then serialized as
// opaque parameter blobs. Nothing above this interface knows which codec is inside.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "vecpack/types.h"

namespace vecpack {

// Capability flags a codec declares in its descriptor.
enum Capability : uint32_t {
  kExactDecode = 1u << 0,        // decode(encode(x)) == x bit for bit
  kAsymmetricSearch = 1u << 1,   // float queries scored against codes without decoding rows
  kSymmetricSearch = 1u << 2,    // codes scored against codes
  kNeedsTraining = 1u << 3,      // train() learns parameters from data
  kPerVectorCodes = 1u << 4,     // stores code_size() bytes per row
  kTransform = 1u << 5,          // maps vectors to vectors; must be followed by a quantizer
  kSharedParameters = 1u << 6,   // rows share parameters instead of owning a code
  kExperimental = 1u << 7,       // still changing: listed with a mark, its parameters may change
  kRowTables = 1u << 8,          // takes a feature-table id per row (RowContext::tables)
  kNeedsKeys = 1u << 9,          // derives rows from their keys: the table binds its own (Quantizer::bind_keys)
  kPrefixDecodable = 1u << 10,   // dimensions [0, m) decode from a code's leading bytes (decode_prefix)
  kFloatRows = 1u << 11,         // a code is the row itself, dim little-endian f32 values
};

enum class ParamType : uint8_t { integer, real, choice, flag };

// One argument a codec accepts. Ranges are inclusive; choices are '|'-separated.
struct ParamSpec {
  const char* name;
  ParamType type;
  const char* default_value;
  double min = 0, max = 0;
  const char* choices = nullptr;
  const char* help = "";
};

// Arguments of one stage after validation against its ParamSpecs: every declared parameter
// has a value (given or default).
class CodecArgs {
 public:
  void set(std::string name, std::string value);
  bool has(std::string_view name) const;
  const std::string& text(std::string_view name) const;
  int64_t integer(std::string_view name) const;
  double real(std::string_view name) const;
  bool flag(std::string_view name) const;
  const std::vector<std::pair<std::string, std::string>>& items() const { return items_; }

 private:
  std::vector<std::pair<std::string, std::string>> items_;
};

// The key of a table row, by its position.
using KeyLookup = std::function<std::string_view(size_t row)>;

// What a table knows of its rows besides their values. Codecs whose rows share parameters
// (kSharedParameters) are trained on every row in table order and may use it: rows by key
// (subword n-grams, hashed keys), by frequency (mixdim), by feature table (hash).
struct RowContext {
  KeyLookup key;                       // empty when the rows have no keys
  const uint64_t* counts = nullptr;    // occurrences of each row's key in its corpus, or null
  bool frequency_ordered = false;      // the source format lists rows most frequent first
  std::string source_format;           // for messages: where the rows came from ("hdf5", ...)
  const uint32_t* tables = nullptr;    // feature table of each row (kRowTables), or null
};

struct TrainOptions {
  uint64_t seed = 1234;
  unsigned threads = 0;            // 0: one per core
  Progress* progress = nullptr;    // may be null
  const RowContext* rows = nullptr;  // set by Table::compress; null when trained on bare vectors
};

// The rows of a block that beat each query's threshold: those of query q are
// rows[offsets[q]] .. rows[offsets[q + 1] - 1] (positions within the block, ascending), with
// their scores.
struct BlockCandidates {
  std::vector<uint32_t> offsets;  // nq + 1
  std::vector<uint32_t> rows;
  std::vector<float> scores;
};

// Codes rearranged for scanning (Quantizer::scan_layout): built once per segment of codes by the
// store that holds them, read only by the codec that made it.
class ScanLayout {
 public:
  virtual ~ScanLayout() = default;
};

// A run of consecutive stored codes, as the engine hands it to a scorer.
struct CodeBlock {
  const uint8_t* codes = nullptr;  // count x code_size bytes, as stored
  size_t count = 0;
  // Position of the first row in the table the codec was fitted to: codecs whose rows share
  // parameters (kSharedParameters) place rows by it; the others ignore it.
  size_t first_row = 0;
  // The scan layout of the segment the block lies in (null: none), and the row of that segment
  // the block starts at. The engine cuts segments into blocks of whole multiples of 64 rows.
  const ScanLayout* layout = nullptr;
  size_t layout_row = 0;
};

// Scores blocks of codes against a fixed batch of queries.
class CodeScorer {
 public:
  virtual ~CodeScorer() = default;
  // out[q * ld + i] for query q of the batch and row i < block.count; larger is better:
  // ip: q.x   cos: q.x / |x| (queries arrive unit-length)   l2: -|q - x|^2.
  virtual void score(const CodeBlock& block, float* out, size_t ld) const = 0;
  // For each of the nq queries, the rows of the block whose score is above thresholds[q]
  // (-infinity: every row), with the scores score gives. The default scores every row;
  // scorers that can rule rows out more cheaply than by scoring them override it.
  virtual void select_above(const CodeBlock& block, size_t nq, const float* thresholds, BlockCandidates& out) const;
};

// Common base of transforms and quantizers.
class Stage {
 public:
  virtual ~Stage() = default;
  virtual const struct CodecDescriptor& descriptor() const = 0;
  // What this stage can do: its descriptor's flags, which a stage may narrow or widen by its
  // arguments (hash derives rows from keys only with key=string). The table and the engine
  // read these; no codec is asked by trial.
  virtual uint32_t capabilities() const;
  // Canonical spec of this stage with every argument, e.g. "int8" or "pq:m=25,nbits=8".
  virtual std::string spec() const = 0;
  virtual bool trained() const = 0;
  virtual size_t dim_in() const = 0;   // valid once trained or loaded
  virtual size_t dim_out() const = 0;
  // Learns parameters from n rows of dimension d (row-major). Stages that learn nothing
  // only record d.
  virtual void train(const float* x, size_t n, size_t d, const TrainOptions& options) = 0;
  // Trained parameters as a self-describing little-endian blob, and back. load() validates
  // every size in the blob and throws FormatError on damage.
  virtual std::vector<uint8_t> serialize() const = 0;
  virtual void load(const uint8_t* data, size_t size) = 0;
  // Called when a chain is built, with the stage that follows this one; throws SpecError when
  // the two cannot work together (opq:m=8 rotates for the split of a pq with m=8, not m=16).
  virtual void check_next(const Stage& next) const;
};

// Maps vectors to vectors (whitening, rotations, truncation).
class Transform : public Stage {
 public:
  virtual void apply(const float* x, size_t n, float* y) const = 0;       // n x dim_in -> n x dim_out
  virtual void reconstruct(const float* y, size_t n, float* x) const = 0; // best inverse
};

// Maps vectors to a fixed number of bytes per row: the last stage of a chain.
class Quantizer : public Stage {
 public:
  size_t dim_out() const override { return dim_in(); }
  virtual size_t code_size() const = 0;
  // first_row: the position of x's (or the codes') first row in the table the codec is fitted
  // to. Codecs whose rows share parameters (kSharedParameters) place a row by it; the others
  // ignore it.
  virtual void encode(const float* x, size_t n, uint8_t* codes, size_t first_row) const = 0;
  virtual void decode(const uint8_t* codes, size_t n, float* x, size_t first_row) const = 0;
  // Codecs that derive rows from their keys (kNeedsKeys: character n-grams, hashed strings) need
  // the keys to decode: the table binds its own when it trains, loads or opens such a codec.
  virtual void bind_keys(KeyLookup keys);
  // The vector of a key the table does not hold, for codecs that can derive one from the key
  // alone (n-grams): fills out (dim_in() values) and returns true; false (the default) otherwise.
  virtual bool vector_for_key(std::string_view key, float* out) const;
  // The fastest scorer this codec has for nq queries (row-major nq x dim_in, copied as needed).
  // It reads a block's scan layout when the block carries one of this codec's. The default
  // decodes blocks of codes and scores them with BLAS.
  virtual std::unique_ptr<CodeScorer> scorer(const float* queries, size_t nq, Metric metric) const;
  // For codecs whose estimates carry an error bound: a scorer whose scores are the estimate plus
  // its bound, at least the score of the original row with high probability. Two-stage search
  // (SearchOptions::rerank) skips rescoring a candidate whose bound cannot beat the k-th
  // rescored row. Null (the default) when the codec has no bound.
  virtual std::unique_ptr<CodeScorer> upper_bound_scorer(const float* queries, size_t nq, Metric metric) const;
  // An arrangement of n rows' codes that this codec scans faster than the stored one (4-bit pq:
  // blocks of 64 rows transposed), or null (the default) to scan the codes as stored. A store
  // builds one per segment, on its first search, and keeps it in memory beside the codes.
  virtual std::shared_ptr<const ScanLayout> scan_layout(const uint8_t* codes, size_t n) const;
  // For kPrefixDecodable codecs: decodes dimensions [0, m) of n rows whose codes start `stride`
  // bytes apart, reading only their leading bytes; out: n x m. Throws Error otherwise.
  virtual void decode_prefix(const uint8_t* codes, size_t n, size_t stride, size_t m, float* out) const;
};

enum class StageKind : uint8_t { transform, quantizer };

// One codec as data: listed in codecs/registry.cc.
struct CodecDescriptor {
  const char* name;
  const char* description;  // one line
  StageKind kind;
  uint32_t capabilities;
  std::vector<ParamSpec> params;
  std::unique_ptr<Stage> (*create)(const CodecArgs& args);
  // Spec strings `vecpack tune` tries for this codec; empty: the codec's name alone.
  std::vector<const char*> tune_grid = {};
  // How many queries one scorer serves best. Search hands larger batches out in tiles of this
  // size, one worker per tile over all rows; smaller ones to one scorer while workers split the
  // rows. Scorers that decode rows amortise the decoding over many queries (1024); scorers with
  // per-query lookup tables keep fewer tables hot (128).
  size_t query_tile = 1024;
};

// A codec chain built from a spec string: transforms then one quantizer. Movable, not copyable.
class Codec {
 public:
  explicit Codec(std::string_view spec);  // throws SpecError
  Codec(Codec&&) noexcept;
  Codec& operator=(Codec&&) noexcept;
  ~Codec();

  std::string spec() const;   // canonical, every argument spelled out
  bool trained() const;
  size_t dim() const;         // input (and decoded) dimension
  size_t code_size() const;   // bytes per row
  uint32_t capabilities() const;  // of the quantizer, plus kTransform if the chain has one

  void train(const float* x, size_t n, size_t d, const TrainOptions& options = {});
  // first_row: the position of x's first row in its table, for codecs that place rows by
  // position (kSharedParameters); the others ignore it.
  void encode(const float* x, size_t n, uint8_t* codes, unsigned threads = 0, size_t first_row = 0) const;
  void decode(const uint8_t* codes, size_t n, float* x, size_t first_row = 0) const;
  // Queries are in the input space; the chain applies its transforms to them, and scores are
  // computed in the quantizer's (transformed) space.
  std::unique_ptr<CodeScorer> scorer(const float* queries, size_t nq, Metric metric) const;
  std::unique_ptr<CodeScorer> upper_bound_scorer(const float* queries, size_t nq, Metric metric) const;  // may be null
  // Queries as the quantizer sees them: nq x dim() in, nq x quantizer().dim_in() out, through
  // every transform and, for cos, scaled to unit length after them.
  std::vector<float> transform_queries(const float* queries, size_t nq, Metric metric) const;
  const Quantizer& quantizer() const;  // the last stage
  // See kNeedsKeys and Quantizer::bind_keys; vector_for_key reconstructs through the transforms.
  void bind_keys(KeyLookup keys);
  std::optional<std::vector<float>> vector_for_key(std::string_view key) const;

  std::vector<uint8_t> serialize() const;
  static Codec load(const uint8_t* data, size_t size);  // throws FormatError

  size_t stage_count() const;
  const Stage& stage(size_t i) const;

 private:
  Codec();
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace vecpack
