// Shared by the fuzz targets in this folder. Readers take paths, so each input is written to
// one temporary file per process and target (in /dev/shm when it exists: no disk traffic),
// rewritten for every input and removed at exit.
//
// What counts as a finding: every vecpack entry point reports bad input by throwing an
// exception derived from vecpack::Error, so the targets catch exactly those. Anything else
// escapes to libFuzzer (or to the replay driver) and fails the run: a crash, a sanitizer
// report, a leak, std::bad_alloc from an allocation sized by an unchecked field, or any
// other exception type.
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "vecpack/errors.h"
#include "vecpack/formats.h"
#include "vecpack/table.h"

namespace vecpack::fuzz {

// Writes data to this process's scratch file named after `tag` and returns its path.
inline const std::string& write_input(const char* tag, const uint8_t* data, size_t size) {
  static std::string path;
  if (path.empty()) {
    const char* tmp = std::getenv("TMPDIR");
    std::string dir = ::access("/dev/shm", W_OK) == 0 ? "/dev/shm" : (tmp && *tmp ? tmp : "/tmp");
    path = dir + "/vecpack-fuzz-" + tag + "-" + std::to_string(::getpid());
    std::atexit([] { ::unlink(path.c_str()); });
  }
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    std::perror(path.c_str());
    std::abort();
  }
  while (size) {
    ssize_t n = ::write(fd, data, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      std::perror(path.c_str());
      std::abort();
    }
    data += n;
    size -= static_cast<size_t>(n);
  }
  ::close(fd);
  return path;
}

// Runs fn; a vecpack::Error is the expected answer to bad input, anything else escapes.
template <class Fn>
bool expect_errors(Fn&& fn) {
  try {
    fn();
    return true;
  } catch (const vecpack::Error&) {
    return false;
  }
}

// A fixed, non-trivial query or input vector of dimension d.
inline std::vector<float> probe_vector(size_t d, float offset = 0.f) {
  std::vector<float> v(d);
  for (size_t i = 0; i < d; ++i) v[i] = offset + 0.25f * static_cast<float>(static_cast<int>(i % 7) - 3);
  return v;
}

// The reads every table must answer without crashing: info, keys, first and last rows, a
// search with k = 3 (and a rerank shortlist when the table has rerank rows).
inline void exercise_table(const Table& t) {
  expect_errors([&] { (void)t.info(); });
  const size_t n = t.size(), d = t.dim();
  for (const char* key : {"the", "king", ",", "", "unseenword"}) expect_errors([&] { (void)t.get(key); });
  if (n && t.has_keys()) {
    expect_errors([&] {
      // Opening does not read the keys, so a damaged VOCB may answer a lookup with another row
      // (verify reports the damage); it must never read outside the section.
      std::string first(t.key(0));
      (void)t.find(first);
      (void)t.get(first);
    });
    expect_errors([&] { (void)t.key(n - 1); });
  }
  if (n) {
    expect_errors([&] { (void)t.row(0); });
    expect_errors([&] { (void)t.row(n - 1); });
    expect_errors([&] {
      const size_t count = n < 2 ? n : 2;
      std::vector<float> out(count * d);
      t.reconstruct(n - count, count, out.data());
    });
  }
  expect_errors([&] { (void)t.row(n); });  // out of range: NotFoundError
  if (n && t.counts()) (void)(t.counts()[0] + t.counts()[n - 1]);  // FREQ: n values, checked at open
  if (d) {
    expect_errors([&] {
      std::vector<float> query = probe_vector(d, 0.5f);
      SearchOptions options;
      options.k = 3;
      options.threads = 1;
      (void)t.search(query.data(), 1, options);
      options.rerank = 5;
      (void)t.search(query.data(), 1, options);
      options.nprobe = 2;  // an ivf table's lists (others ignore it)
      (void)t.search(query.data(), 1, options);
    });
  }
}

// Reads the input with one registered format and exercises the table it gives. Then again
// with every option a user can relax, which takes other paths through the readers.
inline void read_format(const char* format, const char* tag, const uint8_t* data, size_t size) {
  const std::string& path = write_input(tag, data, size);
  const FormatDescriptor* descriptor = find_format(format);
  if (!descriptor || !descriptor->read) std::abort();
  ReadOptions strict;
  expect_errors([&] { exercise_table(descriptor->read(path, strict)); });
  ReadOptions relaxed;
  relaxed.lenient = true;
  relaxed.allow_nan = true;
  relaxed.unicode_errors = size % 2 ? UnicodeErrors::replace : UnicodeErrors::ignore;
  relaxed.limit = size % 3 == 0 ? 2 : 0;
  expect_errors([&] { exercise_table(descriptor->read(path, relaxed)); });
}

}  // namespace vecpack::fuzz
