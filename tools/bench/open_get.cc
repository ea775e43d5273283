// Time to open a .vecpack file and fetch one row by key, the way a notebook or a service
// starts: median of many runs, with the page cache warm and with the file's pages dropped
// from the cache before each run (posix_fadvise DONTNEED, so the reads hit the disk).
//
//   vecpack_bench_open_get FILE KEY [RUNS]
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "vecpack/vecpack.h"

static void drop_from_page_cache(const char* path) {
  int fd = ::open(path, O_RDONLY);
  if (fd < 0) return;
  ::fdatasync(fd);
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  ::close(fd);
}

static double median_ms(const char* path, const std::string& key, int runs, bool cold) {
  std::vector<double> ms;
  for (int i = 0; i < runs; ++i) {
    if (cold) drop_from_page_cache(path);
    auto start = std::chrono::steady_clock::now();
    vecpack::Table t = vecpack::Table::open(path);
    std::vector<float> v = t.get(key);
    auto stop = std::chrono::steady_clock::now();
    if (v.empty()) return -1;
    ms.push_back(std::chrono::duration<double, std::milli>(stop - start).count());
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s FILE KEY [RUNS]\n", argv[0]);
    return 2;
  }
  int runs = argc > 3 ? std::max(1, std::atoi(argv[3])) : 101;
  try {
    vecpack::Table t = vecpack::Table::open(argv[1]);
    std::printf("%s: %zu rows x %zu, codec %s, %.1f MiB\n", argv[1], t.size(), t.dim(), t.spec().c_str(),
                t.info().file_bytes / 1048576.0);
    std::printf("open + get(\"%s\"), median of %d runs: warm cache %.3f ms, cold cache %.3f ms\n", argv[2], runs,
                median_ms(argv[1], argv[2], runs, false), median_ms(argv[1], argv[2], runs, true));
  } catch (const vecpack::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
