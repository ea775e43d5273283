// Shared pieces of the vecpack command-line tool: options every command has, progress on a
// TTY, loading any table format, and the exit code of each error type.
#pragma once

#include <CLI/CLI.hpp>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "vecpack/vecpack.h"

namespace vecpack::cli {

// Exit codes: one per error type, so scripts can tell them apart.
enum ExitCode : int {
  kOk = 0,
  kFailure = 1,     // Error
  kUsage = 2,       // bad command line
  kIoFailure = 3,   // IoError
  kBadFormat = 4,   // FormatError, and verify finding damage
  kBadInput = 5,    // ParseError
  kBadSpec = 6,     // SpecError
  kNotFound = 7,    // NotFoundError
  kLocked = 8,      // LockedError: another writer holds the table
  kTooLarge = 9,    // MemoryLimitError: the input needs more memory than --max-memory
};

struct Globals {
  bool quiet = false;
};

// A progress bar on stderr when it is a TTY and --quiet is off; otherwise nullptr.
std::unique_ptr<Progress> make_progress(const Globals& globals);

// A .vecpack file is mapped; any other format is read through the format registry.
Table load_table(const std::string& path, const std::string& format, const ReadOptions& options);

// The input side shared by the commands that read a table: path, format, metric, limit, NaN.
struct InputOptions {
  std::string path, format, metric;
  size_t limit = 0;
  bool allow_nan = false;
  bool lenient = false;
  std::string unicode_errors = "strict";
  std::string max_memory;  // parse_memory_size; empty: default_memory_limit()
};
void add_input_options(CLI::App* cmd, InputOptions& input, const std::string& description);
Table read_input(const InputOptions& input, Progress* progress);

std::string human_bytes(uint64_t bytes);
// Shortest text that reads back as the same float.
std::string float_text(float value);
void print_json(const nlohmann::json& j);

// Each command adds itself to the app.
void add_convert(CLI::App& app, Globals& globals);
void add_compress(CLI::App& app, Globals& globals);
void add_inspect(CLI::App& app, Globals& globals);
void add_get(CLI::App& app, Globals& globals);
void add_search(CLI::App& app, Globals& globals);
void add_verify(CLI::App& app, Globals& globals);
void add_codecs(CLI::App& app, Globals& globals);
void add_formats(CLI::App& app, Globals& globals);
void add_eval(CLI::App& app, Globals& globals);
void add_bench(CLI::App& app, Globals& globals);
void add_tune(CLI::App& app, Globals& globals);
void add_change_commands(CLI::App& app, Globals& globals);  // add, delete, compact, vacuum

// Thrown by a command to end with a specific exit code after printing its own message.
struct Exit {
  int code;
};

}  // namespace vecpack::cli
