#include "formats/hdf5.h"

#include <fcntl.h>
#include <hdf5.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "atomic_file.h"
#include "text_io.h"
#include "vecpack/errors.h"

namespace vecpack {
namespace {

constexpr hsize_t kMaxDim = hsize_t{kMaxDimension};
constexpr hsize_t kBlockRows = 4096;
// Deflate cannot compress by more than about 1032:1; a dataset claiming more than this over
// its stored bytes is damaged or hostile, and must not make us allocate its logical size.
constexpr hsize_t kMaxCompressionRatio = 1100;
// The largest element a dataset or attribute vecpack reads may have: a float, an integer, or a
// fixed-length key of at most 64 KiB.
constexpr size_t kMaxElementBytes = size_t{1} << 16;
// A variable-length string in the file: its length, heap collection address, object index.
constexpr uint64_t kHeapReferenceBytes = 4 + 8 + 4;

// Owns one HDF5 identifier and closes it with the matching function.
class Handle {
 public:
  Handle() = default;
  Handle(hid_t id, herr_t (*closer)(hid_t)) : id_(id), close_(closer) {}
  ~Handle() { reset(); }
  Handle(Handle&& other) noexcept : id_(other.id_), close_(other.close_) { other.id_ = H5I_INVALID_HID; }
  Handle& operator=(Handle&& other) noexcept {
    if (this != &other) {
      reset();
      id_ = other.id_;
      close_ = other.close_;
      other.id_ = H5I_INVALID_HID;
    }
    return *this;
  }
  hid_t get() const noexcept { return id_; }
  bool valid() const noexcept { return id_ >= 0; }
  // Closes now; false when closing failed (for a file: its data did not reach the disk).
  bool close() {
    herr_t status = id_ >= 0 ? close_(id_) : 0;
    id_ = H5I_INVALID_HID;
    return status >= 0;
  }

 private:
  void reset() {
    if (id_ >= 0 && close_) close_(id_);
    id_ = H5I_INVALID_HID;
  }
  hid_t id_ = H5I_INVALID_HID;
  herr_t (*close_)(hid_t) = nullptr;
};

// HDF5 prints its error stack to stderr by default; vecpack reports errors as exceptions.
void silence_hdf5() { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); }

herr_t keep_innermost(unsigned depth, const H5E_error2_t* error, void* out) {
  if (depth == 0 && error->desc) *static_cast<std::string*>(out) = error->desc;
  return 0;
}

// The most specific message on HDF5's error stack, as " (message)", and clears the stack.
std::string hdf5_detail() {
  std::string message;
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, keep_innermost, &message);
  H5Eclear2(H5E_DEFAULT);
  return message.empty() ? std::string() : " (" + message + ")";
}

[[noreturn]] void fail(const std::string& file, const std::string& dataset, const std::string& what) {
  throw FormatError(file + ": " + (dataset.empty() ? "" : "dataset '" + dataset + "': ") + what + hdf5_detail(),
                    dataset);
}

bool is_regular_file(const std::string& path) {
  struct stat info {};
  return ::stat(path.c_str(), &info) == 0 && S_ISREG(info.st_mode);
}

// A file's bytes, read directly, for what vecpack checks before libhdf5 parses the parts of a
// damaged file that libhdf5 1.10 mishandles. Numbers in HDF5 are little-endian.
class RawFile {
 public:
  explicit RawFile(const std::string& path) : fd_(::open(path.c_str(), O_RDONLY | O_CLOEXEC)) {
    if (fd_ < 0) throw IoError(path, "open", errno);
    struct stat info {};
    if (::fstat(fd_, &info) != 0) {
      const int error = errno;
      ::close(fd_);
      throw IoError(path, "stat", error);
    }
    size_ = static_cast<uint64_t>(info.st_size);
  }
  ~RawFile() { ::close(fd_); }
  RawFile(const RawFile&) = delete;
  RawFile& operator=(const RawFile&) = delete;
  uint64_t size() const { return size_; }

  // Reads `size` bytes at absolute `offset`; false when they are not all in the file.
  bool read_at(uint64_t offset, void* out, uint64_t size) const {
    if (offset > size_ || size > size_ - offset) return false;
    return ::pread(fd_, out, size, static_cast<off_t>(offset)) == static_cast<ssize_t>(size);
  }

  static uint64_t u16(const uint8_t* p) { return uint64_t(p[0]) | uint64_t(p[1]) << 8; }
  static uint64_t u32(const uint8_t* p) { return u16(p) | u16(p + 2) << 16; }
  static uint64_t u64(const uint8_t* p) { return u32(p) | u32(p + 4) << 32; }

 private:
  int fd_;
  uint64_t size_ = 0;
};

void ignore_message(uint64_t, const uint8_t*, uint64_t) {}

