// A read-only memory mapping of a whole file; the mapping outlives the descriptor.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace vecpack {

class MappedFile {
 public:
  explicit MappedFile(const std::string& path);  // throws IoError
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  // The mapping is advised for random access, so that opening a file and reading one row
  // faults in single pages instead of read-ahead windows. Scans announce themselves here to
  // get the whole range read ahead instead.
  void will_scan(const uint8_t* begin, uint64_t length) const;

  const uint8_t* data() const { return data_; }
  uint64_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  const uint8_t* data_ = nullptr;
  uint64_t size_ = 0;
};

}  // namespace vecpack
