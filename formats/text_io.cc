#include "text_io.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>

#include "vecpack/errors.h"

namespace vecpack::io {
namespace {

constexpr unsigned kGzipBufferBytes = 256 * 1024;

gzFile as_gz(void* handle) { return static_cast<gzFile>(handle); }

// errno for a failed zlib call, or 0 when zlib itself reported the problem.
int gz_errno(gzFile gz, std::string& message) {
  int code = Z_OK;
  const char* text = gzerror(gz, &code);
  message = text ? text : "";
  return code == Z_ERRNO ? (errno ? errno : EIO) : 0;
}

}  // namespace

// ------------------------------------------------------------------------------------ input

InputFile::InputFile(std::string path, size_t buffer_size) : path_(std::move(path)) {
  fd_ = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd_ < 0) throw IoError(path_, "open", errno);
  struct stat info {};
  if (::fstat(fd_, &info) != 0) {
    int error = errno;
    ::close(fd_);
    throw IoError(path_, "stat", error);
  }
  if (S_ISDIR(info.st_mode)) {
    ::close(fd_);
    throw IoError(path_, "read", EISDIR);
  }
  file_size_ = static_cast<uint64_t>(info.st_size);

  unsigned char magic[2] = {0, 0};
  ssize_t got = ::pread(fd_, magic, sizeof magic, 0);
  if (got == 2 && magic[0] == 0x1f && magic[1] == 0x8b) {
    gzFile gz = gzdopen(fd_, "rb");
    if (!gz) {
      ::close(fd_);
      throw IoError(path_, "open", errno ? errno : ENOMEM);
    }
    gzbuffer(gz, kGzipBufferBytes);
    gz_ = gz;
  }
  // A small file gets a buffer of its size (plus the byte that finds its end), not the full
  // buffer_size: many small inputs are read in a row (tests, fuzzing, shards of a folder).
  // Gzip content may be larger than the file; the buffer grows when a line needs it.
  const uint64_t expected = !S_ISREG(info.st_mode) ? buffer_size : gz_ ? file_size_ * 4 + 4096 : file_size_ + 1;
  buffer_.resize(std::max<size_t>(64, std::min<uint64_t>(buffer_size, expected)));
  try {
    if (peek(3) == "\xEF\xBB\xBF") skip(3);
  } catch (...) {
    if (gz_) {
      gzclose_r(as_gz(gz_));
    } else {
      ::close(fd_);
    }
    throw;
  }
}

InputFile::~InputFile() {
  if (gz_) {
    gzclose_r(as_gz(gz_));
  } else if (fd_ >= 0) {
    ::close(fd_);
  }
}

uint64_t InputFile::disk_position() const {
  if (gz_) {
    z_off_t offset = gzoffset(as_gz(gz_));
    return offset < 0 ? 0 : static_cast<uint64_t>(offset);
  }
  return consumed_;
}

size_t InputFile::read_raw(char* out, size_t size) {
  if (gz_) {
    gzFile gz = as_gz(gz_);
    int n = gzread(gz, out, static_cast<unsigned>(std::min<size_t>(size, INT_MAX / 2)));
    // A cut stream ends like a whole one (gzread returns 0); only gzerror tells them apart.
    int code = Z_OK;
    if (n <= 0) gzerror(gz, &code);
    std::string message;
    if (n < 0 || code != Z_OK) {
      if (int error = gz_errno(gz, message)) throw IoError(path_, "read", error);
      throw ParseError(path_, line_number_ + 1, 0, "damaged or truncated gzip data: " + message);
    }
    return static_cast<size_t>(n);
  }
  for (;;) {
    ssize_t n = ::read(fd_, out, std::min<size_t>(size, size_t{1} << 30));
    if (n >= 0) return static_cast<size_t>(n);
    if (errno != EINTR) throw IoError(path_, "read", errno);
  }
}

bool InputFile::fill() {
  if (eof_) return false;
  if (begin_ > 0) {
    std::memmove(buffer_.data(), buffer_.data() + begin_, available());
    end_ -= begin_;
    begin_ = 0;
  }
  if (end_ == buffer_.size()) buffer_.resize(buffer_.size() * 2);
  size_t n = read_raw(buffer_.data() + end_, buffer_.size() - end_);
  if (n == 0) {
    eof_ = true;
    return false;
  }
  end_ += n;
  return true;
}

std::string_view InputFile::peek(size_t size) {
  while (available() < size && fill()) {
  }
  return {buffer_.data() + begin_, std::min(size, available())};
}