// The messages of the object header at `address` (from the file's `base`), read by vecpack itself.
// libhdf5 1.10 follows a continuation message to any address (2^64 - 1 crashed it in H5Fopen),
// decodes every attribute message of an object when any attribute is looked up, reading past
// a damaged one's end, and allocates (and zeroes) as many bytes as a variable-length string's
// reference says, up to 4 GiB. So vecpack walks the headers of the objects it opens first:
// versions 1 (h5py's and vecpack's default) and 2, with their continuation blocks;
// `visit(type, data, size)` sees each message. `base` is the file's base address; `object`
// names the object in messages ("the root group", "dataset 'train'").
// A message may be shared: stored in another object header (a committed datatype), whose
// header is walked too (one level), or in the file's shared-message index, which vecpack
// refuses (libhdf5 1.10 crashed looking it up in a file without one). Shared messages are not
// visited.
template <typename Visit>
void for_each_header_message(const RawFile& file, uint64_t base, uint64_t address, const std::string& path,
                             const std::string& object, Visit&& visit, int depth = 0) {
  constexpr uint64_t kMaxBlock = uint64_t{1} << 20;  // libhdf5 writes blocks of a few KiB
  constexpr int kMaxBlocks = 64;
  auto damaged = [&](const std::string& what) {
    throw FormatError(path + ": the object header of " + object + " " + what, "");
  };
  if (base >= file.size() || address >= file.size() - base) damaged("lies outside the file");
  const uint64_t header = base + address;
  uint8_t prefix[40] = {};  // the longest version 2 prefix is 34 bytes; a version 1 prefix, 16
  if (!file.read_at(header, prefix, std::min<uint64_t>(sizeof prefix, file.size() - header))) {
    damaged("lies outside the file");
  }
  const bool version2 = std::memcmp(prefix, "OHDR", 4) == 0;
  struct Block {
    uint64_t offset, size;
  };
  std::vector<Block> blocks;
  if (version2) {
    if (prefix[4] != 2) damaged("has version " + std::to_string(prefix[4]));
    const unsigned flags = prefix[5];
    uint64_t at = 6 + ((flags & 0x20) ? 16 : 0) + ((flags & 0x10) ? 4 : 0);
    const unsigned width = 1u << (flags & 3);
    uint64_t size = 0;
    for (unsigned i = 0; i < width; ++i) size |= uint64_t(prefix[at + i]) << (8 * i);
    blocks.push_back({header + at + width, size});
  } else {
    if (prefix[0] != 1) damaged("has version " + std::to_string(prefix[0]));
    blocks.push_back({header + 16, RawFile::u32(prefix + 8)});
  }
  const bool creation_order = version2 && (prefix[5] & 0x04);
  const uint64_t message_header = version2 ? (creation_order ? 6 : 4) : 8;
  std::vector<uint8_t> bytes;
  std::vector<uint64_t> shared_headers;
  for (size_t next = 0; next < blocks.size(); ++next) {
    const Block block = blocks[next];
    if (block.size > kMaxBlock) damaged("has a block of " + std::to_string(block.size) + " bytes");
    bytes.resize(static_cast<size_t>(block.size));
    if (!file.read_at(block.offset, bytes.data(), block.size)) damaged("has a block outside the file");
    // Version 2: chunk 0's size counts its messages only; a continuation block holds "OCHK",
    // messages and a checksum.
    uint64_t at = 0, end = block.size;
    if (version2 && next > 0) {
      if (block.size < 8 || std::memcmp(bytes.data(), "OCHK", 4) != 0) damaged("has a damaged continuation block");
      at = 4;
      end = block.size - 4;
    }
    while (at + message_header <= end) {
      const uint8_t* message = bytes.data() + at;
      const uint64_t type = version2 ? message[0] : RawFile::u16(message);
      const uint64_t size = version2 ? RawFile::u16(message + 1) : RawFile::u16(message + 2);
      at += message_header;
      if (size > end - at) damaged("has a message of " + std::to_string(size) + " bytes past its block's end");
      const uint8_t* data = bytes.data() + at;
      const unsigned flags = version2 ? message[3] : message[4];
      if (flags & 0x02) {  // shared: a version, a kind, then where the message is
        const unsigned version = size >= 2 ? data[0] : 0, kind = size >= 2 ? data[1] : 0;
        uint64_t address_at = 0;  // of the object header that holds it
        if (version == 1) {
          address_at = 8;
        } else if (version == 2 || (version == 3 && kind == 2)) {
          address_at = 2;
        } else if (version == 3 && kind == 1) {
          damaged("has a message in the file's shared-message index, which vecpack does not read");
        } else if (version != 3 || kind != 3) {  // 3: shared within this header
          damaged("has a damaged shared message");
        }
        if (address_at) {
          if (address_at + 8 > size) damaged("has a damaged shared message");
          shared_headers.push_back(RawFile::u64(data + address_at));
        }
      } else if (type == 0x10) {  // continuation: the next block's address and length
        if (size < 16) damaged("has a damaged continuation message");
        if (blocks.size() == kMaxBlocks) damaged("has more than " + std::to_string(kMaxBlocks) + " blocks");
        const uint64_t offset = RawFile::u64(data), length = RawFile::u64(data + 8);
        if (offset >= file.size() - base) damaged("continues outside the file");
        blocks.push_back({base + offset, length});
      } else {
        visit(type, data, size);
      }
      at += size;
    }
  }
  if (depth > 0) return;
  for (uint64_t shared : shared_headers) {
    for_each_header_message(file, base, shared, path, "a message that " + object + " shares", ignore_message, 1);
  }
}

// The object header at `address`, checked as for_each_header_message reads it.
void check_object_header(const RawFile& file, uint64_t base, uint64_t address, const std::string& path,
                         const std::string& object) {
  for_each_header_message(file, base, address, path, object, ignore_message);
}

// Before libhdf5 opens a file, vecpack checks what H5Fopen reads and 1.10 mishandles:
// - the root group's object header (see for_each_header_message);
// - the root group's local heap: libhdf5 follows its free list without noticing a cycle,
//   allocating a node per step until memory runs out (a 9 KB file took 24 GB and two minutes).
//   A group stored as a symbol table (every group in files written for the earliest library
//   version, which h5py and vecpack write by default) has one, and any lookup reads the root's.
// Files with other address sizes go unchecked: no writer vecpack knows makes them.
void check_root_group(const std::string& path) {
  const RawFile file(path);
  const uint64_t file_size = file.size();
  auto read_at = [&](uint64_t offset, void* out, uint64_t size) { return file.read_at(offset, out, size); };
  auto u64 = RawFile::u64;
  static const uint8_t kSignature[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};
  uint8_t block[100] = {};  // a version 1 superblock with 8-byte addresses: 100 bytes
  uint64_t at = 0;
  for (;; at = at ? at * 2 : 512) {  // the superblock: at 0, 512, 1024, ...
    if (at >= file_size || !read_at(at, block, std::min<uint64_t>(sizeof block, file_size - at))) return;
    if (std::memcmp(block, kSignature, 8) == 0) break;
  }
  const unsigned version = block[8];
  auto require_bytes = [&](uint64_t size) {
    if (at + size > file_size) {
      throw FormatError(path + ": the HDF5 superblock (version " + std::to_string(version) + ") is cut short at " +
                            std::to_string(file_size - at) + " of its " + std::to_string(size) + " bytes",
                        "");
    }
  };
  if (version >= 2) {  // sizes, flags, base, extension, end of file, root object header
    if (block[9] != 8 || block[10] != 8) return;
    require_bytes(48);
    const uint64_t base = u64(block + 12);
    check_object_header(file, base, u64(block + 36), path, "the root group");
    return;  // no symbol tables
  }
  if (block[13] != 8 || block[14] != 8) return;
  require_bytes(version == 0 ? 96 : 100);
  const uint8_t* fields = block + (version == 0 ? 24 : 28);  // base, free space, end of file, driver
  const uint64_t base = u64(fields);
  // libhdf5 1.10 allocates the driver information block's declared size (up to 4 GiB) before
  // reading it.
  const uint64_t driver = u64(fields + 24);
  if (driver != ~uint64_t{0}) {
    uint8_t header[16];  // version, reserved, size, driver name
    if (base >= file_size || driver >= file_size - base || !read_at(base + driver, header, sizeof header) ||
        RawFile::u32(header + 4) > file_size - base - driver - sizeof header) {
      throw FormatError(path + ": the HDF5 driver information block lies outside the file", "");
    }
  }
  const uint8_t* root = fields + 32;  // link name offset, object header, cache type, reserved, scratch pad
  check_object_header(file, base, u64(root + 8), path, "the root group");
  const uint64_t cache_type = RawFile::u32(root + 16);
  if (cache_type != 1) return;  // no symbol table cached in the superblock
  const uint64_t heap = u64(root + 32);
  uint8_t header[32];
  if (heap > file_size || !read_at(base + heap, header, sizeof header) || std::memcmp(header, "HEAP", 4) != 0) return;
  const uint64_t data_size = u64(header + 8), data = u64(header + 24);
  // The list ends at offset 1 (libhdf5's H5HL_FREE_NULL; offsets are 8-aligned) or, as the
  // specification puts it, at the undefined address.
  auto is_end = [](uint64_t offset) { return offset == 1 || offset == ~uint64_t{0}; };
  uint64_t free_block = u64(header + 16);
  // A list without a loop visits each block once, and blocks of 16 bytes or more fit the data
  // segment (which the file holds) at most size / 16 times.
  const uint64_t max_steps = std::min(data_size, file_size) / 16 + 1;
  for (uint64_t steps = 0; !is_end(free_block); ++steps) {
    uint8_t entry[16];
    if (free_block >= data_size || steps > max_steps || data > file_size ||
        !read_at(base + data + free_block, entry, sizeof entry)) {
      throw FormatError(path + ": the root group's local heap has a damaged free list (block " +
                            std::to_string(free_block) + " after " + std::to_string(steps) +
                            " steps; a loop there makes libhdf5 allocate until memory runs out)",
                        "");
    }
    free_block = u64(entry);
  }
}

