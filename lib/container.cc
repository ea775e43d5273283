#include "container.h"

#include <cstring>

#include <xxhash.h>

#include "bytes.h"
#include "vecpack/errors.h"

namespace vecpack {

static std::string fourcc_text(const uint8_t* p) {
  std::string s(reinterpret_cast<const char*>(p), 4);
  for (char& c : s)
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) > 0x7e) c = '?';
  return s;
}

static void check_type(std::string_view type) {
  if (type.size() != 4) throw Error("section type must be 4 characters: '" + std::string(type) + "'");
}

ContainerWriter::ContainerWriter(const std::string& path) : file_(path) { file_.write_zeros(kHeaderSize); }

void ContainerWriter::pad_to(uint64_t align) {
  uint64_t pos = file_.position();
  uint64_t padded = (pos + align - 1) / align * align;
  file_.write_zeros(padded - pos);
}

void ContainerWriter::add(std::string_view type, const void* data, uint64_t size, uint64_t align) {
  add_streamed(type, size, align, [&](const Sink& sink) { sink(data, size); });
}

void ContainerWriter::add_streamed(std::string_view type, uint64_t size, uint64_t align,
                                   const std::function<void(const Sink&)>& produce) {
  check_type(type);
  pad_to(align);
  SectionInfo info;
  info.type = std::string(type);
  info.offset = file_.position();
  XXH64_state_t* state = XXH64_createState();
  XXH64_reset(state, 0);
  uint64_t written = 0;
  try {
    produce([&](const void* data, size_t n) {
      file_.write(data, n);
      XXH64_update(state, data, n);
      written += n;
    });
  } catch (...) {
    XXH64_freeState(state);
    throw;
  }
  info.checksum = XXH64_digest(state);
  XXH64_freeState(state);
  if (written != size)
    throw Error("section " + info.type + ": " + std::to_string(written) + " bytes written, " + std::to_string(size) + " declared");
  info.length = size;
  sections_.push_back(std::move(info));
}

void ContainerWriter::commit() {
  pad_to(kSectionAlign);
  uint64_t table_offset = file_.position();
  ByteWriter table;
  for (const auto& s : sections_) {
    table.put_bytes(s.type.data(), 4);
    table.put<uint32_t>(0);  // flags, reserved
    table.put<uint64_t>(s.offset);
    table.put<uint64_t>(s.length);
    table.put<uint64_t>(s.checksum);
  }
  file_.write(table.bytes().data(), table.bytes().size());

  ByteWriter header;
  header.put_bytes(kFileMagic, 8);
  header.put<uint16_t>(kFormatMajor);
  header.put<uint16_t>(kFormatMinor);
  header.put<uint32_t>(0);  // flags
  header.put<uint64_t>(file_.position());
  header.put<uint64_t>(table_offset);
  header.put<uint32_t>(static_cast<uint32_t>(sections_.size()));
  header.put<uint32_t>(static_cast<uint32_t>(kSectionEntrySize));
  header.put<uint64_t>(xxh64(table.bytes().data(), table.bytes().size()));
  header.put<uint64_t>(0);  // reserved
  header.put<uint64_t>(xxh64(header.bytes().data(), 56));
  file_.pwrite(header.bytes().data(), kHeaderSize, 0);
  file_.commit();
}

// Explains a wrong magic: text-mode transfers turn "\r\n" into "\n" or "\n" into "\r\n".
static std::string magic_problem(const uint8_t* p, uint64_t size) {
  if (size >= 4 && p[0] == 0x89 && p[1] == 'V' && p[2] == 'P' && p[3] == 'K')
    return "damaged magic bytes (the file was probably transferred in text mode, which rewrites line endings)";
  return "not a .vecpack file (wrong magic bytes)";
}

