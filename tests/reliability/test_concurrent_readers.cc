// Concurrent readers: 8 threads open, search and read one .vecpack file while another process
// (the vecpack CLI) replaces it again and again. Two versions of the table differ by sign, so
// every answer names its version: version A rows have x[0] = +1, version B rows are the
// negated rows (x[0] = -1). Each answer must be whole and from one version: a row equals the
// row of the version its first value names, and a search through the same opened table gives
// exactly that version's neighbours.
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "test_util.h"
#include "vecpack/table.h"

extern char** environ;

namespace vecpack {
namespace {

constexpr size_t kRows = 3000, kDim = 24, kK = 3, kReaders = 8, kReplacements = 24;

// Runs the vecpack CLI with args; its exit status (-1 when it could not start or was signalled).
int run_cli(const std::vector<std::string>& args) {
  std::vector<char*> argv;
  std::string bin = VECPACK_CLI;
  argv.push_back(bin.data());
  std::vector<std::string> copy = args;
  for (auto& a : copy) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  if (::posix_spawn(&pid, bin.c_str(), nullptr, nullptr, argv.data(), environ) != 0) return -1;
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

struct Expected {
  std::vector<float> rows;  // kRows x kDim
  std::vector<int64_t> ids;  // top kK of the query
};

}  // namespace

TEST_CASE("concurrent readers: 8 threads search and get while another process replaces the file") {
  test::TempDir dir;
  std::vector<float> base = test::clustered_rows(kRows, kDim, 20, 99);
  for (size_t r = 0; r < kRows; ++r) base[r * kDim] = 1.f;  // the version marker
  std::vector<std::string> keys;
  for (size_t r = 0; r < kRows; ++r) keys.push_back("w" + std::to_string(r));
  std::vector<float> negated(base.size());
  for (size_t i = 0; i < base.size(); ++i) negated[i] = -base[i];

  const std::string a_path = dir.file("a.vecpack"), b_path = dir.file("b.vecpack"), live = dir.file("live.vecpack");
  Table a = Table::from_rows(base, kDim, keys, Metric::cos);
  Table b = Table::from_rows(negated, kDim, keys, Metric::cos);
  a.save(a_path);
  b.save(b_path);
  a.save(live);

  std::vector<float> query(base.begin() + 5 * kDim, base.begin() + 6 * kDim);
  for (size_t j = 1; j < kDim; ++j) query[j] += 0.05f * static_cast<float>(j % 3);
  SearchOptions options;
  options.k = kK;
  options.threads = 1;
  Expected expected[2];  // [0]: version A (+1), [1]: version B (-1)
  for (int v = 0; v < 2; ++v) {
    Table t = Table::open(v == 0 ? a_path : b_path);
    expected[v].rows = v == 0 ? base : negated;
    SearchResult r = t.search(query.data(), 1, options);
    expected[v].ids.assign(r.ids.begin(), r.ids.end());
  }
  REQUIRE(expected[0].ids != expected[1].ids);

  // The reader that opened the file before any replacement keeps its own version for good:
  // its mapping refers to the old file.
  const Table first = Table::open(live);

  std::atomic<bool> writing{true};
  std::atomic<size_t> answers{0}, seen[2] = {0, 0};
  std::mutex problems_mutex;
  std::vector<std::string> problems;
  auto problem = [&](const std::string& text) {
    std::lock_guard<std::mutex> lock(problems_mutex);
    if (problems.size() < 20) problems.push_back(text);
  };

  auto check_table = [&](const Table& t, size_t reader, size_t round, int must_be) {
    if (t.size() != kRows || t.dim() != kDim) return problem("a table of the wrong shape");
    size_t row = (reader * 7919 + round * 104729) % kRows;
    std::vector<float> got = t.get(keys[row]);
    int version = got[0] == 1.f ? 0 : got[0] == -1.f ? 1 : -1;
    if (version < 0) return problem("row " + std::to_string(row) + " has no version marker");
    if (must_be >= 0 && version != must_be) return problem("the first table changed version");
    if (!std::equal(got.begin(), got.end(), expected[version].rows.begin() + row * kDim))
      return problem("row " + std::to_string(row) + " mixes versions");
    SearchResult r = t.search(query.data(), 1, options);
    if (!std::equal(r.ids.begin(), r.ids.end(), expected[version].ids.begin()))
      return problem("a search answered with neighbours of the other version");
    ++seen[version];
    ++answers;
  };

  std::vector<std::thread> readers;
  for (size_t reader = 0; reader < kReaders; ++reader) {
    readers.emplace_back([&, reader] {
      try {
        for (size_t round = 0; writing.load() || round < 20; ++round) {
          check_table(Table::open(live), reader, round, -1);
          check_table(first, reader, round, 0);
        }
      } catch (const std::exception& e) {
        problem(std::string("a reader failed: ") + e.what());
      }
    });
  }

  int failed_writes = 0;
  for (size_t i = 0; i < kReplacements; ++i)
    if (run_cli({"-q", "convert", i % 2 == 0 ? b_path : a_path, live}) != 0) ++failed_writes;
  writing = false;
  for (auto& t : readers) t.join();

  for (const auto& p : problems) MESSAGE(p);
  CHECK(problems.empty());
  CHECK(failed_writes == 0);
  MESSAGE(answers.load() << " answers checked: " << seen[0].load() << " from version A, " << seen[1].load()
                         << " from version B, over " << kReplacements << " replacements");
  CHECK(seen[1].load() > 0);  // readers did see the file replaced
  CHECK(Table::verify(live).ok());
  // No temporary file is left behind by the writer.
  CHECK(test::files_in(dir.path()) == 3);
}

}  // namespace vecpack