Handle open_file(const std::string& path) {
  if (::access(path.c_str(), R_OK) != 0) throw IoError(path, "open", errno);
  if (!is_regular_file(path)) throw IoError(path, "open", EISDIR);
  if (H5Fis_hdf5(path.c_str()) <= 0) {
    H5Eclear2(H5E_DEFAULT);
    throw FormatError(path + ": not an HDF5 file", "", 0);
  }
  check_root_group(path);
  hid_t id = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  if (id < 0) fail(path, "", "cannot open the HDF5 file");
  return Handle(id, H5Fclose);
}

// libhdf5 1.10 can loop forever in H5HG_read on a damaged global heap. A variable-length
// string is a reference (length, collection address, object index) into a heap collection
// ("GCOL"), and libhdf5 walks a collection's object list by the sizes it finds: a free-space
// entry of size 0 never moves it on, and a string naming an object the collection lacks makes
// it retry forever. So vecpack walks each collection it is about to use itself, as libhdf5
// does, and refuses the file unless the walk ends exactly at the collection's end and the
// object is there, long enough.
class HeapCheck {
 public:
  HeapCheck(hid_t file, const std::string& path, const std::string& name) : path_(path), name_(name) {
    Handle create(H5Fget_create_plist(file), H5Pclose);
    size_t address_bytes = 0, length_bytes = 0;
    usable_ = create.valid() && H5Pget_sizes(create.get(), &address_bytes, &length_bytes) >= 0 &&
              H5Pget_userblock(create.get(), &base_) >= 0 && address_bytes == 8 && length_bytes == 8;
    H5Eclear2(H5E_DEFAULT);  // every writer uses 8-byte addresses and lengths; others go unchecked
    if (usable_) file_.emplace(path);
  }
  bool usable() const { return usable_; }
  const RawFile& file() const { return *file_; }
  uint64_t file_size() const { return file_->size(); }
  hsize_t base() const { return base_; }
  bool read_at(uint64_t offset, void* out, uint64_t size) const { return file_->read_at(offset, out, size); }

  // The string `what` refers to object `index` (at least `length` bytes) of the collection at
  // `address` (relative to the file's base).
  void check_reference(uint64_t length, uint64_t address, uint64_t index, const std::string& what) {
    object(length, address, index, what);
  }

  // The `length` bytes of the string that the reference names, checked as check_reference does.
  std::string read_reference(uint64_t length, uint64_t address, uint64_t index, const std::string& what) {
    if (length == 0 && address == 0) return {};
    const uint64_t offset = object(length, address, index, what).offset;
    std::string text(static_cast<size_t>(length), '\0');
    if (!read_at(base_ + address + offset + 16, text.data(), length)) {
      damaged(what + " points at heap collection " + std::to_string(address) + ", which cannot be read");
    }
    return text;
  }

 private:
  struct Object {
    uint64_t offset, size;  // offset of the object's header in its collection
  };

  [[noreturn]] void damaged(const std::string& what) const {
    fail(path_, name_, "variable-length strings: " + what);
  }

  const Object& object(uint64_t length, uint64_t address, uint64_t index, const std::string& what) {
    static const Object kNone{0, 0};
    if (length == 0 && address == 0) return kNone;  // a null string: nothing to read
    const std::string at = what + " points at heap collection " + std::to_string(address);
    const auto& objects = collection(address, at);
    auto object = objects.find(index);
    if (object == objects.end() || object->second.size < length) {
      damaged(at + ", which has no object " + std::to_string(index) + " of " + std::to_string(length) + " bytes");
    }
    return object->second;
  }

  // The collection's objects (index -> offset and size), walked as libhdf5 walks it.
  const std::unordered_map<uint64_t, Object>& collection(uint64_t address, const std::string& at) {
    auto found = collections_.find(address);
    if (found != collections_.end()) return found->second;
    const uint64_t file_size = file_->size();
    uint8_t header[16];
    if (address > file_size || !read_at(base_ + address, header, sizeof header)) damaged(at + ", outside the file");
    if (std::memcmp(header, "GCOL", 4) != 0 || header[4] != 1) damaged(at + ", which is not a heap collection");
    const uint64_t size = RawFile::u64(header + 8);
    if (size < 4096 || size > file_size || base_ + address > file_size - size) {
      damaged(at + ", whose size " + std::to_string(size) + " does not fit the file");
    }
    std::vector<uint8_t> bytes(static_cast<size_t>(size));
    if (!read_at(base_ + address, bytes.data(), size)) damaged(at + ", which cannot be read");
    auto& objects = collections_[address];
    uint64_t offset = 16;
    while (offset < size) {
      if (offset + 16 > size) break;  // too small for an object header: free space, as libhdf5 takes it
      const uint8_t* object = bytes.data() + offset;
      const uint64_t index = RawFile::u16(object), object_size = RawFile::u64(object + 8);
      // libhdf5 moves on by the size of the free-space entry (index 0) itself, and by the
      // aligned size plus the header for an object.
      const uint64_t step = index == 0 ? object_size : 16 + (object_size + 7) / 8 * 8;
      if (object_size > size || step == 0 || step > size - offset) {
        damaged(at + ", whose object list is damaged at byte " + std::to_string(offset));
      }
      if (index != 0) objects[index] = Object{offset, object_size};
      offset += step;
    }
    return objects;
  }

  std::string path_, name_;
  bool usable_ = false;
  std::optional<RawFile> file_;
  hsize_t base_ = 0;
  std::unordered_map<uint64_t, std::unordered_map<uint64_t, Object>> collections_;
};

// H5Lexists fails, rather than answering false, when a parent group is missing; so walk down.
bool link_exists(hid_t file, const std::string& name) {
  std::string prefix;
  size_t start = 0;
  while (start <= name.size()) {
    size_t slash = name.find('/', start);
    if (slash == std::string::npos) slash = name.size();
    if (slash > start) {
      prefix += "/" + name.substr(start, slash - start);
      if (H5Lexists(file, prefix.c_str(), H5P_DEFAULT) <= 0) {
        H5Eclear2(H5E_DEFAULT);
        return false;
      }
    }
    start = slash + 1;
  }
  return !prefix.empty();
}

// The object header of every object on the way to `name` ("group/train": the group, then the
// dataset), checked before libhdf5 opens them (see for_each_header_message).
void check_objects_on_path(hid_t file, const std::string& path, const std::string& name) {
  HeapCheck raw(file, path, name);
  if (!raw.usable()) return;
  std::string prefix;
  for (size_t start = 0; start <= name.size();) {
    size_t slash = name.find('/', start);
    if (slash == std::string::npos) slash = name.size();
    if (slash > start) {
      prefix += "/" + name.substr(start, slash - start);
      H5L_info_t link{};
      if (H5Lget_info(file, prefix.c_str(), &link, H5P_DEFAULT) < 0) {
        H5Eclear2(H5E_DEFAULT);
        return;  // libhdf5 reports it when opening
      }
      if (link.type == H5L_TYPE_HARD) {
        check_object_header(raw.file(), raw.base(), link.u.address, path, "'" + prefix.substr(1) + "'");
      }
    }
    start = slash + 1;
  }
}

Handle open_dataset(hid_t file, const std::string& path, const std::string& name) {
  if (!link_exists(file, name)) throw FormatError(path + ": no dataset '" + name + "'", name);
  check_objects_on_path(file, path, name);
  hid_t id = H5Dopen2(file, name.c_str(), H5P_DEFAULT);
  if (id < 0) fail(path, name, "is not a dataset");
  return Handle(id, H5Dclose);
}

