#include "formats/word2vec.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "text_io.h"
#include "vecpack/errors.h"

namespace vecpack {
namespace {

constexpr int64_t kMaxDim = int64_t{kMaxDimension};
// A binary word is cut at the first space; no real word is this long, so a longer run means
// the file is not binary word2vec (or is damaged) and reading it whole would only waste memory.
constexpr size_t kMaxWordBytes = size_t{1} << 16;
constexpr uint64_t kProgressRows = uint64_t{1} << 14;

struct Header {
  uint64_t rows = 0;
  size_t dim = 0;
};

Header read_header(io::InputFile& in) {
  const std::string& path = in.path();
  std::string_view line;
  if (!in.next_line(line)) throw ParseError(path, 1, 0, "the file is empty; expected a header 'count dim'");
  int64_t count = 0, dim = 0;
  if (!io::parse_count_dim(line, count, dim)) {
    throw ParseError(path, 1, 1, "expected a header of two integers 'count dim', found " + io::quoted(line));
  }
  const char* dim_field = io::nth_field(line.data(), line.data() + line.size(), 1);
  uint64_t dim_column = static_cast<uint64_t>(dim_field - line.data()) + 1;
  if (count < 0) throw ParseError(path, 1, 1, "the header's row count is negative (" + std::to_string(count) + ")");
  if (dim <= 0) {
    throw ParseError(path, 1, dim_column,
                     "the header's dimension must be positive, found " + std::to_string(dim));
  }
  if (dim > kMaxDim) {
    throw ParseError(path, 1, dim_column,
                     "the header's dimension " + std::to_string(dim) + " is larger than the supported " +
                         std::to_string(kMaxDim));
  }
  return {static_cast<uint64_t>(count), static_cast<size_t>(dim)};
}

// Rows worth reserving: what the header promises, capped by what the file can hold so that a
// damaged header cannot make us allocate gigabytes.
size_t reserve_hint(const Header& header, const ReadOptions& options, const io::InputFile& in,
                    uint64_t min_row_bytes) {
  uint64_t rows = header.rows;
  if (options.limit) rows = std::min<uint64_t>(rows, options.limit);
  uint64_t fits = in.compressed() ? (uint64_t{1} << 20) : in.file_size() / min_row_bytes + 1;
  return static_cast<size_t>(std::min(rows, fits));
}

// The header's rows x dim floats must fit the memory limit before a row is read. Under
// lenient the header may be wrong, so only the rows actually read are counted.
void check_declared_size(const io::MemoryBudget& budget, const Header& header, const ReadOptions& options) {
  if (options.lenient) return;
  const uint64_t rows = options.limit ? std::min<uint64_t>(header.rows, options.limit) : header.rows;
  budget.require_floats(rows, header.dim,
                        "the header's " + std::to_string(rows) + " rows x " + std::to_string(header.dim) + " floats");
}

std::string count_mismatch(uint64_t header_rows, uint64_t found) {
  return "header says " + std::to_string(header_rows) + " rows, file has " + std::to_string(found);
}

Table finish(TableBuilder& builder, const char* format, const std::string& path) {
  io::warn_duplicates(path, builder.duplicates());
  Table table = builder.finish(Metric::cos);
  table.set_source(format, path);
  return table;
}

// ------------------------------------------------------------------------------------ text

// Counts the non-blank lines left, to say how many rows a file has beyond its header's count.
uint64_t count_remaining_rows(io::InputFile& in) {
  uint64_t rows = 0;
  std::string_view line;
  while (in.next_line(line)) {
    if (line.find_first_not_of(" \t") != std::string_view::npos) ++rows;
  }
  return rows;
}

Table read_text_as(const std::string& path, const ReadOptions& options, const char* format_name) {
  io::InputFile in(path);
  io::ProgressScope progress(options.progress, "reading " + path, in.file_size());
  const Header header = read_header(in);
  const size_t dim = header.dim;
  io::MemoryBudget budget(path, options);
  check_declared_size(budget, header, options);
  TableBuilder builder(dim);
  builder.reserve(reserve_hint(header, options, in, 2 * dim));
  std::vector<float> values(dim);
  std::string key_scratch;

  uint64_t rows = 0;
  std::string_view line;
  while ((options.limit == 0 || rows < options.limit) && in.next_line(line)) {
    const char* begin = line.data();
    const char* end = begin + line.size();
    while (end != begin && io::is_blank(end[-1])) --end;  // the C tool ends lines with "v ";
    if (end == begin) continue;                             // blank lines hold no row
    const uint64_t number = in.line_number();
    if (rows == header.rows && !options.lenient) {
      throw ParseError(path, number, 0,
                       count_mismatch(header.rows, rows + 1 + count_remaining_rows(in)) + " (accept with --lenient)");
    }
    const char* key_end = begin;
    while (key_end != end && !io::is_blank(*key_end)) ++key_end;
    std::string_view key(begin, static_cast<size_t>(key_end - begin));
    if (key.empty()) throw ParseError(path, number, 1, "the line starts with a blank; expected a word first");
    key = io::utf8_key(path, number, key, options.unicode_errors, key_scratch);

    const char* bad = nullptr;
    size_t found = io::parse_floats(key_end, end, values.data(), dim, bad);
    auto column = [&](const char* p) { return static_cast<uint64_t>(p - begin) + 1; };
    if (bad) io::throw_not_a_number(path, number, begin, bad, end, found, dim);
    if (found != dim) {
      const char* at = found > dim ? io::nth_field(key_end, end, dim) : end;
      throw ParseError(path, number, column(at),
                       "expected " + std::to_string(dim) + " values after the word, found " + std::to_string(found));
    }
    if (!options.allow_nan) {
      size_t index = first_non_finite(values.data(), dim);
      if (index < dim) {
        throw ParseError(path, number, column(io::nth_field(key_end, end, index)),
                         io::non_finite_message(values[index], index, rows + 1, key));
      }
    }
    builder.add(key, values.data(), dim);
    budget.add_row(dim * sizeof(float) + key.size());
    if (++rows % kProgressRows == 0) progress.advance(in.disk_position());
  }
  if (rows != header.rows && !(options.limit && rows == options.limit)) {
    if (!options.lenient)
      throw ParseError(path, in.line_number(), 0, count_mismatch(header.rows, rows) + " (accept with --lenient)");
    io::warn_count_mismatch(path, header.rows, rows);
  }
  progress.advance(in.disk_position());
  return finish(builder, format_name, path);
}

Table read_text(const std::string& path, const ReadOptions& options) { return read_text_as(path, options, "word2vec"); }

// "count dim\n", the first line of both word2vec variants.
void write_count_header(io::OutputFile& out, size_t rows, size_t dim) {
  out.write_integer(rows);
  out.put(' ');
  out.write_integer(dim);
  out.put('\n');
}

void write_text(const Table& table, const std::string& path, const WriteOptions& options) {
  const size_t dim = table.dim();
  if (dim == 0) throw Error("cannot write " + path + " as word2vec: the table has dimension 0");
  io::OutputFile out(path);
  io::ProgressScope progress(options.progress, "writing " + path, table.size());
  write_count_header(out, table.size(), dim);
  io::write_text_rows(table, out, progress, "word2vec", false);
  out.commit();
}

// ------------------------------------------------------------------------------------ binary

void to_native_floats(float* values, size_t count) {
  if constexpr (std::endian::native == std::endian::big) {
    for (size_t i = 0; i < count; ++i) {
      values[i] = std::bit_cast<float>(__builtin_bswap32(std::bit_cast<uint32_t>(values[i])));
    }
  }
}

Table read_binary(const std::string& path, const ReadOptions& options) {
  io::InputFile in(path);
  io::ProgressScope progress(options.progress, "reading " + path, in.file_size());
  const Header header = read_header(in);
  const size_t dim = header.dim;
  const size_t row_bytes = dim * sizeof(float);
  io::MemoryBudget budget(path, options);
  check_declared_size(budget, header, options);
  TableBuilder builder(dim);
  builder.reserve(reserve_hint(header, options, in, row_bytes + 2));
  std::vector<float> values(dim);
  std::string key, key_scratch;

  uint64_t rows = 0;
  for (;;) {
    if (options.limit && rows == options.limit) break;
    // The C tool ends each vector with '\n', gensim does not: skip it before the next word.
    int next = in.peek_byte();
    while (next == '\n') {
      in.skip(1);
      next = in.peek_byte();
    }
    if (next < 0) break;
    const uint64_t word_offset = in.position();
    const std::string at = " (byte offset " + std::to_string(word_offset) + ")";
    if (rows == header.rows && !options.lenient) {
      throw ParseError(path, 0, 0,
                       "header says " + std::to_string(header.rows) + " rows, file has more data" + at +
                           " (accept with --lenient)");
    }
    std::string_view word;
    bool terminated = false;
    in.read_until(' ', kMaxWordBytes, word, terminated);
    if (!terminated) {
      if (word.size() >= kMaxWordBytes) {
        throw ParseError(path, 0, 0,
                         "row " + std::to_string(rows + 1) + " has no space within " + std::to_string(kMaxWordBytes) +
                             " bytes after its start; not binary word2vec?" + at);
      }
      throw ParseError(path, 0, 0,
                       "truncated: row " + std::to_string(rows + 1) + " has a word " + io::quoted(word) +
                           " but no vector" + at);
    }
    if (word.empty()) throw ParseError(path, 0, 0, "row " + std::to_string(rows + 1) + " has an empty word" + at);
    key.assign(io::utf8_key(path, 0, word, options.unicode_errors, key_scratch, at));  // the view dies with the next read

    const uint64_t vector_offset = in.position();
    size_t got = in.read(values.data(), row_bytes);
    if (got < row_bytes) {
      throw ParseError(path, 0, 0,
                       "truncated: row " + std::to_string(rows + 1) + " needs " + std::to_string(row_bytes) +
                           " bytes, " + std::to_string(got) + " remain (byte offset " +
                           std::to_string(vector_offset) + ")");
    }
    to_native_floats(values.data(), dim);
    if (!options.allow_nan) {
      size_t index = first_non_finite(values.data(), dim);
      if (index < dim) {
        throw ParseError(path, 0, 0,
                         io::non_finite_message(values[index], index, rows + 1, key) + " (byte offset " +
                             std::to_string(vector_offset + index * sizeof(float)) + ")");
      }
    }
    builder.add(key, values.data(), dim);
    budget.add_row(dim * sizeof(float) + key.size());
    if (++rows % kProgressRows == 0) progress.advance(in.disk_position());
  }
  if (rows != header.rows && !(options.limit && rows == options.limit)) {
    if (!options.lenient)
      throw ParseError(path, 0, 0, "truncated: " + count_mismatch(header.rows, rows) + " (accept with --lenient)");
    io::warn_count_mismatch(path, header.rows, rows);
  }
  progress.advance(in.disk_position());
  return finish(builder, "word2vec-bin", path);
}

void write_binary(const Table& table, const std::string& path, const WriteOptions& options) {
  const size_t dim = table.dim();
  if (dim == 0) throw Error("cannot write " + path + " as word2vec-bin: the table has dimension 0");
  io::OutputFile out(path);
  io::ProgressScope progress(options.progress, "writing " + path, table.size());
  write_count_header(out, table.size(), dim);
  std::string scratch;
  std::vector<float> little_endian(dim);
  io::for_each_row_block(table, [&](size_t first, size_t count, const float* values) {
    for (size_t r = 0; r < count; ++r) {
      std::string_view key = io::row_key(table, first + r, scratch);
      io::check_writable_key(key, first + r, "word2vec-bin", false);
      out.write(key);
      out.put(' ');
      std::copy_n(values + r * dim, dim, little_endian.data());
      to_native_floats(little_endian.data(), dim);  // a byte swap is its own inverse
      out.write(little_endian.data(), dim * sizeof(float));
      out.put('\n');  // as the C tool writes it
    }
    progress.advance(first + count);
  });
  out.commit();
}

// ------------------------------------------------------------------------------------ sniffing

// Whether the first row after the header holds raw float bytes. Text rows and the words of
// the rows after them are valid UTF-8 without control bytes; d binary float32 are not
// (0.1f is CD CC CC 3D, 1.0f is 00 00 80 3F).
bool has_binary_vector(std::string_view rest) {
  size_t space = rest.find(' ');
  if (space == std::string_view::npos) return false;
  std::string_view window = rest.substr(space + 1, 256);
  bool control = std::any_of(window.begin(), window.end(), [](char c) {
    return static_cast<unsigned char>(c) < 0x20 && c != '\t' && c != '\r' && c != '\n';
  });
  if (control) return true;
  size_t invalid = io::invalid_utf8_offset(window);
  return invalid != std::string_view::npos && invalid + 4 <= window.size();  // not a character cut by the window
}

// Splits head into a "count dim" header line and what follows; false without such a header.
bool split_header(const uint8_t* head, size_t size, std::string_view& rest) {
  std::string_view text(reinterpret_cast<const char*>(head), size);
  bool complete = false;
  std::string_view line = io::first_line(text, complete);
  int64_t count = 0, dim = 0;
  if (!complete || !io::parse_count_dim(line, count, dim) || count < 0 || dim <= 0) return false;
  rest = text.substr(text.find('\n') + 1);
  return true;
}

bool sniff_text(const uint8_t* head, size_t size) {
  std::string_view rest;
  if (!split_header(head, size, rest)) return false;
  return !has_binary_vector(rest);
}

bool sniff_binary(const uint8_t* head, size_t size) {
  std::string_view rest;
  if (!split_header(head, size, rest)) return false;
  return has_binary_vector(rest);
}

}  // namespace

Table read_word2vec_text(const std::string& path, const ReadOptions& options, const char* format_name) {
  return read_text_as(path, options, format_name);
}

const FormatDescriptor kWord2vecText = {
    .name = "word2vec",
    .description = "word2vec text: a 'count dim' line, then 'word v1 ... vd' per line (also fastText .vec)",
    .extensions = {".w2v", ".vec"},
    .sniff = sniff_text,
    .read = read_text,
    .write = write_text,
    .rows_by_frequency = true,
};

const FormatDescriptor kWord2vecBinary = {
    .name = "word2vec-bin",
    .description = "word2vec binary: a 'count dim' line, then per row the word, a space and d float32",
    .extensions = {".bin"},
    .sniff = sniff_binary,
    .read = read_binary,
    .write = write_binary,
    .rows_by_frequency = true,
};

}  // namespace vecpack