int InputFile::peek_byte() {
  if (available() == 0 && !fill()) return -1;
  return static_cast<unsigned char>(buffer_[begin_]);
}

void InputFile::skip(size_t size) {
  size = std::min(size, available());
  begin_ += size;
  consumed_ += size;
}

bool InputFile::read_until(char delim, size_t max_length, std::string_view& token, bool& terminated) {
  size_t scanned = 0;
  for (;;) {
    const char* start = buffer_.data() + begin_;
    size_t limit = std::min(available(), max_length);
    if (limit > scanned) {
      if (auto* hit = static_cast<const char*>(std::memchr(start + scanned, delim, limit - scanned))) {
        size_t length = static_cast<size_t>(hit - start);
        token = {start, length};
        begin_ += length + 1;
        consumed_ += length + 1;
        terminated = true;
        return true;
      }
      scanned = limit;
    }
    if (scanned >= max_length || !fill()) {
      if (available() == 0) return false;
      size_t length = std::min(available(), max_length);
      token = {buffer_.data() + begin_, length};
      begin_ += length;
      consumed_ += length;
      terminated = false;
      return true;
    }
  }
}

bool InputFile::next_line(std::string_view& line, size_t max_length) {
  bool terminated = false;
  // One byte more than allowed tells an over-long line from one of exactly max_length.
  size_t cap = max_length == SIZE_MAX ? max_length : max_length + 1;
  if (!read_until('\n', cap, line, terminated)) return false;
  ++line_number_;
  if (!terminated && line.size() > max_length) {
    throw ParseError(path_, line_number_, 0,
                     "line is longer than " + std::to_string(max_length) + " bytes (is this a text file?)");
  }
  unterminated_ = !terminated;
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  return true;
}

size_t InputFile::read(void* out, size_t size) {
  char* target = static_cast<char*>(out);
  size_t done = 0;
  while (done < size) {
    if (available() == 0) {
      // Large reads bypass the buffer.
      if (size - done >= buffer_.size() && !eof_) {
        size_t n = read_raw(target + done, size - done);
        if (n == 0) {
          eof_ = true;
          break;
        }
        done += n;
        consumed_ += n;
        continue;
      }
      if (!fill()) break;
    }
    size_t take = std::min(available(), size - done);
    std::memcpy(target + done, buffer_.data() + begin_, take);
    begin_ += take;
    consumed_ += take;
    done += take;
  }
  return done;
}

// ------------------------------------------------------------------------------------ output

OutputFile::OutputFile(std::string path, size_t buffer_size)
    : file_(path), buffer_(std::max<size_t>(buffer_size, 4 * kMaxNumberChars)) {
  if (ends_with_gz(path)) {
    deflater_ = std::make_unique<z_stream>();
    // windowBits 15 + 16: a gzip wrapper, readable by gzip and gzread.
    if (deflateInit2(deflater_.get(), Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
      deflater_.reset();
      throw IoError(path, "cannot start gzip compression");
    }
    compressed_.resize(kGzipBufferBytes);
  }
}

OutputFile::~OutputFile() {
  if (deflater_) deflateEnd(deflater_.get());
}

void OutputFile::write_compressed(const char* data, size_t size, int mode) {
  z_stream& stream = *deflater_;
  // zlib counts in 32-bit units; feed large blocks in pieces.
  do {
    size_t piece = std::min<size_t>(size, size_t{1} << 30);
    stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data));
    stream.avail_in = static_cast<uInt>(piece);
    int piece_mode = piece == size ? mode : Z_NO_FLUSH;
    int result;
    do {
      stream.next_out = reinterpret_cast<Bytef*>(compressed_.data());
      stream.avail_out = static_cast<uInt>(compressed_.size());
      result = deflate(&stream, piece_mode);
      if (result == Z_STREAM_ERROR) throw IoError(file_.temp_path(), "gzip compression failed");
      file_.write(compressed_.data(), compressed_.size() - stream.avail_out);
    } while (stream.avail_out == 0 || (piece_mode == Z_FINISH && result != Z_STREAM_END));
    data += piece;
    size -= piece;
  } while (size > 0);
}

void OutputFile::flush() {
  if (used_ == 0) return;
  if (deflater_) {
    write_compressed(buffer_.data(), used_, Z_NO_FLUSH);
  } else {
    file_.write(buffer_.data(), used_);
  }
  used_ = 0;
}