struct Shape {
  hsize_t rows = 0, cols = 0;
};

// libhdf5 1.10 copies a chunk to wherever its key in the chunk index (a version 1 B-tree)
// says it starts, without checking that this is a chunk boundary inside the dataset: a damaged
// key made it write past its output buffer (1.14 refuses such a key). So vecpack walks the
// tree first: every node inside the file and of the right type and level, every chunk starting
// at a multiple of the chunk's dimensions inside the dataset, and its bytes inside the file.
// `chunk` and `dims` have the dataset's rank; keys also carry the element's dimension (0).
// `stored_chunk`: the bytes every chunk must have (unfiltered), or 0.
void check_chunk_index(const RawFile& file, uint64_t base, uint64_t root, const std::vector<uint64_t>& chunk,
                       const std::vector<uint64_t>& dims, uint64_t stored_chunk, const std::string& path,
                       const std::string& name) {
  auto damaged = [&](const std::string& what) { fail(path, name, "its chunk index " + what); };
  const uint64_t key_bytes = 8 + 8 * (chunk.size() + 1);  // chunk size, filter mask, offsets
  struct Node {
    uint64_t address;
    int level;  // -1: any (the root)
  };
  std::vector<Node> pending{{root, -1}};
  std::unordered_set<uint64_t> seen;
  std::vector<uint8_t> bytes;
  while (!pending.empty()) {
    const Node node = pending.back();
    pending.pop_back();
    if (!seen.insert(node.address).second || seen.size() > 1'000'000) damaged("has a loop or too many nodes");
    uint8_t header[24];  // "TREE", type, level, entries, left and right siblings
    if (base >= file.size() || node.address >= file.size() - base || !file.read_at(base + node.address, header, 24) ||
        std::memcmp(header, "TREE", 4) != 0 || header[4] != 1) {
      damaged("has a node that is not a chunk index node");
    }
    const int level = header[5];
    const uint64_t entries = RawFile::u16(header + 6);
    if (node.level >= 0 && level != node.level) damaged("has a node at the wrong level");
    const uint64_t size = (entries + 1) * key_bytes + entries * 8;
    bytes.resize(static_cast<size_t>(size));
    if (!file.read_at(base + node.address + 24, bytes.data(), size)) damaged("has a node past the end of the file");
    for (uint64_t i = 0; i < entries; ++i) {
      const uint8_t* key = bytes.data() + i * (key_bytes + 8);
      const uint64_t child = RawFile::u64(key + key_bytes);
      if (level > 0) {
        pending.push_back({child, level - 1});
        continue;
      }
      for (size_t d = 0; d < chunk.size(); ++d) {
        const uint64_t offset = RawFile::u64(key + 8 + 8 * d);
        if (chunk[d] == 0 || offset % chunk[d] != 0 || offset >= dims[d]) {
          damaged("places a chunk at " + std::to_string(offset) + " in dimension " + std::to_string(d) +
                  ", not a chunk boundary inside the dataset's " + std::to_string(dims[d]));
        }
      }
      const uint64_t stored = RawFile::u32(key);
      if (stored_chunk && stored != stored_chunk) {
        damaged("has an unfiltered chunk of " + std::to_string(stored) + " bytes; its chunks have " +
                std::to_string(stored_chunk));
      }
      if (child >= file.size() - base || stored > file.size() - base - child) damaged("has a chunk outside the file");
    }
  }
}

// libhdf5 1.10 reads a chunked dataset with the element size its layout message states (the
// chunk's last dimension) rather than its type's, and a compact one from data that may run
// past the message (1.14 refuses both): so the layout message must agree with the type and
// hold its data.
void check_layout_message(hid_t dataset, const std::string& path, const std::string& name, uint64_t element) {
  Handle file(H5Iget_file_id(dataset), H5Fclose);
  H5O_info_t info{};
  if (!file.valid() || H5Oget_info2(dataset, &info, H5O_INFO_BASIC) < 0) {
    H5Eclear2(H5E_DEFAULT);
    return;
  }
  HeapCheck raw(file.get(), path, name);
  if (!raw.usable()) return;
  auto damaged = [&](const std::string& what) { fail(path, name, "its layout message " + what); };
  uint64_t index = ~uint64_t{0};  // a version 3 chunked layout's chunk index (B-tree) address
  auto check = [&](uint64_t type, const uint8_t* data, uint64_t size) {
    if (type != 0x08 || size < 5 || data[0] < 3) return;  // versions 1 and 2 (HDF5 1.6) go unchecked
    const unsigned version = data[0], layout_class = data[1];
    if (layout_class == 0) {  // compact: its size, then its data
      if (4 + RawFile::u16(data + 2) > size) damaged("holds less data than it declares");
      return;
    }
    if (layout_class != 2) return;  // chunked: the chunk's dimensions end with the element size
    // Version 3: class, rank, address, 4-byte dimensions; 4: class, flags, rank, width, dimensions.
    const uint64_t dims_at = version == 3 ? 11 : 5, count = version == 3 ? data[2] : data[3];
    const uint64_t width = version == 3 ? 4 : data[4];
    if (count == 0 || width == 0 || width > 8 || dims_at + count * width > size) damaged("is damaged");
    uint64_t last = 0;
    for (uint64_t i = 0; i < width; ++i) last |= uint64_t(data[dims_at + (count - 1) * width + i]) << (8 * i);
    if (last != element) {
      damaged("gives elements of " + std::to_string(last) + " bytes; its type has " + std::to_string(element));
    }
    if (version == 3) index = RawFile::u64(data + 3);  // version 4 indexes go unchecked
  };
  for_each_header_message(raw.file(), raw.base(), info.addr, path, "dataset '" + name + "'", check);
  if (index == ~uint64_t{0}) return;  // none yet: nothing written
  Handle space(H5Dget_space(dataset), H5Sclose);
  Handle create(H5Dget_create_plist(dataset), H5Pclose);
  const int rank = space.valid() ? H5Sget_simple_extent_ndims(space.get()) : -1;
  if (rank <= 0 || rank > 32 || !create.valid()) return;
  hsize_t dims[32] = {}, max_dims[32] = {}, chunk[32] = {};
  if (H5Sget_simple_extent_dims(space.get(), dims, max_dims) != rank ||
      H5Pget_chunk(create.get(), rank, chunk) != rank) {
    H5Eclear2(H5E_DEFAULT);
    return;
  }
  // As H5Dcreate requires (libhdf5 1.10 does not check it when reading), and at most the 4 GiB
  // a chunk may have.
  uint64_t chunk_bytes = element;
  for (int d = 0; d < rank; ++d) {
    if (chunk[d] == 0 || (max_dims[d] != H5S_UNLIMITED && chunk[d] > max_dims[d]) ||
        __builtin_mul_overflow(chunk_bytes, chunk[d], &chunk_bytes) || chunk_bytes > 0xffffffffu) {
      damaged("gives chunks of " + std::to_string(chunk[d]) + " in dimension " + std::to_string(d) +
              ", which the dataset's shape does not allow");
    }
  }
  // Unfiltered chunks are stored whole.
  const uint64_t stored_chunk = H5Pget_nfilters(create.get()) == 0 ? chunk_bytes : 0;
  check_chunk_index(raw.file(), raw.base(), index, std::vector<uint64_t>(chunk, chunk + rank),
                    std::vector<uint64_t>(dims, dims + rank), stored_chunk, path, name);
}

