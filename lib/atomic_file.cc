#include "atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <vector>

#include "vecpack/errors.h"

namespace vecpack {

static std::string folder_of(const std::string& path) {
  auto slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

AtomicFile::AtomicFile(std::string path) : path_(std::move(path)) {
  std::vector<char> name(path_.begin(), path_.end());
  const char suffix[] = ".tmp-XXXXXX";
  name.insert(name.end(), suffix, suffix + sizeof(suffix));
  fd_ = ::mkostemp(name.data(), O_CLOEXEC);
  if (fd_ < 0) throw IoError(path_, "create a temporary file beside", errno);
  temp_path_ = name.data();
  ::fchmod(fd_, 0644);
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_ && !temp_path_.empty()) ::unlink(temp_path_.c_str());
}

void AtomicFile::write(const void* data, size_t size) {
  pwrite(data, size, position_);
  position_ += size;
}

void AtomicFile::write_zeros(size_t size) {
  static const char zeros[4096] = {};
  while (size) {
    size_t n = size < sizeof(zeros) ? size : sizeof(zeros);
    write(zeros, n);
    size -= n;
  }
}

void AtomicFile::pwrite(const void* data, size_t size, uint64_t offset) {
  const char* p = static_cast<const char*>(data);
  while (size) {
    ssize_t n = ::pwrite(fd_, p, size, static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      throw IoError(path_, "write", errno);
    }
    p += n;
    size -= static_cast<size_t>(n);
    offset += static_cast<uint64_t>(n);
  }
}

void AtomicFile::commit() {
  if (::fsync(fd_) != 0) throw IoError(path_, "sync", errno);
  if (::close(fd_) != 0) {
    fd_ = -1;
    throw IoError(path_, "close", errno);
  }
  fd_ = -1;
  if (::rename(temp_path_.c_str(), path_.c_str()) != 0) throw IoError(path_, "rename the temporary file to", errno);
  committed_ = true;
  // The rename is durable only once the folder entry is on disk.
  fsync_folder(folder_of(path_));
}

void fsync_folder(const std::string& folder) {
  int dir = ::open(folder.empty() ? "." : folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir >= 0) {
    ::fsync(dir);
    ::close(dir);
  }
}

}  // namespace vecpack