void OutputFile::write(const void* data, size_t size) {
  const char* bytes = static_cast<const char*>(data);
  if (size <= buffer_.size() - used_) {
    std::memcpy(buffer_.data() + used_, bytes, size);
    used_ += size;
    return;
  }
  flush();
  if (size < buffer_.size()) {
    std::memcpy(buffer_.data(), bytes, size);
    used_ = size;
    return;
  }
  // Larger than the buffer: hand it over directly.
  if (deflater_) {
    write_compressed(bytes, size, Z_NO_FLUSH);
  } else {
    file_.write(bytes, size);
  }
}

void OutputFile::commit() {
  flush();
  if (deflater_) {
    write_compressed(buffer_.data(), 0, Z_FINISH);
    deflateEnd(deflater_.get());
    deflater_.reset();
  }
  file_.commit();
}

// ------------------------------------------------------------------------------------ text

const char* parse_float_slow(const char* first, const char* last, float& value) {
  const char* end = first;
  while (end != last && !is_blank(*end)) ++end;
  const char* p = first;
  if (p != end && *p == '+') {
    ++p;
    if (p == end || *p == '-' || *p == '+') return nullptr;
  }
  if (p == end) return nullptr;
  auto [stop, error] = std::from_chars(p, end, value);
  if (stop != end) return nullptr;
  if (error == std::errc()) return end;
  if (error != std::errc::result_out_of_range) return nullptr;
  // Beyond float range: round as strtof would, to zero (or a subnormal) or to infinity.
  double wide = 0;
  auto [wide_stop, wide_error] = std::from_chars(p, end, wide);
  if (wide_error == std::errc() && std::fabs(wide) <= std::numeric_limits<float>::max()) {
    value = static_cast<float>(wide);
    return end;
  }
  bool negative = *p == '-';
  if (wide_error == std::errc()) {
    value = negative ? -std::numeric_limits<float>::infinity() : std::numeric_limits<float>::infinity();
    return end;
  }
  const char* exponent = std::find_if(p, end, [](char c) { return c == 'e' || c == 'E'; });
  bool tiny = exponent != end && exponent + 1 != end && exponent[1] == '-';
  float magnitude = tiny ? 0.0f : std::numeric_limits<float>::infinity();
  value = negative ? -magnitude : magnitude;
  return end;
}

size_t parse_floats(const char* first, const char* last, float* values, size_t capacity, const char*& bad) {
  bad = nullptr;
  size_t count = 0;
  const char* p = first;
  for (;;) {
    while (p != last && is_blank(*p)) ++p;
    if (p == last) return count;
    if (count < capacity) {
      const char* stop = parse_float(p, last, values[count]);
      if (!stop) {
        bad = p;
        return count;
      }
      p = stop;
    } else {
      while (p != last && !is_blank(*p)) ++p;
    }
    ++count;
  }
}

const char* nth_field(const char* first, const char* last, size_t index) {
  const char* p = first;
  for (size_t i = 0;; ++i) {
    while (p != last && is_blank(*p)) ++p;
    if (p == last || i == index) return p;
    while (p != last && !is_blank(*p)) ++p;
  }
}

bool parse_count_dim(std::string_view line, int64_t& count, int64_t& dim) {
  const char* p = line.data();
  const char* last = p + line.size();
  while (last != p && (is_blank(last[-1]) || last[-1] == '\r')) --last;
  int64_t numbers[2];
  for (int64_t& number : numbers) {
    while (p != last && is_blank(*p)) ++p;
    auto [stop, error] = std::from_chars(p, last, number);
    if (error != std::errc() || (stop != last && !is_blank(*stop))) return false;
    p = stop;
  }
  while (p != last && is_blank(*p)) ++p;
  if (p != last) return false;
  count = numbers[0];
  dim = numbers[1];
  return true;
}

std::string_view first_line(std::string_view head, bool& complete) {
  size_t end = head.find('\n');
  complete = end != std::string_view::npos;
  std::string_view line = head.substr(0, complete ? end : head.size());
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  return line;
}

