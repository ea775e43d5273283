#include "formats/npy.h"

#include <algorithm>
#include <bit>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "text_io.h"
#include "vecpack/errors.h"

namespace vecpack {
namespace {

// Values are copied with memcpy as little-endian; a big-endian port needs swaps here.
static_assert(std::endian::native == std::endian::little, "the .npy reader and writer assume a little-endian machine");

constexpr char kMagic[] = "\x93NUMPY";
constexpr size_t kMagicBytes = 6;
// numpy refuses headers over 10000 bytes unless told otherwise; a float array needs ~128. The
// cap only keeps a damaged length field from making us buffer gigabytes.
constexpr uint64_t kMaxHeaderBytes = uint64_t{1} << 20;
// np.save aligns the data to this many bytes and leaves room in the header for a shape that
// grows to this many digits, so that an array can be appended to in place.
constexpr size_t kDataAlignment = 64;
constexpr size_t kGrowthAxisDigits = 21;
// Deflate cannot compress by more than about 1032:1: a gzip file announcing more data than
// this is damaged, and must not make us allocate the size it claims.
constexpr uint64_t kMaxGzipRatio = 1100;
constexpr size_t kBlockElements = size_t{1} << 17;

enum class ElementType { f16, f32, f64 };

struct Dtype {
  ElementType type = ElementType::f32;
  size_t size = 4;
  bool swap = false;  // stored big-endian
  std::string text;   // as the header spells it, for messages
};

struct Header {
  Dtype dtype;
  bool fortran_order = false;
  std::vector<uint64_t> shape;
  uint64_t data_offset = 0;
};

std::string at_offset(uint64_t offset) { return " (byte offset " + std::to_string(offset) + ")"; }

// Bytes shown in a message with anything unprintable (or not ASCII) escaped as \xNN.
std::string escaped(std::string_view bytes) {
  std::string out = "'";
  for (unsigned char c : bytes) {
    if (c < 0x20 || c >= 0x7F) {
      char hex[8];
      std::snprintf(hex, sizeof hex, "\\x%02X", c);
      out += hex;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "'";
}

// As Python prints a tuple: (3, 4), (3,) or ().
std::string shape_text(const std::vector<uint64_t>& shape) {
  std::string out = "(";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) out += ", ";
    out += std::to_string(shape[i]);
  }
  if (shape.size() == 1) out += ",";
  return out + ")";
}

// ------------------------------------------------------------------------------------ header

// The header is the repr of a Python dict with exactly the keys 'descr' (a string),
// 'fortran_order' (True or False) and 'shape' (a tuple of integers), as numpy writes it.
class HeaderParser {
 public:
  HeaderParser(const std::string& path, std::string_view text, uint64_t offset)
      : path_(path), text_(text), offset_(offset) {}

