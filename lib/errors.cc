#include "vecpack/errors.h"

#include <cstring>

namespace vecpack {

static std::string parse_message(const std::string& file, uint64_t line, uint64_t column, const std::string& what) {
  std::string where = file;
  if (line) where += ":" + std::to_string(line);
  if (line && column) where += ":" + std::to_string(column);
  return where + ": " + what;
}

ParseError::ParseError(const std::string& file, uint64_t line, uint64_t column, const std::string& what)
    : Error(parse_message(file, line, column, what)), file_(file), line_(line), column_(column) {}

IoError::IoError(const std::string& path, const std::string& action, int errno_value)
    : Error(path + ": cannot " + action + ": " + std::strerror(errno_value)), path_(path), errno_(errno_value) {}

IoError::IoError(const std::string& path, const std::string& message) : Error(path + ": " + message), path_(path) {}

}  // namespace vecpack
