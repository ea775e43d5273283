// Buffered file input and atomic file output shared by the readers and writers in formats/.
// Input reads plain or gzip-compressed files alike (detected by the gzip magic, whatever the
// name); output compresses when the path ends in ".gz" and replaces the target atomically.
#pragma once

#include <algorithm>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "atomic_file.h"
#include "vecpack/formats.h"
#include "vecpack/table.h"
#include "vecpack/types.h"

struct z_stream_s;

namespace vecpack::io {

// Sequential reader over a plain or gzip file. A UTF-8 byte order mark at the very start is
// skipped: every format read through it is text or begins with a text header. Views returned
// by the read functions stay valid until the next read call.
class InputFile {
 public:
  explicit InputFile(std::string path, size_t buffer_size = size_t{1} << 20);
  ~InputFile();
  InputFile(const InputFile&) = delete;
  InputFile& operator=(const InputFile&) = delete;

  const std::string& path() const noexcept { return path_; }
  bool compressed() const noexcept { return gz_ != nullptr; }
  uint64_t file_size() const noexcept { return file_size_; }
  // Content bytes (decompressed) consumed so far, including a skipped byte order mark.
  uint64_t position() const noexcept { return consumed_; }
  // Bytes of the file on disk read so far; comparable with file_size() for progress.
  uint64_t disk_position() const;

  // Up to `size` next bytes without consuming them (fewer only at the end of input).
  std::string_view peek(size_t size);

  // The next line without its '\n' and a trailing '\r'. False at the end of input.
  // A line longer than max_length is a ParseError.
  bool next_line(std::string_view& line, size_t max_length = size_t{256} << 20);
  uint64_t line_number() const noexcept { return line_number_; }  // 1-based, of the last line
  bool last_line_unterminated() const noexcept { return unterminated_; }

  // Bytes up to the next `delim` (consumed, not included). False when no byte is left.
  // `terminated` is false when the input ended, or max_length bytes passed, before `delim`.
  bool read_until(char delim, size_t max_length, std::string_view& token, bool& terminated);
  // Copies up to `size` bytes; returns how many (fewer only at the end of input).
  size_t read(void* out, size_t size);
  // The next byte, or -1 at the end of input; not consumed.
  int peek_byte();
  void skip(size_t size);  // at most what is buffered after peek/peek_byte

 private:
  size_t available() const noexcept { return end_ - begin_; }
  // Reads more input after the unconsumed bytes, growing the buffer when it is full.
  // Returns false at the end of input.
  bool fill();
  size_t read_raw(char* out, size_t size);

  std::string path_;
  int fd_ = -1;
  void* gz_ = nullptr;  // gzFile when the content is compressed
  uint64_t file_size_ = 0;
  std::vector<char> buffer_;
  size_t begin_ = 0, end_ = 0;
  bool eof_ = false;
  uint64_t consumed_ = 0;
  uint64_t line_number_ = 0;
  bool unterminated_ = false;
};

// Buffered output to an AtomicFile (PATH.tmp-XXXXXX beside PATH, renamed into place by
// commit(); removed when destroyed uncommitted), gzip-compressed when the path ends in ".gz".
class OutputFile {
 public:
  explicit OutputFile(std::string path, size_t buffer_size = size_t{1} << 20);
  ~OutputFile();
  OutputFile(const OutputFile&) = delete;
  OutputFile& operator=(const OutputFile&) = delete;

  void write(const void* data, size_t size);
  void write(std::string_view text) { write(text.data(), text.size()); }
  void put(char c) {
    if (used_ == buffer_.size()) flush();
    buffer_[used_++] = c;
  }
  // Shortest text that reads back to the same float (std::to_chars).
  void write_float(float value) {
    if (buffer_.size() - used_ < kMaxNumberChars) flush();
    used_ = std::to_chars(buffer_.data() + used_, buffer_.data() + buffer_.size(), value).ptr -
            buffer_.data();
  }
  void write_integer(uint64_t value) {
    if (buffer_.size() - used_ < kMaxNumberChars) flush();
    used_ = std::to_chars(buffer_.data() + used_, buffer_.data() + buffer_.size(), value).ptr -
            buffer_.data();
  }
  // Finishes the file and moves it into place; until then the final path is untouched.
  void commit();

 private:
  static constexpr size_t kMaxNumberChars = 64;
  void flush();
  void write_compressed(const char* data, size_t size, int mode);

