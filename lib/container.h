// The .vecpack container: header, sections, section table (docs/FORMAT.md).
// The reader validates the header and the section table on open (O(number of sections));
// section contents are checksummed on demand (small sections at open, all in verify).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "atomic_file.h"
#include "mapped_file.h"
#include "vecpack/table.h"

namespace vecpack {

inline constexpr uint8_t kFileMagic[8] = {0x89, 'V', 'P', 'K', '\r', '\n', 0x1a, '\n'};
inline constexpr uint16_t kFormatMajor = 1;
inline constexpr uint16_t kFormatMinor = 4;
inline constexpr uint64_t kHeaderSize = 64;
inline constexpr uint64_t kSectionEntrySize = 32;
inline constexpr uint32_t kMaxSections = 1024;
inline constexpr uint64_t kSectionAlign = 64;
inline constexpr uint64_t kCodeAlign = 4096;

struct ByteSpan {
  const uint8_t* data = nullptr;
  uint64_t size = 0;
};

class ContainerWriter {
 public:
  explicit ContainerWriter(const std::string& path);
  // Sections are laid out in the order added, each at a multiple of align.
  void add(std::string_view type, const void* data, uint64_t size, uint64_t align = kSectionAlign);
  // A section written in chunks by produce(sink), so large sections are never held whole.
  // Exactly size bytes must be passed to sink.
  using Sink = std::function<void(const void*, size_t)>;
  void add_streamed(std::string_view type, uint64_t size, uint64_t align, const std::function<void(const Sink&)>& produce);
  void commit();  // section table, header, fsync, rename

 private:
  void pad_to(uint64_t align);
  AtomicFile file_;
  std::vector<SectionInfo> sections_;
};

class ContainerReader {
 public:
  // Throws FormatError (damaged, truncated, newer version) or IoError.
  explicit ContainerReader(const std::string& path);

  const std::string& path() const { return file_->path(); }
  uint64_t file_size() const { return file_->size(); }
  const std::vector<SectionInfo>& sections() const { return sections_; }
  const SectionInfo* find(std::string_view type) const;
  // The bytes of a section; FormatError when required and missing. verify: check its checksum.
  ByteSpan section(std::string_view type, bool verify, bool required = true) const;
  std::shared_ptr<const MappedFile> mapping() const { return file_; }
  uint16_t minor_version() const { return minor_; }

  // Checks every checksum; problems name the section and its offset.
  static VerifyReport verify(const std::string& path);

 private:
  std::shared_ptr<MappedFile> file_;
  std::vector<SectionInfo> sections_;
  uint16_t minor_ = 0;
};

}  // namespace vecpack
