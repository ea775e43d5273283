// vecpack compress IN -o OUT --codec SPEC: train a codec on a sample and encode every row.
#include <chrono>
#include <cstdio>
#include <cerrno>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <optional>
#include <unordered_map>

#include "cli_common.h"

namespace vecpack::cli {

// shard-00000.vecpack, ... of at most shard_rows rows each, then the manifest.
static void save_shards(const Table& table, const std::string& folder, size_t shard_rows) {
  std::error_code error;
  if (std::filesystem::exists(folder, error) && !std::filesystem::is_directory(folder, error))
    throw Error(folder + " exists and is not a folder (--shard-rows writes a folder of shards)");
  std::filesystem::create_directories(folder, error);
  if (error) throw IoError(folder, "cannot create the folder", error.value());
  std::vector<std::string> files;
  for (size_t begin = 0; begin < table.size(); begin += shard_rows) {
    char name[32];
    std::snprintf(name, sizeof name, "shard-%05zu.vecpack", files.size());
    table.slice(begin, std::min(shard_rows, table.size() - begin)).save((std::filesystem::path(folder) / name).string());
    files.push_back(name);
  }
  write_manifest(folder, files);
}

// "buckets=B,minn=A,maxn=Z,keep=R", any subset, into fit options; an Error names what is wrong.
static SubwordFitOptions parse_subword_fit(const std::string& text, unsigned threads, Progress* progress) {
  SubwordFitOptions options;
  options.threads = threads;
  options.progress = progress;
  size_t start = 0;
  while (start < text.size()) {
    const size_t end = std::min(text.find(',', start), text.size());
    const std::string item = text.substr(start, end - start);
    const size_t eq = item.find('=');
    const std::string name = item.substr(0, eq), value = eq == std::string::npos ? "" : item.substr(eq + 1);
    uint64_t number = 0;
    try {
      size_t used = 0;
      number = std::stoull(value, &used);
      if (used != value.size()) throw std::invalid_argument(value);
    } catch (const std::exception&) {
      throw Error("--fit-subwords: '" + item + "' is not name=integer (buckets, minn, maxn, keep)");
    }
    if (name == "buckets") options.buckets = number;
    else if (name == "minn") options.minn = static_cast<uint32_t>(number);
    else if (name == "maxn") options.maxn = static_cast<uint32_t>(number);
    else if (name == "keep") options.keep_rows = number;
    else throw Error("--fit-subwords: unknown argument '" + name + "' (buckets, minn, maxn, keep)");
    start = end + 1;
  }
  return options;
}

// Row counts from a text file: "key count" lines for a keyed table (rows not listed count 0; keys
// not in the table are skipped), or one count per line in row order for an unkeyed one.
static std::vector<uint64_t> read_counts(const std::string& path, const Table& table) {
  std::ifstream in(path);
  if (!in) throw IoError(path, "cannot open the counts file", errno);
  std::vector<uint64_t> counts(table.size(), 0);
  std::string line;
  size_t line_number = 0, listed = 0, unknown = 0;
  while (std::getline(in, line)) {
    ++line_number;
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t')) line.pop_back();
    if (line.empty()) continue;
    const size_t space = line.find_last_of(" \t");
    std::string key = space == std::string::npos ? "" : line.substr(0, space);
    while (!key.empty() && (key.back() == ' ' || key.back() == '\t')) key.pop_back();
    const std::string value = space == std::string::npos ? line : line.substr(space + 1);
    uint64_t count = 0;
    try {
      size_t used = 0;
      count = std::stoull(value, &used);
      if (used != value.size() || value[0] == '-') throw std::invalid_argument(value);
    } catch (const std::exception&) {
      throw Error(path + ":" + std::to_string(line_number) + ": '" + value + "' is not a count (a whole number)");
    }
    if (!table.has_keys()) {
      if (!key.empty()) throw Error(path + ":" + std::to_string(line_number) + ": the table has no keys: give one count per line, in row order");
      if (listed == counts.size()) throw Error(path + ": more counts than the table's " + std::to_string(counts.size()) + " rows");
      counts[listed++] = count;
      continue;
    }
    if (key.empty()) throw Error(path + ":" + std::to_string(line_number) + ": expected 'key count'");
    if (auto row = table.find(key)) {
      counts[*row] = count;
      ++listed;
    } else {
      ++unknown;
    }
  }
  if (!table.has_keys() && listed != counts.size())
    throw Error(path + ": " + std::to_string(listed) + " counts for a table of " + std::to_string(counts.size()) + " rows");
  if (table.has_keys() && listed == 0) throw Error(path + ": no key of the table is listed");
  if (unknown) std::cerr << "note: " << path << ": " << unknown << " keys are not in the table (skipped)\n";
  return counts;
}

// The feature table of each row: its key's text before the first `separator` (keys without it
// share one table), numbered in the order the tables first appear ("user:17" and "user:4" share
// one).
static std::vector<uint32_t> row_tables_by_prefix(const Table& table, const std::string& separator) {
  if (!table.has_keys()) throw Error("--row-tables: the table has no keys to take table names from");
  if (separator.empty()) throw Error("--row-tables: the separator is empty");
  std::unordered_map<std::string, uint32_t> ids;
  std::optional<uint32_t> unprefixed;  // the table of keys without the separator
  std::vector<uint32_t> tables(table.size());
  for (size_t i = 0; i < tables.size(); ++i) {
    const std::string_view key = table.key(i);
    const size_t end = key.find(separator);
    const uint32_t next = static_cast<uint32_t>(ids.size() + (unprefixed ? 1 : 0));
    if (end == std::string_view::npos) {
      if (!unprefixed) unprefixed = next;
      tables[i] = *unprefixed;
    } else {
      tables[i] = ids.emplace(std::string(key.substr(0, end)), next).first->second;
    }
  }
  return tables;
}

void add_compress(CLI::App& app, Globals& globals) {
  struct Options {
    InputOptions input;
    std::string output, codec = "int8", subword_codec, rerank_codec, fit_subwords, counts, row_tables;
    size_t train_size = 100000, shard_rows = 0;
    unsigned threads = 0;
    uint64_t seed = 1234;
  };
  auto o = std::make_shared<Options>();
  auto* cmd = app.add_subcommand("compress", "Compress a table with a codec spec into a .vecpack file");
  add_input_options(cmd, o->input, "Input table (.vecpack, word2vec, GloVe, HDF5 ann-benchmarks: its train set)");
  cmd->add_option("-o,--output", o->output, "Output .vecpack file (with --shard-rows: a folder)")->required();
  cmd->add_option("-c,--codec", o->codec, "Codec spec, e.g. int8, f16, 'opq:m=25/pq:m=25' ('vecpack codecs' lists them)")
      ->capture_default_str();
  cmd->add_option("--subword-codec", o->subword_codec,
                  "Codec spec of the n-gram pool of a table with subwords (default: the table's codec)");
  cmd->add_option("--fit-subwords", o->fit_subwords,
                  "Fit an n-gram pool to the words first, so that unknown words get vectors: "
                  "'buckets=100000,minn=3,maxn=6[,keep=R]' (any of them; '' for all defaults); keep=R drops the rows "
                  "from R on after the fit, leaving rare words to their n-grams");
  cmd->add_option("--rerank", o->rerank_codec,
                  "Also store every row with this codec (e.g. int8, f16) to rescore shortlists: search --rerank N");
  cmd->add_option("--counts", o->counts,
                  "Row counts (word frequencies) to store with the table and rank rows by (mixdim): a text file of "
                  "'key count' lines (one count per line, in row order, for a table without keys)");
  cmd->add_option("--row-tables", o->row_tables,
                  "Feature table of each row for codecs that share one pool across tables (hash): its key's text "
                  "before the first SEP, e.g. ':' for keys like user:17, item:4 (keys without SEP: one more table)");
  cmd->add_option("--train-size", o->train_size, "Rows sampled for training (0: all)")->capture_default_str();
  cmd->add_option("--threads", o->threads, "Threads (0: one per core)");
  cmd->add_option("--seed", o->seed, "Seed of the training sample and of training")->capture_default_str();
  cmd->add_option("--shard-rows", o->shard_rows,
                  "Write a sharded table: a folder of .vecpack files of at most this many rows each, one trained codec "
                  "(and ivf partition), and manifest.json written last");
  cmd->callback([o, &globals, cmd] {
    // Validate the spec before reading a large input.
    Codec check(codec_chain_of(o->codec));
    if (o->shard_rows && (check.capabilities() & kSharedParameters))
      throw Error("codec '" + check.spec() + "' places rows by their position in one table; it cannot be split into "
                  "shards (--shard-rows)");
    parse_subword_fit(o->fit_subwords, o->threads, nullptr);
    if (!o->subword_codec.empty()) Codec check_subwords(o->subword_codec);
    if (!o->rerank_codec.empty()) Codec check_rerank(o->rerank_codec);
    auto progress = make_progress(globals);
    Table input = read_input(o->input, progress.get());
    CompressOptions options;
    options.train_size = o->train_size;
    options.threads = o->threads;
    options.seed = o->seed;
    options.allow_nan = o->input.allow_nan;
    options.progress = progress.get();
    options.subword_spec = o->subword_codec;
    options.rerank_spec = o->rerank_codec;
    if (!o->counts.empty()) input = input.with_counts(read_counts(o->counts, input));
    auto start = std::chrono::steady_clock::now();
    if (cmd->count("--fit-subwords"))
      input = input.fit_subwords(parse_subword_fit(o->fit_subwords, o->threads, progress.get()));
    // After the fit, which may keep fewer rows.
    if (!o->row_tables.empty()) options.row_tables = row_tables_by_prefix(input, o->row_tables);
    Table out = input.compress(o->codec, options);
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (o->shard_rows) {
      save_shards(out, o->output, o->shard_rows);
    } else {
      out.save(o->output);
    }
    if (!globals.quiet) {
      TableInfo info = Table::open(o->output).info();
      uint64_t raw = uint64_t(info.rows) * info.dim * 4;
      std::cerr << "wrote " << o->output << ": " << info.rows << " rows x " << info.dim << ", codec " << info.spec << ", "
                << human_bytes(info.file_bytes) << " (f32 rows: " << human_bytes(raw) << "), encoded in " << std::fixed << std::setprecision(2) << seconds << " s\n";
    }
  });
}

}  // namespace vecpack::cli
