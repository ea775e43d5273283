// Atomic replacement of a file: write NAME.tmp-XXXXXX in the same folder, fsync, rename over
// NAME, fsync the folder. Until commit() nothing under NAME changes; a destroyed uncommitted
// AtomicFile removes its temporary file.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace vecpack {

class AtomicFile {
 public:
  explicit AtomicFile(std::string path);  // throws IoError
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(const void* data, size_t size);           // appends; throws IoError (e.g. disk full)
  void write_zeros(size_t size);
  void pwrite(const void* data, size_t size, uint64_t offset);  // overwrite already-written bytes
  uint64_t position() const { return position_; }
  void commit();
  const std::string& temp_path() const { return temp_path_; }

 private:
  std::string path_, temp_path_;
  int fd_ = -1;
  uint64_t position_ = 0;
  bool committed_ = false;
};

// Makes renames and removals in a folder durable.
void fsync_folder(const std::string& folder);

}  // namespace vecpack
