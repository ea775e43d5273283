#include "cli_common.h"

#include <unistd.h>

#include <charconv>
#include <chrono>
#include <cstdio>
#include <iostream>

namespace vecpack::cli {
namespace {

class TtyProgress final : public Progress {
 public:
  void begin(std::string_view task, uint64_t total) override {
    task_ = std::string(task);
    total_ = total;
    start_ = last_ = std::chrono::steady_clock::now();
    draw(0, true);
  }
  void advance(uint64_t done) override { draw(done, false); }
  void end() override {
    draw(total_, true);
    std::fputc('\n', stderr);
  }

 private:
  void draw(uint64_t done, bool force) {
    auto now = std::chrono::steady_clock::now();
    if (!force && now - last_ < std::chrono::milliseconds(100)) return;
    last_ = now;
    double seconds = std::chrono::duration<double>(now - start_).count();
    if (total_) {
      int width = 30, filled = static_cast<int>(width * std::min<double>(1.0, double(done) / double(total_)));
      std::fprintf(stderr, "\r%-12s [%.*s%*s] %3d%% %llu/%llu %.1fs", task_.c_str(), filled,
                   "##############################", width - filled, "", static_cast<int>(100.0 * done / total_),
                   static_cast<unsigned long long>(done), static_cast<unsigned long long>(total_), seconds);
    } else {
      std::fprintf(stderr, "\r%-12s %llu %.1fs", task_.c_str(), static_cast<unsigned long long>(done), seconds);
    }
    std::fflush(stderr);
  }
  std::string task_;
  uint64_t total_ = 0;
  std::chrono::steady_clock::time_point start_, last_;
};

}  // namespace

std::unique_ptr<Progress> make_progress(const Globals& globals) {
  if (globals.quiet || !::isatty(STDERR_FILENO)) return nullptr;
  return std::make_unique<TtyProgress>();
}

Table load_table(const std::string& path, const std::string& format, const ReadOptions& options) {
  const FormatDescriptor& f = detect_format(path, format);
  return f.read(path, options);
}

void add_input_options(CLI::App* cmd, InputOptions& input, const std::string& description) {
  cmd->add_option("input", input.path, description)->required();
  cmd->add_option("--from", input.format, "Input format (default: from content or extension)");
  cmd->add_option("--metric", input.metric, "Metric stored with the table: ip, cos or l2 (default: the input's, else cos)");
  cmd->add_option("--limit", input.limit, "Read at most N rows");
  cmd->add_flag("--allow-nan", input.allow_nan, "Accept NaN and infinite values");
  cmd->add_flag("--lenient", input.lenient, "Accept a row count that disagrees with the file's header (warn)");
  cmd->add_option("--unicode-errors", input.unicode_errors,
                  "Keys that are not valid UTF-8: strict (error with the line), replace (U+FFFD) or ignore (drop bytes)")
      ->check(CLI::IsMember({"strict", "replace", "ignore"}));
  cmd->add_option("--max-memory", input.max_memory,
                  "Refuse an input whose table needs more memory than SIZE (512M, 4G, 50%, none; default 80% of "
                  "available memory)");
}

Table read_input(const InputOptions& input, Progress* progress) {
  ReadOptions read;
  read.limit = input.limit;
  read.allow_nan = input.allow_nan;
  read.lenient = input.lenient;
  read.unicode_errors = input.unicode_errors == "replace"  ? UnicodeErrors::replace
                        : input.unicode_errors == "ignore" ? UnicodeErrors::ignore
                                                           : UnicodeErrors::strict;
  if (!input.max_memory.empty()) read.max_memory = parse_memory_size(input.max_memory);
  read.progress = progress;
  Table t = load_table(input.path, input.format, read);
  if (!input.metric.empty()) t.set_metric(parse_metric(input.metric));
  return t;
}

std::string human_bytes(uint64_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = double(bytes);
  int u = 0;
  while (v >= 1024 && u < 4) v /= 1024, ++u;
  char buf[32];
  std::snprintf(buf, sizeof(buf), u ? "%.1f %s" : "%.0f %s", v, units[u]);
  return buf;
}

std::string float_text(float value) {
  char buf[32];
  auto r = std::to_chars(buf, buf + sizeof(buf), value);
  return std::string(buf, r.ptr);
}

void print_json(const nlohmann::json& j) { std::cout << j.dump(2) << "\n"; }

}  // namespace vecpack::cli
