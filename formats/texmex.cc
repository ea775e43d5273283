#include "formats/texmex.h"

#include <algorithm>
#include <bit>
#include <charconv>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "text_io.h"
#include "vecpack/errors.h"

namespace vecpack {
namespace {

// Values are copied with memcpy as little-endian; a big-endian port needs swaps here.
static_assert(std::endian::native == std::endian::little, "the TEXMEX reader and writer assume a little-endian machine");

constexpr uint64_t kProgressRecords = uint64_t{1} << 14;

enum class ValueType { f32, u8, i32 };

struct Variant {
  const char* name;  // "fvecs", ...
  ValueType type;
  size_t value_bytes;
};

constexpr Variant kFloatVariant{"fvecs", ValueType::f32, 4};
constexpr Variant kByteVariant{"bvecs", ValueType::u8, 1};
constexpr Variant kIntVariant{"ivecs", ValueType::i32, 4};

std::string at_offset(uint64_t offset) { return " (byte offset " + std::to_string(offset) + ")"; }

std::string record_at(uint64_t record, uint64_t offset) {
  return "record " + std::to_string(record + 1) + " at byte offset " + std::to_string(offset);
}

void to_floats(const Variant& variant, const uint8_t* bytes, size_t count, float* out) {
  switch (variant.type) {
    case ValueType::f32:
      std::memcpy(out, bytes, count * sizeof(float));
      break;
    case ValueType::u8:
      for (size_t i = 0; i < count; ++i) out[i] = bytes[i];
      break;
    case ValueType::i32:
      for (size_t i = 0; i < count; ++i) {
        int32_t value;
        std::memcpy(&value, bytes + i * sizeof value, sizeof value);
        out[i] = static_cast<float>(value);
      }
      break;
  }
}

Table read_vecs(const Variant& variant, const std::string& path, const ReadOptions& options) {
  io::InputFile in(path);
  io::ProgressScope progress(options.progress, "reading " + path, in.file_size());
  // InputFile skips a UTF-8 byte order mark; here those 3 bytes begin the first dimension.
  const bool skipped_bom = in.position() != 0;

  size_t dim = 0, value_bytes = 0;
  TableBuilder builder;
  io::MemoryBudget budget(path, options);
  std::vector<uint8_t> raw;
  std::vector<float> values;
  uint64_t records = 0;
  for (;;) {
    if (options.limit && records == options.limit) break;
    const bool first = records == 0;
    const uint64_t offset = first && skipped_bom ? 0 : in.position();
    uint8_t dim_bytes[4];
    size_t got = 0;
    if (first && skipped_bom) {
      std::memcpy(dim_bytes, "\xEF\xBB\xBF", 3);
      got = 3 + in.read(dim_bytes + 3, 1);
    } else {
      got = in.read(dim_bytes, sizeof dim_bytes);
    }
    if (got == 0) break;
    if (got < sizeof dim_bytes) {
      throw ParseError(path, 0, 0,
                       "truncated: " + record_at(records, offset) + " has " + std::to_string(got) +
                           " of the 4 bytes of its dimension");
    }
    int32_t record_dim = 0;
    std::memcpy(&record_dim, dim_bytes, sizeof record_dim);
    if (first) {
      if (record_dim <= 0 || static_cast<size_t>(record_dim) > kMaxDimension) {
        throw ParseError(path, 0, 0,
                         record_at(records, offset) + " has dimension " + std::to_string(record_dim) +
                             "; expected 1.." + std::to_string(kMaxDimension) + " (is this a ." + variant.name +
                             " file?)");
      }
      dim = static_cast<size_t>(record_dim);
      value_bytes = dim * variant.value_bytes;
      raw.resize(value_bytes);
      values.resize(dim);
      builder = TableBuilder(dim);
      // What the file can hold, so that a damaged first record cannot make us reserve gigabytes.
      uint64_t fits = in.compressed() ? 0 : in.file_size() / (sizeof dim_bytes + value_bytes);
      if (options.limit) fits = std::min<uint64_t>(fits, options.limit);
      budget.require_floats(fits, dim,
                            "the file's " + std::to_string(fits) + " records x " + std::to_string(dim) + " floats");
      builder.reserve(static_cast<size_t>(fits));
    } else if (record_dim < 0 || static_cast<size_t>(record_dim) != dim) {
      throw ParseError(path, 0, 0,
                       record_at(records, offset) + " has dimension " + std::to_string(record_dim) + ", expected " +
                           std::to_string(dim) + " as in record 1");
    }
    const uint64_t values_offset = offset + sizeof dim_bytes;
    got = in.read(raw.data(), value_bytes);
    if (got < value_bytes) {
      throw ParseError(path, 0, 0,
                       "truncated: " + record_at(records, offset) + " needs " + std::to_string(value_bytes) +
                           " bytes of values, found " + std::to_string(got));
    }
    to_floats(variant, raw.data(), dim, values.data());
    if (!options.allow_nan) {
      size_t index = first_non_finite(values.data(), dim);
      if (index < dim) {
        throw ParseError(path, 0, 0,
                         std::string(std::isnan(values[index]) ? "NaN" : "infinity") + " in value " +
                             std::to_string(index + 1) + " of record " + std::to_string(records + 1) +
                             at_offset(values_offset + index * variant.value_bytes) +
                             "; non-finite values are rejected unless allow_nan is set");
      }
    }
    builder.add(values.data(), dim);
    budget.add_row(dim * sizeof(float));
    if (++records % kProgressRecords == 0) progress.advance(in.disk_position());
  }
  if (records == 0) {
    throw ParseError(path, 0, 0,
                     std::string("the file is empty; expected records of an int32 dimension and its values (.") +
                         variant.name + ")");
  }
  progress.advance(in.disk_position());
  Table table = builder.finish(Metric::cos);
  table.set_source(variant.name, path);
  return table;
}

std::string float_text(float value) {
  char text[32];
  return std::string(text, std::to_chars(text, text + sizeof text, value).ptr);
}

// The stored bytes of one value; throws when the value has no exact representation.
void store_value(const Variant& variant, float value, uint8_t* out, const std::string& path, size_t row,
                 size_t column) {
  auto refuse = [&](const char* range) {
    throw Error("cannot write " + path + " as " + variant.name + ": row " + std::to_string(row) + ", column " +
                std::to_string(column) + " holds " + float_text(value) + "; " + variant.name + " stores " + range);
  };
  switch (variant.type) {
    case ValueType::f32:
      std::memcpy(out, &value, sizeof value);
      break;
    case ValueType::u8:
      // Written so that NaN fails too.
      if (!(value >= 0.0f && value <= 255.0f && value == std::floor(value))) refuse("integers 0..255");
      *out = static_cast<uint8_t>(value);
      break;
    case ValueType::i32: {
      if (!(value >= -2147483648.0f && value < 2147483648.0f && value == std::floor(value))) {
        refuse("integers -2147483648..2147483647");
      }
      const int32_t integer = static_cast<int32_t>(value);
      std::memcpy(out, &integer, sizeof integer);
      break;
    }
  }
}

void write_vecs(const Variant& variant, const Table& table, const std::string& path, const WriteOptions& options) {
  const size_t dim = table.dim();
  if (dim == 0) throw Error("cannot write " + path + " as " + variant.name + ": the table has dimension 0");
  io::OutputFile out(path);
  io::ProgressScope progress(options.progress, "writing " + path, table.size());
  const int32_t record_dim = static_cast<int32_t>(dim);  // dim <= kMaxDimension
  std::vector<uint8_t> record(sizeof record_dim + dim * variant.value_bytes);
  std::memcpy(record.data(), &record_dim, sizeof record_dim);
  io::for_each_row_block(table, [&](size_t first, size_t count, const float* values) {
    for (size_t r = 0; r < count; ++r) {
      uint8_t* slot = record.data() + sizeof record_dim;
      for (size_t c = 0; c < dim; ++c) {
        store_value(variant, values[r * dim + c], slot + c * variant.value_bytes, path, first + r, c);
      }
      out.write(record.data(), record.size());
    }
    progress.advance(first + count);
  });
  out.commit();
}

Table read_fvecs(const std::string& path, const ReadOptions& options) { return read_vecs(kFloatVariant, path, options); }
Table read_bvecs(const std::string& path, const ReadOptions& options) { return read_vecs(kByteVariant, path, options); }
Table read_ivecs(const std::string& path, const ReadOptions& options) { return read_vecs(kIntVariant, path, options); }

void write_fvecs(const Table& table, const std::string& path, const WriteOptions& options) {
  write_vecs(kFloatVariant, table, path, options);
}
void write_bvecs(const Table& table, const std::string& path, const WriteOptions& options) {
  write_vecs(kByteVariant, table, path, options);
}
void write_ivecs(const Table& table, const std::string& path, const WriteOptions& options) {
  write_vecs(kIntVariant, table, path, options);
}

}  // namespace

const FormatDescriptor kFvecs = {
    .name = "fvecs",
    .description = "TEXMEX .fvecs: per record an int32 dimension d and d float32; no keys",
    .extensions = {".fvecs"},
    .sniff = nullptr,
    .read = read_fvecs,
    .write = write_fvecs,
};

const FormatDescriptor kBvecs = {
    .name = "bvecs",
    .description = "TEXMEX .bvecs: per record an int32 dimension d and d uint8; no keys",
    .extensions = {".bvecs"},
    .sniff = nullptr,
    .read = read_bvecs,
    .write = write_bvecs,
};

const FormatDescriptor kIvecs = {
    .name = "ivecs",
    .description = "TEXMEX .ivecs: per record an int32 dimension d and d int32; no keys",
    .extensions = {".ivecs"},
    .sniff = nullptr,
    .read = read_ivecs,
    .write = write_ivecs,
};

}  // namespace vecpack