  void parse(Header& header) {
    bool seen_descr = false, seen_order = false, seen_shape = false;
    skip_blanks();
    expect('{', "the header must be a Python dict starting with '{'");
    for (;;) {
      skip_blanks();
      if (peek() == '}') break;
      const size_t key_at = pos_;
      std::string key = string_literal("a quoted key");
      skip_blanks();
      expect(':', "expected ':' after the key '" + key + "'");
      skip_blanks();
      if (key == "descr") {
        if (peek() == '[' || peek() == '(') {
          fail("unsupported dtype: a structured array (a list 'descr') cannot be read; expected float32 '<f4', "
               "float16 '<f2' or float64 '<f8'");
        }
        const size_t value_at = pos_;
        header.dtype = parse_dtype(string_literal("a quoted dtype after 'descr'"), value_at);
        seen_descr = true;
      } else if (key == "fortran_order") {
        header.fortran_order = boolean();
        seen_order = true;
      } else if (key == "shape") {
        header.shape = tuple();
        seen_shape = true;
      } else {
        pos_ = key_at;
        fail("unexpected key '" + key + "' in the header; expected 'descr', 'fortran_order' and 'shape'");
      }
      skip_blanks();
      if (peek() == ',') {
        ++pos_;
      } else if (peek() != '}') {
        fail("expected ',' or '}' after the value of '" + key + "', found " + found());
      }
    }
    ++pos_;
    skip_blanks();
    if (pos_ != text_.size()) fail("unexpected text after the header's closing '}': " + found());
    const char* missing = !seen_descr ? "descr" : !seen_order ? "fortran_order" : !seen_shape ? "shape" : nullptr;
    if (missing) {
      pos_ = 0;
      fail(std::string("the header has no '") + missing + "' key");
    }
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw ParseError(path_, 0, 0, "bad .npy header: " + what + at_offset(offset_ + pos_));
  }
  char peek() const { return pos_ < text_.size() ? text_[pos_] : '\0'; }
  std::string found() const {
    if (pos_ >= text_.size()) return "the end of the header";
    return escaped(text_.substr(pos_, 24)) + (text_.size() - pos_ > 24 ? "..." : "");
  }
  void skip_blanks() {
    while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\t' || text_[pos_] == '\n' || text_[pos_] == '\r')) {
      ++pos_;
    }
  }
  void expect(char c, const std::string& what) {
    if (peek() != c) fail(what + ", found " + found());
    ++pos_;
  }
  std::string string_literal(const char* what) {
    const char quote = peek();
    if (quote != '\'' && quote != '"') fail(std::string("expected ") + what + ", found " + found());
    size_t end = text_.find(quote, pos_ + 1);
    if (end == std::string_view::npos) fail("a string is not closed: " + found());
    std::string value(text_.substr(pos_ + 1, end - pos_ - 1));
    pos_ = end + 1;
    return value;
  }
  bool boolean() {
    for (std::string_view word : {"True", "False"}) {
      if (text_.substr(pos_, word.size()) == word) {
        pos_ += word.size();
        return word == "True";
      }
    }
    fail("'fortran_order' must be True or False, found " + found());
  }
  std::vector<uint64_t> tuple() {
    const size_t start = pos_;
    auto bad = [&]() {
      pos_ = start;
      fail("'shape' must be a tuple of integers such as (rows, dim), found " + found());
    };
    if (peek() != '(') bad();
    ++pos_;
    std::vector<uint64_t> values;
    for (;;) {
      skip_blanks();
      if (peek() == ')') break;
      uint64_t value = 0;
      auto [end, error] = std::from_chars(text_.data() + pos_, text_.data() + text_.size(), value);
      if (error == std::errc::result_out_of_range) {
        fail("a 'shape' entry is too large: " + found());
      }
      if (error != std::errc() || end == text_.data() + pos_) bad();
      pos_ = static_cast<size_t>(end - text_.data());
      if (peek() == 'L') ++pos_;  // Python 2 wrote long integers as 3L
      values.push_back(value);
      skip_blanks();
      if (peek() == ',') {
        ++pos_;
      } else if (peek() != ')') {
        bad();
      }
    }
    ++pos_;
    return values;
  }
  Dtype parse_dtype(const std::string& descr, size_t value_at) {
    Dtype dtype;
    dtype.text = descr;
    std::string_view code = descr;
    // '|' means "not applicable" and '=' native; both are little-endian here.
    if (!code.empty() && (code[0] == '<' || code[0] == '>' || code[0] == '|' || code[0] == '=')) {
      dtype.swap = code[0] == '>';
      code.remove_prefix(1);
    }
    if (code == "f2") {
      dtype.type = ElementType::f16;
      dtype.size = 2;
    } else if (code == "f4") {
      dtype.type = ElementType::f32;
      dtype.size = 4;
    } else if (code == "f8") {
      dtype.type = ElementType::f64;
      dtype.size = 8;
    } else {
      pos_ = value_at;
      fail("unsupported dtype " + escaped(descr) + "; expected float32 '<f4', float16 '<f2' or float64 '<f8'");
    }
    return dtype;
  }