// The dataset's dimensions: rank 2 (rank 1 as one column when allowed). Checks that its
// logical size fits in memory and matches what the file stores before anyone allocates it.
Shape dataset_shape(hid_t dataset, const std::string& path, const std::string& name, bool vector_allowed) {
  Handle space(H5Dget_space(dataset), H5Sclose);
  if (!space.valid()) fail(path, name, "cannot read its dataspace");
  int rank = H5Sget_simple_extent_ndims(space.get());
  hsize_t dims[2] = {0, 1};
  if (rank == 2 || (rank == 1 && vector_allowed)) {
    H5Sget_simple_extent_dims(space.get(), dims, nullptr);
  } else {
    fail(path, name, "has " + std::to_string(rank) + " dimensions; expected " + (vector_allowed ? "1" : "2"));
  }
  Shape shape{dims[0], dims[1]};
  Handle type(H5Dget_type(dataset), H5Tclose);
  size_t element = type.valid() ? H5Tget_size(type.get()) : 0;
  if (element == 0) fail(path, name, "has an unreadable element type");
  // libhdf5 1.10 sizes its conversion buffers by the element size a damaged type declares.
  if (element > kMaxElementBytes) {
    fail(path, name, "has elements of " + std::to_string(element) + " bytes, more than the " +
                         std::to_string(kMaxElementBytes) + " any float, integer or key takes");
  }
  if (shape.cols > kMaxDim) {
    fail(path, name, "has " + std::to_string(shape.cols) + " columns, more than the supported " + std::to_string(kMaxDim));
  }
  const bool variable = H5Tis_variable_str(type.get()) > 0;
  if (shape.rows == 0 || shape.cols == 0) return shape;
  // In the file, a variable-length string is a heap reference (8-byte addresses assumed).
  const hsize_t stored_element = variable ? kHeapReferenceBytes : element;
  hsize_t limit = std::numeric_limits<hsize_t>::max() / shape.cols / stored_element;
  if (shape.rows > limit) fail(path, name, "is too large to address");
  hsize_t logical = shape.rows * shape.cols * stored_element;
  hsize_t stored = H5Dget_storage_size(dataset);
  Handle plist(H5Dget_create_plist(dataset), H5Pclose);
  const H5D_layout_t layout = plist.valid() ? H5Pget_layout(plist.get()) : H5D_LAYOUT_ERROR;
  // libhdf5 1.10 copies a compact dataset's elements out of its data buffer without checking
  // that the buffer holds them (1.14 refuses such a file).
  if (layout == H5D_COMPACT && stored != logical) {
    fail(path, name,
         "claims " + std::to_string(shape.rows) + " x " + std::to_string(shape.cols) + " elements (" +
             std::to_string(logical) + " bytes) but its compact data has " + std::to_string(stored) + " bytes");
  }
  check_layout_message(dataset, path, name, stored_element);
  // A variable-length string's heap object is checked when its reference is (check_string_heap).
  if (variable) return shape;
  // The stored size is what the file's metadata declares; the bytes must be in the file too.
  hsize_t file_size = 0;
  {
    Handle file(H5Iget_file_id(dataset), H5Fclose);
    if (!file.valid() || H5Fget_filesize(file.get(), &file_size) < 0) fail(path, name, "cannot find the file's size");
  }
  const haddr_t offset = layout == H5D_CONTIGUOUS ? H5Dget_offset(dataset) : 0;
  H5Eclear2(H5E_DEFAULT);
  if (stored > file_size || (offset != HADDR_UNDEF && offset > file_size - std::min(file_size, stored))) {
    fail(path, name,
         "claims " + std::to_string(stored) + " bytes of data but the file has " + std::to_string(file_size) +
             " bytes");
  }
  bool contiguous = layout == H5D_CONTIGUOUS;
  if (contiguous ? stored < logical : stored == 0 || logical / kMaxCompressionRatio > stored) {
    fail(path, name,
         "claims " + std::to_string(shape.rows) + " x " + std::to_string(shape.cols) + " elements but stores only " +
             std::to_string(stored) + " bytes");
  }
  return shape;
}

void read_block(hid_t dataset, hid_t memory_type, hsize_t first, hsize_t count, hsize_t cols, void* out,
                const std::string& path, const std::string& name, bool vector) {
  Handle file_space(H5Dget_space(dataset), H5Sclose);
  hsize_t start[2] = {first, 0}, size[2] = {count, cols};
  int rank = vector ? 1 : 2;
  if (!file_space.valid() ||
      H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, start, nullptr, size, nullptr) < 0) {
    fail(path, name, "cannot select rows " + std::to_string(first) + ".." + std::to_string(first + count));
  }
  Handle memory_space(H5Screate_simple(rank, size, nullptr), H5Sclose);
  if (H5Dread(dataset, memory_type, memory_space.get(), file_space.get(), H5P_DEFAULT, out) < 0) {
    fail(path, name, "cannot read rows " + std::to_string(first) + ".." + std::to_string(first + count));
  }
}

void require_class(hid_t dataset, H5T_class_t wanted, const std::string& path, const std::string& name,
                   const char* expected) {
  Handle type(H5Dget_type(dataset), H5Tclose);
  if (!type.valid() || H5Tget_class(type.get()) != wanted) fail(path, name, std::string("expected ") + expected + " elements");
}

// The data of a compact dataset, which lives in the layout message (version 3 or 4) of its
// object header, into `out` (whose size it must have); false when the dataset is not compact
// or its layout message is of an older version.
bool compact_data(const HeapCheck& heap, hid_t dataset, const std::string& path, const std::string& name,
                  std::vector<uint8_t>& out) {
  H5O_info_t info{};
  if (H5Oget_info2(dataset, &info, H5O_INFO_BASIC) < 0) {
    H5Eclear2(H5E_DEFAULT);
    return false;
  }
  bool found = false;
  for_each_header_message(heap.file(), heap.base(), info.addr, path, "dataset '" + name + "'",
                          [&](uint64_t type, const uint8_t* data, uint64_t size) {
                            // 0x08: the layout; class 0: compact, its size and then its data
                            if (type != 0x08 || found || size < 4 || data[0] < 3 || data[1] != 0) return;
                            const uint64_t bytes = RawFile::u16(data + 2);
                            if (bytes != out.size() || 4 + bytes > size) {
                              fail(path, name, "its compact data has " + std::to_string(bytes) + " bytes, not the " +
                                                   std::to_string(out.size()) + " its elements take");
                            }
                            std::memcpy(out.data(), data + 4, out.size());
                            found = true;
                          });
  return found;
}

// Before libhdf5 reads the strings of a contiguous key dataset, vecpack reads their references
// from the dataset's raw bytes and checks them. (Chunked and compact string datasets, which
// h5py and vecpack do not write, are read without this check.)
void check_string_heap(hid_t file, hid_t dataset, hsize_t rows, const std::string& path, const std::string& name) {
  if (rows == 0) return;
  HeapCheck heap(file, path, name);
  if (!heap.usable()) return;
  if (rows > heap.file_size() / kHeapReferenceBytes) {
    fail(path, name, "variable-length strings: " + std::to_string(rows) + " references cannot fit in the file");
  }
  std::vector<uint8_t> references(static_cast<size_t>(rows * kHeapReferenceBytes));
  const haddr_t data = H5Dget_offset(dataset);  // contiguous: absolute, the base included
  H5Eclear2(H5E_DEFAULT);
  if (data != HADDR_UNDEF) {
    if (!heap.read_at(data, references.data(), references.size())) {
      fail(path, name, "variable-length strings: the references lie outside the file");
    }
  } else if (!compact_data(heap, dataset, path, name, references)) {
    return;  // chunked: read without this check
  }
  for (hsize_t row = 0; row < rows; ++row) {
    const uint8_t* reference = references.data() + row * kHeapReferenceBytes;
    heap.check_reference(RawFile::u32(reference), RawFile::u64(reference + 4), RawFile::u32(reference + 12),
                         "string " + std::to_string(row));
  }
}