ContainerReader::ContainerReader(const std::string& path) : file_(std::make_shared<MappedFile>(path)) {
  const uint8_t* p = file_->data();
  uint64_t size = file_->size();
  auto fail = [&](const std::string& message, const std::string& section, uint64_t offset) {
    throw FormatError(path + ": " + message, section, offset);
  };
  if (size < 8 || std::memcmp(p, kFileMagic, 8) != 0) fail(size < 8 ? "file is too short to be a .vecpack file (" + std::to_string(size) + " bytes)" : magic_problem(p, size), "header", 0);
  if (size < kHeaderSize) fail("truncated header (" + std::to_string(size) + " of 64 bytes)", "header", 0);
  ByteReader h(p, kHeaderSize, path + ": header");
  h.take(8);
  uint16_t major = h.get<uint16_t>();
  minor_ = h.get<uint16_t>();
  h.get<uint32_t>();
  uint64_t declared_size = h.get<uint64_t>();
  uint64_t table_offset = h.get<uint64_t>();
  uint32_t count = h.get<uint32_t>();
  uint32_t entry_size = h.get<uint32_t>();
  uint64_t table_checksum = h.get<uint64_t>();
  h.get<uint64_t>();
  uint64_t header_checksum = h.get<uint64_t>();
  if (major > kFormatMajor)
    fail("format version " + std::to_string(major) + "." + std::to_string(minor_) + " is newer than this vecpack reads (" +
             std::to_string(kFormatMajor) + ".x); upgrade vecpack",
         "header", 8);
  if (major < 1) fail("format version 0 is not a released format", "header", 8);
  if (xxh64(p, 56) != header_checksum) fail("header checksum mismatch (the header is damaged)", "header", 56);
  if (declared_size != size)
    fail("file is " + std::string(size < declared_size ? "truncated" : "longer than written") + ": header says " +
             std::to_string(declared_size) + " bytes, file has " + std::to_string(size),
         "header", 16);
  if (entry_size != kSectionEntrySize) fail("unsupported section entry size " + std::to_string(entry_size), "header", 36);
  if (count > kMaxSections) fail("section count " + std::to_string(count) + " exceeds " + std::to_string(kMaxSections), "header", 32);
  uint64_t table_bytes = uint64_t(count) * kSectionEntrySize;
  if (table_offset > size || table_bytes > size - table_offset)
    fail("section table at offset " + std::to_string(table_offset) + " lies outside the file", "section table", table_offset);
  if (xxh64(p + table_offset, table_bytes) != table_checksum)
    fail("section table checksum mismatch (the table is damaged)", "section table", table_offset);
  ByteReader t(p + table_offset, table_bytes, path + ": section table");
  for (uint32_t i = 0; i < count; ++i) {
    SectionInfo s;
    s.type = fourcc_text(t.take(4));
    t.get<uint32_t>();
    s.offset = t.get<uint64_t>();
    s.length = t.get<uint64_t>();
    s.checksum = t.get<uint64_t>();
    uint64_t entry_offset = table_offset + uint64_t(i) * kSectionEntrySize;
    if (s.offset < kHeaderSize || s.offset > size || s.length > size - s.offset)
      fail("section " + s.type + " (offset " + std::to_string(s.offset) + ", length " + std::to_string(s.length) +
               ") lies outside the file",
           s.type, entry_offset);
    if (s.offset % kSectionAlign != 0) fail("section " + s.type + " is not 64-byte aligned", s.type, entry_offset);
    if (find(s.type)) fail("section " + s.type + " appears twice", s.type, entry_offset);
    sections_.push_back(std::move(s));
  }
}

const SectionInfo* ContainerReader::find(std::string_view type) const {
  for (const auto& s : sections_)
    if (s.type == type) return &s;
  return nullptr;
}

ByteSpan ContainerReader::section(std::string_view type, bool verify, bool required) const {
  const SectionInfo* s = find(type);
  if (!s) {
    if (required) throw FormatError(path() + ": required section " + std::string(type) + " is missing", std::string(type), 0);
    return {};
  }
  ByteSpan span{file_->data() + s->offset, s->length};
  if (verify && xxh64(span.data, span.size) != s->checksum)
    throw FormatError(path() + ": section " + s->type + " at offset " + std::to_string(s->offset) +
                          " is damaged (checksum mismatch)",
                      s->type, s->offset);
  return span;
}

VerifyReport ContainerReader::verify(const std::string& path) {
  VerifyReport report;
  std::unique_ptr<ContainerReader> reader;
  try {
    reader = std::make_unique<ContainerReader>(path);
  } catch (const FormatError& e) {
    report.problems.push_back(e.what());
    return report;
  }
  for (const auto& s : reader->sections()) {
    VerifyReport::Check check{s, false};
    const uint8_t* data = reader->file_->data() + s.offset;
    check.ok = xxh64(data, s.length) == s.checksum;
    if (!check.ok)
      report.problems.push_back("section " + s.type + " at offset " + std::to_string(s.offset) + " (" +
                                std::to_string(s.length) + " bytes) is damaged: checksum mismatch");
    report.checks.push_back(std::move(check));
  }
  return report;
}

}  // namespace vecpack