size_t invalid_utf8_offset(std::string_view text) noexcept {
  const auto* bytes = reinterpret_cast<const unsigned char*>(text.data());
  size_t size = text.size(), i = 0;
  while (i < size) {
    unsigned char lead = bytes[i];
    if (lead < 0x80) {
      ++i;
      continue;
    }
    size_t length;
    unsigned char low = 0x80, high = 0xBF;  // allowed range of the second byte
    if (lead >= 0xC2 && lead <= 0xDF) {
      length = 2;
    } else if (lead >= 0xE0 && lead <= 0xEF) {
      length = 3;
      if (lead == 0xE0) low = 0xA0;   // overlong
      if (lead == 0xED) high = 0x9F;  // UTF-16 surrogates
    } else if (lead >= 0xF0 && lead <= 0xF4) {
      length = 4;
      if (lead == 0xF0) low = 0x90;   // overlong
      if (lead == 0xF4) high = 0x8F;  // above U+10FFFF
    } else {
      return i;
    }
    if (i + length > size) return i;
    if (bytes[i + 1] < low || bytes[i + 1] > high) return i;
    for (size_t k = 2; k < length; ++k) {
      if ((bytes[i + k] & 0xC0) != 0x80) return i;
    }
    i += length;
  }
  return std::string_view::npos;
}

void throw_not_a_number(const std::string& path, uint64_t line, const char* line_begin, const char* field,
                        const char* line_end, size_t index, size_t dim) {
  const char* field_end = field;
  while (field_end != line_end && !is_blank(*field_end)) ++field_end;
  throw ParseError(path, line, static_cast<uint64_t>(field - line_begin) + 1,
                   quoted(std::string_view(field, static_cast<size_t>(field_end - field))) + " is not a number (value " +
                       std::to_string(index + 1) + " of " + std::to_string(dim) + ")");
}

void check_key_utf8(const std::string& path, uint64_t line, std::string_view key, std::string_view where) {
  size_t bad = invalid_utf8_offset(key);
  if (bad == std::string_view::npos) return;
  throw ParseError(path, line, line ? bad + 1 : 0,
                   "the word " + quoted(key) + " is not valid UTF-8 (byte " + std::to_string(bad + 1) + ")" +
                       std::string(where));
}

std::string_view utf8_key(const std::string& path, uint64_t line, std::string_view key, UnicodeErrors mode,
                          std::string& scratch, std::string_view where) {
  size_t bad = invalid_utf8_offset(key);
  if (bad == std::string_view::npos) return key;
  if (mode == UnicodeErrors::strict) check_key_utf8(path, line, key, where);
  scratch.assign(key.substr(0, bad));
  std::string_view rest = key.substr(bad);
  while (!rest.empty()) {
    // Drop one invalid byte (or the invalid sequence's lead) and copy what is valid after it.
    if (mode == UnicodeErrors::replace) scratch += "\xEF\xBF\xBD";
    rest.remove_prefix(1);
    while (!rest.empty() && (static_cast<unsigned char>(rest[0]) & 0xC0) == 0x80) rest.remove_prefix(1);
    size_t next_bad = invalid_utf8_offset(rest);
    size_t valid = next_bad == std::string_view::npos ? rest.size() : next_bad;
    scratch.append(rest.substr(0, valid));
    rest.remove_prefix(valid);
  }
  if (scratch.empty())
    throw ParseError(path, line, 0, "the word " + quoted(key) + " has no valid UTF-8 left to keep" + std::string(where));
  return scratch;
}

void warn_count_mismatch(const std::string& path, uint64_t header_rows, uint64_t found) {
  std::fprintf(stderr, "warning: header says %llu rows, file has %llu (read them all) in %s\n",
               static_cast<unsigned long long>(header_rows), static_cast<unsigned long long>(found), path.c_str());
}

std::string non_finite_message(float value, size_t index, uint64_t row, std::string_view key) {
  return std::string(std::isnan(value) ? "NaN" : "infinity") + " in value " + std::to_string(index + 1) + " of row " +
         std::to_string(row) + " (word " + quoted(key) + "); non-finite values are rejected unless allow_nan is set";
}

ProgressScope::~ProgressScope() {
  if (!sink_) return;
  try {
    sink_->end();
  } catch (...) {
    // A failing progress display must not turn one error into termination.
  }
}

std::string_view row_key(const Table& table, size_t row, std::string& scratch) {
  if (table.has_keys()) return table.key(row);
  scratch = std::to_string(row);
  return scratch;
}

