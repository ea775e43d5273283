// The list of external formats, as data: adding a format = its file pair + one line below.
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>

#include "formats/fasttext.h"
#include "formats/glove.h"
#include "formats/hdf5.h"
#include "formats/npy.h"
#include "formats/texmex.h"
#include "formats/word2vec.h"
#include "text_io.h"
#include "vecpack/errors.h"
#include "vecpack/formats.h"

namespace vecpack {
namespace {

constexpr size_t kSniffBytes = 4096;

// The first 8 bytes of every .vecpack file (see docs/FORMAT.md).
constexpr uint8_t kVecpackMagic[8] = {0x89, 'V', 'P', 'K', 0x0D, 0x0A, 0x1A, 0x0A};

bool sniff_vecpack(const uint8_t* head, size_t size) {
  return size >= sizeof kVecpackMagic && std::memcmp(head, kVecpackMagic, sizeof kVecpackMagic) == 0;
}

// A .vecpack file is used in place: limit and allow_nan do not apply to a mapped table.
Table read_vecpack(const std::string& path, const ReadOptions&) { return Table::open(path); }

void write_vecpack(const Table& table, const std::string& path, const WriteOptions&) { table.save(path); }

const FormatDescriptor kVecpack = {
    .name = "vecpack",
    .description = "vecpack: the native memory-mapped container (compressed codes, keys, metadata)",
    .extensions = {".vecpack"},
    .sniff = sniff_vecpack,
    .read = read_vecpack,
    .write = write_vecpack,
};

std::string lower(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
  return out;
}

std::string known_names() {
  std::string names;
  for (const FormatDescriptor* format : format_list()) {
    if (!names.empty()) names += ", ";
    names += format->name;
  }
  return names;
}

bool is_regular_file(const std::string& path) {
  struct stat info {};
  return ::stat(path.c_str(), &info) == 0 && S_ISREG(info.st_mode);
}

// A path may name an object inside a file as FILE:/inner (an HDF5 dataset); this is FILE.
std::string container_of(const std::string& path) {
  if (is_regular_file(path)) return path;
  for (size_t colon = path.rfind(":/"); colon != std::string::npos && colon > 0; colon = path.rfind(":/", colon - 1)) {
    std::string file = path.substr(0, colon);
    if (is_regular_file(file)) return file;
  }
  return path;
}

// The lower-case extension with its dot, looking through a trailing ".gz".
std::string extension_of(std::string_view path) {
  size_t slash = path.rfind('/');
  std::string_view name = slash == std::string_view::npos ? path : path.substr(slash + 1);
  if (io::ends_with_gz(name) && name.size() > 3) name.remove_suffix(3);
  size_t dot = name.rfind('.');
  return dot == std::string_view::npos || dot == 0 ? std::string() : lower(name.substr(dot));
}

const FormatDescriptor* by_extension(std::string_view path) {
  std::string extension = extension_of(path);
  if (extension.empty()) return nullptr;
  for (const FormatDescriptor* format : format_list()) {
    for (const char* candidate : format->extensions) {
      if (extension == candidate) return format;
    }
  }
  return nullptr;
}

const FormatDescriptor& named(std::string_view name) {
  const FormatDescriptor* format = find_format(name);
  if (!format) throw Error("unknown format '" + std::string(name) + "'; known formats: " + known_names());
  return *format;
}

}  // namespace

const std::vector<const FormatDescriptor*>& format_list() {
  static const std::vector<const FormatDescriptor*> formats = {
      // fastText models are recognised by content before word2vec binary, which shares .bin.
      &kFasttextBin,
      &kWord2vecText, &kWord2vecBinary, &kGlove, &kHdf5, &kNpy, &kFvecs, &kBvecs, &kIvecs, &kVecpack,
      &kFasttextVec,
  };
  return formats;
}

const FormatDescriptor* find_format(std::string_view name) {
  std::string wanted = lower(name);
  for (const FormatDescriptor* format : format_list()) {
    if (wanted == format->name) return format;
  }
  return nullptr;
}

const FormatDescriptor& detect_format(const std::string& path, std::string_view name) {
  if (!name.empty()) return named(name);
  const std::string file = container_of(path);
  // Formats that cannot be recognised by content (raw binary records) go by extension alone:
  // their bytes could happen to look like text.
  const FormatDescriptor* by_name = by_extension(file);
  if (by_name && !by_name->sniff) return *by_name;
  if (is_regular_file(file)) {
    io::InputFile in(file, kSniffBytes);  // decompresses gzip, skips a byte order mark
    std::string_view head = in.peek(kSniffBytes);
    const auto* bytes = reinterpret_cast<const uint8_t*>(head.data());
    for (const FormatDescriptor* format : format_list()) {
      if (format->sniff && format->sniff(bytes, head.size())) return *format;
    }
  }
  if (by_name) return *by_name;
  throw Error("cannot tell the format of " + path + " from its content or extension; known formats: " +
              known_names() + " (name one explicitly)");
}

Table read_table(const std::string& path, std::string_view format, const ReadOptions& options) {
  const FormatDescriptor& descriptor = detect_format(path, format);
  if (!descriptor.read) throw Error(std::string("format ") + descriptor.name + " cannot be read");
  Table table = descriptor.read(path, options);
  // Where the rows came from in frequency order, the table says so (mixdim ranks rows by it).
  if (descriptor.rows_by_frequency) table.set_source(table.meta().source_format, table.meta().source_path, true);
  return table;
}

// Output goes by name or extension only: an old file about to be replaced says nothing about
// the format wanted now.
void write_table(const Table& table, const std::string& path, std::string_view format, const WriteOptions& options) {
  const FormatDescriptor* descriptor = format.empty() ? by_extension(path) : &named(format);
  if (!descriptor) {
    throw Error("cannot tell which format to write " + path + " in from its extension; known formats: " +
                known_names() + " (name one explicitly)");
  }
  if (!descriptor->write) throw Error(std::string("format ") + descriptor->name + " cannot be written");
  descriptor->write(table, path, options);
}

namespace {

// Bytes this process can still use: MemAvailable, the cgroup's memory.max less what it uses,
// and RLIMIT_AS, whichever is least.
uint64_t available_memory() {
  uint64_t available = 0;
  std::ifstream meminfo("/proc/meminfo");
  std::string name;
  uint64_t kib = 0;
  std::string unit;
  while (meminfo >> name >> kib >> unit) {
    if (name == "MemAvailable:") {
      available = kib * 1024;
      break;
    }
  }
  if (available == 0) {
    long pages = ::sysconf(_SC_AVPHYS_PAGES), page = ::sysconf(_SC_PAGESIZE);
    available = pages > 0 && page > 0 ? uint64_t(pages) * uint64_t(page) : uint64_t{4} << 30;
  }
  std::ifstream max_file("/sys/fs/cgroup/memory.max"), current_file("/sys/fs/cgroup/memory.current");
  std::string max_text;
  uint64_t current = 0;
  if (max_file >> max_text && max_text != "max" && current_file >> current) {
    uint64_t max = 0;
    auto parsed = std::from_chars(max_text.data(), max_text.data() + max_text.size(), max);
    if (parsed.ec == std::errc() && max > current) available = std::min(available, max - current);
  }
  rlimit limit{};
  if (::getrlimit(RLIMIT_AS, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY) {
    available = std::min<uint64_t>(available, limit.rlim_cur);
  }
  return available;
}

}  // namespace

uint64_t default_memory_limit() { return available_memory() / 5 * 4; }

uint64_t parse_memory_size(std::string_view text) {
  const std::string lowered = lower(text);
  if (lowered == "none" || lowered == "unlimited") return kNoMemoryLimit;
  auto bad = [&] {
    return SpecError("memory size '" + std::string(text) +
                     "' is not a size; expected bytes with an optional K, M, G or T suffix (powers of 1024), "
                     "a share of available memory such as 50%, or none");
  };
  double value = 0;
  const char* begin = lowered.data();
  const char* end = begin + lowered.size();
  auto parsed = std::from_chars(begin, end, value);
  if (parsed.ec != std::errc() || parsed.ptr == begin || !std::isfinite(value) || value < 0) throw bad();
  std::string_view suffix(parsed.ptr, static_cast<size_t>(end - parsed.ptr));
  if (!suffix.empty() && suffix.back() == 'b' && suffix.size() > 1) suffix.remove_suffix(1);  // "4gb", "4gib"
  if (!suffix.empty() && suffix.back() == 'i') suffix.remove_suffix(1);
  double bytes = value;
  if (suffix == "%") {
    if (value > 100) throw bad();
    bytes = value / 100 * static_cast<double>(available_memory());
  } else if (suffix.size() == 1 && std::strchr("kmgt", suffix[0])) {
    bytes = std::ldexp(value, 10 * (1 + int(std::strchr("kmgt", suffix[0]) - "kmgt")));
  } else if (!suffix.empty() && suffix != "b") {
    throw bad();
  }
  if (bytes < 1) throw SpecError("memory size '" + std::string(text) + "' is zero; name a size, or none for no limit");
  return bytes >= 1.8e19 ? kNoMemoryLimit : static_cast<uint64_t>(bytes);
}

}  // namespace vecpack
