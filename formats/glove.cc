#include "formats/glove.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "text_io.h"
#include "vecpack/errors.h"

namespace vecpack {
namespace {

constexpr uint64_t kProgressRows = uint64_t{1} << 14;
// A first-line key may itself contain a few blank-separated parts ("at . . ."); more than this
// and the line is not a GloVe row.
constexpr size_t kMaxSniffKeyFields = 5;

// Starts of the blank-separated fields of [begin, end).
void split_fields(const char* begin, const char* end, std::vector<const char*>& starts) {
  starts.clear();
  const char* p = begin;
  for (;;) {
    while (p != end && io::is_blank(*p)) ++p;
    if (p == end) return;
    starts.push_back(p);
    while (p != end && !io::is_blank(*p)) ++p;
  }
}

// How many fields at the end of the line parse as numbers.
size_t trailing_numbers(const std::vector<const char*>& starts, const char* end) {
  size_t count = 0;
  float value = 0;
  for (size_t i = starts.size(); i-- > 0;) {
    if (!io::parse_float(starts[i], end, value)) break;
    ++count;
  }
  return count;
}

Table read_glove(const std::string& path, const ReadOptions& options) {
  io::InputFile in(path);
  io::ProgressScope progress(options.progress, "reading " + path, in.file_size());
  TableBuilder builder;
  io::MemoryBudget budget(path, options);  // GloVe declares nothing: rows are counted as read
  size_t dim = 0;
  std::vector<float> values;
  std::string key_scratch;
  std::vector<const char*> starts;

  uint64_t rows = 0;
  std::string_view line;
  while ((options.limit == 0 || rows < options.limit) && in.next_line(line)) {
    const char* begin = line.data();
    const char* end = begin + line.size();
    while (end != begin && io::is_blank(end[-1])) --end;
    if (end == begin) continue;  // blank lines hold no row
    const uint64_t number = in.line_number();
    auto column = [&](const char* p) { return static_cast<uint64_t>(p - begin) + 1; };

    if (dim == 0) {
      // The first row fixes d: the numbers at its end, leaving at least one field for the word.
      int64_t count = 0, header_dim = 0;
      if (io::parse_count_dim(std::string_view(begin, static_cast<size_t>(end - begin)), count, header_dim)) {
        throw ParseError(path, number, 1,
                         "the first line " + io::quoted(line) +
                             " is a word2vec header 'count dim', not a GloVe row; read the file as word2vec");
      }
      split_fields(begin, end, starts);
      dim = std::min(trailing_numbers(starts, end), starts.size() - 1);
      if (dim == 0) throw ParseError(path, number, 1, "expected a word followed by numbers, found " + io::quoted(line));
      builder = TableBuilder(dim);
      if (!in.compressed()) builder.reserve(static_cast<size_t>(in.file_size() / line.size() + 1));
      values.resize(dim);
    }

    // Fast path: a word without blanks, one separator, then exactly d numbers.
    std::string_view key;
    const char* key_end = begin;
    while (key_end != end && !io::is_blank(*key_end)) ++key_end;
    const char* bad = nullptr;
    if (key_end != begin && key_end + 1 < end && !io::is_blank(key_end[1]) &&
        io::parse_floats(key_end, end, values.data(), dim, bad) == dim && !bad) {
      key = std::string_view(begin, static_cast<size_t>(key_end - begin));
    } else {
      // The vector is the last d fields; the word is everything before the one separator in
      // front of them, so words with spaces (GloVe 840B) keep their exact bytes.
      split_fields(begin, end, starts);
      if (starts.size() < dim + 1) {
        if (starts.size() == dim && io::is_blank(*begin)) {
          throw ParseError(path, number, 1, "the line starts with a blank; expected a word first");
        }
        throw ParseError(path, number, column(end),
                         "expected " + std::to_string(dim) + " values after the word, found " +
                             std::to_string(starts.empty() ? 0 : starts.size() - 1));
      }
      const char* first_value = starts[starts.size() - dim];
      size_t found = io::parse_floats(first_value, end, values.data(), dim, bad);
      if (bad) io::throw_not_a_number(path, number, begin, bad, end, found, dim);
      key = std::string_view(begin, static_cast<size_t>(first_value - 1 - begin));
      if (key.empty()) throw ParseError(path, number, 1, "the line starts with a blank; expected a word first");
    }

    const size_t raw_key_size = key.size();
    key = io::utf8_key(path, number, key, options.unicode_errors, key_scratch);
    if (!options.allow_nan) {
      size_t index = first_non_finite(values.data(), dim);
      if (index < dim) {
        const char* at = io::nth_field(begin + raw_key_size, end, index);
        throw ParseError(path, number, column(at), io::non_finite_message(values[index], index, rows + 1, key));
      }
    }
    builder.add(key, values.data(), dim);
    budget.add_row(dim * sizeof(float) + key.size());
    if (++rows % kProgressRows == 0) progress.advance(in.disk_position());
  }
  if (dim == 0) throw ParseError(path, 0, 0, "the file has no rows (expected 'word v1 ... vd' lines)");
  progress.advance(in.disk_position());
  io::warn_duplicates(path, builder.duplicates());
  Table table = builder.finish(Metric::cos);
  table.set_source("glove", path);
  return table;
}

void write_glove(const Table& table, const std::string& path, const WriteOptions& options) {
  const size_t dim = table.dim();
  if (dim == 0) throw Error("cannot write " + path + " as glove: the table has dimension 0");
  // A GloVe file has no header: readers take the dimension from the first line, counting the
  // numbers at its end. A first key whose last blank-separated part is a number would be
  // counted as a value.
  if (table.size() && table.has_keys()) {
    const std::string_view key = table.key(0);
    const std::string_view kept = key.substr(0, key.find_last_not_of(" \t") + 1);  // trailing blanks part from the word
    const size_t blank = kept.find_last_of(" \t");
    float value = 0;
    if (blank != std::string_view::npos && io::parse_float(kept.data() + blank + 1, kept.data() + kept.size(), value)) {
      throw Error("cannot write row 0 as glove: its key " + io::quoted(key) +
                  " ends in a number after a blank, which a reader would count as one of the first line's values");
    }
  }
  io::OutputFile out(path);
  io::ProgressScope progress(options.progress, "writing " + path, table.size());
  io::write_text_rows(table, out, progress, "glove", true, /*headerless=*/true);
  out.commit();
}

// A first line that is not a "count dim" header and ends in numbers after a word.
bool sniff_glove(const uint8_t* head, size_t size) {
  bool complete = false;
  std::string_view line = io::first_line(std::string_view(reinterpret_cast<const char*>(head), size), complete);
  const char* begin = line.data();
  const char* end = begin + line.size();
  while (end != begin && io::is_blank(end[-1])) --end;
  if (!complete) {  // drop the field the head cut in two
    while (end != begin && !io::is_blank(end[-1])) --end;
  }
  int64_t count = 0, dim = 0;
  if (io::parse_count_dim(std::string_view(begin, static_cast<size_t>(end - begin)), count, dim)) return false;
  std::vector<const char*> starts;
  split_fields(begin, end, starts);
  if (starts.size() < 2 || io::is_blank(*begin)) return false;
  size_t numbers = std::min(trailing_numbers(starts, end), starts.size() - 1);
  return numbers >= 1 && starts.size() - numbers <= kMaxSniffKeyFields;
}

}  // namespace

const FormatDescriptor kGlove = {
    .name = "glove",
    .description = "GloVe text: 'word v1 ... vd' per line, no header; words may contain spaces",
    .extensions = {".txt"},
    .sniff = sniff_glove,
    .read = read_glove,
    .write = write_glove,
    .rows_by_frequency = true,
};

}  // namespace vecpack