// The root group's string attribute `name` (fixed or variable length, one element), read
// without libhdf5 (see for_each_header_message); nullopt when there is none, or when it is
// stored where vecpack does not look (dense attribute storage, shared types).
std::optional<std::string> read_root_string_attribute(hid_t file, const std::string& path, const char* name) {
  H5O_info_t info{};
  if (H5Oget_info2(file, &info, H5O_INFO_BASIC) < 0) fail(path, "", "cannot read the root group's object header");
  HeapCheck heap(file, path, "");
  if (!heap.usable()) return std::nullopt;  // 4-byte addresses: no writer vecpack knows makes them
  const std::string what = std::string("attribute '") + name + "'";
  auto damaged = [&](const std::string& why) { fail(path, "", what + " " + why); };
  auto pad8 = [](uint64_t size) { return (size + 7) / 8 * 8; };
  std::optional<std::string> value;
  bool dense = false;
  for_each_header_message(heap.file(), heap.base(), info.addr, path, "the root group",
                          [&](uint64_t type, const uint8_t* data, uint64_t size) {
    if (type == 0x15 && size >= 10) {  // attribute info: a fractal heap address when storage is dense
      const uint64_t heap_at = (data[1] & 1) ? 4 : 2;
      dense = dense || (heap_at + 8 <= size && RawFile::u64(data + heap_at) != ~uint64_t{0});
    }
    if (type != 0x0C || value || size < 8) return;  // 0x0C: an attribute
    const unsigned version = data[0];
    if (version < 1 || version > 3) return;
    const uint64_t name_size = RawFile::u16(data + 2), type_size = RawFile::u16(data + 4),
                   space_size = RawFile::u16(data + 6);
    uint64_t at = version == 3 ? 9 : 8;  // version 3 adds the name's character set
    auto field = [&](uint64_t length) {  // version 1 pads each part to 8 bytes
      const uint64_t start = at;
      at += version == 1 ? pad8(length) : length;
      if (at > size) damaged("is damaged: its parts run past the message's " + std::to_string(size) + " bytes");
      return data + start;
    };
    const uint8_t* attribute_name = field(name_size);
    if (std::strlen(name) + 1 != name_size || std::memcmp(attribute_name, name, name_size) != 0) return;
    if (version > 1 && (data[1] & 3)) return;  // a shared type or dataspace, stored elsewhere
    const uint8_t* datatype = field(type_size);
    const uint8_t* dataspace = field(space_size);
    const uint8_t* values = data + at;
    const uint64_t values_size = size - at;
    // Exactly one element: a scalar, or a simple dataspace of one element.
    if (space_size < 4) damaged("has a damaged dataspace");
    const unsigned space_version = dataspace[0], rank = dataspace[1];
    const uint64_t dims_at = space_version == 1 ? 8 : 4;
    if (space_version == 2 && dataspace[3] == 2) return;  // a null dataspace: no value
    if (dims_at + 8 * uint64_t{rank} > space_size) damaged("has a damaged dataspace");
    for (unsigned i = 0; i < rank; ++i) {
      if (RawFile::u64(dataspace + dims_at + 8 * i) != 1) return;
    }
    if (type_size < 8) damaged("has a damaged datatype");
    const unsigned type_class = datatype[0] & 0x0F;
    const uint64_t element = RawFile::u32(datatype + 4);
    if (type_class == 3) {  // a fixed-length string, padded with NULs or blanks
      if (element > kMaxElementBytes || element > values_size) {
        damaged("has a string of " + std::to_string(element) + " bytes, more than its message holds");
      }
      std::string text(reinterpret_cast<const char*>(values), static_cast<size_t>(element));
      text = text.substr(0, text.find('\0'));
      value = text.substr(0, text.find_last_not_of(' ') + 1);
    } else if (type_class == 9 && (datatype[1] & 0x0F) == 1) {  // a variable-length string
      if (type_size < 16 || RawFile::u32(datatype + 12) != 1) damaged("has variable-length strings of wide characters");
      if (values_size < 16) damaged("is damaged: its value is shorter than a heap reference");
      const uint64_t length = RawFile::u32(values);
      if (length > kMaxElementBytes) {
        damaged("has a string of " + std::to_string(length) + " bytes; a string attribute has at most " +
                std::to_string(kMaxElementBytes));
      }
      std::string text = heap.read_reference(length, RawFile::u64(values + 4), RawFile::u32(values + 12), what);
      value = text.substr(0, text.find('\0'));
    }
  });
  if (!value && dense) {
    std::fprintf(stderr, "warning: %s: the root group keeps its attributes in dense storage, which vecpack does not "
                 "read; using cos\n", path.c_str());
  }
  return value;
}

// A variable-length string's characters are bytes; a damaged type can declare characters of
// hundreds of MB, and libhdf5 1.10 then allocates and copies length x that per string before
// it fails (1.14 refuses such a type when opening).
void check_string_characters(hid_t type, const std::string& path, const std::string& name, const std::string& what) {
  if (H5Tis_variable_str(type) <= 0) return;
  Handle base(H5Tget_super(type), H5Tclose);
  if (!base.valid()) {
    H5Eclear2(H5E_DEFAULT);
    return;
  }
  const size_t size = H5Tget_size(base.get());
  if (size != 1) fail(path, name, what + " has variable-length strings of " + std::to_string(size) + "-byte characters");
}

// Strings [first, first + count) of a 1-D string dataset, variable or fixed length.
void read_strings(hid_t dataset, hsize_t first, hsize_t count, std::vector<std::string>& out,
                  const std::string& path, const std::string& name) {
  out.clear();
  Handle file_type(H5Dget_type(dataset), H5Tclose);
  if (H5Tis_variable_str(file_type.get()) > 0) {
    Handle memory_type(H5Tcopy(H5T_C_S1), H5Tclose);
    H5Tset_size(memory_type.get(), H5T_VARIABLE);
    H5Tset_cset(memory_type.get(), H5Tget_cset(file_type.get()));
    std::vector<char*> texts(count, nullptr);
    read_block(dataset, memory_type.get(), first, count, 1, texts.data(), path, name, true);
    Handle space(H5Screate_simple(1, &count, nullptr), H5Sclose);
    struct Reclaim {
      hid_t type, space;
      std::vector<char*>& texts;
      ~Reclaim() { H5Dvlen_reclaim(type, space, H5P_DEFAULT, texts.data()); }
    } reclaim{memory_type.get(), space.get(), texts};
    out.reserve(count);
    for (char* text : texts) out.emplace_back(text ? text : "");
    return;
  }
  size_t width = H5Tget_size(file_type.get());
  H5T_str_t padding = H5Tget_strpad(file_type.get());
  std::vector<char> bytes(count * width);
  read_block(dataset, file_type.get(), first, count, 1, bytes.data(), path, name, true);
  out.reserve(count);
  for (hsize_t i = 0; i < count; ++i) {
    std::string_view text(bytes.data() + i * width, width);
    if (padding == H5T_STR_SPACEPAD) {
      text = text.substr(0, text.find_last_not_of(' ') + 1);
    } else {
      text = text.substr(0, text.find('\0'));
    }
    out.emplace_back(text);
  }
}