  const std::string& path_;
  std::string_view text_;
  uint64_t offset_;  // of text_ in the file
  size_t pos_ = 0;
};

Header read_header(io::InputFile& in) {
  const std::string& path = in.path();
  std::string_view head = in.peek(kMagicBytes + 2);
  if (head.size() < kMagicBytes || head.substr(0, kMagicBytes) != std::string_view(kMagic, kMagicBytes)) {
    throw ParseError(path, 0, 0,
                     "not a .npy file: expected the magic '\\x93NUMPY' at byte offset 0, found " +
                         escaped(head.substr(0, kMagicBytes)));
  }
  if (head.size() < kMagicBytes + 2) throw ParseError(path, 0, 0, "truncated: the file ends within its .npy preamble");
  const unsigned major = static_cast<unsigned char>(head[6]), minor = static_cast<unsigned char>(head[7]);
  if ((major != 1 && major != 2 && major != 3) || minor != 0) {
    throw ParseError(path, 0, 0,
                     "unsupported .npy version " + std::to_string(major) + "." + std::to_string(minor) +
                         "; expected 1.0, 2.0 or 3.0" + at_offset(6));
  }
  // Version 1.0 has a 16-bit header length, later versions a 32-bit one.
  const size_t length_bytes = major == 1 ? 2 : 4;
  const size_t preamble = kMagicBytes + 2 + length_bytes;
  head = in.peek(preamble);
  if (head.size() < preamble) throw ParseError(path, 0, 0, "truncated: the file ends within its .npy preamble");
  uint64_t header_bytes = 0;
  if (major == 1) {
    uint16_t length = 0;
    std::memcpy(&length, head.data() + 8, sizeof length);
    header_bytes = length;
  } else {
    uint32_t length = 0;
    std::memcpy(&length, head.data() + 8, sizeof length);
    header_bytes = length;
  }
  if (header_bytes > kMaxHeaderBytes) {
    throw ParseError(path, 0, 0,
                     "the header length " + std::to_string(header_bytes) + " is larger than the supported " +
                         std::to_string(kMaxHeaderBytes) + at_offset(8));
  }
  if (!in.compressed() && preamble + header_bytes > in.file_size()) {
    throw ParseError(path, 0, 0,
                     "truncated: the header needs " + std::to_string(header_bytes) + " bytes after byte offset " +
                         std::to_string(preamble) + ", the file has " + std::to_string(in.file_size() - preamble));
  }
  head = in.peek(preamble + header_bytes);
  if (head.size() < preamble + header_bytes) {
    throw ParseError(path, 0, 0,
                     "truncated: the header needs " + std::to_string(header_bytes) + " bytes after byte offset " +
                         std::to_string(preamble) + ", the file has " + std::to_string(head.size() - preamble));
  }
  Header header;
  HeaderParser(path, head.substr(preamble), preamble).parse(header);
  header.data_offset = preamble + header_bytes;
  in.skip(preamble + header_bytes);
  return header;
}

// ------------------------------------------------------------------------------------ values

float half_to_float(uint16_t half) {
  const uint32_t sign = uint32_t{half & 0x8000u} << 16;
  const uint32_t exponent = (half >> 10) & 0x1Fu;
  const uint32_t mantissa = half & 0x3FFu;
  if (exponent == 0x1F) return std::bit_cast<float>(sign | 0x7F800000u | (mantissa << 13));  // inf, NaN
  if (exponent != 0) return std::bit_cast<float>(sign | ((exponent + 127 - 15) << 23) | (mantissa << 13));
  // Zero or subnormal: mantissa x 2^-24, exact in float32.
  const float magnitude = std::ldexp(static_cast<float>(mantissa), -24);
  return sign ? -magnitude : magnitude;
}

template <class Bits>
Bits load(const uint8_t* bytes, bool swap) {
  Bits value;
  std::memcpy(&value, bytes, sizeof value);
  if (swap) {
    if constexpr (sizeof(Bits) == 2) value = __builtin_bswap16(value);
    if constexpr (sizeof(Bits) == 4) value = __builtin_bswap32(value);
    if constexpr (sizeof(Bits) == 8) value = __builtin_bswap64(value);
  }
  return value;
}

double element_as_double(const uint8_t* bytes, const Dtype& dtype) {
  switch (dtype.type) {
    case ElementType::f16: return half_to_float(load<uint16_t>(bytes, dtype.swap));
    case ElementType::f32: return std::bit_cast<float>(load<uint32_t>(bytes, dtype.swap));
    case ElementType::f64: return std::bit_cast<double>(load<uint64_t>(bytes, dtype.swap));
  }
  return 0;
}

// count elements of `dtype` at `bytes` to float32 (a float64 beyond float range becomes inf).
void convert(const uint8_t* bytes, size_t count, const Dtype& dtype, float* out) {
  if (dtype.type == ElementType::f32 && !dtype.swap) {
    std::memcpy(out, bytes, count * sizeof(float));
    return;
  }
  for (size_t i = 0; i < count; ++i) out[i] = static_cast<float>(element_as_double(bytes + i * dtype.size, dtype));
}

// ------------------------------------------------------------------------------------ reading

Table read_npy(const std::string& path, const ReadOptions& options) {
  io::InputFile in(path);
  io::ProgressScope progress(options.progress, "reading " + path, in.file_size());
  const Header header = read_header(in);
  const Dtype& dtype = header.dtype;
  const std::string shape = shape_text(header.shape);
  if (header.shape.size() != 1 && header.shape.size() != 2) {
    throw ParseError(path, 0, 0,
                     "shape " + shape + " has " + std::to_string(header.shape.size()) +
                         " dimensions; expected (rows, dim) or (dim,)");
  }
  // A 1-D array is one row.
  const uint64_t rows = header.shape.size() == 2 ? header.shape[0] : 1;
  const uint64_t dim64 = header.shape.back();
  if (dim64 == 0 || dim64 > kMaxDimension) {
    throw ParseError(path, 0, 0,
                     "shape " + shape + " has dimension " + std::to_string(dim64) + "; expected 1.." +
                         std::to_string(kMaxDimension));
  }
  const size_t dim = static_cast<size_t>(dim64);
  uint64_t elements = 0, data_bytes = 0;
  if (__builtin_mul_overflow(rows, dim64, &elements) || __builtin_mul_overflow(elements, dtype.size, &data_bytes)) {
    throw ParseError(path, 0, 0, "shape " + shape + " is too large to be real");
  }
  const std::string needs = "shape " + shape + " of " + escaped(dtype.text) + " needs " + std::to_string(data_bytes) +
                            " bytes of data after the header" + at_offset(header.data_offset);
  if (!in.compressed()) {
    const uint64_t found = in.file_size() - header.data_offset;
    if (found < data_bytes) throw ParseError(path, 0, 0, "truncated: " + needs + ", found " + std::to_string(found));
    if (found > data_bytes) {
      throw ParseError(path, 0, 0, needs + ", found " + std::to_string(found) + " (trailing bytes)");
    }
  } else if (data_bytes / kMaxGzipRatio > in.file_size()) {
    throw ParseError(path, 0, 0, needs + ", more than a gzip file of " + std::to_string(in.file_size()) +
                                     " bytes can hold");
  }

  const uint64_t out_rows = options.limit ? std::min<uint64_t>(rows, options.limit) : rows;
  io::MemoryBudget(path, options).require_floats(out_rows, dim, "shape " + shape + " as f32");
  // Fortran order stores column after column: the kept rows are spread over the whole file,
  // up to row out_rows - 1 of the last column.
  const uint64_t needed = out_rows == 0 ? 0 : header.fortran_order ? (dim64 - 1) * rows + out_rows : out_rows * dim64;
  std::vector<float> values(static_cast<size_t>(out_rows) * dim);
  std::vector<uint8_t> raw(std::min<uint64_t>(kBlockElements, needed) * dtype.size);
  std::vector<float> block(header.fortran_order ? std::min<uint64_t>(kBlockElements, needed) : 0);

  // Element e of the file is value `column` of row `row`; throws for a value that is not kept.
  auto reject = [&](float value, uint64_t e, uint64_t row, uint64_t column, const uint8_t* bytes) {
    const uint64_t offset = header.data_offset + e * dtype.size;
    const std::string where = "value " + std::to_string(column + 1) + " of row " + std::to_string(row + 1);
    const double original = element_as_double(bytes, dtype);
    if (std::isfinite(original)) {
      char text[32];
      auto end = std::to_chars(text, text + sizeof text, original).ptr;
      throw ParseError(path, 0, 0,
                       where + " is " + std::string(text, end) + ", outside the float32 range" + at_offset(offset));
    }
    if (!options.allow_nan) {
      throw ParseError(path, 0, 0,
                       std::string(std::isnan(value) ? "NaN" : "infinity") + " in " + where + at_offset(offset) +
                           "; non-finite values are rejected unless allow_nan is set");
    }
  };

  for (uint64_t done = 0; done < needed;) {
    const size_t count = static_cast<size_t>(std::min<uint64_t>(kBlockElements, needed - done));
    const size_t want = count * dtype.size;
    const size_t got = in.read(raw.data(), want);
    if (got < want) {
      throw ParseError(path, 0, 0, "truncated: " + needs + ", found " + std::to_string(done * dtype.size + got));
    }
    if (!header.fortran_order) {
      float* out = values.data() + done;
      convert(raw.data(), count, dtype, out);
      for (size_t i = 0; i < count; ++i) {
        if (!std::isfinite(out[i])) {
          const uint64_t e = done + i;
          reject(out[i], e, e / dim64, e % dim64, raw.data() + i * dtype.size);
        }
      }
    } else {
      convert(raw.data(), count, dtype, block.data());
      for (size_t i = 0; i < count; ++i) {
        const uint64_t e = done + i, row = e % rows, column = e / rows;
        if (row >= out_rows) continue;
        if (!std::isfinite(block[i])) reject(block[i], e, row, column, raw.data() + i * dtype.size);
        values[row * dim + column] = block[i];
      }
    }
    done += count;
    progress.advance(in.disk_position());
  }
  // Without a size on disk to check against, a gzip file's surplus shows only at its end.
  if (in.compressed() && needed == elements && in.peek_byte() >= 0) {
    throw ParseError(path, 0, 0, needs + ", found more (trailing bytes)");
  }
  progress.advance(in.disk_position());
  Table table = Table::from_rows(std::move(values), dim);
  table.set_source("npy", path);
  return table;
}

// ------------------------------------------------------------------------------------ writing

// The header np.save writes for a C-order float32 array: the dict, spaces for the row count
// to grow, and padding so that the data starts at a multiple of 64 bytes, ended by '\n'.
std::string npy_header(size_t rows, size_t dim) {
  const std::string row_text = std::to_string(rows);
  std::string dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + row_text + ", " + std::to_string(dim) + "), }";
  dict.append(kGrowthAxisDigits - std::min(kGrowthAxisDigits, row_text.size()), ' ');
  const size_t preamble = kMagicBytes + 2 + 2;
  const size_t text_bytes = dict.size() + 1;  // with the '\n'
  const size_t padding = kDataAlignment - (preamble + text_bytes) % kDataAlignment;
  const size_t header_bytes = text_bytes + padding;  // at most a few hundred: fits in 16 bits

  std::string out(kMagic, kMagicBytes);
  out += '\x01';
  out += '\x00';
  out += static_cast<char>(header_bytes & 0xFF);
  out += static_cast<char>(header_bytes >> 8);
  out += dict;
  out.append(padding, ' ');
  out += '\n';
  return out;
}

void write_npy(const Table& table, const std::string& path, const WriteOptions& options) {
  const size_t dim = table.dim();
  if (dim == 0) throw Error("cannot write " + path + " as npy: the table has dimension 0");
  io::OutputFile out(path);
  io::ProgressScope progress(options.progress, "writing " + path, table.size());
  out.write(npy_header(table.size(), dim));
  io::for_each_row_block(table, [&](size_t first, size_t count, const float* values) {
    out.write(values, count * dim * sizeof(float));  // little-endian, see the static_assert
    progress.advance(first + count);
  });
  out.commit();
}

bool sniff_npy(const uint8_t* head, size_t size) {
  return size >= kMagicBytes && std::memcmp(head, kMagic, kMagicBytes) == 0;
}

}  // namespace

const FormatDescriptor kNpy = {
    .name = "npy",
    .description = "NumPy .npy: a 2-D float16/32/64 array (rows, dim); written as float32, without keys",
    .extensions = {".npy"},
    .sniff = sniff_npy,
    .read = read_npy,
    .write = write_npy,
};

}  // namespace vecpack
