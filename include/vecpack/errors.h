// Error types thrown by every vecpack entry point. Nothing in vecpack aborts the process
// on bad input: each failure is one of these, with enough context to act on.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

namespace vecpack {

// Base of all vecpack errors; what() is one human-readable line.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

// A .vecpack file (or a codec parameter blob) is damaged, truncated, hostile or too new.
class FormatError : public Error {
 public:
  FormatError(const std::string& message, std::string section = {}, uint64_t offset = 0)
      : Error(message), section_(std::move(section)), offset_(offset) {}
  const std::string& section() const noexcept { return section_; }
  uint64_t offset() const noexcept { return offset_; }

 private:
  std::string section_;
  uint64_t offset_;
};

// A codec spec string or codec argument is invalid.
class SpecError : public Error {
 public:
  using Error::Error;
};

// A foreign input file (word2vec, GloVe, ...) does not parse. line/column are 1-based; 0 = unknown.
class ParseError : public Error {
 public:
  ParseError(const std::string& file, uint64_t line, uint64_t column, const std::string& what);
  const std::string& file() const noexcept { return file_; }
  uint64_t line() const noexcept { return line_; }
  uint64_t column() const noexcept { return column_; }

 private:
  std::string file_;
  uint64_t line_, column_;
};

// The operating system refused an operation; the message carries the path and errno text.
class IoError : public Error {
 public:
  IoError(const std::string& path, const std::string& action, int errno_value);
  IoError(const std::string& path, const std::string& message);
  const std::string& path() const noexcept { return path_; }
  int errno_value() const noexcept { return errno_; }

 private:
  std::string path_;
  int errno_ = 0;
};

// A key or row asked for does not exist in the table.
class NotFoundError : public Error {
 public:
  using Error::Error;
};

// An input declares, or grows to, a table larger than the memory a reader may allocate
// (ReadOptions::max_memory); refused before the allocation.
class MemoryLimitError : public Error {
 public:
  using Error::Error;
};

// Another writer holds a table's lock (TableWriter).
class LockedError : public Error {
 public:
  using Error::Error;
};

}  // namespace vecpack