// The root attribute "distance" as a metric; cos when absent or not one vecpack knows.
Metric file_metric(hid_t file, const std::string& path) {
  std::optional<std::string> distance = read_root_string_attribute(file, path, "distance");
  if (!distance) return Metric::cos;
  std::string name = *distance;
  std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
  try {
    return parse_metric(name);
  } catch (const SpecError&) {
    std::fprintf(stderr, "warning: %s: distance '%s' is not ip, cos or l2; using cos\n", path.c_str(), distance->c_str());
    return Metric::cos;
  }
}

struct Location {
  std::string file, dataset;
};

// "FILE:/group/name" names a dataset inside FILE; a plain path means its "train" dataset.
Location locate(const std::string& path) {
  if (!is_regular_file(path)) {
    for (size_t colon = path.rfind(":/"); colon != std::string::npos && colon > 0;
         colon = path.rfind(":/", colon - 1)) {
      std::string file = path.substr(0, colon);
      if (is_regular_file(file)) return {file, path.substr(colon + 1)};
    }
  }
  return {path, "train"};
}

// "words_<name>" beside the dataset <name>: "words_train" for "train".
std::string keys_dataset_for(const std::string& dataset) {
  size_t slash = dataset.rfind('/');
  size_t base = slash == std::string::npos ? 0 : slash + 1;
  return dataset.substr(0, base) + "words_" + dataset.substr(base);
}

// The 2-D float dataset `name` as a table, keyed when "words_<name>" exists. `source` is the
// path the user gave (with the dataset when named).
Table read_matrix(hid_t file, const std::string& path, const std::string& name, const std::string& source,
                  const ReadOptions& options) {
  Handle dataset = open_dataset(file, path, name);
  require_class(dataset.get(), H5T_FLOAT, path, name, "float32 or float64");
  Shape shape = dataset_shape(dataset.get(), path, name, false);
  if (shape.cols == 0) fail(path, name, "has 0 columns");
  hsize_t rows = options.limit ? std::min<hsize_t>(shape.rows, options.limit) : shape.rows;

  const std::string keys_name = keys_dataset_for(name);
  Handle keys;
  if (link_exists(file, keys_name)) {
    keys = open_dataset(file, path, keys_name);
    require_class(keys.get(), H5T_STRING, path, keys_name, "string");
    Shape key_shape = dataset_shape(keys.get(), path, keys_name, true);
    if (key_shape.rows != shape.rows || key_shape.cols != 1) {
      throw FormatError(path + ": dataset '" + keys_name + "' has " + std::to_string(key_shape.rows) +
                            " entries but '" + name + "' has " + std::to_string(shape.rows) + " rows",
                        keys_name);
    }
    Handle key_type(H5Dget_type(keys.get()), H5Tclose);
    check_string_characters(key_type.get(), path, keys_name, "the dataset");
    if (H5Tis_variable_str(key_type.get()) > 0) check_string_heap(file, keys.get(), rows, path, keys_name);
  }

  io::MemoryBudget(path, options)
      .require_floats(rows, shape.cols,
                      "dataset '" + name + "' of " + std::to_string(rows) + " rows x " + std::to_string(shape.cols) +
                          " floats");
  io::ProgressScope progress(options.progress, "reading " + path, rows);
  const size_t dim = static_cast<size_t>(shape.cols);
  TableBuilder builder(dim);
  builder.reserve(static_cast<size_t>(rows));
  const hsize_t block_rows = std::max<hsize_t>(1, std::min<hsize_t>(kBlockRows, (hsize_t{1} << 22) / shape.cols));
  std::vector<float> block(static_cast<size_t>(std::min(block_rows, std::max<hsize_t>(rows, 1)) * shape.cols));
  std::vector<std::string> words;
  for (hsize_t first = 0; first < rows; first += block_rows) {
    hsize_t count = std::min(block_rows, rows - first);
    // HDF5 converts float64 to float32 on the way in.
    read_block(dataset.get(), H5T_NATIVE_FLOAT, first, count, shape.cols, block.data(), path, name, false);
    if (keys.valid()) read_strings(keys.get(), first, count, words, path, keys_name);
    for (hsize_t r = 0; r < count; ++r) {
      const float* row = block.data() + r * dim;
      const hsize_t index = first + r;
      if (!options.allow_nan) {
        size_t bad = first_non_finite(row, dim);
        if (bad < dim) {
          throw FormatError(path + ": dataset '" + name + "': " + (std::isnan(row[bad]) ? "NaN" : "infinity") +
                                " at row " + std::to_string(index) + ", column " + std::to_string(bad) +
                                "; non-finite values are rejected unless allow_nan is set",
                            name);
        }
      }
      if (keys.valid()) {
        const std::string& word = words[r];
        if (io::invalid_utf8_offset(word) != std::string_view::npos) {
          throw FormatError(path + ": dataset '" + keys_name + "': entry " + std::to_string(index) + " " +
                                io::quoted(word) + " is not valid UTF-8",
                            keys_name);
        }
        builder.add(word, row, dim);
      } else {
        builder.add(row, dim);
      }
    }
    progress.advance(first + count);
  }
  if (keys.valid()) io::warn_duplicates(path, builder.duplicates());
  Table table = builder.finish(file_metric(file, path));
  table.set_source("hdf5", source);
  return table;
}

Table read_hdf5(const std::string& path, const ReadOptions& options) {
  silence_hdf5();
  Location location = locate(path);
  Handle file = open_file(location.file);
  return read_matrix(file.get(), location.file, location.dataset, path, options);
}

// ------------------------------------------------------------------------------------ writing

Handle utf8_string_type() {
  Handle type(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(type.get(), H5T_VARIABLE);
  H5Tset_cset(type.get(), H5T_CSET_UTF8);
  return type;
}

const char* ann_distance_name(Metric metric) {
  switch (metric) {
    case Metric::cos: return "angular";
    case Metric::l2: return "euclidean";
    case Metric::ip: return "dot";
  }
  return "angular";
}

void write_rows(hid_t dataset, hid_t memory_type, hsize_t first, hsize_t count, hsize_t cols, const void* data,
                const std::string& path, const char* name, bool vector) {
  Handle file_space(H5Dget_space(dataset), H5Sclose);
  hsize_t start[2] = {first, 0}, size[2] = {count, cols};
  Handle memory_space(H5Screate_simple(vector ? 1 : 2, size, nullptr), H5Sclose);
  if (H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, start, nullptr, size, nullptr) < 0 ||
      H5Dwrite(dataset, memory_type, memory_space.get(), file_space.get(), H5P_DEFAULT, data) < 0) {
    throw IoError(path, std::string("cannot write dataset '") + name + "'" + hdf5_detail());
  }
}