void check_writable_key(std::string_view key, size_t row, const char* format, bool blanks_allowed) {
  const char* problem = nullptr;
  if (key.empty()) {
    problem = "is empty";
  } else if (key.find_first_of("\n\r") != std::string_view::npos) {
    problem = "contains a line break";
  } else if (!blanks_allowed && key.find_first_of(" \t") != std::string_view::npos) {
    problem = "contains a space or tab";
  } else if (io::is_blank(key.front())) {
    problem = "starts with a blank, which a reader cannot tell from an indented line";
  } else if (invalid_utf8_offset(key) != std::string_view::npos) {
    problem = "is not valid UTF-8 (its readers, vecpack's included, refuse it)";
  }
  if (problem) {
    throw Error("cannot write row " + std::to_string(row) + " as " + format + ": its key " + quoted(key) + " " +
                problem);
  }
}

void write_text_rows(const Table& table, OutputFile& out, ProgressScope& progress, const char* format,
                     bool blanks_allowed, bool headerless) {
  const size_t dim = table.dim();
  std::string scratch;
  for_each_row_block(table, [&](size_t first, size_t count, const float* values) {
    for (size_t r = 0; r < count; ++r) {
      std::string_view key = row_key(table, first + r, scratch);
      check_writable_key(key, first + r, format, blanks_allowed);
      out.write(key);
      const float* row = values + r * dim;
      if (headerless && first + r == 0 && dim == 1) {
        char text[64];
        const char* end = std::to_chars(text, text + sizeof text, row[0]).ptr;
        const std::string_view value(text, static_cast<size_t>(end - text));
        int64_t count_field = 0, dim_field = 0;
        out.put(' ');
        out.write(value);
        if (parse_count_dim(std::string(key) + " " + std::string(value), count_field, dim_field)) out.write(".0");
        out.put('\n');
        continue;
      }
      for (size_t j = 0; j < dim; ++j) {
        out.put(' ');
        out.write_float(row[j]);
      }
      out.put('\n');
    }
    progress.advance(first + count);
  });
}

std::string human_size(uint64_t bytes) {
  const char* units[] = {"bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  double value = static_cast<double>(bytes);
  int unit = 0;
  while (value >= 1024 && unit < 6) value /= 1024, ++unit;
  char text[48];
  std::snprintf(text, sizeof text, unit ? "%.1f %s" : "%.0f %s", value, units[unit]);
  return text;
}

MemoryBudget::MemoryBudget(std::string path, const ReadOptions& options)
    : path_(std::move(path)),
      limit_(options.max_memory ? options.max_memory : default_memory_limit()),
      default_limit_(options.max_memory == 0) {}

void MemoryBudget::require(uint64_t bytes, const std::string& what) const {
  if (bytes <= limit_) return;
  throw MemoryLimitError(path_ + ": the table would need " + human_size(bytes) + " (" + what +
                         "), more than the memory limit of " + human_size(limit_) +
                         (default_limit_ ? " (80% of the memory available)" : "") +
                         "; raise it with --max-memory (Python: max_memory=), or read fewer rows with --limit");
}

void MemoryBudget::require_floats(uint64_t rows, uint64_t values_per_row, const std::string& what) const {
  uint64_t bytes = 0;
  if (__builtin_mul_overflow(rows, values_per_row, &bytes) || __builtin_mul_overflow(bytes, uint64_t{4}, &bytes)) {
    bytes = ~uint64_t{0};
  }
  require(bytes, what);
}

void MemoryBudget::check_growth() {
  while (next_check_ <= total_) next_check_ *= 2;
  require(total_, std::to_string(rows_) + " rows read so far");
}

void warn_duplicates(const std::string& path, size_t count) {
  if (count == 0) return;
  std::fprintf(stderr, "warning: %zu duplicate key%s skipped (first kept) in %s\n", count, count == 1 ? "" : "s",
               path.c_str());
}

std::string quoted(std::string_view text, size_t max_chars) {
  // Messages are UTF-8: control bytes and bytes that are not valid UTF-8 are shown as \xHH.
  std::string out = "'";
  size_t i = 0;
  auto escape = [&](unsigned char c) {
    char escaped[8];
    std::snprintf(escaped, sizeof escaped, "\\x%02X", c);
    out += escaped;
  };
  while (i < text.size() && i < max_chars) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    if (c < 0x20 || c == 0x7F) {
      escape(c);
      ++i;
    } else if (c < 0x80) {
      out += static_cast<char>(c);
      ++i;
    } else {
      size_t length = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
      std::string_view sequence = text.substr(i, length);
      if (sequence.size() == length && invalid_utf8_offset(sequence) == std::string_view::npos) {
        out += sequence;
        i += length;
      } else {
        escape(c);
        ++i;
      }
    }
  }
  if (text.size() > max_chars) out += "...";
  out += "'";
  return out;
}

}  // namespace vecpack::io