  AtomicFile file_;
  std::unique_ptr<z_stream_s> deflater_;  // set when compressing
  std::vector<char> compressed_;
  std::vector<char> buffer_;
  size_t used_ = 0;
};

inline bool is_blank(char c) noexcept { return c == ' ' || c == '\t'; }

inline bool ends_with_gz(std::string_view path) noexcept {
  return path.size() >= 3 && (path.substr(path.size() - 3) == ".gz" || path.substr(path.size() - 3) == ".GZ");
}

// Parses the number at `first`, which must end at `last` or before a blank. Accepts a leading
// '+' and, as strtof does, values that round to zero or overflow to infinity. Returns the end
// of the number, or nullptr when the field is not exactly one number.
const char* parse_float_slow(const char* first, const char* last, float& value);
inline const char* parse_float(const char* first, const char* last, float& value) {
  auto [end, error] = std::from_chars(first, last, value);
  if (error == std::errc() && (end == last || is_blank(*end))) [[likely]] return end;
  return parse_float_slow(first, last, value);
}

// Parses the blank-separated numbers in [first, last) into values[0, capacity). Returns the
// number of fields, counting (without parsing) those beyond capacity. Stops at the first field
// that is not a number: `bad` then points at it and the count is its index; else bad is null.
size_t parse_floats(const char* first, const char* last, float* values, size_t capacity, const char*& bad);
// The start of the blank-separated field with 0-based index `index` in [first, last), or last.
const char* nth_field(const char* first, const char* last, size_t index);

// True when `line` is a "count dim" header: two integers separated by blanks.
bool parse_count_dim(std::string_view line, int64_t& count, int64_t& dim);

// The first line in head (without '\n' and '\r'); `complete` is false when head ends first.
std::string_view first_line(std::string_view head, bool& complete);

// Offset of the first byte that is not part of valid UTF-8 (overlong forms, surrogates and
// code points above U+10FFFF are invalid), or npos when the text is valid.
size_t invalid_utf8_offset(std::string_view text) noexcept;

// Errors shared by the text readers; line and column are 1-based, 0 when unknown (binary).
// `field` points into the line [line_begin, line_end) at a field that is not a number.
[[noreturn]] void throw_not_a_number(const std::string& path, uint64_t line, const char* line_begin,
                                     const char* field, const char* line_end, size_t index, size_t dim);
// Throws ParseError when `key` is not valid UTF-8; `where` ends the message (e.g. an offset).
void check_key_utf8(const std::string& path, uint64_t line, std::string_view key, std::string_view where = {});
// The key as the reader should store it under `mode`: `key` itself when valid UTF-8; else a
// ParseError (strict) or a repaired copy in `scratch` (invalid sequences replaced by U+FFFD, or
// dropped). A key that repairs to nothing is a ParseError too.
std::string_view utf8_key(const std::string& path, uint64_t line, std::string_view key, UnicodeErrors mode,
                          std::string& scratch, std::string_view where = {});
// The one warning line for a row count that disagrees with the header under `lenient`.
void warn_count_mismatch(const std::string& path, uint64_t header_rows, uint64_t found);
// "NaN in value 3 of row 7 (word 'cat'); ..." for a value rejected without allow_nan.
std::string non_finite_message(float value, size_t index, uint64_t row, std::string_view key);

// Progress of one task; silent without a sink. end() runs on destruction, also on errors.
class ProgressScope {
 public:
  ProgressScope(Progress* sink, std::string_view task, uint64_t total) : sink_(sink) {
    if (sink_) sink_->begin(task, total);
  }
  ~ProgressScope();
  ProgressScope(const ProgressScope&) = delete;
  ProgressScope& operator=(const ProgressScope&) = delete;
  void advance(uint64_t done) {
    if (sink_) sink_->advance(done);
  }

 private:
  Progress* sink_;
};

// Calls fn(first_row, row_count, values) over the decoded rows of `table`, a block at a time
// (values: row_count x dim), so writers never hold the whole table decoded.
template <class Fn>
void for_each_row_block(const Table& table, Fn&& fn) {
  const size_t dim = table.dim(), rows = table.size();
  const size_t block_rows = std::max<size_t>(1, std::min<size_t>(4096, (size_t{1} << 22) / std::max<size_t>(dim, 1)));
  std::vector<float> block(std::min(block_rows, rows) * dim);
  for (size_t first = 0; first < rows; first += block_rows) {
    size_t count = std::min(block_rows, rows - first);
    if (count && dim) table.reconstruct(first, count, block.data());
    fn(first, count, static_cast<const float*>(block.data()));
  }
}

// The key a text writer puts before row `row`: the table's key, or the row number when the
// table has none. `scratch` holds the digits.
std::string_view row_key(const Table& table, size_t row, std::string& scratch);

// Throws Error unless `key` can be written as the word of a line of `format`: not empty, no
// line breaks, (unless blanks_allowed) no spaces or tabs, and valid UTF-8.
void check_writable_key(std::string_view key, size_t row, const char* format, bool blanks_allowed);

// Writes every row as "key v1 ... vd\n" with shortest round-trip floats, refusing keys that
// `format` cannot hold (see check_writable_key); reports rows done to `progress`. In a
// `headerless` format, a first line of two integers (an integer key, one integral value) would
// read as word2vec's "count dim" header, so its value is written as "7.0" rather than "7".
void write_text_rows(const Table& table, OutputFile& out, ProgressScope& progress, const char* format,
                     bool blanks_allowed, bool headerless = false);

// The memory a reader may allocate for the table it builds (ReadOptions::max_memory). Readers
// check what an input declares (rows x dim, pools, shapes) with require() before allocating,
// and count rows with add_row() where nothing is declared (gzip text grows as it is read).
class MemoryBudget {
 public:
  MemoryBudget(std::string path, const ReadOptions& options);
  uint64_t limit() const noexcept { return limit_; }
  // Throws MemoryLimitError when `bytes` exceed the limit; `what` says where the size comes
  // from, e.g. "the header's 1000000000 rows x 300 floats".
  void require(uint64_t bytes, const std::string& what) const;
  // rows x values_per_row floats (with overflow saturating), checked as require() does.
  void require_floats(uint64_t rows, uint64_t values_per_row, const std::string& what) const;
  // One more row of `bytes` read; the running total is checked each time it doubles.
  void add_row(uint64_t bytes) {
    total_ += bytes;
    ++rows_;
    if (total_ >= next_check_) check_growth();
  }

 private:
  void check_growth();
  std::string path_;
  uint64_t limit_;
  bool default_limit_;
  uint64_t total_ = 0, rows_ = 0, next_check_ = uint64_t{1} << 20;
};

// "1.5 GiB"
std::string human_size(uint64_t bytes);

// The one warning line readers print when a file repeats keys (TableBuilder keeps the first).
void warn_duplicates(const std::string& path, size_t count);

// Text for messages: the first `max_chars` bytes, with control bytes escaped.
std::string quoted(std::string_view text, size_t max_chars = 40);

}  // namespace vecpack::io