void write_hdf5(const Table& table, const std::string& path, const WriteOptions& options) {
  silence_hdf5();
  const hsize_t rows = table.size(), dim = table.dim();
  if (dim == 0) throw Error("cannot write " + path + " as hdf5: the table has dimension 0");
  AtomicFile pending(path);
  Handle file(H5Fcreate(pending.temp_path().c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), H5Fclose);
  if (!file.valid()) throw IoError(path, "cannot create an HDF5 file" + hdf5_detail());
  auto create = [&](const char* name, hid_t type, int rank, const hsize_t* dims) {
    Handle space(H5Screate_simple(rank, dims, nullptr), H5Sclose);
    Handle dataset(H5Dcreate2(file.get(), name, type, space.get(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Dclose);
    if (!dataset.valid()) throw IoError(path, std::string("cannot create dataset '") + name + "'" + hdf5_detail());
    return dataset;
  };

  const hsize_t matrix_dims[2] = {rows, dim};
  Handle train = create("train", H5T_IEEE_F32LE, 2, matrix_dims);
  Handle string_type = utf8_string_type();
  Handle words;
  if (table.has_keys()) words = create("words_train", string_type.get(), 1, matrix_dims);

  io::ProgressScope progress(options.progress, "writing " + path, rows);
  std::vector<std::string> keys;
  std::vector<const char*> key_texts;
  io::for_each_row_block(table, [&](size_t first, size_t count, const float* values) {
    if (count == 0) return;
    write_rows(train.get(), H5T_NATIVE_FLOAT, first, count, dim, values, path, "train", false);
    if (words.valid()) {
      keys.clear();
      key_texts.clear();
      for (size_t r = 0; r < count; ++r) {
        std::string_view key = table.key(first + r);
        // HDF5 strings are C strings: a key with a NUL would come back cut at it.
        if (key.find('\0') != std::string_view::npos) {
          throw Error("cannot write row " + std::to_string(first + r) + " as hdf5: its key " + io::quoted(key) +
                      " contains a NUL byte, where an HDF5 string ends");
        }
        if (io::invalid_utf8_offset(key) != std::string_view::npos) {  // the strings are declared UTF-8
          throw Error("cannot write row " + std::to_string(first + r) + " as hdf5: its key " + io::quoted(key) +
                      " is not valid UTF-8");
        }
        keys.emplace_back(key);  // NUL-terminated copies
      }
      for (const std::string& key : keys) key_texts.push_back(key.c_str());
      write_rows(words.get(), string_type.get(), first, count, 1, key_texts.data(), path, "words_train", true);
    }
    progress.advance(first + count);
  });

  Handle scalar(H5Screate(H5S_SCALAR), H5Sclose);
  Handle attribute(H5Acreate2(file.get(), "distance", string_type.get(), scalar.get(), H5P_DEFAULT, H5P_DEFAULT),
                   H5Aclose);
  const char* distance = ann_distance_name(table.metric());
  if (!attribute.valid() || H5Awrite(attribute.get(), string_type.get(), &distance) < 0) {
    throw IoError(path, "cannot write attribute 'distance'" + hdf5_detail());
  }
  attribute.close();
  train.close();
  words.close();
  if (!file.close()) throw IoError(path, "cannot finish the HDF5 file" + hdf5_detail());
  pending.commit();
}

// HDF5's signature, at offset 0 or (after a user block) at 512, 1024, 2048, ...
bool sniff_hdf5(const uint8_t* head, size_t size) {
  static const uint8_t kSignature[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};
  for (size_t offset = 0; offset + sizeof kSignature <= size; offset = offset ? offset * 2 : 512) {
    if (std::memcmp(head + offset, kSignature, sizeof kSignature) == 0) return true;
  }
  return false;
}

}  // namespace

const FormatDescriptor kHdf5 = {
    .name = "hdf5",
    .description = "HDF5: 'train' of an ann-benchmarks file (or FILE:/group/name), keys from 'words_train'",
    .extensions = {".hdf5", ".h5"},
    .sniff = sniff_hdf5,
    .read = read_hdf5,
    .write = write_hdf5,
};

AnnDataset read_ann_dataset(const std::string& path, bool load_train, const ReadOptions& options) {
  silence_hdf5();
  Handle file = open_file(path);
  Handle train = open_dataset(file.get(), path, "train");
  Handle test = open_dataset(file.get(), path, "test");
  Handle neighbors = open_dataset(file.get(), path, "neighbors");
  require_class(train.get(), H5T_FLOAT, path, "train", "float32 or float64");
  require_class(test.get(), H5T_FLOAT, path, "test", "float32 or float64");
  require_class(neighbors.get(), H5T_INTEGER, path, "neighbors", "integer");
  Shape train_shape = dataset_shape(train.get(), path, "train", false);
  Shape test_shape = dataset_shape(test.get(), path, "test", false);
  Shape neighbors_shape = dataset_shape(neighbors.get(), path, "neighbors", false);
  if (test_shape.cols != train_shape.cols) {
    throw FormatError(path + ": dataset 'test' has " + std::to_string(test_shape.cols) + " columns but 'train' has " +
                          std::to_string(train_shape.cols),
                      "test");
  }
  if (neighbors_shape.rows != test_shape.rows) {
    throw FormatError(path + ": dataset 'neighbors' has " + std::to_string(neighbors_shape.rows) +
                          " rows but 'test' has " + std::to_string(test_shape.rows),
                      "neighbors");
  }

  // Compressed, a small file can declare gigabytes of queries or neighbours.
  // Each product fits (dataset_shape checked it); their sum saturates.
  uint64_t bytes = 0;
  if (__builtin_add_overflow(test_shape.rows * test_shape.cols * sizeof(float),
                             neighbors_shape.rows * neighbors_shape.cols * sizeof(int32_t), &bytes)) {
    bytes = ~uint64_t{0};
  }
  io::MemoryBudget(path, options)
      .require(bytes,
               "datasets 'test' (" + std::to_string(test_shape.rows) + " x " + std::to_string(test_shape.cols) +
                   ") and 'neighbors' (" + std::to_string(neighbors_shape.rows) + " x " +
                   std::to_string(neighbors_shape.cols) + ")");

  AnnDataset out;
  out.test_rows = static_cast<size_t>(test_shape.rows);
  out.dim = static_cast<size_t>(test_shape.cols);
  out.neighbors_k = static_cast<size_t>(neighbors_shape.cols);
  out.test.resize(out.test_rows * out.dim);
  out.neighbors.resize(out.test_rows * out.neighbors_k);
  if (!out.test.empty()) {
    read_block(test.get(), H5T_NATIVE_FLOAT, 0, test_shape.rows, test_shape.cols, out.test.data(), path, "test", false);
  }
  if (!out.neighbors.empty()) {
    // HDF5 converts int64 ids to int32; ids beyond int32 saturate and fail the range check.
    read_block(neighbors.get(), H5T_NATIVE_INT32, 0, neighbors_shape.rows, neighbors_shape.cols,
               out.neighbors.data(), path, "neighbors", false);
  }
  for (size_t i = 0; i < out.neighbors.size(); ++i) {
    int32_t id = out.neighbors[i];
    if (id < 0 || static_cast<hsize_t>(id) >= train_shape.rows) {
      throw FormatError(path + ": dataset 'neighbors': entry [" + std::to_string(i / out.neighbors_k) + "][" +
                            std::to_string(i % out.neighbors_k) + "] = " + std::to_string(id) +
                            " is not a row of 'train' (" + std::to_string(train_shape.rows) + " rows)",
                        "neighbors");
    }
  }
  out.metric = file_metric(file.get(), path);
  if (load_train) out.train = read_matrix(file.get(), path, "train", path, options);
  return out;
}

}  // namespace vecpack
